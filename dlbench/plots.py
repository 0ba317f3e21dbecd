"""Plots read from the run records and the per-unit history files, never from live objects.

``dlbench plot NAME`` writes into ``<results dir>/plots/``:

- ``NAME_curves_<variant>_<device>.png``: every metric the history logged per unit (epoch, episode,
  step), each with its ``val_`` counterpart when there is one, and the final test value (a column
  ``test_<metric>`` of the row) as a marker at the last unit;
- ``NAME_summary.png``: the headline metric, run time, time per steady unit and CO2 per variant,
  with CPU and GPU bars side by side when both ran.

Each (variant, device) is shown by its latest successful run on one machine: the machine of the
latest successful run (two machines' bars side by side would compare processors, not variants; the
title names it). Plain runs win over a study's points (a study's extreme learning rate does not stand
for its variant), and rows on the full or generated data win over rows on the shipped sample, so a
quick sample check never hides a full run; a plot made from sample rows says so in its title.
``plot_summary_panels`` draws the same four panels one per file, for pages read on a phone.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # Files only: no display needed (servers, CI, SSH sessions).
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from dlbench import report, results  # noqa: E402

DEVICE_COLOURS = {"cpu": "tab:blue", "gpu": "tab:orange"}


def add_legend(axis, **options) -> None:
    """A legend when the axis has labelled artists (matplotlib warns 'No artists with labels' otherwise)."""
    if axis.get_legend_handles_labels()[0]:
        axis.legend(**options)


def latest_runs(results_dir, experiment: str, frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """The latest successful row per (variant, device) on the machine of the latest successful run,
    plain runs preferred over study points and full (or generated) data over the shipped sample.
    ``frame``: the experiment's records already loaded by report.load_results (read again if None)."""
    if frame is None:
        frame = report.load_results(results_dir, experiment, judge_overlaps=False)
    frame = report.successful_rows(frame, f"{results.results_path(results_dir, experiment)}")
    frame = frame[frame["machine"] == frame["machine"].iloc[-1]]  # Records are read oldest first.
    frame = frame.assign(_plain=(frame["study"] == ""), _full=(frame["dataset_source"] != "sample"),
                         _order=range(len(frame)))
    frame = frame.sort_values(["_plain", "_full", "_order"])  # The last row of each group is the one to show.
    chosen = frame.groupby(["variant", "device"], sort=False).tail(1)
    # Keep the experiment's own variant order (order of first appearance in the CSV).
    first_seen = dict.fromkeys(frame.sort_values("_order")["variant"])
    variant_order = {variant: index for index, variant in enumerate(first_seen)}
    chosen = chosen.assign(_variant_order=chosen["variant"].map(variant_order))
    return chosen.sort_values(["_variant_order", "device"]).drop(
        columns=["_plain", "_full", "_order", "_variant_order"])


DATA_NOTES = {"full": "full data", "generated": "generated data",
              "sample": "shipped SAMPLE data, not the full dataset"}


def _data_note(rows: pd.DataFrame) -> str:
    """What data the rows ran on, in words: generated games or densities are not the shipped sample."""
    sources = sorted(set(rows["dataset_source"]) - {""})
    notes = [DATA_NOTES.get(source, f"{source} data") for source in sources]
    if not notes:
        return "data source not recorded"
    return notes[0] if len(notes) == 1 else "mixed: " + " and ".join(notes)


# Columns of a history file that are not metrics.
_NOT_METRICS = {"seconds", "items", "count", "epoch", "episode", "step"}
MAX_PANELS = 4


def logged_metrics(history: pd.DataFrame) -> list[str]:
    """The metrics a history logged, without their val_ twins (those share the metric's panel)."""
    names = [c for c in history.columns if c not in _NOT_METRICS and not c.startswith("val_")]
    names += [c[4:] for c in history.columns if c.startswith("val_") and c[4:] not in names]
    return names[:MAX_PANELS]


