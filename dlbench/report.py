"""Comparison tables, read from the run records (never from live objects).

Every table ranks on the experiment's declared headline metric (``metric_value``) in its declared
direction, so a topic judged on Dice or on a Fréchet distance compares as well as one judged on
accuracy.
"""

from __future__ import annotations

import dataclasses
import json
import math
import textwrap
from datetime import datetime
from pathlib import Path

import pandas as pd

from dlbench import machine, registry, results

def load_results(results_dir, experiment: str, judge_overlaps: bool = True,
                 overlaps: dict[str, float] | None = None) -> pd.DataFrame:
    """Every record of the experiment as one typed frame, oldest first: each column parsed by its type in
    ``results.KINDS`` (the one list), the headline metric read by ``results.headline_value``, plus what
    every table needs: ``co2_g``, ``config_diff`` (what departs from the variant's defaults),
    ``estimated_energy``, ``on_sample``, ``machine`` (the label comparisons group by) and ``contended``."""
    records = results.read_records(results_dir, experiment)
    if not records:
        raise FileNotFoundError(f"no results for '{experiment}' yet (no run records in "
                                f"{results.runs_dir(results_dir, experiment)}); run: dlbench run {experiment}")
    metric = registry.get(experiment).metric
    # Reading every record of every experiment costs time: the table at the end of a run skips it, and
    # the report reads them once for all its experiments (``overlaps``).
    if overlaps is None:
        overlaps = overlap_shares(results_dir) if judge_overlaps else {}
    for record in records:
        record["metric_value"] = results.headline_value(record, metric.name)
        record["metric"] = record.get("metric") or metric.name
        record["machine"], record["contended"], record["contention"] = _machine_and_contention(record, overlaps)
    frame = pd.DataFrame(records)
    for column in results.COLUMNS:
        if column not in frame:
            frame[column] = None
    for column in frame.columns:
        kind = results.KINDS.get(column, "str")
        if kind in ("int", "float"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
        elif kind == "str":  # Text as text, empty where a record has no value.
            frame[column] = [("" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value))
                             if not isinstance(value, (list, dict)) else json.dumps(value) for value in frame[column]]
    frame["contended"] = frame["contended"].astype(bool)
    frame["co2_g"] = frame["co2_kg"] * 1000.0
    frame["config_diff"] = config_differences(frame, variant_defaults(experiment))
    frame["estimated_energy"] = frame["energy_method"].str.contains("estimate")
    frame["on_sample"] = frame["dataset_source"] == "sample"
    return frame


def _machine_and_contention(record: dict, overlaps: dict[str, float]) -> tuple[str, bool, str]:
    """(machine label, contended, how that is known). Records made before dlbench recorded its machine
    and contention are labelled from the processor they saw and judged by their overlap with other
    recorded runs (their start and length): what the data say, and said so."""
    label = record.get("machine") or f"{record.get('device_name') or 'unknown machine'} (older record)"
    share = record.get("cpu_other_share")
    if isinstance(share, (int, float)):
        if record.get("contended") is None:  # Too short a run to judge (machine.MIN_JUDGED_SECONDS).
            return label, False, record.get("contention_note") or "not judged"
        contended = bool(record.get("contended"))
        return label, contended, f"{'contended' if contended else 'measured'}: others used {share:.0%} of the CPU"
    overlapped = overlaps.get(record.get("run_id"), 0.0)
    if overlapped > machine.CONTENDED_SHARE:
        return label, True, f"contended: overlapped other recorded runs {overlapped:.0%} of its time (not measured)"
    return label, False, "not measured"


def overlap_shares(results_dir) -> dict[str, float]:
    """run_id -> the share of the run's time during which another recorded run (any experiment, same
    host) was running too, from every record's start and total time."""
    intervals = []
    for path in Path(results_dir, "runs").glob("*/*.json"):
        try:
            record = json.loads(path.read_text())
            start = datetime.fromisoformat(record["timestamp_utc"]).timestamp()
            length = float(record.get("time_total_s") or 0.0)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if length > 0:
            intervals.append((start, start + length, record.get("host"), record.get("run_id")))
    intervals.sort()
    shares = {}
    for index, (start, end, host, run_id) in enumerate(intervals):
        covered = []
        for other_index, (other_start, other_end, other_host, _) in enumerate(intervals):
            if other_start >= end:
                break
            if other_index != index and other_host == host and other_end > start:
                covered.append((max(start, other_start), min(end, other_end)))
        shares[run_id] = _union_length(covered) / (end - start)
    return shares


