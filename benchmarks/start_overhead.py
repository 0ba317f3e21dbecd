"""Start-up overhead of one run: the worker process's wall time minus the time its record measured.

    .venv/bin/python benchmarks/start_overhead.py [--repeats 3] [--variants numpy,keras] [--energy]

For each variant of mlp_mnist, runs the worker exactly as `dlbench run` does (a fresh process, the
device fixed in its environment) on a one-epoch, 500-image configuration, and prints the process's
wall time, the record's time_total_s and their difference: Python start-up, imports (TensorFlow for
Keras variants), the device check, CodeCarbon's start when --energy is given, and writing the record.
The figure to beat for a NumPy run is 1.5 s; for a Keras run, TensorFlow's own import time + 1 s, so
the import of Keras alone is timed too, in a fresh process.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dlbench import results, runner  # noqa: E402


def time_worker(variant: str, energy: bool, results_dir: str) -> tuple[float, float]:
    [spec] = runner.plan("mlp_mnist", [variant], ["cpu"], {"epochs": "1", "train_subset": "500"},
                         results_dir=results_dir, energy=energy)
    command = [sys.executable, "-m", "dlbench.worker", json.dumps(dataclasses.asdict(spec))]
    start = time.perf_counter()
    subprocess.run(command, env=runner.child_environment("cpu"), stdout=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - start
    record = json.loads(results.record_path(results_dir, "mlp_mnist", spec.run_id).read_text())
    return wall, record["time_total_s"]


def time_import(module: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {module}"], env=runner.child_environment("cpu"),
                   stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", default="numpy,numpy_fast,keras")
    parser.add_argument("--energy", action="store_true", help="with CodeCarbon (its start is part of the overhead)")
    arguments = parser.parse_args(argv)
    os.environ.setdefault("DLBENCH_NO_DOWNLOAD", "1")
    python_alone = statistics.median(time_import("sys") for _ in range(arguments.repeats))
    keras_import = statistics.median(time_import("keras") for _ in range(arguments.repeats))
    print(f"fresh python: {python_alone:.2f} s; python + import keras: {keras_import:.2f} s "
          f"(median of {arguments.repeats}); energy tracking {'on' if arguments.energy else 'off'}")
    print(f"{'variant':12} {'process s':>10} {'record s':>9} {'overhead s':>11}")
    with tempfile.TemporaryDirectory() as results_dir:
        for variant in arguments.variants.split(","):
            timings = [time_worker(variant, arguments.energy, results_dir) for _ in range(arguments.repeats)]
            overheads = [wall - total for wall, total in timings]
            wall = statistics.median(wall for wall, _ in timings)
            total = statistics.median(total for _, total in timings)
            print(f"{variant:12} {wall:10.2f} {total:9.2f} {statistics.median(overheads):11.2f}"
                  f"   (overheads {', '.join(f'{o:.2f}' for o in overheads)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
