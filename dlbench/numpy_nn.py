"""A multi-layer perceptron written with NumPy only, in Keras' vocabulary (fit / predict / evaluate).

This is the course's point: every line of the forward and backward pass is visible. With inputs as
rows of a batch matrix X (batch x features), the course's column equations become

    forward   Z_l = A_{l-1} W_l + b_l,   A_l = h_l(Z_l)         (A_0 = X, last h = output activation)
    output    delta_L = (A_L - Y) / B                            (softmax + cross-entropy, batch mean)
    backward  delta_l = h_l'(Z_l) * (delta_{l+1} W_{l+1}^T)
    gradients dJ/dW_l = A_{l-1}^T delta_l,   dJ/db_l = sum over the batch of delta_l
    update    W <- W - learning_rate * dJ/dW                     (= W - (lambda/D) sum_i dJ_i/dW)

Activations, losses, initialisers and optimisers follow Keras' definitions (names, defaults, where
epsilon goes), so that tests can compare them value for value with TensorFlow and so that the Keras
variant of an experiment, given the same initial weights, computes the same mathematics.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Callable

import numpy as np

# ==================================================================================================
# Activations: h(z) and the backward step through it
# ==================================================================================================


def sigmoid(z):
    # 1 / (1 + e^-z) written through tanh: the same function, but exp() can never overflow.
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def relu(z):
    return np.maximum(z, 0)


def relu_derivative(z):
    return (z > 0).astype(z.dtype)


def softmax(z):
    # Subtracting the row maximum changes nothing mathematically and keeps exp() from overflowing.
    exponentials = np.exp(z - z.max(axis=1, keepdims=True))
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def log_softmax(z):
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


@dataclasses.dataclass(frozen=True)
class Activation:
    """h(z) and, for element-wise activations, its derivative h'(z)."""

    name: str
    function: Callable
    derivative: Callable | None  # None for softmax, whose Jacobian is not diagonal.

    def __call__(self, z):
        return self.function(z)

    def backward(self, z, a, upstream):
        """dJ/dz from dJ/da (``upstream``), given z and a = h(z)."""
        if self.derivative is None:
            # Softmax: dJ/dz = a * (dJ/da - sum_k a_k dJ/da_k), the Jacobian-vector product.
            return a * (upstream - (upstream * a).sum(axis=1, keepdims=True))
        return upstream * self.derivative(z)


def sigmoid_derivative(z):
    s = sigmoid(z)  # Once: the derivative is s (1 - s).
    return s * (1 - s)


def swish_derivative(z):
    s = sigmoid(z)
    return s * (1 + z * (1 - s))


def activation(name: str, max_value: float | None = None, alpha: float | None = None) -> Activation:
    """An activation by Keras name. ``max_value`` caps ReLU; ``alpha`` is leaky ReLU's slope
    (default 0.01, the course's value; Keras' own default is 0.2) or ELU's scale (default 1.0)."""
    if name == "linear":
        return Activation(name, lambda z: z, lambda z: np.ones_like(z))
    if name == "sigmoid":
        return Activation(name, sigmoid, sigmoid_derivative)
    if name == "tanh":
        return Activation(name, np.tanh, lambda z: 1 - np.tanh(z) ** 2)
    if name == "relu":
        if max_value is None:
            return Activation(name, relu, relu_derivative)
        return Activation(name, lambda z: np.clip(z, 0, max_value),
                          lambda z: ((z > 0) & (z < max_value)).astype(z.dtype))
    if name == "leaky_relu":
        slope = 0.01 if alpha is None else alpha
        return Activation(name, lambda z: np.where(z > 0, z, slope * z),
                          lambda z: np.where(z > 0, 1, slope).astype(z.dtype))
    if name == "elu":
        scale = 1.0 if alpha is None else alpha
        # min(z, 0) inside exp(): the positive side is not used and must not overflow.
        return Activation(name, lambda z: np.where(z > 0, z, scale * np.expm1(np.minimum(z, 0))),
                          lambda z: np.where(z > 0, 1, scale * np.exp(np.minimum(z, 0))).astype(z.dtype))
    if name == "softplus":
        return Activation(name, lambda z: np.logaddexp(0, z), sigmoid)  # log(1 + e^z), overflow-free.
    if name == "swish":
        return Activation(name, lambda z: z * sigmoid(z), swish_derivative)
    if name == "softmax":
        return Activation(name, softmax, None)
    raise ValueError(f"unknown activation '{name}'; valid: {', '.join(ACTIVATIONS)}")