def _union_length(spans: list[tuple[float, float]]) -> float:
    total, reach = 0.0, -math.inf
    for start, end in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


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


GROUP_KEYS = ["machine", "variant", "device", "dataset_source", "config_diff"]
NOISY_SPREAD = 0.10  # A cell whose steady time per unit spreads more than this (max - min) / median.


def compare(results_dir, experiment: str, include_contended: bool = False, frame: pd.DataFrame | None = None
            ) -> pd.DataFrame:
    """The one comparison every table shows (`dlbench compare`, README, report, studies).

    One row per machine x variant x device x data source x config difference over the successful runs;
    two machines are never pooled. Per row: n, the headline metric's median, min, max (and mean, std),
    the steady time per unit's median, min and max with ``noisy`` when its spread exceeds 10 %, medians
    of the other figures. Contended runs are left out of a row that has uncontended ones
    (``left_out``) unless ``include_contended``; a row made only of contended runs is kept and flagged
    ``contended``. Best headline first within each machine, the machine with the most runs first."""
    declaration = registry.get(experiment)
    frame = load_results(results_dir, experiment) if frame is None else frame
    ok = successful_rows(frame, f"the records of {experiment} in {results_dir}").copy()
    for name in declaration.shown_metrics:
        ok[name] = [_extra_metric(text, name) for text in ok["extra_metrics"]]
    rows = []
    for key, group in ok.groupby(GROUP_KEYS, sort=True):
        clean = group[~group["contended"]]
        used = group if include_contended or clean.empty else clean
        rows.append({**dict(zip(GROUP_KEYS, key)), "left_out": len(group) - len(used),
                     "contended": bool(used["contended"].any()), **_summary(used, declaration)})
    table = pd.DataFrame(rows)
    table["machine_runs"] = table.groupby("machine")["runs"].transform("sum")
    table = table.sort_values(["machine_runs", "machine", "metric_median"],
                              ascending=[False, True, not declaration.metric.higher_is_better],
                              na_position="last", kind="stable")
    return table.drop(columns="machine_runs").reset_index(drop=True)


def _summary(group: pd.DataFrame, declaration) -> dict:
    steady = group["time_steady_unit_s"].dropna()
    spread = (steady.max() - steady.min()) / steady.median() if len(steady) > 1 and steady.median() > 0 else math.nan
    with_target = group[group["target"].notna()]
    reached = with_target[with_target["time_to_target_s"].notna()]
    methods = group["energy_method"].where(group["energy_method"] != "", group["energy_status"])
    return dict(
        runs=len(group),
        metric=group["metric"].iloc[0],
        metric_median=group["metric_value"].median(),
        metric_min=group["metric_value"].min(),
        metric_max=group["metric_value"].max(),
        metric_mean=group["metric_value"].mean(),
        metric_std=group["metric_value"].std(),
        first_unit_s=group["time_first_unit_s"].median(),
        steady_unit_s=steady.median() if len(steady) else math.nan,
        steady_min_s=steady.min() if len(steady) else math.nan,
        steady_max_s=steady.max() if len(steady) else math.nan,
        noisy=bool(spread > NOISY_SPREAD),
        total_s=group["time_total_s"].median(),
        throughput=group["throughput"].median(),
        throughput_unit=next((unit for unit in group["throughput_unit"] if unit), "") or declaration.throughput_unit,
        energy_kwh=group["energy_kwh"].median(),
        co2_g=group["co2_g"].median(),
        energy_method=methods.mode().iloc[0] if len(methods) else "",
        estimated_energy=bool(group["estimated_energy"].any()),
        cpu_other_share=group["cpu_other_share"].mean(),
        contention=group["contention"].mode().iloc[0],
        concurrent=bool(group["concurrent"].fillna(False).astype(bool).any()),
        runs_with_target=len(with_target),
        runs_reached=len(reached),
        target=with_target["target"].iloc[0] if len(with_target) else math.nan,
        time_to_target_s=reached["time_to_target_s"].median(),
        energy_to_target_kwh=reached["energy_to_target_kwh"].median(),
        device_name=group["device_name"].iloc[0],
        **{name: group[name].median() for name in declaration.shown_metrics},
    )


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


