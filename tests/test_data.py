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


# --------------------------------------------------------------------------------------------------
# A found file that cannot be used: one line that names it and says how to fix it
# --------------------------------------------------------------------------------------------------


def _sample_arrays():
    with np.load(data.sample_path("mnist_sample.npz")) as sample:
        return {key: sample[key][:20] for key in data.SPLIT_KEYS}


def _load_error(tmp_path) -> str:
    with pytest.raises(data.DataError) as error:
        data.load("mnist", data.DataOptions(data_dir=str(tmp_path), allow_download=False))
    message = str(error.value)
    assert message.startswith(f"cannot read mnist data from {tmp_path / 'mnist.npz'}: ")
    assert "\n" not in message
    assert message.endswith("Replace it with a good copy (README.md, section Data) or remove it from the data "
                            "directory to use the Keras cache or the shipped sample.")
    return message


def test_random_bytes_are_a_data_error(tmp_path):
    (tmp_path / "mnist.npz").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    assert "not an npz file" in _load_error(tmp_path)


def test_truncated_file_is_a_data_error(tmp_path):
    np.savez(tmp_path / "mnist.npz", **_sample_arrays())
    path = tmp_path / "mnist.npz"
    path.write_bytes(path.read_bytes()[:3000])
    assert "damaged or truncated npz file" in _load_error(tmp_path)


def test_empty_file_and_directory_are_data_errors(tmp_path):
    (tmp_path / "mnist.npz").write_bytes(b"")
    assert "empty file" in _load_error(tmp_path)
    (tmp_path / "mnist.npz").unlink()
    (tmp_path / "mnist.npz").mkdir()
    assert "Is a directory" in _load_error(tmp_path)


def test_npz_without_the_keras_keys_is_a_data_error(tmp_path):
    arrays = _sample_arrays()
    np.savez(tmp_path / "mnist.npz", images=arrays["x_train"], labels=arrays["y_train"])
    assert "missing array(s) x_train, y_train, x_test, y_test (it holds: images, labels)" in _load_error(tmp_path)


@pytest.mark.parametrize("key, change, reason", [
    ("x_train", lambda x: x.reshape(len(x), -1), "x_train has shape (20, 784), expected (N, 28, 28)"),
    ("x_test", lambda x: x[:, :14], "x_test has shape (20, 14, 28), expected (N, 28, 28)"),
    ("x_train", lambda x: x.astype(np.float32) / 255, "x_train has dtype float32, expected uint8"),
    ("x_train", lambda x: x[:0], "x_train holds no images"),
    ("y_train", lambda y: y[:10], "y_train has shape (10,), expected (20,)"),
    ("y_test", lambda y: y.astype(np.float64), "y_test has dtype float64, expected integer labels"),
    ("y_test", lambda y: y + 5, "expected 0..9"),
])
def test_wrong_shapes_dtypes_or_labels_are_data_errors(tmp_path, key, change, reason):
    arrays = _sample_arrays()
    arrays[key] = change(arrays[key])
    np.savez(tmp_path / "mnist.npz", **arrays)
    assert reason in _load_error(tmp_path)


@pytest.mark.parametrize("name", ["mnist", "imdb"])
def test_damaged_shipped_sample_says_to_reinstall(tmp_path, monkeypatch, name):
    (tmp_path / f"{name}_sample.npz").write_bytes(b"PK\x03\x04 not really a zip")
    monkeypatch.setattr(data.common, "sample_path", lambda file_name: tmp_path / file_name)
    with pytest.raises(data.DataError, match=f"cannot read {name} data from .*{name}_sample.npz: .*reinstall") as error:
        data.load(name, data.DataOptions(allow_download=False))
    assert "\n" not in str(error.value)


def test_strict_mode_message_is_one_line_and_says_where_it_looked(tmp_path):
    options = data.DataOptions(data_dir=str(tmp_path), strict=True, allow_download=False)
    with pytest.raises(data.DataError) as error:  # DataUnavailableError is a DataError.
        data.load("mnist", options)
    message = str(error.value)
    assert isinstance(error.value, data.DataUnavailableError)
    assert "\n" not in message
    assert f"data dir: {tmp_path / 'mnist.npz'} does not exist" in message
    assert f"Keras cache {data.keras_cache_dir() / 'mnist.npz'}: absent; download disabled" in message
