"""Nuclei: fluorescence images with instance label maps.

A ``SegmentationDataset`` (images of varying sizes, split 70/15/15 by a hash of the image id), read from
``nuclei_dsb2018_stage1_train.npz`` or an ``S-BSST265/`` folder (rawimages/ + groundtruth/) in the data
directory, else the DSB 2018 stage-1 archive through ``keras.utils.get_file``, else the shipped sample of
256x256 crops.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from dlbench.data.common import (
    SOURCE_FULL, SOURCE_SAMPLE, DataOptions, FullData, _resolve, describe_error, import_keras, keras_cache_dir,
    read_npz, reading,
)

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
NUCLEI_FULL_DATA = FullData(file_name=NUCLEI_FILE, url=NUCLEI_URL, cache_name=NUCLEI_ARCHIVE,
                            other_data_dir_names=(NUCLEI_SBSST265_DIR,), other_cache_names=(NUCLEI_EXTRACTED,))
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
        keras = import_keras()
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
