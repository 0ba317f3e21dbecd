"""
Fully connected network vs small CNN vs wide CNN on CIFAR-10, with SGD/Adam and ablations
(docs/topics/cnn_cifar.md: 32x32x3 colour images, 10 classes, 50k train / 10k test).

The course's three models, trained with keras `model.fit()` on a `tf.data` pipeline (shuffle,
batch, normalise, optional augmentation, prefetch):
- Model 1 (`fc_sgd`, `fc_adam`): fully connected 3072 -> 1024 -> 256 -> 64 -> 10 (3,426,250
  parameters), plain SGD 0.01 and Adam 1e-4 (at 1e-3 Adam overfits this dense model within a few
  epochs); the course uses the pair to motivate Adam.
- Model 2 (`lenet`): conv 6 k5, max-pool, conv 16 k5, max-pool, dense 400 -> 120 -> 84 -> 10
  (62,006), Adam 1e-3, 10 epochs (its validation accuracy peaks near epoch 10).
- Model 3 (`wide`): six 3x3 convolutions 32-64-128-128-256-256, batch norm after the first of each
  pair, three max-pools, dropout 0.05, dense 4096 -> 1024 -> 512 -> 10 (5,853,002, of which 832
  non-trainable batch-norm statistics), Adam 1e-3, 15 epochs; ablations `wide_nodrop` and
  `wide_nobn_nodrop` (5,851,338).
The official test images are the test set; 20 % of the training images are held out for per-epoch
validation (the course's 80/20). The offline copy is CIFAR-10 saved as JPEG quality 75 (rows say so).
Batch 64, no augmentation, schedule, early stopping or clipping, XLA off: the course's baseline,
each one `--set` away (augmentation=true, lr_schedule=cosine, early_stopping_patience=3, ...).
The model is chosen by the config, never by the variant's name: `architecture` (fc, lenet, wide)
and, for the wide model, `batch_norm` and `dropout`. These three name what a variant is, so --set
refuses them: choose another variant instead.

Measured figures are not typed here: docs/measurements.md (generated) and `dlbench compare
cnn_cifar` generate them from the run records (machine, n, spread, contention). The wide variants take
about an hour each on 2 CPU cores: run them with DEVICES=gpu. Meant to reach >= 80 % (not yet measured):
    make experiment NAME=cnn_cifar VARIANTS=wide DEVICES=gpu SET="augmentation=true lr_schedule=cosine epochs=30"
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np

from dlbench.experiment import Experiment, Metric, Variant

# Keras and TensorFlow are imported inside the functions that use them, not at the top: `dlbench list`
# and the runner's parent process read the declaration at the end of this file without paying
# TensorFlow's start-up (seconds and 0.5 GB); the worker that trains imports them before its clocks start.
DATASET = "cifar10"
# Printed by the runner before a CPU run starts (an order of magnitude, from the wide rows in results/).
_WIDE_ON_CPU = ("about 3.5 minutes per epoch on 2 idle CPU cores, 15 epochs by default (about an hour); "
                "use DEVICES=gpu, or VARIANTS=fc_sgd,fc_adam,lenet for a quick CPU run")

WIDE_DROPOUT = 0.05  # The course's dropout rate in Model 3.

# Keras' model.count_params() of each course model by (architecture, batch_norm), checked when the
# model is built (and in the tests); dropout has no parameters.
PARAMETER_COUNTS = {
    ("fc", False): 3_426_250,
    ("lenet", False): 62_006,
    ("wide", True): 5_853_002,
    ("wide", False): 5_851_338,
}


@dataclasses.dataclass(frozen=True)
class Config:
    # Model 1 (fully connected), Model 2 (LeNet-like) or Model 3 (six 3x3 convolutions).
    architecture: Literal["fc", "lenet", "wide"] = "wide"
    batch_norm: bool = True  # wide only: batch norm between the first convolution of each pair and its ReLU.
    dropout: float = WIDE_DROPOUT  # wide only: dropout rate after the convolutions and before the output (0: off).
    epochs: int = 15
    batch_size: int = 64
    optimizer: Literal["sgd", "adam"] = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.0  # SGD only. 0: plain SGD, so fc_sgd vs fc_adam contrasts SGD with Adam itself.
    augmentation: bool = False  # Random horizontal flip and shifts of up to 4 pixels, training only.
    normalization: Literal["channel_standardize", "unit_range"] = "channel_standardize"
    lr_schedule: Literal["none", "cosine", "step"] = "none"  # step: divide by 10 at 50 % and 75 % of training.
    early_stopping_patience: int = 0  # Epochs without a lower validation loss before stopping; 0: off.
    gradient_clip_norm: float = 0.0  # Clip the global gradient norm to this value; 0: off.
    validation_fraction: float = 0.2  # Share of the training images held out (course: 80/20).
    train_subset: int = 0  # Train on the first N images of the (shuffled) training split; 0: all.
    jit_compile: bool = False  # XLA off on every device, so CPU and GPU rows compare alike.

    def validate(self):
        if self.architecture != "wide" and (self.batch_norm or self.dropout):
            raise ValueError("batch_norm and dropout belong to the wide architecture only: set them false and 0")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")
        if self.learning_rate <= 0:
            raise ValueError("learning_rate must be > 0")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError("momentum must be in [0, 1)")
        if self.early_stopping_patience < 0 or self.gradient_clip_norm < 0 or self.train_subset < 0:
            raise ValueError("early_stopping_patience, gradient_clip_norm and train_subset must be >= 0 (0: off)")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError("validation_fraction must be in [0, 1)")
        if self.early_stopping_patience and self.validation_fraction == 0:
            raise ValueError("early stopping watches the validation loss: set validation_fraction > 0")


# -------------------------------------------------------------------------------- Input pipeline


def channel_statistics(x_train: np.ndarray, normalization: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation that map the pixels to the model's input scale.

    Computed from the training split only: the validation and test images must not leak into training."""
    if normalization == "unit_range":
        return np.zeros(3, np.float32), np.full(3, 255.0, np.float32)
    # From a histogram of the 256 possible values per channel: exact, and without a float copy of
    # the images (40,000 images in float64 would take about 1 GB).
    counts = np.stack([np.bincount(x_train[..., channel].ravel(), minlength=256) for channel in range(3)])
    values = np.arange(256, dtype=np.float64)
    mean = counts @ values / counts.sum(axis=1)
    variance = counts @ values**2 / counts.sum(axis=1) - mean**2
    return mean.astype(np.float32), np.sqrt(variance).astype(np.float32)


