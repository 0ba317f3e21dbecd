"""Dataset loaders that return NumPy arrays and say exactly which copy of the data they used.

Resolution order for every dataset, first hit wins:

1. the data directory given by ``--data-dir`` or ``DLBENCH_DATA_DIR`` (files named as in the
   project's offline copies, e.g. ``mnist.npz``);
2. the Keras cache (``$KERAS_HOME/datasets``, default ``~/.keras/datasets``);
3. the Keras download (skipped when ``DLBENCH_NO_DOWNLOAD=1`` or ``--no-download``);
4. the small real sample shipped inside the package, with a loud warning. With ``strict=True``
   (``--strict-data``) this last step is an error that says how to provide the full data instead.

IMDB (raw review text) reads ``imdb_reviews.npz`` from the data directory, else the original
``aclImdb_v1.tar.gz`` through ``keras.utils.get_file`` (its extracted review files), else the shipped sample.

Nuclei (fluorescence images with instance label maps, a ``SegmentationDataset``: images of varying sizes,
split 70/15/15 by a hash of the image id) reads ``nuclei_dsb2018_stage1_train.npz`` or an ``S-BSST265/``
folder (rawimages/ + groundtruth/) from the data directory, else the DSB 2018 stage-1 archive through
``keras.utils.get_file``, else the shipped sample of 256x256 crops.

CIFAR-10's offline copy stores JPEG bytes; they are decoded once with Pillow and the decoded arrays
are cached under ``$DLBENCH_CACHE_DIR`` (default ``~/.cache/dlbench``), never in the data directory.

A ``Dataset`` records ``source`` ("full" or "sample") and ``origin`` (where it came from); the runner
copies both into the result row.

A file that is found but cannot be used (not an npz, truncated, missing arrays, wrong shapes or dtypes,
JPEG bytes that do not decode) raises ``DataError`` with one line naming the file and the fix; it is
never skipped silently, since the next source in the order might be a different copy of the data.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import sys
import warnings
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


# --------------------------------------------------------------------------------------------------
# MNIST
# --------------------------------------------------------------------------------------------------


MNIST_CLASS_NAMES = tuple(str(digit) for digit in range(10))
MNIST_IMAGE_SHAPE = (28, 28)


def _mnist_from_npz(path: Path, source: str, origin: str) -> Dataset:
    with reading("mnist", path, source):
        arrays = read_npz(path, SPLIT_KEYS)
        check_split_arrays(arrays, MNIST_IMAGE_SHAPE, len(MNIST_CLASS_NAMES))
    return Dataset(
        "mnist", arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], source, origin,
        class_names=MNIST_CLASS_NAMES,
    )


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


def load_mnist(options: DataOptions) -> Dataset:
    return _resolve(
        "mnist", "mnist.npz", options,
        from_file=lambda path: _mnist_from_npz(path, SOURCE_FULL, str(path)),
        from_keras=lambda allow_download: _from_keras("mnist", "mnist.npz", allow_download, MNIST_CLASS_NAMES),
        from_sample=lambda path: _mnist_from_npz(path, SOURCE_SAMPLE, f"dlbench sample: {path.name}"),
    )


# --------------------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------------------

CIFAR10_FILE = "cifar10_jpeg_q75.npz"
CIFAR10_CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_JPEG_NOTE = "lossy JPEG quality-75 copy of CIFAR-10, not the original pixels"
CIFAR10_IMAGE_SHAPE = (32, 32, 3)
CIFAR10_JPEG_KEYS = ("train_jpeg_bytes", "train_jpeg_offsets", "y_train", "test_jpeg_bytes", "test_jpeg_offsets",
                     "y_test")


def cache_dir() -> Path:
    """Where dlbench keeps derived files (decoded images): $DLBENCH_CACHE_DIR, default ~/.cache/dlbench."""
    return Path(os.environ.get("DLBENCH_CACHE_DIR") or Path.home() / ".cache" / "dlbench").expanduser()


def normalize_labels(labels, name: str = "labels") -> np.ndarray:
    """Class labels as a flat (N,) int64 array; Keras gives CIFAR-10 labels as (N, 1)."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(f"{name} must have shape (N,) or (N, 1), got {labels.shape}")
    return labels.astype(np.int64)


