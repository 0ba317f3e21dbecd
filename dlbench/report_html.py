"""The whole picture in one page: ``dlbench report`` writes ``results/report.html`` and ``results/REPORT.md``.

Both are made from the run records only (never from live objects), with the same tables:

- per experiment of the registry: the comparison table (variant x device -> headline metric, time,
  energy, CO2, throughput, time- and energy-to-target), the CPU/GPU speed-up where both ran the same
  configuration, validation curves drawn from the history files, and the figures already in
  ``results/plots/`` (the experiment's and its studies') and in each run's artifacts directory;
- across experiments: headline metric against CO2 with the Pareto front, energy per topic, how good
  the forecasts were, and provenance (machines, versions, commits, carbon intensity).

The HTML is one self-contained file: every image is a base64 data URI (shrunk to a palette PNG so the
page stays a few MB), no script, no network; a viewport tag and horizontally scrolling tables make it
readable on a phone, and it prints. REPORT.md links the PNG files instead (the report's own figures are
written to ``results/plots/report/``). Nothing here imports TensorFlow or Keras.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import math
import os
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # Files only: no display needed.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from dlbench import plots, registry, report, results, studies  # noqa: E402

HTML_NAME = "report.html"
MARKDOWN_NAME = "REPORT.md"
FIGURE_DIR = Path("plots") / "report"  # The report's own figures, relative to the results directory.
DPI = 90  # Small figures: the page embeds every one of them.
EMBED_WIDTH = 1400  # Wider images are scaled down before embedding (the page is narrower than that).
EMBED_LIMIT_BYTES = 1_500_000  # An image still larger than this is linked from REPORT.md, not embedded.
MAX_ARTIFACTS = 12  # Artifact images shown per experiment (the latest runs' first).
MAX_CURVES = 12  # Runs drawn in one curves figure.

NOT_REACHED = "not reached"
NO_TARGET = "n/a"  # Rows imported from dlbench 0.1 (or a topic without a target) have none.
SAMPLE_MARK = "†"
ESTIMATE_MARK = "≈"
SAMPLE_LEGEND = (f"{SAMPLE_MARK} sample data: ran on the small sample shipped with dlbench, not the full "
                 f"dataset; its metric is not comparable with full-data rows")
# CodeCarbon always estimates RAM from the memory size (and the CPU from load x TDP where RAPL is
# unreadable), so this flag is the rule today; energy_method says which part.
ESTIMATE_LEGEND = (f"{ESTIMATE_MARK} estimated energy: part of the energy is an estimate, not a measurement "
                   f"(energy method says which part: RAM from the memory size, CPU from load x TDP without RAPL)")
FLAGS_LEGEND = ("Comparisons are per machine, never pooled; n is the runs summed up (contended runs left out "
                "of a row that has clean ones), the headline and steady time show median [min–max]. Flags: "
                "contended: other processes used over 10 % of the CPU meanwhile (measured, or for older "
                "records an overlap with other recorded runs): its times are slowed and its energy includes "
                "theirs; noisy: steady time spread (max − min) over 10 % of its median; concurrent: run with "
                "--concurrent or sharing a Ray node")
DEVICE_COLOURS = {"cpu": "tab:blue", "gpu": "tab:orange"}


# --- what the report is made of -------------------------------------------------------------------

@dataclasses.dataclass
class Table:
    """Cells as text, shared by the HTML and the Markdown so both show the same values."""
    title: str
    header: list[str]
    rows: list[list[str]]
    row_classes: list[str] = dataclasses.field(default_factory=list)  # CSS class per row ("" for none).


@dataclasses.dataclass
class Figure:
    path: Path  # The image file on disk.
    caption: str


@dataclasses.dataclass
class Section:
    name: str
    heading: str
    notes: list[str] = dataclasses.field(default_factory=list)
    blocks: list[Table | Figure] = dataclasses.field(default_factory=list)  # In the order shown.


@dataclasses.dataclass
class Report:
    summary: str
    experiments: list[Section]
    not_run: list[str]  # Experiments of the registry without a record.
    overview: Section


# --- the command ----------------------------------------------------------------------------------

def write_report(results_dir, out_dir=None) -> tuple[Path, Path]:
    """Write report.html, REPORT.md and the report's figures into ``out_dir`` (default: the results
    directory, which is only read otherwise); returns their paths. Raises FileNotFoundError (one line)
    when no experiment has any record, results.ResultsDirError when ``out_dir`` cannot be written."""
    results_dir = Path(results_dir)
    out_dir = Path(out_dir) if out_dir is not None else results_dir
    try:
        results.check_results_dir(out_dir, min_free_bytes=5 * 2**20)
    except results.ResultsDirError as error:
        raise results.ResultsDirError(f"cannot write the report: {error}".replace(
            "choose another with --results-dir DIR", "write it elsewhere with --out DIR")) from None
    overlaps = report.overlap_shares(results_dir)  # Once for every experiment: it reads all records.
    frames = {name: prepared_rows(results_dir, name, overlaps) for name in registry.EXPERIMENTS}
    frames_with_rows = {name: frame for name, frame in frames.items() if frame is not None}
    if not frames_with_rows:
        raise FileNotFoundError(f"no run records in {results_dir / 'runs'} (nothing to report); "
                                f"run an experiment first, e.g.: dlbench run {next(iter(registry.EXPERIMENTS))}")
    figure_dir = out_dir / FIGURE_DIR
    figure_dir.mkdir(parents=True, exist_ok=True)
    built = Report(
        summary=summary_line(frames_with_rows, results_dir),
        experiments=[experiment_section(results_dir, name, frame, figure_dir)
                     for name, frame in frames_with_rows.items()],
        not_run=[name for name, frame in frames.items() if frame is None],
        overview=overview_section(frames_with_rows, figure_dir))
    html_path, markdown_path = out_dir / HTML_NAME, out_dir / MARKDOWN_NAME
    # A folder name that is not UTF-8 (bytes the file system allows) shows as U+FFFD, never a crash.
    html_path.write_text(render_html(built), encoding="utf-8", errors="replace")
    markdown_path.write_text(render_markdown(built, out_dir), encoding="utf-8", errors="replace")
    return html_path, markdown_path


def prepared_rows(results_dir, experiment: str, overlaps: dict[str, float] | None = None) -> pd.DataFrame | None:
    """Every record of the experiment (report.load_results, the one typed loader); None when it has none."""
    try:
        return report.load_results(results_dir, experiment, overlaps=overlaps)
    except FileNotFoundError:
        return None


def summary_line(frames: dict[str, pd.DataFrame], results_dir: Path) -> str:
    count = sum(len(frame) for frame in frames.values())
    latest = max(frame["timestamp_utc"].max() for frame in frames.values())
    # The latest record's time, not the time of writing: regenerating the same records gives the same page.
    return (f"Made from {count} run records of {len(frames)} experiment(s) in {results_dir / 'runs'}, "
            f"the latest from {latest}.")


# --- one experiment -------------------------------------------------------------------------------

def experiment_section(results_dir: Path, name: str, frame: pd.DataFrame, figure_dir: Path) -> Section:
    declaration = registry.get(name)
    metric = declaration.metric
    section = Section(name, f"{name}: {declaration.title}")
    target = ("no target" if metric.target is None
              else f"target {metric.validation_key} {_reached_sign(metric)} {metric.target:g}")
    section.notes.append(f"Headline metric {metric.name} ({metric.direction} is better, {target}); "
                         f"{_count(len(frame), 'run')} recorded, progress per {declaration.progress_unit}.")
    not_ok = frame[frame["status"] != results.STATUS_OK]
    if len(not_ok):
        counts = ", ".join(_count(count, f"{status} run") for status, count in not_ok["status"].value_counts().items())
        section.notes.append(f"Not in the tables: {counts} (their records keep the reason).")
    if not (frame["status"] == results.STATUS_OK).any():
        section.notes.append("No successful run yet.")
        return section
    table = report.compare(results_dir, name, frame=frame)  # The same comparison as `dlbench compare`.
    if report.machine_note(table):
        section.notes.append(report.machine_note(table).capitalize() + ".")
    for machine_label, rows in table.groupby("machine", sort=False):
        section.blocks.append(comparison_table(rows, declaration, f"machine: {machine_label}"))
    pairs = speedups(frame)
    if pairs.empty:
        section.notes.append("CPU vs GPU: no configuration has run on both yet.")
    else:
        section.blocks.append(speedup_table(pairs, declaration.progress_unit))
    curves = plot_curves(results_dir, name, frame, metric, figure_dir)
    section.blocks += [curves] if curves else []
    section.blocks += existing_plots(results_dir, name) + artifact_images(results_dir, frame)
    return section


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _reached_sign(metric) -> str:
    return "≥" if metric.higher_is_better else "≤"


def comparison_table(table: pd.DataFrame, declaration, title: str) -> Table:
    """One machine's rows of report.compare, with the cells `dlbench compare` and the README show."""
    metric, unit = declaration.metric, declaration.progress_unit
    # The config last: it can be long, and the metric should be in view on a phone.
    header = ["variant", "device", "data", "n", f"{metric.name} median [min–max] ({metric.direction} is better)",
              "target", "time to target", "energy to target", f"s/{unit} steady [min–max]", "total s", "kWh",
              "g CO2", "throughput", "flags", "energy method", "config"]
    rows, classes = [], []
    for row in table.to_dict("records"):
        sample = row["dataset_source"] == "sample"
        rows.append([
            row["variant"], row["device"],
            row["dataset_source"] + (f" {SAMPLE_MARK}" if sample else ""),
            report.runs_cell(row), report.metric_cell(row),
            NO_TARGET if not row["runs_with_target"] else f"{_reached_sign(metric)} {row['target']:g}",
            to_target_text(row, "time_to_target_s", "{:.1f} s"),
            to_target_text(row, "energy_to_target_kwh", "{:.2g} kWh"),
            report.steady_cell(row), number(row["total_s"], "{:.1f}"),
            number(row["energy_kwh"], "{:.2g}"), number(row["co2_g"], "{:.2g}"),
            throughput_text(row["throughput"], row["throughput_unit"]),
            report.flags_cell(row),
            (f"{ESTIMATE_MARK} " if row["estimated_energy"] else "") + row["energy_method"],
            row["config_diff"] or "defaults",
        ])
        classes.append(" ".join(name for name, flagged in (("sample", sample), ("estimate", row["estimated_energy"]),
                                                           ("contended", row["contended"])) if flagged))
    return Table(title, header, rows, classes)


