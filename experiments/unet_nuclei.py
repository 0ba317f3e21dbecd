"""
U-Net segmentation of fluorescence nuclei with BCE, Dice and boundary-weighted losses
(docs/topics/unet_nuclei.md; issue 12).

The course's data (Kromp et al. 2020, S-BSST265) could not be obtained: its closest public relative
stands in, the Data Science Bowl 2018 stage-1 training set (BBBC038, CC0, with community mask fixes),
**fluorescence subset only** (541 grayscale dark-background images, 23,096 nuclei; every row's
dataset_origin says so). The split is fixed by a hash of the ImageId: 365 / 95 / 81 images for
train / validation / test. A user's own S-BSST265 folder (rawimages/ + groundtruth/) is read as well.

- Data: each image scaled to [0, 1] by its own 1st and 99.8th intensity percentiles (preparations and
  exposures differ); training on random square crops (drawn in proportion to image area) with flips
  and 90-degree rotations. The target is the foreground with a one-pixel separation border cut
  between touching nuclei (Ronneberger et al. 2015), the same target for every loss: without that
  gap no loss can teach the network to separate touching nuclei. Scores are measured against the
  untouched foreground (labels > 0).
- Model: a U-Net, `depth` levels of two 3x3 convolutions (batch norm, ReLU) and a max-pool, a
  bottleneck, and transposed-convolution upsampling with skip connections; one sigmoid channel.
- Losses (variants, chosen by the config's `loss`, which --set refuses): `bce`, `dice` (1 - 2 sum(y p)
  / (sum y + sum p), over the batch), `bce_dice` (their sum) and `boundary`: cross-entropy weighted
  by w = w_c + w0 exp(-(d1 + d2)^2 / (2 sigma^2)), w0 = 10, sigma = 5 px, d1 and d2 the distances to
  the nearest and second-nearest nucleus, w_c balancing the two classes; computed once per image
  (distance transforms) and kept in memory.
- Evaluation on whole test images (reflect-padded to a multiple of 2^depth): pixel accuracy,
  precision, recall, Dice and IoU (over all test pixels, and the mean per image) at threshold 0.5 and
  at the threshold with the best validation Dice; the precision-recall curve and its average
  precision; instance matching (4-connected components of the thresholded mask vs the labelled
  nuclei, matched at IoU >= 0.5: precision, recall, F1, mean matched IoU), at the threshold with the
  best validation instance F1. Headline: test Dice over all pixels at the validation-chosen threshold.

Defaults (the same for every variant but the loss): depth 3, 16 base filters (483,857 parameters),
batch 16 of 128x128 crops, 12 epochs of 800 crops (9,600 crops, about 3 passes over the training
pixels), Adam 1e-3 with cosine decay, XLA off: aimed at 7-10 minutes per variant on 2 idle cores (not
measured idle); "images/s" in the rows counts 128x128 training crops per second.
Measured figures (Dice, IoU, AP, instance precision/recall/F1, minutes) are not typed here: docs/measurements.md
(generated) and `dlbench compare unet_nuclei` generate them from the run records (the
committed rows shared the cores with another training: their times are inflated and flagged). The
boundary weights trade some pixel Dice for instance F1: they separate touching nuclei, which the region
losses merge.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np

from dlbench.experiment import Experiment, Metric, Variant
from dlbench.metrics import precision_recall_f1

# Keras and TensorFlow are imported inside the functions that use them: `dlbench list` and the
# runner's parent read the declaration at the end of this file without TensorFlow's start-up.
DATASET = "nuclei"
LOSSES = ("bce", "dice", "bce_dice", "boundary")
OVERLAYS_FILE = "overlays.png"
PR_CURVE_FILE = "pr_curve.png"
# Thresholds searched on the validation images (pixel Dice, instance F1).
PIXEL_THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.01), 2)
INSTANCE_THRESHOLDS = np.round(np.arange(0.30, 0.901, 0.05), 2)
HISTOGRAM_BINS = 1000  # Probabilities are binned for the PR curve and threshold search (0.001 wide).


@dataclasses.dataclass(frozen=True)
class Config:
    loss: Literal["bce", "dice", "bce_dice", "boundary"] = "bce"
    epochs: int = 12
    crops_per_epoch: int = 800  # Random training crops per epoch (an "epoch" is this many crops).
    crop_size: int = 128  # Side of the square training crops, a multiple of 2 ** depth.
    batch_size: int = 16
    depth: int = 3  # Max-pools in the encoder; evaluation pads images to a multiple of 2 ** depth.
    base_filters: int = 16  # Filters of the first level, doubled at every level below.
    learning_rate: float = 1e-3
    lr_schedule: Literal["none", "cosine"] = "cosine"
    separation_border: bool = True  # Cut a 1-pixel gap between touching nuclei in the training target.
    boundary_w0: float = 10.0  # w0 of the boundary weight map.
    boundary_sigma: float = 5.0  # sigma of the boundary weight map, in pixels.
    min_object_pixels: int = 10  # Connected components smaller than this are dropped before matching.
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
        if self.learning_rate <= 0 or self.boundary_sigma <= 0 or self.boundary_w0 < 0:
            raise ValueError("learning_rate and boundary_sigma must be > 0, boundary_w0 >= 0")
        if self.min_object_pixels < 0 or self.train_subset < 0 or self.overlay_images < 0:
            raise ValueError("min_object_pixels, train_subset and overlay_images must be >= 0")


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


def class_weights(targets: list[np.ndarray]) -> tuple[float, float]:
    """(w_c background, w_c foreground) = 0.5 / class frequency over the training pixels: each class
    then carries half of the total weight (mean w_c = 1)."""
    foreground = sum(float(target.sum()) for target in targets) / sum(target.size for target in targets)
    foreground = min(max(foreground, 1e-6), 1 - 1e-6)
    return 0.5 / (1.0 - foreground), 0.5 / foreground


def weight_map(labels: np.ndarray, target: np.ndarray, w0: float, sigma: float,
               weights: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """w = w_c + w0 exp(-(d1 + d2)^2 / (2 sigma^2)), d1 and d2 the distances to the nearest and
    second-nearest nucleus (0 inside a nucleus for its own distance).

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
    w_c = np.where(target > 0, weights[1], weights[0]).astype(np.float32)
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
    outputs = layers.Conv2D(1, 1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs, name=f"unet_d{config.depth}_f{config.base_filters}")


