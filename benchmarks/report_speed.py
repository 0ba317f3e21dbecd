"""How long `dlbench report` takes on 1,000 run records; the goal is 10 s at most.

    .venv/bin/python benchmarks/report_speed.py [--records 1000] [--repeats 3] [--keep DIR]

Writes SYNTHETIC records (random numbers, host "synthetic-benchmark", run ids "synthetic-...": only for
timing, never results) for mlp_mnist and cnn_cifar into a temporary results directory: every variant on
CPU and GPU, a few learning rates, some repeats, 5 % on the sample data, 3 % failed, one history file per
(variant, device). Then runs `dlbench report` on it in a fresh process, as a user would (imports
included), and prints the wall time of each repeat and the size of the page.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dlbench import registry, results  # noqa: E402

EXPERIMENTS = {"mlp_mnist": 0.6, "cnn_cifar": 0.4}  # Share of the records.
LEARNING_RATES = (0.001, 0.01, 0.1)


def synthetic_row(generator: np.random.Generator, experiment: str, number: int) -> results.ResultRow:
    declaration = registry.get(experiment)
    variant = generator.choice(list(declaration.variants))
    device = generator.choice(["cpu", "gpu"])
    config = dataclasses.asdict(declaration.variants[variant].config)
    config["learning_rate"] = float(generator.choice(LEARNING_RATES))
    gpu = device == "gpu"
    steady = generator.uniform(0.2, 20.0) / (8.0 if gpu else 1.0)
    total = steady * 12 + generator.uniform(2, 10)
    energy = total * generator.uniform(2e-6, 8e-6)
    reached = generator.random() < 0.5
    return results.ResultRow(
        run_id=f"synthetic-{number:05d}",
        timestamp_utc=f"2026-01-01T{number // 3600:02d}:{number // 60 % 60:02d}:{number % 60:02d}+00:00",
        experiment=experiment, variant=variant, device=device, device_name="synthetic GPU" if gpu else "synthetic CPU",
        seed=int(number), status="failed" if generator.random() < 0.03 else "ok",
        dataset_source="sample" if generator.random() < 0.05 else "full", config=json.dumps(config),
        metric=declaration.metric.name, metric_direction=declaration.metric.direction,
        metric_value=float(generator.uniform(0.3, 0.98)), progress_unit=declaration.progress_unit,
        units_planned=12, units_run=12, time_first_unit_s=steady * 1.5, time_steady_unit_s=steady,
        time_total_s=total, throughput=float(generator.uniform(1e3, 2e5)), throughput_unit=declaration.throughput_unit,
        target=declaration.metric.target, time_to_target_s=total * 0.7 if reached else None,
        energy_to_target_kwh=energy * 0.7 if reached else None, forecast_time_s=total * generator.normal(1, 0.1),
        forecast_kwh=energy * generator.normal(1, 0.1), forecast_time_error=float(generator.normal(0, 0.1)),
        forecast_kwh_error=float(generator.normal(0, 0.1)), energy_kwh=energy, co2_kg=energy * 0.056,
        energy_method="ram=estimate from memory size; cpu=cpu_load estimate (TDP 8 W)" + ("; gpu=nvml" if gpu else ""),
        energy_status="ok", carbon_country="FRA", carbon_intensity_g_per_kwh=56.0, python_version="3.11.7",
        dlbench_version="0.2.0", git_commit="synthetic", host="synthetic-benchmark")


def write_synthetic_results(results_dir: Path, count: int) -> None:
    generator = np.random.default_rng(0)
    with_history = set()
    for number in range(count):
        experiment = "mlp_mnist" if number < count * EXPERIMENTS["mlp_mnist"] else "cnn_cifar"
        row = synthetic_row(generator, experiment, number)
        if (experiment, row.variant, row.device) not in with_history:  # One history per (variant, device).
            with_history.add((experiment, row.variant, row.device))
            row.history_file = f"history/{experiment}/{row.run_id}.csv"
            path = results_dir / row.history_file
            path.parent.mkdir(parents=True, exist_ok=True)
            epochs = np.arange(1, 13)
            path.write_text("epoch,seconds,loss,val_loss,val_accuracy\n" + "".join(
                f"{epoch},{row.time_steady_unit_s},{1 / epoch},{1.1 / epoch},{1 - 0.5 / epoch}\n" for epoch in epochs))
        results.write_record(results_dir, row)


def time_report(results_dir: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dlbench", "report", "--results-dir", str(results_dir)], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", help="write the synthetic results here (and keep them) instead of a temp dir")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dlbench-report-speed-") as temporary:
        results_dir = Path(arguments.keep or temporary)
        write_synthetic_results(results_dir, arguments.records)
        times = [time_report(results_dir) for _ in range(arguments.repeats)]
        size = (results_dir / "report.html").stat().st_size
    print(f"dlbench report on {arguments.records} synthetic records (2 experiments): "
          f"{', '.join(f'{seconds:.2f}' for seconds in times)} s, median {statistics.median(times):.2f} s "
          f"(goal: 10 s at most); report.html {size / 1024:,.0f} kB")


if __name__ == "__main__":
    main()
