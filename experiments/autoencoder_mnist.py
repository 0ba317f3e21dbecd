"""
Autoencoders on MNIST (docs/topics/autoencoder_mnist.md, the course's hands-on): an encoder R^784 -> R^m and a
decoder back, m = 32 < 784, trained on the loss ||x - x_hat||^2, and the three uses the course teaches.

- Compression: the test reconstruction MSE at m = 32 (the headline; per pixel, images in [0, 1]) and
  the compression ratio 784 / m.
- Denoising: inputs with Gaussian noise (sigma = 0.4) clipped to [0, 1]; a second model of the same
  shape learns noisy -> clean. PSNR = 10 log10(1 / MSE) per test image, averaged, of the noisy input
  and of the denoised output against the clean image (and of the plain autoencoder's output, which
  denoises a little by itself).
- Anomaly detection, the standard one-class protocol: a third model trains only on training images of
  `normal_digit`; every test image is scored by its reconstruction error, the nine other digits being
  the anomalies: ROC AUC, and precision / recall / F1 at a threshold set on held-out normal training
  images only (the `threshold_quantile` of their scores: 5 % of normal images flagged). The score is
  the mean squared error (`anomaly_score=mse`) or the worst `region_size` x `region_size` window of
  the error map (`region`: a missing or extra stroke is local, an image-wide average dilutes it).
  `dlbench study autoencoder_anomaly` runs the ten choices of the normal digit (experiments/autoencoder_studies.py).
  Reference: Deep SVDD's convolutional autoencoder baseline (Ruff et al. 2018) averages about 0.90.

The first task in `tasks` is logged per epoch (its units); the others are timed as phases.
Artifacts: originals / reconstructions / noisy / denoised rows of ten test digits, the histograms of
the anomaly score, normal vs anomalous, and the compression model (`autoencoder.keras`).

Variants, chosen by the config's `architecture` (what a variant is: --set refuses it): `dense`
(784 -> 256 -> 128 -> m -> 128 -> 256 -> 784) and `conv` (stride-2 convolutions 32, 64 -> dense code
of m -> mirrored transposed convolutions). Adam 1e-3, batch 128.

Measured figures (test MSE, PSNR gain, anomaly AUC per digit) are not typed here: docs/measurements.md
(generated) and `dlbench compare autoencoder_mnist` generate them from the run records,
with the machine, n, spread and contention of each row; results/plots/autoencoder_anomaly.png draws
the study.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from dlbench.experiment import Experiment, Metric, Variant
from dlbench.metrics import precision_recall_f1, roc_auc

DATASET = "mnist"
MODEL_FILE = "autoencoder.keras"
TASKS = ("compression", "denoising", "anomaly")
SHOWN_DIGITS = 10  # Columns of the reconstruction figure.


@dataclasses.dataclass(frozen=True)
class Config:
    architecture: Literal["dense", "conv"] = "dense"  # Dense layers, or stride-2 (transposed) convolutions.
    code_size: int = 32  # m, the code's length.
    hidden_units: int = 256  # dense: the first hidden layer (the second has half).
    filters: int = 32  # conv: the first convolution (the second has twice as many).
    epochs: int = 10  # Compression and denoising models.
    anomaly_epochs: int = 20  # The one-class model (about 6,000 images of one digit).
    batch_size: int = 128
    learning_rate: float = 1e-3
    noise_std: float = 0.4
    normal_digit: int = 0
    anomaly_score: str = "region"  # mse | region
    region_size: int = 7
    threshold_quantile: float = 0.95
    validation_fraction: float = 0.1  # Of the training images, held out (val_loss, anomaly threshold).
    tasks: str = "compression,denoising,anomaly"
    jit_compile: bool = False

    def validate(self):
        if min(self.code_size, self.hidden_units, self.filters, self.epochs, self.anomaly_epochs,
               self.batch_size, self.region_size) < 1:
            raise ValueError("sizes, epochs and batch_size must be >= 1")
        if self.code_size >= 784:
            raise ValueError("code_size must be below 784 (an autoencoder compresses)")
        if not 0 <= self.normal_digit <= 9:
            raise ValueError("normal_digit must be a digit 0-9")
        if self.anomaly_score not in ("mse", "region") or self.region_size > 28:
            raise ValueError("anomaly_score must be mse or region, region_size at most 28")
        if self.learning_rate <= 0 or self.noise_std < 0 or not 0 < self.threshold_quantile < 1 \
                or not 0 < self.validation_fraction < 1:
            raise ValueError("learning_rate > 0, noise_std >= 0, threshold_quantile and validation_fraction in (0, 1)")
        unknown = set(self.task_list()) - set(TASKS)
        if unknown or not self.task_list():
            raise ValueError(f"tasks must be a comma-separated choice of {', '.join(TASKS)}")

    def task_list(self) -> tuple[str, ...]:
        return tuple(task.strip() for task in self.tasks.split(",") if task.strip())


# ------------------------------------------------------------------------------------ Prepare the data


def as_images(pixels) -> np.ndarray:
    return (np.asarray(pixels, dtype=np.float32) / 255.0).reshape(-1, 28, 28, 1)


def add_noise(images, noise_std: float, seed: int) -> np.ndarray:
    """Gaussian noise, clipped back to the pixel range [0, 1]."""
    noise = np.random.default_rng(seed).standard_normal(images.shape).astype(np.float32) * noise_std
    return np.clip(images + noise, 0.0, 1.0)


def split(dataset, config: Config, seed: int):
    """Training images and labels, shuffled, cut into train / validation."""
    order = np.random.default_rng(seed).permutation(len(dataset.x_train))
    n_validation = max(1, int(round(config.validation_fraction * len(order))))
    images, labels = as_images(dataset.x_train)[order], dataset.y_train[order]
    return (images[n_validation:], labels[n_validation:]), (images[:n_validation], labels[:n_validation])


# ----------------------------------------------------------------------------------- Build the model


def build_autoencoder(config: Config):
    import keras

    images = keras.Input(shape=(28, 28, 1))
    if config.architecture == "dense":
        hidden = keras.layers.Flatten()(images)
        for width in (config.hidden_units, config.hidden_units // 2):
            hidden = keras.layers.Dense(width, activation="relu")(hidden)
        code = keras.layers.Dense(config.code_size, name="code")(hidden)
        hidden = code
        for width in (config.hidden_units // 2, config.hidden_units):
            hidden = keras.layers.Dense(width, activation="relu")(hidden)
        output = keras.layers.Reshape((28, 28, 1))(keras.layers.Dense(784, activation="sigmoid")(hidden))
    elif config.architecture == "conv":
        filters = config.filters
        hidden = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(images)  # 14x14
        hidden = keras.layers.Conv2D(2 * filters, 3, strides=2, padding="same", activation="relu")(hidden)  # 7x7
        code = keras.layers.Dense(config.code_size, name="code")(keras.layers.Flatten()(hidden))
        hidden = keras.layers.Dense(7 * 7 * 2 * filters, activation="relu")(code)
        hidden = keras.layers.Reshape((7, 7, 2 * filters))(hidden)
        hidden = keras.layers.Conv2DTranspose(2 * filters, 3, strides=2, padding="same", activation="relu")(hidden)
        hidden = keras.layers.Conv2DTranspose(filters, 3, strides=2, padding="same", activation="relu")(hidden)
        output = keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(hidden)
    else:
        raise ValueError(f"unknown architecture '{config.architecture}'; valid: dense, conv")
    return keras.Model(images, output, name=f"{config.architecture}_autoencoder")


# ------------------------------------------------------------------------------------------------ Train


def train(model, inputs, targets, validation, epochs: int, config: Config, callbacks=()):
    """Adam on the mean squared error ||x - x_hat||^2 / 784 per image (the course's loss, per pixel)."""
    import keras

    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="mse", jit_compile=config.jit_compile)
    model.fit(inputs, targets, validation_data=validation, epochs=epochs, batch_size=config.batch_size,
              shuffle=True, verbose=0, callbacks=list(callbacks))