def decode_jpeg_images(jpeg_bytes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Decode concatenated JPEG files (image i is jpeg_bytes[offsets[i]:offsets[i+1]]) to (N, H, W, 3) uint8.

    Pillow is the decoder the shared copy was checked with (its README gives the sha256 of the
    arrays Pillow produces); other decoders may differ by +-1 on some pixels."""
    from PIL import Image, UnidentifiedImageError

    if jpeg_bytes.ndim != 1 or jpeg_bytes.dtype != np.uint8:
        raise ValueError(f"JPEG bytes must be a flat uint8 array, got {jpeg_bytes.dtype} {jpeg_bytes.shape}")
    if (offsets.ndim != 1 or len(offsets) < 1 or not np.issubdtype(offsets.dtype, np.integer)
            or offsets[0] != 0 or offsets[-1] != len(jpeg_bytes) or np.any(np.diff(offsets) <= 0)):
        raise ValueError("JPEG offsets must be increasing integers that start at 0 and end at the number of bytes")
    images = []
    for index, (start, end) in enumerate(zip(offsets[:-1], offsets[1:])):
        try:
            with Image.open(io.BytesIO(jpeg_bytes[start:end].tobytes())) as image:
                images.append(np.asarray(image.convert("RGB")))
        except UnidentifiedImageError as error:  # Its message quotes a BytesIO repr, which helps nobody.
            raise ValueError(f"JPEG image {index} (bytes {start}..{end}) is not an image") from error
        except (OSError, ValueError, SyntaxError) as error:  # Pillow's errors for a truncated or damaged image.
            raise ValueError(f"JPEG image {index} (bytes {start}..{end}) does not decode ({error})") from error
    return np.stack(images) if images else np.zeros((0, 32, 32, 3), np.uint8)


def _decode_cifar10_jpeg_npz(path: Path) -> dict[str, np.ndarray]:
    """The decoded arrays of a file in the shared copy's JPEG-bytes layout; ValueError with a short
    reason when the file is unreadable or its contents are not CIFAR-10 shaped."""
    data = read_npz(path, CIFAR10_JPEG_KEYS)
    arrays = {}
    for split in ("train", "test"):
        try:
            arrays[f"x_{split}"] = decode_jpeg_images(data[f"{split}_jpeg_bytes"], data[f"{split}_jpeg_offsets"])
        except ValueError as error:
            raise ValueError(f"{split}_jpeg_bytes: {error}") from error
        arrays[f"y_{split}"] = data[f"y_{split}"]
    check_split_arrays(arrays, CIFAR10_IMAGE_SHAPE, len(CIFAR10_CLASS_NAMES))
    return arrays


def decoded_cache_path(path: Path) -> Path:
    """The decoded copy of ``path`` is named after its size and modification time: a changed file misses."""
    status = path.stat()
    return cache_dir() / f"{path.stem}-decoded-{status.st_size}-{status.st_mtime_ns}.npz"


def _load_or_decode_cifar10(path: Path) -> tuple[dict[str, np.ndarray], str]:
    """Decode the JPEG copy once, then reuse the decoded arrays (about 180 MB) from the cache directory.

    Decoding 60,000 JPEGs takes tens of seconds on one core; loading the uncompressed cache takes
    under a second. The data directory itself is never written (it may be read-only); if the cache
    cannot be written either, the run goes on with a warning."""
    cached = decoded_cache_path(path)
    if cached.exists():
        try:
            with np.load(cached) as data:
                arrays = {key: data[key] for key in SPLIT_KEYS}
            check_split_arrays(arrays, CIFAR10_IMAGE_SHAPE, len(CIFAR10_CLASS_NAMES))
            return arrays, f"decoded cache {cached}"
        except Exception as error:  # A truncated or foreign file: decode again and overwrite it.
            warnings.warn(f"ignoring unreadable decoded cache {cached}: {error}", stacklevel=2)
    with reading("cifar10", path, SOURCE_FULL):
        arrays = _decode_cifar10_jpeg_npz(path)
    temporary = cached.with_name(f".{cached.name}.{os.getpid()}.tmp.npz")
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.savez(temporary, **arrays)  # Uncompressed on purpose: loading must be fast.
        os.replace(temporary, cached)  # Atomic: a concurrent run never reads a half-written cache.
        note = f"decoded with Pillow, cached in {cached}"
    except OSError as error:
        try:
            temporary.unlink(missing_ok=True)  # Do not leave a partial file behind (e.g. disk full).
        except OSError:
            pass
        warnings.warn(f"could not write the decoded CIFAR-10 cache {cached} ({error}); "
                      f"set DLBENCH_CACHE_DIR to a writable directory to skip decoding next time", stacklevel=2)
        note = "decoded with Pillow, not cached"
    return arrays, note


def _cifar10_from_jpeg_npz(path: Path) -> Dataset:
    arrays, note = _load_or_decode_cifar10(path)
    return Dataset("cifar10", arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                   SOURCE_FULL, f"data dir: {path} ({CIFAR10_JPEG_NOTE}; {note})", CIFAR10_CLASS_NAMES)


def _cifar10_from_sample(path: Path) -> Dataset:
    # The sample has the same JPEG-bytes layout as the shared copy; at about 1,200 images it
    # decodes in a fraction of a second, so it is not cached.
    with reading("cifar10", path, SOURCE_SAMPLE):
        arrays = _decode_cifar10_jpeg_npz(path)
    return Dataset("cifar10", arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                   SOURCE_SAMPLE, f"dlbench sample: {path.name} (stratified subset of the {CIFAR10_JPEG_NOTE})",
                   CIFAR10_CLASS_NAMES)


def load_cifar10(options: DataOptions) -> Dataset:
    return _resolve(
        "cifar10", CIFAR10_FILE, options,
        from_file=_cifar10_from_jpeg_npz,
        # keras.datasets.cifar10 keeps the downloaded archive under this name (checked against its
        # sha256 on every load) and extracts it next to it, into cifar-10-batches-py-target/.
        from_keras=lambda allow_download: _from_keras(
            "cifar10", "cifar-10-batches-py-target_archive", allow_download, CIFAR10_CLASS_NAMES,
            " (original lossless CIFAR-10 python batches)"),
        from_sample=_cifar10_from_sample,
    )


# --------------------------------------------------------------------------------------------------
# IMDB (raw review text)
# --------------------------------------------------------------------------------------------------

IMDB_FILE = "imdb_reviews.npz"
IMDB_CLASS_NAMES = ("negative", "positive")
IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
IMDB_ARCHIVE = "aclImdb_v1.tar.gz"
# keras.utils.get_file(IMDB_ARCHIVE, IMDB_URL, extract=True) (Keras 3) keeps the archive as
# datasets/aclImdb_v1.tar.gz and extracts it into datasets/aclImdb_v1_extracted/, whose top folder is aclImdb/.
# Keras 2's untar=True extracted it straight into datasets/, so datasets/aclImdb/ is accepted too.
IMDB_EXTRACTED = "aclImdb_v1_extracted"
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
        import keras

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


# --------------------------------------------------------------------------------------------------
# Nuclei (fluorescence images with instance label maps)
# --------------------------------------------------------------------------------------------------

NUCLEI_FILE = "nuclei_dsb2018_stage1_train.npz"
# The original course data (Kromp et al. 2020, BioStudies S-BSST265), when a user provides it: a folder of
# that name in the data directory holding rawimages/ and groundtruth/ (label masks of the same file names).
NUCLEI_SBSST265_DIR = "S-BSST265"
NUCLEI_SBSST265_FOLDERS = ("rawimages", "groundtruth")
# The public Data Science Bowl 2018 stage-1 training archive (BBBC038v1, CC0): <ImageId>/images/<ImageId>.png
# and <ImageId>/masks/*.png, one binary mask per nucleus.
NUCLEI_URL = "https://data.broadinstitute.org/bbbc/BBBC038/stage1_train.zip"
NUCLEI_ARCHIVE = "stage1_train.zip"
NUCLEI_EXTRACTED = "stage1_train_extracted"  # Where Keras 3's get_file(extract=True) puts its contents.
# The fluorescence subset, as the shared copy's README defines it: grayscale and a dark background.
NUCLEI_FLUORESCENCE_MAX_MEAN = 100.0
NUCLEI_DSB_NOTE = ("Data Science Bowl 2018 stage1_train (BBBC038v1, CC0) standing in for S-BSST265, fluorescence "
                   "subset only (grayscale, mean intensity < 100)")
NUCLEI_SPLIT_NOTE = "split by sha256 of the image id: 70 % train / 15 % validation / 15 % test"
NUCLEI_SPLITS = ("train", "validation", "test")


@dataclasses.dataclass
class SegmentationDataset:
    """Images of varying sizes with instance label maps (0 = background, 1..n = nuclei): lists, not
    stacked arrays, and a validation split of its own. ``x_test`` has the same meaning as in ``Dataset``
    (the record counts its images)."""

    name: str
    x_train: list  # (H, W) uint8 images.
    y_train: list  # (H, W) int32 instance label maps of the same sizes.
    x_validation: list
    y_validation: list
    x_test: list
    y_test: list
    ids_train: tuple[str, ...]
    ids_validation: tuple[str, ...]
    ids_test: tuple[str, ...]
    source: str
    origin: str

    def split(self, name: str) -> tuple[list, list, tuple[str, ...]]:
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}"), getattr(self, f"ids_{name}")


def nuclei_split_of(image_id: str) -> str:
    """The split of an image, from a hash of its id alone: the same on every run and every machine, and an
    image keeps its split when others are added or removed."""
    import hashlib

    bucket = int(hashlib.sha256(image_id.encode("utf-8")).hexdigest()[:8], 16) % 100
    return "train" if bucket < 70 else "validation" if bucket < 85 else "test"


def check_nuclei_pair(image: np.ndarray, labels: np.ndarray, image_id: str) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) uint8 image and int32 labels of the same size, or a ValueError naming the image."""
    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError(f"image {image_id} has shape {image.shape} and dtype {image.dtype}, expected (H, W) uint8")
    if labels.shape != image.shape or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels of {image_id} have shape {labels.shape} and dtype {labels.dtype}, expected "
                         f"integer labels of the image's shape {image.shape}")
    if labels.size and labels.min() < 0:
        raise ValueError(f"labels of {image_id} are negative")
    return image, labels.astype(np.int32)


