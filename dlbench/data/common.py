"""What every dataset shares: the records a loader returns, the options, reading and checking a found file,
and the resolution order (data directory, Keras, shipped sample) that ``dlbench/data/__init__.py`` describes.

The dataset modules import this module, never the package, so that the package can import them without
an import cycle."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import sys
import tempfile
import urllib.request
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
    # Set by the parent process when it has already said, once for the whole command, that the shipped
    # sample will be used (``prepare``): each run then falls back to it without repeating the warning.
    sample_announced: bool = False

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
# Where the full data is, downloading it, and Keras kept quiet
# --------------------------------------------------------------------------------------------------

DOWNLOAD_TIMEOUT_S = 30  # Per connection attempt and per read: offline, a name lookup fails at once anyway.


@dataclasses.dataclass(frozen=True)
class FullData:
    """Where the full copy of a dataset is looked for, declared once per dataset module: its loader reads
    these places, and the parent process checks them once per command before any run starts (``prepare``)."""

    file_name: str  # In the data directory (--data-dir / DLBENCH_DATA_DIR).
    url: str  # The original download, the one keras.datasets / keras.utils.get_file fetch.
    cache_name: str  # The name keras.utils.get_file gives the download in the Keras cache.
    sha256: str | None = None  # Of the download, where Keras checks one.
    # Further names that hold the full data too: a folder in the data directory (S-BSST265), an archive the
    # Keras cache has already extracted.
    other_data_dir_names: tuple[str, ...] = ()
    other_cache_names: tuple[str, ...] = ()


def fetch(url: str, target: Path, sha256: str | None = None, timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    """Download ``url`` to ``target`` with a plain HTTP request, where keras.utils.get_file would keep it, so
    that Keras finds it there later; no TensorFlow is imported. The file appears whole or not at all; an
    OSError (offline, HTTP error) or ValueError (checksum) says why not."""
    print(f"[dlbench] downloading {url} to {target}", file=sys.stderr, flush=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as file:
            while chunk := response.read(1 << 20):
                file.write(chunk)
                digest.update(chunk)
        if sha256 is not None and digest.hexdigest() != sha256:
            raise ValueError(f"the download's sha256 is {digest.hexdigest()}, expected {sha256} (damaged or "
                             f"changed at the source)")
        os.replace(partial, target)  # Atomic: a concurrent run never reads half a file.
    finally:
        partial.unlink(missing_ok=True)


@contextlib.contextmanager
def native_stderr_quieted():
    """Keep what native code writes to file descriptor 2 during the block off the console.

    TensorFlow prints its start-up lines (absl's "All log messages before absl::InitializeLog()", CUDA
    probes, oneDNN) there when Keras is first imported or a device first used, before any Python log
    setting applies. If the block raises, the captured text is shown after all: it may say why."""
    try:
        sys.stderr.flush()
        captured = tempfile.TemporaryFile()
        saved = os.dup(2)
    except (OSError, ValueError):  # No file descriptor 2 (a service) or no temporary file: nothing to keep off.
        captured = None
    if captured is None:
        yield
        return
    os.dup2(captured.fileno(), 2)
    failed = False
    try:
        yield
    except Exception:
        failed = True
        raise
    finally:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(saved, 2)
        os.close(saved)
        if failed:
            captured.seek(0)
            sys.stderr.write(captured.read().decode("utf-8", errors="replace"))
        captured.close()


def import_keras():
    """Keras, imported with TensorFlow's start-up lines kept off the console (a loader may be the first
    to import it: in a notebook, a test, a run whose worker did not)."""
    with native_stderr_quieted():  # Once Keras is loaded, the import is a dictionary look-up.
        import keras
    return keras


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
        keras = import_keras()
        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, name).load_data()
    except Exception as error:  # Offline, proxy, corrupted cache: all mean "not available here".
        # One line, as it ends up in the strict-mode error and the fallback warning.
        return None, f"Keras cache {cached} / download: {type(error).__name__}: {one_line(error)}"
    return Dataset(name, x_train, y_train, x_test, y_test, SOURCE_FULL, origin + note, tuple(class_names)), ""


def how_to_provide(name: str, file_name: str) -> str:
    return (f"Provide the full {name} data: put {file_name} in a directory and pass --data-dir DIR "
            f"(or set DLBENCH_DATA_DIR=DIR; see README.md, section Data), or run once with internet access "
            f"so that it can be downloaded and cached.")


def sample_warning(name: str, train_count: int, test_count: int, tried: list[str], how_to: str) -> str:
    """The loud warning that the shipped sample stands in for the full data: said once per command."""
    banner = "!" * 100
    return (f"\n{banner}\nWARNING: full {name} data not found; using the small real sample shipped with "
            f"dlbench ({train_count} train / {test_count} test). Accuracy will be far below "
            f"full-data figures and the result row says dataset_source=sample.\nTried: {'; '.join(tried)}\n"
            f"{how_to}\n{banner}\n")


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
    how_to = how_to_provide(name, file_name)
    if options.strict:
        # One line: the command line prints it as the whole error.
        raise DataUnavailableError(one_line(f"full {name} data not found ({'; '.join(tried)}). {how_to}"))
    path = sample_path(f"{name}_sample.npz")
    dataset = from_sample(path)
    if not options.sample_announced:
        print(sample_warning(name, len(dataset.x_train), len(dataset.x_test), tried, how_to), file=sys.stderr,
              flush=True)
    return dataset


def _sample_counts(name: str) -> tuple[int, int]:
    """Train and test items of the shipped sample, read from its labels or ids alone (no images decoded)."""
    with np.load(sample_path(f"{name}_sample.npz")) as archive:
        return tuple(len(archive[f"ids_{split}" if f"ids_{split}" in archive.files else f"y_{split}"])
                     for split in ("train", "test"))


def prepare(name: str, full: FullData, options: DataOptions) -> tuple[DataOptions, str | None]:
    """Decide once per command, in the parent process and before any run starts, where the runs' data
    comes from: the data directory or the Keras cache when the full data is there; else its download,
    made now (once, not in every run); else the shipped sample, which is then announced here, once.

    Returns the options the runs get and the source: ``SOURCE_FULL``, ``SOURCE_SAMPLE`` (the options then
    say it was announced and that downloading failed or is off), or None when strict mode will fail the
    runs or the sample is unreadable (each run's record then says why, as without this step). A file
    that is found is only read by the runs: if it turns out unusable, they say so themselves."""
    tried = []
    if options.data_dir:
        directory = Path(options.data_dir).expanduser()
        if any((directory / file).exists() for file in (full.file_name, *full.other_data_dir_names)):
            return options, SOURCE_FULL
        tried.append(f"data dir: {directory / full.file_name} does not exist")
    else:
        tried.append("data dir: none given (--data-dir / DLBENCH_DATA_DIR)")
    cache = keras_cache_dir()
    if any((cache / file).exists() for file in (full.cache_name, *full.other_cache_names)):
        return options, SOURCE_FULL
    if not options.allow_download:
        tried.append(f"Keras cache {cache / full.cache_name}: absent; download disabled")
    else:
        try:
            fetch(full.url, cache / full.cache_name, full.sha256)
            return options, SOURCE_FULL
        except (OSError, ValueError) as error:  # Offline, proxy, HTTP error, damaged download.
            tried.append(f"Keras cache {cache / full.cache_name}: absent; download: {type(error).__name__}: "
                         f"{describe_error(error)}")
    if options.strict:
        return options, None
    try:
        train_count, test_count = _sample_counts(name)
    except (OSError, ValueError, KeyError):
        return options, None
    print(sample_warning(name, train_count, test_count, tried, how_to_provide(name, full.file_name)),
          file=sys.stderr, flush=True)
    # Downloading failed or is off: the runs do not try again, each for nothing.
    return dataclasses.replace(options, allow_download=False, sample_announced=True), SOURCE_SAMPLE
