"""Comparisons you can trust: machines never pooled, contention measured, one measurement at a time,
spread shown, and the README and the report showing the same comparison."""

import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from dlbench import experiment as experiment_module
from dlbench import machine, progress, report, results, tracking

ROOT = Path(__file__).resolve().parent.parent


def _record(results_dir, run_id, value, machine_label="", hour=0, **fields):
    results.write_record(results_dir, results.ResultRow(**{
        "run_id": run_id, "timestamp_utc": f"2026-12-01T{hour:02d}:00:00+00:00", "experiment": "mlp_mnist",
        "variant": "keras", "device": "cpu", "status": "ok", "dataset_source": "full", "metric": "test_accuracy",
        "metric_direction": "max", "metric_value": value, "config": "{}", "machine": machine_label,
        "time_total_s": 10.0, "cpu_other_share": 0.01, "contended": False, **fields}))


# --- machines -----------------------------------------------------------------------------------------

def test_the_fingerprint_names_the_hardware_and_the_label_groups_on_it():
    facts = machine.fingerprint()
    assert {"cpu", "cpu_generation", "logical_cores", "memory_gib", "gpus", "os", "blas", "host_hash"} <= set(facts)
    assert facts["logical_cores"] == os.cpu_count() and len(facts["host_hash"]) == 10
    assert machine.label({"cpu": "AMD EPYC", "logical_cores": 2, "memory_gib": 23.5, "gpus": []}) == "AMD EPYC x2, 24 GiB"
    assert machine.label({"cpu": "Xeon", "logical_cores": 16, "memory_gib": 128.0,
                          "gpus": ["NVIDIA H200"]}) == "Xeon x16, 128 GiB, 1x NVIDIA H200"
    milan = {"cpu": "AMD EPYC", "cpu_generation": "family 25 model 1, avx2", "logical_cores": 2, "memory_gib": 23.5}
    genoa = {**milan, "cpu_generation": "family 25 model 17, avx512"}
    assert machine.label(milan) == "AMD EPYC (family 25 model 1, avx2) x2, 24 GiB" != machine.label(genoa)


def test_records_of_two_machines_are_two_comparison_rows_never_one_pooled_cell(tmp_path):
    _record(tmp_path, "a1", 0.95, "AMD EPYC x2, 24 GiB", hour=1, time_steady_unit_s=1.47)
    _record(tmp_path, "a2", 0.95, "AMD EPYC x2, 24 GiB", hour=2, time_steady_unit_s=1.49)
    _record(tmp_path, "x1", 0.95, "Intel Xeon x2, 24 GiB", hour=3, time_steady_unit_s=2.28)
    table = report.compare(tmp_path, "mlp_mnist")
    assert sorted(zip(table["machine"], table["runs"])) == [("AMD EPYC x2, 24 GiB", 2), ("Intel Xeon x2, 24 GiB", 1)]
    assert table.loc[table["machine"].str.startswith("Intel"), "steady_unit_s"].item() == 2.28
    text = report.format_table(table)
    assert text.startswith("rows from 2 machines: one table each, never pooled")
    assert "machine: AMD EPYC x2, 24 GiB" in text and "machine: Intel Xeon x2, 24 GiB" in text


def test_the_committed_mlp_records_show_both_processors_apart():
    table = report.compare(ROOT / "results", "mlp_mnist")
    defaults = table[(table["variant"] == "keras") & (table["config_diff"] == "") & (table["dataset_source"] == "full")]
    processors = {label.split(" x")[0].split(" (")[0] for label in defaults["machine"]}
    assert {"AMD EPYC", "Intel(R) Xeon(R) Processor"} <= processors
    assert defaults["machine"].is_unique  # One row per machine, never one pooled cell.


# --- contention ---------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SleepConfig:
    seconds: float = 2.5


QUIET_EXPERIMENT = experiment_module.Experiment(
    title="sleeps", dataset="none", metric=experiment_module.Metric("score"), run=None,
    variants={"sleep": experiment_module.Variant("sleeps", config=SleepConfig())})


def _sleeping_run(tmp_path, seconds):
    row = results.ResultRow(run_id=f"sleep-{time.monotonic_ns()}", experiment="sleeps", variant="sleep", device="cpu")
    quiet = progress.Progress("sleeps", "epoch", stream=io.StringIO(), interactive=False)
    with tracking.track(row, QUIET_EXPERIMENT, tmp_path, None, tracking.EnergyTracker("FRA", "cpu", enabled=False),
                        progress=quiet):
        time.sleep(seconds)
    return row


