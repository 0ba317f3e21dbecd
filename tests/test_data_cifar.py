"""The cifar10 loader: data dir (JPEG bytes, decoded once and cached), Keras, shipped sample, strict mode."""

import os
import shutil

import numpy as np
import pytest

from dlbench import data


@pytest.fixture
def jpeg_data_dir(tmp_path, monkeypatch):
    """A data dir holding a file in the shared copy's JPEG-bytes layout (the real images of the sample)."""
    directory = tmp_path / "datasets"
    directory.mkdir()
    shutil.copy(data.sample_path("cifar10_sample.npz"), directory / data.CIFAR10_FILE)
    monkeypatch.setenv("DLBENCH_CACHE_DIR", str(tmp_path / "cache"))
    return directory


def test_sample_fallback_is_real_stratified_and_says_so(capsys):
    dataset = data.load("cifar10", data.DataOptions(allow_download=False))
    assert dataset.source == data.SOURCE_SAMPLE
    assert "JPEG quality-75" in dataset.origin
    assert dataset.x_train.shape == (1000, 32, 32, 3) and dataset.x_train.dtype == np.uint8
    assert dataset.x_test.shape == (200, 32, 32, 3)
    assert dataset.y_train.shape == (1000,) and dataset.y_test.shape == (200,)
    assert np.bincount(dataset.y_train).tolist() == [100] * 10
    assert np.bincount(dataset.y_test).tolist() == [20] * 10
    assert dataset.class_names[0] == "airplane"
    # Natural images, not noise or blanks: the shared copy's train mean is about 121 over all channels.
    assert 100 < dataset.x_train.mean() < 140
    assert "WARNING: full cifar10 data not found" in capsys.readouterr().err


def test_data_dir_file_is_decoded_cached_and_reused(jpeg_data_dir, tmp_path, monkeypatch):
    options = data.DataOptions(data_dir=str(jpeg_data_dir), allow_download=False)
    first = data.load("cifar10", options)
    assert first.source == data.SOURCE_FULL
    assert str(jpeg_data_dir / data.CIFAR10_FILE) in first.origin and "JPEG quality-75" in first.origin
    cached = data.decoded_cache_path(jpeg_data_dir / data.CIFAR10_FILE)
    assert cached.parent == tmp_path / "cache" and cached.exists()
    assert sorted(p.name for p in jpeg_data_dir.iterdir()) == [data.CIFAR10_FILE]  # Data dir untouched.

    # The second load must come from the cache: decoding is made impossible.
    def no_decoding(path):
        raise AssertionError("decoded again instead of using the cache")

    monkeypatch.setattr(data.cifar10, "_decode_cifar10_jpeg_npz", no_decoding)
    second = data.load("cifar10", options)
    assert "decoded cache" in second.origin
    np.testing.assert_array_equal(second.x_train, first.x_train)
    np.testing.assert_array_equal(second.y_test, first.y_test)


def test_unreadable_cache_is_decoded_again_and_replaced(jpeg_data_dir):
    cached = data.decoded_cache_path(jpeg_data_dir / data.CIFAR10_FILE)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not an npz file")
    options = data.DataOptions(data_dir=str(jpeg_data_dir), allow_download=False)
    with pytest.warns(UserWarning, match="ignoring unreadable decoded cache"):
        dataset = data.load("cifar10", options)
    assert dataset.x_train.shape == (1000, 32, 32, 3)
    assert "decoded cache" in data.load("cifar10", options).origin  # Replaced by a good one.


def test_changed_source_file_misses_the_cache(jpeg_data_dir):
    path = jpeg_data_dir / data.CIFAR10_FILE
    before = data.decoded_cache_path(path)
    status = path.stat()
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns + 1_000_000_000))
    assert data.decoded_cache_path(path) != before


def test_unwritable_cache_warns_and_still_loads(jpeg_data_dir, tmp_path, monkeypatch):
    not_a_directory = tmp_path / "a_file"
    not_a_directory.write_text("")
    monkeypatch.setenv("DLBENCH_CACHE_DIR", str(not_a_directory))
    with pytest.warns(UserWarning, match="could not write the decoded CIFAR-10 cache"):
        dataset = data.load("cifar10", data.DataOptions(data_dir=str(jpeg_data_dir), allow_download=False))
    assert dataset.source == data.SOURCE_FULL and "not cached" in dataset.origin


def test_keras_copy_is_used_without_a_data_dir_and_labels_are_flattened(monkeypatch):
    import keras

    sample = data.cifar10._decode_cifar10_jpeg_npz(data.sample_path("cifar10_sample.npz"))
    # Keras returns labels as (N, 1) uint8; the loader must hand out (N,).
    keras_shaped = ((sample["x_train"], sample["y_train"].reshape(-1, 1).astype(np.uint8)),
                    (sample["x_test"], sample["y_test"].reshape(-1, 1).astype(np.uint8)))
    monkeypatch.setattr(keras.datasets.cifar10, "load_data", lambda: keras_shaped)
    dataset = data.load("cifar10", data.DataOptions(allow_download=True))
    assert dataset.source == data.SOURCE_FULL and dataset.origin.startswith("keras download")
    assert dataset.y_train.shape == (1000,) and dataset.y_test.shape == (200,)


