"""Every test runs offline on the samples shipped in the package, never on the network or full data."""

import os
import signal

import pytest


def make_offline(environment, folder):
    """No data dir, an empty Keras cache and no download: loaders fall back to the shipped samples."""
    environment.delenv("DLBENCH_DATA_DIR", raising=False)
    environment.delenv("DLBENCH_STRICT_DATA", raising=False)
    environment.setenv("DLBENCH_NO_DOWNLOAD", "1")
    environment.setenv("KERAS_HOME", str(folder / "keras_home"))
    environment.setenv("DLBENCH_RESULTS_DIR", str(folder / "results"))
    # Its own measurement lock: tests never wait for (or block) real runs on this machine.
    environment.setenv("DLBENCH_LOCK_DIR", str(folder / "lock"))
    environment.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    for name in list(os.environ):
        if name.startswith("CODECARBON_"):
            environment.delenv(name)


@pytest.fixture(autouse=True, scope="session")
def ctrl_c_reaches_the_tests():
    """Started in the background by a non-interactive shell (`cmd &`, nohup), pytest inherits SIGINT
    ignored, and so would every process it starts: the Ctrl-C tests would then see their runs finish
    instead of stop. Restore Python's handler (children then start with the default action)."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def offline_sample_data(monkeypatch, tmp_path):
    make_offline(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def offline_module():
    """The same for a module fixture, which is set up before the per-test environment above."""
    import tempfile
    from pathlib import Path

    with pytest.MonkeyPatch.context() as environment, tempfile.TemporaryDirectory() as folder:
        make_offline(environment, Path(folder))
        yield


@pytest.fixture
def run_in_process(tmp_path):
    """Run one variant of an experiment in this process (energy off, progress quiet), as the worker
    does; returns the finished row and its extra metrics."""
    import dataclasses
    import io
    import json

    from dlbench import data, progress, registry, results, tracking

    def run(name, variant, **overrides):
        experiment = registry.get(name)
        config = dataclasses.replace(experiment.variants[variant].config, **overrides)
        config.validate()
        row = results.ResultRow(run_id=f"test-{variant}", experiment=name, variant=variant, device="cpu", seed=0)
        quiet = progress.Progress(name, experiment.progress_unit, stream=io.StringIO(), interactive=False)
        with tracking.track(row, experiment, tmp_path, data.DataOptions(allow_download=False),
                            tracking.EnergyTracker("FRA", "cpu", enabled=False), progress=quiet) as record:
            experiment.run(config, variant, record)
        return row, json.loads(row.extra_metrics or "{}")

    return run
