"""`--backend ray` on a real local Ray instance (2 CPUs, started once for the module): NumPy runs of a
second or so, the shipped MNIST sample, records compared with the local backend's."""

import json
import logging
import os
import signal
import sys
import threading
import time

import psutil
import pytest

from dlbench import cluster, results, runner
from dlbench.cli import main
from dlbench.data import DataOptions

QUICK = ["--variants", "numpy", "--set", "epochs=1", "--set", "train_subset=200", "--no-energy"]


@pytest.fixture(scope="module")
def ray_instance(tmp_path_factory):
    ray = pytest.importorskip("ray")
    with pytest.MonkeyPatch.context() as environment:
        # Ray's workers (and so dlbench's) inherit this environment: offline, an empty Keras cache,
        # as conftest gives the tests' own processes.
        environment.setenv("KERAS_HOME", str(tmp_path_factory.mktemp("keras_home")))
        environment.setenv("DLBENCH_NO_DOWNLOAD", "1")
        environment.setenv("RAY_USAGE_STATS_ENABLED", "0")  # Ray reports nothing home from the tests.
        environment.delenv("DLBENCH_DATA_DIR", raising=False)
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
        yield ray
        ray.shutdown()


def records_by_point(results_dir, experiment="mlp_mnist"):
    return {record["study_point"] or record["variant"]: record for record in results.read_records(results_dir, experiment)}


def quick_specs(results_dir, variants=("numpy",), **overrides):
    return runner.plan("mlp_mnist", list(variants), ["cpu"], {"epochs": 1, "train_subset": 200, **overrides},
                       data_options=DataOptions(allow_download=False), results_dir=str(results_dir), energy=False)


def worker_processes(run_id):
    """The dlbench worker process of a run (its command line names the run), if started."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if "dlbench.worker" in command and run_id in command:
            found.append(process)
    return found


def when_worker_starts(run_id, action, timeout=60):
    """Call action(worker process) from a thread as soon as the run's worker exists."""
    def watch():
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            processes = worker_processes(run_id)
            if processes:
                time.sleep(0.5)  # Into its run, past its imports.
                action(processes[0])
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_study_through_ray_gives_the_records_of_the_local_backend(ray_instance, tmp_path, capfd):
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    assert main(["study", "mlp_learning_rate", *QUICK, "--results-dir", str(local)]) == 0
    capfd.readouterr()
    assert main(["study", "mlp_learning_rate", *QUICK, "--results-dir", str(on_ray),
                 "--backend", "ray", "--cpus-per-run", "1"]) == 0
    printed = capfd.readouterr().out

    expected, got = records_by_point(local), records_by_point(on_ray)
    assert len(expected) == 6 and set(got) == set(expected)
    for point, record in got.items():
        assert record["status"] == "ok" and record["dataset_source"] == "sample"
        for column in ("seed", "config", "metric_value", "test_accuracy", "test_loss", "units_run", "n_train"):
            assert record[column] == expected[point][column], (point, column)
        assert (on_ray / record["history_file"]).exists()
        # Two runs at a time on the 2 CPUs: each would count the other's energy at machine level.
        assert json.loads(record["energy_settings"])["tracking_mode"] == "process"
        assert json.loads(expected[point]["energy_settings"])["tracking_mode"] == "machine"
    assert len(results.read_rows(on_ray / "mlp_mnist.csv")) == 6
    assert (on_ray / "plots" / "mlp_learning_rate.png").exists()
    # One line per finished run: i/N, node, metric, time and the ETA of the rest.
    lines = [line for line in printed.splitlines() if line.startswith("[dlbench] ") and "/6 ok " in line]
    assert len(lines) == 6 and "1/6 ok mlp_mnist/numpy/cpu [learning_rate=" in printed
    assert all(" on " in line and "test_accuracy=" in line for line in lines)
    assert "ETA" in lines[0] and "all done in" in lines[-1]
    assert not list(on_ray.glob(".dlbench-shared-*"))  # The marker is removed at the end.


def test_without_a_shared_results_directory_the_runs_come_back_with_their_files(ray_instance, tmp_path):
    specs = quick_specs(tmp_path, variants=("numpy", "numpy_fast"))
    specs[0] = runner.RunSpec(**{**specs[0].__dict__, "energy": True})  # One with CodeCarbon on.
    assert cluster.run_all(specs, node_local_results=True) == 0
    records = records_by_point(tmp_path)
    assert set(records) == {"numpy", "numpy_fast"}
    for record in records.values():
        assert record["status"] == "ok"
        assert (tmp_path / record["history_file"]).is_file() and (tmp_path / record["log_file"]).is_file()
        # All of a node's CPUs per run (the default): the run had the machine, CodeCarbon measures it.
        assert json.loads(record["energy_settings"])["tracking_mode"] == "machine"
    assert records["numpy"]["energy_status"] == "ok" and records["numpy"]["energy_kwh"] > 0
    assert "epoch 1/1" in (tmp_path / records["numpy"]["log_file"]).read_text()  # The worker's console.


def test_process_tracking_mode_measures_with_codecarbon(ray_instance, tmp_path):
    spec = runner.RunSpec(**{**quick_specs(tmp_path)[0].__dict__, "energy": True})
    assert cluster.run_all([spec], cpus_per_run=1) == 0
    (record,) = results.read_records(tmp_path, "mlp_mnist")
    assert json.loads(record["energy_settings"])["tracking_mode"] == "process"
    assert record["energy_status"] == "ok" and record["energy_kwh"] > 0 and record["co2_kg"] > 0