def plot_training_curves(rows: pd.DataFrame, results_dir: Path, experiment: str) -> list[Path]:
    """One figure per (variant, device) of ``rows``: each logged metric per unit, train vs validation."""
    written = []
    for _, row in rows.iterrows():
        history = report.history(results_dir, row)
        if history is None:
            continue
        unit = next((c for c in ("epoch", "episode", "step") if c in history), None)
        metrics = logged_metrics(history)
        if unit is None or not metrics:
            continue
        figure, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4.2), squeeze=False)
        for axis, metric in zip(axes[0], metrics):
            scale = 100.0 if "accuracy" in metric else 1.0
            label = f"{metric} (%)" if scale == 100.0 else metric
            if metric in history:
                axis.plot(history[unit], scale * history[metric], "o-", label="train")
            if f"val_{metric}" in history:
                axis.plot(history[unit], scale * history[f"val_{metric}"], "s--", label="validation")
            test_value = pd.to_numeric(pd.Series([row.get(f"test_{metric}")]), errors="coerce").iloc[0]
            if pd.notna(test_value):
                axis.plot([history[unit].iloc[-1]], [scale * test_value], "k*", markersize=12,
                          label=f"test (end): {scale * test_value:.{1 if scale == 100 else 3}f}")
            axis.set_xlabel(unit)
            axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
            axis.set_ylabel(label)
            axis.set_title(f"{metric} per {unit}")
            axis.grid(alpha=0.3)
            add_legend(axis)
        parameters = f"{int(row['parameters']):,} parameters, " if pd.notna(row["parameters"]) else ""
        n_train = f"n_train={row['n_train']:.0f}, " if pd.notna(row["n_train"]) else ""
        figure.suptitle(f"{experiment} / {row['variant']} on {row['device']} ({row['device_name']}): "
                        f"{parameters}{n_train}{row['dataset_source']} data, run {row['run_id']}",
                        fontsize=10)
        figure.tight_layout()
        path = results_dir / "plots" / f"{experiment}_curves_{row['variant']}_{row['device']}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    return written


def _summary_layout(rows: pd.DataFrame) -> tuple[pd.DataFrame, list[str], list[str], list[str], list[tuple]]:
    """What every summary panel shares: the rows with CO2 in grams, the variants in order, the devices,
    the tick labels, and the four panels (column, axis label, number format)."""
    metric = rows["metric"].iloc[0]
    unit = rows["progress_unit"].iloc[0] or "epoch"
    rows = rows.assign(co2_g=1000.0 * rows["co2_kg"])
    variants = list(dict.fromkeys(rows["variant"]))
    devices = [device for device in ("cpu", "gpu") if device in set(rows["device"])]
    # The tick says how much training each bar stands for: a 2-epoch probe is not a full run, and a
    # baseline that never trains (the random mouse) says so rather than "nan episodes".
    tick_labels = []
    for variant in variants:
        first = rows[rows["variant"] == variant].iloc[0]
        trained = f"{first['units_run']:.0f} {unit}s" if pd.notna(first["units_run"]) else "no training"
        data = f", {first['n_train']:,.0f} train" if pd.notna(first["n_train"]) else ""
        tick_labels.append(f"{variant}\n{trained}{data}")
    panels = [
        ("metric_value", f"{metric} ({rows['metric_direction'].iloc[0] or 'max'} is better)", "{:.4g}"),
        ("time_total_s", "whole run: data, build, train, test (s)", "{:.0f}"),
        ("time_steady_unit_s", f"one {unit} after the first (s)", "{:.2f}"),
        ("co2_g", "emissions, whole run (g CO2eq)", "{:.2g}"),
    ]
    return rows, variants, devices, tick_labels, panels


ZOOM_BELOW_SPREAD = 0.25  # Zoom the metric axis when its values spread less than this share of the largest.


def zoomed_limits(values) -> tuple[float, float] | None:
    """Y limits around positive values that differ by little (accuracies of 94.6 and 94.9 %), so bars
    from zero do not hide the difference; None when the values are far apart or not all positive."""
    values = np.asarray([value for value in values if np.isfinite(value)], dtype=float)
    if len(values) < 2 or values.min() <= 0:
        return None
    low, high = values.min(), values.max()
    if high - low > ZOOM_BELOW_SPREAD * high:
        return None
    margin = max(high - low, 0.002 * high)
    return max(0.0, low - margin), high + 0.6 * margin  # Room above for the value labels.


