"""CIFAR-10: 32x32 colour images in ten classes, from the offline copy ``cifar10_jpeg_q75.npz`` in the data
directory, else ``keras.datasets.cifar10`` (the original lossless batches), else the shipped sample.

CIFAR-10's offline copy stores JPEG bytes; they are decoded once with Pillow and the decoded arrays
are cached under ``$DLBENCH_CACHE_DIR`` (default ``~/.cache/dlbench``), never in the data directory.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np

from dlbench.data.common import (
    SOURCE_FULL, SOURCE_SAMPLE, SPLIT_KEYS, Dataset, DataOptions, FullData, _from_keras, _resolve, cache_dir,
    check_split_arrays, read_npz, reading,
)

CIFAR10_FILE = "cifar10_jpeg_q75.npz"
CIFAR10_CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_JPEG_NOTE = "lossy JPEG quality-75 copy of CIFAR-10, not the original pixels"
CIFAR10_IMAGE_SHAPE = (32, 32, 3)
CIFAR10_JPEG_KEYS = ("train_jpeg_bytes", "train_jpeg_offsets", "y_train", "test_jpeg_bytes", "test_jpeg_offsets",
                     "y_test")
# keras.datasets.cifar10 keeps the downloaded archive under this cache name (checked against its sha256 on
# every load) and extracts it next to it, into cifar-10-batches-py-target/.
CIFAR10_FULL_DATA = FullData(
    file_name=CIFAR10_FILE, url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    cache_name="cifar-10-batches-py-target_archive",
    sha256="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce")


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
        from_keras=lambda allow_download: _from_keras(
            "cifar10", CIFAR10_FULL_DATA.cache_name, allow_download, CIFAR10_CLASS_NAMES,
            " (original lossless CIFAR-10 python batches)"),
        from_sample=_cifar10_from_sample,
    )
