"""What every dataset shares: the records a loader returns, the options, reading and checking a found file,
and the resolution order (data directory, Keras, shipped sample) that ``dlbench/data/__init__.py`` describes.

The dataset modules import this module, never the package, so that the package can import them without
an import cycle."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from importlib import resources
from pathlib import Path

import numpy as np

SOURCE_FULL = "full"
SOURCE_SAMPLE = "sample"


class DataError(RuntimeError):
    """A dataset could not be loaded; the message is one line that says what to do about it."""


class DataUnavailableError(DataError):
    """The full dataset could not be found and the sample fallback was refused (strict mode)."""


@dataclasses.dataclass
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # SOURCE_FULL or SOURCE_SAMPLE
    origin: str  # Human-readable provenance: a path, "keras cache: ...", "keras download", ...
    class_names: tuple[str, ...] = ()

    def __post_init__(self):
        # Every loader's labels alike, whatever the file stored: a flat (N,) int64 array.
        self.y_train = normalize_labels(self.y_train, "y_train")
        self.y_test = normalize_labels(self.y_test, "y_test")


@dataclasses.dataclass(frozen=True)
class DataOptions:
    data_dir: str | None = None
    strict: bool = False
    allow_download: bool = True

    @classmethod
    def from_environment(cls, data_dir=None, strict=None, allow_download=None) -> "DataOptions":
        """Command-line values win; otherwise DLBENCH_DATA_DIR / DLBENCH_STRICT_DATA / DLBENCH_NO_DOWNLOAD."""
        environment = os.environ
        return cls(
            data_dir=data_dir or environment.get("DLBENCH_DATA_DIR") or None,
            strict=strict if strict is not None else environment.get("DLBENCH_STRICT_DATA", "") == "1",
            allow_download=(
                allow_download
                if allow_download is not None
                else environment.get("DLBENCH_NO_DOWNLOAD", "") != "1"
            ),
        )


def keras_cache_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser() / "datasets"


def cache_dir() -> Path:
    """Where dlbench keeps derived files (decoded images): $DLBENCH_CACHE_DIR, default ~/.cache/dlbench."""
    return Path(os.environ.get("DLBENCH_CACHE_DIR") or Path.home() / ".cache" / "dlbench").expanduser()


def sample_path(file_name: str) -> Path:
    return Path(str(resources.files("dlbench") / "samples" / file_name))


# --------------------------------------------------------------------------------------------------
# Reading and checking a found file
# --------------------------------------------------------------------------------------------------

SPLIT_KEYS = ("x_train", "y_train", "x_test", "y_test")
_DATA_DIR_FIX = ("Replace it with a good copy (README.md, section Data) or remove it from the data directory "
                 "to use the Keras cache or the shipped sample.")
_SAMPLE_FIX = ("The dlbench installation is damaged: reinstall it, or provide the full data with --data-dir "
               "(README.md, section Data).")
_REASON_LIMIT = 300  # Characters: a reason quoted from a library must not drown the line.


def one_line(text: str) -> str:
    """``text`` with its line breaks (and the indentation around them) turned into single spaces."""
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def describe_error(error: BaseException) -> str:
    """A short, one-line reason for a library's exception: the OS's words for file errors, else its message."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror  # "Permission denied", without the path the caller already names.
    text = one_line(error) or type(error).__name__
    return text if len(text) <= _REASON_LIMIT else text[:_REASON_LIMIT] + "..."


@contextlib.contextmanager
def reading(name: str, path: Path, source: str):
    """Turn a failure to read or check ``path`` into a ``DataError`` naming the file and how to fix it.

    Only the reading and checking of the file go inside: a cache directory that cannot be written is
    not the data file's fault and keeps its own handling."""
    try:
        yield
    except (OSError, ValueError, KeyError) as error:
        fix = _SAMPLE_FIX if source == SOURCE_SAMPLE else _DATA_DIR_FIX
        reason = describe_error(error).rstrip(".")
        raise DataError(f"cannot read {name} data from {path}: {reason}. {fix}") from error


def read_npz(path: Path, keys, allow_pickle: bool = False) -> dict[str, np.ndarray]:
    """The arrays ``keys`` of the npz file at ``path``; ValueError with a short reason when it is not an
    npz file, is damaged or truncated, or lacks one of them. Nothing is unpickled unless ``allow_pickle``
    (only for a data-dir file whose documented layout holds object arrays, e.g. imdb_reviews.npz)."""
    with open(path, "rb") as file:
        start = file.read(4)
    # An npz file is a zip archive; checked first because np.load() reports any other file as
    # "pickled data", which says nothing useful about a corrupt download.
    if start not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise ValueError("empty file" if not start else "not an npz file (zip archive of .npy arrays)")
    try:
        archive = np.load(path, allow_pickle=allow_pickle)
    except MemoryError:
        raise
    except Exception as error:  # zipfile, zlib and numpy each have their own: all mean a damaged file.
        reason = f"{type(error).__name__}: {describe_error(error)}"
        raise ValueError(f"damaged or truncated npz file ({reason})") from error
    with archive:
        missing = [key for key in keys if key not in archive.files]
        if missing:
            held = ", ".join(archive.files) or "nothing"
            raise ValueError(f"missing array(s) {', '.join(missing)} (it holds: {held})")
        arrays = {}
        for key in keys:
            try:
                arrays[key] = archive[key]
            except MemoryError:
                raise
            except Exception as error:
                reason = f"{type(error).__name__}: {describe_error(error)}"
                raise ValueError(f"cannot load array {key} ({reason})") from error
        return arrays


