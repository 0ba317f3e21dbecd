"""The Python API for notebooks: dlbench.run / compare / write_report, and the example that uses it."""

import subprocess
import sys
from pathlib import Path

import pytest

import dlbench
from dlbench import api
from dlbench.cli import main

ROOT = Path(__file__).resolve().parent.parent
QUICK = {"epochs": 1, "train_subset": 200}


def test_import_dlbench_loads_neither_pandas_nor_tensorflow():
    probe = ("import sys, dlbench\n"
             "print('LOADED', sorted(m for m in ('pandas', 'tensorflow', 'keras', 'matplotlib') if m in sys.modules))\n")
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                            check=True).stdout
    assert "LOADED []" in output


def test_run_returns_the_runs_it_made_and_relays_their_output_through_sys_stdout(tmp_path, capsys):
    runs = dlbench.run("mlp_mnist", variants=["numpy", "numpy_fast"], overrides=QUICK, results_dir=tmp_path,
                       energy=False)
    assert list(runs["variant"]) == ["numpy", "numpy_fast"] and list(runs["status"]) == ["ok", "ok"]
    assert (runs["dataset_source"] == "sample").all() and (runs["units_run"] == 1).all()
    assert runs["test_accuracy"].dtype.kind == "f" and runs["metric_value"].notna().all()
    # capsys sees sys.stdout only, never a child's file descriptors: the workers' lines came through it,
    # as a notebook needs them to.
    printed = capsys.readouterr()
    assert "epoch 1/1" in printed.out and "[dlbench] mlp_mnist/numpy/cpu: test_accuracy=" in printed.out
    assert printed.err.count("WARNING: full mnist data not found") == 1

    again = dlbench.run("mlp_mnist", variants="numpy", overrides=QUICK, results_dir=tmp_path, energy=False)
    assert len(again) == 1 and again.loc[0, "run_id"] not in set(runs["run_id"])  # Only the runs just made.

    table = dlbench.compare("mlp_mnist", results_dir=tmp_path)
    assert dict(zip(table["variant"], table["runs"])) == {"numpy": 2, "numpy_fast": 1}


@pytest.mark.parametrize("value, text", [(1, "1"), (0.1, "0.1"), (1e-5, "1e-05"), (True, "true"), (False, "false"),
                                         (None, "none"), ((64, 32), "64,32"), ([128], "128"), ("adam", "adam")])
def test_python_values_become_the_set_text(value, text):
    assert api.setting_text("key", value) == text


@pytest.mark.parametrize("call, command", [
    (dict(overrides={"epoch": 1}), ["--set", "epoch=1"]),
    (dict(overrides={"epochs": "many"}), ["--set", "epochs=many"]),
    (dict(overrides={"learning_rate": -1.0}), ["--set", "learning_rate=-1.0"]),
    (dict(variants=["numpy", "no_such_variant"]), ["--variants", "numpy,no_such_variant"]),
    (dict(devices=["tpu"]), ["--devices", "tpu"]),
    (dict(repeats=0), ["--repeats", "0"]),
])
def test_bad_input_is_a_value_error_with_the_command_lines_message(tmp_path, capsys, call, command):
    with pytest.raises(ValueError) as raised:
        dlbench.run("mlp_mnist", results_dir=tmp_path, energy=False, **call)
    capsys.readouterr()
    assert main(["run", "mlp_mnist", *command, "--results-dir", str(tmp_path), "--no-energy"]) == 2
    assert capsys.readouterr().err.strip() == f"dlbench: error: {raised.value}"
    assert not (tmp_path / "runs").exists()  # Nothing ran.


def test_an_unknown_experiment_or_a_value_of_no_setting_type_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="unknown experiment 'mlp'; valid: mlp_mnist"):
        dlbench.run("mlp", results_dir=tmp_path)
    with pytest.raises(ValueError, match="bad value for 'epochs'"):
        dlbench.run("mlp_mnist", overrides={"epochs": {"a": 1}}, results_dir=tmp_path)


def test_the_notebook_example_runs(tmp_path):
    # As a script, in the test's own results folder (conftest sets DLBENCH_RESULTS_DIR), offline.
    finished = subprocess.run([sys.executable, str(ROOT / "examples" / "notebook_api.py")], capture_output=True,
                              text=True, timeout=300, cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr
    assert "numpy_fast" in finished.stdout and "metric_median" in finished.stdout
    assert len(list((tmp_path / "results" / "runs" / "mlp_mnist").glob("*.json"))) == 2
