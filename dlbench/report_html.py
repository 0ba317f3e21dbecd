"""The whole picture in one page: ``dlbench report`` writes ``report.html`` and ``REPORT.md``.

Both are made from the run records only (never from live objects), the story first:

- a summary: one generated line per topic of the registry answering it with numbers from the records
  (the best variant on the headline metric, the cheapest one as good within 1 % or else the cheapest
  one, and by how much less CO2 and time), and CPU vs GPU once for all topics;
- per topic: a findings paragraph (best, fastest, cheapest, the Pareto front and the Pareto choice,
  each study's best and worst point), the comparison table of its plain runs per machine (the same
  comparison as `dlbench compare`, with the topic's own metrics) and one per study (the keys the study
  varies first), then its figures: validation curves, metric against CO2 and summary bars (one panel
  per image), the plots of ``results/plots/``, and every image of the latest successful full-data (or
  generated-data) run per variant and device; a numbered series (a GAN's grid per epoch) shows its
  latest member and folds the earlier ones under a "more figures" fold that says how many;
- across topics: the Pareto front, energy per topic, forecasts against actual runs, provenance.

The HTML is one self-contained file: every image a base64 data URI (shrunk to a palette PNG), no script,
no network. Images scale to the page width and open full size on a click (a CSS ``:target`` overlay),
figure grids become one column on a phone, tables scroll sideways, and it prints. REPORT.md links the
PNG files instead (the report's own figures are written to ``<out>/plots/report/``). Nothing here
imports TensorFlow or Keras.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import html
import io
import itertools
import json
import os
import re
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
FIGURE_DIR = Path("plots") / "report"  # The report's own figures, relative to the output directory.
DPI = 90  # Small figures: the page embeds every one of them.
PANEL_SIZE = (5.2, 3.6)  # Inches of one panel: readable at a phone's width as well as in a two-column grid.
EMBED_WIDTH = 1400  # Wider images are scaled down before embedding (the page is narrower than that).
EMBED_LIMIT_BYTES = 1_500_000  # An image still larger than this is linked from REPORT.md, not embedded.
WIDE_RATIO = 1.9  # An image this many times wider than high spans the whole width of a figure grid.
MAX_CURVES = 12  # Runs drawn in one curves figure (its caption says when some are left out).
NEAR_BEST = 0.01  # "As good as the best": within 1 % of the best headline value (the Pareto choice).
SAME_RATIO = 1.1  # Costs closer than this factor read "about the same".

NOT_REACHED = "not reached"
NO_TARGET = "n/a"  # Rows imported from dlbench 0.1 (or a topic without a target) have none.
SAMPLE_MARK = "†"
ESTIMATE_MARK = "≈"
SAMPLE_LEGEND = (f"{SAMPLE_MARK} sample data: ran on the small sample shipped with dlbench, not the full "
                 f"dataset; its metric is not comparable with full-data rows")
# CodeCarbon always estimates RAM from the memory size (and the CPU from load x TDP where RAPL is
# unreadable), so this flag is the rule today; each table's note says which parts were estimated.
ESTIMATE_LEGEND = (f"{ESTIMATE_MARK} after a kWh figure: part of that energy is an estimate, not a measurement "
                   f"(the table's note says which part: RAM from the memory size, CPU from load x TDP without RAPL)")
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
    note: str = ""  # A footnote under the table (how its energy was obtained).


@dataclasses.dataclass
class Figure:
    path: Path  # The image file on disk.
    caption: str


@dataclasses.dataclass
class Gallery:
    """Figures side by side on a wide page, one below the other on a phone."""
    figures: list[Figure]
    title: str = ""
    fold: str = ""  # When set: the figures sit behind a "more figures" fold with this label.


@dataclasses.dataclass
class Section:
    name: str
    heading: str
    notes: list[str] = dataclasses.field(default_factory=list)
    blocks: list[Table | Gallery] = dataclasses.field(default_factory=list)  # In the order shown.


@dataclasses.dataclass
class SummaryLine:
    topic: str
    text: str
    has_section: bool  # False for a topic not run yet (its line links to the "not run yet" list).


@dataclasses.dataclass
class Report:
    made_from: str
    summary: list[SummaryLine]  # One line per topic of the registry, in the registry's order.
    cpu_gpu: str  # CPU vs GPU, once for all topics.
    experiments: list[Section]
    not_run: list[str]  # Experiments of the registry without a record.
    overview: Section


@dataclasses.dataclass
class Standing:
    """A topic's variants compared on like terms: one machine, one device, one dataset, the full (or
    generated) data when there is any, and each variant's default configuration (or, where a variant
    never ran with it, its most-run configuration)."""
    machine: str
    device: str
    dataset: str
    rows: pd.DataFrame  # One report.compare row per variant.


@dataclasses.dataclass
class Verdict:
    """What a standing says: the best variant, the cheapest (CO2), the fastest (per steady unit), the
    Pareto front on metric and CO2 (cheapest first) and the Pareto choice: the cheapest variant of the
    front within NEAR_BEST of the best. Each is a compare row as a dict; None when no row qualifies."""
    best: dict | None
    cheapest: dict | None
    fastest: dict | None
    front: list[dict]
    choice: dict | None


@dataclasses.dataclass
class Comparisons:
    """A topic's comparisons (report.compare), computed once for its summary line and its section."""
    plain: pd.DataFrame | None  # The runs outside any study; None when none finished.
    studies: dict[str, pd.DataFrame]  # Study name -> the comparison of its finished runs.
    standings: list[Standing]  # Of the plain runs, largest first (one per dataset).


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
    compared = {name: comparisons(results_dir, name, frame) for name, frame in frames_with_rows.items()}
    built = Report(
        made_from=made_from_line(frames_with_rows, results_dir),
        summary=[summary_line(name, frames[name], compared.get(name)) for name in registry.EXPERIMENTS],
        cpu_gpu=cpu_gpu_line(frames_with_rows),
        experiments=[experiment_section(results_dir, name, frame, compared[name], figure_dir)
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


def made_from_line(frames: dict[str, pd.DataFrame], results_dir: Path) -> str:
    count = sum(len(frame) for frame in frames.values())
    latest = max(frame["timestamp_utc"].max() for frame in frames.values())
    # The latest record's time, not the time of writing: regenerating the same records gives the same page.
    return (f"Made from {count} run records of {len(frames)} experiment(s) in {results_dir / 'runs'}, "
            f"the latest from {latest}.")


# --- comparing the variants -----------------------------------------------------------------------

def comparisons(results_dir: Path, name: str, frame: pd.DataFrame) -> Comparisons:
    """The comparison of the plain runs and of each study's runs, and the standings of the plain ones."""
    ok = frame["status"] == results.STATUS_OK
    plain_rows = frame[frame["study"] == ""]
    plain = (report.compare(results_dir, name, frame=plain_rows) if (ok & (frame["study"] == "")).any()
             else None)
    by_study = {study: report.compare(results_dir, name, frame=frame[frame["study"] == study])
                for study in dict.fromkeys(frame.loc[ok & (frame["study"] != ""), "study"])}
    return Comparisons(plain, by_study, standings(plain, plain_rows))


def standings(table: pd.DataFrame | None, frame: pd.DataFrame) -> list[Standing]:
    """The variants on like terms (see Standing): the machine and device where most variants ran (then
    most runs, then the latest run), split by dataset, since a negative log-likelihood on two moons and
    one on two bumps are no comparison. Largest standing first."""
    if table is None or table.empty:
        return []
    candidates = table[table["config_diff"] == ""]
    if candidates.empty:
        candidates = table
    if (candidates["dataset_source"] != "sample").any():
        candidates = candidates[candidates["dataset_source"] != "sample"]
    finished = frame[frame["status"] == results.STATUS_OK]
    datasets = finished.groupby("variant")["dataset"].last()  # Records are read oldest first.
    candidates = candidates.assign(dataset=candidates["variant"].map(datasets).fillna(""))
    coverage = candidates.groupby(["machine", "device"], sort=False).agg(
        variants=("variant", "nunique"), runs=("runs", "sum")).reset_index()
    coverage["latest"] = coverage["machine"].map(finished.groupby("machine")["timestamp_utc"].max())
    chosen_one = coverage.sort_values(["variants", "runs", "latest"], ascending=False, kind="stable").iloc[0]
    machine_label, device = chosen_one["machine"], chosen_one["device"]
    chosen = candidates[(candidates["machine"] == machine_label) & (candidates["device"] == device)]
    # One row per variant: its most-run configuration (the defaults, whenever they ran).
    chosen = chosen.sort_values("runs", ascending=False, kind="stable").drop_duplicates("variant")
    found = [Standing(machine_label, device, dataset, rows.reset_index(drop=True))
             for dataset, rows in chosen.groupby("dataset", sort=False)]
    return sorted(found, key=lambda standing: -len(standing.rows))


def judge(rows: pd.DataFrame, metric) -> Verdict:
    scored = rows[rows["metric_median"].notna()].to_dict("records")
    if not scored:
        return Verdict(None, None, None, [], None)
    sign = 1.0 if metric.higher_is_better else -1.0
    best = max(scored, key=lambda row: sign * row["metric_median"])
    costed = [row for row in scored if pd.notna(row["co2_g"])]
    timed = [row for row in scored if pd.notna(row["steady_unit_s"])]
    on_front = pareto_front([row["co2_g"] for row in scored], [row["metric_median"] for row in scored],
                            metric.higher_is_better)
    front = sorted((row for row, kept in zip(scored, on_front) if kept), key=lambda row: row["co2_g"])
    near = [row for row in front if abs(row["metric_median"] - best["metric_median"])
            <= NEAR_BEST * abs(best["metric_median"])]
    return Verdict(best=best, cheapest=min(costed, key=lambda row: row["co2_g"]) if costed else None,
                   fastest=min(timed, key=lambda row: row["steady_unit_s"]) if timed else None,
                   front=front, choice=near[0] if near else best)


def metric_words(name: str) -> str:
    return name.replace("_", " ")


def value_text(value, name: str) -> str:
    """A metric value as the course writes it: accuracies in percent, the rest with 4 significant digits."""
    if value is None or pd.isna(value):
        return "n/a"
    return f"{100 * value:.1f} %" if "accuracy" in name else f"{value:.4g}"


def co2_text(value) -> str:
    return "unknown CO2" if value is None or pd.isna(value) else f"{value:.2g} g CO2"


def ratio_words(reference, value, what: str) -> str:
    """'4.2× less CO2' (value below the reference), '1.5× more ...', or 'about the same ...'."""
    if any(number is None or pd.isna(number) or number <= 0 for number in (reference, value)):
        return ""
    ratio = reference / value
    if ratio >= SAME_RATIO:
        return f"{ratio:.1f}× less {what}"
    if ratio <= 1 / SAME_RATIO:
        return f"{1 / ratio:.1f}× more {what}"
    return f"about the same {what}"


def shown_values(row: dict, declaration, count: int = 2) -> str:
    """The first ``count`` of the topic's own metrics the row has, as ' (iou 0.91, average precision 0.99)'."""
    values = [f"{metric_words(name)} {value_text(row.get(name), name)}" for name in declaration.shown_metrics
              if row.get(name) is not None and pd.notna(row.get(name))][:count]
    return f" ({', '.join(values)})" if values else ""


def standing_where(standing: Standing) -> str:
    """Where a standing was measured: machine, device, data, runs per variant."""
    runs = sorted(set(standing.rows["runs"]))
    counted = f"n={runs[0]} each" if len(runs) == 1 else f"n={runs[0]}–{runs[-1]} per variant"
    sources = ", ".join(f"{source} data" + (f" {SAMPLE_MARK}" if source == "sample" else "")
                        for source in dict.fromkeys(standing.rows["dataset_source"]))
    configs = "" if (standing.rows["config_diff"] == "").all() else ", some not with their defaults"
    return f"{standing.machine}, {standing.device.upper()}, {sources}, {counted}{configs}"


def standing_clause(standing: Standing, declaration, with_dataset: bool, with_source: bool = False) -> str:
    """One standing's answer: the best variant, then the Pareto choice when it is another variant (as
    good within 1 %, for less), else the cheapest one, with what it saves. ``with_dataset`` and
    ``with_source`` name the dataset and its source, for a topic compared on several."""
    metric, unit = declaration.metric, declaration.progress_unit
    verdict = judge(standing.rows, metric)
    source = f" ({', '.join(dict.fromkeys(standing.rows['dataset_source']))} data)" if with_source else ""
    prefix = f"on {standing.dataset}{source}, " if with_dataset and standing.dataset else ""
    words = metric_words(metric.name)
    best = verdict.best
    if best is None:
        return f"{prefix}no {words} recorded"
    best_text = f"{best['variant']} {value_text(best['metric_median'], metric.name)}"
    if len(standing.rows) == 1:
        return f"{prefix}{words}: {best_text}{shown_values(best, declaration)} at {co2_text(best['co2_g'])} (one variant so far)"
    text = f"{prefix}best {words}: {best_text}{shown_values(best, declaration)} at {co2_text(best['co2_g'])}"
    other, as_good = verdict.choice, True
    if other is None or other["variant"] == best["variant"]:
        other, as_good = verdict.cheapest, False
    if other is not None and other["variant"] == best["variant"]:
        text += f"; also the cheapest of {_count(len(standing.rows), 'variant')}"
    elif other is not None:
        savings = [part for part in (ratio_words(best["co2_g"], other["co2_g"], "CO2"),
                                     ratio_words(best["steady_unit_s"], other["steady_unit_s"], f"time per {unit}"))
                   if part]
        text += (f"; {other['variant']} {value_text(other['metric_median'], metric.name)}"
                 + (" (as good, within 1 %)" if as_good else " (the cheapest)")
                 + (f" with {' and '.join(savings)}" if savings else ""))
    return text


def summary_line(name: str, frame: pd.DataFrame | None, compared: Comparisons | None) -> SummaryLine:
    """One topic's line of the summary, generated from its records."""
    if frame is None:
        return SummaryLine(name, "not run yet (no run record).", has_section=False)
    finished = frame["status"] == results.STATUS_OK
    if not finished.any():
        counts = ", ".join(_count(count, f"{status} run") for status, count in frame["status"].value_counts().items())
        return SummaryLine(name, f"no successful run yet ({counts}).", has_section=True)
    if not compared.standings:
        studied = ", ".join(compared.studies)
        return SummaryLine(name, f"only study runs so far ({studied}): see its studies.", has_section=True)
    declaration = registry.get(name)
    several = len(compared.standings) > 1
    sources = {tuple(dict.fromkeys(standing.rows["dataset_source"])) for standing in compared.standings}
    clauses = [standing_clause(standing, declaration, several, with_source=len(sources) > 1)
               for standing in compared.standings]
    # Where: the first standing's machine and device are every standing's; data and runs over them all.
    every_row = dataclasses.replace(compared.standings[0],
                                    rows=pd.concat([standing.rows for standing in compared.standings]))
    return SummaryLine(name, "; ".join(clauses) + f" — {standing_where(every_row)}.", has_section=True)


def cpu_gpu_line(frames: dict[str, pd.DataFrame]) -> str:
    """What the GPU buys, once for all topics: the speed-ups where a configuration ran on both devices."""
    found = []
    for name, frame in frames.items():
        unit = registry.get(name).progress_unit
        for row in speedups(frame).to_dict("records"):
            found.append(f"{name} {row['variant']}" + (f" ({row['config_diff']})" if row["config_diff"] else "")
                         + f" {number(row['steady_speedup'], '{:.1f}×')} per {unit}, "
                         + f"{number(row['total_speedup'], '{:.1f}×')} the whole run")
    if found:
        return ("CPU vs GPU (CPU time / GPU time on the same machine, variant and configuration; above 1× the "
                "GPU is faster): " + "; ".join(found) + ".")
    finished = pd.concat([frame[frame["status"] == results.STATUS_OK] for frame in frames.values()])
    gpu_runs = int((finished["device"] == "gpu").sum())
    if gpu_runs:
        return (f"CPU vs GPU: {_count(gpu_runs, 'GPU run')} recorded, but no configuration has run on both the "
                f"CPU and the GPU of one machine yet.")
    machines = finished["machine"].nunique()
    return (f"CPU vs GPU: not measured yet. All {len(finished)} successful runs ran on CPUs "
            f"({_count(machines, 'machine')}); no GPU run is recorded.")


# --- one experiment -------------------------------------------------------------------------------

def experiment_section(results_dir: Path, name: str, frame: pd.DataFrame, compared: Comparisons,
                       figure_dir: Path) -> Section:
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
        section.notes.append(f"Not in the tables: {counts} (their records keep the reason); their figures are "
                             f"not shown.")
    if not (frame["status"] == results.STATUS_OK).any():
        section.notes.append("No successful run yet.")
        return section
    section.notes += findings(declaration, compared, frame)
    if compared.plain is not None:
        if report.machine_note(compared.plain):
            section.notes.append(report.machine_note(compared.plain).capitalize() + ".")
        for machine_label, rows in compared.plain.groupby("machine", sort=False):
            section.blocks.append(comparison_table(rows, declaration, f"machine: {machine_label}"))
    pairs = speedups(frame)
    if not pairs.empty:
        section.blocks.append(speedup_table(pairs, declaration.progress_unit))
    own = plot_curves(results_dir, name, frame, metric, figure_dir)
    own += [figure for figure in [plot_metric_vs_co2(name, frame, metric, figure_dir)] if figure]
    own += summary_figures(results_dir, name, frame, figure_dir)
    section.blocks.append(Gallery(own, title="Curves, metric against CO2, latest run per variant"))
    existing = existing_plots(results_dir, name)
    for study, table in compared.studies.items():
        section.blocks += study_tables(study, table, frame, declaration)
        if existing.get(study):
            section.blocks.append(Gallery(existing.pop(study), title=f"Study {study} (plotted by dlbench study)"))
    for study, figures in existing.items():  # Plots of studies whose runs are no longer recorded, or other plots.
        if study not in (name, "curves per variant"):
            section.blocks.append(Gallery(figures, title=f"Study {study} (plotted by dlbench study)"))
    if existing.get(name):
        section.blocks.append(Gallery(existing[name], title="Other plots in results/plots"))
    if existing.get("curves per variant"):
        curves = existing["curves per variant"]
        section.blocks.append(Gallery(curves, fold=f"Training curves per variant: {_count(len(curves), 'figure')} "
                                                    f"(dlbench plot)"))
    shown, folded = artifact_figures(results_dir, frame)
    if shown:
        section.blocks.append(Gallery(shown, title="Figures of the latest successful full-data (or generated-data) "
                                                   "run per variant and device"))
    if folded:
        section.blocks.append(Gallery(folded, fold=f"{_count(len(folded), 'more figure')} of these runs (the earlier "
                                                   f"members of numbered series)"))
    return section


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _reached_sign(metric) -> str:
    return "≥" if metric.higher_is_better else "≤"


def findings(declaration, compared: Comparisons, frame: pd.DataFrame) -> list[str]:
    """The topic's findings in a few sentences: per standing the best, fastest and cheapest variant, the
    Pareto front and choice; per study its best and worst point."""
    metric, unit = declaration.metric, declaration.progress_unit
    paragraphs = []
    for standing in compared.standings:
        verdict = judge(standing.rows, metric)
        if verdict.best is None:
            continue
        on = f" on {standing.dataset}" if len(compared.standings) > 1 and standing.dataset else ""
        sentences = [f"Findings{on} ({standing_where(standing)}): best {metric.name}: "
                     + _named(verdict.best, value_text(verdict.best["metric_median"], metric.name))]
        if verdict.fastest is not None:
            sentences.append(f"fastest per {unit}: " + _named(verdict.fastest, f"{verdict.fastest['steady_unit_s']:.3g} s"))
        if verdict.cheapest is not None:
            sentences.append("cheapest: " + _named(verdict.cheapest, co2_text(verdict.cheapest["co2_g"])))
        if len(verdict.front) > 1:
            sentences.append("Pareto front on metric and CO2, cheapest first: " + " → ".join(
                _named(row, f"{value_text(row['metric_median'], metric.name)}, {co2_text(row['co2_g'])}")
                for row in verdict.front))
        if verdict.choice is not None and len(standing.rows) > 1:
            sentences.append(f"the Pareto choice (the cheapest within {NEAR_BEST * 100:g} % of the best): "
                             f"{verdict.choice['variant']}")
        paragraphs.append("; ".join(sentences) + ".")
    for study, table in compared.studies.items():
        paragraphs.append(study_finding(study, table, frame, declaration))
    return paragraphs


def _named(row: dict, text: str) -> str:
    return f"{row['variant']} ({text})"


def study_finding(study: str, table: pd.DataFrame, frame: pd.DataFrame, declaration) -> str:
    """The study's best and worst point on the headline (or, where the study's runs have no headline
    value, the range of the topic's first metric they have)."""
    labels = point_labels(study, table, frame)
    metric = declaration.metric
    column = "metric_median" if table["metric_median"].notna().any() else next(
        (name for name in declaration.shown_metrics if name in table and table[name].notna().any()), None)
    points = _count(len(table), "point")
    if column is None:
        return f"Study {study}: {points}, no metric recorded."
    values = table[column]
    name = metric.name if column == "metric_median" else column
    low, high = values.idxmin(), values.idxmax()
    if column == "metric_median":
        best, worst = (high, low) if metric.higher_is_better else (low, high)
        return (f"Study {study} ({points}): best {name} {value_text(values[best], name)} at {labels[best]}, "
                f"worst {value_text(values[worst], name)} at {labels[worst]}.")
    return (f"Study {study} ({points}): {metric_words(name)} from {value_text(values[low], name)} at {labels[low]} "
            f"to {value_text(values[high], name)} at {labels[high]}, median {value_text(values.median(), name)}.")


def comparison_table(table: pd.DataFrame, declaration, title: str) -> Table:
    """One machine's rows of report.compare, with the cells `dlbench compare` and the README show, and the
    topic's own metrics; the configuration beside the headline when some row departs from the defaults."""
    metric, unit = declaration.metric, declaration.progress_unit
    shown = [name for name in declaration.shown_metrics if name in table and table[name].notna().any()]
    with_config = (table["config_diff"] != "").any()
    with_target = metric.target is not None or bool(table["runs_with_target"].any())
    header = (["variant", "device", "data", "n", f"{metric.name} median [min–max] ({metric.direction} is better)"]
              + (["config"] if with_config else []) + shown
              + (["target", "time to target", "energy to target"] if with_target else [])
              + [f"s/{unit} steady [min–max]", "total s", "kWh", "g CO2", "throughput", "flags"])
    rows, classes = [], []
    for row in table.to_dict("records"):
        sample = row["dataset_source"] == "sample"
        cells = [row["variant"], row["device"], row["dataset_source"] + (f" {SAMPLE_MARK}" if sample else ""),
                 report.runs_cell(row), report.metric_cell(row)]
        cells += [row["config_diff"] or "defaults"] if with_config else []
        cells += [number(row[name], "{:.4g}") for name in shown]
        if with_target:
            cells += [NO_TARGET if not row["runs_with_target"] else f"{_reached_sign(metric)} {row['target']:g}",
                      to_target_text(row, "time_to_target_s", "{:.1f} s"),
                      to_target_text(row, "energy_to_target_kwh", "{:.2g} kWh")]
        cells += [report.steady_cell(row), number(row["total_s"], "{:.1f}"), energy_cell(row),
                  number(row["co2_g"], "{:.2g}"), throughput_text(row["throughput"], row["throughput_unit"]),
                  report.flags_cell(row)]
        rows.append(cells)
        classes.append(row_class(row))
    return Table(title, header, rows, classes, note=energy_note(table))


def row_class(row: dict) -> str:
    return " ".join(name for name, flagged in (("sample", row["dataset_source"] == "sample"),
                                               ("estimate", row["estimated_energy"]),
                                               ("contended", row["contended"])) if flagged)


def energy_cell(row: dict) -> str:
    text = number(row["energy_kwh"], "{:.2g}")
    return f"{text} {ESTIMATE_MARK}" if text and row["estimated_energy"] else text


def energy_note(table: pd.DataFrame) -> str:
    """How the estimated energy figures of a table were obtained, once under the table."""
    estimated = table[table["estimated_energy"]]
    if estimated.empty:
        return ""
    share = "every row" if len(estimated) == len(table) else f"{len(estimated)} of {len(table)} rows"
    methods = "; ".join(f"“{method}”" for method in dict.fromkeys(estimated["energy_method"]))
    return f"{ESTIMATE_MARK} estimated energy in {share}: {methods}."


def point_labels(study: str, table: pd.DataFrame, frame: pd.DataFrame) -> pd.Series:
    """Each study row's label: the keys the study varies (and the variant, if it varies), e.g.
    'learning_rate=0.1 (numpy)'."""
    configs, varying, _ = study_configs(study, table, frame)
    several_variants = table["variant"].nunique() > 1
    labels = []
    for index, row in table.iterrows():
        text = " ".join(f"{key}={config_value(configs[index].get(key))}" for key in varying) or "defaults"
        labels.append(text + (f" ({row['variant']})" if several_variants else ""))
    return pd.Series(labels, index=table.index)


def study_configs(study: str, table: pd.DataFrame, frame: pd.DataFrame) -> tuple[dict, list[str], list[str]]:
    """For each row of a study's comparison: its configuration (from a run of that row); the keys whose
    values differ between the rows, and the overridden keys every point shares."""
    runs = frame[(frame["study"] == study) & (frame["status"] == results.STATUS_OK)]
    by_group = {tuple(record[key] for key in report.GROUP_KEYS): record["config"]
                for record in runs[report.GROUP_KEYS + ["config"]].to_dict("records")}
    configs = {}
    for index, row in table.iterrows():
        text = by_group.get(tuple(row[key] for key in report.GROUP_KEYS), "")
        configs[index] = json.loads(text) if text.startswith("{") else {}
    keys = list(dict.fromkeys(key for config in configs.values() for key in config))
    values = {key: {config_value(config.get(key)) for config in configs.values()} for key in keys}
    varying = [key for key in keys if len(values[key]) > 1]
    overridden = {key for text in table["config_diff"] for key in _diff_keys(text)}
    shared = [key for key in keys if key in overridden and key not in varying]
    return configs, varying, shared


def _diff_keys(config_diff: str) -> list[str]:
    return re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", config_diff)


def config_value(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def study_tables(study: str, table: pd.DataFrame, frame: pd.DataFrame, declaration) -> list[Table]:
    """A study's comparison, one table per machine: the keys it varies first, in the study's point order,
    then the metrics that have values, time, energy and CO2."""
    metric, unit = declaration.metric, declaration.progress_unit
    configs, varying, shared = study_configs(study, table, frame)
    try:
        declared = studies.get(study)
        description = declared.description
        order = {(point.variant, point.label): position for position, point in enumerate(declared.points)}
    except studies.UnknownStudyError:  # A study renamed or removed since its runs: its rows still show.
        description, order = "", {}
    point_of = frame[frame["study"] == study].groupby(report.GROUP_KEYS)["study_point"].last()
    positions = [order.get((row["variant"], point_of.get(tuple(row[key] for key in report.GROUP_KEYS), "")), len(order))
                 for _, row in table.iterrows()]
    table = table.assign(_position=positions).sort_values("_position", kind="stable")
    columns_shown = [name for name in declaration.shown_metrics if name in table and table[name].notna().any()]
    with_headline = table["metric_median"].notna().any()
    with_variant, with_device = table["variant"].nunique() > 1, table["device"].nunique() > 1
    header = (varying + (["variant"] if with_variant else []) + (["device"] if with_device else []) + ["n"]
              + ([f"{metric.name} median [min–max] ({metric.direction} is better)"] if with_headline else [])
              + columns_shown + [f"s/{unit} steady [min–max]", "total s", "kWh", "g CO2", "flags"])
    shared_text = " ".join(f"{key}={config_value(next(iter(configs.values())).get(key))}" for key in shared)
    tables = []
    for machine_label, rows in table.groupby("machine", sort=False):
        cells, classes = [], []
        for index, row in rows.iterrows():
            line = [config_value(configs[index].get(key)) for key in varying]
            line += [row["variant"]] if with_variant else []
            line += [row["device"]] if with_device else []
            line += [report.runs_cell(row)] + ([report.metric_cell(row)] if with_headline else [])
            line += [number(row[name], "{:.4g}") for name in columns_shown]
            line += [report.steady_cell(row), number(row["total_s"], "{:.1f}"), energy_cell(row),
                     number(row["co2_g"], "{:.2g}"), report.flags_cell(row)]
            cells.append(line)
            classes.append(row_class(row))
        note = " ".join(part for part in ((f"Every point: {shared_text}." if shared_text else ""),
                                          energy_note(rows)) if part)
        title = f"Study {study}" + (f": {description}" if description else "") + f" (on {machine_label})"
        tables.append(Table(title, header, cells, classes, note=note))
    return tables


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


# --- figures of one experiment --------------------------------------------------------------------

def plot_curves(results_dir: Path, name: str, frame: pd.DataFrame, metric, figure_dir: Path) -> list[Figure]:
    """Validation curves of the latest successful run per (variant, device), from the history files: one
    figure per logged column (the headline's log first), so that each is readable at a phone's width."""
    drawn = []
    for _, row in runs_to_draw(frame).iterrows():
        history = report.history(results_dir, row)
        unit = None if history is None else next((c for c in ("epoch", "episode", "step") if c in history), None)
        if unit is not None:
            drawn.append((row, history, unit))
    if not drawn:
        return []
    left_out = f" (the first {MAX_CURVES} of {len(drawn)})" if len(drawn) > MAX_CURVES else ""
    figures = []
    for column in curve_columns([history for _, history, _ in drawn], metric):
        figure, axis = plt.subplots(figsize=PANEL_SIZE)
        for row, history, unit in drawn[:MAX_CURVES]:
            if column in history:
                label = f"{row['variant']} / {row['device']}" + (" (sample)" if row["on_sample"] else "")
                axis.plot(history[unit], history[column], marker=".", label=label)
        if column == metric.validation_key and metric.target is not None:
            axis.axhline(metric.target, color="grey", linestyle=":", label=f"target {metric.target:g}")
        axis.set_xlabel(drawn[0][2])
        axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        axis.set_title(f"{name}: {column}", fontsize=9)
        axis.grid(alpha=0.3)
        plots.add_legend(axis, fontsize=7)
        path = figure_dir / f"{name}_curves_{_file_part(column)}.png"
        _save(figure, path)
        figures.append(Figure(path, f"{name}: {column} per {drawn[0][2]}, latest successful run per variant and "
                                    f"device{left_out} (history files)"))
    return figures


def _file_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def runs_to_draw(frame: pd.DataFrame) -> pd.DataFrame:
    """The latest successful run per (variant, device), preferring runs outside a study and on the full
    (or generated) data, so that a study's extreme point or a quick sample check does not stand for the
    variant."""
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
    return wanted or [c for c in logged if c not in ("epoch", "episode", "step", "seconds", "items", "count")][:2]


def _save(figure, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)


def plot_metric_vs_co2(name: str, frame: pd.DataFrame, metric, figure_dir: Path) -> Figure | None:
    """Every successful run's headline metric against its CO2, one colour per variant, the Pareto front
    ringed; None when no run has both."""
    runs = plottable_runs(frame)
    if runs.empty:
        return None
    figure, axis = plt.subplots(figsize=PANEL_SIZE)
    for (variant, device), rows in runs.groupby(["variant", "device"], sort=True):
        axis.scatter(rows["co2_g"], rows["metric_value"], s=18, alpha=0.75, marker="o" if device == "cpu" else "s",
                     label=f"{variant} / {device}")
    front = front_runs(frame, metric)
    axis.step(front["co2_g"], front["metric_value"], where="post", color="tab:red", linewidth=1)
    axis.scatter(front["co2_g"], front["metric_value"], s=70, facecolors="none", edgecolors="tab:red",
                 label="Pareto front")
    axis.set_xscale("log")
    _plain_log_ticks(axis.xaxis)
    axis.set_xlabel("g CO2 per run (log)")
    axis.set_ylabel(metric.name)
    axis.set_title(f"{name}: {metric.name} ({metric.direction} is better) against CO2", fontsize=9)
    axis.grid(alpha=0.3, which="both")
    plots.add_legend(axis, fontsize=6, ncols=2)
    path = figure_dir / f"{name}_metric_vs_co2.png"
    _save(figure, path)
    return Figure(path, f"{name}: every successful run's {metric.name} against its CO2, the Pareto front ringed "
                        f"(no other run has a better metric for as little CO2 or less)")


def summary_figures(results_dir: Path, name: str, frame: pd.DataFrame, figure_dir: Path) -> list[Figure]:
    """The summary bars of `dlbench plot` (headline, whole-run time, steady time, CO2), one panel per image,
    drawn from the records now."""
    rows = plots.latest_runs(results_dir, name, frame=frame)
    paths = plots.plot_summary_panels(rows, name, figure_dir, dpi=DPI)
    where = f"{name}: latest successful run per variant and device on {rows['machine'].iloc[0]}"
    return [Figure(path, f"{where}: {what}") for path, what in
            zip(paths, ("headline metric", "whole-run time", "time per steady unit", "CO2 of the whole run"))]


def existing_plots(results_dir: Path, name: str) -> dict[str, list[Figure]]:
    """The PNGs in results/plots/ named after the experiment or one of its studies (dlbench plot and
    dlbench study write them: NAME.png or NAME_*.png), by kind: each study's name, "curves per variant"
    (NAME_curves_*.png) and the experiment's name for the others. NAME_summary.png is left out: the
    report draws the same bars from the records (summary_figures)."""
    study_names = [study for study in studies.STUDIES if studies.get(study).experiment == name]
    plots_dir = results_dir / "plots"
    found: dict[str, list[Figure]] = collections.defaultdict(list)
    for prefix in [name] + study_names:
        for path in sorted(plots_dir.glob(f"{prefix}*.png")):
            if not (path.stem == prefix or path.stem.startswith(f"{prefix}_")) or path.stem == f"{name}_summary":
                continue
            if prefix != name:
                found[prefix].append(Figure(path, f"{path.name} (dlbench study {prefix})"))
            elif path.stem.startswith(f"{name}_curves_"):
                found["curves per variant"].append(Figure(path, f"{path.name} (dlbench plot)"))
            else:
                found[name].append(Figure(path, f"{path.name} (results/plots)"))
    return dict(found)


def _natural_key(path: Path) -> list:
    """grid_epoch_2 before grid_epoch_10: numbers compared as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.as_posix())]


def _series_key(path: Path) -> tuple[str, str]:
    """Files that differ only by their numbers (grid_epoch_001.png ... grid_epoch_030.png) form a series."""
    return str(path.parent), re.sub(r"\d+", "#", path.name)


def artifact_figures(results_dir: Path, frame: pd.DataFrame) -> tuple[list[Figure], list[Figure]]:
    """Every PNG and GIF of the runs drawn (runs_to_draw: the latest successful full-data or generated-data
    run per variant and device): (shown, folded). Of a numbered series the latest member is shown and
    the earlier ones are folded; nothing is left out."""
    shown, folded = [], []
    for _, row in runs_to_draw(frame).iterrows():
        if not row["artifacts_dir"]:
            continue
        directory = results_dir / row["artifacts_dir"]
        paths = sorted((path for path in directory.rglob("*")
                        if path.suffix.lower() in (".png", ".gif") and path.is_file()), key=_natural_key)
        latest = {_series_key(path): path for path in paths}  # Sorted: the last of each series wins.
        for path in paths:
            figure = Figure(path, f"{row['variant']} / {row['device']}, {row['dataset_source']} data, run "
                                  f"{row['run_id']}: {path.relative_to(directory).as_posix()}")
            (shown if latest[_series_key(path)] == path else folded).append(figure)
    return shown, folded


# --- across experiments ---------------------------------------------------------------------------

def overview_section(frames: dict[str, pd.DataFrame], figure_dir: Path) -> Section:
    section = Section("overview", "Across experiments")
    section.notes.append("Each topic's metric against CO2 is drawn in its own section; the table lists every "
                         "topic's Pareto front (no other run has a better metric for as little CO2 or less).")
    section.blocks = [pareto_table(frames),
                      Gallery([plot_energy(frames, figure_dir), *plot_forecasts(frames, figure_dir)],
                              title="Energy and forecasts"),
                      runs_table(frames), provenance_table(frames)]
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


def plottable_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """Successful runs with a metric and a CO2 figure above zero (the x axis is logarithmic)."""
    return frame[(frame["status"] == results.STATUS_OK) & (frame["co2_g"] > 0) & frame["metric_value"].notna()]


def front_runs(frame: pd.DataFrame, metric) -> pd.DataFrame:
    runs = plottable_runs(frame)
    return runs[pareto_front(runs["co2_g"], runs["metric_value"], metric.higher_is_better)].sort_values("co2_g")


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
    figure, axis = plt.subplots(figsize=(PANEL_SIZE[0], 0.9 + 0.45 * len(names)))
    left = np.zeros(len(names))
    for device in ("cpu", "gpu"):
        totals = np.array([frames[name].loc[frames[name]["device"] == device, "energy_kwh"].sum() for name in names])
        if totals.any():
            axis.barh(names, totals, left=left, color=DEVICE_COLOURS[device], label=device.upper())
            left += totals
    for position, name in enumerate(names):
        co2 = frames[name]["co2_g"].sum()
        axis.annotate(f" {left[position]:.2g} kWh, {co2:.2g} g CO2", (left[position], position), va="center",
                      fontsize=7)
    axis.set_xlim(0, max(left.max(), 1e-9) * 1.9)  # Room for the labels.
    axis.set_xlabel("kWh, all recorded runs")
    axis.set_title("Energy per topic", fontsize=9, loc="left")
    # Above the bars, right of the title: inside the axes it would cover a bar's label.
    plots.add_legend(axis, fontsize=7, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2, frameon=False)
    path = figure_dir / "overview_energy.png"
    _save(figure, path)
    return Figure(path, "Total energy of all recorded runs per experiment (CPU and GPU runs stacked)")


def plot_forecasts(frames: dict[str, pd.DataFrame], figure_dir: Path) -> list[Figure]:
    """Forecast against actual time and kWh (y = x is a perfect forecast), and the relative errors: one
    figure each."""
    all_rows = pd.concat(list(frames.values()), ignore_index=True)
    figures = []
    for actual, forecast, unit in (("time_total_s", "forecast_time_s", "s"), ("energy_kwh", "forecast_kwh", "kWh")):
        figure, axis = plt.subplots(figsize=PANEL_SIZE)
        rows = all_rows[(all_rows[actual] > 0) & (all_rows[forecast] > 0)]
        axis.set_title(f"forecast vs actual ({unit})", fontsize=9)
        if rows.empty:
            axis.text(0.5, 0.5, "no forecast recorded", ha="center", va="center", transform=axis.transAxes)
        else:
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
        path = figure_dir / f"overview_forecast_{_file_part(unit)}.png"
        _save(figure, path)
        figures.append(Figure(path, f"Forecast of the whole run's {'time' if unit == 's' else 'energy'} (made after "
                                    f"the first steady unit) against the actual run"))
    figure, axis = plt.subplots(figsize=PANEL_SIZE)
    errors = [(100 * all_rows[column].dropna(), label) for column, label in
              (("forecast_time_error", "time"), ("forecast_kwh_error", "kWh"))]
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
    path = figure_dir / "overview_forecast_error.png"
    _save(figure, path)
    figures.append(Figure(path, "Forecast errors of time and energy, all runs"))
    return figures


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
h1 { font-size: 1.6rem; margin-bottom: 0.3rem; }
h2 { font-size: 1.3rem; border-bottom: 1px solid #ccc; margin-top: 2.2rem; }
h3 { font-size: 1.05rem; }
h1, h2, h3, p, li, summary, figcaption { overflow-wrap: anywhere; }
#summary ul { padding-left: 1.2rem; }
#summary li { margin: 0.4rem 0; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; margin: 0.5rem 0 0.3rem; }
table { border-collapse: collapse; font-size: 0.82rem; white-space: nowrap; }
th, td { padding: 0.25rem 0.55rem; border-bottom: 1px solid #e2e2e2; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
tr.sample td { background: #fff4d6; }
tr.contended td { background: #fde4e1; }
.legend, .note { font-size: 0.88rem; color: #444; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 420px), 1fr));
           gap: 0.8rem 1rem; align-items: start; margin: 0.6rem 0 1rem; }
.gallery figure.wide { grid-column: 1 / -1; }
figure { margin: 0; min-width: 0; }
img { display: block; max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.8rem; color: #555; }
details { margin: 0.6rem 0 1rem; }
summary { cursor: pointer; font-weight: 600; }
/* A click on an image opens it full size over the page (no script: the figure is the URL's target);
   its "close" link goes back to the caption's place. */
figure .close { display: none; }
figure:target { position: fixed; inset: 0; z-index: 10; padding: 0.5rem; background: #fff; overflow: auto; }
figure:target img { max-width: none; border: 0; }
figure:target .close { display: inline-block; position: sticky; top: 0; left: 0; margin-bottom: 0.4rem;
                       padding: 0.3rem 0.7rem; background: #fff; border: 1px solid #bbb; }
@media print {
  .scroll { overflow: visible; }
  table { white-space: normal; font-size: 7.5pt; }
  figure, table { break-inside: avoid; }
  .gallery { display: block; }
}
"""


def render_html(built: Report) -> str:
    figure_numbers = itertools.count(1)  # Each figure's anchor, for the full-size view.
    parts = ['<!DOCTYPE html>', '<html lang="en">', '<head>', '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             '<title>dlbench report</title>', f'<style>{STYLE}</style>', '</head>', '<body>', '<main>',
             _html_summary(built),
             f'<p class="legend">{_escape(FLAGS_LEGEND)}.<br>{_escape(SAMPLE_LEGEND)}<br>{_escape(ESTIMATE_LEGEND)}<br>'
             f'{_escape(NOT_REACHED)}: the run has a target but never reached it; {_escape(NO_TARGET)}: '
             f'no target recorded (rows imported from dlbench 0.1).</p>']
    parts += [_html_section(section, figure_numbers) for section in built.experiments]
    if built.not_run:
        parts += ['<section id="not-run">', '<h2>Not run yet</h2>',
                  f'<p>{_escape(", ".join(built.not_run))}: not run yet (no run record).</p>',
                  '</section>']
    parts += [_html_section(built.overview, figure_numbers), '</main>', '</body>', '</html>', '']
    return "\n".join(parts)


def _escape(text) -> str:
    return html.escape(str(text), quote=True)


def _html_summary(built: Report) -> str:
    """The page opens with the answers: one line per topic, then CPU vs GPU."""
    items = []
    for line in built.summary:
        anchor = line.topic if line.has_section else "not-run"
        items.append(f'<li><a href="#{_escape(anchor)}"><strong>{_escape(line.topic)}</strong></a>: '
                     f'{_escape(line.text)}</li>')
    return "\n".join(['<section id="summary">', '<h1>dlbench report</h1>',
                      f'<p class="note">{_escape(built.made_from)} Each line: the best variant on its headline '
                      f'metric, then the cheapest one as good within {NEAR_BEST * 100:g} % (or else the cheapest one), '
                      f'compared on one machine, device and dataset with the variants\' default configurations.</p>',
                      '<ul>', *items, '</ul>', f'<p>{_escape(built.cpu_gpu)}</p>',
                      f'<p class="note"><a href="#{_escape(built.overview.name)}">{_escape(built.overview.heading)}'
                      f'</a>: the Pareto front of every topic, energy, forecasts, provenance.</p>', '</section>'])


def _html_section(section: Section, figure_numbers) -> str:
    parts = [f'<section id="{_escape(section.name)}">', f'<h2>{_escape(section.heading)}</h2>']
    parts += [f'<p class="note">{_escape(note)}</p>' for note in section.notes]
    parts += [_html_table(block) if isinstance(block, Table) else _html_gallery(block, figure_numbers)
              for block in section.blocks]
    parts.append('</section>')
    return "\n".join(parts)


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{_escape(cell)}</th>" for cell in table.header)
    classes = table.row_classes or [""] * len(table.rows)
    body = "\n".join(
        (f'<tr class="{_escape(css)}">' if css else "<tr>") + "".join(f"<td>{_escape(cell)}</td>" for cell in row)
        + "</tr>" for row, css in zip(table.rows, classes))
    note = f'\n<p class="note">{_escape(table.note)}</p>' if table.note else ""
    return (f'<h3>{_escape(table.title)}</h3>\n<div class="scroll"><table>\n<thead><tr>{head}</tr></thead>\n'
            f'<tbody>\n{body}\n</tbody>\n</table></div>{note}')


def _html_gallery(gallery: Gallery, figure_numbers) -> str:
    if not gallery.figures:
        return ""
    grid = '<div class="gallery">\n' + "\n".join(_html_figure(figure, next(figure_numbers))
                                                  for figure in gallery.figures) + '\n</div>'
    if gallery.fold:
        return f'<details><summary>{_escape(gallery.fold)}</summary>\n{grid}\n</details>'
    return (f'<h3>{_escape(gallery.title)}</h3>\n' if gallery.title else "") + grid


def _html_figure(figure: Figure, number: int) -> str:
    embedded = data_uri(figure.path)
    if embedded is None:
        return (f'<p class="note">{_escape(figure.caption)}: {_escape(figure.path)} not embedded '
                f'(unreadable, or over {EMBED_LIMIT_BYTES / 1e6:.1f} MB).</p>')
    uri, width, height = embedded
    anchor = f"figure-{number}"
    wide = ' class="wide"' if width > WIDE_RATIO * height else ""
    return (f'<figure id="{anchor}"{wide}><a class="close" href="#{anchor}-caption">close ✕</a>'
            f'<a href="#{anchor}" title="open full size"><img src="{uri}" width="{width}" height="{height}" '
            f'alt="{_escape(figure.caption)}" loading="lazy"></a>'
            f'<figcaption id="{anchor}-caption">{_escape(figure.caption)}</figcaption></figure>')


def data_uri(path: Path) -> tuple[str, int, int] | None:
    """The image as a data URI with its width and height in pixels: PNGs scaled to EMBED_WIDTH at most and
    reduced to 256 colours (plots have few colours, so this is several times smaller and looks the same);
    GIFs as they are (they may be animations). None if still over EMBED_LIMIT_BYTES, or unreadable: one
    bad file in results/plots/ is a note in the page, not a failed report."""
    try:
        if path.suffix.lower() == ".gif":
            data, kind = path.read_bytes(), "gif"
        else:
            data, kind = compact_png(path), "png"
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (OSError, ValueError):  # PIL.UnidentifiedImageError is an OSError.
        return None
    if len(data) > EMBED_LIMIT_BYTES:
        return None
    return f"data:image/{kind};base64,{base64.b64encode(data).decode('ascii')}", width, height


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

def render_markdown(built: Report, out_dir: Path) -> str:
    lines = ["# dlbench report", "", built.made_from, "", "## Summary", ""]
    lines += [f"- **{line.topic}**: {line.text}" for line in built.summary]
    lines += ["", built.cpu_gpu, "",
              f"{FLAGS_LEGEND}.  ", f"{SAMPLE_LEGEND}.  ", f"{ESTIMATE_LEGEND}.  ",
              f"{NOT_REACHED}: the run has a target but never reached it; {NO_TARGET}: no target recorded "
              f"(rows imported from dlbench 0.1).", "",
              "`report.html` is the same report as one self-contained page (figures embedded).", ""]
    for section in built.experiments:
        lines += _markdown_section(section, out_dir)
    if built.not_run:
        lines += ["## Not run yet", "", f"{', '.join(built.not_run)}: not run yet (no run record).", ""]
    lines += _markdown_section(built.overview, out_dir)
    return "\n".join(lines)


def _markdown_section(section: Section, out_dir: Path) -> list[str]:
    lines = [f"## {section.heading}", ""]
    for note in section.notes:
        lines += [note, ""]
    for block in section.blocks:
        if isinstance(block, Table):
            lines += [f"### {block.title}", "", _markdown_row(block.header),
                      "|" + "---|" * len(block.header)] + [_markdown_row(row) for row in block.rows] + [""]
            lines += [block.note, ""] if block.note else []
        elif block.figures:
            images = [_markdown_image(figure, out_dir) for figure in block.figures]
            if block.fold:  # GitHub shows <details> folded, like the page.
                lines += [f"<details><summary>{html.escape(block.fold)}</summary>", ""] + images + ["</details>", ""]
            else:
                lines += ([f"### {block.title}", ""] if block.title else []) + images
    return lines


def _markdown_image(figure: Figure, out_dir: Path) -> str:
    # Relative to where REPORT.md is written (artifacts stay in the results directory).
    link = Path(os.path.relpath(figure.path, out_dir)).as_posix().replace(" ", "%20")
    caption = figure.caption.replace("[", "(").replace("]", ")")
    return f"![{caption}]({link})\n"


def _markdown_row(cells: list[str]) -> str:
    return "| " + " | ".join(str(cell).replace("|", "\\|").replace("\n", " ") for cell in cells) + " |"
