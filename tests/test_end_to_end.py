"""`dlbench run` as a user types it: real worker processes, the shipped MNIST sample, CSV rows checked."""

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from dlbench import results
from dlbench.cli import main


def test_run_writes_a_complete_row_per_variant_and_compare_reads_them(tmp_path, capfd):
    status = main(["run", "mlp_mnist", "--set", "epochs=2", "--devices", "cpu", "--results-dir", str(tmp_path)])
    assert status == 0
    rows = {row["variant"]: row for row in results.read_rows(tmp_path / "mlp_mnist.csv")}
    assert set(rows) == {"numpy", "numpy_fast", "keras", "keras_fast"}
    assert len(results.read_records(tmp_path, "mlp_mnist")) == 4
    for variant, row in rows.items():
        assert row["status"] == "ok" and row["error"] == ""
        assert row["device"] == "cpu" and row["device_name"]
        assert row["dataset"] == "mnist" and row["dataset_source"] == "sample"
        assert (row["n_train"], row["n_validation"], row["n_test"]) == ("1800", "200", "500")
        assert row["parameters"] == "52650" and row["units_run"] == "2" and row["progress_unit"] == "epoch"
        assert row["metric"] == "test_accuracy" and row["metric_value"] == row["test_accuracy"]
        assert json.loads(row["config"])["epochs"] == 2
        assert 0.3 < float(row["test_accuracy"]) <= 1.0  # Two epochs on 1,800 images: well above chance.
        for column in ("test_loss", "time_data_s", "time_build_s", "time_first_unit_s", "time_steady_unit_s",
                       "time_train_s", "time_eval_s", "time_total_s", "throughput", "forecast_time_s",
                       "forecast_kwh", "forecast_co2_kg"):
            assert float(row[column]) > 0, column
        assert row["energy_status"] == "ok" and float(row["energy_kwh"]) > 0 and float(row["co2_kg"]) > 0
        assert row["energy_method"] and row["carbon_country"] == "FRA"
        for column in ("python_version", "tensorflow_version", "keras_version", "numpy_version",
                       "codecarbon_version", "git_commit", "host", "seed", "timestamp_utc"):
            assert row[column], column
        assert (tmp_path / row["history_file"]).exists()
    assert rows["keras"]["jit_compile"] == "false" and rows["numpy"]["jit_compile"] == "n/a"
    assert rows["keras_fast"]["jit_compile"] == "true"
    # TensorFlow's start-up lines are in the Keras runs' log files, not on the console.
    # TensorFlow's start-up lines (oneDNN on some CPUs, CUDA probes on others) went to the log, not the console.
    assert (tmp_path / rows["keras"]["log_file"]).read_text().strip() and rows["numpy"]["log_file"] == ""

    printed = capfd.readouterr().out  # The workers write to the same terminal (file descriptor 1).
    assert "epoch 2/2" in printed and "forecast after epoch" in printed  # Progress and forecast.
    final_table = printed[printed.rindex("variant"):].split("\n\n")[0]  # The table of the runs just made.
    assert all(variant in final_table for variant in rows) and max(map(len, final_table.splitlines())) < 100

    assert main(["compare", "mlp_mnist", "--results-dir", str(tmp_path)]) == 0
    table = capfd.readouterr().out
    assert "numpy" in table and "keras" in table and (tmp_path / "mlp_mnist_compare.csv").exists()


def test_missing_data_in_strict_mode_fails_the_run_but_leaves_its_row(tmp_path):
    status = main(["run", "mlp_mnist", "--variants", "numpy", "--strict-data", "--no-energy",
                   "--data-dir", str(tmp_path / "empty"), "--results-dir", str(tmp_path)])
    assert status == 1
    [row] = results.read_rows(tmp_path / "mlp_mnist.csv")
    assert row["status"] == "failed"
    assert row["error"].startswith("DataUnavailableError: full mnist data not found")


def _start_long_run(tmp_path):
    command = [sys.executable, "-m", "dlbench.cli", "run", "mlp_mnist", "--variants", "keras", "--devices", "cpu",
               "--set", "epochs=500", "--no-energy", "--results-dir", str(tmp_path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    deadline = time.monotonic() + 120
    for line in process.stdout:  # Wait until training is under way.
        if "epoch 2/" in line or time.monotonic() > deadline:
            break
    return process


def test_ctrl_c_records_the_run_as_interrupted(tmp_path):
    process = _start_long_run(tmp_path)
    os.killpg(process.pid, signal.SIGINT)  # What a terminal's Ctrl-C does: the whole process group.
    assert process.wait(timeout=120) == 130
    [row] = results.read_rows(tmp_path / "mlp_mnist.csv")
    assert row["status"] == "interrupted", row["error"]
    assert row["units_run"] and int(row["units_run"]) >= 1, row["error"]


def test_a_killed_worker_still_gets_a_failed_row(tmp_path):
    process = _start_long_run(tmp_path)
    [worker] = psutil.Process(process.pid).children()
    worker.kill()  # SIGKILL, like the out-of-memory killer: the worker cannot write anything.
    process.stdout.read()
    assert process.wait(timeout=120) == 1
    [row] = results.read_rows(tmp_path / "mlp_mnist.csv")
    assert row["status"] == "failed" and "ended with status -9" in row["error"]


@pytest.mark.parametrize("earlier", [3])
def test_earlier_rows_survive_later_runs(tmp_path, earlier):
    for index in range(earlier):
        results.write_record(tmp_path, results.ResultRow(run_id=f"old{index}", experiment="mlp_mnist",
                                                         timestamp_utc="2026-01-01T00:00:00+00:00"))
    main(["run", "mlp_mnist", "--variants", "numpy", "--set", "epochs=1", "--no-energy", "--results-dir", str(tmp_path)])
    run_ids = [row["run_id"] for row in results.read_rows(tmp_path / "mlp_mnist.csv")]
    assert run_ids[:earlier] == [f"old{i}" for i in range(earlier)] and len(run_ids) == earlier + 1


def test_planning_and_listing_never_load_tensorflow():
    # The parent process only plans; TensorFlow's start-up (seconds, 0.5 GB) belongs to the workers.
    probe = ("import sys\n"
             "from dlbench import cli, registry, runner\n"
             "for name in registry.EXPERIMENTS:\n"
             "    runner.plan(name, None, ['cpu'], {})\n"
             "cli.main(['list'])\n"
             "print('LOADED', sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n")
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                            check=True).stdout
    assert "LOADED []" in output


def test_a_worker_that_cannot_import_keras_writes_a_failed_row_that_says_why(tmp_path, monkeypatch):
    from dlbench import runner, worker

    [spec] = runner.plan("mlp_mnist", ["keras"], ["cpu"], {"epochs": "1"}, results_dir=str(tmp_path))
    monkeypatch.setitem(sys.modules, "keras", None)  # `import keras` now raises ImportError.
    assert worker.main(spec) == 1
    [row] = results.read_records(tmp_path, "mlp_mnist")
    assert row["status"] == "failed" and "ModuleNotFoundError" in row["error"] and "keras" in row["error"]
