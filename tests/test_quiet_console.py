"""A quiet console: no TensorFlow start-up lines, the sample warning and slow-run notes once per command,
downloads without Keras, a short `dlbench list`, a comparison that fits 120 columns."""

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from dlbench import data, report, results, runner
from dlbench.cli import main

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_WARNING = "WARNING: full mnist data not found"
# A proxy nobody listens on: every download fails at once, as offline, without touching the network.
NO_NETWORK = {"https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9", "no_proxy": ""}


def _offline_environment(**extra) -> dict:
    environment = {key: value for key, value in os.environ.items() if key != "DLBENCH_NO_DOWNLOAD"}
    return {**environment, **NO_NETWORK, **extra}


# --- make experiment, without a data dir -------------------------------------------------------------

def test_a_run_without_data_prints_no_tensorflow_line_and_the_sample_warning_once(tmp_path):
    # What `make experiment` does on a fresh clone, trimmed: two NumPy runs and a Keras one (XLA), the
    # download tried (and failing, offline), and every worker's output on the same console.
    command = [sys.executable, "-m", "dlbench.cli", "run", "mlp_mnist", "--variants", "numpy,numpy_fast,keras_fast",
               "--devices", "cpu", "--set", "epochs=1 train_subset=200", "--no-energy",
               "--results-dir", str(tmp_path)]
    finished = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
                              env=_offline_environment(), cwd=ROOT)
    console = finished.stdout
    assert finished.returncode == 0, console
    noisy = [line for line in console.splitlines()
             if any(word in line.lower() for word in ("cuda", "onednn", "absl", "cpu_feature_guard", "xla"))]
    assert noisy == []
    assert console.count(SAMPLE_WARNING) == 1 and "Downloading data from" not in console
    assert console.count("[dlbench] downloading") == 1  # Tried once by the parent, not by every run.
    rows = results.read_records(tmp_path, "mlp_mnist")
    assert sorted(row["dataset_source"] for row in rows) == ["sample"] * 3
    assert all(row["status"] == "ok" for row in rows)


def test_an_offline_download_falls_back_at_once_without_importing_keras():
    probe = ("import sys, time\n"
             "from dlbench import data\n"
             "start = time.monotonic()\n"
             "dataset = data.load('mnist', data.DataOptions(allow_download=True))\n"
             "print('SOURCE', dataset.source, 'SECONDS', round(time.monotonic() - start, 1),\n"
             "      'LOADED', sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n")
    finished = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                              env=_offline_environment())
    [line] = [line for line in finished.stdout.splitlines() if line.startswith("SOURCE")]
    _, source, _, seconds, _, loaded = line.split(" ", 5)
    assert (source, loaded) == ("sample", "[]") and float(seconds) < 5, finished.stderr
    assert "download: URLError" in finished.stderr and finished.stderr.count(SAMPLE_WARNING) == 1


# --- the download, where keras.utils.get_file keeps it --------------------------------------------------

@pytest.fixture
def served_mnist(tmp_path, monkeypatch):
    """A small MNIST-shaped mnist.npz served over HTTP on this machine; the loaders pointed at it."""
    folder = tmp_path / "served"
    folder.mkdir()
    rng = np.random.default_rng(0)
    np.savez(folder / "mnist.npz", x_train=rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
             y_train=np.arange(30) % 10, x_test=rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
             y_test=np.arange(10))
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/mnist.npz"
    digest = hashlib.sha256((folder / "mnist.npz").read_bytes()).hexdigest()

    def point_at(sha256):
        full = data.FullData(file_name="mnist.npz", url=url, cache_name="mnist.npz", sha256=sha256)
        monkeypatch.setattr(data.mnist, "MNIST_FULL_DATA", full)
        monkeypatch.setitem(data.FULL_DATA, "mnist", full)

    point_at(digest)
    yield point_at
    server.shutdown()


def test_the_download_lands_where_keras_keeps_it_and_is_read_from_there(served_mnist, capsys):
    dataset = data.load("mnist", data.DataOptions(allow_download=True))
    cached = data.keras_cache_dir() / "mnist.npz"
    assert dataset.source == data.SOURCE_FULL and len(dataset.x_train) == 30 and cached.exists()
    assert dataset.origin.startswith("keras download: http://127.0.0.1:")
    again = data.load("mnist", data.DataOptions(allow_download=False))
    assert again.origin == f"keras cache: {cached}" and SAMPLE_WARNING not in capsys.readouterr().err


def test_a_download_with_the_wrong_checksum_is_not_kept(served_mnist, capsys):
    served_mnist("0" * 64)
    dataset = data.load("mnist", data.DataOptions(allow_download=True))
    assert dataset.source == data.SOURCE_SAMPLE
    assert "sha256" in capsys.readouterr().err
    assert list(data.keras_cache_dir().iterdir()) == []  # Neither the file nor a partial one.


def test_the_parent_downloads_once_before_the_runs(served_mnist, tmp_path, capsys):
    planned = runner.plan("mlp_mnist", ["numpy", "numpy_fast"], ["cpu"], {}, repeats=2, results_dir=str(tmp_path),
                          data_options=data.DataOptions(allow_download=True), energy=False)
    specs = runner.prepare_data(planned)
    err = capsys.readouterr().err
    assert err.count("[dlbench] downloading") == 1 and SAMPLE_WARNING not in err
    assert (data.keras_cache_dir() / "mnist.npz").exists() and len(specs) == 4
    assert not any(spec.data_options["sample_announced"] for spec in specs)


