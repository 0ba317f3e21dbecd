"""The experiment contract: what every ``experiments/<topic>.py`` declares once, at its end.

    EXPERIMENT = Experiment(
        title="...", dataset="mnist", metric=Metric("test_accuracy", higher_is_better=True),
        progress_unit="epoch", throughput_unit="images/s", run=run,
        variants={"numpy": Variant("...", Config(), devices=("cpu",), uses_tensorflow=False), ...})

Every variant carries a complete config (no field left at ``None`` for "the variant decides");
``--set key=value`` applies on top of it with type-checked overrides, except on the fields the
experiment declares as its variants' identity. The harness reads only this
declaration: nothing else of an experiment module is looked up by name.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

DEVICES = ("cpu", "gpu")
PROGRESS_UNITS = ("epoch", "episode", "step")


class DamagedModelError(ValueError):
    """A finished run's saved model exists but cannot be loaded (truncated, empty, not a model file):
    what an experiment's ``predict`` raises, so the command line can say to re-run instead of 'not found'."""


@dataclasses.dataclass(frozen=True)
class Metric:
    """The headline metric of a topic: a row column (``test_accuracy``) or a key of the metrics the
    experiment records (``dice``, ``fcd``, ``mean_score``), and which way is better."""

    name: str
    higher_is_better: bool = True
    # A target on the metric's per-unit validation log, for time-to-target (None: no target).
    target: float | None = None
    # The per-unit log that tracks the metric during training; default: test_x -> val_x, x -> val_x.
    validation_log: str | None = None

    @property
    def validation_key(self) -> str:
        return self.validation_log or "val_" + self.name.removeprefix("test_")

    @property
    def direction(self) -> str:
        return "max" if self.higher_is_better else "min"


@dataclasses.dataclass(frozen=True)
class Variant:
    description: str
    config: object  # A complete instance of the experiment's Config dataclass.
    devices: tuple[str, ...] = DEVICES
    # Said before a CPU run starts when it takes long there (e.g. "about an hour on 2 cores").
    slow_on_cpu: str | None = None
    # False for code that never touches TensorFlow (the NumPy MLP): its worker does not import it.
    uses_tensorflow: bool = True


@dataclasses.dataclass(frozen=True)
class Experiment:
    title: str
    dataset: str
    variants: dict[str, Variant]
    run: Callable  # run(config, variant_name, record) -> None
    metric: Metric
    progress_unit: str = "epoch"
    throughput_unit: str = "images/s"  # What the steady-state throughput counts per second.
    # predict(artifacts_dir, inputs, out_dir) -> one number per input, or one line per input saying what
    # it wrote into out_dir, from a finished run's saved model (`dlbench predict NAME INPUT... --out DIR`);
    # None when the experiment saves no model to predict with.
    predict: Callable | None = None
    # The variant whose latest run `dlbench predict` uses when --variant is not given (None: the first).
    predict_variant: str | None = None
    # Further metrics of the rows (extra metric names) that `dlbench compare` and the README tables
    # show beside the headline, e.g. ("is_ratio", "min_class_share") for a GAN.
    shown_metrics: tuple[str, ...] = ()
    # The config fields that make each variant what it is (unet_nuclei's loss, dqn_mouse's agent, a
    # model's architecture): code paths are chosen by config fields, never by the variant's name, and
    # `--set` on one of these is refused, so a row labelled `bce` never trained with another loss.
    identity: tuple[str, ...] = ()
    # The largest run seed the experiment accepts (None: any), with why: dqn_mouse's training games are
    # drawn from the run seed, and a seed past 9 would train on its test games. Checked before any run.
    max_seed: tuple[int, str] | None = None

    def __post_init__(self):
        if not self.variants:
            raise ValueError(f"{self.title}: an experiment needs at least one variant")
        config_types = {type(variant.config) for variant in self.variants.values()}
        if len(config_types) != 1 or not dataclasses.is_dataclass(next(iter(config_types))):
            raise ValueError(f"{self.title}: every variant needs a config of the same dataclass")
        if self.progress_unit not in PROGRESS_UNITS:
            raise ValueError(f"progress_unit must be one of {', '.join(PROGRESS_UNITS)}")
        fields = {field.name for field in dataclasses.fields(next(iter(config_types)))}
        if set(self.identity) - fields:
            raise ValueError(f"{self.title}: identity fields {sorted(set(self.identity) - fields)} are not config fields")
        seen = {}
        for name, variant in self.variants.items():
            if variant.config in seen:  # Two names for one configuration: their rows could not be told apart.
                raise ValueError(f"{self.title}: variants {seen[variant.config]} and {name} have the same config")
            seen[variant.config] = name
            unknown = set(variant.devices) - set(DEVICES)
            if unknown or not variant.devices:
                raise ValueError(f"variant {name}: devices must be among {', '.join(DEVICES)}")

    @property
    def config_class(self) -> type:
        return type(next(iter(self.variants.values())).config)


# --- studies: a named list of ordinary runs plus the plot that sums them up (dlbench/studies.py) ---

@dataclasses.dataclass(frozen=True)
class Point:
    label: str  # Shown in plots and tables, e.g. "lr=0.1".
    variant: str
    overrides: dict  # Config values as --set strings, e.g. {"learning_rate": "0.1"}.


@dataclasses.dataclass(frozen=True)
class Study:
    name: str
    experiment: str
    description: str
    points: tuple[Point, ...]
    plot: Callable  # (ok rows as a pandas DataFrame, results_dir, plots_dir) -> list of PNG paths
    base: dict = dataclasses.field(default_factory=dict)  # The study's own defaults; --set may change them.
