"""Regenerate the generated blocks of README.md and docs/ from the run records and the experiments' declarations.

    .venv/bin/python scripts/update_readme.py [--results-dir results]        (or: make readme)

Each block lies between two markers, `<!-- NAME:begin -->` and `<!-- NAME:end -->`, and is replaced
whole; the text around it is written by hand and left alone.
- README.md, `topics`: one row per experiment of the registry: topic, variants, headline metric (and the
  best variant's median), data, and the time of one run on CPU (fastest and slowest variant). The figures
  come from the same comparison as `dlbench compare`, restricted to full (or generated) data, each
  variant's default configuration and the CPU, on one machine per topic (the one whose uncontended rows
  cover the most variants), named under the table.
- docs/measurements.md, `figures`: per experiment, the comparison tables of its full-data (or
  generated-data) runs with each variant's default configuration, plus the configurations listed in
  FEATURED (one-key departures the docs discuss).
- docs/topics/NAME.md, `declaration`: the experiment's variants (devices, description) and every `--set`
  key with its type and default, from the declaration.
So no measured figure and no list of variants in these files is typed by hand, and none drifts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dlbench import config as config_module  # noqa: E402
from dlbench import registry, report  # noqa: E402

MEASURED_SOURCES = {"full", "generated"}  # Rows on the shipped samples are smoke tests, not measurements.
FEATURED = {"mlp_mnist": {"learning_rate=0.1"}, "cnn_cifar": {"augmentation=true epochs=2"}}
MACHINE_MARKS = "abcdefghijklmnopqrstuvwxyz"


class MarkerError(ValueError):
    pass


def comparison(results_dir: str, name: str):
    """`dlbench compare NAME`'s table, or None when the experiment has no successful records."""
    try:
        return report.compare(results_dir, name)
    except (FileNotFoundError, ValueError):
        return None


# --- docs/measurements.md: the full comparison tables ----------------------------------------------

def figures(results_dir: str, tables: dict | None = None) -> str:
    """The measured tables of docs/measurements.md; ``tables``: the comparisons already computed, by experiment."""
    if tables is None:
        tables = {name: comparison(results_dir, name) for name in registry.EXPERIMENTS}
    blocks = []
    for name, table in tables.items():
        if table is None:
            continue
        chosen = table[table["dataset_source"].isin(MEASURED_SOURCES)
                       & (table["config_diff"].isin({""} | FEATURED.get(name, set())))]
        if chosen.empty:
            continue
        blocks.append(f"### {name}\n\n(`dlbench compare {name}`; rows with the defaults"
                      + (f" and {', '.join(sorted(FEATURED[name]))}" if name in FEATURED else "") + ")\n\n"
                      + report.markdown_table(chosen.reset_index(drop=True)))
    return "\n\n".join(blocks)


# --- README.md: the topics table -----------------------------------------------------------------

def default_cpu_rows(table):
    """The comparison rows that say what a topic costs: full or generated data, defaults, CPU."""
    if table is None:
        return None
    rows = table[table["dataset_source"].isin(MEASURED_SOURCES) & (table["config_diff"] == "")
                 & (table["device"] == "cpu")]
    return None if rows.empty else rows


def chosen_machine(rows) -> str:
    """The machine whose uncontended rows cover the most variants, then whose rows do, then whose rows had
    their contention measured (not judged afterwards from older records), then the most runs: a topic's
    times are read on one machine, never mixed across processors."""
    def coverage(machine):
        group = rows[rows["machine"] == machine]
        return (group.loc[~group["contended"], "variant"].nunique(), group["variant"].nunique(),
                (group["contention"] != "not measured").sum(), group["runs"].sum())

    return max(rows["machine"].unique(), key=coverage)


def duration(seconds: float) -> tuple[str, str]:
    """(number, unit) with two significant digits: seconds under 90 s, minutes under 90 min, else hours."""
    if seconds < 90:
        return f"{seconds:.2g}", "s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.2g}", "min"
    return f"{seconds / 3600:.2g}", "h"


def duration_range(low: float, high: float) -> str:
    (low_text, low_unit), (high_text, high_unit) = duration(low), duration(high)
    if (low_text, low_unit) == (high_text, high_unit):
        return f"{low_text} {low_unit}"
    if low_unit == high_unit:
        return f"{low_text}–{high_text} {low_unit}"
    return f"{low_text} {low_unit} – {high_text} {high_unit}"


