"""The NumPy network against TensorFlow/Keras, value for value and gradient for gradient (float64)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from dlbench import numpy_nn
from dlbench.numpy_nn import NumpyMLP, activation

TOLERANCE = dict(rtol=1e-6, atol=1e-6)


def away_from_kinks(values, kinks=(0.0, 6.0), margin=1e-3):
    """Move points off the non-differentiable kinks, where TensorFlow picks a one-sided derivative."""
    values = values.copy()
    for kink in kinks:
        values[np.abs(values - kink) < margin] += 2 * margin
    return values


# --------------------------------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------------------------------

# Our activation (name, options) and the Keras function it must equal.
ACTIVATION_CASES = {
    "linear": (("linear", {}), keras.activations.linear),
    "sigmoid": (("sigmoid", {}), keras.activations.sigmoid),
    "tanh": (("tanh", {}), keras.activations.tanh),
    "relu": (("relu", {}), keras.activations.relu),
    "relu_capped": (("relu", {"max_value": 6.0}), lambda z: keras.activations.relu(z, max_value=6.0)),
    "leaky_relu": (("leaky_relu", {}), lambda z: keras.activations.leaky_relu(z, negative_slope=0.01)),
    "leaky_relu_0.3": (("leaky_relu", {"alpha": 0.3}), lambda z: keras.activations.leaky_relu(z, negative_slope=0.3)),
    "elu": (("elu", {}), keras.activations.elu),
    "elu_0.5": (("elu", {"alpha": 0.5}), lambda z: keras.activations.elu(z, alpha=0.5)),
    "softplus": (("softplus", {}), keras.activations.softplus),
    "swish": (("swish", {}), keras.activations.silu),
}


@pytest.mark.parametrize("case", ACTIVATION_CASES)
def test_activation_value_and_derivative_match_tensorflow(case):
    (name, options), reference = ACTIVATION_CASES[case]
    z = away_from_kinks(np.random.default_rng(0).normal(0, 4, size=(7, 9)))
    ours = activation(name, **options)
    z_tensor = tf.constant(z)
    with tf.GradientTape() as tape:
        tape.watch(z_tensor)
        expected = reference(z_tensor)
    expected_derivative = tape.gradient(expected, z_tensor)  # Element-wise: d sum(h) / dz = h'(z).
    np.testing.assert_allclose(ours(z), expected.numpy(), **TOLERANCE)
    np.testing.assert_allclose(ours.derivative(z), expected_derivative.numpy(), **TOLERANCE)


def test_softmax_value_and_backward_match_tensorflow():
    rng = np.random.default_rng(1)
    z, upstream = rng.normal(0, 3, size=(6, 5)), rng.normal(size=(6, 5))
    z_tensor = tf.constant(z)
    with tf.GradientTape() as tape:
        tape.watch(z_tensor)
        expected = keras.activations.softmax(z_tensor)
    expected_gradient = tape.gradient(expected, z_tensor, output_gradients=tf.constant(upstream))
    softmax = activation("softmax")
    a = softmax(z)
    np.testing.assert_allclose(a, expected.numpy(), **TOLERANCE)
    np.testing.assert_allclose(softmax.backward(z, a, upstream), expected_gradient.numpy(), **TOLERANCE)


def test_unknown_activation_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid: .*leaky_relu.*swish"):
        activation("gelu")


# --------------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------------


def loss_inputs(name, rng):
    """(y_true, y_pred) of shape (8, 4) in the loss's domain, away from the probability clipping."""
    if name == "categorical_crossentropy":
        y_true = np.eye(4)[rng.integers(0, 4, size=8)]
        return y_true, rng.uniform(0.05, 1.0, size=(8, 4))  # Rows need not sum to 1: Keras rescales.
    if name == "binary_crossentropy":
        return rng.uniform(0, 1, size=(8, 4)), rng.uniform(0.05, 0.95, size=(8, 4))  # Soft labels too.
    return rng.normal(size=(8, 4)), rng.normal(size=(8, 4))


@pytest.mark.parametrize("name", list(numpy_nn.LOSSES))
def test_loss_value_and_gradient_match_keras(name):
    y_true, y_pred = loss_inputs(name, np.random.default_rng(2))
    value, gradient = numpy_nn.LOSSES[name]
    prediction = tf.Variable(y_pred)
    with tf.GradientTape() as tape:
        expected = keras.losses.get(name)(tf.constant(y_true), prediction)
        expected = tf.reduce_mean(expected)  # keras.losses functions are per sample; fit() averages.
    np.testing.assert_allclose(value(y_true, y_pred), expected.numpy(), **TOLERANCE)
    np.testing.assert_allclose(gradient(y_true, y_pred), tape.gradient(expected, prediction).numpy(), **TOLERANCE)