def make_pipeline(images, labels, config: Config, mean, std, training: bool = False, seed: int = 0):
    """uint8 images -> shuffled (training only), batched, optionally augmented, normalised float32 batches."""
    import keras
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((images, labels))
    if training:
        data = data.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    data = data.batch(config.batch_size)
    if training and config.augmentation:
        # Teaching note: augmentation shows the network a slightly different image each epoch (mirrored,
        # shifted by up to 4 pixels = 1/8 of the side), which fights overfitting without new data.
        # Keras preprocessing layers run inside tf.data here, so the model itself holds no extra layers.
        flip = keras.layers.RandomFlip("horizontal", seed=seed)
        shift = keras.layers.RandomTranslation(0.125, 0.125, fill_mode="reflect", seed=seed + 1)
        data = data.map(lambda x, y: (shift(flip(tf.cast(x, tf.float32))), y), num_parallel_calls=tf.data.AUTOTUNE)
    data = data.map(lambda x, y: ((tf.cast(x, tf.float32) - mean) / std, y), num_parallel_calls=tf.data.AUTOTUNE)
    return data.prefetch(tf.data.AUTOTUNE)


# -------------------------------------------------------------------------------- Models


def build_model(config: Config, name: str | None = None) -> keras.Sequential:
    """The course model that ``config.architecture`` names; ``name`` labels the Keras model (default:
    the architecture)."""
    import keras

    if config.architecture == "fc":
        layers = [
            keras.layers.Flatten(),  # 32 x 32 x 3 = 3072 inputs.
            keras.layers.Dense(1024, activation="relu"),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    elif config.architecture == "lenet":
        # Teaching note: output side = (input + 2 * padding - kernel) / stride + 1, so with no padding
        # 32 -> 28 (conv 5) -> 14 (pool) -> 10 (conv 5) -> 5 (pool): 5 * 5 * 16 = 400 features.
        layers = [
            keras.layers.Conv2D(6, 5, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(16, 5, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(120, activation="relu"),
            keras.layers.Dense(84, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    elif config.architecture == "wide":
        layers = []
        # Three stages of two "same" 3x3 convolutions and a max-pool: 32 -> 16 -> 8 -> 4 pixels, and
        # 4 * 4 * 256 = 4096 features. Batch norm sits between the first convolution and its ReLU.
        for first, second in ((32, 64), (128, 128), (256, 256)):
            layers.append(keras.layers.Conv2D(first, 3, padding="same"))
            if config.batch_norm:
                layers.append(keras.layers.BatchNormalization())
            layers.append(keras.layers.ReLU())
            layers.append(keras.layers.Conv2D(second, 3, padding="same", activation="relu"))
            layers.append(keras.layers.MaxPooling2D(2))
        if config.dropout:
            layers.append(keras.layers.Dropout(config.dropout))
        layers += [keras.layers.Flatten(), keras.layers.Dense(1024, activation="relu"),
                   keras.layers.Dense(512, activation="relu")]
        if config.dropout:
            layers.append(keras.layers.Dropout(config.dropout))
        layers.append(keras.layers.Dense(10, activation="softmax"))
    else:
        raise ValueError(f"unknown architecture '{config.architecture}'; valid: fc, lenet, wide")
    return keras.Sequential([keras.Input(shape=(32, 32, 3)), *layers], name=name or config.architecture)


def check_parameter_count(model: keras.Model, config: Config) -> None:
    """The course states each model's size; a different count means a different architecture."""
    expected = PARAMETER_COUNTS[config.architecture, config.batch_norm]
    if model.count_params() != expected:
        raise ValueError(f"{model.name} has {model.count_params():,} parameters, the course model has {expected:,}")


def make_learning_rate(config: Config, steps_per_epoch: int):
    """A constant, or a schedule over the optimizer's step count (one step per batch)."""
    import keras

    total_steps = config.epochs * steps_per_epoch
    if config.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=total_steps)
    if config.lr_schedule == "step":
        return keras.optimizers.schedules.PiecewiseConstantDecay(
            boundaries=[total_steps // 2, (3 * total_steps) // 4],
            values=[config.learning_rate, config.learning_rate / 10, config.learning_rate / 100])
    return config.learning_rate


def make_optimizer(config: Config, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    import keras

    learning_rate = make_learning_rate(config, steps_per_epoch)
    # global_clipnorm rescales the whole gradient when its norm exceeds the limit (the textbook
    # "clipping by norm"); Keras' clipnorm would clip each weight tensor separately.
    clip = {"global_clipnorm": config.gradient_clip_norm} if config.gradient_clip_norm else {}
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=config.momentum, **clip)
    return keras.optimizers.Adam(learning_rate=learning_rate, **clip)


# -------------------------------------------------------------------------------------------------- Run


def run(config: Config, variant: str, record) -> None:
    import keras

    dataset = record.load_data(DATASET)
    with record.phase("data"):
        # A seeded split, so every variant sees exactly the same training and validation images.
        order = np.random.default_rng(record.seed).permutation(len(dataset.x_train))
        n_validation = int(round(config.validation_fraction * len(order)))
        validation, train = order[:n_validation], order[n_validation:]
        if config.train_subset:
            if config.train_subset > len(train):
                raise ValueError(f"train_subset={config.train_subset} is more than the {len(train)} training "
                                 f"images available ({dataset.source} data)")
            train = train[: config.train_subset]
        x_train, y_train = dataset.x_train[train], dataset.y_train[train]
        mean, std = channel_statistics(x_train, config.normalization)
        train_data = make_pipeline(x_train, y_train, config, mean, std, training=True, seed=record.seed)
        validation_data = (
            make_pipeline(dataset.x_train[validation], dataset.y_train[validation], config, mean, std)
            if n_validation else None
        )
        test_data = make_pipeline(dataset.x_test, dataset.y_test, config, mean, std)
    record.set(n_train=len(x_train), n_validation=n_validation)
    record.expect_units(config.epochs, items_per_unit=len(x_train))

    steps_per_epoch = math.ceil(len(x_train) / config.batch_size)
    with record.phase("build"):
        model = build_model(config, name=variant)
        model.compile(
            optimizer=make_optimizer(config, steps_per_epoch),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            jit_compile=config.jit_compile,  # Explicit: "auto" would turn XLA on only where a GPU exists.
        )
    check_parameter_count(model, config)
    record.set(parameters=model.count_params())

    callbacks = [record.keras_callback()]
    if config.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=config.early_stopping_patience, restore_best_weights=True))
    with record.phase("train", training=True):
        # shuffle=False: the tf.data pipeline already reshuffles every epoch (fit cannot shuffle a
        # Dataset); verbose=0: dlbench's progress display shows each epoch.
        model.fit(train_data, epochs=config.epochs, validation_data=validation_data, shuffle=False, verbose=0,
                  callbacks=callbacks)

    with record.phase("eval"):
        test_loss, test_accuracy = model.evaluate(test_data, verbose=0)
    record.set(test_accuracy=float(test_accuracy), test_loss=float(test_loss))


# The model, optimizer, learning rate and epochs of each variant; a --set of the training settings
# applies to every variant, the model's fields (the identity below) cannot be set.
FC = Config(architecture="fc", batch_norm=False, dropout=0.0)
FC_SGD = dataclasses.replace(FC, optimizer="sgd", learning_rate=0.01, epochs=15)
FC_ADAM = dataclasses.replace(FC, optimizer="adam", learning_rate=1e-4, epochs=15)
LENET = Config(architecture="lenet", batch_norm=False, dropout=0.0, optimizer="adam", learning_rate=1e-3, epochs=10)
WIDE = Config(architecture="wide", batch_norm=True, dropout=WIDE_DROPOUT, optimizer="adam", learning_rate=1e-3,
              epochs=15)

EXPERIMENT = Experiment(
    title="Fully connected network vs small CNN vs wide CNN on CIFAR-10, with SGD/Adam and ablations",
    dataset=DATASET,
    variants={
        "fc_sgd": Variant("Model 1: fully connected 3072-1024-256-64-10, plain SGD", FC_SGD),
        "fc_adam": Variant("Model 1 again, trained with Adam", FC_ADAM),
        "lenet": Variant("Model 2: small CNN (two 5x5 convolutions, three dense layers), Adam", LENET),
        "wide": Variant("Model 3: six 3x3 convolutions with batch norm, dropout 0.05, Adam", WIDE,
                        slow_on_cpu=_WIDE_ON_CPU),
        "wide_nodrop": Variant("Model 3 without dropout (ablation)", dataclasses.replace(WIDE, dropout=0.0),
                               slow_on_cpu=_WIDE_ON_CPU),
        "wide_nobn_nodrop": Variant("Model 3 without batch norm and without dropout (ablation)",
                                    dataclasses.replace(WIDE, batch_norm=False, dropout=0.0), slow_on_cpu=_WIDE_ON_CPU),
    },
    # The model is what a variant is: with --set dropout=0, a row labelled `wide` would be wide_nodrop.
    identity=("architecture", "batch_norm", "dropout"),
    run=run,
    # Time-to-target: 60 % validation accuracy (LeNet's level on this split).
    metric=Metric("test_accuracy", higher_is_better=True, target=0.60),
    progress_unit="epoch",
    throughput_unit="images/s",
)