ACTIVATIONS = ("linear", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "swish", "softmax")

# ==================================================================================================
# Losses: the batch mean J(y_true, y_pred) and dJ/dy_pred, as keras.losses computes them
# ==================================================================================================

EPSILON = 1e-7  # keras.backend.epsilon(): probabilities are clipped to [EPSILON, 1 - EPSILON].


def mean_squared_error(y_true, y_pred):
    return float(np.mean((y_pred - y_true) ** 2))


def mean_squared_error_gradient(y_true, y_pred):
    return 2 * (y_pred - y_true) / y_pred.size


def mean_absolute_error(y_true, y_pred):
    return float(np.mean(np.abs(y_pred - y_true)))


def mean_absolute_error_gradient(y_true, y_pred):
    return np.sign(y_pred - y_true) / y_pred.size


def binary_crossentropy(y_true, y_pred):
    p = np.clip(y_pred, EPSILON, 1 - EPSILON)
    return float(-np.mean(y_true * np.log(p) + (1 - y_true) * np.log(1 - p)))


def binary_crossentropy_gradient(y_true, y_pred):
    inside = (y_pred > EPSILON) & (y_pred < 1 - EPSILON)  # Clipped values have zero gradient.
    p = np.clip(y_pred, EPSILON, 1 - EPSILON)
    return inside * (p - y_true) / (p * (1 - p)) / y_pred.size


def categorical_crossentropy(y_true, y_pred):
    """Mean over samples of -sum_k y_k log(p_k). Like Keras, rows are first rescaled to sum to 1 and
    clipped, so log(0) never appears."""
    p = np.clip(y_pred / y_pred.sum(axis=1, keepdims=True), EPSILON, 1 - EPSILON)
    return float(-np.mean(np.sum(y_true * np.log(p), axis=1)))


def categorical_crossentropy_gradient(y_true, y_pred):
    total = y_pred.sum(axis=1, keepdims=True)
    q = y_pred / total
    d_q = np.where((q > EPSILON) & (q < 1 - EPSILON), -y_true / np.clip(q, EPSILON, 1), 0)
    # Through the rescaling q = p / sum(p): dJ/dp_k = (dJ/dq_k - sum_j q_j dJ/dq_j) / sum(p).
    return (d_q - (d_q * q).sum(axis=1, keepdims=True)) / total / len(y_pred)


LOSSES = {
    "mean_squared_error": (mean_squared_error, mean_squared_error_gradient),
    "mean_absolute_error": (mean_absolute_error, mean_absolute_error_gradient),
    "binary_crossentropy": (binary_crossentropy, binary_crossentropy_gradient),
    "categorical_crossentropy": (categorical_crossentropy, categorical_crossentropy_gradient),
}


def softmax_crossentropy_from_logits(y_true, z):
    """Cross-entropy of softmax(z) computed from the logits z with log-softmax: exact and finite for
    any finite z (Keras does the same when the output layer is a softmax)."""
    return float(-np.mean(np.sum(y_true * log_softmax(z), axis=1)))


def sigmoid_crossentropy_from_logits(y_true, z):
    # max(z, 0) - z y + log(1 + e^-|z|): tf.nn.sigmoid_cross_entropy_with_logits' stable form.
    return float(np.mean(np.maximum(z, 0) - z * y_true + np.log1p(np.exp(-np.abs(z)))))


# Output activation + loss pairs whose delta dJ/dz_L simplifies to (a - y) / (number of terms
# averaged): softmax + categorical cross-entropy, sigmoid + binary cross-entropy.
FUSED_OUTPUTS = {
    ("softmax", "categorical_crossentropy"): softmax_crossentropy_from_logits,
    ("sigmoid", "binary_crossentropy"): sigmoid_crossentropy_from_logits,
}

# ==================================================================================================
# Initialisers (weights only; biases start at zero as in Keras)
# ==================================================================================================


def truncated_normal(shape, stddev, rng, dtype):
    """N(0, stddev^2) redrawn outside two standard deviations, like keras.initializers.TruncatedNormal."""
    values = rng.standard_normal(shape)
    while np.any(outside := np.abs(values) > 2):
        values[outside] = rng.standard_normal(np.count_nonzero(outside))
    return (stddev * values).astype(dtype)