def test_failing_runs_leave_their_records(ray_instance, tmp_path):
    strict, crashing = quick_specs(tmp_path, variants=("numpy", "numpy_fast"))
    # The worker fails and records why; the other worker dies before it can write anything.
    strict = runner.RunSpec(**{**strict.__dict__, "data_options": {"data_dir": str(tmp_path / "none"),
                                                                  "strict": True, "allow_download": False}})
    crashing = runner.RunSpec(**{**crashing.__dict__, "data_options": {"no_such_option": 1}})
    assert cluster.run_all([strict, crashing], cpus_per_run=1) == 1
    records = records_by_point(tmp_path)
    assert records["numpy"]["status"] == "failed" and "mnist" in records["numpy"]["error"]
    assert records["numpy_fast"]["status"] == "failed"
    assert "worker process ended with status 1 before writing its record" in records["numpy_fast"]["error"]
    assert len(results.read_rows(tmp_path / "mlp_mnist.csv")) == 2


def test_a_lost_ray_worker_leaves_a_failed_record_saying_so(ray_instance, tmp_path):
    (spec,) = quick_specs(tmp_path, epochs=3000)

    def lose_the_node(worker):
        # As when its node goes down: nothing on it writes anything. The run is frozen first, so that
        # it cannot record the SIGTERM Ray sends it when the Ray worker dies, then both are killed.
        worker.suspend()
        worker.parent().kill()
        worker.kill()

    watcher = when_worker_starts(spec.run_id, lose_the_node)
    assert cluster.run_all([spec]) == 1
    watcher.join()
    (record,) = results.read_records(tmp_path, "mlp_mnist")
    assert record["status"] == "failed" and record["run_id"] == spec.run_id
    assert record["error"].startswith("the Ray worker process running it died") and "WorkerCrashedError" in record["error"]


def test_when_only_the_ray_worker_dies_ray_stops_the_run_which_keeps_one_record(ray_instance, tmp_path):
    (spec,) = quick_specs(tmp_path, epochs=3000)
    watcher = when_worker_starts(spec.run_id, lambda worker: worker.parent().kill())
    assert cluster.run_all([spec]) == 1
    watcher.join()
    # Ray's SIGTERM reaches the run (which may record 'interrupted' first) or the driver writes 'failed':
    # either way one record, and no run left behind.
    (record,) = results.read_records(tmp_path, "mlp_mnist")
    assert record["status"] in ("interrupted", "failed")
    time.sleep(1)
    assert not worker_processes(spec.run_id)


def test_ctrl_c_cancels_pending_runs_and_the_running_one_records_interrupted(ray_instance, tmp_path, capfd):
    specs = quick_specs(tmp_path, variants=("numpy", "numpy_fast"), epochs=3000)
    specs += quick_specs(tmp_path, variants=("numpy",))
    # Two CPUs per run: one runs, two wait. Ctrl-C once the first is under way.
    first = specs[0]
    watcher = when_worker_starts(first.run_id, lambda worker: os.kill(os.getpid(), signal.SIGINT))
    assert cluster.run_all(specs, cpus_per_run=2) == 130
    watcher.join()
    (record,) = results.read_records(tmp_path, "mlp_mnist")
    assert record["run_id"] == first.run_id and record["status"] == "interrupted"
    assert "interrupted" in record["error"] and 0 < record["units_run"] < 3000
    assert not worker_processes(first.run_id)
    assert "pending runs cancelled" in capfd.readouterr().err


def test_resources_no_node_has_are_a_one_line_error(ray_instance, tmp_path, capfd):
    status = main(["run", "mlp_mnist", *QUICK, "--results-dir", str(tmp_path), "--backend", "ray",
                   "--cpus-per-run", "64"])
    assert status == 2
    assert capfd.readouterr().err.strip().endswith("no node of the Ray cluster has that many CPUs (the largest has 2)")
    assert not results.read_records(tmp_path, "mlp_mnist")


def test_ray_options_need_the_ray_backend(tmp_path, capfd):
    assert main(["run", "mlp_mnist", *QUICK, "--results-dir", str(tmp_path), "--cpus-per-run", "1"]) == 2
    assert "need --backend ray" in capfd.readouterr().err


def test_without_ray_installed_the_ray_backend_says_how_to_install_it(monkeypatch, tmp_path, capfd):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError.
    assert main(["study", "mlp_learning_rate", *QUICK, "--results-dir", str(tmp_path), "--backend", "ray"]) == 2
    captured = capfd.readouterr()
    assert captured.err.count("\n") == 1 and "pip install 'dlbench[cluster]'" in captured.err
    assert not (tmp_path / "runs").exists()


def test_the_progress_line_says_which_run_where_and_how_long_the_rest_will_take(tmp_path):
    (spec,) = quick_specs(tmp_path)
    record = {"status": "ok", "metric": "test_accuracy", "metric_value": 0.91234, "time_total_s": 4.2,
              "co2_kg": 2e-6}
    line = cluster.progress_line(2, 8, spec, record, "1a2b3c4d (node7)", elapsed=10.0)
    assert line.startswith("[dlbench] 2/8 ok mlp_mnist/numpy/cpu on 1a2b3c4d (node7): test_accuracy=0.9123 ")
    assert "mg CO2" in line and line.endswith("ETA 30 s")  # 10 s for 2 runs: 30 s for the other 6.


def test_a_lost_node_is_named_in_the_record(tmp_path):
    ray = pytest.importorskip("ray")
    (spec,) = quick_specs(tmp_path)
    outcome = cluster.lost_task_outcome(ray.exceptions.NodeDiedError("node 1a2b3c4d is dead"))
    record = cluster.store(spec, outcome)
    assert record["status"] == "failed"
    assert record["error"] == ("the node running it died or became unreachable before the run was recorded "
                               "(NodeDiedError: node 1a2b3c4d is dead)")
    assert results.read_records(tmp_path, "mlp_mnist")[0]["error"] == record["error"]