def _draw_summary_panel(axis, rows, variants, devices, tick_labels, column, label, number_format) -> None:
    """One panel of bars: the column per variant, CPU and GPU side by side; a note when no row has it."""
    if np.isnan(rows[column].to_numpy(dtype=float)).all():
        axis.set_axis_off()
        axis.text(0.5, 0.5, f"{label}:\nnot available in these rows", ha="center", va="center",
                  transform=axis.transAxes)
        return
    positions = np.arange(len(variants))
    width = 0.8 / len(devices)
    shown = []
    for index, device in enumerate(devices):
        values = [rows[(rows["variant"] == v) & (rows["device"] == device)][column] for v in variants]
        values = [float(v.iloc[0]) if len(v) and pd.notna(v.iloc[0]) else np.nan for v in values]
        shown += values
        offsets = positions + (index - (len(devices) - 1) / 2) * width
        bars = axis.bar(offsets, np.nan_to_num(values), width, label=device.upper(), color=DEVICE_COLOURS[device])
        for bar, value in zip(bars, values):
            text = "n/a" if np.isnan(value) else number_format.format(value)
            # Outside the bar's end: above a positive bar, below a negative one (a random mouse's score).
            axis.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                          ha="center", va="top" if value < 0 else "bottom", fontsize=8)
    limits = zoomed_limits(shown) if column == "metric_value" else None
    if limits is not None:
        axis.set_ylim(*limits)
        label += "\n(axis zoomed to the values, not from 0)"
    else:
        low, high = axis.get_ylim()
        room = 0.08 * (high - low)  # For the value labels at the bars' ends.
        axis.set_ylim(low - (room if low < 0 else 0.0), high + room)
    axis.set_xticks(positions, tick_labels, fontsize=8, rotation=25, ha="right")
    axis.set_ylabel(label)
    axis.grid(axis="y", alpha=0.3)
    if len(devices) > 1:
        add_legend(axis)


def _summary_title(rows: pd.DataFrame, experiment: str) -> str:
    return (f"{experiment}: latest successful run per variant and device on {rows['machine'].iloc[0]} "
            f"({_data_note(rows)})")


def _carbon_note(rows: pd.DataFrame) -> str:
    country = ", ".join(sorted(set(rows["carbon_country"]) - {""}))
    return f"CodeCarbon estimate, carbon intensity of {country}" if country else "CodeCarbon estimate"


def plot_summary(rows: pd.DataFrame, results_dir: Path, experiment: str, plots_dir: Path | None = None) -> Path:
    """Bars per variant: headline metric, whole-run time, steady unit time, CO2; CPU and GPU side by side.
    Written to ``plots_dir`` (default: the results directory's plots folder)."""
    rows, variants, devices, tick_labels, panels = _summary_layout(rows)
    figure, axes = plt.subplots(2, 2, figsize=(13, 9))
    for axis, (column, label, number_format) in zip(axes.flat, panels):
        _draw_summary_panel(axis, rows, variants, devices, tick_labels, column, label, number_format)
    if rows["co2_kg"].notna().any():
        axes[1, 1].set_title(_carbon_note(rows), fontsize=9)
    figure.suptitle(_summary_title(rows, experiment))
    figure.tight_layout()
    path = Path(plots_dir if plots_dir is not None else Path(results_dir) / "plots") / f"{experiment}_summary.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_summary_panels(rows: pd.DataFrame, experiment: str, plots_dir: Path, dpi: int = 90) -> list[Path]:
    """The summary's four panels, one small figure each (``<experiment>_summary_<column>.png``): side by
    side on a wide page, one below the other on a phone, each readable at its width."""
    rows, variants, devices, tick_labels, panels = _summary_layout(rows)
    written = []
    for column, label, number_format in panels:
        figure, axis = plt.subplots(figsize=(max(4.8, 1.1 + 0.9 * len(variants) * len(devices)), 3.8))
        _draw_summary_panel(axis, rows, variants, devices, tick_labels, column, label, number_format)
        title = f"{experiment}, {_data_note(rows)}"
        axis.set_title(title + (f"\n{_carbon_note(rows)}" if column == "co2_g" else ""), fontsize=9)
        figure.tight_layout()
        path = Path(plots_dir) / f"{experiment}_summary_{column}.png"
        figure.savefig(path, dpi=dpi)
        plt.close(figure)
        written.append(path)
    return written


def plot_experiment(results_dir, experiment: str) -> list[Path]:
    """Both kinds of figure, from the latest successful run of each (variant, device), into results/plots."""
    results_dir = Path(results_dir)
    rows = latest_runs(results_dir, experiment)
    (results_dir / "plots").mkdir(parents=True, exist_ok=True)
    return [*plot_training_curves(rows, results_dir, experiment), plot_summary(rows, results_dir, experiment)]
