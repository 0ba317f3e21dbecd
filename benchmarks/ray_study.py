"""The local backend against the Ray backend on one study: wall time, speed-up and energy.

    DLBENCH_DATA_DIR=/path/to/datasets .venv/bin/python benchmarks/ray_study.py [--rounds N]

Runs ``dlbench study mlp_learning_rate --set epochs=3 --variants numpy`` (6 NumPy runs, full MNIST:
``--strict-data``) three ways, each into its own temporary results directory (never results/):

- ``local``: the default backend, one run after another;
- ``ray``: ``--backend ray --cpus-per-run 1``, the command starting (and stopping) its own Ray instance
  on this machine: every run gets one CPU, so as many run at once as the machine has cores;
- ``ray, running``: the same against a Ray instance started beforehand (``ray start --head``), as on
  a cluster that is already up: the command's wall time without Ray's start-up and shutdown.

For each: the command's wall time, the sum of the runs' own ``time_total_s``, the speed-up over local,
and the sum of the energy column. Runs sharing the machine are measured in CodeCarbon's process mode
(each run its own processes), the local ones in machine mode: the two sums must be of the same order,
never the machine's energy counted once per run. ``--rounds N`` repeats the three, alternating.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STUDY = ["study", "mlp_learning_rate", "--set", "epochs=3", "--variants", "numpy", "--strict-data"]
MODES = {
    "local": ["--backend", "local"],
    "ray": ["--backend", "ray", "--cpus-per-run", "1"],
    "ray, running": ["--backend", "ray", "--cpus-per-run", "1", "--address", "auto"],
}

sys.path.insert(0, str(ROOT))
from dlbench import results  # noqa: E402


def run_study(mode: str, results_dir: Path) -> float:
    """The study as a user types it; returns the command's wall time in seconds."""
    command = [str(BIN / "dlbench"), *STUDY, *MODES[mode], "--results-dir", str(results_dir)]
    started = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if finished.returncode != 0:
        sys.exit(f"{mode}: `{' '.join(command)}` exited {finished.returncode}:\n{finished.stdout}{finished.stderr}")
    return wall


def summarize(mode: str, results_dir: Path, wall: float) -> dict:
    records = results.read_records(results_dir, "mlp_mnist")
    assert len(records) == 6 and all(record["status"] == "ok" for record in records), mode
    assert all(record["dataset_source"] == "full" for record in records), "needs the full MNIST data"
    return {
        "mode": mode, "wall_s": wall, "runs_s": sum(record["time_total_s"] for record in records),
        "energy_kwh": sum(record["energy_kwh"] for record in records),
        "cpu_kwh": sum(record["energy_cpu_kwh"] for record in records),
        "ram_kwh": sum(record["energy_ram_kwh"] for record in records),
        "tracking": ",".join(sorted({json.loads(record["energy_settings"])["tracking_mode"] for record in records})),
        "accuracy": {record["study_point"]: record["metric_value"] for record in records},
    }


def start_ray_instance() -> None:
    """A Ray instance on this machine, as `ray start --head` on a cluster's head node."""
    subprocess.run([str(BIN / "ray"), "start", "--head", f"--num-cpus={os.cpu_count()}", "--include-dashboard=false",
                    "--disable-usage-stats"], check=True, capture_output=True)


def stop_ray_instance() -> None:
    subprocess.run([str(BIN / "ray"), "stop"], capture_output=True)


def one_round(round_number: int) -> list[dict]:
    summaries = []
    for mode in MODES:
        results_dir = Path(tempfile.mkdtemp(prefix=f"dlbench-ray-study-{mode.replace(', ', '-')}-"))
        try:
            if mode == "ray, running":
                start_ray_instance()
            try:
                wall = run_study(mode, results_dir)
            finally:
                if mode == "ray, running":
                    stop_ray_instance()
            summaries.append({"round": round_number, **summarize(mode, results_dir, wall)})
        finally:
            shutil.rmtree(results_dir, ignore_errors=True)
        print(f"  round {round_number} {mode}: {summaries[-1]['wall_s']:.1f} s", file=sys.stderr, flush=True)
    return summaries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=1, help="repeat the three measurements (default 1)")
    arguments = parser.parse_args()
    if not os.environ.get("DLBENCH_DATA_DIR"):
        sys.exit("set DLBENCH_DATA_DIR to the directory holding mnist.npz (the figures are for the full data)")
    print(f"{os.cpu_count()} CPUs; `dlbench {' '.join(STUDY)}`, data from {os.environ['DLBENCH_DATA_DIR']}")
    rows = [summary for round_number in range(1, arguments.rounds + 1) for summary in one_round(round_number)]

    # Same seeds, same arithmetic: the backends must agree on every point's accuracy.
    reference = rows[0]["accuracy"]
    assert all(row["accuracy"] == reference for row in rows), "accuracies differ between backends"
    # Against the same round's local run: this machine's speed drifts between rounds.
    local_wall = {row["round"]: row["wall_s"] for row in rows if row["mode"] == "local"}
    print("\n| round | backend | wall s | sum of runs' time_total_s | speed-up vs local | energy kWh (sum) | cpu / ram kWh "
          "| tracking_mode |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['round']} | {row['mode']} | {row['wall_s']:.1f} | {row['runs_s']:.1f} | "
              f"{local_wall[row['round']] / row['wall_s']:.2f}x | "
              f"{row['energy_kwh']:.3g} | {row['cpu_kwh']:.2g} / {row['ram_kwh']:.2g} | {row['tracking']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
