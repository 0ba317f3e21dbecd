"""Reliability, round 3 (issue 19): each way a run went wrong in the probe, as a test that failed
before the fix. NumPy runs (no TensorFlow) keep the end-to-end ones fast."""

import errno
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from dlbench import cluster, config as config_module, data, progress, results, runner, tracking
from dlbench.cli import main
from experiments import mlp_mnist

REPOSITORY = Path(__file__).resolve().parents[1]
QUICK = ["--variants", "numpy", "--set", "epochs=1 train_subset=200", "--no-energy"]


def _cli(*arguments, timeout=120, **options):
    """The real command line in its own process (own session: signals reach only whom they are sent to)."""
    return subprocess.run([sys.executable, "-m", "dlbench", *arguments], capture_output=True, text=True,
                          timeout=timeout, cwd=REPOSITORY, **options)


def _error_lines(text):
    return [line for line in text.strip().splitlines() if line.strip()]


# --- 1. an unreachable Ray address --------------------------------------------------------------------

def test_1_an_address_that_never_answers_is_one_line_before_ray_is_asked():
    started = time.monotonic()
    with pytest.raises(cluster.ClusterError, match=r"cannot reach the Ray cluster at 127\.0\.0\.1:1 "):
        cluster.check_reachable("127.0.0.1:1", timeout=5)
    assert time.monotonic() - started < 6
    with pytest.raises(cluster.ClusterError, match="expected HOST:PORT"):
        cluster.check_reachable("foo")
    cluster.check_reachable("auto")  # Ray's own words are left to Ray.


def test_1_end_to_end_unreachable_address_exits_2_within_30_seconds(tmp_path):
    pytest.importorskip("ray")
    started = time.monotonic()
    finished = _cli("run", "mlp_mnist", *QUICK, "--backend", "ray", "--address", "127.0.0.1:1",
                    "--results-dir", str(tmp_path), timeout=90)
    assert finished.returncode == 2 and time.monotonic() - started < 30
    errors = [line for line in _error_lines(finished.stderr) if "error" in line.lower()]
    assert len(errors) == 1 and "127.0.0.1:1" in errors[0] and errors[0].startswith("dlbench: error:")
    assert "Traceback" not in finished.stderr
    assert not list(tmp_path.glob("runs/*/*.json"))  # Nothing ran.


# --- 2. killing `dlbench run` stops its worker ------------------------------------------------------------