# --------------------------------------------------------------------------------------------- Evaluate


def reconstruct(model, images) -> np.ndarray:
    return np.asarray(model.predict(images, batch_size=1000, verbose=0)).reshape(images.shape)


def psnr(reference, images) -> np.ndarray:
    """Peak signal-to-noise ratio in dB of each image against its reference (pixels in [0, 1])."""
    reference, images = np.asarray(reference, dtype=np.float64), np.asarray(images, dtype=np.float64)
    mse = np.mean((reference - images) ** 2, axis=tuple(range(1, reference.ndim)))
    return 10 * np.log10(1.0 / np.maximum(mse, 1e-12))


def region_scores(squared_errors, size: int) -> np.ndarray:
    """The largest mean of the error map over any size x size window, per image (a box filter from
    cumulative sums, so every window position is covered)."""
    errors = np.asarray(squared_errors, dtype=np.float64).reshape(len(squared_errors), 28, 28)
    summed = np.pad(errors.cumsum(axis=1).cumsum(axis=2), ((0, 0), (1, 0), (1, 0)))
    windows = (summed[:, size:, size:] - summed[:, :-size, size:] - summed[:, size:, :-size]
               + summed[:, :-size, :-size])
    return windows.reshape(len(errors), -1).max(axis=1) / (size * size)


