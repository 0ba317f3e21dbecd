"""A multi-layer perceptron written with NumPy only, in Keras' vocabulary (fit / predict / evaluate).

This is the course's point: every line of the forward and backward pass is visible. With inputs as
rows of a batch matrix X (batch x features), the course's column equations become

    forward   Z_l = A_{l-1} W_l + b_l,   A_l = h_l(Z_l)         (A_0 = X, h = ReLU, last h = softmax)
    output    delta_L = (A_L - Y) / B                            (softmax + cross-entropy, batch mean)
    backward  delta_l = h_l'(Z_l) * (delta_{l+1} W_{l+1}^T)
    gradients dJ/dW_l = A_{l-1}^T delta_l,   dJ/db_l = sum over the batch of delta_l
    update    W <- W - learning_rate * dJ/dW                     (= W - (lambda/D) sum_i dJ_i/dW)
"""

from __future__ import annotations

import time

import numpy as np


def relu(z):
    return np.maximum(z, 0)


def relu_derivative(z):
    return (z > 0).astype(z.dtype)


def softmax(z):
    # Subtracting the row maximum changes nothing mathematically and keeps exp() from overflowing.
    shifted = z - z.max(axis=1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def categorical_crossentropy(probabilities, one_hot):
    """Mean over samples of -sum_k y_k log(p_k), clipped like Keras so log(0) never appears."""
    epsilon = 1e-7
    clipped = np.clip(probabilities, epsilon, 1.0 - epsilon)
    return float(-np.mean(np.sum(one_hot * np.log(clipped), axis=1)))


def glorot_uniform(fan_in: int, fan_out: int, rng: np.random.Generator, dtype=np.float32):
    """Keras' default initializer: U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out)),
    i.e. variance 2 / (fan_in + fan_out) as the course writes Xavier/Glorot."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(dtype)


class NumpyMLP:
    """Dense layers with ReLU hidden activations and a softmax output trained by mini-batch SGD."""

    def __init__(self, layer_sizes, seed: int = 0, dtype=np.float32):
        if len(layer_sizes) < 2:
            raise ValueError("layer_sizes needs at least an input and an output size")
        self.layer_sizes = tuple(int(n) for n in layer_sizes)
        self.dtype = dtype
        rng = np.random.default_rng(seed)
        self.weights = [glorot_uniform(n_in, n_out, rng, dtype)
                        for n_in, n_out in zip(self.layer_sizes[:-1], self.layer_sizes[1:])]
        self.biases = [np.zeros(n_out, dtype=dtype) for n_out in self.layer_sizes[1:]]

    def count_params(self) -> int:
        return sum(w.size + b.size for w, b in zip(self.weights, self.biases))

    # ---------------------------------------------------------------- forward and backward passes
    def forward(self, x):
        """Return the pre-activations Z_l and activations A_l of every layer (A_0 = x)."""
        activations, pre_activations = [x], []
        for index, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            z = activations[-1] @ weight + bias
            pre_activations.append(z)
            is_output = index == len(self.weights) - 1
            activations.append(softmax(z) if is_output else relu(z))
        return pre_activations, activations

    def predict(self, x, batch_size: int = 1024):
        x = np.asarray(x, dtype=self.dtype)
        return np.concatenate([self.forward(x[i:i + batch_size])[1][-1] for i in range(0, len(x), batch_size)])

    def backward(self, pre_activations, activations, one_hot):
        """(dJ/dW, dJ/db) for every layer, for the batch-mean cross-entropy, from a forward pass."""
        delta = (activations[-1] - one_hot) / len(one_hot)  # softmax + cross-entropy: delta = a - y
        weight_gradients, bias_gradients = [], []
        for layer in reversed(range(len(self.weights))):
            weight_gradients.append(activations[layer].T @ delta)
            bias_gradients.append(delta.sum(axis=0))
            if layer > 0:
                delta = (delta @ self.weights[layer].T) * relu_derivative(pre_activations[layer - 1])
        return weight_gradients[::-1], bias_gradients[::-1]

    def gradients(self, x, one_hot):
        """Loss and (dJ/dW, dJ/db) for every layer."""
        pre_activations, activations = self.forward(x)
        loss = categorical_crossentropy(activations[-1], one_hot)
        return (loss, *self.backward(pre_activations, activations, one_hot))

    # ------------------------------------------------------------------------------- training
    def fit(self, x, y, epochs: int, batch_size: int, learning_rate: float, validation_data=None,
            seed: int = 0, on_epoch_end=None):
        """Mini-batch SGD; ``y`` holds integer labels. Calls on_epoch_end(seconds, logs) per epoch."""
        x = np.asarray(x, dtype=self.dtype)
        n_classes = self.layer_sizes[-1]
        identity = np.eye(n_classes, dtype=self.dtype)
        rng = np.random.default_rng(seed)
        history = []
        for _ in range(epochs):
            start = time.perf_counter()
            order = rng.permutation(len(x))
            loss_sum, correct = 0.0, 0
            for begin in range(0, len(x), batch_size):
                batch = order[begin:begin + batch_size]
                labels = y[batch]
                one_hot = identity[labels]
                pre_activations, activations = self.forward(x[batch])
                weight_gradients, bias_gradients = self.backward(pre_activations, activations, one_hot)
                for weight, bias, d_weight, d_bias in zip(self.weights, self.biases, weight_gradients, bias_gradients):
                    weight -= learning_rate * d_weight
                    bias -= learning_rate * d_bias
                # Running figures over the epoch's batches, as Keras' fit() logs them.
                loss_sum += categorical_crossentropy(activations[-1], one_hot) * len(batch)
                correct += int(np.count_nonzero(activations[-1].argmax(axis=1) == labels))
            logs = {"loss": loss_sum / len(x), "accuracy": correct / len(x)}
            if validation_data is not None:
                # Inside the epoch's time, as in Keras, so both variants' seconds mean the same thing.
                logs["val_loss"], logs["val_accuracy"] = self.evaluate(*validation_data)
            seconds = time.perf_counter() - start
            history.append(logs)
            if on_epoch_end is not None:
                on_epoch_end(seconds, logs)
        return history

    def evaluate(self, x, y):
        probabilities = self.predict(x)
        loss = categorical_crossentropy(probabilities, np.eye(self.layer_sizes[-1])[y])
        return loss, float(np.mean(probabilities.argmax(axis=1) == y))
