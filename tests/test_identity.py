"""Every variant is a name for a complete config: code paths follow config fields, never the variant's
name, and `--set` cannot change the fields that make a variant what it is (Experiment.identity)."""

import ast
import importlib
import inspect
import typing

import pytest

from dlbench import config as config_module
from dlbench import registry, studies
from dlbench.cli import main

EXPERIMENTS = list(registry.EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_loads_and_declares_its_identity(name):
    experiment = registry.get(name)
    assert experiment.identity, f"{name} declares no identity fields"
    types_by_name = config_module.field_types(experiment.config_class)
    for field in experiment.identity:
        # A closed set of values, so `dlbench list` and a refused --set can name the valid ones.
        annotation = types_by_name[field]
        assert typing.get_origin(annotation) is typing.Literal or annotation in (bool, float), (name, field)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_no_two_variants_share_a_config(name):
    configs = {}
    for variant, declaration in registry.get(name).variants.items():
        assert declaration.config not in configs, f"{name}: {configs.get(declaration.config)} and {variant}"
        configs[declaration.config] = variant
        declaration.config.validate()  # Every declared config passes its own checks.


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_no_code_path_compares_or_looks_up_the_variant_name(name):
    """`variant` may label things (a Keras model's name, an artifact's file name), never choose code:
    no `variant == ...`, `variant in (...)` or `TABLE[variant]` in the experiment's module."""
    source = inspect.getsource(importlib.import_module(registry.EXPERIMENTS[name]))
    offending = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(isinstance(operand, ast.Name) and operand.id == "variant" for operand in operands):
                offending.append(node.lineno)
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Name) and node.slice.id == "variant":
            offending.append(node.lineno)
    assert not offending, f"experiments/{name}.py chooses by the variant's name on lines {offending}"


@pytest.mark.parametrize("experiment, variant, assignment", [
    ("unet_nuclei", "bce", "loss=dice"),
    ("dqn_mouse", "conv", "agent=dense"),
    ("cnn_cifar", "lenet", "architecture=wide"),
    ("cnn_cifar", "wide", "dropout=0"),
    ("mlp_mnist", "numpy", "numpy_fast_path=true"),
    ("sentiment_imdb", "gru", "model=lstm"),
    ("gan_mnist", "dcgan", "architecture=dense"),
    ("autoencoder_mnist", "dense", "architecture=conv"),
])
def test_set_on_an_identity_field_is_one_line_and_exit_2(experiment, variant, assignment, capsys):
    assert main(["run", experiment, "--variants", variant, "--set", assignment]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"'{variant}'" in error and assignment.split("=")[0] in error


def test_unet_loss_refusal_points_to_the_variant_that_has_it(capsys):
    assert main(["run", "unet_nuclei", "--variants", "bce", "--set", "loss=dice"]) == 2
    assert "--variants dice" in capsys.readouterr().err


@pytest.mark.parametrize("name", list(studies.STUDIES))
def test_no_study_overrides_an_identity_field(name):
    study = studies.get(name)
    identity = set(registry.get(study.experiment).identity)
    for point in study.points:
        assert not identity & set({**study.base, **point.overrides}), (name, point.label)
    assert studies.plan(study, {}, None, ["cpu"], results_dir="unused")  # Planning checks every override.


def test_identity_values_tell_the_variants_apart_where_the_code_differs():
    """Variants that run different code differ in their identity fields (conv and conv_egreedy share
    the network and differ only in epsilon; keras and keras_fast only in Keras' compile switches)."""
    def identity_values(name, variant):
        experiment = registry.get(name)
        return tuple(getattr(experiment.variants[variant].config, field) for field in experiment.identity)

    assert identity_values("mlp_mnist", "numpy") != identity_values("mlp_mnist", "numpy_fast")
    assert identity_values("mlp_mnist", "numpy") != identity_values("mlp_mnist", "keras")
    assert len({identity_values("cnn_cifar", variant) for variant in ("fc_sgd", "lenet", "wide", "wide_nodrop",
                                                                       "wide_nobn_nodrop")}) == 5
    assert identity_values("cnn_cifar", "fc_sgd") == identity_values("cnn_cifar", "fc_adam")
    sentiment = registry.get("sentiment_imdb").variants
    assert len({identity_values("sentiment_imdb", variant) for variant in sentiment}) == len(sentiment)
    assert identity_values("gan_mnist", "gan_dense") != identity_values("gan_mnist", "dcgan")
    assert identity_values("autoencoder_mnist", "dense") != identity_values("autoencoder_mnist", "conv")