def test_crossentropies_from_logits_match_keras():
    rng = np.random.default_rng(3)
    z = rng.normal(0, 5, size=(8, 4))
    one_hot, soft = np.eye(4)[rng.integers(0, 4, size=8)], rng.uniform(size=(8, 4))
    categorical = keras.losses.CategoricalCrossentropy(from_logits=True)(one_hot, z)
    binary = keras.losses.BinaryCrossentropy(from_logits=True)(soft, z)
    np.testing.assert_allclose(numpy_nn.softmax_crossentropy_from_logits(one_hot, z), categorical.numpy(), **TOLERANCE)
    np.testing.assert_allclose(numpy_nn.sigmoid_crossentropy_from_logits(soft, z), binary.numpy(), **TOLERANCE)


def test_softmax_and_crossentropy_stay_finite_on_huge_logits():
    z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4 - 1.0], [5e3, 5e3, -5e3]], dtype=np.float32)
    one_hot = np.eye(3, dtype=np.float32)[[1, 0, 2]]
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # Overflow, NaN or log(0) would raise.
        probabilities = numpy_nn.softmax(z)
        loss = numpy_nn.softmax_crossentropy_from_logits(one_hot, z)
        for name in ("sigmoid", "softplus", "swish", "elu", "tanh"):
            values = activation(name)(z)
            derivatives = activation(name).derivative(z)
            assert np.all(np.isfinite(values)) and np.all(np.isfinite(derivatives)), name
    assert np.all(np.isfinite(probabilities))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    # The exact cross-entropies are 2e4, 2e4 + 1 (log-sum-exp of 1e4 and 1e4 - 1) and 1e4 + log 2.
    exact = np.mean([2e4, 2e4 + np.log1p(np.exp(-1.0)), 1e4 + np.log(2)])
    np.testing.assert_allclose(loss, exact, rtol=1e-5)


# --------------------------------------------------------------------------------------------------
# Whole-network gradients
# --------------------------------------------------------------------------------------------------

NETWORK_CASES = {
    "relu_softmax_1_hidden": dict(layer_sizes=(5, 7, 3), hidden_activation="relu"),
    "tanh_softmax_3_hidden": dict(layer_sizes=(4, 6, 5, 4, 3), hidden_activation="tanh"),
    "sigmoid_binary": dict(layer_sizes=(6, 5, 1), hidden_activation="sigmoid", output_activation="sigmoid",
                           loss="binary_crossentropy"),
    "swish_multilabel": dict(layer_sizes=(6, 8, 4, 3), hidden_activation="swish", output_activation="sigmoid",
                             loss="binary_crossentropy"),
    "elu_regression_mse": dict(layer_sizes=(3, 8, 8, 2), hidden_activation="elu", output_activation="linear",
                               loss="mean_squared_error"),
    "softplus_regression_mae": dict(layer_sizes=(3, 6, 2), hidden_activation="softplus", output_activation="linear",
                                    loss="mean_absolute_error"),
    "leaky_relu_l2": dict(layer_sizes=(5, 9, 6, 4), hidden_activation="leaky_relu", l2=0.01),
    "relu_dropout_he": dict(layer_sizes=(5, 9, 6, 4), hidden_activation="relu", dropout=0.3,
                            initializer="he_normal"),
    # Softmax with a loss it is not fused with: the general chain rule through the softmax Jacobian.
    "softmax_mse": dict(layer_sizes=(4, 6, 3), hidden_activation="tanh", loss="mean_squared_error"),
}


def tensorflow_loss(model, x, targets, dropout_masks):
    """The same network built from the NumPy model's weights with Keras functions (and its loss)."""
    keras_activations = {"relu": keras.activations.relu, "tanh": keras.activations.tanh,
                         "sigmoid": keras.activations.sigmoid, "swish": keras.activations.silu,
                         "elu": keras.activations.elu, "softplus": keras.activations.softplus,
                         "leaky_relu": lambda z: keras.activations.leaky_relu(z, negative_slope=0.01),
                         "linear": keras.activations.linear, "softmax": keras.activations.softmax}
    weights = [tf.Variable(w) for w in model.weights]
    biases = [tf.Variable(b) for b in model.biases]
    with tf.GradientTape() as tape:
        a = tf.constant(x)
        for layer, (weight, bias) in enumerate(zip(weights, biases)):
            a = keras_activations[model.activation_of(layer).name](a @ weight + bias)
            if layer < len(dropout_masks):
                a = a * dropout_masks[layer]
        loss = tf.reduce_mean(keras.losses.get(model.loss_name)(tf.constant(targets), a))
        loss += sum(keras.regularizers.L2(model.l2)(w) for w in weights) if model.l2 else 0.0
    weight_gradients, bias_gradients = tape.gradient(loss, [weights, biases])
    return loss.numpy(), weight_gradients, bias_gradients


