import numpy as np
import pytest

from dlbench import data


def test_falls_back_loudly_to_the_real_sample(capsys):
    dataset = data.load("mnist", data.DataOptions.from_environment())
    assert dataset.source == "sample" and "sample" in dataset.origin
    assert dataset.x_train.shape == (2000, 28, 28) and dataset.x_train.dtype == np.uint8
    assert dataset.x_test.shape == (500, 28, 28)
    assert np.bincount(dataset.y_train, minlength=10).tolist() == [200] * 10
    warning = capsys.readouterr().err
    assert "WARNING: full mnist data not found" in warning and "--data-dir" in warning


def test_data_dir_wins_when_it_has_the_file(tmp_path):
    sample = data.load("mnist", data.DataOptions())
    np.savez(tmp_path / "mnist.npz", x_train=sample.x_train[:30], y_train=sample.y_train[:30].astype(np.uint8),
             x_test=sample.x_test[:10], y_test=sample.y_test[:10])
    dataset = data.load("mnist", data.DataOptions(data_dir=str(tmp_path)))
    assert dataset.source == "full" and dataset.origin == str(tmp_path / "mnist.npz")
    assert len(dataset.x_train) == 30
    assert dataset.y_train.dtype == np.int64  # Labels alike from every loader, as Keras' own mnist.npz stores uint8.


def test_environment_variable_gives_the_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DLBENCH_DATA_DIR", str(tmp_path))
    assert data.DataOptions.from_environment().data_dir == str(tmp_path)
    assert data.DataOptions.from_environment(data_dir="/elsewhere").data_dir == "/elsewhere"


def test_strict_mode_refuses_the_sample_and_says_how_to_fix_it(tmp_path):
    options = data.DataOptions(data_dir=str(tmp_path), strict=True, allow_download=False)
    with pytest.raises(data.DataUnavailableError, match="DLBENCH_DATA_DIR=DIR") as error:
        data.load("mnist", options)
    assert str(tmp_path / "mnist.npz") in str(error.value)


def test_unknown_dataset_is_an_error():
    with pytest.raises(ValueError, match="unknown dataset 'mnistt'"):
        data.load("mnistt")
