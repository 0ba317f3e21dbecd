"""The imdb loader (raw review text): data dir, Keras cache (extracted aclImdb tree or archive), shipped sample."""

import tarfile
from pathlib import Path

import numpy as np
import pytest

from dlbench import data

SHARED_COPY = Path("/work/shared/datasets") / data.IMDB_FILE

REVIEWS = {
    "train": {"neg": {"10_2": "Dull and far too long.", "2_1": "The worst film I have seen this year."},
              "pos": {"3_9": "A joy from start to finish, caf\u00e9 scenes and all \u2764", "11_10": "Superb."}},
    "test": {"neg": {"0_3": "Not worth the ticket."}, "pos": {"5_8": "<br /><br />Loved it."}},
}


def _texts(*items):
    texts = np.empty(len(items), dtype=object)
    texts[:] = items
    return texts


def _shared_layout_arrays():
    """A few reviews in the shared imdb_reviews.npz layout: object arrays of str, int64 labels, sorted by label."""
    return {
        "x_train": _texts("Awful.", "Boring plot.", "Wonderful acting.", "A masterpiece."),
        "y_train": np.array([0, 0, 1, 1], np.int64),
        "x_test": _texts("Terrible.", "Great fun."),
        "y_test": np.array([0, 1], np.int64),
        "rating_train": np.array([1, 2, 9, 10], np.int8), "rating_test": np.array([1, 8], np.int8),
        "id_train": np.array([0, 1, 0, 1], np.int32), "id_test": np.array([0, 0], np.int32),
    }


def _write_review_tree(root: Path):
    """A tiny extracted aclImdb/ folder: {train,test}/{neg,pos}/<id>_<rating>.txt plus an ignored unsup/."""
    for split, folders in REVIEWS.items():
        for folder, reviews in folders.items():
            (root / split / folder).mkdir(parents=True)
            for stem, text in reviews.items():
                (root / split / folder / f"{stem}.txt").write_bytes(text.encode("utf-8"))
    (root / "train" / "unsup").mkdir()
    (root / "train" / "unsup" / "0_0.txt").write_text("unlabelled, must be ignored")
    (root / "README").write_text("Large Movie Review Dataset v1.0")


def _expected_tree_texts(split):
    # Neg first, then pos; within a label by the numeric id of <id>_<rating>.txt.
    order = lambda item: int(item[0].split("_")[0])  # noqa: E731
    return [text for folder in ("neg", "pos") for _, text in sorted(REVIEWS[split][folder].items(), key=order)]