def topic_row(name: str, table, machines: list[str]) -> str:
    """The headline is named, not valued: variants of one topic may be scored on different data (flows_density's
    1D, 2D and MNIST rows), so a "best" value would compare what cannot be compared."""
    experiment = registry.get(name)
    metric = experiment.metric
    headline = f"`{metric.name}` {'↑' if metric.higher_is_better else '↓'}"
    if metric.target is not None:
        headline += f" (target {metric.target:g})"
    time_on_cpu = "not measured yet"
    rows = default_cpu_rows(table)
    if rows is not None:
        machine = chosen_machine(rows)
        if machine not in machines:
            machines.append(machine)
        rows = rows[rows["machine"] == machine]
        measured = rows["variant"].nunique()
        time_on_cpu = duration_range(rows["total_s"].min(), rows["total_s"].max())
        if measured < len(experiment.variants):
            time_on_cpu += f", {measured} of {len(experiment.variants)} variants"
        time_on_cpu += f" ({MACHINE_MARKS[machines.index(machine)]}"
        time_on_cpu += ", contended)" if rows["contended"].any() else ")"
    title = experiment.title.split(":")[0]
    variants = ", ".join(f"`{variant}`" for variant in experiment.variants)
    return (f"| [{name}](docs/topics/{name}.md): {title} | {variants} | {headline} | "
            f"[{experiment.dataset}](docs/data.md) | {time_on_cpu} |")


def topics(tables: dict) -> str:
    machines: list[str] = []
    lines = ["| topic | variants | headline metric (↑ higher, ↓ lower is better) | data | time of one run on CPU |",
             "|---|---|---|---|---|"]
    lines += [topic_row(name, tables[name], machines) for name in registry.EXPERIMENTS]
    notes = ("Time of one run: the median wall time of a run with the variant's default settings on the full "
             "(or generated) data, fastest and slowest variant, on the machine marked. `contended`: those runs "
             "shared the cores with other work, so their times are inflated. The metrics each variant reached: "
             "[docs/measurements.md](docs/measurements.md).")
    if machines:
        notes += " Machines: " + "; ".join(f"({MACHINE_MARKS[index]}) {machine}"
                                          for index, machine in enumerate(machines)) + "."
    return "\n".join(lines) + "\n\n" + notes


# --- docs/topics/NAME.md: what the declaration says ------------------------------------------------

def declaration(name: str) -> str:
    experiment = registry.get(name)
    lines = [f"Variants (`dlbench run {name} --variants …`; generated from the declaration at the end of "
             f"`experiments/{name}.py`):", "", "| variant | devices | what it is |", "|---|---|---|"]
    for variant_name, variant in experiment.variants.items():
        description = variant.description + (f" (on CPU: {variant.slow_on_cpu})" if variant.slow_on_cpu else "")
        lines.append(f"| `{variant_name}` | {', '.join(variant.devices)} | {description.replace('|', '/')} |")
    identity = ", ".join(f"`{field}`" for field in experiment.identity)
    lines += ["", "Settings (`--set key=value`; the default is most variants' value"
              + (f"; {identity} {'names' if len(experiment.identity) == 1 else 'name'} what a variant is and "
                 "cannot be set" if identity else "") + "):", "",
              "| key | type | default | variants that differ |", "|---|---|---|---|"]
    configs = {variant_name: variant.config for variant_name, variant in experiment.variants.items()}
    for key, kind, default, others in config_module.settings_table(configs):
        lines.append(f"| `{key}` | {kind} | {default or '(empty)'} | {others} |")
    return "\n".join(lines)


# --- writing the blocks ---------------------------------------------------------------------------

def replace_block(path: Path, marker: str, content: str) -> bool:
    """Put ``content`` between the file's ``marker`` markers; True when the file changed."""
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    text = path.read_text(encoding="utf-8")
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise MarkerError(f"{path} needs exactly one {begin} ... {end} block")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    updated = f"{head}{begin}\n{content}\n{end}{tail}"
    if updated == text:
        return False
    path.write_text(updated, encoding="utf-8")
    return True


def update(results_dir: str, root: Path = ROOT) -> list[Path]:
    """Regenerate every block under ``root`` from the records in ``results_dir``; the files changed."""
    tables = {name: comparison(results_dir, name) for name in registry.EXPERIMENTS}
    blocks = [(root / "README.md", "topics", topics(tables)),
              (root / "docs" / "measurements.md", "figures", figures(results_dir, tables))]
    blocks += [(root / "docs" / "topics" / f"{name}.md", "declaration", declaration(name))
               for name in registry.EXPERIMENTS]
    missing = [str(path) for path, _, _ in blocks if not path.exists()]
    if missing:
        raise MarkerError(f"missing: {', '.join(missing)} (each topic needs a page, see docs/writing-an-experiment.md)")
    return [path for path, marker, content in blocks if replace_block(path, marker, content)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-dir", default=str(ROOT / "results"), help="where the run records are read")
    arguments = parser.parse_args(argv)
    try:
        changed = update(arguments.results_dir)
    except MarkerError as error:
        print(f"update_readme: error: {error}", file=sys.stderr)
        return 2
    for path in changed:
        print(f"updated {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    if not changed:
        print("README.md and docs/ already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
