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


def select_jpeg_images(jpeg_bytes, offsets, indices):
    """Copy the JPEG files of ``indices`` out of a concatenated-bytes array, with new offsets."""
    pieces = [jpeg_bytes[offsets[i]:offsets[i + 1]] for i in indices]
    new_offsets = np.concatenate([[0], np.cumsum([len(piece) for piece in pieces])]).astype(np.int64)
    return np.concatenate(pieces).astype(np.uint8), new_offsets


def make_cifar10(data_dir: Path):
    # Same layout as the shared cifar10_jpeg_q75.npz (the original JPEG bytes, no re-encoding), so
    # the sample goes through exactly the same decoder as the full copy.
    with np.load(data_dir / "cifar10_jpeg_q75.npz") as data:
        train = stratified_indices(data["y_train"], 1000, seed=0)
        test = stratified_indices(data["y_test"], 200, seed=1)
        train_bytes, train_offsets = select_jpeg_images(data["train_jpeg_bytes"], data["train_jpeg_offsets"], train)
        test_bytes, test_offsets = select_jpeg_images(data["test_jpeg_bytes"], data["test_jpeg_offsets"], test)
        np.savez_compressed(
            OUT / "cifar10_sample.npz",
            train_jpeg_bytes=train_bytes, train_jpeg_offsets=train_offsets,
            test_jpeg_bytes=test_bytes, test_jpeg_offsets=test_offsets,
            y_train=data["y_train"][train], y_test=data["y_test"][test],
            class_names=data["class_names"], train_indices=train, test_indices=test,
        )


if __name__ == "__main__":
    source = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets")
    OUT.mkdir(parents=True, exist_ok=True)
    make_mnist(source)
    make_cifar10(source)
    for path in sorted(OUT.glob("*.npz")):
        print(path.name, path.stat().st_size)