def initial_weights(name: str, fan_in: int, fan_out: int, rng: np.random.Generator, dtype=np.float32):
    """glorot_uniform (Keras' default, variance 2 / (fan_in + fan_out)), glorot_normal, he_uniform,
    he_normal (variance 2 / fan_in, for ReLU) or small_random (N(0, 0.01^2), the classic "small
    random numbers")."""
    shape = (fan_in, fan_out)
    # 0.8796... is the standard deviation of a unit normal truncated at +-2; Keras divides by it so
    # the truncated draw keeps the intended variance.
    truncation = 0.87962566103423978
    if name == "glorot_uniform":
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, size=shape).astype(dtype)
    if name == "glorot_normal":
        return truncated_normal(shape, np.sqrt(2.0 / (fan_in + fan_out)) / truncation, rng, dtype)
    if name == "he_uniform":
        limit = np.sqrt(6.0 / fan_in)
        return rng.uniform(-limit, limit, size=shape).astype(dtype)
    if name == "he_normal":
        return truncated_normal(shape, np.sqrt(2.0 / fan_in) / truncation, rng, dtype)
    if name == "small_random":
        return (0.01 * rng.standard_normal(shape)).astype(dtype)
    raise ValueError(f"unknown initializer '{name}'; valid: {', '.join(INITIALIZERS)}")


INITIALIZERS = ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "small_random")


# ==================================================================================================
# Optimisers: update the parameters in place from their gradients, as keras.optimizers do
# ==================================================================================================


class SGD:
    """Plain gradient descent, or with momentum (Keras' form, not Nesterov):
    v <- momentum * v - learning_rate * g,   w <- w + v."""

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0):
        if learning_rate <= 0 or not 0.0 <= momentum < 1.0:
            raise ValueError("SGD needs learning_rate > 0 and momentum in [0, 1)")
        self.learning_rate, self.momentum = learning_rate, momentum
        self.iterations = 0
        self.velocities = None

    def apply(self, parameters, gradients, overwrite_gradients: bool = False):
        """One step. ``overwrite_gradients``: the gradients are scratch (fit's own buffer) and are
        scaled in place, which spares writing a temporary array as large as the parameters."""
        if self.momentum and self.velocities is None:
            self.velocities = [np.zeros_like(p) for p in parameters]
        for index, (parameter, gradient) in enumerate(zip(parameters, gradients)):
            step = np.multiply(gradient, self.learning_rate, out=gradient if overwrite_gradients else None)
            if self.momentum:
                velocity = self.velocities[index]
                velocity *= self.momentum
                velocity -= step
                parameter += velocity
            else:
                parameter -= step
        self.iterations += 1


class Adam:
    """Keras' Adam: bias corrections folded into the step size, epsilon added to sqrt(v) (not to the
    bias-corrected sqrt(v_hat) as in the paper's algorithm box, which makes a small difference)."""

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7):
        if learning_rate <= 0:
            raise ValueError("Adam needs learning_rate > 0")
        self.learning_rate, self.beta_1, self.beta_2, self.epsilon = learning_rate, beta_1, beta_2, epsilon
        self.iterations = 0
        self.first_moments = self.second_moments = None

    def apply(self, parameters, gradients):
        if self.first_moments is None:
            self.first_moments = [np.zeros_like(p) for p in parameters]
            self.second_moments = [np.zeros_like(p) for p in parameters]
        step = self.iterations + 1
        step_size = self.learning_rate * np.sqrt(1 - self.beta_2 ** step) / (1 - self.beta_1 ** step)
        for parameter, gradient, m, v in zip(parameters, gradients, self.first_moments, self.second_moments):
            m += (gradient - m) * (1 - self.beta_1)
            v += (gradient * gradient - v) * (1 - self.beta_2)
            parameter -= (step_size * m / (np.sqrt(v) + self.epsilon)).astype(parameter.dtype)
        self.iterations += 1


OPTIMIZERS = ("sgd", "momentum", "adam")


def make_optimizer(name: str, learning_rate: float, momentum: float = 0.9):
    """'sgd' (plain), 'momentum' (SGD with ``momentum``) or 'adam' (Keras' defaults otherwise)."""
    if name == "sgd":
        return SGD(learning_rate)
    if name == "momentum":
        return SGD(learning_rate, momentum=momentum)
    if name == "adam":
        return Adam(learning_rate)
    raise ValueError(f"unknown optimizer '{name}'; valid: {', '.join(OPTIMIZERS)}")


# ==================================================================================================
# The network
# ==================================================================================================


