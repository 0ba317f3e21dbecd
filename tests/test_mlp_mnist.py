"""experiments/mlp_mnist.py in-process on the shipped MNIST sample: config checks and tiny runs."""

import dataclasses

import pytest

from experiments import mlp_mnist


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


@pytest.mark.parametrize("variant", ["numpy", "numpy_fast", "keras"])
def test_variants_train_with_the_new_keys(run_in_process, variant):
    row, metrics = run_in_process("mlp_mnist", variant, epochs=3, train_subset=500, hidden_activation="tanh", optimizer="momentum",
                            learning_rate=0.05, l2=1e-4, dropout=0.1, initializer="he_uniform",
                            early_stopping_patience=2)
    assert row.n_train == 500
    assert row.test_accuracy > 0.5  # Chance is 0.1; 500 sample images for 3 epochs reach ~0.7.
    assert metrics["diverged"] == 0.0


@pytest.mark.parametrize("variant", ["numpy", "numpy_fast", "keras", "keras_fast"])
def test_divergence_ends_the_run_normally_with_empty_metrics(run_in_process, variant):
    row, metrics = run_in_process("mlp_mnist", variant, epochs=4, train_subset=300, hidden_activation="linear",
                            optimizer="momentum", learning_rate=20.0)
    assert metrics["diverged"] == 1.0
    assert row.units_run < 4
    assert row.test_accuracy is None and row.test_loss is None
    assert metrics["failed_to_learn"] == 1.0


def test_course_split_holds_out_ten_percent_of_all_images_as_test(run_in_process):
    row, _ = run_in_process("mlp_mnist", "numpy", epochs=1, split="course", validation_fraction=0.2)
    # The sample has 2,000 + 500 images: 250 test, then 80/20 of the remaining 2,250.
    assert (row.n_test, row.n_validation, row.n_train) == (250, 450, 1800)


def test_numpy_run_records_gradient_norms_per_layer_at_initialisation(run_in_process):
    _, metrics = run_in_process("mlp_mnist", "numpy", epochs=1, hidden_units=(32, 32, 32), hidden_activation="sigmoid")
    norms = [metrics[f"gradient_norm_layer_{layer}"] for layer in range(1, 5)]
    assert all(norm > 0 for norm in norms)
    assert norms[0] < norms[-1]  # Sigmoid derivatives (<= 1/4) shrink the gradient towards the input.


def test_numpy_and_numpy_fast_train_to_identical_results(run_in_process):
    readable, _ = run_in_process("mlp_mnist", "numpy", epochs=2, train_subset=400)
    fast, _ = run_in_process("mlp_mnist", "numpy_fast", epochs=2, train_subset=400)
    assert readable.test_accuracy == fast.test_accuracy and readable.test_loss == fast.test_loss
    assert readable.validation_accuracy == fast.validation_accuracy


def test_every_variant_declares_a_complete_config_and_keras_fast_compiles():
    from dlbench import registry

    experiment = registry.get("mlp_mnist")
    assert experiment.metric.name == "test_accuracy" and experiment.progress_unit == "epoch"
    fast = experiment.variants["keras_fast"].config
    assert fast.jit_compile is True and fast.steps_per_execution == mlp_mnist.FAST_STEPS_PER_EXECUTION
    assert not experiment.variants["numpy"].uses_tensorflow and experiment.variants["numpy"].devices == ("cpu",)


def test_the_implementation_and_fast_path_come_from_the_config():
    from dlbench import registry

    variants = registry.get("mlp_mnist").variants
    assert {name: (variant.config.implementation, variant.config.numpy_fast_path)
            for name, variant in variants.items()} == {
        "numpy": ("numpy", False), "numpy_fast": ("numpy", True), "keras": ("keras", False),
        "keras_fast": ("keras", False)}
    with pytest.raises(ValueError, match="numpy_fast_path applies to implementation=numpy only"):
        dataclasses.replace(mlp_mnist.Config(), implementation="keras", numpy_fast_path=True).validate()
