"""Comparison tables, read from the run records (never from live objects).

Every table ranks on the experiment's declared headline metric (``metric_value``) in its declared
direction, so a topic judged on Dice or on a Fréchet distance compares as well as one judged on
accuracy.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd

from dlbench import registry, results

NUMERIC = ["metric_value", "test_accuracy", "test_loss", "time_first_unit_s", "time_steady_unit_s",
           "time_train_s", "time_total_s", "throughput", "energy_kwh", "co2_kg", "parameters", "units_run",
           "units_planned", "n_train", "forecast_time_s", "forecast_kwh", "forecast_time_error",
           "forecast_kwh_error", "time_to_target_s", "energy_to_target_kwh"]


def headline_value(row: dict, metric_name: str) -> float | None:
    """The declared metric of a row: its metric_value, or (rows imported from dlbench 0.1, which had
    none) the column or extra metric of that name."""
    if row.get("metric_value") not in (None, ""):
        return row["metric_value"]
    if metric_name in row and row[metric_name] not in (None, ""):
        return row[metric_name]
    try:
        return json.loads(row.get("extra_metrics") or "{}").get(metric_name)
    except (TypeError, json.JSONDecodeError):
        return None


def load_results(results_dir, experiment: str) -> pd.DataFrame:
    """Every record of the experiment as a frame (numeric columns parsed), oldest first."""
    records = results.read_records(results_dir, experiment)
    if not records:
        raise FileNotFoundError(f"no results for '{experiment}' yet (no run records in "
                                f"{results.runs_dir(results_dir, experiment)}); run: dlbench run {experiment}")
    metric = registry.get(experiment).metric
    for record in records:
        record["metric_value"] = headline_value(record, metric.name)
        record["metric"] = record.get("metric") or metric.name
    frame = pd.DataFrame(records)
    for column in results.COLUMNS:
        if column not in frame:
            frame[column] = None
    for column in frame.columns:
        if column not in NUMERIC:  # Text columns as text, empty where a record has no value.
            frame[column] = [("" if pd.isna(value) else str(value)) if not isinstance(value, (list, dict))
                             else json.dumps(value) for value in frame[column]]
    for column in NUMERIC:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def successful_rows(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """The rows of runs that finished (status ok); an error saying so when there are none."""
    frame = frame[frame["status"] == results.STATUS_OK]
    if frame.empty:
        raise ValueError(f"no successful runs in {where}")
    return frame


def history(results_dir, row) -> pd.DataFrame | None:
    """The per-unit history of one row, or None if the run wrote none."""
    if not row.get("history_file"):
        return None
    path = Path(results_dir) / row["history_file"]
    return pd.read_csv(path) if path.exists() else None


def _compact(config: dict) -> dict[str, str]:
    """Each config value as its compact JSON text: what is compared and what is shown."""
    return {key: json.dumps(value, separators=(",", ":")) for key, value in config.items()}


def variant_defaults(experiment: str) -> dict[str, dict[str, str]]:
    """The configuration each variant runs with when nothing is overridden."""
    return {name: _compact(dataclasses.asdict(variant.config))
            for name, variant in registry.get(experiment).variants.items()}


def config_differences(frame: pd.DataFrame, defaults: dict[str, dict[str, str]]) -> pd.Series:
    """For each row, the config values that differ from its variant's defaults (e.g.
    'learning_rate=0.1'); empty for a row that ran with the defaults."""
    differences = []
    for variant, text in zip(frame["variant"], frame["config"]):
        config, default = _compact(json.loads(text)) if text.startswith("{") else {}, defaults.get(variant, {})
        # A key missing from older rows (added to the config later, with a default that keeps the
        # old behaviour) is not a difference: only values actually recorded are compared.
        differences.append(" ".join(f"{key}={value}" for key, value in sorted(config.items())
                                    if key in default and value != default[key]))
    return pd.Series(differences, index=frame.index)


def compare(results_dir, experiment: str) -> pd.DataFrame:
    """Variant x device (x differing config x data source) -> mean figures over successful runs,
    best headline metric first."""
    frame = successful_rows(load_results(results_dir, experiment),
                            f"the records of {experiment} in {results_dir}").copy()
    frame["config_diff"] = config_differences(frame, variant_defaults(experiment))
    frame["co2_g"] = frame["co2_kg"] * 1000.0
    shown = registry.get(experiment).shown_metrics
    for name in shown:
        frame[name] = [_extra_metric(text, name) for text in frame["extra_metrics"]]
    keys = ["variant", "device", "dataset_source", "config_diff"]
    table = frame.groupby(keys, sort=True).agg(
        runs=("run_id", "count"),
        metric=("metric", "first"),
        metric_mean=("metric_value", "mean"),
        metric_std=("metric_value", "std"),
        first_unit_s=("time_first_unit_s", "mean"),
        steady_unit_s=("time_steady_unit_s", "mean"),
        total_s=("time_total_s", "mean"),
        throughput=("throughput", "mean"),
        throughput_unit=("throughput_unit", "first"),
        energy_kwh=("energy_kwh", "mean"),
        co2_g=("co2_g", "mean"),
        energy_method=("energy_method", "first"),
        device_name=("device_name", "first"),
        **{name: (name, "mean") for name in shown},
    ).reset_index()
    higher_is_better = registry.get(experiment).metric.higher_is_better
    return table.sort_values("metric_mean", ascending=not higher_is_better, na_position="last",
                             kind="stable").reset_index(drop=True)


def _extra_metric(text: str, name: str) -> float:
    try:
        value = json.loads(text or "{}").get(name)
    except (TypeError, json.JSONDecodeError):
        value = None
    return float(value) if isinstance(value, (int, float)) else float("nan")


def shown_columns(table: pd.DataFrame) -> list[str]:
    """The experiment's shown metrics present in a comparison table (after the standard columns)."""
    if "device_name" not in table.columns:
        return []
    return list(table.columns[table.columns.get_loc("device_name") + 1:])