def _nuclei_dataset(items, source: str, origin: str, splits=None) -> SegmentationDataset:
    """items: (id, image, labels) triples; splits: the split of each (default: the id hash)."""
    parts = {split: ([], [], []) for split in NUCLEI_SPLITS}
    for index, (image_id, image, labels) in enumerate(items):
        image, labels = check_nuclei_pair(image, labels, image_id)
        images, label_maps, ids = parts[splits[index] if splits is not None else nuclei_split_of(image_id)]
        images.append(image)
        label_maps.append(labels)
        ids.append(image_id)
    for split, (images, _, _) in parts.items():
        if not images:
            raise ValueError(f"no {split} images")
    fields = {}
    for split, (images, label_maps, ids) in parts.items():
        fields.update({f"x_{split}": images, f"y_{split}": label_maps, f"ids_{split}": tuple(ids)})
    counts = "/".join(str(len(parts[split][0])) for split in NUCLEI_SPLITS)
    return SegmentationDataset("nuclei", source=source, origin=f"{origin}; {counts} images train/validation/test",
                               **fields)


def _nuclei_from_npz(path: Path) -> SegmentationDataset:
    with reading("nuclei", path, SOURCE_FULL):
        meta = read_npz(path, ("ids", "grayscale", "mean_intensity"))
        fluorescence = np.flatnonzero(meta["grayscale"] & (meta["mean_intensity"] < NUCLEI_FLUORESCENCE_MAX_MEAN))
        keys = [key for index in fluorescence for key in (f"image_{index:03d}", f"label_{index:03d}")]
        arrays = read_npz(path, keys)
        items = [(str(meta["ids"][index]), arrays[f"image_{index:03d}"], arrays[f"label_{index:03d}"])
                 for index in fluorescence]
        dataset = _nuclei_dataset(items, SOURCE_FULL, f"data dir: {path} ({NUCLEI_DSB_NOTE}: {len(items)} of "
                                                      f"{len(meta['ids'])} images; {NUCLEI_SPLIT_NOTE})")
    return dataset