def anomaly_scores(model, images, config: Config) -> np.ndarray:
    squared_errors = (reconstruct(model, images) - images) ** 2
    if config.anomaly_score == "mse":
        return squared_errors.reshape(len(images), -1).mean(axis=1)
    return region_scores(squared_errors, config.region_size)


def detection_metrics(is_anomaly, scores, threshold: float) -> dict[str, float]:
    """ROC AUC of the scores, and precision / recall / F1 / false-positive rate at the threshold."""
    is_anomaly = np.asarray(is_anomaly, dtype=bool)
    flagged = np.asarray(scores) > threshold
    counts = precision_recall_f1(np.sum(flagged & is_anomaly), flagged.sum(), is_anomaly.sum())
    return {"anomaly_auc": roc_auc(is_anomaly, scores), **{f"anomaly_{name}": value for name, value in counts.items()},
            "anomaly_false_positive_rate": float(np.sum(flagged & ~is_anomaly) / max((~is_anomaly).sum(), 1)),
            "anomaly_threshold": float(threshold)}


def save_reconstructions(rows: dict[str, np.ndarray], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(rows), SHOWN_DIGITS, figsize=(SHOWN_DIGITS * 0.9, len(rows) * 1.0))
    for row_axes, (label, images) in zip(np.atleast_2d(axes), rows.items()):
        for axis, image in zip(row_axes, images):
            axis.imshow(image.reshape(28, 28), cmap="gray", vmin=0, vmax=1)
            axis.set_xticks([]), axis.set_yticks([])
        row_axes[0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def save_score_histograms(scores, is_anomaly, threshold, config: Config, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 4))
    bins = np.linspace(0, np.quantile(scores, 0.995), 60)
    axis.hist(scores[~is_anomaly], bins=bins, alpha=0.6, density=True, label=f"normal: digit {config.normal_digit}")
    axis.hist(scores[is_anomaly], bins=bins, alpha=0.6, density=True, label="anomalies: the other digits")
    axis.axvline(threshold, color="black", linestyle="--", label=f"threshold ({config.threshold_quantile:.0%} of normal validation)")
    axis.set_xlabel(f"anomaly score ({config.anomaly_score})"), axis.set_ylabel("density")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


# -------------------------------------------------------------------------------------------------- Run