def number(value, pattern: str) -> str:
    return "" if value is None or pd.isna(value) else pattern.format(value)


def to_target_text(row: dict, column: str, pattern: str) -> str:
    """The mean over the runs that reached the target; "not reached" if none did, "n/a" without a target."""
    if not row["runs_with_target"]:
        return NO_TARGET
    if not row["runs_reached"] or pd.isna(row[column]):
        return NOT_REACHED
    reached, with_target = row["runs_reached"], row["runs_with_target"]
    share = "" if reached == with_target else f" ({reached}/{with_target} runs)"
    return pattern.format(row[column]) + share


def throughput_text(value, unit: str) -> str:
    if pd.isna(value):
        return ""
    return (f"{value:,.0f}" if value >= 100 else f"{value:.3g}") + (f" {unit}" if unit else "")


def speedups(frame: pd.DataFrame) -> pd.DataFrame:
    """CPU time / GPU time, per steady unit and for the whole run, for every (machine, variant, config
    difference, data source) that ran successfully on both, uncontended (medians over repeats); > 1: the
    GPU is faster.
    The data source is part of the key: a sample run is no like-for-like partner of a full run."""
    ok = frame[(frame["status"] == results.STATUS_OK) & ~frame["contended"]]
    keys = ["machine", "variant", "config_diff", "dataset_source"]  # CPU and GPU of the same machine only.
    means = ok.groupby(keys + ["device"], sort=False)[["time_steady_unit_s", "time_total_s"]].median().reset_index()
    cpu, gpu = means[means["device"] == "cpu"], means[means["device"] == "gpu"]
    pairs = cpu.merge(gpu, on=keys, suffixes=("_cpu", "_gpu"))
    pairs["steady_speedup"] = pairs["time_steady_unit_s_cpu"] / pairs["time_steady_unit_s_gpu"]
    pairs["total_speedup"] = pairs["time_total_s_cpu"] / pairs["time_total_s_gpu"]
    return pairs.drop(columns=["device_cpu", "device_gpu"])


