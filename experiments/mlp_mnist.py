"""
Hand-written NumPy MLP vs Keras MLP on MNIST (docs/topics/mlp_mnist.md: 28x28 grey digits, 10 classes).

The same multi-layer perceptron trained with NumPy only (every forward and backward equation
visible, dlbench/numpy_nn.py) and with Keras, from the *same* initial weights (drawn once with NumPy
and copied into Keras), the same optimiser equations, batch size, learning rate and epochs; compared
on test accuracy, time, energy and CO2. Defaults are the course's reference: 784 -> 64 -> 32 -> 10
(52,650 parameters), ReLU, softmax + cross-entropy, SGD, learning rate 0.01, batch 64, 12 epochs,
10 % of the training images held out for per-epoch validation, the official 10,000 test images
evaluated once at the end.

Variants, each chosen by its config (`implementation` and `numpy_fast_path` name what a variant is
and cannot be changed with --set): `numpy` runs the readable forward()/backward() loop the course
shows; `numpy_fast` the same arithmetic in a fused loop (numpy_fast_path=true: bit-identical weights
and logs, tested); `keras` is keras.Sequential + fit(); `keras_fast` compiles it with XLA and runs 100
batches per call (jit_compile=true, steps_per_execution=100).

Studies change one key at a time with --set: hidden_activation, initializer, optimizer (sgd,
momentum, adam), l2, dropout, early_stopping_patience, train_subset, split. A run whose loss becomes
NaN or infinite stops and ends normally with diverged=1; one whose last training loss is no better
than guessing (ln 10) ends with failed_to_learn=1 (dead ReLUs at a too-large learning rate).

Measured figures (test accuracy and seconds per epoch of each variant) are not typed here: docs/measurements.md
(generated) and `dlbench compare mlp_mnist` generate them from the run records, one table
per machine with n, spread and contention.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np
from threadpoolctl import threadpool_limits

from dlbench.experiment import Experiment, Metric, Variant
from dlbench.numpy_nn import INITIALIZERS, OPTIMIZERS, NumpyMLP

# Keras and TensorFlow are imported inside the functions that use them, not at the top: `dlbench list`
# and the runner's parent process read the declaration at the end of this file without paying
# TensorFlow's start-up (seconds and 0.5 GB), and the NumPy variants never load it at all.
DATASET = "mnist"
SPLITS = ("official", "course")
COURSE_TEST_FRACTION = 0.1  # The course holds out 10 % of all the data as the test set.
GRADIENT_NORM_SAMPLES = 1024  # Training images used to measure per-layer gradient norms at initialisation.
HIDDEN_ACTIVATIONS = ("relu", "leaky_relu", "elu", "sigmoid", "tanh", "softplus", "swish", "linear")
# Batch-64 matrix products are too small to share among threads. On the 2-core development machine
# (busy with other work), a second BLAS thread made the epoch's GEMMs no faster (0.140 vs 0.137 s)
# and the NumPy epoch 7-30x slower, as the threads wait for each other. benchmarks/mlp_epoch.py
# measures both; re-check on a quiet many-core machine before changing this.
NUMPY_BLAS_THREADS = 1
# keras_fast runs this many batches per call into the compiled graph: Python and callback overhead
# is paid once per group instead of once per batch. Training mathematics is unchanged.
FAST_STEPS_PER_EXECUTION = 100


@dataclasses.dataclass(frozen=True)
class Config:
    # Which code trains the network: the hand-written NumpyMLP (dlbench/numpy_nn.py) or keras.Sequential.
    implementation: Literal["numpy", "keras"] = "numpy"
    # NumPy only: the fused in-place loop for the course's common case (same arithmetic, bit-identical
    # results, less overhead); false runs the readable loop the course shows.
    numpy_fast_path: bool = False
    hidden_units: tuple[int, ...] = (64, 32)  # Widths of the hidden layers; the course's reference.
    hidden_activation: str = "relu"  # One of HIDDEN_ACTIVATIONS (leaky_relu slope 0.01, elu alpha 1).
    initializer: str = "glorot_uniform"  # Weights: glorot_uniform/normal, he_uniform/normal, small_random.
    optimizer: str = "sgd"  # sgd, momentum (SGD with `momentum`) or adam (Keras' defaults).
    learning_rate: float = 0.01  # Step size of the optimizer.
    momentum: float = 0.9  # Used by optimizer=momentum only.
    batch_size: int = 64  # Samples per gradient step (mini-batch gradient descent).
    epochs: int = 12
    l2: float = 0.0  # Adds l2 * sum(W^2) of every weight matrix to the loss (0 = off).
    dropout: float = 0.0  # Inverted dropout after each hidden layer (0 = off); each variant draws its own masks.
    early_stopping_patience: int = 0  # Epochs without a better validation loss before stopping (0 = off).
    train_subset: int = 0  # Train on the first N training images only (0 = all), e.g. to overfit.
    split: str = "official"  # "official": MNIST's 10,000 test images; "course": 10 % of all 70,000 held out.
    validation_fraction: float = 0.1  # Share of the (non-test) training images held out for validation.
    jit_compile: bool = False  # Keras only: XLA off on every device, so CPU and GPU rows compare alike.
    steps_per_execution: int = 1  # Keras only: batches per call into the compiled training step.

    def validate(self):
        if self.numpy_fast_path and self.implementation != "numpy":
            raise ValueError("numpy_fast_path applies to implementation=numpy only")
        if not self.hidden_units or min(self.hidden_units) < 1:
            raise ValueError("hidden_units needs at least one positive width, e.g. hidden_units=64,32")
        if self.learning_rate <= 0 or self.batch_size < 1 or self.epochs < 1 or self.steps_per_execution < 1:
            raise ValueError("learning_rate must be > 0, batch_size, epochs and steps_per_execution >= 1")
        if self.hidden_activation not in HIDDEN_ACTIVATIONS:
            raise ValueError(f"unknown hidden_activation '{self.hidden_activation}'; "
                             f"valid: {', '.join(HIDDEN_ACTIVATIONS)}")
        if self.initializer not in INITIALIZERS:
            raise ValueError(f"unknown initializer '{self.initializer}'; valid: {', '.join(INITIALIZERS)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer '{self.optimizer}'; valid: {', '.join(OPTIMIZERS)}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError("momentum must be in [0, 1)")
        if self.l2 < 0 or not 0.0 <= self.dropout < 1.0:
            raise ValueError("l2 must be >= 0 and dropout in [0, 1)")
        if self.early_stopping_patience < 0 or self.train_subset < 0:
            raise ValueError("early_stopping_patience and train_subset must be >= 0 (0 = off / all)")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError("validation_fraction must be in [0, 1)")
        if self.split not in SPLITS:
            raise ValueError(f"unknown split '{self.split}'; valid: {', '.join(SPLITS)}")
        if self.early_stopping_patience and self.validation_fraction == 0:
            raise ValueError("early stopping watches the validation loss: validation_fraction must be > 0")


# ---------------------------------------------------------------------------------- Prepare the data


def prepare_data(dataset, config: Config, seed: int):
    """Pixels flattened to 784 values in [0, 1], as the course does; seeded splits, so every variant
    sees exactly the same training, validation and test images. Returns (x_train, y_train,
    validation_data or None, x_test, y_test)."""
    x_all = dataset.x_train.reshape(len(dataset.x_train), -1).astype(np.float32) / 255.0
    y_all = dataset.y_train
    x_test = dataset.x_test.reshape(len(dataset.x_test), -1).astype(np.float32) / 255.0
    y_test = dataset.y_test
    rng = np.random.default_rng(seed)
    if config.split == "course":
        # The course's split: pool everything, hold out 10 % as the test set, never seen in training.
        x_pool, y_pool = np.concatenate([x_all, x_test]), np.concatenate([y_all, y_test])
        pool_order = rng.permutation(len(x_pool))
        n_test = int(round(COURSE_TEST_FRACTION * len(x_pool)))
        x_test, y_test = x_pool[pool_order[:n_test]], y_pool[pool_order[:n_test]]
        x_all, y_all = x_pool[pool_order[n_test:]], y_pool[pool_order[n_test:]]
    order = rng.permutation(len(x_all))
    n_validation = int(round(config.validation_fraction * len(x_all)))
    validation, train = order[:n_validation], order[n_validation:]
    if config.train_subset:
        train = train[:config.train_subset]  # Already shuffled: a random subset of the rest.
    validation_data = (x_all[validation], y_all[validation]) if n_validation else None
    return x_all[train], y_all[train], validation_data, x_test, y_test


# ------------------------------------------------------------------------------------- Build the model


def keras_hidden_activation(name: str):
    import keras

    # Keras' leaky_relu slope defaults to 0.2; the course (and NumpyMLP) use 0.01. swish is silu.
    if name == "leaky_relu":
        return lambda z: keras.activations.leaky_relu(z, negative_slope=0.01)
    return {"swish": "silu"}.get(name, name)


def keras_optimizer(config: Config) -> keras.optimizers.Optimizer:
    import keras

    if config.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=config.learning_rate)
    momentum = config.momentum if config.optimizer == "momentum" else 0.0
    return keras.optimizers.SGD(learning_rate=config.learning_rate, momentum=momentum)


def build_keras_model(layer_sizes, config: Config) -> keras.Model:
    import keras

    regularizer = keras.regularizers.L2(config.l2) if config.l2 else None
    layers = [keras.Input(shape=(layer_sizes[0],))]
    for units in layer_sizes[1:-1]:
        layers.append(keras.layers.Dense(units, activation=keras_hidden_activation(config.hidden_activation),
                                         kernel_regularizer=regularizer))
        if config.dropout:
            layers.append(keras.layers.Dropout(config.dropout))
    layers.append(keras.layers.Dense(layer_sizes[-1], activation="softmax", kernel_regularizer=regularizer))
    model = keras.Sequential(layers)
    model.compile(
        optimizer=keras_optimizer(config),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        # Explicit: "auto" would turn XLA on only where a GPU exists.
        jit_compile=config.jit_compile,
        steps_per_execution=config.steps_per_execution,
    )
    return model


# ------------------------------------------------------------------------------------------------ Train


def train_numpy(model: NumpyMLP, x_train, y_train, validation_data, config: Config, record) -> None:
    with threadpool_limits(limits=NUMPY_BLAS_THREADS, user_api="blas"):
        model.fit(x_train, y_train, epochs=config.epochs, batch_size=config.batch_size,
                  learning_rate=config.learning_rate, optimizer=config.optimizer, momentum=config.momentum,
                  validation_data=validation_data, early_stopping_patience=config.early_stopping_patience,
                  seed=record.seed, on_epoch_end=lambda seconds, logs: record.unit(seconds, **logs))


def train_keras(model, x_train, y_train, validation_data, config: Config, record) -> None:
    import keras

    callbacks = [record.keras_callback(), keras.callbacks.TerminateOnNaN()]
    if config.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=config.early_stopping_patience, restore_best_weights=True))
    # verbose=0: dlbench's own progress display shows each epoch (and a bar inside it on a terminal).
    model.fit(x_train, y_train, epochs=config.epochs, batch_size=config.batch_size,
              validation_data=validation_data, shuffle=True, verbose=0, callbacks=callbacks)


def training_outcome(units: list[dict]) -> dict[str, float]:
    """Both implementations log the epoch whose loss became NaN/inf before they stop (NumpyMLP.fit,
    keras.callbacks.TerminateOnNaN), so the recorded epochs tell divergence for both. With ReLU units a
    too-large step often kills the network instead of overflowing: the loss sticks at the uniform-guess
    level ln(10); that failure is recorded too, apart from NaN/inf."""
    diverged = not all(math.isfinite(unit["loss"]) for unit in units)
    failed_to_learn = diverged or not units or units[-1]["loss"] >= math.log(10)
    return {"diverged": float(diverged), "failed_to_learn": float(failed_to_learn)}


# --------------------------------------------------------------------------------------------- Evaluate


def finite_or_none(test_loss, test_accuracy) -> tuple[float | None, float | None]:
    """A diverged network (without early stopping to restore earlier weights) predicts NaN: its
    accuracy would be an artefact of argmax on NaN, so both figures are left empty."""
    if not math.isfinite(test_loss):
        return None, None
    return float(test_loss), float(test_accuracy)


# -------------------------------------------------------------------------------------------------- Run


def run(config: Config, variant: str, record) -> None:
    dataset = record.load_data(DATASET)
    with record.phase("data"):
        x_train, y_train, validation_data, x_test, y_test = prepare_data(dataset, config, record.seed)
    record.set(n_train=len(x_train), n_validation=0 if validation_data is None else len(validation_data[0]),
               n_test=len(x_test))
    record.expect_units(config.epochs, items_per_unit=len(x_train))

    layer_sizes = (x_train.shape[1], *config.hidden_units, 10)
    with record.phase("build"):
        # The NumPy network draws the initial weights; the Keras model gets a copy of them.
        numpy_model = NumpyMLP(layer_sizes, seed=record.seed, hidden_activation=config.hidden_activation,
                               initializer=config.initializer, l2=config.l2, dropout=config.dropout)
        numpy_model.fast_path = config.numpy_fast_path
        if config.implementation == "keras":
            keras_model = build_keras_model(layer_sizes, config)
            keras_model.set_weights(numpy_model.get_weights())
    record.set(parameters=numpy_model.count_params())
    if config.implementation == "numpy":
        # The vanishing-gradient picture of the course: ||dJ/dW|| of every layer before any training.
        sample = slice(0, GRADIENT_NORM_SAMPLES)
        _, weight_gradients, _ = numpy_model.gradients(x_train[sample], numpy_model.targets_for(y_train[sample]))
        record.add_metrics(blas_threads=NUMPY_BLAS_THREADS,
                           **{f"gradient_norm_layer_{layer}": np.linalg.norm(gradient)
                              for layer, gradient in enumerate(weight_gradients, start=1)})

    with record.phase("train", training=True):
        if config.implementation == "numpy":
            train_numpy(numpy_model, x_train, y_train, validation_data, config, record)
        else:
            train_keras(keras_model, x_train, y_train, validation_data, config, record)
    record.add_metrics(**training_outcome(record.units))

    with record.phase("eval"):
        if config.implementation == "numpy":
            test_loss, test_accuracy = numpy_model.evaluate(x_test, y_test)
        else:
            test_loss, test_accuracy = keras_model.evaluate(x_test, y_test, batch_size=1024, verbose=0)
    test_loss, test_accuracy = finite_or_none(test_loss, test_accuracy)
    record.set(test_accuracy=test_accuracy, test_loss=test_loss)


EXPERIMENT = Experiment(
    title="Hand-written NumPy MLP vs Keras MLP on MNIST",
    dataset=DATASET,
    variants={
        "numpy": Variant("MLP in NumPy only: the course's forward()/backward() loop, mini-batch SGD",
                         Config(implementation="numpy"), devices=("cpu",), uses_tensorflow=False),
        "numpy_fast": Variant("the numpy variant's arithmetic in a fused in-place loop (bit-identical)",
                              Config(implementation="numpy", numpy_fast_path=True), devices=("cpu",),
                              uses_tensorflow=False),
        "keras": Variant("the same MLP with keras.Sequential and model.fit(), same initial weights",
                         Config(implementation="keras")),
        "keras_fast": Variant("the keras variant compiled with XLA, 100 batches per call (steps_per_execution)",
                              Config(implementation="keras", jit_compile=True,
                                     steps_per_execution=FAST_STEPS_PER_EXECUTION)),
    },
    # The implementation and its fast path make a variant what it is; jit_compile and
    # steps_per_execution stay settable (keras_fast is keras with both set).
    identity=("implementation", "numpy_fast_path"),
    run=run,
    # Time-to-target: 94 % validation accuracy, which the course's default recipe reaches at epoch 10
    # of 12 (94.6 % at the end); learning_rate=0.1 reaches it in the second epoch.
    metric=Metric("test_accuracy", higher_is_better=True, target=0.94),
    progress_unit="epoch",
    throughput_unit="images/s",
)