class NumpyMLP:
    """Dense layers: a hidden activation shared by the hidden layers, an output activation and a loss.

    The output/loss pair fits the task: softmax + categorical_crossentropy for single-label classes
    (the default), sigmoid + binary_crossentropy for binary or multi-label outputs, linear +
    mean_squared_error for regression. ``l2`` adds l2 * sum(W^2) per weight matrix to the loss, as
    ``keras.regularizers.L2`` on each Dense kernel; ``dropout`` drops hidden activations in training
    (inverted dropout, as ``keras.layers.Dropout`` after each hidden layer)."""

    def __init__(self, layer_sizes, seed: int = 0, dtype=np.float32, hidden_activation="relu",
                 output_activation="softmax", loss: str = "categorical_crossentropy",
                 initializer: str = "glorot_uniform", l2: float = 0.0, dropout: float = 0.0):
        if len(layer_sizes) < 2 or min(layer_sizes) < 1:
            raise ValueError("layer_sizes needs at least an input and an output size, all positive")
        if loss not in LOSSES:
            raise ValueError(f"unknown loss '{loss}'; valid: {', '.join(LOSSES)}")
        if l2 < 0 or not 0.0 <= dropout < 1.0:
            raise ValueError("l2 must be >= 0 and dropout in [0, 1)")
        self.layer_sizes = tuple(int(n) for n in layer_sizes)
        self.dtype = dtype
        # A name or a configured Activation, e.g. activation("relu", max_value=6.0).
        self.hidden_activation = activation(hidden_activation) if isinstance(hidden_activation, str) else hidden_activation
        self.output_activation = activation(output_activation) if isinstance(output_activation, str) else output_activation
        self.loss_name, self.l2, self.dropout = loss, float(l2), float(dropout)
        self.fused_loss = FUSED_OUTPUTS.get((self.output_activation.name, loss))
        rng = np.random.default_rng(seed)
        # All parameters live in one flat array; weights[l] and biases[l] are views into it. The
        # optimiser then updates everything with a handful of NumPy calls instead of a few per
        # layer, which matters when a batch-64 step takes only a few hundred microseconds.
        self.parameters = np.zeros(sum(n_in * n_out + n_out for n_in, n_out in self.layer_shapes()), dtype)
        self.weights, self.biases = self.split(self.parameters)
        for weight, (n_in, n_out) in zip(self.weights, self.layer_shapes()):
            weight[...] = initial_weights(initializer, n_in, n_out, rng, dtype)  # Biases stay at zero.
        self.dropout_rng = np.random.default_rng([seed, 1])  # Its own stream: masks never shift the init.
        self.diverged = False  # Set by fit() when the loss became NaN or infinite.
        # fit() runs the common case through _FastSteps (same results, less overhead); False forces
        # the general loop, e.g. to compare the two.
        self.fast_path = True

    def layer_shapes(self):
        return list(zip(self.layer_sizes[:-1], self.layer_sizes[1:]))

    def get_weights(self) -> list[np.ndarray]:
        """[W_1, b_1, W_2, b_2, ...]: the order of keras.Model.get_weights() and set_weights()."""
        return [array for pair in zip(self.weights, self.biases) for array in pair]

    def split(self, flat):
        """Views of a flat parameter-sized array as per-layer (weights, biases) lists."""
        weights, biases, offset = [], [], 0
        for n_in, n_out in self.layer_shapes():
            weights.append(flat[offset:offset + n_in * n_out].reshape(n_in, n_out))
            biases.append(flat[offset + n_in * n_out:offset + n_in * n_out + n_out])
            offset += n_in * n_out + n_out
        return weights, biases

    def count_params(self) -> int:
        return self.parameters.size

    def activation_of(self, layer: int) -> Activation:
        return self.output_activation if layer == len(self.weights) - 1 else self.hidden_activation

    # ---------------------------------------------------------------- forward and backward passes
    def forward(self, x, training: bool = False):
        """Return the pre-activations Z_l and activations A_l of every layer (A_0 = x).

        With ``training`` and dropout, hidden activations are zeroed with probability ``dropout`` and
        the survivors scaled by 1 / (1 - dropout), so nothing changes at inference."""
        activations, pre_activations = [x], []
        self._dropout_masks = []
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            z = activations[-1] @ weight
            z += bias
            a = self.activation_of(layer)(z)
            if training and self.dropout and layer < len(self.weights) - 1:
                keep = self.dropout_rng.random(a.shape, dtype=self.dtype) >= self.dropout
                mask = keep * self.dtype(1 / (1 - self.dropout))
                a = a * mask
                self._dropout_masks.append(mask)
            pre_activations.append(z)
            activations.append(a)
        return pre_activations, activations

    def predict(self, x, batch_size: int = 1024):
        x = np.asarray(x, dtype=self.dtype)
        return np.concatenate([self.forward(x[i:i + batch_size])[1][-1] for i in range(0, len(x), batch_size)])

    def loss(self, targets, pre_activations, activations) -> float:
        """The batch-mean loss, plus the L2 penalty; from the logits when the pair allows it."""
        if self.fused_loss is not None:
            value = self.fused_loss(targets, pre_activations[-1])
        else:
            value = LOSSES[self.loss_name][0](targets, activations[-1])
        if self.l2:
            value += self.l2_penalty()
        return value

    def l2_penalty(self) -> float:
        """l2 * (sum of every weight squared); biases are not penalised, as in Keras' kernel_regularizer."""
        return self.l2 * sum(float(np.vdot(w, w)) for w in self.weights)

    def backward(self, pre_activations, activations, targets, out=None):
        """(dJ/dW, dJ/db) for every layer, for the batch-mean loss, from a forward pass. ``out``,
        (weight gradients, bias gradients) arrays as from split(), receives them without allocating."""
        output = activations[-1]
        if self.fused_loss is not None:
            # softmax + cross-entropy (or sigmoid + binary cross-entropy): delta = a - y, averaged.
            delta = (output - targets) / (output.size if self.output_activation.name == "sigmoid" else len(output))
        else:
            gradient = LOSSES[self.loss_name][1](targets, output)
            delta = self.output_activation.backward(pre_activations[-1], output, gradient)
        weight_gradients, bias_gradients = out or ([np.empty_like(w) for w in self.weights],
                                                   [np.empty_like(b) for b in self.biases])
        for layer in reversed(range(len(self.weights))):
            np.matmul(activations[layer].T, delta, out=weight_gradients[layer])
            if self.l2:
                weight_gradients[layer] += 2 * self.l2 * self.weights[layer]
            delta.sum(axis=0, out=bias_gradients[layer])
            if layer > 0:
                upstream = delta @ self.weights[layer].T
                if self._dropout_masks:
                    upstream *= self._dropout_masks[layer - 1]
                delta = self.hidden_activation.backward(pre_activations[layer - 1], activations[layer], upstream)
        return weight_gradients, bias_gradients

    def gradients(self, x, targets):
        """Loss and (dJ/dW, dJ/db) for every layer; ``targets`` as the loss expects them (one-hot)."""
        pre_activations, activations = self.forward(x)
        loss = self.loss(targets, pre_activations, activations)
        return (loss, *self.backward(pre_activations, activations, targets))

    def targets_for(self, y):
        """Integer class labels become one-hot rows for a softmax output; other targets are used as
        given, as a column when there is one output."""
        y = np.asarray(y)
        if self.output_activation.name == "softmax" and y.ndim == 1:
            return np.eye(self.layer_sizes[-1], dtype=self.dtype)[y]
        return y.astype(self.dtype).reshape(len(y), -1)

    def accuracy(self, targets, output):
        """Share of correct classes (argmax, or threshold 0.5 for sigmoid); None for regression."""
        if self.output_activation.name == "softmax":
            return float(np.mean(output.argmax(axis=1) == targets.argmax(axis=1)))
        if self.output_activation.name == "sigmoid":
            return float(np.mean((output > 0.5) == (targets > 0.5)))
        return None

    # ------------------------------------------------------------------------------- training
    def fit(self, x, y, epochs: int, batch_size: int, learning_rate: float = 0.01, validation_data=None,
            seed: int = 0, on_epoch_end=None, optimizer="sgd", momentum: float = 0.9,
            early_stopping_patience: int = 0, shuffle: bool = True):
        """Gradient descent, calling on_epoch_end(seconds, logs) after each epoch.

        batch_size chooses the course's three forms: len(x) is full-batch gradient descent (one update
        per epoch), 1 is online/stochastic, anything between is mini-batch. ``optimizer`` is 'sgd',
        'momentum', 'adam' or an optimiser object. Training stops early when the loss becomes NaN or
        infinite (``self.diverged`` is then True) or, with early_stopping_patience > 0, when the
        validation loss has not improved for that many epochs; as keras.callbacks.EarlyStopping with
        restore_best_weights=True, the weights of the best validation epoch are restored at the end.
        """
        if epochs < 1 or batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")
        if early_stopping_patience and validation_data is None:
            raise ValueError("early stopping watches the validation loss: give validation_data")
        if isinstance(optimizer, str):
            optimizer = make_optimizer(optimizer, learning_rate, momentum)
        x = np.asarray(x, dtype=self.dtype)
        targets = self.targets_for(y)
        rng = np.random.default_rng(seed)
        history, best_loss, best_parameters, waited = [], None, None, 0
        self.diverged = False
        # Buffers reused by every batch: the batch's inputs and targets are gathered into them and
        # the gradients written into one flat array shaped like the parameters.
        x_buffer = np.empty((min(batch_size, len(x)), x.shape[1]), self.dtype)
        targets_buffer = np.empty((len(x_buffer), targets.shape[1]), self.dtype)
        gradient = np.empty_like(self.parameters)
        gradient_views = self.split(gradient)
        fused_softmax = self.fused_loss is softmax_crossentropy_from_logits
        labels = np.asarray(y) if fused_softmax and np.ndim(y) == 1 else None
        rows = np.arange(len(x_buffer))
        # The course's common case has a faster loop with the same arithmetic: see _FastSteps.
        fast = (self.fast_path and labels is not None and self.hidden_activation.function is relu
                and not self.dropout and not self.l2)
        # The gradient buffer is fit's own scratch: SGD may scale it in place instead of into a copy.
        update = (functools.partial(optimizer.apply, overwrite_gradients=True)
                  if isinstance(optimizer, SGD) else optimizer.apply)
        if fast:
            steps = _FastSteps(self, x, labels, batch_size, update, gradient)
        for epoch in range(epochs):
            start = time.perf_counter()
            order = rng.permutation(len(x)) if shuffle else np.arange(len(x))
            loss_sum, correct_sum = 0.0, 0.0
            with np.errstate(over="ignore", invalid="ignore"):  # Divergence is detected, not warned.
                if fast:
                    loss_sum, correct_sum, begin = steps.epoch(order)
                    self.diverged = not np.isfinite(loss_sum)
                else:
                    for begin in range(0, len(x), batch_size):
                        batch = order[begin:begin + batch_size]
                        # mode="clip" only because take(out=...) in the default mode="raise" first
                        # writes into a temporary copy (to leave out untouched on a bad index);
                        # the indices here are a permutation, so nothing is ever clipped.
                        batch_x = np.take(x, batch, axis=0, out=x_buffer[:len(batch)], mode="clip")
                        batch_targets = np.take(targets, batch, axis=0, out=targets_buffer[:len(batch)],
                                                mode="clip")
                        pre_activations, activations = self.forward(batch_x, training=True)
                        self.backward(pre_activations, activations, batch_targets, out=gradient_views)
                        # Running figures over the epoch's batches, as Keras' fit() logs them: the loss
                        # at the weights the batch went forward with, so before the update.
                        if labels is not None:
                            # Cheaper for softmax + cross-entropy with class labels: -log p(true class),
                            # clipped like Keras' probability loss (differs from the logits' loss only
                            # beyond 16 per sample), and argmax hits. NaN logits still give a NaN loss.
                            batch_labels = labels[batch]
                            true_class = activations[-1][rows[:len(batch)], batch_labels]
                            batch_loss = -float(np.log(np.maximum(true_class, EPSILON)).sum()) / len(batch)
                            correct_sum += np.count_nonzero(activations[-1].argmax(axis=1) == batch_labels)
                            if self.l2:
                                batch_loss += self.l2_penalty()
                        else:
                            batch_loss = self.loss(batch_targets, pre_activations, activations)
                            correct_sum += (self.accuracy(batch_targets, activations[-1]) or 0.0) * len(batch)
                        loss_sum += batch_loss * len(batch)
                        update([self.parameters], [gradient])
                        if not np.isfinite(batch_loss):
                            self.diverged = True
                            break
            seen = min(begin + batch_size, len(x))
            logs = {"loss": loss_sum / seen}
            if self.output_activation.name in ("softmax", "sigmoid"):
                logs["accuracy"] = correct_sum / seen
            if validation_data is not None:
                # Inside the epoch's time, as in Keras, so both variants' seconds mean the same thing.
                validation = self.evaluate(*validation_data)
                logs["val_loss"] = validation[0]
                if len(validation) > 1:
                    logs["val_accuracy"] = validation[1]
            seconds = time.perf_counter() - start
            history.append(logs)
            if on_epoch_end is not None:
                on_epoch_end(seconds, logs)
            if self.diverged:
                break
            if early_stopping_patience:
                # keras.callbacks.EarlyStopping(monitor="val_loss", restore_best_weights=True).
                waited += 1
                if best_loss is None or logs["val_loss"] < best_loss:
                    best_loss, waited = logs["val_loss"], 0
                    best_parameters = self.parameters.copy()
                elif waited >= early_stopping_patience:
                    break
        if best_parameters is not None:
            self.parameters[...] = best_parameters
        return history

    def evaluate(self, x, y):
        """(loss, accuracy) on the given data, or (loss,) for a regression output."""
        x = np.asarray(x, dtype=self.dtype)
        targets = self.targets_for(y)
        pre_activations, activations = [], []
        for begin in range(0, len(x), 1024):
            z, a = self.forward(x[begin:begin + 1024])
            pre_activations.append(z[-1])
            activations.append(a[-1])
        output = np.concatenate(activations)
        with np.errstate(over="ignore", invalid="ignore"):
            loss = self.loss(targets, [np.concatenate(pre_activations)], [output])
        accuracy = self.accuracy(targets, output)
        return (loss,) if accuracy is None else (loss, accuracy)