def speedup_table(pairs: pd.DataFrame, unit: str) -> Table:
    header = ["variant", "data", f"CPU s/{unit}", f"GPU s/{unit}", f"speed-up per {unit}",
              "CPU total s", "GPU total s", "speed-up total", "config"]
    rows = [[row["variant"], row["dataset_source"],
             number(row["time_steady_unit_s_cpu"], "{:.3g}"), number(row["time_steady_unit_s_gpu"], "{:.3g}"),
             number(row["steady_speedup"], "{:.2f}×"), number(row["time_total_s_cpu"], "{:.1f}"),
             number(row["time_total_s_gpu"], "{:.1f}"), number(row["total_speedup"], "{:.2f}×"),
             row["config_diff"] or "defaults"]
            for row in pairs.to_dict("records")]
    return Table("CPU vs GPU speed-up (CPU time / GPU time, same variant and configuration)", header, rows)


def plot_curves(results_dir: Path, name: str, frame: pd.DataFrame, metric, figure_dir: Path) -> Figure | None:
    """Validation curves of the latest successful run per (variant, device), from the history files."""
    drawn = []
    for _, row in runs_to_draw(frame).iterrows():
        history = report.history(results_dir, row)
        unit = None if history is None else next((c for c in ("epoch", "episode", "step") if c in history), None)
        if unit is not None:
            drawn.append((row, history, unit))
    if not drawn:
        return None
    columns = curve_columns([history for _, history, _ in drawn], metric)
    if not columns:
        return None
    figure, axes = plt.subplots(1, len(columns), figsize=(4.8 * len(columns), 3.5), squeeze=False)
    for axis, column in zip(axes[0], columns):
        for row, history, unit in drawn[:MAX_CURVES]:
            if column in history:
                label = f"{row['variant']} / {row['device']}" + (" (sample)" if row["on_sample"] else "")
                axis.plot(history[unit], history[column], marker=".", label=label)
        if column == metric.validation_key and metric.target is not None:
            axis.axhline(metric.target, color="grey", linestyle=":", label=f"target {metric.target:g}")
        axis.set_xlabel(drawn[0][2])
        axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        axis.set_title(column, fontsize=9)
        axis.grid(alpha=0.3)
    plots.add_legend(axes[0][0], fontsize=7)
    figure.suptitle(f"{name}: latest successful run per variant and device", fontsize=9)
    path = figure_dir / f"{name}_curves.png"
    _save(figure, path)
    return Figure(path, f"{name}: {', '.join(columns)} per {drawn[0][2]} (from the history files)")