def make_loss(name: str):
    """loss(y_true, y_pred), y_true = [target, weight] channels. bce is the weighted cross-entropy with
    weight 1 everywhere, boundary the same with the weight map."""
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

    return {"bce": cross_entropy, "boundary": cross_entropy, "dice": dice_loss, "bce_dice": bce_dice}[name]


def dice_metric():
    """Hard Dice at threshold 0.5 over a batch, logged per epoch as dice / val_dice."""
    import keras
    from keras import ops

    def dice(y_true, y_pred):
        target, predicted = y_true[..., :1], ops.cast(y_pred > 0.5, "float32")
        return (2.0 * ops.sum(target * predicted) + 1.0) / (ops.sum(target) + ops.sum(predicted) + 1.0)

    return keras.metrics.MeanMetricWrapper(dice, name="dice")


# -------------------------------------------------------------------------------- Evaluate


def predict_image(model, image: np.ndarray, multiple: int) -> np.ndarray:
    """Probabilities for a whole normalised image, padded to the stride and cropped back."""
    padded, (height, width) = pad_to_multiple(image, multiple)
    probabilities = model.predict_on_batch(padded[None, ..., None])
    return np.asarray(probabilities)[0, :height, :width, 0]


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


def connected_components(mask: np.ndarray, min_pixels: int) -> np.ndarray:
    """4-connected components of a binary mask as labels 1..n, those under min_pixels removed."""
    from scipy import ndimage

    components, count = ndimage.label(mask)
    if min_pixels > 1 and count:
        sizes = np.bincount(components.ravel())
        keep = sizes >= min_pixels
        keep[0] = False
        renumbered = np.zeros(len(sizes), np.int32)
        renumbered[keep] = np.arange(1, int(keep.sum()) + 1)
        components = renumbered[components]
    return components


def match_instances(truth: np.ndarray, predicted: np.ndarray, iou_threshold: float = 0.5) -> dict[str, float]:
    """Counts of matched, true and predicted objects and the sum of matched IoUs. At an IoU above 0.5
    a nucleus can overlap that much with at most one component, so the matching is unique without a
    search."""
    if iou_threshold < 0.5:
        raise ValueError("matching by threshold alone is unique only for iou_threshold >= 0.5")
    truth_ids, truth = np.unique(truth, return_inverse=True)
    truth = truth.reshape(predicted.shape)
    if truth_ids[0] != 0:  # No background pixel at all: shift so that 0 still means background.
        truth += 1
    predicted_ids, predicted = np.unique(predicted, return_inverse=True)
    predicted = predicted.reshape(truth.shape)
    if predicted_ids[0] != 0:
        predicted += 1
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