def write_comparison(results_dir, experiment: str) -> tuple[pd.DataFrame, Path]:
    table = compare(results_dir, experiment)
    path = Path(results_dir) / f"{experiment}_compare.csv"
    table.to_csv(path, index=False)
    return table, path


def _text(value, pattern: str) -> str:
    return "" if value is None or pd.isna(value) else pattern.format(value)


def render(frame: pd.DataFrame, left: tuple[str, ...] = ()) -> str:
    """Columns padded to their widest cell: numbers right-aligned, the ``left`` columns (text such as
    a config) left-aligned, so that a long last column never pushes the others to the right."""
    cells = {column: [str(column)] + [str(value) for value in frame[column]] for column in frame.columns}
    widths = {column: max(map(len, values)) for column, values in cells.items()}
    lines = []
    for index in range(len(frame) + 1):
        parts = [cells[column][index].ljust(widths[column]) if column in left
                 else cells[column][index].rjust(widths[column]) for column in frame.columns]
        lines.append(" ".join(parts).rstrip())
    return "\n".join(lines)


def format_table(table: pd.DataFrame) -> str:
    """The comparison table for a terminal: the columns that matter, numbers rounded."""
    metric = table["metric"].iloc[0] if len(table) else "metric"
    shown = pd.DataFrame({
        "variant": table["variant"], "device": table["device"], "data": table["dataset_source"],
        "n": table["runs"],
        metric: [_text(m, "{:.4f}") + ("" if pd.isna(s) else _text(s, " ±{:.4f}"))
                 for m, s in zip(table["metric_mean"], table["metric_std"])],
        "first s": table["first_unit_s"].map(lambda v: _text(v, "{:.2f}")),
        "steady s": table["steady_unit_s"].map(lambda v: _text(v, "{:.3f}")),
        "total s": table["total_s"].map(lambda v: _text(v, "{:.1f}")),
        "kWh": table["energy_kwh"].map(lambda v: _text(v, "{:.2g}")),
        "g CO2": table["co2_g"].map(lambda v: _text(v, "{:.2g}")),
        **{name: table[name].map(lambda v: _text(v, "{:.4g}")) for name in shown_columns(table)},
        "config": table["config_diff"],
    })
    return render(shown, left=("variant", "config"))


def run_table(results_dir, experiment: str, run_ids: list[str]) -> str:
    """A narrow table (under 100 columns) of the given runs: what `dlbench run` prints at its end."""
    frame = load_results(results_dir, experiment)
    frame = frame[frame["run_id"].isin(run_ids)]
    if frame.empty:
        return ""
    metric = frame["metric"].iloc[-1]
    unit = frame["progress_unit"].iloc[-1] or "unit"
    shown = pd.DataFrame({
        "variant": frame["variant"], "device": frame["device"], "status": frame["status"],
        metric: frame["metric_value"].map(lambda v: _text(v, "{:.4f}")),
        f"s/{unit}": frame["time_steady_unit_s"].map(lambda v: _text(v, "{:.3f}")),
        "total s": frame["time_total_s"].map(lambda v: _text(v, "{:.1f}")),
        "kWh": frame["energy_kwh"].map(lambda v: _text(v, "{:.2g}")),
        "g CO2": (frame["co2_kg"] * 1000).map(lambda v: _text(v, "{:.2g}")),
        "forecast": frame["forecast_time_error"].map(lambda v: _text(100 * v, "{:+.0f}%")),
        "data": frame["dataset_source"],
    })
    return render(shown, left=("variant", "data"))


def markdown_table(table: pd.DataFrame) -> str:
    """The comparison table as Markdown, for README.md and reports (generated, never copied by hand)."""
    metric = table["metric"].iloc[0] if len(table) else "metric"
    extra = shown_columns(table)
    header = (f"| variant | device | data | runs | {metric} | s/unit first / steady | total s | kWh | g CO2 | "
              + "".join(f"{name} | " for name in extra)
              + "config |\n|" + "---|" * (10 + len(extra)) + "\n")
    lines = []
    for _, row in table.iterrows():
        spread = "" if pd.isna(row["metric_std"]) else f" ± {row['metric_std']:.4f}"
        lines.append(
            f"| {row['variant']} | {row['device']} | {row['dataset_source']} | {row['runs']} | "
            f"{_text(row['metric_mean'], '{:.4f}')}{spread} | {_text(row['first_unit_s'], '{:.2f}')} / "
            f"{_text(row['steady_unit_s'], '{:.3f}')} | {_text(row['total_s'], '{:.1f}')} | "
            f"{_text(row['energy_kwh'], '{:.2g}')} | {_text(row['co2_g'], '{:.2g}')} | "
            + "".join(f"{_text(row[name], '{:.4g}')} | " for name in extra)
            + f"{row['config_diff'].replace('|', '/') or 'defaults'} |")
    return header + "\n".join(lines)