def runs_to_draw(frame: pd.DataFrame) -> pd.DataFrame:
    """The latest successful run per (variant, device), preferring runs outside a study and on the full
    data, so that a study's extreme point or a quick sample check does not stand for the variant."""
    ok = frame[frame["status"] == results.STATUS_OK]
    ordered = ok.assign(_plain=ok["study"] == "", _full=~ok["on_sample"], _order=range(len(ok)))
    ordered = ordered.sort_values(["_plain", "_full", "_order"])  # The last of each group wins.
    return ordered.groupby(["variant", "device"], sort=False).tail(1).sort_values(["variant", "device"])


def curve_columns(histories: list[pd.DataFrame], metric) -> list[str]:
    """The headline metric's validation log and the validation loss (or the training loss, or the
    named losses of a model with several, such as a GAN's d_loss and g_loss); else the first two
    logged metrics."""
    logged = list(dict.fromkeys(column for history in histories for column in history.columns))
    if "val_loss" in logged or "loss" in logged:
        losses = ["val_loss" if "val_loss" in logged else "loss"]
    else:
        losses = [column for column in logged if column.endswith("_loss")]
    wanted = [column for column in dict.fromkeys([metric.validation_key, *losses]) if column in logged]
    return wanted or [c for c in logged if c not in ("epoch", "episode", "step", "seconds", "items")][:2]


def _save(figure, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)


def existing_plots(results_dir: Path, name: str) -> list[Figure]:
    """The PNGs in results/plots/ named after the experiment or one of its studies (dlbench plot and
    dlbench study write them): NAME.png or NAME_*.png."""
    prefixes = [name] + [study for study in studies.STUDIES if studies.get(study).experiment == name]
    plots_dir = results_dir / "plots"
    figures = []
    for prefix in prefixes:
        for path in sorted(plots_dir.glob(f"{prefix}*.png")):
            if path.stem == prefix or path.stem.startswith(f"{prefix}_"):
                figures.append(Figure(path, f"{path.name} ({'study' if prefix != name else 'dlbench plot'})"))
    return figures


def artifact_images(results_dir: Path, frame: pd.DataFrame) -> list[Figure]:
    """PNG and GIF files under the runs' artifacts directories, latest runs first, at most MAX_ARTIFACTS."""
    figures = []
    for _, row in frame.iloc[::-1].iterrows():
        if not row["artifacts_dir"]:
            continue
        directory = results_dir / row["artifacts_dir"]
        for path in sorted(path for path in directory.rglob("*") if path.suffix.lower() in (".png", ".gif")):
            figures.append(Figure(path, f"{row['variant']} / {row['device']}, run {row['run_id']}: {path.name}"))
    return figures[:MAX_ARTIFACTS]


# --- across experiments ---------------------------------------------------------------------------