def plot_overlays(path, images, labels, probabilities, threshold: float, min_pixels: int, title: str) -> None:
    """Per test image: the image; truth vs prediction (white both, red predicted only, blue missed);
    the predicted instances. Large images are shown by their central 256 x 256 window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(images), 3, figsize=(9, 3 * len(images)), squeeze=False)
    for row, (image, label, probability) in enumerate(zip(images, labels, probabilities)):
        top, left = max((image.shape[0] - 256) // 2, 0), max((image.shape[1] - 256) // 2, 0)
        window = (slice(top, top + 256), slice(left, left + 256))
        truth, predicted = label[window] > 0, probability[window] >= threshold
        errors = np.zeros(truth.shape + (3,), np.float32)
        errors[truth & predicted] = 1.0
        errors[predicted & ~truth] = (1.0, 0.2, 0.2)
        errors[truth & ~predicted] = (0.2, 0.4, 1.0)
        components = connected_components(probability >= threshold, min_pixels)[window]
        axes[row, 0].imshow(normalize_image(image[window]), cmap="gray")
        axes[row, 1].imshow(errors)
        axes[row, 2].imshow(np.where(components > 0, components % 20 + 1, 0), cmap="tab20", interpolation="nearest")
        axes[row, 1].set_title(f"Dice {dice_score(truth, predicted):.3f}", fontsize=9)
        axes[row, 2].set_title(f"{len(np.unique(components)) - 1} components, {len(np.unique(label[window])) - 1} "
                               f"nuclei", fontsize=9)
        for axis in axes[row]:
            axis.axis("off")
    axes[0, 0].set_title("image", fontsize=9)
    figure.suptitle(title + "\nwhite: both, red: predicted only, blue: missed", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


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
        train_targets = [training_target(labels, config.separation_border) for labels in y_train]
        validation_images = [normalize_image(image) for image in x_validation]
        validation_targets = [training_target(labels, config.separation_border) for labels in y_validation]
        if config.loss == "boundary":
            balance = class_weights(train_targets)
            train_weights = [weight_map(labels, target, config.boundary_w0, config.boundary_sigma, balance)
                             for labels, target in zip(y_train, train_targets)]
            validation_weights = [weight_map(labels, target, config.boundary_w0, config.boundary_sigma, balance)
                                  for labels, target in zip(y_validation, validation_targets)]
            record.add_metrics(class_weight_background=balance[0], class_weight_foreground=balance[1])
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
        validation_probabilities = [predict_image(model, image, stride) for image in validation_images]
        test_probabilities = [predict_image(model, normalize_image(image), stride) for image in x_test]
        validation_truths = [labels > 0 for labels in y_validation]
        test_truths = [labels > 0 for labels in y_test]

        # Pixel threshold: best validation Dice; instance threshold: best validation F1 at IoU 0.5.
        validation_histograms = probability_histograms(validation_probabilities, validation_truths)
        threshold = max(PIXEL_THRESHOLDS, key=lambda t: confusion_at(*validation_histograms, t)["dice"])
        instance_threshold = max(INSTANCE_THRESHOLDS, key=lambda t: instances_at(
            validation_probabilities, y_validation, t, config.min_object_pixels)["f1"])

        histograms = probability_histograms(test_probabilities, test_truths)
        at_half, at_best = confusion_at(*histograms, 0.5), confusion_at(*histograms, threshold)
        per_image = {name: [score(truth, probability >= threshold) for truth, probability in
                            zip(test_truths, test_probabilities)] for name, score in
                     (("dice", dice_score), ("iou", iou_score))}
        per_image_half = [dice_score(truth, probability >= 0.5) for truth, probability in
                          zip(test_truths, test_probabilities)]
        curve = precision_recall_curve(*histograms)
        instances = instances_at(test_probabilities, y_test, instance_threshold, config.min_object_pixels)
        instances_half = instances_at(test_probabilities, y_test, 0.5, config.min_object_pixels)

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
        instance_f1=instances["f1"], instance_mean_iou=instances["mean_iou"],
        instance_threshold=float(instance_threshold), nuclei_true=instances["true"],
        nuclei_predicted=instances["predicted"], instance_f1_t050=instances_half["f1"],
    )

    title = f"unet_nuclei {variant} ({dataset.source} data, {len(x_test)} test images)"
    plot_pr_curve(record.artifact_path(PR_CURVE_FILE), curve,
                  {"threshold 0.5": at_half, f"threshold {threshold:.2f} (best on validation)": at_best}, title)
    shown = min(config.overlay_images, len(x_test))
    if shown:
        plot_overlays(record.artifact_path(OVERLAYS_FILE), x_test[:shown], y_test[:shown], test_probabilities[:shown],
                      threshold, config.min_object_pixels, title)


BCE = Config(loss="bce")

EXPERIMENT = Experiment(
    title="U-Net segmentation of fluorescence nuclei: BCE, Dice and boundary-weighted losses",
    dataset=DATASET,
    variants={
        "bce": Variant("U-Net, pixel-wise binary cross-entropy", BCE),
        "dice": Variant("U-Net, soft Dice loss 1 - 2 sum(y p) / (sum y + sum p)", dataclasses.replace(BCE, loss="dice")),
        "bce_dice": Variant("U-Net, cross-entropy + Dice loss", dataclasses.replace(BCE, loss="bce_dice")),
        "boundary": Variant("U-Net, cross-entropy weighted by class balance and w0 exp(-(d1+d2)^2/2 sigma^2) between "
                            "nuclei (Ronneberger et al. 2015)", dataclasses.replace(BCE, loss="boundary")),
    },
    run=run,
    metric=Metric("dice", higher_is_better=True),
    shown_metrics=("dice_mean_per_image", "iou", "average_precision", "instance_precision", "instance_recall",
                   "instance_f1"),
    progress_unit="epoch",
    throughput_unit="images/s",  # 128 x 128 training crops per second (crop_size sets the side).
    # The loss is what a variant is: --set loss=dice on `bce` would record a Dice-trained model as bce.
    identity=("loss",),
)
