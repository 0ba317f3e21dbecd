"""MNIST: 28x28 grayscale digits, from ``mnist.npz`` in the data directory, else the Keras cache's
``mnist.npz`` (the file ``keras.datasets.mnist`` keeps, downloaded from the same address when absent),
else the shipped sample. Keras itself is never imported: a NumPy run loads its data in milliseconds."""

from __future__ import annotations

from pathlib import Path

from dlbench.data.common import (
    SOURCE_FULL, SOURCE_SAMPLE, SPLIT_KEYS, Dataset, DataOptions, FullData, _resolve, check_split_arrays,
    describe_error, fetch, keras_cache_dir, read_npz, reading,
)

MNIST_CLASS_NAMES = tuple(str(digit) for digit in range(10))
MNIST_IMAGE_SHAPE = (28, 28)
# What keras.datasets.mnist.load_data() downloads, where it keeps it, and the checksum it verifies.
MNIST_FULL_DATA = FullData(
    file_name="mnist.npz", url="https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",
    cache_name="mnist.npz", sha256="731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1")


def _mnist_from_npz(path: Path, source: str, origin: str) -> Dataset:
    with reading("mnist", path, source):
        arrays = read_npz(path, SPLIT_KEYS)
        check_split_arrays(arrays, MNIST_IMAGE_SHAPE, len(MNIST_CLASS_NAMES))
    return Dataset(
        "mnist", arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], source, origin,
        class_names=MNIST_CLASS_NAMES,
    )


def _mnist_from_keras_cache(allow_download: bool):
    """The Keras cache's mnist.npz, downloaded first when absent (with urllib, not Keras: no TensorFlow
    start-up for a NumPy run). Returns (dataset, "") or (None, why not)."""
    cached = keras_cache_dir() / MNIST_FULL_DATA.cache_name
    origin = f"keras cache: {cached}"
    if not cached.exists():
        if not allow_download:
            return None, f"Keras cache {cached}: absent; download disabled"
        try:
            fetch(MNIST_FULL_DATA.url, cached, MNIST_FULL_DATA.sha256)
        except (OSError, ValueError) as error:  # Offline, proxy, damaged download: "not available here".
            return None, f"Keras cache {cached} / download: {type(error).__name__}: {describe_error(error)}"
        origin = f"keras download: {MNIST_FULL_DATA.url}, cached in {cached}"
    try:
        arrays = read_npz(cached, SPLIT_KEYS)
        check_split_arrays(arrays, MNIST_IMAGE_SHAPE, len(MNIST_CLASS_NAMES))
    except (OSError, ValueError) as error:  # A damaged cache: the sample, with the reason, as Keras' error did.
        return None, f"Keras cache {cached}: {describe_error(error)}"
    return Dataset("mnist", arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], SOURCE_FULL,
                   origin, class_names=MNIST_CLASS_NAMES), ""


def load_mnist(options: DataOptions) -> Dataset:
    return _resolve(
        "mnist", MNIST_FULL_DATA.file_name, options,
        from_file=lambda path: _mnist_from_npz(path, SOURCE_FULL, str(path)),
        from_keras=_mnist_from_keras_cache,
        from_sample=lambda path: _mnist_from_npz(path, SOURCE_SAMPLE, f"dlbench sample: {path.name}"),
    )