@pytest.mark.parametrize("case", NETWORK_CASES)
def test_network_gradients_match_gradient_tape(case):
    options = NETWORK_CASES[case]
    model = NumpyMLP(seed=4, dtype=np.float64, **options)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(10, model.layer_sizes[0]))
    if model.output_activation.name == "softmax":
        targets = model.targets_for(rng.integers(0, model.layer_sizes[-1], size=10))
    elif model.output_activation.name == "sigmoid":
        targets = rng.integers(0, 2, size=(10, model.layer_sizes[-1])).astype(np.float64)
    else:
        targets = rng.normal(size=(10, model.layer_sizes[-1]))
    pre_activations, activations = model.forward(x, training=True)
    loss = model.loss(targets, pre_activations, activations)
    weight_gradients, bias_gradients = model.backward(pre_activations, activations, targets)

    expected_loss, expected_weights, expected_biases = tensorflow_loss(model, x, targets, model._dropout_masks)
    np.testing.assert_allclose(loss, expected_loss, **TOLERANCE)
    for ours, expected in zip(weight_gradients + bias_gradients, expected_weights + expected_biases):
        np.testing.assert_allclose(ours, expected.numpy(), **TOLERANCE)


def test_l2_adds_keras_penalty_to_loss_and_two_l2_w_to_gradient():
    rng = np.random.default_rng(6)
    x, targets = rng.normal(size=(8, 5)), np.eye(3)[rng.integers(0, 3, size=8)]
    plain = NumpyMLP((5, 4, 3), seed=7, dtype=np.float64)
    penalised = NumpyMLP((5, 4, 3), seed=7, dtype=np.float64, l2=0.05)
    plain_loss, plain_weights, plain_biases = plain.gradients(x, targets)
    loss, weight_gradients, bias_gradients = penalised.gradients(x, targets)
    penalty = sum(float(keras.regularizers.L2(0.05)(w)) for w in penalised.weights)
    np.testing.assert_allclose(loss - plain_loss, penalty, **TOLERANCE)
    for ours, plain_gradient, weight in zip(weight_gradients, plain_weights, penalised.weights):
        np.testing.assert_allclose(ours - plain_gradient, 2 * 0.05 * weight, **TOLERANCE)
    for ours, plain_gradient in zip(bias_gradients, plain_biases):  # Biases are not penalised.
        np.testing.assert_array_equal(ours, plain_gradient)


@pytest.mark.parametrize("labels", [True, False], ids=["class labels", "one-hot targets"])
def test_logged_loss_is_taken_before_the_update_as_keras_logs_it(labels):
    # One full batch, one epoch: the logged loss is the loss at the starting weights, L2 penalty included.
    rng = np.random.default_rng(8)
    x, y = rng.random((32, 8), dtype=np.float32), rng.integers(0, 3, size=32)
    model = NumpyMLP((8, 4, 3), seed=0, l2=0.5)
    starting_loss = model.evaluate(x, y)[0]
    history = model.fit(x, y if labels else np.eye(3, dtype=np.float32)[y], epochs=1, batch_size=32,
                        learning_rate=1.0, shuffle=False)
    np.testing.assert_allclose(history[0]["loss"], starting_loss, rtol=1e-5)
    assert model.evaluate(x, y)[0] != pytest.approx(starting_loss, rel=1e-3)  # The step did change the weights.


def test_dropout_only_in_training_and_keeps_the_expected_activation():
    model = NumpyMLP((50, 400, 3), seed=0, dropout=0.25)
    x = np.ones((200, 50), dtype=np.float32)
    inference_first = model.forward(x)[1][1]
    training_first = model.forward(x, training=True)[1][1]
    dropped = np.mean(training_first[inference_first > 0] == 0)
    assert abs(dropped - 0.25) < 0.01
    # Inverted dropout: survivors are scaled by 1 / (1 - rate), so the mean activation is unchanged.
    np.testing.assert_allclose(training_first.mean(), inference_first.mean(), rtol=0.02)
    np.testing.assert_array_equal(model.forward(x)[1][1], inference_first)