def overview_section(frames: dict[str, pd.DataFrame], figure_dir: Path) -> Section:
    section = Section("overview", "Across experiments")
    section.notes.append("Metric vs CO2: each point is a successful run; the ringed points are the Pareto front "
                         "(no other run has a better metric for as little CO2 or less).")
    section.blocks = [plot_metric_vs_co2(frames, figure_dir), pareto_table(frames), plot_energy(frames, figure_dir),
                      plot_forecasts(frames, figure_dir), runs_table(frames), provenance_table(frames)]
    return section


def pareto_front(co2, metric, higher_is_better: bool) -> np.ndarray:
    """Which points no other point dominates: as little CO2 or less and a metric as good or better,
    strictly better in one of the two. Points with a missing value are never on the front."""
    co2 = np.asarray(co2, dtype=float)
    score = np.asarray(metric, dtype=float) * (1.0 if higher_is_better else -1.0)  # Higher score is better.
    valid = np.isfinite(co2) & np.isfinite(score)
    on_front = np.zeros(len(co2), dtype=bool)
    for index in np.flatnonzero(valid):
        no_worse = (co2[valid] <= co2[index]) & (score[valid] >= score[index])
        strictly_better = (co2[valid] < co2[index]) | (score[valid] > score[index])
        on_front[index] = not (no_worse & strictly_better).any()
    return on_front


def _panels(count: int, height: float = 3.4):
    columns = min(2, count)
    rows = math.ceil(count / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, height * rows), squeeze=False)
    for axis in axes.flat[count:]:
        axis.set_axis_off()
    return figure, list(axes.flat[:count])


def plottable_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """Successful runs with a metric and a CO2 figure above zero (the x axis is logarithmic)."""
    return frame[(frame["status"] == results.STATUS_OK) & (frame["co2_g"] > 0) & frame["metric_value"].notna()]


def front_runs(frame: pd.DataFrame, metric) -> pd.DataFrame:
    runs = plottable_runs(frame)
    return runs[pareto_front(runs["co2_g"], runs["metric_value"], metric.higher_is_better)].sort_values("co2_g")


def plot_metric_vs_co2(frames: dict[str, pd.DataFrame], figure_dir: Path) -> Figure:
    figure, axes = _panels(len(frames))
    for axis, (name, frame) in zip(axes, frames.items()):
        metric = registry.get(name).metric
        runs = plottable_runs(frame)
        axis.set_title(f"{name}: {metric.name} ({metric.direction} is better)", fontsize=9)
        if runs.empty:
            axis.text(0.5, 0.5, "no run with both CO2 and metric", ha="center", va="center", transform=axis.transAxes)
            continue
        for device, rows in runs.groupby("device"):
            axis.scatter(rows["co2_g"], rows["metric_value"], s=16, alpha=0.7, color=DEVICE_COLOURS.get(device),
                         label=device.upper())
        front = front_runs(frame, metric)
        axis.step(front["co2_g"], front["metric_value"], where="post", color="tab:red", linewidth=1)
        axis.scatter(front["co2_g"], front["metric_value"], s=60, facecolors="none", edgecolors="tab:red",
                     label="Pareto front")
        axis.set_xscale("log")
        _plain_log_ticks(axis.xaxis)
        axis.set_xlabel("g CO2 per run (log)")
        axis.set_ylabel(metric.name)
        axis.grid(alpha=0.3, which="both")
        plots.add_legend(axis, fontsize=7)
    path = figure_dir / "overview_metric_vs_co2.png"
    _save(figure, path)
    return Figure(path, "Headline metric against CO2 per run, Pareto front ringed")


def _plain_log_ticks(axis) -> None:
    """Labels at 1 (2, 5) x 10^k written as plain numbers: matplotlib's default minor labels overlap.
    Call after plotting (it reads the axis' limits)."""
    low, high = axis.get_view_interval()
    subs = (1.0,) if high / low > 1000 else (1.0, 2.0, 5.0)
    axis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=subs))
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def pareto_table(frames: dict[str, pd.DataFrame]) -> Table:
    header = ["experiment", "variant", "device", "data", "metric", "g CO2", "run", "config"]
    rows, classes = [], []
    for name, frame in frames.items():
        metric = registry.get(name).metric
        for row in front_runs(frame, metric).to_dict("records"):
            rows.append([name, row["variant"], row["device"],
                         row["dataset_source"] + (f" {SAMPLE_MARK}" if row["on_sample"] else ""),
                         f"{metric.name} {row['metric_value']:.4g}", f"{row['co2_g']:.3g}", row["run_id"],
                         row["config_diff"] or "defaults"])
            classes.append("sample" if row["on_sample"] else "")
    return Table("Pareto front: the runs no other run beats on both metric and CO2, least CO2 first",
                 header, rows, classes)