def check_labels(labels: np.ndarray, count: int, split: str, item: str, class_count: int) -> None:
    """One integer label in 0..class_count-1 per ``item`` of the split, or a ValueError saying what is wrong."""
    if not (labels.ndim == 1 or (labels.ndim == 2 and labels.shape[1] == 1)) or len(labels) != count:
        raise ValueError(f"y_{split} has shape {labels.shape}, expected ({count},) (one label per {item} of x_{split})")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"y_{split} has dtype {labels.dtype}, expected integer labels")
    if labels.min() < 0 or labels.max() >= class_count:
        raise ValueError(f"y_{split} has labels {labels.min()}..{labels.max()}, expected 0..{class_count - 1}")


def check_split_arrays(arrays: dict[str, np.ndarray], image_shape: tuple[int, ...], class_count: int) -> None:
    """ValueError with a short reason unless x_train/x_test are non-empty (N, *image_shape) uint8 images
    with N integer labels in 0..class_count-1 each: caught here, not as a crash in the middle of training."""
    expected_shape = "(N, " + ", ".join(str(size) for size in image_shape) + ")"
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.shape[1:] != image_shape or images.ndim != len(image_shape) + 1:
            raise ValueError(f"x_{split} has shape {images.shape}, expected {expected_shape}")
        if images.dtype != np.uint8:
            raise ValueError(f"x_{split} has dtype {images.dtype}, expected uint8")
        if len(images) == 0:
            raise ValueError(f"x_{split} holds no images")
        check_labels(labels, len(images), split, "image", class_count)


def normalize_labels(labels, name: str = "labels") -> np.ndarray:
    """Class labels as a flat (N,) int64 array; Keras gives CIFAR-10 labels as (N, 1)."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(f"{name} must have shape (N,) or (N, 1), got {labels.shape}")
    return labels.astype(np.int64)


# --------------------------------------------------------------------------------------------------
# Resolution shared by every dataset
# --------------------------------------------------------------------------------------------------


def _from_keras(name: str, cached_file: str, allow_download: bool, class_names, note: str = ""):
    """keras.datasets.<name>.load_data(): the Keras cache, or its download. Returns (dataset, "") or
    (None, why not)."""
    cached = keras_cache_dir() / cached_file
    if not cached.exists() and not allow_download:
        return None, f"Keras cache {cached}: absent; download disabled"
    origin = f"keras cache: {cached}" if cached.exists() else "keras download"
    try:
        import keras

        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, name).load_data()
    except Exception as error:  # Offline, proxy, corrupted cache: all mean "not available here".
        # One line, as it ends up in the strict-mode error and the fallback warning.
        return None, f"Keras cache {cached} / download: {type(error).__name__}: {one_line(error)}"
    return Dataset(name, x_train, y_train, x_test, y_test, SOURCE_FULL, origin + note, tuple(class_names)), ""


def _resolve(name, file_name, options: DataOptions, from_file, from_keras, from_sample) -> Dataset:
    tried = []
    if options.data_dir:
        candidate = Path(options.data_dir).expanduser() / file_name
        if candidate.exists():
            return from_file(candidate)
        tried.append(f"data dir: {candidate} does not exist")
    else:
        tried.append("data dir: none given (--data-dir / DLBENCH_DATA_DIR)")
    if from_keras is not None:
        dataset, reason = from_keras(options.allow_download)
        if dataset is not None:
            return dataset
        tried.append(reason)
    how_to = (
        f"Provide the full {name} data: put {file_name} in a directory and pass --data-dir DIR "
        f"(or set DLBENCH_DATA_DIR=DIR; see README.md, section Data), or run once with internet access "
        f"so Keras can download and cache it."
    )
    if options.strict:
        # One line: the command line prints it as the whole error.
        raise DataUnavailableError(one_line(f"full {name} data not found ({'; '.join(tried)}). {how_to}"))
    path = sample_path(f"{name}_sample.npz")
    dataset = from_sample(path)
    banner = "!" * 100
    print(
        f"\n{banner}\nWARNING: full {name} data not found; using the small real sample shipped with "
        f"dlbench ({len(dataset.x_train)} train / {len(dataset.x_test)} test). Accuracy will be far below "
        f"full-data figures and the result row says dataset_source=sample.\nTried: {'; '.join(tried)}\n"
        f"{how_to}\n{banner}\n",
        file=sys.stderr,
        flush=True,
    )
    return dataset
