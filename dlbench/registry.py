"""The one list of experiments: name -> module. Add a topic by adding a line here.

Each module ends with one ``EXPERIMENT = Experiment(...)`` declaration (dlbench/experiment.py);
importing it does not load TensorFlow.
"""

from __future__ import annotations

import importlib

from dlbench.experiment import Experiment

EXPERIMENTS = {
    "mlp_mnist": "experiments.mlp_mnist",
    "cnn_cifar": "experiments.cnn_cifar",
    "dqn_mouse": "experiments.dqn_mouse",
    "sentiment_imdb": "experiments.sentiment_imdb",
    "unet_nuclei": "experiments.unet_nuclei",
    "gan_mnist": "experiments.gan_mnist",
    "autoencoder_mnist": "experiments.autoencoder_mnist",
    "flows_density": "experiments.flows_density",
}


class UnknownExperimentError(ValueError):
    pass


def check(name: str) -> None:
    """Raise with the list of valid names unless ``name`` is a known experiment."""
    if name not in EXPERIMENTS:
        raise UnknownExperimentError(f"unknown experiment '{name}'; valid: {', '.join(EXPERIMENTS)}")


def get(name: str) -> Experiment:
    """The experiment's declaration, or an error with the list of valid names."""
    check(name)
    return importlib.import_module(EXPERIMENTS[name]).EXPERIMENT