def _no_network(monkeypatch):
    from keras.src.utils import file_utils

    def refuse(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(file_utils, "urlretrieve", refuse)


# --------------------------------------------------------------------------------------------------
# Shipped sample
# --------------------------------------------------------------------------------------------------


def test_sample_fallback_is_real_balanced_text_and_says_so(capsys):
    dataset = data.load("imdb", data.DataOptions.from_environment())
    assert dataset.name == "imdb" and dataset.source == data.SOURCE_SAMPLE
    assert dataset.origin.startswith("dlbench sample: imdb_sample.npz") and "fixed seed" in dataset.origin
    assert dataset.class_names == ("negative", "positive")
    for texts, labels, count in ((dataset.x_train, dataset.y_train, 2000), (dataset.x_test, dataset.y_test, 500)):
        assert texts.shape == (count,) and texts.dtype == object
        assert all(type(text) is str and text for text in texts)
        assert labels.shape == (count,) and labels.dtype == np.int64
        assert np.bincount(labels, minlength=2).tolist() == [count // 2, count // 2]
    assert len(set(dataset.x_train) | set(dataset.x_test)) == 2500  # Distinct reviews, none repeated.
    # Whole real reviews: aclImdb's mean review length is about 1,300 characters.
    assert 1000 < np.mean([len(text) for text in dataset.x_train]) < 1700
    warning = capsys.readouterr().err
    assert "WARNING: full imdb data not found" in warning and "--data-dir" in warning
    assert "imdb_reviews.npz" in warning


def test_sample_is_small_compressed_and_needs_no_unpickling():
    path = data.sample_path("imdb_sample.npz")
    assert path.stat().st_size < 1_500_000
    with np.load(path, allow_pickle=False) as stored:
        assert all(stored[key].dtype != object for key in stored.files)
        assert stored["train_indices"].shape == (2000,) and stored["test_indices"].shape == (500,)


def test_decode_texts_checks_offsets_and_utf8():
    blob = np.frombuffer("ab\u00e9".encode(), np.uint8)
    assert data.decode_texts(blob, np.array([0, 1, 4])).tolist() == ["a", "b\u00e9"]
    with pytest.raises(ValueError, match="offsets"):
        data.decode_texts(blob, np.array([0, 2]))
    with pytest.raises(ValueError, match=r"text 1 \(bytes 1\.\.3\) is not UTF-8"):
        data.decode_texts(blob, np.array([0, 1, 3, 4]))  # Cuts the two bytes of the accented e apart.


# --------------------------------------------------------------------------------------------------
# Data directory
# --------------------------------------------------------------------------------------------------


def test_data_dir_file_in_the_shared_layout_is_used(tmp_path):
    arrays = _shared_layout_arrays()
    np.savez(tmp_path / data.IMDB_FILE, **arrays)  # Object arrays: saved pickled, as the shared copy is.
    dataset = data.load("imdb", data.DataOptions(data_dir=str(tmp_path), allow_download=False))
    assert dataset.source == data.SOURCE_FULL
    assert str(tmp_path / data.IMDB_FILE) in dataset.origin and dataset.origin.startswith("data dir: ")
    assert dataset.x_train.tolist() == arrays["x_train"].tolist() and dataset.x_train.dtype == object
    assert dataset.x_test.tolist() == ["Terrible.", "Great fun."]
    assert dataset.y_train.tolist() == [0, 0, 1, 1] and dataset.y_test.dtype == np.int64
    assert dataset.class_names == ("negative", "positive")


def test_fixed_width_unicode_texts_are_accepted_as_str(tmp_path):
    arrays = _shared_layout_arrays()
    arrays["x_train"] = arrays["x_train"].astype(str)
    np.savez(tmp_path / data.IMDB_FILE, **arrays)
    dataset = data.load("imdb", data.DataOptions(data_dir=str(tmp_path), allow_download=False))
    assert dataset.x_train.dtype == object and type(dataset.x_train[0]) is str


def _imdb_load_error(directory) -> str:
    with pytest.raises(data.DataError) as error:
        data.load("imdb", data.DataOptions(data_dir=str(directory), allow_download=False))
    message = str(error.value)
    assert not isinstance(error.value, data.DataUnavailableError)
    assert message.startswith(f"cannot read imdb data from {directory / data.IMDB_FILE}: ")
    assert "\n" not in message and message.endswith(data.common._DATA_DIR_FIX)
    return message


def _with(key, value):
    def change(arrays):
        arrays[key] = value
        return arrays
    return change


def _without(key):
    def change(arrays):
        del arrays[key]
        return arrays
    return change


@pytest.mark.parametrize("change, reason", [
    (_without("y_test"), "missing array(s) y_test (it holds: x_train, y_train, x_test, rating_train"),
    (_with("y_train", np.array([0, 1, 2, 1], np.int64)), "y_train has labels 0..2, expected 0..1"),
    (_with("y_test", np.array([0], np.int64)), "y_test has shape (1,), expected (2,)"),
    (_with("y_test", np.array([0.0, 1.0])), "y_test has dtype float64, expected integer labels"),
    (_with("x_train", _texts("fine", b"bytes, not str", "ok", "ok")), "x_train[1] is a bytes, expected str"),
    (_with("x_test", np.zeros((2, 3), np.int64)), "x_test has shape (2, 3), expected (N,)"),
    (_with("x_test", np.array([3, 4])), "x_test has dtype int64, expected an object array of str"),
    (_with("x_train", _texts()), "x_train holds no reviews"),
])
def test_bad_data_dir_file_is_a_one_line_data_error(tmp_path, change, reason):
    np.savez(tmp_path / data.IMDB_FILE, **change(_shared_layout_arrays()))
    assert reason in _imdb_load_error(tmp_path)


def test_not_an_npz_file_is_a_data_error(tmp_path):
    (tmp_path / data.IMDB_FILE).write_bytes(b"x_train,y_train\nGreat film,1\n")
    assert "not an npz file" in _imdb_load_error(tmp_path)


def test_strict_mode_without_data_refuses_the_sample(tmp_path):
    options = data.DataOptions(data_dir=str(tmp_path), strict=True, allow_download=False)
    with pytest.raises(data.DataUnavailableError) as error:
        data.load("imdb", options)
    message = str(error.value)
    assert "\n" not in message
    assert f"data dir: {tmp_path / data.IMDB_FILE} does not exist" in message
    assert f"Keras cache {data.keras_cache_dir() / data.IMDB_EXTRACTED}: absent; download disabled" in message
    assert "put imdb_reviews.npz in a directory" in message


def test_imdb_is_registered():
    assert data.LOADERS["imdb"] is data.load_imdb
    with pytest.raises(ValueError, match="known: mnist, cifar10, imdb"):
        data.load("imdbb")


@pytest.mark.skipif(not SHARED_COPY.exists(), reason=f"{SHARED_COPY} not on this machine")
def test_shared_copy_through_the_data_dir_is_complete():
    dataset = data.load("imdb", data.DataOptions(data_dir=str(SHARED_COPY.parent), allow_download=False))
    assert dataset.source == data.SOURCE_FULL and str(SHARED_COPY) in dataset.origin
    assert dataset.x_train.shape == (25000,) and dataset.x_test.shape == (25000,)
    assert np.bincount(dataset.y_train).tolist() == [12500, 12500]
    assert np.bincount(dataset.y_test).tolist() == [12500, 12500]
    assert type(dataset.x_train[0]) is str and dataset.y_train.dtype == np.int64
    # The shipped sample is a subset of this copy, at the indices it records.
    sample = data.load("imdb", data.DataOptions(allow_download=False))
    with np.load(data.sample_path("imdb_sample.npz")) as stored:
        train_indices, test_indices = stored["train_indices"], stored["test_indices"]
    assert dataset.x_train[train_indices].tolist() == sample.x_train.tolist()
    assert dataset.y_test[test_indices].tolist() == sample.y_test.tolist()


# --------------------------------------------------------------------------------------------------
# Keras cache: what keras.utils.get_file("aclImdb_v1.tar.gz", URL, extract=True) leaves behind
# --------------------------------------------------------------------------------------------------


def _check_tree_dataset(dataset):
    assert dataset.source == data.SOURCE_FULL
    assert dataset.x_train.tolist() == _expected_tree_texts("train")
    assert dataset.x_test.tolist() == _expected_tree_texts("test")
    assert dataset.x_train.dtype == object and dataset.y_train.dtype == np.int64
    assert dataset.y_train.tolist() == [0, 0, 1, 1] and dataset.y_test.tolist() == [0, 1]
    assert "unlabelled, must be ignored" not in dataset.x_train.tolist()


def test_extracted_keras_cache_is_read_without_network(monkeypatch):
    _no_network(monkeypatch)
    tree = data.keras_cache_dir() / data.IMDB_EXTRACTED / "aclImdb"
    _write_review_tree(tree)
    dataset = data.load("imdb", data.DataOptions(allow_download=False))
    _check_tree_dataset(dataset)
    assert dataset.origin == f"keras cache: {tree} (aclImdb v1.0 review files)"
    assert dataset.x_train[2] == "A joy from start to finish, caf\u00e9 scenes and all \u2764"  # UTF-8 decoded.


def test_keras_2_extraction_folder_is_accepted(monkeypatch):
    _no_network(monkeypatch)
    _write_review_tree(data.keras_cache_dir() / "aclImdb")
    dataset = data.load("imdb", data.DataOptions(allow_download=False))
    _check_tree_dataset(dataset)
    assert dataset.origin.startswith(f"keras cache: {data.keras_cache_dir() / 'aclImdb'}")


def test_cached_archive_is_extracted_by_keras_without_network(tmp_path, monkeypatch):
    _no_network(monkeypatch)
    _write_review_tree(tmp_path / "build" / "aclImdb")
    cache = data.keras_cache_dir()
    cache.mkdir(parents=True)
    with tarfile.open(cache / data.IMDB_ARCHIVE, "w:gz") as archive:
        archive.add(tmp_path / "build" / "aclImdb", arcname="aclImdb")
    dataset = data.load("imdb", data.DataOptions(allow_download=False))
    _check_tree_dataset(dataset)
    assert dataset.origin.startswith(f"keras cache: {cache / data.IMDB_ARCHIVE}, extracted to ")
    assert (cache / data.IMDB_EXTRACTED / "aclImdb" / "test" / "pos" / "5_8.txt").exists()


def test_incomplete_keras_cache_falls_back_with_the_reason(capsys):
    tree = data.keras_cache_dir() / data.IMDB_EXTRACTED / "aclImdb"
    _write_review_tree(tree)
    for file in (tree / "test" / "pos").iterdir():
        file.unlink()
    dataset = data.load("imdb", data.DataOptions(allow_download=False))
    assert dataset.source == data.SOURCE_SAMPLE
    warning = capsys.readouterr().err
    assert f"Keras cache {tree}: {tree / 'test' / 'pos'} holds no review files; download disabled" in warning


def test_failed_download_falls_back_with_the_reason(monkeypatch, capsys):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(file_utils, "urlretrieve", offline)
    dataset = data.load("imdb", data.DataOptions(allow_download=True))
    assert dataset.source == data.SOURCE_SAMPLE
    warning = capsys.readouterr().err
    assert f"Keras cache {data.keras_cache_dir() / data.IMDB_ARCHIVE} / download: OSError" in warning
    assert not (data.keras_cache_dir() / data.IMDB_ARCHIVE).exists()
