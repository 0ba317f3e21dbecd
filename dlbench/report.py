"""Comparison tables and plots, read from the results CSV (never from live objects)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd

from dlbench import registry, results

NUMERIC = ["test_accuracy", "test_loss", "time_first_epoch_s", "time_steady_epoch_s", "time_train_s",
           "time_total_s", "energy_kwh", "co2_kg", "parameters", "epochs_run", "n_train"]


def load_results(results_dir, experiment: str) -> pd.DataFrame:
    path = results.results_path(results_dir, experiment)
    if not path.exists():
        raise FileNotFoundError(f"no results for '{experiment}' yet ({path} does not exist); "
                                f"run: dlbench run {experiment}")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column in NUMERIC:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def successful_rows(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """The rows of runs that finished (status ok); an error saying so when there are none."""
    frame = frame[frame["status"] == results.STATUS_OK]
    if frame.empty:
        raise ValueError(f"no successful runs in {where}")
    return frame


def history(results_dir, row) -> pd.DataFrame | None:
    """The per-epoch history of one row, or None if the run wrote none."""
    if not row.get("history_file"):
        return None
    path = Path(results_dir) / row["history_file"]
    return pd.read_csv(path) if path.exists() else None


def _compact(config: dict) -> dict[str, str]:
    """Each config value as its compact JSON text: what is compared and what is shown."""
    return {key: json.dumps(value, separators=(",", ":")) for key, value in config.items()}


def variant_defaults(experiment: str) -> dict[str, dict[str, str]]:
    """The configuration each variant runs with when nothing is overridden (reads the experiment's
    module, which does not load TensorFlow). An experiment whose variants have defaults of their own
    fills them in with its resolve(config, variant)."""
    module = registry.get(experiment)
    resolve = getattr(module, "resolve", lambda config, variant: config)
    return {variant: _compact(dataclasses.asdict(resolve(module.Config(), variant))) for variant in module.VARIANTS}


def config_differences(frame: pd.DataFrame, defaults: dict[str, dict[str, str]]) -> pd.Series:
    """For each row, the config values that differ from its variant's defaults (e.g.
    'learning_rate=0.1'); empty for a row that ran with the defaults."""
    differences = []
    for variant, text in zip(frame["variant"], frame["config"]):
        config, default = _compact(json.loads(text)) if text.startswith("{") else {}, defaults.get(variant, {})
        # A key missing from older rows (added to the config later, with a default that keeps the
        # old behaviour) is not a difference: only values actually recorded are compared.
        differences.append(" ".join(f"{key}={value}" for key, value in sorted(config.items())
                                    if value != default.get(key)))
    return pd.Series(differences, index=frame.index)


def compare(results_dir, experiment: str) -> pd.DataFrame:
    """Variant x device (x differing config x data source) -> mean metrics over successful runs."""
    frame = successful_rows(load_results(results_dir, experiment),
                            f"{results.results_path(results_dir, experiment)}").copy()
    frame["config_diff"] = config_differences(frame, variant_defaults(experiment))
    frame["co2_g"] = frame["co2_kg"] * 1000.0
    keys = ["variant", "device", "dataset_source", "config_diff"]
    table = frame.groupby(keys, sort=True).agg(
        runs=("run_id", "count"),
        test_accuracy=("test_accuracy", "mean"),
        test_accuracy_std=("test_accuracy", "std"),
        first_epoch_s=("time_first_epoch_s", "mean"),
        steady_epoch_s=("time_steady_epoch_s", "mean"),
        total_s=("time_total_s", "mean"),
        energy_kwh=("energy_kwh", "mean"),
        co2_g=("co2_g", "mean"),
        device_name=("device_name", "first"),
    ).reset_index()
    return table


def write_comparison(results_dir, experiment: str) -> tuple[pd.DataFrame, Path]:
    table = compare(results_dir, experiment)
    path = Path(results_dir) / f"{experiment}_compare.csv"
    table.to_csv(path, index=False)
    return table, path


def format_table(table: pd.DataFrame) -> str:
    shown = table.copy()
    formats = {"test_accuracy": "{:.4f}", "test_accuracy_std": "{:.4f}", "first_epoch_s": "{:.2f}",
               "steady_epoch_s": "{:.3f}", "total_s": "{:.1f}", "energy_kwh": "{:.3g}", "co2_g": "{:.3g}"}
    for column, pattern in formats.items():
        shown[column] = shown[column].map(lambda v, p=pattern: "" if pd.isna(v) else p.format(v))
    return shown.to_string(index=False)
