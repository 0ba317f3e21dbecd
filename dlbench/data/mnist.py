"""MNIST: 28x28 grayscale digits, from ``mnist.npz`` in the data directory, else ``keras.datasets.mnist``
(the Keras cache or its download), else the shipped sample."""

from __future__ import annotations

from pathlib import Path

from dlbench.data.common import (
    SOURCE_FULL, SOURCE_SAMPLE, SPLIT_KEYS, Dataset, DataOptions, _from_keras, _resolve, check_split_arrays,
    read_npz, reading,
)

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


def load_mnist(options: DataOptions) -> Dataset:
    return _resolve(
        "mnist", "mnist.npz", options,
        from_file=lambda path: _mnist_from_npz(path, SOURCE_FULL, str(path)),
        from_keras=lambda allow_download: _from_keras("mnist", "mnist.npz", allow_download, MNIST_CLASS_NAMES),
        from_sample=lambda path: _mnist_from_npz(path, SOURCE_SAMPLE, f"dlbench sample: {path.name}"),
    )