# --------------------------------------------------------------------------------------------------
# Optimisers
# --------------------------------------------------------------------------------------------------

OPTIMIZER_CASES = {
    "sgd": (lambda: numpy_nn.SGD(0.1), lambda: keras.optimizers.SGD(0.1)),
    "momentum": (lambda: numpy_nn.SGD(0.1, momentum=0.9), lambda: keras.optimizers.SGD(0.1, momentum=0.9)),
    "adam": (lambda: numpy_nn.Adam(0.01), lambda: keras.optimizers.Adam(0.01)),
    # A large epsilon makes its placement (added to sqrt(v), not sqrt(v_hat)) visible in the result.
    "adam_large_epsilon": (lambda: numpy_nn.Adam(0.01, epsilon=0.1), lambda: keras.optimizers.Adam(0.01, epsilon=0.1)),
}


@pytest.mark.parametrize("case", OPTIMIZER_CASES)
def test_optimizer_steps_match_keras(case):
    make_ours, make_keras = OPTIMIZER_CASES[case]
    rng = np.random.default_rng(8)
    parameters = [rng.normal(size=(4, 3)), rng.normal(size=3)]
    variables = [keras.Variable(p, dtype="float64") for p in parameters]
    ours, theirs = make_ours(), make_keras()
    for _ in range(4):
        gradients = [rng.normal(size=p.shape) for p in parameters]
        ours.apply(parameters, gradients)
        theirs.apply([tf.constant(g) for g in gradients], variables)
    # 1e-5, not 1e-6: Keras' Adam raises float32-rounded betas to the step power (its 1 - 0.999**t
    # is off by 1e-5 relative even for float64 variables); the epsilon placement test still tells
    # the two placements apart by far more.
    for parameter, variable in zip(parameters, variables):
        np.testing.assert_allclose(parameter, variable.numpy(), rtol=1e-5, atol=1e-7)


def test_unknown_optimizer_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid: sgd, momentum, adam"):
        numpy_nn.make_optimizer("rmsprop", 0.01)


# --------------------------------------------------------------------------------------------------
# Initialisers
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, variance", [
    ("glorot_uniform", 2 / (300 + 200)), ("glorot_normal", 2 / (300 + 200)),
    ("he_uniform", 2 / 300), ("he_normal", 2 / 300), ("small_random", 0.01 ** 2)])
def test_initializer_variances(name, variance):
    weights = numpy_nn.initial_weights(name, 300, 200, np.random.default_rng(9))
    assert weights.shape == (300, 200) and weights.dtype == np.float32
    np.testing.assert_allclose(weights.var(), variance, rtol=0.03)
    np.testing.assert_allclose(weights.mean(), 0.0, atol=0.05 * np.sqrt(variance))


def test_unknown_initializer_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid: glorot_uniform"):
        NumpyMLP((3, 2), initializer="zeros")


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------


def small_problem(samples=120, seed=10):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1)  # Three classes, learnable.
    return x, y


@pytest.mark.parametrize("batch_size, updates_per_epoch", [(120, 1), (1, 120), (32, 4)])
def test_batch_size_gives_full_batch_online_and_mini_batch_descent(batch_size, updates_per_epoch):
    x, y = small_problem()
    optimizer = numpy_nn.SGD(0.05)
    NumpyMLP((6, 8, 3)).fit(x, y, epochs=2, batch_size=batch_size, optimizer=optimizer)
    assert optimizer.iterations == 2 * updates_per_epoch


@pytest.mark.parametrize("optimizer", numpy_nn.OPTIMIZERS)
def test_training_lowers_the_loss(optimizer):
    x, y = small_problem()
    history = NumpyMLP((6, 16, 3)).fit(x, y, epochs=15, batch_size=16, learning_rate=0.05 if optimizer != "adam" else 0.01,
                                       optimizer=optimizer)
    assert history[-1]["loss"] < 0.7 * history[0]["loss"]
    assert history[-1]["accuracy"] > 0.8


