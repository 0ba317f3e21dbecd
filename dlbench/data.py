"""Dataset loaders that return NumPy arrays and say exactly which copy of the data they used.

Resolution order for every dataset, first hit wins:

1. the data directory given by ``--data-dir`` or ``DLBENCH_DATA_DIR`` (files named as in the
   project's offline copies, e.g. ``mnist.npz``);
2. the Keras cache (``$KERAS_HOME/datasets``, default ``~/.keras/datasets``);
3. the Keras download (skipped when ``DLBENCH_NO_DOWNLOAD=1`` or ``--no-download``);
4. the small real sample shipped inside the package, with a loud warning. With ``strict=True``
   (``--strict-data``) this last step is an error that says how to provide the full data instead.

A ``Dataset`` records ``source`` ("full" or "sample") and ``origin`` (where it came from); the runner
copies both into the result row.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from importlib import resources
from pathlib import Path

import numpy as np

SOURCE_FULL = "full"
SOURCE_SAMPLE = "sample"


class DataUnavailableError(RuntimeError):
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
# MNIST
# --------------------------------------------------------------------------------------------------


def _mnist_from_npz(path: Path, source: str, origin: str) -> Dataset:
    with np.load(path) as data:
        return Dataset(
            "mnist", data["x_train"], data["y_train"], data["x_test"], data["y_test"], source, origin,
            class_names=tuple(str(digit) for digit in range(10)),
        )


def _mnist_from_keras(allow_download: bool) -> tuple[Dataset | None, str]:
    cached = keras_cache_dir() / "mnist.npz"
    if not cached.exists() and not allow_download:
        return None, f"Keras cache {cached}: absent; download disabled"
    origin = f"keras cache: {cached}" if cached.exists() else "keras download"
    try:
        import keras

        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as error:  # Offline, proxy, corrupted cache: all mean "not available here".
        return None, f"Keras cache {cached} / download: {type(error).__name__}: {error}"
    return Dataset("mnist", x_train, y_train, x_test, y_test, SOURCE_FULL, origin,
                   tuple(str(d) for d in range(10))), ""


def load_mnist(options: DataOptions) -> Dataset:
    return _resolve(
        "mnist", "mnist.npz", options,
        from_file=lambda path: _mnist_from_npz(path, SOURCE_FULL, str(path)),
        from_keras=_mnist_from_keras,
        from_sample=lambda path: _mnist_from_npz(path, SOURCE_SAMPLE, f"dlbench sample: {path.name}"),
    )


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
        raise DataUnavailableError(f"full {name} data not found ({'; '.join(tried)}). {how_to}")
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
}


def load(name: str, options: DataOptions | None = None) -> Dataset:
    if name not in LOADERS:
        raise ValueError(f"unknown dataset '{name}'; known: {', '.join(LOADERS)}")
    return LOADERS[name](options or DataOptions.from_environment())
