"""Studies: a named list of ordinary runs (points) plus the plot that sums them up.

Every point of a study is an ordinary run, with its own row (time, energy, CO2) in the experiment's
CSV; the rows carry the study's name and the invocation's ``group_id`` so the plot of a study is
always drawn from the runs of its latest invocation, read back from the CSV.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pandas as pd

from dlbench import report, runner
from dlbench.experiment import Point, Study  # noqa: F401 - part of this module's interface.

# One plain dict: study name -> module that defines it (in that module's STUDIES dict).
STUDIES = {
    "mlp_architecture": "experiments.mlp_studies",
    "mlp_learning_rate": "experiments.mlp_studies",
    "mlp_gradient_descent": "experiments.mlp_studies",
    "mlp_overtraining": "experiments.mlp_studies",
    "mlp_activations": "experiments.mlp_studies",
    "autoencoder_anomaly": "experiments.autoencoder_studies",
}


class UnknownStudyError(ValueError):
    pass


def get(name: str) -> Study:
    if name not in STUDIES:
        raise UnknownStudyError(f"unknown study '{name}'; valid: {', '.join(STUDIES)}")
    return importlib.import_module(STUDIES[name]).STUDIES[name]


def plan(study: Study, user_overrides: dict, variants: list[str] | None, devices: list[str] | None,
         **plan_options) -> list[runner.RunSpec]:
    """Specs for every point. Precedence: the study's base settings, then the user's --set (e.g. fewer
    epochs for every point), then the keys the point itself varies, which always win."""
    points = [(point.variant, {**study.base, **user_overrides, **point.overrides}, point.label)
              for point in study.points if not variants or point.variant in variants]
    if not points:
        raise runner.RunnerError(f"study {study.name} has no point for variants {variants}")
    return runner.plan_points(study.experiment, points, devices, **plan_options, study=study.name)


def latest_rows(study: Study, results_dir) -> pd.DataFrame:
    """The rows of the study's most recent invocation (numeric columns parsed, as report reads them)."""
    try:
        frame = report.load_results(results_dir, study.experiment)
    except FileNotFoundError:
        frame = pd.DataFrame()
    if frame.empty or not (frame["study"] == study.name).any():
        raise FileNotFoundError(f"no runs of study '{study.name}' in {results_dir}; run: dlbench study {study.name}")
    frame = frame[frame["study"] == study.name]
    return frame[frame["group_id"] == frame["group_id"].iloc[-1]].copy()


def plot(study: Study, results_dir) -> list[Path]:
    plots_dir = Path(results_dir) / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    # Only runs that finished are drawn; a study whose every point failed says so instead of plotting.
    rows = report.successful_rows(latest_rows(study, results_dir),
                                  f"the latest invocation of study '{study.name}'")
    return study.plot(rows, Path(results_dir), plots_dir)