def write_comparison(results_dir, experiment: str, include_contended: bool = False,
                     out_dir=None) -> tuple[pd.DataFrame, Path]:
    """The comparison, and its CSV in ``out_dir`` (default: the results directory). Raises OSError
    when the CSV cannot be written; the table is computed first."""
    table = compare(results_dir, experiment, include_contended=include_contended)
    path = Path(out_dir if out_dir is not None else results_dir) / f"{experiment}_compare.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
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


# --- cells: the same text in the terminal, the README and both report formats ----------------------

def metric_cell(row) -> str:
    """The headline's median, with [min–max] over the runs when there are several."""
    if pd.isna(row["metric_median"]):
        return "n/a"
    text = f"{row['metric_median']:.4g}"
    return text + (f" [{row['metric_min']:.4g}–{row['metric_max']:.4g}]" if row["runs"] > 1 else "")


def steady_cell(row) -> str:
    """Steady seconds per unit: median [min–max]."""
    if pd.isna(row["steady_unit_s"]):
        return ""
    text = f"{row['steady_unit_s']:.3g}"
    return text + (f" [{row['steady_min_s']:.3g}–{row['steady_max_s']:.3g}]" if row["runs"] > 1 else "")


def runs_cell(row) -> str:
    return str(row["runs"]) + (f" (+{row['left_out']} contended left out)" if row["left_out"] else "")


def flags_cell(row) -> str:
    """What a reader must know before comparing this row: contended, noisy, concurrent."""
    flags = []
    if row["contended"]:
        flags.append("contended")
    if row["noisy"]:
        flags.append("noisy")
    if row["concurrent"] and not row["contended"]:
        flags.append("concurrent")
    return ", ".join(flags)


def machine_note(table: pd.DataFrame) -> str:
    machines = table["machine"].unique()
    return "" if len(machines) < 2 else (f"rows from {len(machines)} machines: one table each, never pooled")


def cells(table: pd.DataFrame) -> pd.DataFrame:
    """The comparison's display cells, one row per comparison row (the ``machine`` column kept for grouping)."""
    metric = table["metric"].iloc[0] if len(table) else "metric"
    unit = "unit"
    return pd.DataFrame({
        "machine": table["machine"], "variant": table["variant"], "device": table["device"],
        "data": table["dataset_source"], "n": [runs_cell(row) for _, row in table.iterrows()],
        f"{metric} median [min–max]": [metric_cell(row) for _, row in table.iterrows()],
        f"s/{unit} steady [min–max]": [steady_cell(row) for _, row in table.iterrows()],
        "first s": table["first_unit_s"].map(lambda v: _text(v, "{:.3g}")),
        "total s": table["total_s"].map(lambda v: _text(v, "{:.1f}")),
        "kWh": table["energy_kwh"].map(lambda v: _text(v, "{:.2g}")),
        "g CO2": table["co2_g"].map(lambda v: _text(v, "{:.2g}")),
        **{name: table[name].map(lambda v: _text(v, "{:.4g}")) for name in shown_columns(table)},
        "flags": [flags_cell(row) for _, row in table.iterrows()],
        "config": table["config_diff"].map(lambda text: text or "defaults"),
    }, index=table.index)


