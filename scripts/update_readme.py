"""Regenerate README.md's "Figures measured here" tables from the run records (`dlbench compare`).

    .venv/bin/python scripts/update_readme.py [--results-dir results]

Between the markers `<!-- figures:begin -->` and `<!-- figures:end -->`, for each experiment with
records: the comparison table of its full-data (or generated-data) runs with each variant's default configuration,
plus the configurations listed in FEATURED (one-key departures the README discusses). The tables
therefore never drift from the committed records.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dlbench import registry, report  # noqa: E402

BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"
FEATURED = {"mlp_mnist": {"learning_rate=0.1"}, "cnn_cifar": {"augmentation=true epochs=2"}}


def figures(results_dir: str) -> str:
    blocks = []
    for name in registry.EXPERIMENTS:
        try:
            table = report.compare(results_dir, name)
        except (FileNotFoundError, ValueError):
            continue
        chosen = table[table["dataset_source"].isin({"full", "generated"})
                       & (table["config_diff"].isin({""} | FEATURED.get(name, set())))]
        if chosen.empty:
            continue
        blocks.append(f"**{name}** (`dlbench compare {name}`; rows with the defaults"
                      + (f" and {', '.join(sorted(FEATURED[name]))}" if name in FEATURED else "") + ")\n\n"
                      + report.markdown_table(chosen.reset_index(drop=True)))
    return "\n\n".join(blocks)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-dir", default=str(ROOT / "results"))
    arguments = parser.parse_args(argv)
    readme = ROOT / "README.md"
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        print(f"README.md has no {BEGIN} ... {END} block", file=sys.stderr)
        return 2
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{BEGIN}\n{figures(arguments.results_dir)}\n{END}{tail}")
    print(f"updated {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
