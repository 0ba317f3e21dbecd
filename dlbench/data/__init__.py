"""Dataset loaders that return NumPy arrays and say exactly which copy of the data they used.

Resolution order for every dataset, first hit wins:

1. the data directory given by ``--data-dir`` or ``DLBENCH_DATA_DIR`` (files named as in the
   project's offline copies, e.g. ``mnist.npz``);
2. the Keras cache (``$KERAS_HOME/datasets``, default ``~/.keras/datasets``);
3. the Keras download (skipped when ``DLBENCH_NO_DOWNLOAD=1`` or ``--no-download``), kept where
   ``keras.utils.get_file`` keeps it; MNIST's is a plain HTTP request, so that a NumPy run never loads
   TensorFlow;
4. the small real sample shipped inside the package, with a loud warning. With ``strict=True``
   (``--strict-data``) this last step is an error that says how to provide the full data instead.

``dlbench run`` decides this once per command, before any run starts (``prepare``, from each dataset's
``FullData`` declaration): a download is made once, by the parent process, and the sample warning is
said once; the runs then load what was decided without repeating either.

A ``Dataset`` records ``source`` ("full" or "sample") and ``origin`` (where it came from); the runner
copies both into the result row.

A file that is found but cannot be used (not an npz, truncated, missing arrays, wrong shapes or dtypes,
JPEG bytes that do not decode) raises ``DataError`` with one line naming the file and the fix; it is
never skipped silently, since the next source in the order might be a different copy of the data.

Layout: ``common.py`` holds what every dataset shares (the records, the options, reading and checking a
found file, the resolution order above); ``mnist.py``, ``cifar10.py``, ``imdb.py`` and ``nuclei.py`` hold
one dataset each, and their docstrings say which files each reads (IMDB and nuclei fill steps 2 and 3 from
their original archives, not from ``keras.datasets``). This module is the public face: it re-exports the
names callers use (``data.load``, ``data.DataOptions``, ``data.DataError``, ...) and maps each dataset's
name to its loader in ``LOADERS``. A test that replaces a function must patch the module that looks it up,
e.g. ``data.common.sample_path`` or ``data.cifar10._decode_cifar10_jpeg_npz``.
"""

from __future__ import annotations

# Re-exported so that callers keep writing data.<name>, whichever module defines it.
from dlbench.data.common import (  # noqa: F401
    SOURCE_FULL, SOURCE_SAMPLE, SPLIT_KEYS, DataError, DataOptions, DataUnavailableError, Dataset, FullData,
    cache_dir, check_labels, check_split_arrays, describe_error, fetch, import_keras, keras_cache_dir,
    native_stderr_quieted, normalize_labels, one_line, read_npz, reading, sample_path,
)
from dlbench.data.mnist import MNIST_CLASS_NAMES, MNIST_FULL_DATA, MNIST_IMAGE_SHAPE, load_mnist  # noqa: F401
from dlbench.data.cifar10 import (  # noqa: F401
    CIFAR10_CLASS_NAMES, CIFAR10_FILE, CIFAR10_FULL_DATA, CIFAR10_IMAGE_SHAPE, CIFAR10_JPEG_KEYS, CIFAR10_JPEG_NOTE,
    decode_jpeg_images, decoded_cache_path, load_cifar10,
)
from dlbench.data.imdb import (  # noqa: F401
    IMDB_ARCHIVE, IMDB_CLASS_NAMES, IMDB_EXTRACTED, IMDB_FILE, IMDB_FULL_DATA, IMDB_SAMPLE_KEYS, IMDB_SAMPLE_NOTE,
    IMDB_URL, check_text_arrays, decode_texts, load_imdb, read_aclimdb_tree,
)
from dlbench.data.nuclei import (  # noqa: F401
    NUCLEI_ARCHIVE, NUCLEI_DSB_NOTE, NUCLEI_EXTRACTED, NUCLEI_FILE, NUCLEI_FLUORESCENCE_MAX_MEAN, NUCLEI_FULL_DATA,
    NUCLEI_SAMPLE_NOTE, NUCLEI_SBSST265_DIR, NUCLEI_SBSST265_FOLDERS, NUCLEI_SPLIT_NOTE, NUCLEI_SPLITS, NUCLEI_URL,
    SegmentationDataset, check_nuclei_pair, load_nuclei, nuclei_split_of, read_dsb_tree, read_sbsst265_tree,
)
from dlbench.data.common import prepare as _prepare  # The public one below names the dataset only.

LOADERS = {
    "mnist": load_mnist,
    "cifar10": load_cifar10,
    "imdb": load_imdb,
    "nuclei": load_nuclei,
}
# Where each dataset's full copy is looked for, and its download: what ``prepare`` checks.
FULL_DATA = {
    "mnist": MNIST_FULL_DATA,
    "cifar10": CIFAR10_FULL_DATA,
    "imdb": IMDB_FULL_DATA,
    "nuclei": NUCLEI_FULL_DATA,
}


def load(name: str, options: DataOptions | None = None) -> Dataset | SegmentationDataset:
    if name not in LOADERS:
        raise ValueError(f"unknown dataset '{name}'; known: {', '.join(LOADERS)}")
    return LOADERS[name](options or DataOptions.from_environment())


def prepare(name: str, options: DataOptions) -> tuple[DataOptions, str | None]:
    """Once per command, before any run: the full data found (or downloaded now), else the shipped sample
    announced once; returns the options the runs get and the source (see ``common.prepare``)."""
    return _prepare(name, FULL_DATA[name], options)
