"""The one list of experiments: name -> module. Add a topic by adding a line here."""

from __future__ import annotations

import importlib

EXPERIMENTS = {
    "mlp_mnist": "experiments.mlp_mnist",
    "cnn_cifar": "experiments.cnn_cifar",
}


class UnknownExperimentError(ValueError):
    pass


def check(name: str) -> None:
    """Raise with the list of valid names unless ``name`` is a known experiment."""
    if name not in EXPERIMENTS:
        raise UnknownExperimentError(f"unknown experiment '{name}'; valid: {', '.join(EXPERIMENTS)}")


def get(name: str):
    """Import and return an experiment module, or raise with the list of valid names."""
    check(name)
    return importlib.import_module(EXPERIMENTS[name])


def variants(module) -> dict[str, str]:
    return dict(module.VARIANTS)


def devices_for(module, variant: str) -> tuple[str, ...]:
    """Variants that never touch TensorFlow (the NumPy MLP) only have a CPU row."""
    return ("cpu",) if variant in getattr(module, "CPU_ONLY_VARIANTS", ()) else ("cpu", "gpu")
