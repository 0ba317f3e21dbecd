"""
U-Net segmentation of fluorescence nuclei with BCE, Dice and boundary-weighted losses, and a three-class
U-Net whose nuclei come from a seeded watershed (docs/topics/unet_nuclei.md; issue 12).

The course's data (Kromp et al. 2020, S-BSST265) could not be obtained: its closest public relative
stands in, the Data Science Bowl 2018 stage-1 training set (BBBC038, CC0, with community mask fixes),
**fluorescence subset only** (541 grayscale dark-background images, 23,096 nuclei; every row's
dataset_origin says so). The split is fixed by a hash of the ImageId: 365 / 95 / 81 images for
train / validation / test. A user's own S-BSST265 folder (rawimages/ + groundtruth/) is read as well.

- Data: each image scaled to [0, 1] by its own 1st and 99.8th intensity percentiles (preparations and
  exposures differ); training on random square crops (drawn in proportion to image area) with flips
  and 90-degree rotations. The one-channel target is the foreground with a one-pixel separation border
  cut between touching nuclei (Ronneberger et al. 2015), the same target for every loss but three_class:
  without that gap no loss can teach the network to separate touching nuclei. Scores are measured
  against the untouched foreground (labels > 0).
- Model: a U-Net, `depth` levels of two 3x3 convolutions (batch norm, ReLU) and a max-pool, a
  bottleneck, and transposed-convolution upsampling with skip connections; one sigmoid channel, or a
  three-channel softmax for three_class.
- Losses (variants, chosen by the config's `loss`, which --set refuses): `bce`, `dice` (1 - 2 sum(y p)
  / (sum y + sum p), over the batch), `bce_dice` (their sum) and `boundary`: cross-entropy weighted
  by w = w_c + w0 exp(-(d1 + d2)^2 / (2 sigma^2)), w0 = 10, sigma = 5 px, d1 and d2 the distances to
  the nearest and second-nearest nucleus, w_c balancing the two classes; computed once per image
  (distance transforms) and kept in memory.
- `instances` (loss `three_class`): each pixel is background, interior or boundary (a nucleus pixel
  whose 3x3 neighbourhood holds background or another nucleus: touching nuclei get a two-pixel boundary
  between their interiors, which then never touch). Weighted categorical cross-entropy, the same w, its
  w_c proportional to class frequency ** -0.5 (`class_balance`; 1 would give the thin boundary class as
  much total weight as the background, the boundary variant's choice for its two classes).
  p(nucleus) = 1 - p(background) feeds every pixel score, so the rows compare with the other variants'.
  Nuclei: seeds are the connected components of p(interior) >= seed_threshold, the mask is p(nucleus)
  >= mask_threshold, and a watershed of 1 - p(interior) from the seeds splits each mask component among
  its seeds (a component without a seed is one nucleus): scipy.ndimage.watershed_ift, with the three
  work-arounds flood_from_seeds explains.
- Evaluation on whole test images (reflect-padded to a multiple of 2^depth): pixel accuracy,
  precision, recall, Dice and IoU (over all test pixels, and the mean per image) at threshold 0.5 and
  at the threshold with the best validation Dice; the precision-recall curve and its average
  precision; instance matching (predicted nuclei vs the labelled nuclei, matched at IoU >= 0.5:
  precision, recall, F1, mean matched IoU). The one-channel losses' nuclei are the 4-connected
  components of the thresholded mask, at the threshold with the best validation instance F1; the
  watershed's seed threshold, mask threshold and smallest seed are those with the best validation F1
  over a 4 x 5 x 3 grid (`min_seed_pixels` fixes the last), and
  its rows also record the connected components' F1 on the same probabilities (instance_f1_components).
  Headline: test Dice over all pixels at the validation-chosen threshold.
- Every run saves its network (model.keras) and how its output becomes nuclei (predict.json):
  `dlbench predict unet_nuclei IMAGE...` writes each image's label image and an overlay (default: the
  latest `instances` run).

Defaults (the same for every variant but the loss): depth 3, 16 base filters (483,857 parameters with
one output channel), batch 16 of 128x128 crops, 12 epochs of 800 crops (9,600 crops, about 3 passes over
the training pixels), Adam 1e-3 with cosine decay, XLA off: aimed at 7-10 minutes per variant on 2 idle
cores (not measured idle); "images/s" in the rows counts 128x128 training crops per second.
Measured figures (Dice, IoU, AP, instance precision/recall/F1, minutes) are not typed here: docs/measurements.md
(generated) and `dlbench compare unet_nuclei` generate them from the run records (the
committed rows shared the cores with another training: their times are inflated and flagged). The
boundary weights trade some pixel Dice for instance F1: they separate touching nuclei, which the region
losses merge.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import tempfile
import zipfile
from pathlib import Path
from typing import Literal

import numpy as np

from dlbench.experiment import DamagedModelError, Experiment, Metric, Variant
from dlbench.metrics import precision_recall_f1

# Keras and TensorFlow are imported inside the functions that use them: `dlbench list` and the
# runner's parent read the declaration at the end of this file without TensorFlow's start-up.
DATASET = "nuclei"
LOSSES = ("bce", "dice", "bce_dice", "boundary", "three_class")
CLASSES = ("background", "interior", "boundary")  # The three_class target's class indices 0, 1, 2.
OVERLAYS_FILE = "overlays.png"
PR_CURVE_FILE = "pr_curve.png"
MODEL_FILE = "model.keras"
PREDICT_FILE = "predict.json"  # How the saved model's output becomes nuclei (thresholds, sizes, stride).
# Thresholds searched on the validation images (pixel Dice, instance F1).
PIXEL_THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.01), 2)
INSTANCE_THRESHOLDS = np.round(np.arange(0.30, 0.901, 0.05), 2)
# three_class: the watershed's seed threshold, mask threshold and smallest seed, searched together on the
# validation images (60 settings, about a minute for the 95 validation images on 2 cores). The first
# measured run chose the grid's corner (0.9, 0.7; seeds of 4 pixels fixed then) and over-split nuclei;
# this grid, on that run's validation images only, put its best at mask 0.8 and seeds of 16 pixels.
SEED_THRESHOLDS = np.round(np.arange(0.60, 0.901, 0.10), 2)
MASK_THRESHOLDS = np.round(np.arange(0.50, 0.901, 0.10), 2)
SEED_SIZES = (4, 16, 32)  # Pixels: an interior blob smaller than this seeds no nucleus (it would split one).
HISTOGRAM_BINS = 1000  # Probabilities are binned for the PR curve and threshold search (0.001 wide).


@dataclasses.dataclass(frozen=True)
class Config:
    loss: Literal["bce", "dice", "bce_dice", "boundary", "three_class"] = "bce"
    epochs: int = 12
    crops_per_epoch: int = 800  # Random training crops per epoch (an "epoch" is this many crops).
    crop_size: int = 128  # Side of the square training crops, a multiple of 2 ** depth.
    batch_size: int = 16
    depth: int = 3  # Max-pools in the encoder; evaluation pads images to a multiple of 2 ** depth.
    base_filters: int = 16  # Filters of the first level, doubled at every level below.
    learning_rate: float = 1e-3
    lr_schedule: Literal["none", "cosine"] = "cosine"
    # Cut a 1-pixel gap between touching nuclei in the one-channel target (three_class has its boundary class).
    separation_border: bool = True
    boundary_w0: float = 10.0  # w0 of the boundary weight map (boundary and three_class).
    boundary_sigma: float = 5.0  # sigma of the boundary weight map, in pixels.
    # Class weights of the weight map, proportional to class frequency ** -class_balance: 1 gives every
    # class the same share of the total weight, 0 weighs all pixels alike.
    class_balance: float = 1.0
    min_object_pixels: int = 10  # Predicted nuclei smaller than this are dropped before matching.
    # three_class: interior blobs smaller than this seed no nucleus; 0: chosen on validation among SEED_SIZES.
    min_seed_pixels: int = 0
    train_subset: int = 0  # Train on the first N training images; 0: all.
    overlay_images: int = 4  # Test images drawn in the overlay artifact.
    jit_compile: bool = False  # XLA off on every device, so CPU and GPU rows compare alike.

    def validate(self):
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}")
        if min(self.epochs, self.crops_per_epoch, self.batch_size, self.depth, self.base_filters) < 1:
            raise ValueError("epochs, crops_per_epoch, batch_size, depth and base_filters must be >= 1")
        if self.crops_per_epoch < self.batch_size:
            raise ValueError("crops_per_epoch must be at least batch_size (one step per epoch)")
        if self.crop_size < 2 ** self.depth or self.crop_size % 2 ** self.depth:
            raise ValueError(f"crop_size must be a multiple of 2 ** depth = {2 ** self.depth}")
        if self.learning_rate <= 0 or self.boundary_sigma <= 0 or self.boundary_w0 < 0 or self.class_balance < 0:
            raise ValueError("learning_rate and boundary_sigma must be > 0, boundary_w0 and class_balance >= 0")
        if min(self.min_object_pixels, self.min_seed_pixels, self.train_subset, self.overlay_images) < 0:
            raise ValueError("min_object_pixels, min_seed_pixels, train_subset and overlay_images must be >= 0")


# -------------------------------------------------------------------------------- Prepare the data


def normalize_image(image: np.ndarray) -> np.ndarray:
    """uint8 image -> float32 in [0, 1], from its own 1st and 99.8th percentiles (robust to hot pixels)."""
    low, high = np.percentile(image, (1.0, 99.8))
    scaled = (image.astype(np.float32) - low) / max(float(high - low), 1.0)
    return np.clip(scaled, 0.0, 1.0)


def separation_borders(labels: np.ndarray) -> np.ndarray:
    """Pixels of a nucleus that touch a different nucleus (3x3 neighbourhood): a gap two pixels wide."""
    from scipy import ndimage

    foreground = labels > 0
    larger = ndimage.grey_dilation(labels, size=3)
    # Background raised above every label, so the neighbourhood minimum finds smaller nuclei only.
    raised = np.where(foreground, labels, labels.max() + 1)
    smaller = ndimage.grey_erosion(raised, size=3)
    return foreground & ((larger != labels) | ((smaller != labels) & (smaller <= labels.max())))


def training_target(labels: np.ndarray, separation_border: bool) -> np.ndarray:
    """The binary mask the network learns: foreground, minus the borders between touching nuclei."""
    target = labels > 0
    if separation_border:
        target &= ~separation_borders(labels)
    return target.astype(np.float32)


def three_class_target(labels: np.ndarray) -> np.ndarray:
    """Class index per pixel: 0 background, 1 interior, 2 boundary = the pixels of a nucleus whose 3x3
    neighbourhood holds another value (background or another nucleus). Two touching nuclei get a
    boundary two pixels wide between their interiors, so interiors never touch and can seed one nucleus each."""
    from scipy import ndimage

    foreground = labels > 0
    # Background is the smallest value: the neighbourhood minimum finds it and smaller nuclei, the maximum larger ones.
    differs = (ndimage.grey_dilation(labels, size=3) != labels) | (ndimage.grey_erosion(labels, size=3) != labels)
    return np.where(foreground, np.where(differs, 2, 1), 0).astype(np.float32)


def class_weights(targets: list[np.ndarray], classes: int = 2, balance: float = 1.0) -> tuple[float, ...]:
    """w_c per class index, proportional to (class frequency over the training pixels) ** -balance and
    scaled to a mean of 1 over the pixels. balance 1: (1 / classes) / frequency, every class carries the
    same share of the total weight (two classes: 0.5 / frequency); 0.5: the gentler square root."""
    counts = sum(np.bincount(target.astype(np.int64).ravel(), minlength=classes) for target in targets)
    frequency = np.clip(counts / counts.sum(), 1e-6, 1.0)
    weights = frequency**-balance
    return tuple(float(weight) for weight in weights / np.sum(frequency * weights))


def weight_map(labels: np.ndarray, target: np.ndarray, w0: float, sigma: float,
               weights: tuple[float, ...] = (1.0, 1.0)) -> np.ndarray:
    """w = w_c + w0 exp(-(d1 + d2)^2 / (2 sigma^2)), w_c the weight of the pixel's class in ``target``
    (0/1, or three_class's 0/1/2), d1 and d2 the distances to the nearest and second-nearest nucleus
    (0 inside a nucleus for its own distance).

    Each nucleus's distance transform is computed in its bounding box widened by 4 sigma: beyond that,
    d1 + d2 > 4 sigma and the term is below w0 exp(-8), so distances there are left at "far"."""
    from scipy import ndimage

    # Teaching note: the exponential is large only where two nuclei are both close, i.e. in the narrow
    # gaps between touching nuclei; it forces the network to get those few pixels right.
    far = np.float32(1e4)
    nearest = np.full(labels.shape, far, np.float32)
    second = np.full(labels.shape, far, np.float32)
    reach = int(math.ceil(4 * sigma))
    for number, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        window = tuple(slice(max(part.start - reach, 0), part.stop + reach) for part in box)
        distance = ndimage.distance_transform_edt(labels[window] != number).astype(np.float32)
        d1, d2 = nearest[window], second[window]
        second[window] = np.minimum(d2, np.maximum(d1, distance))
        nearest[window] = np.minimum(d1, distance)
    w_c = np.asarray(weights, np.float32)[target.astype(np.int64)]
    return w_c + w0 * np.exp(-((nearest + second) ** 2) / (2 * sigma**2)).astype(np.float32)


def random_crop(arrays: list[np.ndarray], size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The same random size x size window (reflect-padded if the image is smaller) of each array, then
    the same random flip and 90-degree rotation: image, target and weights stay aligned."""
    height, width = arrays[0].shape
    pad = ((0, max(size - height, 0)), (0, max(size - width, 0)))
    if any(pad[0] + pad[1]):
        arrays = [np.pad(array, pad, mode="reflect") for array in arrays]
        height, width = arrays[0].shape
    top, left = rng.integers(0, height - size + 1), rng.integers(0, width - size + 1)
    turns, flip = int(rng.integers(4)), bool(rng.integers(2))
    crops = []
    for array in arrays:
        crop = np.rot90(array[top:top + size, left:left + size], turns)
        crops.append(np.ascontiguousarray(crop[:, ::-1] if flip else crop))
    return crops


def pad_to_multiple(image: np.ndarray, multiple: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Reflect-pad the bottom and right edges to a multiple of the network's stride; returns the padded
    image and the original (height, width) to crop the prediction back to."""
    height, width = image.shape
    padded = np.pad(image, ((0, -height % multiple), (0, -width % multiple)), mode="reflect")
    return padded, (height, width)


def crop_batches(images, targets, weights, config: Config, seed: int):
    """Endless batches (x, y) of random crops; y holds target and weight as two channels, so the loss
    receives the weights without a special sample-weight path."""
    rng = np.random.default_rng(seed)
    areas = np.array([image.size for image in images], np.float64)
    chance = areas / areas.sum()  # Every pixel of the training set equally likely to be seen.
    while True:
        x = np.empty((config.batch_size, config.crop_size, config.crop_size, 1), np.float32)
        y = np.empty((config.batch_size, config.crop_size, config.crop_size, 2), np.float32)
        for slot, index in enumerate(rng.choice(len(images), config.batch_size, p=chance)):
            image, target, weight = random_crop([images[index], targets[index], weights[index]],
                                                config.crop_size, rng)
            x[slot, ..., 0], y[slot, ..., 0], y[slot, ..., 1] = image, target, weight
        yield x, y


def fixed_crops(images, targets, weights, size: int, seed: int):
    """One seeded crop per validation image, stacked: the per-epoch validation set."""
    rng = np.random.default_rng(seed)
    crops = [random_crop([image, target, weight], size, rng) for image, target, weight in zip(images, targets, weights)]
    x = np.stack([crop[0] for crop in crops])[..., None]
    y = np.stack([np.stack(crop[1:], axis=-1) for crop in crops])
    return x, y


# -------------------------------------------------------------------------------- Build the model


def build_unet(config: Config):
    import keras
    from keras import layers

    def two_convolutions(x, filters):
        for _ in range(2):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization()(x)
            x = layers.ReLU()(x)
        return x

    inputs = keras.Input(shape=(None, None, 1))  # Any size that is a multiple of 2 ** depth.
    x, skips = inputs, []
    for level in range(config.depth):
        x = two_convolutions(x, config.base_filters * 2**level)
        skips.append(x)
        x = layers.MaxPooling2D(2)(x)
    x = two_convolutions(x, config.base_filters * 2**config.depth)
    for level in reversed(range(config.depth)):
        x = layers.Conv2DTranspose(config.base_filters * 2**level, 2, strides=2)(x)
        # Teaching note: the skip connection hands the decoder the encoder's full-resolution features,
        # which the max-pools threw away: that is what keeps the nuclei's outlines sharp.
        x = layers.Concatenate()([x, skips[level]])
        x = two_convolutions(x, config.base_filters * 2**level)
    if config.loss == "three_class":  # p(background), p(interior), p(boundary) per pixel.
        outputs = layers.Conv2D(len(CLASSES), 1, activation="softmax")(x)
    else:
        outputs = layers.Conv2D(1, 1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs, name=f"unet_d{config.depth}_f{config.base_filters}")


def foreground(output):
    """p(nucleus) per pixel, channel axis kept: the sigmoid channel, or 1 - p(background) of the softmax.
    Takes NumPy arrays and Keras tensors alike."""
    return output if output.shape[-1] == 1 else 1.0 - output[..., :1]


def make_loss(name: str):
    """loss(y_true, y_pred), y_true = [target, weight] channels. bce is the weighted cross-entropy with
    weight 1 everywhere, boundary the same with the weight map, three_class the weighted categorical
    cross-entropy of the class index in the target channel."""
    from keras import ops

    epsilon = 1e-7

    def cross_entropy(y_true, y_pred):
        target, weight = y_true[..., :1], y_true[..., 1:2]
        probability = ops.clip(y_pred, epsilon, 1.0 - epsilon)
        pixel_loss = -(target * ops.log(probability) + (1.0 - target) * ops.log(1.0 - probability))
        return ops.mean(weight * pixel_loss)

    def dice_loss(y_true, y_pred):
        target = y_true[..., :1]
        overlap = ops.sum(target * y_pred)
        return 1.0 - (2.0 * overlap + 1.0) / (ops.sum(target) + ops.sum(y_pred) + 1.0)

    def bce_dice(y_true, y_pred):
        return cross_entropy(y_true, y_pred) + dice_loss(y_true, y_pred)

    def categorical_cross_entropy(y_true, y_pred):
        target = ops.one_hot(ops.cast(y_true[..., 0], "int32"), len(CLASSES))
        probability = ops.clip(y_pred, epsilon, 1.0 - epsilon)
        pixel_loss = -ops.sum(target * ops.log(probability), axis=-1)
        return ops.mean(y_true[..., 1] * pixel_loss)

    return {"bce": cross_entropy, "boundary": cross_entropy, "dice": dice_loss, "bce_dice": bce_dice,
            "three_class": categorical_cross_entropy}[name]


def dice_metric():
    """Hard foreground Dice at threshold 0.5 over a batch, logged per epoch as dice / val_dice: truth
    target > 0 (nucleus, or interior and boundary), prediction p(nucleus) > 0.5."""
    import keras
    from keras import ops

    def dice(y_true, y_pred):
        target = ops.cast(y_true[..., :1] > 0.5, "float32")
        predicted = ops.cast(foreground(y_pred) > 0.5, "float32")
        return (2.0 * ops.sum(target * predicted) + 1.0) / (ops.sum(target) + ops.sum(predicted) + 1.0)

    return keras.metrics.MeanMetricWrapper(dice, name="dice")


# -------------------------------------------------------------------------------- Evaluate


def predict_image(model, image: np.ndarray, multiple: int) -> np.ndarray:
    """The model's output for a whole normalised image, (height, width, channels): padded to the stride
    and cropped back."""
    padded, (height, width) = pad_to_multiple(image, multiple)
    probabilities = model.predict_on_batch(padded[None, ..., None])
    return np.asarray(probabilities)[0, :height, :width]


def nucleus_and_interior(outputs) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """p(nucleus) per image, and p(interior) per image (None for one-channel outputs): the pixel scores
    read the first, the watershed both. The three-channel outputs themselves are not kept."""
    probabilities, interiors = [], []
    for output in outputs:
        probabilities.append(np.ascontiguousarray(foreground(output)[..., 0]))
        interiors.append(np.ascontiguousarray(output[..., 1]) if output.shape[-1] > 1 else None)
    return probabilities, interiors


def dice_score(truth: np.ndarray, predicted: np.ndarray) -> float:
    """2 |A n B| / (|A| + |B|); 1 for two empty masks."""
    total = int(truth.sum()) + int(predicted.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(truth, predicted).sum()) / total


def iou_score(truth: np.ndarray, predicted: np.ndarray) -> float:
    union = int(np.logical_or(truth, predicted).sum())
    return 1.0 if union == 0 else int(np.logical_and(truth, predicted).sum()) / union


def probability_histograms(probabilities, truths) -> tuple[np.ndarray, np.ndarray]:
    """Counts of foreground and background pixels per probability bin, over all images."""
    positive = np.zeros(HISTOGRAM_BINS, np.int64)
    negative = np.zeros(HISTOGRAM_BINS, np.int64)
    for probability, truth in zip(probabilities, truths):
        bins = np.minimum((probability * HISTOGRAM_BINS).astype(np.int64), HISTOGRAM_BINS - 1)
        positive += np.bincount(bins[truth], minlength=HISTOGRAM_BINS)
        negative += np.bincount(bins[~truth], minlength=HISTOGRAM_BINS)
    return positive, negative


def confusion_at(positive: np.ndarray, negative: np.ndarray, threshold: float) -> dict[str, float]:
    """Pixel accuracy, precision, recall, Dice and IoU when p >= threshold is called foreground."""
    first = int(round(threshold * HISTOGRAM_BINS))
    tp, fp = int(positive[first:].sum()), int(negative[first:].sum())
    fn, tn = int(positive[:first].sum()), int(negative[:first].sum())
    counts = precision_recall_f1(tp, tp + fp, tp + fn)  # Dice is the pixels' F1.
    return {
        "accuracy": (tp + tn) / max(tp + tn + fp + fn, 1),
        "precision": counts["precision"],
        "recall": counts["recall"],
        "dice": counts["f1"],
        "iou": tp / max(tp + fp + fn, 1),
    }


def precision_recall_curve(positive: np.ndarray, negative: np.ndarray):
    """(thresholds, precision, recall, average precision) over the histogram's bin edges, highest first.
    AP = sum over thresholds of (recall step) x precision, as scikit-learn defines it."""
    tp = np.cumsum(positive[::-1])
    fp = np.cumsum(negative[::-1])
    thresholds = np.arange(HISTOGRAM_BINS - 1, -1, -1) / HISTOGRAM_BINS
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / max(int(positive.sum()), 1)
    average_precision = float(np.sum(np.diff(np.concatenate([[0.0], recall])) * precision))
    return thresholds, precision, recall, average_precision


def drop_small_objects(labels: np.ndarray, min_pixels: int) -> np.ndarray:
    """Labels 1..n with the objects under min_pixels removed and the rest renumbered in order."""
    if min_pixels <= 1 or not labels.any():
        return labels
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_pixels
    keep[0] = False
    renumbered = np.zeros(len(sizes), np.int32)
    renumbered[keep] = np.arange(1, int(keep.sum()) + 1)
    return renumbered[labels]


def connected_components(mask: np.ndarray, min_pixels: int) -> np.ndarray:
    """4-connected components of a binary mask as labels 1..n, those under min_pixels removed."""
    from scipy import ndimage

    return drop_small_objects(ndimage.label(mask)[0], min_pixels)


def flood_from_seeds(interior: np.ndarray, inside: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Every ``inside`` pixel (one mask component, cropped to its box) labelled with a seed's number by a
    watershed: the elevation 1 - p(interior) flooded from the seeds, lowest first, so that touching nuclei
    part along the low-p(interior) boundary between them.

    scipy.ndimage.watershed_ift needs three work-arounds (the tests show each quirk):
    - its path cost is the largest absolute *difference* between neighbouring input values, not the
      largest value: fed the elevation E, a flood crosses a uniformly high boundary band for free. The
      input alternates C + E and C - E on a checkerboard instead: every step between 4-neighbours then
      costs E_p + E_q, and a path costs its highest pair of elevations.
    - among equal costs, the seed queued last takes everything (a confident network's boundary band is
      flat): E is 127 levels of 1 - p(interior) times 256, plus the distance to the nearest seed, so a
      flat band is shared by distance.
    - it treats the array as one long row (a row's last pixel neighbours the next row's first): a frame
      of the highest elevation, one pixel wide, keeps every path inside the box.
    Inputs stay below 65535, which SciPy before 1.12 could not queue in 16 bits."""
    from scipy import ndimage

    highest = 32767  # C, and the frame's and the outside's E: above every inside E (at most 126 * 256 + 255).
    height, width = inside.shape
    markers = np.zeros((height + 2, width + 2), np.int32)
    markers[1:-1, 1:-1] = np.where(inside, seeds, 0)
    distance = np.minimum(np.round(ndimage.distance_transform_edt(markers[1:-1, 1:-1] == 0)), 255)
    elevation = np.full((height + 2, width + 2), highest, np.int32)
    elevation[1:-1, 1:-1] = np.where(inside, np.round(126.0 * (1.0 - interior)) * 256 + distance, highest)
    checkerboard = (np.arange(height + 2)[:, None] + np.arange(width + 2)) % 2 == 1
    image = np.where(checkerboard, highest + elevation, highest - elevation).astype(np.uint16)
    return ndimage.watershed_ift(image, markers)[1:-1, 1:-1]


def seeded_watershed(probability: np.ndarray, interior: np.ndarray, seed_threshold: float, mask_threshold: float,
                     min_seed_pixels: int, min_object_pixels: int) -> np.ndarray:
    """Nuclei from the three-class output: seeds = 4-connected components of p(interior) >= seed_threshold
    inside the mask p(nucleus) >= mask_threshold (those under min_seed_pixels dropped). A mask component
    with one seed is one nucleus, one without a seed too (small or faint nuclei may have no confident
    interior), and one with several seeds is split among them by flood_from_seeds. Labels 1..n, objects
    under min_object_pixels dropped. Only the components with several seeds are flooded, each in its
    bounding box: several times faster than one flood of the whole image (most pixels are background)."""
    from scipy import ndimage

    mask = probability >= mask_threshold
    seeds = connected_components((interior >= seed_threshold) & mask, min_seed_pixels)
    components, count = ndimage.label(mask)
    seed_count = int(seeds.max())
    component_of_seed = np.zeros(seed_count + 1, np.int64)  # A seed lies inside one mask component.
    component_of_seed[seeds[seeds > 0]] = components[seeds > 0]
    seeds_per_component = np.bincount(component_of_seed[1:], minlength=count + 1)
    seeds_per_component[0] = 0
    # One seed: the component takes the seed's number; no seed: a number after the seeds'.
    number = np.zeros(count + 1, np.int64)
    number[component_of_seed[1:]] = np.arange(1, seed_count + 1)
    seedless = np.flatnonzero(seeds_per_component[1:] == 0) + 1
    number[seedless] = np.arange(seed_count + 1, seed_count + 1 + len(seedless))
    nuclei = number[components]
    boxes = ndimage.find_objects(components)
    for component in np.flatnonzero(seeds_per_component >= 2):
        box = boxes[component - 1]
        inside = components[box] == component
        nuclei[box][inside] = flood_from_seeds(interior[box], inside, seeds[box])[inside]
    return drop_small_objects(nuclei, min_object_pixels)


def consecutive_labels(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 1..n in the order of their ids, 0 kept as background, in linear time (np.unique
    sorts every pixel, which made the threshold searches slow)."""
    present = np.bincount(labels.ravel())
    ids = np.flatnonzero(present[1:]) + 1
    renumbered = np.zeros(len(present), np.int64)
    renumbered[ids] = np.arange(1, len(ids) + 1)
    return renumbered[labels]


def match_instances(truth: np.ndarray, predicted: np.ndarray, iou_threshold: float = 0.5) -> dict[str, float]:
    """Counts of matched, true and predicted objects and the sum of matched IoUs. At an IoU above 0.5
    a nucleus can overlap that much with at most one component, so the matching is unique without a
    search."""
    if iou_threshold < 0.5:
        raise ValueError("matching by threshold alone is unique only for iou_threshold >= 0.5")
    truth, predicted = consecutive_labels(truth), consecutive_labels(predicted)
    truth_areas = np.bincount(truth.ravel())
    predicted_areas = np.bincount(predicted.ravel())
    both = (truth > 0) & (predicted > 0)
    pairs, overlap = np.unique(truth[both].astype(np.int64) * len(predicted_areas) + predicted[both],
                               return_counts=True)
    truth_of, predicted_of = pairs // len(predicted_areas), pairs % len(predicted_areas)
    iou = overlap / (truth_areas[truth_of] + predicted_areas[predicted_of] - overlap)
    matched = iou > iou_threshold if iou_threshold == 0.5 else iou >= iou_threshold
    return {"matched": int(matched.sum()), "true": int((truth_areas[1:] > 0).sum()),
            "predicted": int((predicted_areas[1:] > 0).sum()), "matched_iou": float(iou[matched].sum())}


def instance_scores(counts: list[dict]) -> dict[str, float]:
    """Precision, recall, F1 and mean matched IoU from the match counts of several images."""
    matched = sum(count["matched"] for count in counts)
    true, predicted = sum(count["true"] for count in counts), sum(count["predicted"] for count in counts)
    return {**precision_recall_f1(matched, predicted, true),
            "mean_iou": sum(count["matched_iou"] for count in counts) / max(matched, 1),
            "true": true, "predicted": predicted}


def instances_at(probabilities, labels, threshold: float, min_pixels: int) -> dict[str, float]:
    return instance_scores([match_instances(label, connected_components(probability >= threshold, min_pixels))
                            for probability, label in zip(probabilities, labels)])


def watershed_instances_at(probabilities, interiors, labels, seed_threshold: float, mask_threshold: float,
                           min_seed_pixels: int, min_object_pixels: int) -> dict[str, float]:
    return instance_scores([
        match_instances(label, seeded_watershed(probability, interior, seed_threshold, mask_threshold,
                                                min_seed_pixels, min_object_pixels))
        for probability, interior, label in zip(probabilities, interiors, labels)])


@dataclasses.dataclass(frozen=True)
class Segmentation:
    """How a model's output becomes labelled nuclei, chosen on the validation images at the end of a
    run: saved beside the model (predict.json) for `dlbench predict`."""

    loss: str
    stride: int  # Images are padded to a multiple of 2 ** depth.
    min_object_pixels: int
    threshold: float  # One-channel losses: connected components of p(nucleus) >= threshold.
    seed_threshold: float | None = None  # three_class: the watershed's thresholds.
    mask_threshold: float | None = None
    min_seed_pixels: int | None = None


def label_nuclei(probability: np.ndarray, interior: np.ndarray | None, segmentation: Segmentation) -> np.ndarray:
    """Labelled nuclei (0 background) of one image from p(nucleus) and, for three_class, p(interior)."""
    if segmentation.loss == "three_class":
        return seeded_watershed(probability, interior, segmentation.seed_threshold, segmentation.mask_threshold,
                                segmentation.min_seed_pixels, segmentation.min_object_pixels)
    return connected_components(probability >= segmentation.threshold, segmentation.min_object_pixels)


def plot_pr_curve(path, curve, points: dict[str, dict], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, precision, recall, average_precision = curve
    figure, axes = plt.subplots(figsize=(5, 4.5))
    axes.plot(recall, precision, label=f"test pixels (AP = {average_precision:.3f})")
    for label, point in points.items():
        axes.plot(point["recall"], point["precision"], "o", label=label)
    axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1.01), ylim=(0, 1.01), title=title)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_overlays(path, images, labels, probabilities, threshold: float, nuclei, title: str) -> None:
    """Per test image: the image; truth vs prediction at ``threshold`` (white both, red predicted only,
    blue missed); the predicted nuclei (label images). Large images are shown by their central 256 x 256
    window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(images), 3, figsize=(9, 3 * len(images)), squeeze=False)
    for row, (image, label, probability, predicted_nuclei) in enumerate(zip(images, labels, probabilities, nuclei)):
        top, left = max((image.shape[0] - 256) // 2, 0), max((image.shape[1] - 256) // 2, 0)
        window = (slice(top, top + 256), slice(left, left + 256))
        truth, predicted = label[window] > 0, probability[window] >= threshold
        errors = np.zeros(truth.shape + (3,), np.float32)
        errors[truth & predicted] = 1.0
        errors[predicted & ~truth] = (1.0, 0.2, 0.2)
        errors[truth & ~predicted] = (0.2, 0.4, 1.0)
        components = predicted_nuclei[window]
        axes[row, 0].imshow(normalize_image(image[window]), cmap="gray")
        axes[row, 1].imshow(errors)
        axes[row, 2].imshow(np.where(components > 0, components % 20 + 1, 0), cmap="tab20", interpolation="nearest")
        axes[row, 1].set_title(f"Dice {dice_score(truth, predicted):.3f}", fontsize=9)
        axes[row, 2].set_title(f"{len(np.unique(components)) - 1} predicted, {len(np.unique(label[window])) - 1} "
                               f"nuclei", fontsize=9)
        for axis in axes[row]:
            axis.axis("off")
    axes[0, 0].set_title("image", fontsize=9)
    figure.suptitle(title + "\nwhite: both, red: predicted only, blue: missed", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


# -------------------------------------------------------------------------------- Save and predict


def save_model(model, segmentation: Segmentation, model_path, settings_path) -> None:
    """The trained network without its optimiser state (the compiled copy holds Adam's moments and the
    loss closure), and beside it how its output becomes nuclei."""
    import keras

    keras.Model(model.inputs, model.outputs, name=model.name).save(model_path)
    Path(settings_path).write_text(json.dumps(dataclasses.asdict(segmentation), indent=1) + "\n")


def load_model(path):
    """The saved network; DamagedModelError (one line) when the file is there but is no loadable model."""
    import keras

    if not path.is_file():
        raise DamagedModelError(f"model file {path} is damaged (a directory, not a .keras file)")
    if not zipfile.is_zipfile(path):  # Keras would say "File not found" for a file that is there.
        raise DamagedModelError(f"model file {path} is damaged (not a whole .keras archive: "
                                f"{path.stat().st_size:,} bytes)")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # noqa: BLE001 - Keras raises ValueError, OSError, BadZipFile, KeyError...
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise DamagedModelError(f"model file {path} is damaged ({type(error).__name__}: {reason})") from None


def load_segmentation(path) -> Segmentation:
    try:
        return Segmentation(**json.loads(path.read_text()))
    except (ValueError, TypeError, OSError) as error:  # Not JSON, not an object, other or missing keys.
        raise DamagedModelError(f"{path} is damaged ({type(error).__name__}: {error})") from None


def read_image(path: Path) -> np.ndarray:
    """A user's image file (PNG, TIFF...) as a uint8 2-D array, as the loader reads S-BSST265 images
    (RGB of grayscale content -> one channel; 16-bit or float -> 0..255). ValueError, one line, when the
    file is missing or is no image: FileNotFoundError would read as 'no saved model' on the command line."""
    from PIL import UnidentifiedImageError

    # The loader's reader, not a second copy of its rules.
    from dlbench.data.nuclei import _read_image_file

    if not path.is_file():
        raise ValueError(f"image {path}: no such file")
    try:
        image = _read_image_file(path, "image")
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise ValueError(f"cannot read {path} as an image ({type(error).__name__}: {error})") from None
    if image.ndim != 2 or min(image.shape) < 2:
        raise ValueError(f"cannot read {path} as a 2-D image (array of shape {image.shape})")
    return image


def outline_overlay(image: np.ndarray, nuclei: np.ndarray) -> np.ndarray:
    """RGB uint8: the image in gray, each nucleus's outline (its three_class boundary pixels) in a colour."""
    import matplotlib

    gray = np.round(255 * normalize_image(image)).astype(np.uint8)
    overlay = np.repeat(gray[..., None], 3, axis=-1)
    outline = three_class_target(nuclei) == 2
    colours = np.round(255 * np.asarray(matplotlib.colormaps["tab20"].colors)).astype(np.uint8)
    overlay[outline] = colours[nuclei[outline] % len(colours)]
    return overlay


def write_prediction(image: np.ndarray, nuclei: np.ndarray, out_dir: Path, stem: str) -> tuple[Path, Path]:
    from PIL import Image

    labels_path, overlay_path = out_dir / f"{stem}_labels.png", out_dir / f"{stem}_overlay.png"
    if nuclei.max() > np.iinfo(np.uint16).max:
        raise ValueError(f"{stem}: {nuclei.max()} nuclei do not fit a 16-bit label image")
    Image.fromarray(nuclei.astype(np.uint16)).save(labels_path)
    Image.fromarray(outline_overlay(image, nuclei)).save(overlay_path)
    return labels_path, overlay_path


def predict_from_artifacts(artifacts_dir, image_files: list[str], out_dir="predictions") -> list[str]:
    """What `dlbench predict unet_nuclei IMAGE...` calls with the artifacts of a finished run: labels the
    nuclei of each image as the run did (its thresholds, from predict.json) and writes <stem>_labels.png
    (16-bit labels, 0 background) and <stem>_overlay.png into ``out_dir``; one line per image. Bad images
    and an unwritable ``out_dir`` are reported before the model is loaded."""
    paths = [Path(file) for file in image_files]
    images = [read_image(path) for path in paths]
    stems = [path.stem for path in paths]
    shared = sorted({stem for stem in stems if stems.count(stem) > 1})
    if shared:  # Two inputs would write the same two files.
        raise ValueError(f"images with the same name stem ({', '.join(shared)}) would overwrite each other's "
                         "predictions")
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):  # A real write: os.access answers yes to root whatever the mode.
            pass
    except OSError as error:
        raise ValueError(f"cannot write predictions to {out_dir} ({error.strerror or error})") from None

    artifacts_dir = Path(artifacts_dir)
    model_path, settings_path = artifacts_dir / MODEL_FILE, artifacts_dir / PREDICT_FILE
    for path in (model_path, settings_path):
        if not path.exists():
            raise FileNotFoundError(f"no saved model in {artifacts_dir} ({path.name} missing)")
    segmentation = load_segmentation(settings_path)
    model = load_model(model_path)
    lines = []
    for image, stem in zip(images, stems):
        [probability], [interior] = nucleus_and_interior([predict_image(model, normalize_image(image),
                                                                        segmentation.stride)])
        nuclei = label_nuclei(probability, interior, segmentation)
        labels_path, overlay_path = write_prediction(image, nuclei, out_dir, stem)
        lines.append(f"{int(nuclei.max())} nuclei -> {labels_path}, {overlay_path}")
    return lines


# -------------------------------------------------------------------------------------------------- Run


def run(config: Config, variant: str, record) -> None:
    import keras
    import tensorflow as tf

    dataset = record.load_data(DATASET)
    with record.phase("data"):
        x_train, y_train, _ = dataset.split("train")
        if config.train_subset:
            if config.train_subset > len(x_train):
                raise ValueError(f"train_subset={config.train_subset} is more than the {len(x_train)} training "
                                 f"images available ({dataset.source} data)")
            x_train, y_train = x_train[: config.train_subset], y_train[: config.train_subset]
        x_validation, y_validation, _ = dataset.split("validation")
        train_images = [normalize_image(image) for image in x_train]
        validation_images = [normalize_image(image) for image in x_validation]
        if config.loss == "three_class":
            train_targets = [three_class_target(labels) for labels in y_train]
            validation_targets = [three_class_target(labels) for labels in y_validation]
            class_names = CLASSES
        else:
            train_targets = [training_target(labels, config.separation_border) for labels in y_train]
            validation_targets = [training_target(labels, config.separation_border) for labels in y_validation]
            class_names = ("background", "foreground")
        if config.loss in ("boundary", "three_class"):
            balance = class_weights(train_targets, len(class_names), config.class_balance)
            train_weights = [weight_map(labels, target, config.boundary_w0, config.boundary_sigma, balance)
                             for labels, target in zip(y_train, train_targets)]
            validation_weights = [weight_map(labels, target, config.boundary_w0, config.boundary_sigma, balance)
                                  for labels, target in zip(y_validation, validation_targets)]
            record.add_metrics(**{f"class_weight_{name}": weight for name, weight in zip(class_names, balance)})
        else:
            train_weights = [np.ones_like(target) for target in train_targets]
            validation_weights = [np.ones_like(target) for target in validation_targets]
        steps_per_epoch = config.crops_per_epoch // config.batch_size
        shape = (config.batch_size, config.crop_size, config.crop_size)
        train_data = tf.data.Dataset.from_generator(
            lambda: crop_batches(train_images, train_targets, train_weights, config, record.seed),
            output_signature=(tf.TensorSpec(shape + (1,), tf.float32), tf.TensorSpec(shape + (2,), tf.float32)),
        ).prefetch(2)
        validation_data = fixed_crops(validation_images, validation_targets, validation_weights,
                                      config.crop_size, record.seed + 1)
    record.set(n_train=len(x_train), n_validation=len(x_validation))
    record.expect_units(config.epochs, items_per_unit=steps_per_epoch * config.batch_size)

    with record.phase("build"):
        keras.utils.set_random_seed(record.seed)
        model = build_unet(config)
        learning_rate = config.learning_rate
        if config.lr_schedule == "cosine":
            learning_rate = keras.optimizers.schedules.CosineDecay(config.learning_rate,
                                                                   decay_steps=config.epochs * steps_per_epoch)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=make_loss(config.loss),
                      metrics=[dice_metric()], jit_compile=config.jit_compile)
    record.set(parameters=model.count_params())

    with record.phase("train", training=True):
        model.fit(train_data, epochs=config.epochs, steps_per_epoch=steps_per_epoch,
                  validation_data=validation_data, validation_batch_size=config.batch_size, shuffle=False, verbose=0,
                  callbacks=[record.keras_callback()])

    with record.phase("eval"):
        stride = 2**config.depth
        x_test, y_test, _ = dataset.split("test")
        validation_probabilities, validation_interiors = nucleus_and_interior(
            predict_image(model, image, stride) for image in validation_images)
        test_probabilities, test_interiors = nucleus_and_interior(
            predict_image(model, normalize_image(image), stride) for image in x_test)
        validation_truths = [labels > 0 for labels in y_validation]
        test_truths = [labels > 0 for labels in y_test]

        # Pixel threshold: best validation Dice; instance threshold: best validation F1 at IoU 0.5.
        validation_histograms = probability_histograms(validation_probabilities, validation_truths)
        threshold = max(PIXEL_THRESHOLDS, key=lambda t: confusion_at(*validation_histograms, t)["dice"])
        # The validation F1 of each choice is recorded: settings (epochs, losses) are compared on it, not on test.
        validation_f1 = {t: instances_at(validation_probabilities, y_validation, t, config.min_object_pixels)["f1"]
                         for t in INSTANCE_THRESHOLDS}
        instance_threshold = max(validation_f1, key=validation_f1.get)
        segmentation = Segmentation(config.loss, stride, config.min_object_pixels, float(instance_threshold))
        if config.loss == "three_class":  # The watershed's settings: best validation F1 too.
            seed_sizes = (config.min_seed_pixels,) if config.min_seed_pixels else SEED_SIZES
            watershed_f1 = {
                setting: watershed_instances_at(validation_probabilities, validation_interiors, y_validation, *setting,
                                                config.min_object_pixels)["f1"]
                for setting in itertools.product(SEED_THRESHOLDS, MASK_THRESHOLDS, seed_sizes)}
            seed_threshold, mask_threshold, min_seed_pixels = max(watershed_f1, key=watershed_f1.get)
            segmentation = dataclasses.replace(segmentation, seed_threshold=float(seed_threshold),
                                               mask_threshold=float(mask_threshold),
                                               min_seed_pixels=int(min_seed_pixels))

        histograms = probability_histograms(test_probabilities, test_truths)
        at_half, at_best = confusion_at(*histograms, 0.5), confusion_at(*histograms, threshold)
        per_image = {name: [score(truth, probability >= threshold) for truth, probability in
                            zip(test_truths, test_probabilities)] for name, score in
                     (("dice", dice_score), ("iou", iou_score))}
        per_image_half = [dice_score(truth, probability >= 0.5) for truth, probability in
                          zip(test_truths, test_probabilities)]
        curve = precision_recall_curve(*histograms)
        shown = min(config.overlay_images, len(x_test))
        components = instances_at(test_probabilities, y_test, instance_threshold, config.min_object_pixels)
        components_half = instances_at(test_probabilities, y_test, 0.5, config.min_object_pixels)
        if config.loss == "three_class":
            test_nuclei = [label_nuclei(probability, interior, segmentation)
                           for probability, interior in zip(test_probabilities, test_interiors)]
            instances = instance_scores([match_instances(labels, nuclei)
                                         for labels, nuclei in zip(y_test, test_nuclei)])
            instances_half = watershed_instances_at(test_probabilities, test_interiors, y_test, 0.5, 0.5,
                                                    segmentation.min_seed_pixels, config.min_object_pixels)
            shown_nuclei = test_nuclei[:shown]
            instance_thresholds = dict(instance_seed_threshold=segmentation.seed_threshold,
                                       instance_mask_threshold=segmentation.mask_threshold,
                                       instance_min_seed_pixels=segmentation.min_seed_pixels,
                                       instance_f1_components=components["f1"],
                                       instance_f1_components_validation=validation_f1[instance_threshold],
                                       instance_f1_validation=watershed_f1[seed_threshold, mask_threshold,
                                                                           min_seed_pixels],
                                       instance_threshold_components=float(instance_threshold))
        else:
            instances, instances_half = components, components_half
            shown_nuclei = [connected_components(probability >= threshold, config.min_object_pixels)
                            for probability in test_probabilities[:shown]]
            instance_thresholds = dict(instance_threshold=float(instance_threshold),
                                       instance_f1_validation=validation_f1[instance_threshold])

    # Teaching note: pixel accuracy flatters a background-heavy image (predicting "background"
    # everywhere already scores ~0.88 here); precision, recall, Dice and IoU do not.
    record.add_metrics(
        dice=at_best["dice"], dice_mean_per_image=float(np.mean(per_image["dice"])), iou=at_best["iou"],
        iou_mean_per_image=float(np.mean(per_image["iou"])), pixel_accuracy=at_best["accuracy"],
        precision=at_best["precision"], recall=at_best["recall"], threshold=float(threshold),
        dice_t050=at_half["dice"], dice_mean_per_image_t050=float(np.mean(per_image_half)), iou_t050=at_half["iou"],
        pixel_accuracy_t050=at_half["accuracy"], precision_t050=at_half["precision"], recall_t050=at_half["recall"],
        background_fraction=int(histograms[1].sum()) / max(int(histograms[0].sum() + histograms[1].sum()), 1),
        average_precision=curve[3],
        instance_precision=instances["precision"], instance_recall=instances["recall"],
        instance_f1=instances["f1"], instance_mean_iou=instances["mean_iou"], **instance_thresholds,
        nuclei_true=instances["true"], nuclei_predicted=instances["predicted"], instance_f1_t050=instances_half["f1"],
    )

    title = f"unet_nuclei {variant} ({dataset.source} data, {len(x_test)} test images)"
    plot_pr_curve(record.artifact_path(PR_CURVE_FILE), curve,
                  {"threshold 0.5": at_half, f"threshold {threshold:.2f} (best on validation)": at_best}, title)
    if shown:
        plot_overlays(record.artifact_path(OVERLAYS_FILE), x_test[:shown], y_test[:shown], test_probabilities[:shown],
                      threshold, shown_nuclei, title)
    save_model(model, segmentation, record.artifact_path(MODEL_FILE), record.artifact_path(PREDICT_FILE))


BCE = Config(loss="bce")

EXPERIMENT = Experiment(
    title="U-Net segmentation of fluorescence nuclei: BCE, Dice, boundary-weighted and three-class + watershed",
    dataset=DATASET,
    variants={
        "bce": Variant("U-Net, pixel-wise binary cross-entropy", BCE),
        "dice": Variant("U-Net, soft Dice loss 1 - 2 sum(y p) / (sum y + sum p)", dataclasses.replace(BCE, loss="dice")),
        "bce_dice": Variant("U-Net, cross-entropy + Dice loss", dataclasses.replace(BCE, loss="bce_dice")),
        "boundary": Variant("U-Net, cross-entropy weighted by class balance and w0 exp(-(d1+d2)^2/2 sigma^2) between "
                            "nuclei (Ronneberger et al. 2015)", dataclasses.replace(BCE, loss="boundary")),
        "instances": Variant("U-Net, softmax background/interior/boundary, weighted cross-entropy; watershed from "
                             "the interiors", dataclasses.replace(BCE, loss="three_class", class_balance=0.5)),
    },
    run=run,
    metric=Metric("dice", higher_is_better=True),
    shown_metrics=("dice_mean_per_image", "iou", "average_precision", "instance_precision", "instance_recall",
                   "instance_f1"),
    progress_unit="epoch",
    throughput_unit="images/s",  # 128 x 128 training crops per second (crop_size sets the side).
    # The loss is what a variant is: --set loss=dice on `bce` would record a Dice-trained model as bce.
    identity=("loss",),
    # `dlbench predict unet_nuclei IMAGE...`: labelled nuclei and an overlay per image, by default from
    # the latest `instances` run.
    predict=predict_from_artifacts,
    predict_variant="instances",
)
