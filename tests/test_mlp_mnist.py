"""experiments/mlp_mnist.py in-process on the shipped MNIST sample: config checks and tiny runs."""

import dataclasses
import json

import pytest

from dlbench import data, results, tracking
from experiments import mlp_mnist


def run_once(variant, **overrides):
    config = dataclasses.replace(mlp_mnist.Config(), **overrides)
    config.validate()
    row = results.ResultRow(run_id="test", experiment="mlp_mnist", variant=variant, device="cpu", seed=0)
    run = tracking.Run(row, data.DataOptions(allow_download=False), "cpu")
    mlp_mnist.run(config, variant, run)
    run.finish(None)
    return row, json.loads(row.extra_metrics)


@pytest.mark.parametrize("key, value, valid", [
    ("hidden_activation", "gelu", "relu, leaky_relu"), ("optimizer", "rmsprop", "sgd, momentum, adam"),
    ("initializer", "zeros", "glorot_uniform")])
def test_unknown_choices_are_rejected_with_the_valid_ones(key, value, valid):
    with pytest.raises(ValueError, match=f"valid: {valid}"):
        dataclasses.replace(mlp_mnist.Config(), **{key: value}).validate()


@pytest.mark.parametrize("overrides", [dict(dropout=1.0), dict(l2=-1.0), dict(momentum=1.0),
                                       dict(train_subset=-1), dict(early_stopping_patience=2, validation_fraction=0.0)])
def test_out_of_range_values_are_rejected(overrides):
    with pytest.raises(ValueError):
        dataclasses.replace(mlp_mnist.Config(), **overrides).validate()


def test_defaults_stay_the_course_reference():
    config = mlp_mnist.Config()
    assert (config.hidden_units, config.hidden_activation, config.initializer, config.optimizer) == \
        ((64, 32), "relu", "glorot_uniform", "sgd")
    assert (config.learning_rate, config.batch_size, config.epochs) == (0.01, 64, 12)


@pytest.mark.parametrize("variant", ["numpy", "keras"])
def test_variants_train_with_the_new_keys(variant):
    row, metrics = run_once(variant, epochs=3, train_subset=500, hidden_activation="tanh", optimizer="momentum",
                            learning_rate=0.05, l2=1e-4, dropout=0.1, initializer="he_uniform",
                            early_stopping_patience=2)
    assert row.n_train == 500
    assert row.test_accuracy > 0.5  # Chance is 0.1; 500 sample images for 3 epochs reach ~0.7.
    assert metrics["diverged"] == 0.0


@pytest.mark.parametrize("variant", ["numpy", "keras", "keras_fast"])
def test_divergence_ends_the_run_normally_with_empty_metrics(variant):
    row, metrics = run_once(variant, epochs=4, train_subset=300, hidden_activation="linear",
                            optimizer="momentum", learning_rate=20.0)
    assert metrics["diverged"] == 1.0
    assert row.epochs_run < 4
    assert row.test_accuracy is None and row.test_loss is None
