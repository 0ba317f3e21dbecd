"""
Title: Hand-written NumPy MLP vs Keras MLP on MNIST
Course: SPEC.md section 1 (digit recognition, 28x28 grey images, 10 classes).
Accelerator: none needed (the NumPy variant is CPU only; the Keras variant also runs on GPU).

Description: the same multi-layer perceptron trained twice, once written with NumPy only (every
forward and backward equation visible, see dlbench/numpy_nn.py) and once with Keras. Both start
from the *same* initial weights (Glorot uniform, drawn once with NumPy and copied into Keras), use
plain mini-batch SGD with the same batch size, learning rate and epochs, and are compared on test
accuracy, time and CO2.

Defaults are the course's reference model: 784 -> 64 -> 32 -> 10 (52,650 parameters), ReLU hidden
layers, softmax output, cross-entropy, SGD, learning rate 0.01, batch 64, 12 epochs. 10 % of the
training images are held out for per-epoch validation (the official 10,000 test images are the
test set, evaluated once at the end). Expected on full MNIST: about 95 % test accuracy with the
defaults, about 97.7 % with learning_rate=0.1. Run time on 2 CPU cores: about 10 s for NumPy and
under a minute for Keras.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from dlbench.numpy_nn import NumpyMLP

VARIANTS = {
    "numpy": "MLP written with NumPy only (forward/backward by hand, mini-batch SGD); CPU only",
    "keras": "the same MLP with keras.Sequential and model.fit(), same initial weights and SGD",
}
CPU_ONLY_VARIANTS = {"numpy"}
DATASET = "mnist"


@dataclasses.dataclass(frozen=True)
class Config:
    hidden_units: tuple[int, ...] = (64, 32)  # Widths of the hidden ReLU layers; the course's reference.
    learning_rate: float = 0.01  # Plain SGD step size.
    batch_size: int = 64  # Samples per gradient step (mini-batch gradient descent).
    epochs: int = 12
    validation_fraction: float = 0.1  # Share of the training images held out for per-epoch validation.
    jit_compile: bool = False  # Keras only: XLA off on every device, so CPU and GPU rows compare alike.

    def validate(self):
        if not self.hidden_units or min(self.hidden_units) < 1:
            raise ValueError("hidden_units needs at least one positive width, e.g. hidden_units=64,32")
        if self.learning_rate <= 0 or self.batch_size < 1 or self.epochs < 1:
            raise ValueError("learning_rate must be > 0, batch_size and epochs >= 1")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError("validation_fraction must be in [0, 1)")


def run(config: Config, variant: str, run) -> None:
    # ---------------------------------------------------------------------------- Prepare the data
    # Pixels flattened to 784 values in [0, 1], as the course does.
    dataset = run.load_data(DATASET)
    with run.phase("data"):
        x_all = dataset.x_train.reshape(len(dataset.x_train), -1).astype(np.float32) / 255.0
        y_all = dataset.y_train.astype(np.int64)
        x_test = dataset.x_test.reshape(len(dataset.x_test), -1).astype(np.float32) / 255.0
        y_test = dataset.y_test.astype(np.int64)
        # A seeded split, so both variants see exactly the same training and validation images.
        order = np.random.default_rng(run.seed).permutation(len(x_all))
        n_validation = int(round(config.validation_fraction * len(x_all)))
        validation, train = order[:n_validation], order[n_validation:]
        x_train, y_train = x_all[train], y_all[train]
        validation_data = (x_all[validation], y_all[validation]) if n_validation else None
    run.record(n_train=len(x_train), n_validation=n_validation)

    # ---------------------------------------------------------------------------- Build the model
    layer_sizes = (x_train.shape[1], *config.hidden_units, 10)
    with run.phase("build"):
        # The NumPy network draws the initial weights; the Keras model gets a copy of them.
        numpy_model = NumpyMLP(layer_sizes, seed=run.seed)
        if variant == "keras":
            model = build_keras_model(layer_sizes, config)
            model.set_weights([array for pair in zip(numpy_model.weights, numpy_model.biases) for array in pair])
    run.record(parameters=numpy_model.count_params())

    # ---------------------------------------------------------------------------- Train
    with run.phase("train"):
        if variant == "numpy":
            numpy_model.fit(x_train, y_train, epochs=config.epochs, batch_size=config.batch_size,
                            learning_rate=config.learning_rate, validation_data=validation_data,
                            seed=run.seed, on_epoch_end=lambda seconds, logs: run.record_epoch(seconds, **logs))
        else:
            model.fit(x_train, y_train, epochs=config.epochs, batch_size=config.batch_size,
                      validation_data=validation_data, shuffle=True, verbose=2,
                      callbacks=[run.keras_callback()])

    # ---------------------------------------------------------------------------- Evaluate
    with run.phase("eval"):
        if variant == "numpy":
            test_loss, test_accuracy = numpy_model.evaluate(x_test, y_test)
        else:
            test_loss, test_accuracy = model.evaluate(x_test, y_test, batch_size=1024, verbose=0)
    run.record(test_accuracy=float(test_accuracy), test_loss=float(test_loss))


def build_keras_model(layer_sizes, config: Config) -> keras.Model:
    layers = [keras.Input(shape=(layer_sizes[0],))]
    layers += [keras.layers.Dense(units, activation="relu") for units in layer_sizes[1:-1]]
    layers += [keras.layers.Dense(layer_sizes[-1], activation="softmax")]
    model = keras.Sequential(layers)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=config.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=config.jit_compile,  # Explicit: "auto" would turn XLA on only where a GPU exists.
    )
    return model