# ==================================================================================================
# The fast training loop of the common case
# ==================================================================================================


class _FastSteps:
    """NumpyMLP.fit's epoch for ReLU hidden layers, softmax + cross-entropy on class labels, no
    dropout or L2 (the course's reference network), with the same arithmetic as the general loop
    and therefore bit-identical weights and logs (tests/test_numpy_nn.py checks it).

    A batch-64 step of the reference network does only ~160 microseconds of matrix products, so each
    of the general loop's ~60 small NumPy calls and temporary arrays (1-3 microseconds each) shows.
    Here every array is allocated once and operations run in place with ``out=``; reductions call
    the ufunc's reduce() directly (np.sum adds a Python wrapper around it); the running loss's
    logarithms are taken once per epoch."""

    def __init__(self, model, x, labels, batch_size, update, gradient):
        self.labels, self.batch_size = labels, batch_size
        self.update = update
        self.zero = model.dtype(0)
        self.parameters, self.gradient = model.parameters, gradient
        self.x = x
        n = len(x)
        # Per epoch: each sample's true-class probability and predicted class, filled batch by batch.
        self.true_probabilities = np.empty(n, model.dtype)
        self.predicted = np.empty(n, np.intp)
        # Flat index of (row in its batch, class) in the batch's output array, for one-hot work.
        self.row_offsets = (np.arange(n) % batch_size) * model.layer_sizes[-1]
        rows = min(batch_size, n)
        self.full = _FastBuffers(model, gradient, rows)
        self.last = _FastBuffers(model, gradient, n % batch_size, like=self.full) if n % batch_size else None

    def epoch(self, order):
        """One epoch over ``order``; returns (loss sum, correct count, start of the last batch run)
        as the general loop's running figures, and stops after a batch whose loss is NaN."""
        batch_size, update, parameters, gradient = self.batch_size, self.update, [self.parameters], [self.gradient]
        true_probabilities, predicted = self.true_probabilities, self.predicted
        self.epoch_labels = self.labels[order]  # Also what running_figures() counts hits against.
        flat_targets = self.epoch_labels + self.row_offsets
        matmul, add, maximum, greater, multiply = np.matmul, np.add, np.maximum, np.greater, np.multiply
        zero = self.zero
        n = len(order)
        b = self.full  # The arrays, for a full batch.
        for begin in range(0, n, batch_size):
            end = min(begin + batch_size, n)
            if end - begin != batch_size:
                b = self.last
            self.x.take(order[begin:end], 0, out=b.inputs, mode="clip")  # mode: see fit().
            # Forward. ReLU in place: z then holds A_l, and A_l > 0 exactly where Z_l > 0.
            for a, weight, bias, z in b.hidden_layers:
                matmul(a, weight, out=z)
                z += bias
                maximum(z, zero, out=z)
            a, weight, bias, p = b.output_layer
            matmul(a, weight, out=p)
            p += bias
            # softmax(), operation for operation, in place. The row maximum is read at the row's
            # argmax: a fast call and a gather instead of a slow reduction along 10-element rows.
            p.argmax(1, out=b.row_argmax)
            add(b.row_argmax, b.row_starts, out=b.row_argmax)
            b.p_flat.take(b.row_argmax, out=b.row_max_flat, mode="clip")
            np.subtract(p, b.row_max, out=p)
            np.exp(p, out=p)
            add.reduce(p, 1, None, b.row_sum, True)
            np.divide(p, b.row_sum, out=p)
            # Running loss and accuracy: keep what they need; running_figures() sums them.
            targets = flat_targets[begin:end]
            b.p_flat.take(targets, out=true_probabilities[begin:end], mode="clip")
            p.argmax(1, out=predicted[begin:end])
            # delta_L = (A_L - Y) / B with Y one-hot: subtract 1 at each row's true class.
            b.p_flat[targets] -= 1
            p /= end - begin
            # Backward, as NumpyMLP.backward, with ReLU's derivative as the mask A > 0.
            delta = p
            for a, a_transposed, weight_transposed, weight_gradient, bias_gradient, upstream, mask in b.backward_layers:
                matmul(a_transposed, delta, out=weight_gradient)
                add.reduce(delta, 0, None, bias_gradient)
                if upstream is None:
                    break
                matmul(delta, weight_transposed, out=upstream)
                greater(a, 0, out=mask)
                multiply(upstream, mask, out=upstream)
                delta = upstream
            # A NaN anywhere in a softmax row makes the whole row NaN (and the row's loss NaN), and
            # every output bias gradient sums a column over all rows: one scalar tells divergence.
            nan_loss = math.isnan(b.output_bias_gradient[0])
            update(parameters, gradient)
            if nan_loss:
                break
        return (*self.running_figures(end), begin)

    def running_figures(self, seen):
        """(loss sum, correct count) over the first ``seen`` samples of the epoch (the batches run),
        summed exactly as the general loop does:
        per batch -sum(log(max(p_true, EPSILON))) in float32 (the same pairwise sums over rows of
        batch_size), then added in float64."""
        batch_size = self.batch_size
        logs = np.log(np.maximum(self.true_probabilities[:seen], EPSILON))
        full = seen // batch_size
        sums = logs[:full * batch_size].reshape(full, batch_size).sum(axis=1).tolist()
        sizes = [batch_size] * full
        if seen % batch_size:
            sums.append(float(logs[full * batch_size:].sum()))
            sizes.append(seen % batch_size)
        loss_sum = 0.0
        for log_sum, size in zip(sums, sizes):
            loss_sum += -log_sum / size * size
        return loss_sum, np.count_nonzero(self.predicted[:seen] == self.epoch_labels[:seen])