def test_same_seed_gives_bit_identical_weights_and_metrics():
    x, y = small_problem()

    def train():
        model = NumpyMLP((6, 8, 5, 3), seed=3, hidden_activation="elu", dropout=0.1)
        history = model.fit(x, y, epochs=3, batch_size=16, optimizer="adam", learning_rate=0.01,
                            validation_data=(x[:30], y[:30]), seed=3)
        return model, history

    first, first_history = train()
    second, second_history = train()
    assert first_history == second_history
    for a, b in zip(first.weights + first.biases, second.weights + second.biases):
        np.testing.assert_array_equal(a, b)
    different = NumpyMLP((6, 8, 5, 3), seed=4)
    assert not np.array_equal(different.weights[0], first.weights[0])


def test_divergence_stops_training_without_error():
    x, y = small_problem()
    model = NumpyMLP((6, 32, 3))
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # Divergence is handled, not raised.
        history = model.fit(x * 1e3, y, epochs=20, batch_size=8, learning_rate=50.0)
    assert model.diverged
    assert len(history) < 20
    assert not np.isfinite(history[-1]["loss"])


def test_early_stopping_restores_the_best_validation_weights():
    x, y = small_problem(samples=200)
    rng = np.random.default_rng(11)
    # Validation labels unrelated to the inputs: training soon makes the validation loss worse.
    validation = (x[:60], rng.integers(0, 3, size=60))
    snapshots = []
    model = NumpyMLP((6, 64, 3), seed=1)

    def remember(seconds, logs):
        snapshots.append([w.copy() for w in model.weights])

    patience = 2
    history = model.fit(x, y, epochs=40, batch_size=8, learning_rate=0.1, validation_data=validation,
                        early_stopping_patience=patience, on_epoch_end=remember)
    validation_losses = [logs["val_loss"] for logs in history]
    best = int(np.argmin(validation_losses))
    assert len(history) == best + 1 + patience < 40
    for weight, best_weight in zip(model.weights, snapshots[best]):
        np.testing.assert_array_equal(weight, best_weight)


def test_early_stopping_needs_validation_data():
    x, y = small_problem()
    with pytest.raises(ValueError, match="validation"):
        NumpyMLP((6, 3)).fit(x, y, epochs=2, batch_size=8, early_stopping_patience=2)


def test_binary_and_regression_outputs_train():
    x, y = small_problem()
    binary = NumpyMLP((6, 8, 1), output_activation="sigmoid", loss="binary_crossentropy")
    history = binary.fit(x, (y > 0).astype(np.float32), epochs=20, batch_size=16, learning_rate=0.1)
    assert history[-1]["accuracy"] > 0.8
    regression = NumpyMLP((6, 8, 1), output_activation="linear", loss="mean_squared_error")
    history = regression.fit(x, x[:, 0] - x[:, 1], epochs=20, batch_size=16, learning_rate=0.05)
    assert "accuracy" not in history[-1] and history[-1]["loss"] < 0.1
    assert len(regression.evaluate(x, x[:, 0] - x[:, 1])) == 1


@pytest.mark.parametrize("inputs, optimizer, batch_size", [
    ("pixels", "sgd", 16),      # 200 = 12 batches of 16 + 8.
    ("normal", "momentum", 7),
    ("normal", "adam", 200),    # Full batch.
])
def test_fast_path_gives_the_general_loops_weights_and_logs_bit_for_bit(inputs, optimizer, batch_size):
    rng = np.random.default_rng(5)
    x = (rng.integers(0, 256, size=(200, 6)).astype(np.float32) / 255.0 if inputs == "pixels"
         else rng.normal(size=(200, 6)).astype(np.float32))
    y = (x[:, 0] + x[:, 1] > x[:, 2]).astype(np.int64) + (x[:, 3] > x[:, 4])
    results = []
    for fast in (True, False):
        model = NumpyMLP((6, 8, 5, 3), seed=2)
        model.fast_path = fast
        history = model.fit(x, y, epochs=3, batch_size=batch_size, learning_rate=0.05, optimizer=optimizer,
                            validation_data=(x[:50], y[:50]), seed=4)
        results.append((model.parameters, history))
    (fast_parameters, fast_history), (parameters, history) = results
    np.testing.assert_array_equal(fast_parameters.view(np.uint32), parameters.view(np.uint32))
    assert fast_history == history


def test_fast_path_stops_at_the_same_diverging_batch():
    x, y = small_problem()
    results = []
    for fast in (True, False):
        model = NumpyMLP((6, 32, 3))
        model.fast_path = fast
        optimizer = numpy_nn.SGD(50.0)
        history = model.fit(x * 1e3, y, epochs=20, batch_size=8, optimizer=optimizer)
        results.append((model.diverged, len(history), history[-1]["accuracy"], optimizer.iterations))
    assert results[0] == results[1] and results[0][0]
