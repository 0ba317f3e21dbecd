"""
Generative adversarial networks on MNIST (docs/topics/gan_mnist.md): the course's dense GAN and a DCGAN,
trained with `model.fit()` and a `train_step` override (experiments/gan_layers.py), measured without
Inception weights by a cached MNIST classifier (experiments/digit_judge.py).

The generator G(z) turns a noise vector z ~ N(0, I) into a 28x28 image in [-1, 1] (tanh); the
discriminator gives D(x) in (0, 1). The discriminator maximises log D(x) + log(1 - D(G(z))), the
generator minimises the non-saturating -log D(G(z)); Adam 2e-4 with beta_1 = 0.5 for both, one
discriminator step then one generator step per batch. All 70,000 digits train (labels unused).

Quality, measured after every epoch on 10,000 digits generated from one fixed noise batch, against
the 10,000 test digits: FCD (the headline, lower is better), the classifier Inception Score as a ratio
to the real test images' (`is_ratio`) and the share of each predicted class (mode collapse shows as a
missing digit). Every row also carries the references scored the same way: 10,000 real training
digits (FCD near 0, is_ratio near 1) and uniform noise. Epoch times include that check (a few seconds).
Artifacts: 64 digits from a fixed noise batch after the epochs in `grid_epochs` and at the end, and
the trained generator (`generator.keras`).

Variants, chosen by the config's `architecture` (what a variant is: --set refuses it):
- `gan_dense` (architecture=dense): G 100 -> 256 -> 512 -> 1024 -> 784, D 784 -> 512 -> 256 -> 1
  (leaky ReLU, dropout in D).
- `dcgan` (architecture=conv): G dense to 7x7x128, two stride-2 transposed convolutions (64, 32
  channels, batch norm, leaky ReLU), a 3x3 convolution to one tanh channel; D two stride-2
  convolutions (32, 64), dropout.

Measured figures (FCD, is_ratio, class shares, per-epoch curves) are not typed here: docs/measurements.md
(generated) and `dlbench compare gan_mnist` generate them from the run records, with the
machine and contention of each row (the committed rows shared the cores with other trainings).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from dlbench.experiment import Experiment, Metric, Variant

DATASET = "mnist"
GENERATOR_FILE = "generator.keras"
GRID_SIZE = 8  # 8 x 8 = 64 digits per grid.


@dataclasses.dataclass(frozen=True)
class Config:
    architecture: Literal["dense", "conv"] = "conv"  # Dense G and D (the course's GAN), or a DCGAN.
    noise_dim: int = 100
    # conv: channels of the generator's last upsampling (x2, x4 before it) and of the discriminator's
    # first convolution (x2 after it). dense: width of G's first layer (x2, x4 after it) and D's last.
    generator_filters: int = 32
    discriminator_filters: int = 32
    dense_units: int = 256
    discriminator_dropout: float = 0.3
    epochs: int = 12
    batch_size: int = 64  # Twice the updates per epoch of 128, at about the same cost per image.
    learning_rate: float = 2e-4  # Adam, the generator's (and the discriminator's unless set below).
    discriminator_learning_rate: float = 0.0  # 0: learning_rate; e.g. 4e-4 with 1e-4 for G (TTUR, Heusel et al.).
    label_smoothing: float = 0.0  # One-sided: the real digits' target is 1 - label_smoothing.
    beta_1: float = 0.5
    include_test_images: bool = True  # Train on all 70,000 digits (labels are never used).
    train_subset: int = 0  # Train on the first N shuffled digits (0: all).
    evaluation_samples: int = 10_000  # Generated and real digits per FCD/IS (the same every time).
    quality_every: int = 1  # Epochs between quality checks during training (0: only at the end).
    grid_epochs: str = "1,2,4,8,12,20,30"  # After which epochs to save the grid of 64 digits.
    jit_compile: bool = False

    def validate(self):
        if min(self.noise_dim, self.generator_filters, self.discriminator_filters, self.dense_units,
               self.epochs, self.batch_size, self.evaluation_samples) < 1:
            raise ValueError("noise_dim, filters, dense_units, epochs, batch_size and evaluation_samples must be >= 1")
        if not 0 <= self.discriminator_dropout < 1 or self.learning_rate <= 0 or not 0 <= self.beta_1 < 1:
            raise ValueError("discriminator_dropout and beta_1 must be in [0, 1), learning_rate > 0")
        if self.discriminator_learning_rate < 0 or not 0 <= self.label_smoothing < 0.5:
            raise ValueError("discriminator_learning_rate must be >= 0 (0: learning_rate), label_smoothing in [0, 0.5)")
        if self.train_subset < 0 or self.quality_every < 0:
            raise ValueError("train_subset and quality_every must be >= 0")
        try:
            self.grid_epoch_list()
        except ValueError:
            raise ValueError(f"grid_epochs must be comma-separated epoch numbers, got '{self.grid_epochs}'") from None

    def grid_epoch_list(self) -> tuple[int, ...]:
        return tuple(int(epoch) for epoch in self.grid_epochs.split(",") if epoch.strip())


# ------------------------------------------------------------------------------------ Prepare the data


def training_images(dataset, config: Config, seed: int) -> np.ndarray:
    """The digits the GAN learns from, shuffled, as float32 (N, 28, 28, 1) in [-1, 1] (G's tanh range)."""
    pixels = np.concatenate([dataset.x_train, dataset.x_test]) if config.include_test_images else dataset.x_train
    pixels = pixels[np.random.default_rng(seed).permutation(len(pixels))]
    if config.train_subset:
        pixels = pixels[:config.train_subset]
    return (pixels.astype(np.float32) / 127.5 - 1.0).reshape(-1, 28, 28, 1)


def make_pipeline(images, config: Config, seed: int):
    import tensorflow as tf

    # drop_remainder: every step sees a full batch, so D's real and fake halves stay the same size.
    data = tf.data.Dataset.from_tensor_slices(images).shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    return data.batch(config.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def to_unit_range(generated) -> np.ndarray:
    """Generator output in [-1, 1] -> images in [0, 1], the judge's and the grids' range."""
    return np.clip((np.asarray(generated, dtype=np.float32) + 1.0) / 2.0, 0.0, 1.0)


# ----------------------------------------------------------------------------------- Build the models


def build_generator(config: Config):
    import keras

    noise = keras.Input(shape=(config.noise_dim,))
    if config.architecture == "dense":
        hidden = noise
        for width in (config.dense_units, 2 * config.dense_units, 4 * config.dense_units):
            hidden = keras.layers.LeakyReLU(0.2)(keras.layers.Dense(width)(hidden))
        images = keras.layers.Reshape((28, 28, 1))(keras.layers.Dense(28 * 28, activation="tanh")(hidden))
        return keras.Model(noise, images, name="generator")
    if config.architecture != "conv":
        raise ValueError(f"unknown architecture '{config.architecture}'; valid: dense, conv")
    filters = config.generator_filters
    # Batch norm after every layer but the last (the DCGAN recipe); no bias where batch norm follows.
    hidden = keras.layers.Dense(7 * 7 * 4 * filters, use_bias=False)(noise)
    hidden = keras.layers.LeakyReLU(0.2)(keras.layers.BatchNormalization()(hidden))
    hidden = keras.layers.Reshape((7, 7, 4 * filters))(hidden)
    for channels in (2 * filters, filters):  # 7x7 -> 14x14 -> 28x28.
        hidden = keras.layers.Conv2DTranspose(channels, 4, strides=2, padding="same", use_bias=False)(hidden)
        hidden = keras.layers.LeakyReLU(0.2)(keras.layers.BatchNormalization()(hidden))
    images = keras.layers.Conv2D(1, 3, padding="same", activation="tanh")(hidden)
    return keras.Model(noise, images, name="generator")


def build_discriminator(config: Config):
    """Outputs the logit of D(x); D(x) = sigmoid(logit) (the losses take logits, see gan_layers)."""
    import keras

    images = keras.Input(shape=(28, 28, 1))
    if config.architecture == "dense":
        hidden = keras.layers.Flatten()(images)
        for width in (2 * config.dense_units, config.dense_units):
            hidden = keras.layers.LeakyReLU(0.2)(keras.layers.Dense(width)(hidden))
            hidden = keras.layers.Dropout(config.discriminator_dropout)(hidden)
    else:
        hidden = images
        for channels in (config.discriminator_filters, 2 * config.discriminator_filters):  # 28 -> 14 -> 7.
            hidden = keras.layers.LeakyReLU(0.2)(keras.layers.Conv2D(channels, 4, strides=2, padding="same")(hidden))
            hidden = keras.layers.Dropout(config.discriminator_dropout)(hidden)
        hidden = keras.layers.Flatten()(hidden)
    return keras.Model(images, keras.layers.Dense(1)(hidden), name="discriminator")


def build_gan(config: Config, seed: int):
    import keras

    from experiments.gan_layers import GAN

    gan = GAN(build_generator(config), build_discriminator(config), config.noise_dim, seed=seed,
              label_smoothing=config.label_smoothing)
    discriminator_learning_rate = config.discriminator_learning_rate or config.learning_rate
    gan.compile(d_optimizer=keras.optimizers.Adam(discriminator_learning_rate, beta_1=config.beta_1),
                g_optimizer=keras.optimizers.Adam(config.learning_rate, beta_1=config.beta_1),
                jit_compile=config.jit_compile)
    return gan


# ------------------------------------------------------------------------------------------------ Train


def save_grid(images, path) -> None:
    """64 images in [0, 1] as one 8 x 8 PNG (2-pixel gaps), enlarged 2x to be readable."""
    from PIL import Image

    images = np.asarray(images).reshape(-1, 28, 28)[:GRID_SIZE * GRID_SIZE]
    canvas = np.ones((GRID_SIZE * 30 + 2, GRID_SIZE * 30 + 2), dtype=np.float32)
    for index, image in enumerate(images):
        row, column = divmod(index, GRID_SIZE)
        canvas[2 + row * 30:2 + row * 30 + 28, 2 + column * 30:2 + column * 30 + 28] = image
    picture = Image.fromarray((canvas * 255).round().astype(np.uint8))
    picture.resize((picture.width * 2, picture.height * 2), Image.NEAREST).save(path)


def generate(generator, noise) -> np.ndarray:
    return to_unit_range(generator.predict(noise, batch_size=1000, verbose=0))


def quality_callback(generator, scorer, evaluation_noise, grid_noise, config: Config, record):
    """After an epoch: the quality logs (fcd, is_ratio, min_class_share) the unit timer then records,
    and the grid of 64 digits after the chosen epochs. Must come before record.keras_callback()."""
    import keras

    grid_epochs = set(config.grid_epoch_list())

    class Quality(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            done = epoch + 1
            if done in grid_epochs:
                save_grid(generate(generator, grid_noise), record.artifact_path(f"grid_epoch_{done:03d}.png"))
            if config.quality_every and done % config.quality_every == 0 and logs is not None:
                score = scorer.score(generate(generator, evaluation_noise))
                logs.update(fcd=score["fcd"], is_ratio=score["is_ratio"], min_class_share=score["min_class_share"])

    return Quality()


# -------------------------------------------------------------------------------------------------- Run


def run(config: Config, variant: str, record) -> None:
    from experiments import digit_judge

    dataset = record.load_data(DATASET)
    with record.phase("data"):
        images = training_images(dataset, config, record.seed)
        train_data = make_pipeline(images, config, record.seed)
        samples = min(config.evaluation_samples, len(dataset.x_test))
        rng = np.random.default_rng(record.seed)
        evaluation_noise = rng.standard_normal((samples, config.noise_dim)).astype(np.float32)
        grid_noise = rng.standard_normal((GRID_SIZE * GRID_SIZE, config.noise_dim)).astype(np.float32)
    record.set(n_train=len(images), n_test=samples)
    record.expect_units(config.epochs, items_per_unit=(len(images) // config.batch_size) * config.batch_size)

    with record.phase("judge"):  # Trained once per copy of the data, then read from the cache.
        judge, trained_now = digit_judge.load_or_train(dataset)
        scorer = digit_judge.Scorer(judge, dataset.x_test[:samples])
        real_train = scorer.score(dataset.x_train[np.random.default_rng(record.seed + 1).permutation(
            len(dataset.x_train))[:samples]])
        noise = scorer.score(np.random.default_rng(record.seed + 2).random((samples, 28, 28), dtype=np.float32))
    record.add_metrics(judge_test_accuracy=judge.test_accuracy, judge_trained_now=trained_now,
                       real_test_is=scorer.real_test_is,
                       real_train_is=real_train["is"], real_train_is_ratio=real_train["is_ratio"],
                       real_train_fcd=real_train["fcd"], noise_is=noise["is"], noise_fcd=noise["fcd"])

    with record.phase("build"):
        gan = build_gan(config, record.seed)
    record.set(parameters=gan.generator.count_params() + gan.discriminator.count_params())
    record.add_metrics(generator_parameters=gan.generator.count_params(),
                       discriminator_parameters=gan.discriminator.count_params())

    with record.phase("train", training=True):
        callbacks = [quality_callback(gan.generator, scorer, evaluation_noise, grid_noise, config, record),
                     record.keras_callback()]
        gan.fit(train_data, epochs=config.epochs, shuffle=False, verbose=0, callbacks=callbacks)

    with record.phase("eval"):
        record.add_metrics(**scorer.score(generate(gan.generator, evaluation_noise)))
        save_grid(generate(gan.generator, grid_noise), record.artifact_path("grid_final.png"))
        gan.generator.save(record.artifact_path(GENERATOR_FILE))


BASE = Config()
EXPERIMENT = Experiment(
    title="GANs on MNIST: the course's dense GAN and a DCGAN, scored by a cached MNIST classifier (FCD, IS)",
    dataset=DATASET,
    variants={
        "gan_dense": Variant("the course's GAN: dense generator 100-256-512-1024-784, dense discriminator",
                             dataclasses.replace(BASE, architecture="dense", epochs=30)),
        "dcgan": Variant("transposed-convolution generator (7x7x128 -> 64 -> 32), strided-convolution discriminator",
                         dataclasses.replace(BASE, architecture="conv")),
    },
    # The architecture is what a variant is: --set architecture=dense on dcgan would record a dense GAN as dcgan.
    identity=("architecture",),
    run=run,
    metric=Metric("fcd", higher_is_better=False, validation_log="fcd"),
    progress_unit="epoch",
    throughput_unit="images/s",
    shown_metrics=("is_ratio", "min_class_share", "max_class_share", "real_train_fcd", "noise_fcd"),
)
