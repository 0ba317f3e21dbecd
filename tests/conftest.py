"""Every test runs offline on the samples shipped in the package, never on the network or full data."""

import os

import pytest


@pytest.fixture(autouse=True)
def offline_sample_data(monkeypatch, tmp_path):
    # No data dir, an empty Keras cache and no download: loaders fall back to the shipped samples.
    monkeypatch.delenv("DLBENCH_DATA_DIR", raising=False)
    monkeypatch.delenv("DLBENCH_STRICT_DATA", raising=False)
    monkeypatch.setenv("DLBENCH_NO_DOWNLOAD", "1")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setenv("DLBENCH_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    for name in list(os.environ):
        if name.startswith("CODECARBON_"):
            monkeypatch.delenv(name)
