"""Build the small real samples shipped in dlbench/samples/ from the full offline copies.

Run: python scripts/make_samples.py ../shared/datasets
Each sample is a stratified random subset (seed 0) of the real data, never synthetic; the chosen
indices into the full arrays are stored alongside so anyone can check the provenance.
"""

import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "dlbench" / "samples"


def stratified_indices(labels, count, seed):
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels).reshape(-1)
    classes = np.unique(labels)
    per_class = count // len(classes)
    chosen = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in classes]
    return np.sort(np.concatenate(chosen))


def make_mnist(data_dir: Path):
    with np.load(data_dir / "mnist.npz") as data:
        train = stratified_indices(data["y_train"], 2000, seed=0)
        test = stratified_indices(data["y_test"], 500, seed=1)
        np.savez_compressed(
            OUT / "mnist_sample.npz",
            x_train=data["x_train"][train], y_train=data["y_train"][train],
            x_test=data["x_test"][test], y_test=data["y_test"][test],
            train_indices=train, test_indices=test,
        )


if __name__ == "__main__":
    source = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets")
    OUT.mkdir(parents=True, exist_ok=True)
    make_mnist(source)
    for path in sorted(OUT.glob("*.npz")):
        print(path.name, path.stat().st_size)