# --- once per command ------------------------------------------------------------------------------------

def test_the_sample_warning_is_said_once_by_the_parent_and_never_by_the_runs(tmp_path, capsys):
    specs = runner.plan("mlp_mnist", None, ["cpu"], {}, repeats=2, results_dir=str(tmp_path))
    assert SAMPLE_WARNING not in capsys.readouterr().err  # Planning only checks: a bad plan stays one line.
    specs = runner.prepare_data(specs)
    assert capsys.readouterr().err.count(SAMPLE_WARNING) == 1 and len(specs) == 8
    for spec in specs:
        options = data.DataOptions(**spec.data_options)
        assert options.sample_announced and not options.allow_download
    dataset = data.load("mnist", data.DataOptions(**specs[0].data_options))
    assert dataset.source == data.SOURCE_SAMPLE and capsys.readouterr().err == ""


def test_slow_notes_are_said_once_and_only_for_the_full_data(tmp_path, capsys):
    runner.prepare_data(runner.plan("cnn_cifar", None, ["cpu"], {}, results_dir=str(tmp_path)))
    assert "note:" not in capsys.readouterr().err  # The sample trains in minutes: no "about an hour".
    cache = data.keras_cache_dir()
    cache.mkdir(parents=True)
    (cache / data.CIFAR10_FULL_DATA.cache_name).write_bytes(b"")  # Found: the runs will read it.
    runner.prepare_data(runner.plan("cnn_cifar", None, ["cpu"], {}, results_dir=str(tmp_path)))
    [note] = [line for line in capsys.readouterr().err.splitlines() if "note:" in line]
    assert note.startswith("[dlbench] note: cnn_cifar/wide,wide_nodrop,wide_nobn_nodrop on CPU: about 3.5 minutes")


# --- TensorFlow's lines in this process (predict) -------------------------------------------------------

def test_native_stderr_is_kept_off_the_console_and_shown_when_the_block_fails(capfd):
    with data.native_stderr_quieted():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
    assert "absl" not in capfd.readouterr().err
    with pytest.raises(RuntimeError):
        with data.native_stderr_quieted():
            os.write(2, b"E0000 cuda_platform.cc: failed call to cuInit\n")
            raise RuntimeError("model did not load")
    assert "failed call to cuInit" in capfd.readouterr().err
    print("after", file=sys.stderr)  # File descriptor 2 is the console again.
    assert capfd.readouterr().err == "after\n"


# --- list and compare --------------------------------------------------------------------------------------

def test_list_is_one_line_per_variant_within_120_columns_and_keys_behind_a_flag(capsys):
    from dlbench import registry, studies

    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    variants = sum(len(registry.get(name).variants) for name in registry.EXPERIMENTS)
    assert len(lines) == 2 * len(registry.EXPERIMENTS) + variants + 1 + len(studies.STUDIES) + 1
    assert max(map(len, lines)) <= 120 and not any("--set" in line for line in lines[:-1])
    assert lines[-1].endswith("dlbench list --keys")
    assert main(["list", "--keys"]) == 0
    assert "  --set learning_rate=  (float, default 0.001; fc_sgd: 0.01, fc_adam: 0.0001)" in capsys.readouterr().out


def _record(results_dir, run_id, variant, config, **fields):
    results.write_record(results_dir, results.ResultRow(**{
        "run_id": run_id, "timestamp_utc": "2026-12-01T10:00:00+00:00", "experiment": "mlp_mnist",
        "variant": variant, "device": "cpu", "status": "ok", "dataset_source": "full", "metric": "test_accuracy",
        "metric_direction": "max", "metric_value": 0.97, "config": json.dumps(config), "machine": "AMD EPYC x2, 24 GiB",
        "time_total_s": 10.0, "time_first_unit_s": 1.6, "time_steady_unit_s": 1.47, "energy_kwh": 2e-5,
        "co2_kg": 1e-6, "cpu_other_share": 0.01, "contended": False, **fields}))


def test_compare_fits_120_columns_unless_wide(tmp_path, capsys):
    settings = {"epochs": 30, "learning_rate": 0.05, "hidden_units": [512, 256, 128], "batch_size": 256,
                "validation_fraction": 0.2, "early_stopping_patience": 5}
    for index in range(3):
        _record(tmp_path, f"fast{index}", "keras_fast", settings, metric_value=0.97 + index / 1000,
                time_steady_unit_s=1.40 + index / 100)
        _record(tmp_path, f"numpy{index}", "numpy_fast", {}, time_steady_unit_s=2.1 + index / 100)
    _record(tmp_path, "busy", "keras_fast", settings, cpu_other_share=0.6, contended=True)
    table = report.compare(tmp_path, "mlp_mnist")
    wide, narrow = report.format_table(table, width=None), report.format_table(table)
    assert max(map(len, wide.splitlines())) > 120 and "first s" in wide and "early_stopping_patience=5" in wide
    assert max(map(len, narrow.splitlines())) <= 120 and "(+1 contended left out)" in narrow
    assert narrow.endswith("(to fit 120 columns: not shown: first s, g CO2; config text cut. dlbench compare --wide "
                           "shows everything)")
    assert main(["compare", "mlp_mnist", "--results-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith(narrow + "\n")
    assert main(["compare", "mlp_mnist", "--results-dir", str(tmp_path), "--wide"]) == 0
    assert capsys.readouterr().out.startswith(wide + "\n")