class _FastBuffers:
    """_FastSteps' arrays for batches of ``rows`` rows, grouped per layer in the order the loop
    uses them. ``like``: share the memory of a larger set (the short last batch uses its first rows)."""

    def __init__(self, model, gradient, rows, like=None):
        def array(name, columns, dtype=model.dtype, index=None):
            if like is None:
                return np.empty((rows, columns), dtype)
            source = getattr(like, name) if index is None else getattr(like, name)[index]
            return source[:rows]

        sizes, layers = model.layer_sizes, len(model.weights)
        self.inputs = array("inputs", sizes[0])
        self.outputs = [array("outputs", size, index=l) for l, size in enumerate(sizes[1:])]  # Z, then A
        self.masks = [array("masks", size, bool, index=l) for l, size in enumerate(sizes[1:-1])]
        self.upstreams = [array("upstreams", size, index=l) for l, size in enumerate(sizes[1:-1])]
        self.row_max, self.row_sum = array("row_max", 1), array("row_sum", 1)
        self.row_max_flat = self.row_max.reshape(-1)
        self.row_argmax = np.empty(rows, np.intp) if like is None else like.row_argmax[:rows]
        self.row_starts = np.arange(rows) * sizes[-1]  # Flat index of each row's first class.
        self.p_flat = self.outputs[-1].reshape(-1)  # Contiguous: a view.
        activations = [self.inputs, *self.outputs]  # A_0 = X, A_1, ...
        weight_gradients, bias_gradients = model.split(gradient)
        # (A_{l-1}, W_l, b_l, Z_l) for the forward pass, weights as views that follow every update.
        layer_arrays = list(zip(activations[:-1], model.weights, model.biases, self.outputs))
        self.hidden_layers, self.output_layer = layer_arrays[:-1], layer_arrays[-1]
        # (A_{l-1}, A_{l-1}^T, W_l^T, dJ/dW_l, dJ/db_l, upstream, mask) from the last layer back;
        # the first layer has no upstream to compute.
        self.backward_layers = [
            (activations[l], activations[l].T, model.weights[l].T, weight_gradients[l], bias_gradients[l],
             self.upstreams[l - 1] if l else None, self.masks[l - 1] if l else None)
            for l in reversed(range(layers))]
        self.output_bias_gradient = bias_gradients[-1]