def test_a_run_beside_two_busy_loops_is_contended_and_an_idle_one_is_not(tmp_path):
    idle = _sleeping_run(tmp_path, 2.5)
    assert idle.contended is False and idle.cpu_other_share < machine.CONTENDED_SHARE
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        time.sleep(0.5)
        busy = _sleeping_run(tmp_path, 2.5)
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()
    assert busy.contended is True and busy.cpu_other_share > 0.5 and busy.load_max > 0
    written = json.loads(results.record_path(tmp_path, "sleeps", busy.run_id).read_text())
    assert written["contended"] is True and written["cpu_other_share"] > 0.5


def test_a_run_too_short_to_judge_is_not_called_contended(tmp_path):
    row = _sleeping_run(tmp_path, 0.2)
    assert row.contended is None and row.contention_note.startswith("not judged: the run took 0.2 s")
    _record(tmp_path, "short", 0.9, "M", cpu_other_share=0.4, contended=None, contention_note=row.contention_note)
    table = report.compare(tmp_path, "mlp_mnist")
    assert table.loc[0, "runs"] == 1 and not table.loc[0, "contended"] and table.loc[0, "left_out"] == 0


def test_contended_runs_are_left_out_of_a_row_that_has_clean_ones_unless_asked(tmp_path):
    _record(tmp_path, "c1", 0.90, "M", hour=1)
    _record(tmp_path, "c2", 0.92, "M", hour=2)
    _record(tmp_path, "busy", 0.50, "M", hour=3, cpu_other_share=0.6, contended=True)
    _record(tmp_path, "only", 0.80, "M", hour=4, cpu_other_share=0.6, contended=True, variant="numpy")
    table = report.compare(tmp_path, "mlp_mnist").set_index("variant")
    assert table.loc["keras", "runs"] == 2 and table.loc["keras", "left_out"] == 1
    assert table.loc["keras", "metric_median"] == pytest.approx(0.91) and not table.loc["keras", "contended"]
    assert table.loc["numpy", "contended"] and "contended" in report.flags_cell(table.loc["numpy"])
    assert "(+1 contended left out)" in report.format_table(table.reset_index())
    pooled = report.compare(tmp_path, "mlp_mnist", include_contended=True).set_index("variant")
    assert pooled.loc["keras", "runs"] == 3 and pooled.loc["keras", "metric_median"] == pytest.approx(0.90)


def test_older_records_are_judged_by_their_overlap_with_other_runs(tmp_path):
    for run_id, start in (("first", "10:00:00"), ("second", "10:00:30"), ("alone", "12:00:00")):
        results.write_record(tmp_path, results.ResultRow(
            run_id=run_id, timestamp_utc=f"2026-12-01T{start}+00:00", experiment="mlp_mnist", variant="keras",
            device="cpu", status="ok", metric_value=0.9, config="{}", time_total_s=60.0, host="vm",
            device_name="AMD EPYC"))
    assert report.overlap_shares(tmp_path) == {"first": 0.5, "second": 0.5, "alone": 0.0}
    frame = report.load_results(tmp_path, "mlp_mnist").set_index("run_id")
    assert frame.loc["first", "contended"] and not frame.loc["alone", "contended"]
    assert frame.loc["alone", "machine"] == "AMD EPYC (older record)"
    assert frame.loc["first", "contention"].startswith("contended: overlapped")


def test_spread_is_shown_and_a_spread_out_steady_time_is_noisy(tmp_path):
    for hour, (value, steady) in enumerate(((0.90, 1.0), (0.94, 1.05), (0.92, 1.30))):
        _record(tmp_path, f"r{hour}", value, "M", hour=hour, time_steady_unit_s=steady)
    row = report.compare(tmp_path, "mlp_mnist").iloc[0]
    assert (row["metric_median"], row["metric_min"], row["metric_max"]) == pytest.approx((0.92, 0.90, 0.94))
    assert row["noisy"]  # (1.30 - 1.0) / 1.05 > 10 %
    assert report.metric_cell(row) == "0.92 [0.9–0.94]" and report.steady_cell(row) == "1.05 [1–1.3]"


# --- one measurement at a time ------------------------------------------------------------------------