def plot_energy(frames: dict[str, pd.DataFrame], figure_dir: Path) -> Figure:
    """Total kWh of every recorded run per topic (failed runs used energy too), CPU and GPU stacked."""
    names = list(frames)
    figure, axis = plt.subplots(figsize=(6.4, 0.6 + 0.5 * len(names)))
    left = np.zeros(len(names))
    for device in ("cpu", "gpu"):
        totals = np.array([frames[name].loc[frames[name]["device"] == device, "energy_kwh"].sum() for name in names])
        if totals.any():
            axis.barh(names, totals, left=left, color=DEVICE_COLOURS[device], label=device.upper())
            left += totals
    for position, name in enumerate(names):
        co2 = frames[name]["co2_g"].sum()
        axis.annotate(f" {left[position]:.2g} kWh, {co2:.2g} g CO2", (left[position], position), va="center",
                      fontsize=8)
    axis.set_xlim(0, max(left.max(), 1e-9) * 1.6)  # Room for the labels.
    axis.set_xlabel("kWh, all recorded runs")
    axis.set_title("Energy per topic", fontsize=9, loc="left")
    # Above the bars, right of the title: inside the axes it would cover a bar's label.
    plots.add_legend(axis, fontsize=7, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2, frameon=False)
    path = figure_dir / "overview_energy.png"
    _save(figure, path)
    return Figure(path, "Total energy of all recorded runs per experiment (CPU and GPU runs stacked)")


def plot_forecasts(frames: dict[str, pd.DataFrame], figure_dir: Path) -> Figure:
    """Forecast against actual time and kWh (y = x is a perfect forecast), and the relative errors."""
    all_rows = pd.concat(list(frames.values()), ignore_index=True)
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    pairs = (("time_total_s", "forecast_time_s", "s"), ("energy_kwh", "forecast_kwh", "kWh"))
    for axis, (actual, forecast, unit) in zip(axes, pairs):
        rows = all_rows[(all_rows[actual] > 0) & (all_rows[forecast] > 0)]
        axis.set_title(f"forecast vs actual ({unit})", fontsize=9)
        if rows.empty:
            axis.text(0.5, 0.5, "no forecast recorded", ha="center", va="center", transform=axis.transAxes)
            continue
        for name, group in rows.groupby("experiment", sort=False):
            axis.scatter(group[actual], group[forecast], s=14, alpha=0.7, label=name)
        low = min(rows[actual].min(), rows[forecast].min())
        high = max(rows[actual].max(), rows[forecast].max())
        axis.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1, label="y = x")
        axis.set_xscale("log")
        axis.set_yscale("log")
        _plain_log_ticks(axis.xaxis)
        _plain_log_ticks(axis.yaxis)
        axis.set_xlabel(f"actual {unit}")
        axis.set_ylabel(f"forecast {unit}")
        axis.grid(alpha=0.3, which="both")
        plots.add_legend(axis, fontsize=7)
    errors = [(100 * all_rows[column].dropna(), label) for column, label in
              (("forecast_time_error", "time"), ("forecast_kwh_error", "kWh"))]
    axis = axes[2]
    axis.set_title("forecast error, (forecast - actual) / actual", fontsize=9)
    if any(len(values) for values, _ in errors):
        for values, label in errors:
            if len(values):
                axis.hist(values, bins=30, alpha=0.6, label=f"{label} (median {values.median():+.0f}%)")
        axis.axvline(0, color="grey", linewidth=1)
        axis.set_xlabel("%")
        axis.set_ylabel("runs")
        axis.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        plots.add_legend(axis, fontsize=7)
    else:
        axis.text(0.5, 0.5, "no forecast recorded", ha="center", va="center", transform=axis.transAxes)
    path = figure_dir / "overview_forecast.png"
    _save(figure, path)
    return Figure(path, "Forecasts (made after the first steady unit) against the actual runs")


def runs_table(frames: dict[str, pd.DataFrame]) -> Table:
    header = ["experiment", "runs", "ok", "failed", "interrupted", f"on sample {SAMPLE_MARK}",
              f"estimated energy {ESTIMATE_MARK}", "first", "last"]
    rows = []
    for name, frame in frames.items():
        status = frame["status"].value_counts()
        rows.append([name, str(len(frame))]
                    + [str(status.get(value, 0)) for value in
                       (results.STATUS_OK, results.STATUS_FAILED, results.STATUS_INTERRUPTED)]
                    + [str(int(frame["on_sample"].sum())), str(int(frame["estimated_energy"].sum())),
                       frame["timestamp_utc"].min(), frame["timestamp_utc"].max()])
    return Table("Runs per experiment", header, rows)