def test_strict_mode_refuses_the_sample():
    with pytest.raises(data.DataUnavailableError, match="cifar10_jpeg_q75.npz"):
        data.load("cifar10", data.DataOptions(strict=True, allow_download=False))


def test_normalize_labels_accepts_n_and_n_by_1_only():
    assert data.normalize_labels(np.array([[3], [1]], np.uint8)).tolist() == [3, 1]
    assert data.normalize_labels(np.array([3, 1])).dtype == np.int64
    with pytest.raises(ValueError, match=r"\(N,\) or \(N, 1\)"):
        data.normalize_labels(np.zeros((2, 2)))


def test_bad_offsets_are_a_clear_error():
    with pytest.raises(ValueError, match="offsets"):
        data.decode_jpeg_images(np.zeros(10, np.uint8), np.array([0, 5]))


def _cifar_load_error(directory) -> str:
    with pytest.raises(data.DataError) as error:
        data.load("cifar10", data.DataOptions(data_dir=str(directory), allow_download=False))
    message = str(error.value)
    assert message.startswith(f"cannot read cifar10 data from {directory / data.CIFAR10_FILE}: ")
    assert "\n" not in message and "Replace it with a good copy (README.md, section Data)" in message
    return message


def test_jpeg_bytes_that_do_not_decode_are_a_data_error(jpeg_data_dir, tmp_path):
    path = jpeg_data_dir / data.CIFAR10_FILE
    with np.load(path) as stored:
        arrays = {key: stored[key] for key in stored.files}
    arrays["train_jpeg_bytes"] = arrays["train_jpeg_bytes"].copy()
    arrays["train_jpeg_bytes"][:500] = 0  # The first image loses its JPEG header.
    np.savez(path, **arrays)
    assert "train_jpeg_bytes: JPEG image 0 (bytes 0.." in _cifar_load_error(jpeg_data_dir)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())  # Nothing cached.


def test_truncated_jpeg_is_a_data_error(jpeg_data_dir):
    path = jpeg_data_dir / data.CIFAR10_FILE
    with np.load(path) as stored:
        arrays = {key: stored[key] for key in stored.files}
    offsets = arrays["test_jpeg_offsets"]
    arrays["test_jpeg_bytes"] = arrays["test_jpeg_bytes"][:offsets[1] // 2]  # One image, cut in half.
    arrays["test_jpeg_offsets"] = np.array([0, offsets[1] // 2])
    arrays["y_test"] = arrays["y_test"][:1]
    np.savez(path, **arrays)
    assert "test_jpeg_bytes: JPEG image 0" in _cifar_load_error(jpeg_data_dir)


def test_random_bytes_and_missing_keys_are_data_errors(jpeg_data_dir):
    path = jpeg_data_dir / data.CIFAR10_FILE
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    assert "not an npz file" in _cifar_load_error(jpeg_data_dir)
    np.savez(path, x_train=np.zeros((2, 32, 32, 3), np.uint8))
    assert "missing array(s) train_jpeg_bytes" in _cifar_load_error(jpeg_data_dir)


def test_labels_that_do_not_match_the_images_are_a_data_error(jpeg_data_dir):
    path = jpeg_data_dir / data.CIFAR10_FILE
    with np.load(path) as stored:
        arrays = {key: stored[key] for key in stored.files}
    arrays["y_train"] = arrays["y_train"][:-1]
    np.savez(path, **arrays)
    assert "y_train has shape (999, 1), expected (1000,)" in _cifar_load_error(jpeg_data_dir)


def test_decoded_cache_with_wrong_shapes_is_decoded_again(jpeg_data_dir):
    cached = data.decoded_cache_path(jpeg_data_dir / data.CIFAR10_FILE)
    cached.parent.mkdir(parents=True)
    np.savez(cached, x_train=np.zeros((3, 28, 28), np.uint8), y_train=np.zeros(3, np.uint8),
             x_test=np.zeros((3, 28, 28), np.uint8), y_test=np.zeros(3, np.uint8))
    options = data.DataOptions(data_dir=str(jpeg_data_dir), allow_download=False)
    with pytest.warns(UserWarning, match="ignoring unreadable decoded cache"):
        dataset = data.load("cifar10", options)
    assert dataset.x_train.shape == (1000, 32, 32, 3)


def test_strict_mode_message_is_one_line():
    with pytest.raises(data.DataUnavailableError) as error:
        data.load("cifar10", data.DataOptions(strict=True, allow_download=False))
    message = str(error.value)
    assert "\n" not in message
    assert "data dir: none given" in message and "cifar-10-batches-py-target_archive" in message
