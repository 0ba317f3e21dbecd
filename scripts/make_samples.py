"""Build the small real samples shipped in dlbench/samples/ from the full offline copies.

Run: python scripts/make_samples.py ../shared/datasets [mnist cifar10 imdb nuclei]   (default: all four)
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


# IMDB: 2,000 train + 500 test whole reviews, 1,000 + 250 of each label, drawn with seeds 0 and 1 from the
# shared imdb_reviews.npz (aclImdb v1.0 raw text; sorted by label there, so the draw is per label).
# Stored as one UTF-8 byte blob + offsets per split (review i is bytes[offsets[i]:offsets[i+1]]), so the
# sample loads without allow_pickle. All reviews are eligible: no length cap. Whole random reviews give
# about 3.3 MB of text, 1.33 MB compressed, under the 1.5 MB limit. If a redraw ever exceeds it, set
# IMDB_MAX_CHARS (draw among reviews shorter than that, still balanced and seeded) and say so in
# dlbench/data/imdb.py's IMDB_SAMPLE_NOTE, which becomes the rows' dataset_origin.
IMDB_MAX_CHARS = None
IMDB_SAMPLE_LIMIT_BYTES = 1_500_000


def encode_texts(texts):
    """One UTF-8 byte blob and int64 offsets (N + 1) for a sequence of str."""
    encoded = [text.encode("utf-8") for text in texts]
    offsets = np.concatenate([[0], np.cumsum([len(piece) for piece in encoded])]).astype(np.int64)
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


def make_imdb(data_dir: Path):
    # The shared copy holds object arrays of str: it needs allow_pickle (the sample does not).
    with np.load(data_dir / "imdb_reviews.npz", allow_pickle=True) as data:
        arrays = {}
        for split, count, seed in (("train", 2000, 0), ("test", 500, 1)):
            texts, labels = data[f"x_{split}"], data[f"y_{split}"]
            eligible = np.ones(len(texts), bool)
            if IMDB_MAX_CHARS is not None:
                eligible = np.array([len(text) < IMDB_MAX_CHARS for text in texts])
            candidates = np.flatnonzero(eligible)
            indices = candidates[stratified_indices(labels[candidates], count, seed)]
            text_bytes, offsets = encode_texts(texts[indices])
            arrays.update({
                f"{split}_text_bytes": text_bytes, f"{split}_text_offsets": offsets,
                f"y_{split}": labels[indices].astype(np.int64), f"{split}_indices": indices,
                f"id_{split}": data[f"id_{split}"][indices], f"rating_{split}": data[f"rating_{split}"][indices],
            })
    path = OUT / "imdb_sample.npz"
    np.savez_compressed(path, **arrays)
    if path.stat().st_size >= IMDB_SAMPLE_LIMIT_BYTES:
        raise SystemExit(f"{path} is {path.stat().st_size:,} bytes, over {IMDB_SAMPLE_LIMIT_BYTES:,}: "
                         f"set IMDB_MAX_CHARS (see the comment above it)")


# Nuclei: 10 train + 3 validation + 3 test fluorescence images of the shared DSB 2018 copy, drawn with seed 0
# within each split of the full data (dlbench.data.nuclei_split_of), so the sample never moves an image to
# another split; each is cropped to its central 256x256 window and its nuclei renumbered 1..n (a nucleus cut by
# the crop keeps its visible part). Stored stacked: x_<split> uint8, y_<split> uint16, ids_<split>.
NUCLEI_SAMPLE_COUNTS = {"train": 10, "validation": 3, "test": 3}
NUCLEI_SAMPLE_SIDE = 256
NUCLEI_SAMPLE_LIMIT_BYTES = 1_500_000


def center_crop(array, side):
    top, left = (array.shape[0] - side) // 2, (array.shape[1] - side) // 2
    return array[top:top + side, left:left + side]


def renumber(labels):
    """Instance labels 1..n in order of first appearance of the kept ids (0 stays background)."""
    kept = np.unique(labels[labels > 0])
    lookup = np.zeros(int(labels.max()) + 1, np.uint16)
    lookup[kept] = np.arange(1, len(kept) + 1, dtype=np.uint16)
    return lookup[labels]


def make_nuclei(data_dir: Path):
    from dlbench.data import NUCLEI_FLUORESCENCE_MAX_MEAN, nuclei_split_of

    with np.load(data_dir / "nuclei_dsb2018_stage1_train.npz") as data:
        fluorescence = np.flatnonzero(data["grayscale"] & (data["mean_intensity"] < NUCLEI_FLUORESCENCE_MAX_MEAN))
        by_split = {split: [i for i in fluorescence if nuclei_split_of(str(data["ids"][i])) == split]
                    for split in NUCLEI_SAMPLE_COUNTS}
        arrays = {}
        for seed, (split, count) in enumerate(NUCLEI_SAMPLE_COUNTS.items()):
            chosen = np.sort(np.random.default_rng(seed).choice(by_split[split], count, replace=False))
            arrays[f"x_{split}"] = np.stack([center_crop(data[f"image_{i:03d}"], NUCLEI_SAMPLE_SIDE) for i in chosen])
            arrays[f"y_{split}"] = np.stack([renumber(center_crop(data[f"label_{i:03d}"], NUCLEI_SAMPLE_SIDE))
                                             for i in chosen])
            arrays[f"ids_{split}"] = data["ids"][chosen].astype(str)
            arrays[f"{split}_indices"] = chosen
    path = OUT / "nuclei_sample.npz"
    np.savez_compressed(path, **arrays)
    if path.stat().st_size >= NUCLEI_SAMPLE_LIMIT_BYTES:
        raise SystemExit(f"{path} is {path.stat().st_size:,} bytes, over {NUCLEI_SAMPLE_LIMIT_BYTES:,}")


MAKERS = {"mnist": make_mnist, "cifar10": make_cifar10, "imdb": make_imdb, "nuclei": make_nuclei}


if __name__ == "__main__":
    source = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets")
    names = sys.argv[2:] or list(MAKERS)
    unknown = [name for name in names if name not in MAKERS]
    if unknown:
        raise SystemExit(f"unknown sample(s) {', '.join(unknown)}; known: {', '.join(MAKERS)}")
    OUT.mkdir(parents=True, exist_ok=True)
    for name in names:
        MAKERS[name](source)
    for path in sorted(OUT.glob("*.npz")):
        print(path.name, path.stat().st_size)