def run(config: Config, variant: str, record) -> None:
    import keras

    tasks = config.task_list()
    dataset = record.load_data(DATASET)
    with record.phase("data"):
        (x_train, y_train), (x_validation, y_validation) = split(dataset, config, record.seed)
        x_test = as_images(dataset.x_test)
        noisy = {name: add_noise(images, config.noise_std, record.seed + offset)
                 for offset, (name, images) in enumerate((("train", x_train), ("validation", x_validation),
                                                          ("test", x_test)))}
        normal_train = x_train[y_train == config.normal_digit]
        normal_validation = x_validation[y_validation == config.normal_digit]
    record.set(n_train=len(x_train), n_validation=len(x_validation))
    first_task_images = len(normal_train) if tasks[0] == "anomaly" else len(x_train)
    record.expect_units(config.anomaly_epochs if tasks[0] == "anomaly" else config.epochs,
                        items_per_unit=first_task_images)
    record.add_metrics(compression_ratio=784 / config.code_size)

    def callbacks(task):
        # The first task's epochs are the run's progress units; a later task only honours Ctrl-C.
        return [record.keras_callback() if task == tasks[0] else record.keras_stop_callback()]

    shown = {"original": x_test[:SHOWN_DIGITS]}
    if "compression" in tasks:
        with record.phase("build"):
            model = build_autoencoder(config)
        record.set(parameters=model.count_params())
        with record.phase("train", training=True):
            train(model, x_train, x_train, (x_validation, x_validation), config.epochs, config, callbacks("compression"))
        with record.phase("eval"):
            reconstructed = reconstruct(model, x_test)
            test_mse = float(np.mean((reconstructed - x_test) ** 2))
            plain_on_noisy = reconstruct(model, noisy["test"])
        record.add_metrics(test_mse=test_mse, test_psnr=float(psnr(x_test, reconstructed).mean()),
                           plain_autoencoder_on_noisy_psnr=float(psnr(x_test, plain_on_noisy).mean()))
        shown["reconstructed"] = reconstructed[:SHOWN_DIGITS]
        model.save(record.artifact_path(MODEL_FILE))

    if "denoising" in tasks:
        denoiser = build_autoencoder(config)
        with record.phase("train_denoising", training=True):
            train(denoiser, noisy["train"], x_train, (noisy["validation"], x_validation), config.epochs, config,
                  callbacks("denoising"))
        with record.phase("eval"):
            denoised = reconstruct(denoiser, noisy["test"])
        noisy_psnr, denoised_psnr = float(psnr(x_test, noisy["test"]).mean()), float(psnr(x_test, denoised).mean())
        record.add_metrics(noisy_psnr=noisy_psnr, denoised_psnr=denoised_psnr, psnr_gain=denoised_psnr - noisy_psnr,
                           denoised_mse=float(np.mean((denoised - x_test) ** 2)))
        shown.update(noisy=noisy["test"][:SHOWN_DIGITS], denoised=denoised[:SHOWN_DIGITS])

    if "anomaly" in tasks:
        keras.utils.set_random_seed(record.seed)  # The one-class model starts the same in every run of the study.
        one_class = build_autoencoder(config)
        with record.phase("train_anomaly", training=True):
            train(one_class, normal_train, normal_train, (normal_validation, normal_validation),
                  config.anomaly_epochs, config, callbacks("anomaly"))
        with record.phase("eval"):
            threshold = float(np.quantile(anomaly_scores(one_class, normal_validation, config), config.threshold_quantile))
            scores = anomaly_scores(one_class, x_test, config)
        is_anomaly = dataset.y_test != config.normal_digit
        record.add_metrics(**detection_metrics(is_anomaly, scores, threshold), normal_digit=config.normal_digit,
                           anomaly_n_train=len(normal_train))
        save_score_histograms(scores, is_anomaly, threshold, config, record.artifact_path("anomaly_scores.png"))

    if len(shown) > 1:
        save_reconstructions(shown, record.artifact_path("reconstructions.png"))


BASE = Config()
EXPERIMENT = Experiment(
    title="Autoencoders on MNIST: compression (m = 32), denoising, one-class anomaly detection",
    dataset=DATASET,
    variants={
        "dense": Variant("dense 784-256-128-32-128-256-784", dataclasses.replace(BASE, architecture="dense")),
        "conv": Variant("stride-2 convolutions 32, 64 -> code of 32 -> transposed convolutions",
                        dataclasses.replace(BASE, architecture="conv")),
    },
    # The architecture is what a variant is; code_size, normal_digit, tasks... stay settable (the studies set them).
    identity=("architecture",),
    run=run,
    metric=Metric("test_mse", higher_is_better=False, validation_log="val_loss"),
    progress_unit="epoch",
    throughput_unit="images/s",
    shown_metrics=("noisy_psnr", "denoised_psnr", "psnr_gain", "anomaly_auc"),
)
