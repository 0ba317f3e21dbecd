"""The hand-written backward pass against TensorFlow's automatic differentiation (float64, 1e-6)."""

import numpy as np
import pytest
import tensorflow as tf

from dlbench.numpy_nn import NumpyMLP


@pytest.mark.parametrize("layer_sizes", [(5, 4, 3), (7, 6, 5, 4), (784, 64, 32, 10)])
def test_gradients_match_gradient_tape(layer_sizes):
    rng = np.random.default_rng(1)
    network = NumpyMLP(layer_sizes, seed=2, dtype=np.float64)
    # Non-zero biases so every term of the backward pass is exercised.
    network.biases = [rng.normal(0, 0.1, b.shape) for b in network.biases]
    x = rng.normal(size=(16, layer_sizes[0]))
    labels = rng.integers(0, layer_sizes[-1], size=16)
    one_hot = np.eye(layer_sizes[-1])[labels]

    loss, weight_gradients, bias_gradients = network.gradients(x, one_hot)

    weights = [tf.Variable(w) for w in network.weights]
    biases = [tf.Variable(b) for b in network.biases]
    with tf.GradientTape() as tape:
        activation = tf.constant(x)
        for index, (weight, bias) in enumerate(zip(weights, biases)):
            z = activation @ weight + bias
            activation = tf.nn.softmax(z) if index == len(weights) - 1 else tf.nn.relu(z)
        reference_loss = tf.reduce_mean(-tf.reduce_sum(one_hot * tf.math.log(activation), axis=1))
    reference = tape.gradient(reference_loss, weights + biases)

    np.testing.assert_allclose(loss, reference_loss.numpy(), rtol=1e-6)
    for mine, theirs in zip(weight_gradients + bias_gradients, reference):
        np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-6, atol=1e-12)


def test_parameter_count_of_the_course_reference():
    assert NumpyMLP((784, 64, 32, 10)).count_params() == 52_650


def test_a_few_sgd_epochs_learn_a_separable_problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    network = NumpyMLP((2, 8, 2), seed=0)
    history = network.fit(x, y, epochs=20, batch_size=16, learning_rate=0.1)
    assert history[-1]["loss"] < history[0]["loss"]
    assert network.evaluate(x, y)[1] > 0.95
