"""IMDB: raw review text labelled negative or positive.

Reads ``imdb_reviews.npz`` from the data directory, else the original ``aclImdb_v1.tar.gz`` through
``keras.utils.get_file`` (its extracted review files), else the shipped sample.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlbench.data.common import (
    SOURCE_FULL, SOURCE_SAMPLE, SPLIT_KEYS, Dataset, DataOptions, FullData, _resolve, check_labels,
    describe_error, import_keras, keras_cache_dir, read_npz, reading,
)

IMDB_FILE = "imdb_reviews.npz"
IMDB_CLASS_NAMES = ("negative", "positive")
IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
IMDB_ARCHIVE = "aclImdb_v1.tar.gz"
# keras.utils.get_file(IMDB_ARCHIVE, IMDB_URL, extract=True) (Keras 3) keeps the archive as
# datasets/aclImdb_v1.tar.gz and extracts it into datasets/aclImdb_v1_extracted/, whose top folder is aclImdb/.
# Keras 2's untar=True extracted it straight into datasets/, so datasets/aclImdb/ is accepted too.
IMDB_EXTRACTED = "aclImdb_v1_extracted"
IMDB_FULL_DATA = FullData(file_name=IMDB_FILE, url=IMDB_URL, cache_name=IMDB_ARCHIVE,
                          other_cache_names=(f"{IMDB_EXTRACTED}/aclImdb", "aclImdb"))
IMDB_SAMPLE_KEYS = ("train_text_bytes", "train_text_offsets", "y_train", "test_text_bytes", "test_text_offsets",
                    "y_test")
IMDB_SAMPLE_NOTE = ("real aclImdb v1.0 reviews, balanced between labels, drawn with a fixed seed from the shared "
                    "imdb_reviews.npz; whole reviews, no length cap; see scripts/make_samples.py")


def check_text_arrays(arrays: dict[str, np.ndarray], class_count: int) -> dict[str, np.ndarray]:
    """``arrays`` with x_train/x_test as 1-D object arrays of str; ValueError with a short reason unless they
    are non-empty 1-D arrays of str with as many integer labels in 0..class_count-1."""
    checked = dict(arrays)
    for split in ("train", "test"):
        texts, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if texts.ndim != 1:
            raise ValueError(f"x_{split} has shape {texts.shape}, expected (N,) (one review text per entry)")
        if texts.dtype.kind == "U":  # A fixed-width unicode array holds str too.
            texts = texts.astype(object)
        elif texts.dtype != object:
            raise ValueError(f"x_{split} has dtype {texts.dtype}, expected an object array of str")
        if len(texts) == 0:
            raise ValueError(f"x_{split} holds no reviews")
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"x_{split}[{index}] is a {type(text).__name__}, expected str")
        check_labels(labels, len(texts), split, "review", class_count)
        checked[f"x_{split}"] = texts
    return checked


def decode_texts(text_bytes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """A 1-D object array of str from one UTF-8 blob: text i is text_bytes[offsets[i]:offsets[i+1]]."""
    if text_bytes.ndim != 1 or text_bytes.dtype != np.uint8:
        raise ValueError(f"text bytes must be a flat uint8 array, got {text_bytes.dtype} {text_bytes.shape}")
    if (offsets.ndim != 1 or len(offsets) < 1 or not np.issubdtype(offsets.dtype, np.integer)
            or offsets[0] != 0 or offsets[-1] != len(text_bytes) or np.any(np.diff(offsets) < 0)):
        raise ValueError("text offsets must be non-decreasing integers that start at 0 and end at the number "
                         "of bytes")
    blob = text_bytes.tobytes()
    texts = np.empty(len(offsets) - 1, dtype=object)
    for index, (start, end) in enumerate(zip(offsets[:-1].tolist(), offsets[1:].tolist())):
        try:
            texts[index] = blob[start:end].decode("utf-8")
        except UnicodeDecodeError as error:  # Its message quotes the bytes; the position is what helps.
            raise ValueError(f"text {index} (bytes {start}..{end}) is not UTF-8 ({error.reason})") from None
    return texts


def _imdb_dataset(arrays: dict[str, np.ndarray], source: str, origin: str) -> Dataset:
    return Dataset("imdb", arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], source, origin,
                   class_names=IMDB_CLASS_NAMES)


def _imdb_from_npz(path: Path) -> Dataset:
    # The shared copy's layout: x_train/x_test object arrays of str, which only unpickling can load.
    with reading("imdb", path, SOURCE_FULL):
        arrays = check_text_arrays(read_npz(path, SPLIT_KEYS, allow_pickle=True), len(IMDB_CLASS_NAMES))
    return _imdb_dataset(arrays, SOURCE_FULL, f"data dir: {path} (aclImdb v1.0 raw review text)")


def _imdb_from_sample(path: Path) -> Dataset:
    with reading("imdb", path, SOURCE_SAMPLE):
        stored = read_npz(path, IMDB_SAMPLE_KEYS)  # UTF-8 bytes + offsets: nothing to unpickle.
        arrays = {"y_train": stored["y_train"], "y_test": stored["y_test"]}
        for split in ("train", "test"):
            try:
                arrays[f"x_{split}"] = decode_texts(stored[f"{split}_text_bytes"], stored[f"{split}_text_offsets"])
            except ValueError as error:
                raise ValueError(f"{split}_text_bytes: {error}") from error
        arrays = check_text_arrays(arrays, len(IMDB_CLASS_NAMES))
    return _imdb_dataset(arrays, SOURCE_SAMPLE, f"dlbench sample: {path.name} ({len(arrays['x_train'])} train + "
                                                f"{len(arrays['x_test'])} test {IMDB_SAMPLE_NOTE})")


def _review_order(path: Path):
    """aclImdb files are named <id>_<rating>.txt: order them by id, as the shared copy is."""
    head = path.stem.split("_", 1)[0]
    return (0, int(head), path.name) if head.isdigit() else (1, 0, path.name)


def read_aclimdb_tree(root: Path) -> dict[str, np.ndarray]:
    """The labelled reviews of an extracted aclImdb/ folder ({train,test}/{neg,pos}/*.txt; unsup ignored),
    each split ordered neg then pos, then by id; ValueError with a short reason for a missing or empty
    folder or a file that is not UTF-8."""
    arrays = {}
    for split in ("train", "test"):
        texts, labels = [], []
        for label, folder in enumerate(("neg", "pos")):
            directory = root / split / folder
            if not directory.is_dir():
                raise ValueError(f"{directory} is missing")
            files = sorted(directory.glob("*.txt"), key=_review_order)
            if not files:
                raise ValueError(f"{directory} holds no review files")
            for file in files:
                try:
                    texts.append(file.read_bytes().decode("utf-8"))
                except UnicodeDecodeError as error:
                    raise ValueError(f"{file} is not UTF-8 ({error.reason})") from None
            labels.extend([label] * len(files))
        arrays[f"x_{split}"] = np.array(texts, dtype=object)
        arrays[f"y_{split}"] = np.array(labels, dtype=np.int64)
    return arrays


def _imdb_from_keras(allow_download: bool):
    """The aclImdb review files from the Keras cache (extracted already, or the archive), or downloaded
    with keras.utils.get_file. Returns (dataset, "") or (None, why not)."""
    cache = keras_cache_dir()
    tried = []
    for tree in (cache / IMDB_EXTRACTED / "aclImdb", cache / "aclImdb"):
        if tree.is_dir():
            try:
                arrays = read_aclimdb_tree(tree)
            except (OSError, ValueError) as error:  # E.g. an interrupted extraction: the archive may fix it.
                tried.append(f"Keras cache {tree}: {describe_error(error)}")
                continue
            return _imdb_dataset(arrays, SOURCE_FULL, f"keras cache: {tree} (aclImdb v1.0 review files)"), ""
    archive = cache / IMDB_ARCHIVE
    if not tried:
        tried.append(f"Keras cache {cache / IMDB_EXTRACTED}: absent")
    if not archive.exists() and not allow_download:
        return None, "; ".join(tried) + "; download disabled"
    origin = f"keras cache: {archive}" if archive.exists() else f"keras download: {IMDB_URL}"
    try:
        keras = import_keras()
        # cache_dir given explicitly: Keras reads KERAS_HOME once, when it is imported.
        extracted = Path(keras.utils.get_file(IMDB_ARCHIVE, IMDB_URL, extract=True, cache_dir=str(cache.parent),
                                              cache_subdir=cache.name))
        arrays = read_aclimdb_tree(extracted / "aclImdb")
    except Exception as error:  # Offline, proxy, truncated archive: all mean "not available here".
        tried.append(f"Keras cache {archive} / download: {type(error).__name__}: {describe_error(error)}")
        return None, "; ".join(tried)
    return _imdb_dataset(arrays, SOURCE_FULL, f"{origin}, extracted to {extracted} (aclImdb v1.0 review files)"), ""


def load_imdb(options: DataOptions) -> Dataset:
    """Raw review text: x_train/x_test 1-D object arrays of str, y 0 = negative, 1 = positive."""
    return _resolve("imdb", IMDB_FILE, options, from_file=_imdb_from_npz, from_keras=_imdb_from_keras,
                    from_sample=_imdb_from_sample)