def _read_image_file(path: Path, what: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        array = np.asarray(image)
    if array.ndim == 3:  # RGB(A) files of grayscale content: the first channel (alpha dropped).
        array = array[..., 0] if what == "labels" else array[..., :3].mean(axis=-1)
    if what == "image" and array.dtype != np.uint8:  # 16-bit or float microscopy images: scaled to 0..255.
        array = array.astype(np.float64)
        array = np.round(255.0 * (array - array.min()) / max(float(array.max() - array.min()), 1e-12))
        array = array.astype(np.uint8)
    return array


def read_sbsst265_tree(root: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(id, image, labels) for every raw image of an S-BSST265 folder (rawimages/<name>.tif and the label
    mask groundtruth/<name>.tif); ValueError for a missing folder or a raw image without its mask."""
    raw, truth = (root / folder for folder in NUCLEI_SBSST265_FOLDERS)
    for directory in (raw, truth):
        if not directory.is_dir():
            raise ValueError(f"{directory} is missing")
    files = sorted(path for path in raw.iterdir() if path.suffix.lower() in (".tif", ".tiff", ".png"))
    if not files:
        raise ValueError(f"{raw} holds no images")
    items = []
    for file in files:
        masks = [path for path in truth.glob(file.stem + ".*") if path.suffix.lower() in (".tif", ".tiff", ".png")]
        if not masks:
            raise ValueError(f"{file.name} has no label mask in {truth}")
        items.append((file.stem, _read_image_file(file, "image"), _read_image_file(masks[0], "labels")))
    return items


def _nuclei_from_sbsst265(root: Path) -> SegmentationDataset:
    with reading("nuclei", root, SOURCE_FULL):
        items = read_sbsst265_tree(root)
        return _nuclei_dataset(items, SOURCE_FULL, f"data dir: {root} (S-BSST265 raw images and label masks, "
                                                   f"{len(items)} images; {NUCLEI_SPLIT_NOTE})")


def read_dsb_tree(root: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(id, image, labels) for the fluorescence images of an extracted stage1_train folder; each nucleus's
    binary mask becomes one label (the later mask wins where two overlap), as in the shared copy."""
    folders = sorted(path for path in root.iterdir() if (path / "images").is_dir())
    if not folders:
        raise ValueError(f"{root} holds no <ImageId>/images folders")
    items = []
    from PIL import Image

    for folder in folders:
        with Image.open(folder / "images" / f"{folder.name}.png") as file:
            rgb = np.asarray(file.convert("RGB"))  # The PNGs are RGBA with an alpha of 255 everywhere.
        image = rgb[..., 0]
        grayscale = bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())
        if not grayscale or image.mean() >= NUCLEI_FLUORESCENCE_MAX_MEAN:
            continue
        labels = np.zeros(image.shape, np.int32)
        for number, mask_file in enumerate(sorted((folder / "masks").glob("*.png")), start=1):
            labels[_read_image_file(mask_file, "labels") > 0] = number
        items.append((folder.name, image.astype(np.uint8), labels))
    return items


def _nuclei_from_keras(options: DataOptions):
    """The S-BSST265 folder in the data directory, else the stage-1 archive from the Keras cache or its
    download. Returns (dataset, "") or (None, why not)."""
    tried = []
    if options.data_dir:
        root = Path(options.data_dir).expanduser() / NUCLEI_SBSST265_DIR
        if root.is_dir():
            return _nuclei_from_sbsst265(root), ""
        tried.append(f"data dir: {root} does not exist")
    cache = keras_cache_dir()
    extracted = cache / NUCLEI_EXTRACTED
    archive = cache / NUCLEI_ARCHIVE
    if not extracted.is_dir() and not archive.exists() and not options.allow_download:
        return None, "; ".join(tried + [f"Keras cache {archive}: absent; download disabled"])
    origin = f"keras cache: {archive}" if archive.exists() else f"keras download: {NUCLEI_URL}"
    try:
        import keras

        folder = Path(keras.utils.get_file(NUCLEI_ARCHIVE, NUCLEI_URL, extract=True, cache_dir=str(cache.parent),
                                           cache_subdir=cache.name))
        if (folder / "stage1_train").is_dir():
            folder = folder / "stage1_train"
        items = read_dsb_tree(folder)
        dataset = _nuclei_dataset(items, SOURCE_FULL, f"{origin}, extracted to {folder} (original {NUCLEI_DSB_NOTE}, "
                                                      f"without the community mask fixes: {len(items)} images; "
                                                      f"{NUCLEI_SPLIT_NOTE})")
    except Exception as error:  # Offline, proxy, truncated archive: all mean "not available here".
        tried.append(f"Keras cache {archive} / download: {type(error).__name__}: {describe_error(error)}")
        return None, "; ".join(tried)
    return dataset, ""


NUCLEI_SAMPLE_NOTE = ("real fluorescence images of the shared DSB 2018 copy, cropped to 256x256, each kept in "
                      "its split of the full data; see scripts/make_samples.py")


def _nuclei_from_sample(path: Path) -> SegmentationDataset:
    with reading("nuclei", path, SOURCE_SAMPLE):
        keys = [f"{kind}_{split}" for split in NUCLEI_SPLITS for kind in ("x", "y", "ids")]
        arrays = read_npz(path, keys)
        items, splits = [], []
        for split in NUCLEI_SPLITS:
            for image_id, image, labels in zip(arrays[f"ids_{split}"], arrays[f"x_{split}"], arrays[f"y_{split}"]):
                items.append((str(image_id), image, labels))
                splits.append(split)
        return _nuclei_dataset(items, SOURCE_SAMPLE, f"dlbench sample: {path.name} ({NUCLEI_SAMPLE_NOTE})", splits)


def load_nuclei(options: DataOptions) -> SegmentationDataset:
    """Fluorescence nuclei images with instance labels, split 70/15/15 by a hash of the image id."""
    return _resolve("nuclei", NUCLEI_FILE, options, from_file=_nuclei_from_npz,
                    from_keras=lambda allow_download: _nuclei_from_keras(options), from_sample=_nuclei_from_sample)


# --------------------------------------------------------------------------------------------------
# Resolution shared by every dataset
# --------------------------------------------------------------------------------------------------


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


LOADERS = {
    "mnist": load_mnist,
    "cifar10": load_cifar10,
    "imdb": load_imdb,
    "nuclei": load_nuclei,
}


def load(name: str, options: DataOptions | None = None) -> Dataset | SegmentationDataset:
    if name not in LOADERS:
        raise ValueError(f"unknown dataset '{name}'; known: {', '.join(LOADERS)}")
    return LOADERS[name](options or DataOptions.from_environment())