def _start_long_run(results_dir):
    environment = {**os.environ, "DLBENCH_PROGRESS": "lines", "DLBENCH_NO_DOWNLOAD": "1"}
    parent = subprocess.Popen(
        [sys.executable, "-m", "dlbench", "run", "mlp_mnist", "--variants", "numpy", "--set", "epochs=5000",
         "--no-energy", "--results-dir", str(results_dir)],
        cwd=REPOSITORY, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:  # Until the worker has trained two epochs.
        line = parent.stdout.readline()
        if "epoch 2/" in line:
            break
        assert line or parent.poll() is None, "the run ended before training"
    import psutil

    [worker] = psutil.Process(parent.pid).children()
    return parent, worker


def _record(results_dir):
    [path] = (results_dir / "runs" / "mlp_mnist").glob("*.json")
    return json.loads(path.read_text())


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_2_terminating_the_parent_stops_the_worker_which_records_interrupted(tmp_path, signum):
    parent, worker = _start_long_run(tmp_path)
    os.kill(parent.pid, signum)  # The parent alone, as `kill PID` does.
    output, _ = parent.communicate(timeout=60)
    assert parent.returncode == 128 + signum
    assert not worker.is_running() or worker.status() == "zombie"
    record = _record(tmp_path)
    assert record["status"] == "interrupted" and record["units_run"] >= 2
    assert [row["run_id"] for row in results.read_rows(tmp_path / "mlp_mnist.csv")] == [record["run_id"]]
    assert f"terminated ({signal.Signals(signum).name})" in output


def test_2_a_worker_whose_parent_is_killed_stops_and_rebuilds_the_csv(tmp_path):
    parent, worker = _start_long_run(tmp_path)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(timeout=10)
    worker.wait(timeout=60)  # It noticed (PR_SET_PDEATHSIG) instead of training on for minutes.
    record = _record(tmp_path)
    assert record["status"] == "interrupted"
    assert [row["run_id"] for row in results.read_rows(tmp_path / "mlp_mnist.csv")] == [record["run_id"]]


# --- 3. a read-only folder or a full disk ---------------------------------------------------------------

def test_3_the_preflight_check_covers_every_folder_a_run_writes(tmp_path, monkeypatch):
    real_open = os.open
    blocked = tmp_path / "runs" / "mlp_mnist"

    def read_only_runs(path, flags, *args, **kwargs):
        if str(path).startswith(str(blocked)) and flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(results.os, "open", read_only_runs)
    results.check_results_dir(tmp_path)  # The top folder alone is fine...
    with pytest.raises(results.ResultsDirError, match=re.escape(f"results folder {blocked} is not writable")):
        results.check_results_dir(tmp_path, "mlp_mnist")  # ...but runs/mlp_mnist/ is not.


def test_3_a_history_that_cannot_be_written_leaves_no_empty_file(tmp_path, monkeypatch):
    experiment = mlp_mnist.EXPERIMENT
    row = results.ResultRow(run_id="h1", experiment="mlp_mnist", variant="numpy", device="cpu", seed=0)
    quiet = progress.Progress("t", "epoch", stream=io.StringIO(), interactive=False)
    record = tracking.Record(row, experiment, tmp_path, data.DataOptions(), tracking.EnergyTracker(
        "FRA", "cpu", enabled=False), quiet)
    record.unit(0.1, loss=1.0)

    def full_disk(descriptor, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(results.os, "write", full_disk)
    with pytest.raises(OSError):
        record.write_history()
    monkeypatch.undo()
    assert list((tmp_path / "history" / "mlp_mnist").iterdir()) == []


def test_3_when_no_record_could_be_written_nobody_claims_one_and_the_error_is_said_once(tmp_path, monkeypatch,
                                                                                         capsys):
    class WorkerThatCouldNotWrite:
        def wait(self, timeout=None):
            return runner.EXIT_NO_RECORD  # The worker has printed its one line already.

    def no_space(*args, **kwargs):
        raise results.ResultsWriteError("cannot write run record x: [Errno 28] No space left on device")

    monkeypatch.setattr(runner, "start_worker", lambda spec: WorkerThatCouldNotWrite())
    monkeypatch.setattr(results, "write_record", no_space)
    specs = runner.plan("mlp_mnist", ["numpy"], ["cpu"], {"epochs": "1"}, results_dir=str(tmp_path), energy=False)
    assert runner.run_all(specs) == 1
    err = capsys.readouterr().err
    assert "cannot write run record" not in err  # Not repeated by the parent.
    assert "no record could be written" in err and "its record says why" not in err


# --- 4. a long value ---------------------------------------------------------------------------------------

def test_4_an_absurdly_long_value_is_one_short_line_exit_2(tmp_path):
    finished = _cli("run", "sentiment_imdb", "--variants", "gru", "--set", "bert_preset=" + "a" * 131_000,
                    "--no-energy", "--results-dir", str(tmp_path))
    assert finished.returncode == 2
    lines = _error_lines(finished.stderr)
    assert len(lines) == 1 and "131,000 characters" in lines[0] and len(finished.stderr) < 400
    assert "Traceback" not in finished.stderr


def test_4_the_spec_reaches_the_worker_on_stdin_whatever_its_size(tmp_path):
    [spec] = runner.plan("mlp_mnist", ["numpy"], ["cpu"], {"epochs": "1", "train_subset": "100"},
                         results_dir=str(tmp_path), energy=False)
    label = "x" * 300_000  # Far beyond one argument's limit (128 KiB on Linux).
    spec = runner.RunSpec(**{**spec.__dict__, "study_point": label})
    process = runner.start_worker(spec, stdout=subprocess.DEVNULL)
    assert process.wait(timeout=120) == 0
    record = json.loads(results.record_path(tmp_path, "mlp_mnist", spec.run_id).read_text())
    assert record["status"] == "ok" and record["study_point"] == label


# --- 5. a damaged record ------------------------------------------------------------------------------------

def test_5_a_damaged_record_is_one_warning_moved_aside_and_its_old_row_kept(tmp_path, capsys):
    for run_id in ("a", "b"):
        results.write_record(tmp_path, results.ResultRow(run_id=run_id, experiment="mlp_mnist", variant="numpy",
                                                         device="cpu", seed=0, status="ok"))
    csv_path = results.rebuild_csv(tmp_path, "mlp_mnist")
    damaged = results.record_path(tmp_path, "mlp_mnist", "b")
    damaged.write_bytes(damaged.read_bytes()[:40])  # truncate: no longer JSON.
    capsys.readouterr()
    assert main(["compare", "mlp_mnist", "--results-dir", str(tmp_path)]) == 0
    warnings_printed = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings_printed) == 1 and "damaged run record" in warnings_printed[0]
    assert not damaged.exists() and len(list(damaged.parent.glob("b.json.damaged-*"))) == 1
    [kept] = tmp_path.glob("mlp_mnist.csv.before-damage-*")
    assert [row["run_id"] for row in results.read_rows(kept)] == ["a", "b"]  # The only intact trace of b.
    assert [row["run_id"] for row in results.read_rows(csv_path)] == ["a"]
    assert main(["compare", "mlp_mnist", "--results-dir", str(tmp_path)]) == 0
    assert "warning" not in capsys.readouterr().err  # Reported once, not by every command.


# --- 6. predict with a damaged model ---------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["truncated", "empty", "directory"])
def test_6_predict_with_a_damaged_model_says_damaged_and_how_to_re_run(tmp_path, capsys, damage):
    artifacts = tmp_path / "artifacts" / "sentiment_imdb" / "r1"
    artifacts.mkdir(parents=True)
    model = artifacts / "model.keras"
    if damage == "directory":
        model.mkdir()
    else:
        model.write_bytes(b"PK\x03\x04 not a whole zip" if damage == "truncated" else b"")
    results.write_record(tmp_path, results.ResultRow(
        run_id="r1", experiment="sentiment_imdb", variant="gru", device="cpu", seed=0, status="ok",
        artifacts_dir=str(artifacts.relative_to(tmp_path))))
    assert main(["predict", "sentiment_imdb", "This film is great", "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "is damaged" in err and "re-run: dlbench run sentiment_imdb --variants gru" in err
    assert "not found" not in err.lower()


# --- 7. read-only and odd results folders -------------------------------------------------------------------------

def _one_ok_run(results_dir):
    assert main(["run", "mlp_mnist", *QUICK, "--results-dir", str(results_dir)]) == 0


def _read_only(monkeypatch, folder):
    real_open = os.open

    def read_only_open(path, flags, *args, **kwargs):
        if str(path).startswith(str(folder)) and flags & (os.O_CREAT | os.O_WRONLY):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(results.os, "open", read_only_open)


def test_7_report_on_a_read_only_folder_is_one_line_or_goes_where_told(tmp_path, monkeypatch, capsys):
    source, out = tmp_path / "results", tmp_path / "elsewhere"
    _one_ok_run(source)
    capsys.readouterr()
    _read_only(monkeypatch, source)
    assert main(["report", "--results-dir", str(source)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--out DIR" in err
    assert main(["report", "--results-dir", str(source), "--out", str(out)]) == 0
    assert (out / "report.html").stat().st_size > 0 and (out / "REPORT.md").exists()
    assert not (source / "report.html").exists()


def test_7_compare_on_a_read_only_folder_compares_what_is_there(tmp_path, monkeypatch, capsys):
    source = tmp_path / "results"
    _one_ok_run(source)
    capsys.readouterr()
    monkeypatch.setattr(results, "rebuild_csv", lambda *a, **k: (_ for _ in ()).throw(
        results.ResultsWriteError(f"cannot create lock file {source}/runs/mlp_mnist/.lock: [Errno 30] Read-only")))
    assert main(["compare", "mlp_mnist", "--results-dir", str(source), "--out", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert "numpy" in captured.out and (tmp_path / "out" / "mlp_mnist_compare.csv").exists()
    assert len(_error_lines(captured.err)) == 1 and "compared as they are" in captured.err


def test_7_a_results_folder_whose_name_is_not_utf8_works(tmp_path, capsys):
    odd = Path(os.fsdecode(bytes(tmp_path) + b"/r\xff\xfesults"))
    _one_ok_run(odd)
    assert main(["report", "--results-dir", str(odd)]) == 0
    assert (odd / "report.html").stat().st_size > 0
    assert main(["compare", "mlp_mnist", "--results-dir", str(odd)]) == 0


# --- 8, 9, 10: inputs refused before anything runs, and messages that say what is wrong --------------------------

@pytest.mark.parametrize("arguments, expected", [
    (["--country", "XYZ"], "XYZ"),  # 8: checked although --no-energy is given.
    (["--set", "epochs=1000000000"], "epochs must be between 1 and 100,000, got 1,000,000,000"),
    (["--set", "epochs=-1"], "epochs must be between 1 and 100,000, got -1"),
    (["--set", "hidden_units=100000000"], "hidden_units must be between 1 and 100,000"),
    (["--set", "epochs=٣"], "bad value for 'epochs'"),
    (["--repeats", "100000"], "--repeats must be between 1 and 1,000"),
    (["--set", "epochs=2,learning_rate=0.1"], "one --set per key=value"),
])
def test_8_9_10_bad_values_are_one_line_exit_2_naming_the_key(tmp_path, capfd, arguments, expected):
    status = main(["run", "mlp_mnist", "--variants", "numpy", "--no-energy", "--results-dir", str(tmp_path),
                   *arguments])
    err = capfd.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and expected in err, err
    assert "expected an integer; expected int" not in err
    assert not (tmp_path / "runs").exists()


def test_9_a_config_may_declare_its_own_bounds():
    class Tight(mlp_mnist.Config):
        BOUNDS = {"epochs": (1, 10)}

    with pytest.raises(config_module.ConfigError, match="epochs must be between 1 and 10, got 11"):
        config_module.apply_overrides(Tight(), {"epochs": "11"})


def test_9_a_long_plan_is_summed_up_not_listed():
    specs = runner.plan("mlp_mnist", ["numpy", "numpy_fast"], ["cpu"], {}, repeats=30, results_dir="unused",
                        energy=False)
    text = runner.describe_plan(specs)
    assert text.startswith("60 runs planned: 2 variant(s) (numpy, numpy_fast) x cpu x 30 repeat(s)")
    assert len(text) < 300
    assert runner.describe_plan(specs[:2]).count("mlp_mnist/") == 2


def test_9_running_out_of_memory_is_one_line_in_a_failed_record(tmp_path, capsys):
    row = results.ResultRow(run_id="m1", experiment="mlp_mnist", variant="numpy", device="cpu", seed=0)
    quiet = progress.Progress("t", "epoch", stream=io.StringIO(), interactive=False)
    with pytest.raises(MemoryError):
        with tracking.track(row, mlp_mnist.EXPERIMENT, tmp_path, data.DataOptions(),
                            tracking.EnergyTracker("FRA", "cpu", enabled=False), progress=quiet):
            raise MemoryError("Unable to allocate 745. GiB for an array")
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "out of memory" in err
    record = json.loads(results.record_path(tmp_path, "mlp_mnist", "m1").read_text())
    assert record["status"] == "failed" and record["error"].startswith("out of memory")


def test_10_an_interrupted_run_shows_no_forecast_error(tmp_path):
    row = results.ResultRow(run_id="f1", experiment="mlp_mnist", variant="numpy", device="cpu", seed=0)
    quiet = progress.Progress("t", "epoch", stream=io.StringIO(), interactive=False)
    with pytest.raises(KeyboardInterrupt):
        with tracking.track(row, mlp_mnist.EXPERIMENT, tmp_path, data.DataOptions(),
                            tracking.EnergyTracker("FRA", "cpu", enabled=False), progress=quiet) as record:
            record.expect_units(100)
            for _ in range(3):
                record.unit(0.01, loss=1.0)
            raise KeyboardInterrupt
    assert row.forecast_time_s is not None and row.forecast_time_error is None


def test_10_a_plot_without_labels_gets_no_legend_and_no_warning():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dlbench import plots

    figure, axis = plt.subplots()
    axis.plot([0, 1], [0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plots.add_legend(axis)
    assert axis.get_legend() is None
    axis.plot([0, 1], [1, 0], label="shown")
    plots.add_legend(axis)
    assert axis.get_legend() is not None
    plt.close(figure)
