"""The defects listed in the core v2 issue, each reproduced as a user or a hostile tester would meet it.

Each test failed before the run-record store and the input checks; NumPy runs (no TensorFlow) keep
them fast."""

import errno
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from dlbench import results, runner
from dlbench.cli import main

QUICK = ["--variants", "numpy", "--set", "epochs=1 train_subset=200", "--no-energy"]


def _quick_run(results_dir, *extra):
    return main(["run", "mlp_mnist", *QUICK, "--results-dir", str(results_dir), *extra])


def test_a_csv_cut_at_its_end_glues_nothing_and_adds_no_false_failure(tmp_path, capfd):
    assert _quick_run(tmp_path) == 0
    csv_path = tmp_path / "mlp_mnist.csv"
    with open(csv_path, "r+b") as handle:  # truncate -s -1: the final newline is gone.
        handle.truncate(csv_path.stat().st_size - 1)
    assert _quick_run(tmp_path) == 0 and _quick_run(tmp_path) == 0
    rows = results.read_rows(csv_path)
    assert [row["status"] for row in rows] == ["ok", "ok", "ok"]
    assert all(row["variant"] == "numpy" and row["run_id"] for row in rows)
    capfd.readouterr()
    assert main(["compare", "mlp_mnist", "--results-dir", str(tmp_path)]) == 0
    assert " 3 " in capfd.readouterr().out  # One group of three runs, not garbled rows.


def test_a_hand_edited_csv_is_kept_aside_and_the_rows_come_back(tmp_path, capfd):
    assert _quick_run(tmp_path) == 0
    csv_path = tmp_path / "mlp_mnist.csv"
    csv_path.write_text("alpha,beta,gamma\n1,2,3\n")  # A damaged header and a stray row.
    assert _quick_run(tmp_path) == 0
    assert len(results.read_rows(csv_path)) == 2
    assert any(path.name.startswith("mlp_mnist.csv.edited-") for path in tmp_path.iterdir())
    assert "was changed by hand since dlbench wrote it; moved it to" in capfd.readouterr().err


def test_a_full_disk_is_a_clear_error_and_never_a_partial_record(tmp_path, monkeypatch, capsys):
    from dlbench import worker

    [spec] = runner.plan("mlp_mnist", ["numpy"], ["cpu"], {"epochs": "1", "train_subset": "100"},
                         results_dir=str(tmp_path), energy=False)
    real_write = os.write

    def full_disk(descriptor, data):
        if str(os.readlink(f"/proc/self/fd/{descriptor}")).startswith(str(tmp_path / "runs")):
            real_write(descriptor, bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(descriptor, data)

    monkeypatch.setattr(os, "write", full_disk)
    assert worker.main(spec) == runner.EXIT_NO_RECORD  # It said why in one line; the parent will not repeat it.
    err = capsys.readouterr().err
    assert "No space left on device" in err and "cannot write run record" in err
    monkeypatch.setattr(os, "write", real_write)
    assert not results.has_record(tmp_path, "mlp_mnist", spec.run_id)
    assert not [path for path in (tmp_path / "runs" / "mlp_mnist").iterdir() if path.suffix == ".json"]


def test_an_unusable_results_dir_is_exit_2_before_anything_runs(tmp_path, capfd):
    (tmp_path / "a_file").write_text("")
    assert _quick_run(tmp_path / "a_file" / "results") == 2
    captured = capfd.readouterr()
    assert "dlbench: error: cannot create results directory" in captured.err and len(captured.err.strip().splitlines()) == 1
    assert "run " not in captured.out  # No worker was started.


@pytest.mark.parametrize("arguments, message", [
    (["--seed", "-1"], "--seed must be in 0..4294967295"),
    (["--seed", "4294967295", "--repeats", "2"], "--seed must be in 0..4294967295"),
    (["--country", "XYZ"], "unknown country code 'XYZ'"),
    (["--set", "learning_rate=nan"], "expected a finite number"),
    (["--set", "l2=inf"], "expected a finite number"),
    (["--repeats", "many"], "argument --repeats: invalid int value"),
    (["--no-such-option"], "unrecognized arguments: --no-such-option"),
])
def test_bad_input_is_one_line_and_exit_2_before_anything_runs(tmp_path, capfd, arguments, message):
    assert _exit_status(["run", "mlp_mnist", "--results-dir", str(tmp_path), *arguments]) == 2
    err = capfd.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("dlbench: error:")
    assert not (tmp_path / "runs").exists()


def _exit_status(argv):
    """What the `dlbench` command exits with: argparse's errors leave through SystemExit."""
    try:
        return main(argv)
    except SystemExit as exit:
        return exit.code


@pytest.mark.parametrize("content", [b"not a zip file at all", None])
def test_data_errors_are_a_failed_row_and_one_line_naming_the_file(tmp_path, capfd, content):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    if content is None:  # An npz with the wrong keys.
        np.savez(data_dir / "mnist.npz", images=np.zeros((2, 28, 28), np.uint8))
        extra = []
    else:
        (data_dir / "mnist.npz").write_bytes(content)
        extra = ["--strict-data"]
    status = _quick_run(tmp_path / "results", "--data-dir", str(data_dir), *extra)
    assert status == 1
    err = capfd.readouterr().err
    assert "Traceback" not in err
    [line] = [line for line in err.splitlines() if line.startswith("dlbench: error:")]
    assert str(data_dir / "mnist.npz") in line
    [row] = results.read_records(tmp_path / "results", "mlp_mnist")
    assert row["status"] == "failed" and "DataError" in row["error"]


def test_strict_mode_without_data_is_one_line_too(tmp_path, capfd):
    status = _quick_run(tmp_path / "results", "--strict-data", "--data-dir", str(tmp_path / "empty"))
    assert status == 1
    err = capfd.readouterr().err
    assert "Traceback" not in err and "dlbench: error: full mnist data not found" in err


def test_a_numpy_run_never_imports_tensorflow(tmp_path):
    [spec] = runner.plan("mlp_mnist", ["numpy"], ["cpu"], {"epochs": "1", "train_subset": "100"},
                         results_dir=str(tmp_path), energy=False)
    probe = ("import json, sys\n"
             "from dlbench import runner, worker\n"
             f"status = worker.main(runner.RunSpec(**json.loads({json.dumps(json.dumps(spec.__dict__))})))\n"
             "print('STATUS', status, 'LOADED', sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n")
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                            env=runner.child_environment("cpu")).stdout
    assert "STATUS 0 LOADED []" in output


def test_list_shows_metrics_units_and_real_defaults(capsys):
    assert main(["list", "--keys"]) == 0  # The key table is behind --keys (issue 20).
    listing = capsys.readouterr().out
    assert "default None" not in listing
    assert "metric test_accuracy (higher is better), progress per epoch" in listing
    assert "--set learning_rate=  (float, default 0.001; fc_sgd: 0.01, fc_adam: 0.0001)" in listing