def _start_run(tmp_path, *extra):
    environment = {**os.environ, "DLBENCH_LOCK_DIR": str(tmp_path / "lock"), "DLBENCH_NO_DOWNLOAD": "1"}
    return subprocess.Popen([sys.executable, "-m", "dlbench", "run", "mlp_mnist", "--variants", "numpy", "--set",
                             "epochs=400", "--no-energy", "--results-dir", str(tmp_path / "results"), *extra],
                            env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _intervals(tmp_path):
    rows = results.read_records(tmp_path / "results", "mlp_mnist")
    return [(datetime.fromisoformat(row["timestamp_utc"]).timestamp(), row) for row in rows]


def test_a_second_run_waits_for_the_first_and_with_concurrent_both_run_at_once(tmp_path):
    first = _start_run(tmp_path)
    time.sleep(1.5)
    second = _start_run(tmp_path)
    outputs = [process.communicate(timeout=300) for process in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    assert "waiting: another dlbench measurement runs on this machine" in outputs[1][1]
    (start_a, row_a), (start_b, row_b) = sorted(_intervals(tmp_path), key=lambda pair: pair[0])
    assert start_b + 1.0 >= start_a + row_a["time_total_s"]  # Timestamps have 1-second resolution.
    assert row_b["lock_wait_s"] > 1.0 and row_a["concurrent"] is False
    assert not row_a["contended"] and not row_b["contended"], (row_a["cpu_other_share"], row_b["cpu_other_share"])

    concurrent = tmp_path / "concurrent"
    pair = [_start_run(concurrent, "--concurrent") for _ in range(2)]
    outputs = [process.communicate(timeout=300) for process in pair]
    assert all(process.returncode == 0 for process in pair), outputs
    assert not any("waiting" in error for _, error in outputs)
    (start_a, row_a), (start_b, row_b) = sorted(_intervals(concurrent), key=lambda pair: pair[0])
    assert start_b < start_a + row_a["time_total_s"]  # They overlapped...
    assert row_a["concurrent"] is True and row_b["concurrent"] is True  # ...and both rows say so.


def test_the_lock_says_which_run_holds_it_and_is_released_when_its_holder_dies(tmp_path):
    path = tmp_path / "measurement.lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from dlbench import machine\n"
        f"lock = machine.MachineLock(Path({str(path)!r})).acquire(); lock.now_running('abc123 mlp_mnist/numpy/cpu')\n"
        "print('held', flush=True); time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    stream = io.StringIO()
    waiter = machine.MachineLock(path, stream=stream)
    killer = threading.Timer(1.0, holder.kill)
    killer.start()
    waiter.acquire()
    waiter.release()
    killer.join()
    holder.wait()
    assert "run abc123 mlp_mnist/numpy/cpu, pid" in stream.getvalue() and waiter.waited_s >= 0.5


# --- the worker's signals -------------------------------------------------------------------------------

def test_a_worker_terminated_while_it_starts_records_interrupted(tmp_path):
    from dlbench import runner

    spec = runner.plan("mlp_mnist", ["keras"], ["cpu"], {"epochs": "1"}, results_dir=str(tmp_path), energy=False)[0]
    process = subprocess.Popen([sys.executable, "-m", "dlbench.worker", json.dumps(dataclasses.asdict(spec))],
                               env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    time.sleep(0.3)  # Still importing: TensorFlow alone takes seconds.
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 130
    record = json.loads(results.record_path(tmp_path, "mlp_mnist", spec.run_id).read_text())
    assert record["status"] == "interrupted" and record["units_run"] is None


# --- one comparison everywhere --------------------------------------------------------------------------

def test_readme_tables_and_report_md_show_the_same_n_and_values(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import update_readme
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    from dlbench import report_html

    for hour, (variant, value, label) in enumerate((("keras", 0.9486, "A x2"), ("keras", 0.9490, "A x2"),
                                                    ("keras", 0.9481, "A x2"), ("numpy", 0.9464, "A x2"),
                                                    ("keras", 0.9470, "B x2"))):
        _record(tmp_path, f"run{hour}", value, label, hour=hour, variant=variant, time_steady_unit_s=1.0 + hour / 10)
    readme = update_readme.figures(str(tmp_path))
    _, markdown_path = report_html.write_report(tmp_path)
    report_md = markdown_path.read_text()

    def cells_by_group(text):
        groups, machine_label = {}, None
        for line in text.splitlines():
            if line.startswith(("*machine: ", "### machine: ")):
                machine_label = line.split("machine: ", 1)[1].strip("*# ")
            elif line.startswith(("#", "*")):
                machine_label = None  # Another table (runs, provenance...): not a comparison.
            elif machine_label and line.startswith("| ") and not line.startswith("| variant"):
                cells = [cell.strip() for cell in line.strip("|").split("|")]
                groups[(machine_label, cells[0], cells[1])] = (cells[3], cells[4])  # n, headline
        return groups

    in_readme, in_report = cells_by_group(readme), cells_by_group(report_md)
    assert in_readme[("A x2", "keras", "cpu")] == ("3", "0.9486 [0.9481–0.949]")
    assert in_readme[("B x2", "keras", "cpu")] == ("1", "0.947")
    for group, values in in_readme.items():
        assert in_report[group] == values, group