PROVENANCE = [("device_name", "machine (device_name)"), ("host", "host"), ("python_version", "Python"),
              ("tensorflow_version", "TensorFlow"), ("keras_version", "Keras"), ("numpy_version", "NumPy"),
              ("codecarbon_version", "CodeCarbon"), ("dlbench_version", "dlbench"), ("git_commit", "git commit")]
MAX_VALUES = 6  # Most common values shown per provenance field.


def provenance_table(frames: dict[str, pd.DataFrame]) -> Table:
    """Each provenance field's values with how many runs had them, most common first."""
    all_rows = pd.concat(list(frames.values()), ignore_index=True)
    intensity = all_rows["carbon_intensity_g_per_kwh"].map(lambda value: number(value, " {:.1f} g CO2/kWh"))
    fields = [(label, all_rows[column]) for column, label in PROVENANCE]
    fields.append(("carbon country, intensity", all_rows["carbon_country"] + intensity))
    rows = []
    for label, values in fields:
        counts = values.replace("", "(not recorded)").value_counts()
        for value, count in counts.head(MAX_VALUES).items():
            rows.append([label, value, str(count)])
        if len(counts) > MAX_VALUES:
            rows.append([label, f"... {len(counts) - MAX_VALUES} other values", str(counts.iloc[MAX_VALUES:].sum())])
    return Table("Provenance: where and with what the runs ran", ["field", "value", "runs"], rows)


# --- HTML -----------------------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; padding: 0 0.8rem 2rem;
       line-height: 1.45; color: #222; }