TERMINAL_WIDTH = 120  # Columns `dlbench compare` fits by default (--wide: everything).
# Left out, in this order, while a table has too little room left for its config text: the first unit's time
# (compilation and warm-up; the steady time is what compares), g CO2 (kWh times one country's carbon
# intensity), the total time (about the steady time times the units); then the topic's further metrics,
# the last first (the headline metric always stays).
NARROW_LEFT_OUT = ("first s", "g CO2", "total s")
RANGE_SUFFIX = " [min–max]"  # Said by every cell of the columns whose header ends with it: "0.97 [0.96–0.98]".
SHORTEST_CONFIG = 20  # Characters of config text worth leaving columns out for.
TEXT_COLUMNS = ("variant", "flags", "config")  # Left-aligned; numbers are right-aligned.


def format_table(table: pd.DataFrame, width: int | None = TERMINAL_WIDTH) -> str:
    """The comparison for a terminal: one table per machine under its label, numbers rounded, each fitted
    to ``width`` columns (``fit``); ``width=None`` (dlbench compare --wide) shows every column in full."""
    blocks = [machine_note(table)] if machine_note(table) else []
    left_out, cut = {}, False  # What some table does not show, said once under the last.
    for label, rows in cells(table).groupby("machine", sort=False):
        rows = rows.drop(columns="machine")
        if width is not None:
            rows, dropped, config_cut = fit(rows, width)
            left_out.update(dict.fromkeys(dropped))
            cut = cut or config_cut
        blocks.append(f"machine: {label}\n" + render(rows, left=TEXT_COLUMNS))
    if left_out or cut:
        missing = ([f"not shown: {', '.join(left_out)}"] if left_out else []) + (["config text cut"] if cut else [])
        blocks.append(textwrap.fill(f"(to fit {width} columns: {'; '.join(missing)}. dlbench compare --wide shows "
                                    f"everything)", width))
    return "\n\n".join(blocks)


def fit(rows: pd.DataFrame, width: int) -> tuple[pd.DataFrame, list[str], bool]:
    """One machine's display cells narrowed until their lines fit ``width``, losing as little as possible:
    while too little room is left for the config text, a flags column with no flag, the " [min–max]" that
    ends two headers (every cell shows it), then the columns of NARROW_LEFT_OUT and the topic's further
    metrics; last, the end of the config texts that are still too long. Returns the cells, the columns
    left out and whether config text was cut."""
    def room_for_config(frame: pd.DataFrame) -> int:
        lines = render(frame.drop(columns="config"), left=TEXT_COLUMNS).splitlines()
        return width - max(map(len, lines)) - 1

    longest = max([len("config"), *map(len, rows["config"])])

    def enough(frame: pd.DataFrame) -> bool:
        return room_for_config(frame) >= min(longest, SHORTEST_CONFIG)

    columns = list(rows.columns)
    further_metrics = columns[columns.index("g CO2") + 1:columns.index("flags")]
    if not enough(rows) and (rows["flags"] == "").all():
        rows = rows.drop(columns="flags")
    if not enough(rows):
        rows = rows.rename(columns={column: column.removesuffix(RANGE_SUFFIX) for column in rows.columns})
    left_out = []
    for column in [*NARROW_LEFT_OUT, *reversed(further_metrics)]:
        if enough(rows):
            break
        rows = rows.drop(columns=column)
        left_out.append(column)
    keep = max(room_for_config(rows), len("defaults"))
    if keep >= longest:
        return rows, left_out, False
    # The config is the last column: cutting it narrows every line that is too wide.
    rows = rows.assign(config=[text if len(text) <= keep else text[:keep - 1] + "…" for text in rows["config"]])
    return rows, left_out, True


def markdown_table(table: pd.DataFrame) -> str:
    """The comparison as Markdown, one table per machine, for README.md and REPORT.md (generated, never
    copied by hand): the same cells as the terminal table."""
    shown = cells(table)
    blocks = [machine_note(table) + "."] if machine_note(table) else []
    for label, rows in shown.groupby("machine", sort=False):
        rows = rows.drop(columns="machine")
        lines = [f"*machine: {label}*", "", "| " + " | ".join(rows.columns) + " |",
                 "|" + "---|" * len(rows.columns)]
        lines += ["| " + " | ".join(str(value).replace("|", "/") for value in row) + " |"
                  for row in rows.itertuples(index=False)]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
