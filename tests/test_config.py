import dataclasses

import pytest

from dlbench import config as config_module
from dlbench.cli import main
from experiments.mlp_mnist import Config


def test_overrides_are_parsed_to_the_field_types():
    config = config_module.apply_overrides(
        Config(), {"epochs": "3", "learning_rate": "0.1", "hidden_units": "128,64,32", "jit_compile": "true"})
    assert config.epochs == 3 and isinstance(config.epochs, int)
    assert config.learning_rate == pytest.approx(0.1)
    assert config.hidden_units == (128, 64, 32)
    assert config.jit_compile is True
    assert dataclasses.is_dataclass(config) and Config.__dataclass_params__.frozen


def test_unknown_key_lists_the_valid_ones():
    with pytest.raises(config_module.ConfigError, match="unknown config key 'epoch'.*valid keys: .*epochs"):
        config_module.apply_overrides(Config(), {"epoch": "3"})


@pytest.mark.parametrize("key, value, reason", [
    ("epochs", "three", "expected an integer"),
    ("learning_rate", "fast", "expected a number"),
    ("jit_compile", "maybe", "expected true or false"),
    ("hidden_units", "64,x", "comma-separated ints"),
])
def test_bad_values_say_what_is_expected(key, value, reason):
    with pytest.raises(config_module.ConfigError, match=reason):
        config_module.apply_overrides(Config(), {key: value})


@pytest.mark.parametrize("text", ["nan", "NaN", "-nan", "inf", "-inf", "+inf", "Infinity", "-infinity", "1e999"])
def test_floats_must_be_finite(text):
    with pytest.raises(ValueError, match="expected a finite number"):
        config_module.parse_value(text, float)
    assert config_module.parse_value("1e-3", float) == pytest.approx(1e-3)


@pytest.mark.parametrize("key", ["learning_rate", "momentum", "l2", "dropout", "validation_fraction"])
def test_every_float_key_refuses_nan_and_infinity_in_one_line(key):
    for text in ("nan", "inf", "-inf"):
        with pytest.raises(config_module.ConfigError) as error:
            config_module.apply_overrides(Config(), {key: text})
        assert str(error.value) == f"bad value for '{key}': {text!r} (expected a finite number)"


@dataclasses.dataclass(frozen=True)
class ConfigWithoutValidate:
    rate: float = 0.5
    steps: int = 1
    learning_rate: float | None = None


def test_optional_float_says_finite_too():
    with pytest.raises(config_module.ConfigError) as error:
        config_module.apply_overrides(ConfigWithoutValidate(), {"learning_rate": "nan"})
    assert str(error.value) == "bad value for 'learning_rate': 'nan' (expected a finite number; expected float or none)"
    with pytest.raises(config_module.ConfigError, match=r"'fast' \(expected float or none\)$"):
        config_module.apply_overrides(ConfigWithoutValidate(), {"learning_rate": "fast"})  # Said once (issue 19).
    assert config_module.apply_overrides(ConfigWithoutValidate(), {"learning_rate": "none"}).learning_rate is None
    assert config_module.apply_overrides(ConfigWithoutValidate(), {"learning_rate": "0.5"}).learning_rate == 0.5


def test_tuple_of_floats_refuses_nan():
    with pytest.raises(ValueError, match="expected a finite number"):
        config_module.parse_value("0.1,nan", tuple[float, ...])


def test_config_without_validate_is_accepted():
    assert not hasattr(ConfigWithoutValidate, "validate")
    config = config_module.apply_overrides(ConfigWithoutValidate(), {"rate": "0.25", "steps": "4"})
    assert config == ConfigWithoutValidate(rate=0.25, steps=4)
    assert config_module.apply_overrides(ConfigWithoutValidate(), {}) == ConfigWithoutValidate()
    with pytest.raises(config_module.ConfigError, match="unknown config key 'rates'; valid keys: rate, steps"):
        config_module.apply_overrides(ConfigWithoutValidate(), {"rates": "1"})
    with pytest.raises(config_module.ConfigError, match="expected a finite number"):
        config_module.apply_overrides(ConfigWithoutValidate(), {"rate": "inf"})


def test_cli_nan_is_one_line_and_exit_2(capsys):
    assert main(["run", "mlp_mnist", "--set", "learning_rate=nan"]) == 2
    error = capsys.readouterr().err
    assert "bad value for 'learning_rate': 'nan' (expected a finite number" in error
    assert error.count("\n") == 1


def test_config_invariants_are_checked():
    with pytest.raises(config_module.ConfigError, match="learning_rate must be > 0"):
        config_module.apply_overrides(Config(), {"learning_rate": "-1"})


def test_assignments_need_key_equals_value():
    assert config_module.parse_assignments(["epochs=3 learning_rate=0.1", "batch_size=32"]) == {
        "epochs": "3", "learning_rate": "0.1", "batch_size": "32"}
    with pytest.raises(config_module.ConfigError, match="expected key=value"):
        config_module.parse_assignments(["epochs"])


@pytest.mark.parametrize("arguments, message", [
    (["run", "no_such_experiment"], "unknown experiment 'no_such_experiment'; valid: mlp_mnist"),
    (["run", "mlp_mnist", "--set", "epochz=1"], "unknown config key 'epochz'"),
    (["run", "mlp_mnist", "--set", "epochs=many"], "bad value for 'epochs'"),
    (["run", "mlp_mnist", "--variants", "torch"], "unknown variant 'torch' for mlp_mnist; valid: numpy, numpy_fast, keras, keras_fast"),
    (["run", "mlp_mnist", "--devices", "tpu"], "unknown device 'tpu'"),
    (["compare", "no_such_experiment"], "unknown experiment"),
])
def test_cli_bad_input_is_one_line_and_exit_2(arguments, message, capsys):
    assert main(arguments) == 2
    error = capsys.readouterr().err
    assert message in error
    assert error.count("\n") == 1


def test_cli_gpu_requested_but_absent_is_exit_2(monkeypatch, capsys, request):
    from dlbench import environment

    monkeypatch.setattr(environment, "nvidia_gpu_listed", lambda: False)
    environment.gpu_available.cache_clear()
    request.addfinalizer(environment.gpu_available.cache_clear)  # Later tests see the real machine.
    assert main(["run", "mlp_mnist", "--variants", "keras", "--devices", "gpu"]) == 2
    assert "no GPU is usable" in capsys.readouterr().err


def test_cpu_only_variant_on_gpu_only_is_refused(monkeypatch, capsys):
    from dlbench import environment

    monkeypatch.setattr(environment, "gpu_available", lambda: (True, "fake"))
    assert main(["run", "mlp_mnist", "--variants", "numpy", "--devices", "gpu"]) == 2
    assert "nothing to run" in capsys.readouterr().err