main { max-width: 1100px; margin: 0 auto; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.3rem; border-bottom: 1px solid #ccc; margin-top: 2.2rem; }
h3 { font-size: 1.05rem; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; margin: 0.5rem 0 1rem; }
table { border-collapse: collapse; font-size: 0.82rem; white-space: nowrap; }
th, td { padding: 0.25rem 0.55rem; border-bottom: 1px solid #e2e2e2; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
tr.sample td { background: #fff4d6; }
tr.contended td { background: #fde4e1; }
.legend, .note { font-size: 0.88rem; color: #444; }
figure { margin: 1rem 0; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.82rem; color: #555; }
@media print {
  .scroll { overflow: visible; }
  table { white-space: normal; font-size: 7.5pt; }
  figure, table { break-inside: avoid; }
  nav { display: none; }
}
"""


def render_html(built: Report) -> str:
    parts = ['<!DOCTYPE html>', '<html lang="en">', '<head>', '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             '<title>dlbench report</title>', f'<style>{STYLE}</style>', '</head>', '<body>', '<main>',
             '<h1>dlbench report</h1>', f'<p>{_escape(built.summary)}</p>', _html_contents(built),
             f'<p class="legend">{_escape(FLAGS_LEGEND)}.<br>{_escape(SAMPLE_LEGEND)}<br>{_escape(ESTIMATE_LEGEND)}<br>'
             f'{_escape(NOT_REACHED)}: the run has a target but never reached it; {_escape(NO_TARGET)}: '
             f'no target recorded (rows imported from dlbench 0.1).</p>']
    parts += [_html_section(section) for section in built.experiments]
    if built.not_run:
        parts += ['<section id="not-run">', '<h2>Not run yet</h2>',
                  f'<p>{_escape(", ".join(built.not_run))}: not run yet (no run record).</p>',
                  '</section>']
    parts += [_html_section(built.overview), '</main>', '</body>', '</html>', '']
    return "\n".join(parts)


def _escape(text) -> str:
    return html.escape(str(text), quote=True)


def _html_contents(built: Report) -> str:
    links = [(section.name, section.heading) for section in built.experiments]
    links += [("not-run", "Not run yet: " + ", ".join(built.not_run))] if built.not_run else []
    links.append((built.overview.name, built.overview.heading))
    items = "".join(f'<li><a href="#{_escape(anchor)}">{_escape(text)}</a></li>' for anchor, text in links)
    return f'<nav><ul>{items}</ul></nav>'


def _html_section(section: Section) -> str:
    parts = [f'<section id="{_escape(section.name)}">', f'<h2>{_escape(section.heading)}</h2>']
    parts += [f'<p class="note">{_escape(note)}</p>' for note in section.notes]
    parts += [_html_table(block) if isinstance(block, Table) else _html_figure(block) for block in section.blocks]
    parts.append('</section>')
    return "\n".join(parts)


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{_escape(cell)}</th>" for cell in table.header)
    classes = table.row_classes or [""] * len(table.rows)
    body = "\n".join(
        (f'<tr class="{_escape(css)}">' if css else "<tr>") + "".join(f"<td>{_escape(cell)}</td>" for cell in row)
        + "</tr>" for row, css in zip(table.rows, classes))
    return (f'<h3>{_escape(table.title)}</h3>\n<div class="scroll"><table>\n<thead><tr>{head}</tr></thead>\n'
            f'<tbody>\n{body}\n</tbody>\n</table></div>')


def _html_figure(figure: Figure) -> str:
    uri = data_uri(figure.path)
    if uri is None:
        return (f'<p class="note">{_escape(figure.caption)}: {_escape(figure.path)} not embedded '
                f'(unreadable, or over {EMBED_LIMIT_BYTES / 1e6:.1f} MB).</p>')
    return (f'<figure><img src="{uri}" alt="{_escape(figure.caption)}" loading="lazy">'
            f'<figcaption>{_escape(figure.caption)}</figcaption></figure>')


def data_uri(path: Path) -> str | None:
    """The image as a data URI: PNGs scaled to EMBED_WIDTH at most and reduced to 256 colours (plots
    have few colours, so this is several times smaller and looks the same); GIFs as they are (they
    may be animations). None if still over EMBED_LIMIT_BYTES, or unreadable: one bad file in
    results/plots/ is a note in the page, not a failed report."""
    try:
        if path.suffix.lower() == ".gif":
            data, kind = path.read_bytes(), "gif"
        else:
            data, kind = compact_png(path), "png"
    except (OSError, ValueError):  # PIL.UnidentifiedImageError is an OSError.
        return None
    if len(data) > EMBED_LIMIT_BYTES:
        return None
    return f"data:image/{kind};base64,{base64.b64encode(data).decode('ascii')}"


def compact_png(path: Path) -> bytes:
    with Image.open(path) as image:
        image = image.convert("RGBA")
    if image.width > EMBED_WIDTH:
        image = image.resize((EMBED_WIDTH, round(image.height * EMBED_WIDTH / image.width)), Image.Resampling.LANCZOS)
    flat = Image.new("RGB", image.size, "white")
    flat.paste(image, mask=image.getchannel("A"))  # Transparent parts on white, as the page shows them.
    palette = flat.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG")  # optimize=True: 2x slower, 10 % smaller.
    return min(buffer.getvalue(), path.read_bytes(), key=len)


# --- Markdown -------------------------------------------------------------------------------------

def render_markdown(built: Report, results_dir: Path) -> str:
    lines = ["# dlbench report", "", built.summary, "",
             f"{FLAGS_LEGEND}.  ", f"{SAMPLE_LEGEND}.  ", f"{ESTIMATE_LEGEND}.  ",
             f"{NOT_REACHED}: the run has a target but never reached it; {NO_TARGET}: no target recorded "
             f"(rows imported from dlbench 0.1).", "",
             "`results/report.html` is the same report as one self-contained page (figures embedded).", ""]
    for section in built.experiments:
        lines += _markdown_section(section, results_dir)
    if built.not_run:
        lines += ["## Not run yet", "", f"{', '.join(built.not_run)}: not run yet (no run record).", ""]
    lines += _markdown_section(built.overview, results_dir)
    return "\n".join(lines)


def _markdown_section(section: Section, results_dir: Path) -> list[str]:
    lines = [f"## {section.heading}", ""]
    for note in section.notes:
        lines += [note, ""]
    for block in section.blocks:
        if isinstance(block, Table):
            lines += [f"### {block.title}", "", _markdown_row(block.header),
                      "|" + "---|" * len(block.header)] + [_markdown_row(row) for row in block.rows] + [""]
        else:
            # Relative to where REPORT.md is written (artifacts stay in the results directory).
            link = Path(os.path.relpath(block.path, results_dir)).as_posix().replace(" ", "%20")
            caption = block.caption.replace("[", "(").replace("]", ")")
            lines += [f"![{caption}]({link})", ""]
    return lines


def _markdown_row(cells: list[str]) -> str:
    return "| " + " | ".join(str(cell).replace("|", "\\|").replace("\n", " ") for cell in cells) + " |"
