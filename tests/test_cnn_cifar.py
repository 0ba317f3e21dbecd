"""cnn_cifar on the shipped sample: exact model sizes, config checks, the input pipeline, end-to-end rows."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from dlbench import cli, config as config_module, registry, results
from experiments import cnn_cifar

# Computed by hand from the architectures in docs/topics/cnn_cifar.md (weights + biases; batch norm has 4
# values per channel).
EXPECTED_PARAMETERS = {
    "fc_sgd": 3_072 * 1_024 + 1_024 + 1_024 * 256 + 256 + 256 * 64 + 64 + 64 * 10 + 10,  # 3,426,250
    "fc_adam": 3_426_250,
    "lenet": 456 + 2_416 + 48_120 + 10_164 + 850,  # 62,006
    "wide": 5_851_338 + 4 * (32 + 128 + 256),  # 5,853,002
    "wide_nodrop": 5_853_002,
    "wide_nobn_nodrop": (896 + 18_496 + 73_856 + 147_584 + 295_168 + 590_080  # convolutions
                         + 4_195_328 + 524_800 + 5_130),  # dense: 5,851,338
}


def variant_config(variant):
    return registry.get("cnn_cifar").variants[variant].config


@pytest.mark.parametrize("variant", list(registry.get("cnn_cifar").variants))
def test_each_variant_has_the_course_parameter_count(variant):
    model = cnn_cifar.build_model(variant_config(variant), name=variant)
    assert model.count_params() == EXPECTED_PARAMETERS[variant]
    assert model.output_shape == (None, 10) and model.name == variant
    cnn_cifar.check_parameter_count(model, variant_config(variant))  # The run's own check agrees.


def test_ablations_remove_exactly_batch_norm_and_dropout():
    def layer_kinds(variant):
        return [type(layer).__name__ for layer in cnn_cifar.build_model(variant_config(variant)).layers]

    assert layer_kinds("wide").count("BatchNormalization") == 3 and layer_kinds("wide").count("Dropout") == 2
    assert "Dropout" not in layer_kinds("wide_nodrop")
    assert layer_kinds("wide_nodrop").count("BatchNormalization") == 3
    assert not {"Dropout", "BatchNormalization"} & set(layer_kinds("wide_nobn_nodrop"))


def test_the_model_is_chosen_by_the_config_not_the_variant_name():
    configs = {name: variant.config for name, variant in registry.get("cnn_cifar").variants.items()}
    assert {name: config.architecture for name, config in configs.items()} == {
        "fc_sgd": "fc", "fc_adam": "fc", "lenet": "lenet", "wide": "wide", "wide_nodrop": "wide",
        "wide_nobn_nodrop": "wide"}
    assert (configs["wide"].batch_norm, configs["wide"].dropout) == (True, 0.05)
    assert (configs["wide_nodrop"].batch_norm, configs["wide_nodrop"].dropout) == (True, 0.0)
    assert (configs["wide_nobn_nodrop"].batch_norm, configs["wide_nobn_nodrop"].dropout) == (False, 0.0)
    # Any name builds the model its config describes.
    assert cnn_cifar.build_model(configs["lenet"], name="anything").count_params() == EXPECTED_PARAMETERS["lenet"]
    with pytest.raises(ValueError, match="wide architecture only"):
        dataclasses.replace(configs["lenet"], batch_norm=True).validate()


def test_every_variant_carries_its_complete_course_config():
    variants = registry.get("cnn_cifar").variants
    assert (variants["fc_sgd"].config.optimizer, variants["fc_sgd"].config.learning_rate) == ("sgd", 0.01)
    assert (variants["fc_adam"].config.optimizer, variants["fc_adam"].config.learning_rate) == ("adam", 1e-4)
    assert variants["lenet"].config.epochs == 10 and variants["wide"].config.epochs == 15
    chosen = config_module.apply_overrides(variants["lenet"].config, {"optimizer": "sgd", "epochs": "3"})
    assert (chosen.optimizer, chosen.epochs, chosen.learning_rate) == ("sgd", 3, 1e-3)
    assert variants["wide"].slow_on_cpu and not variants["lenet"].slow_on_cpu


@pytest.mark.parametrize("assignment", ["optimizer=rmsprop", "lr_schedule=linear", "epochs=0",
                                        "gradient_clip_norm=-1", "validation_fraction=1",
                                        "early_stopping_patience=2 validation_fraction=0"])
def test_bad_config_is_a_clear_error(assignment):
    with pytest.raises(config_module.ConfigError):
        config_module.apply_overrides(cnn_cifar.Config(), config_module.parse_assignments([assignment]))


def test_pipeline_standardises_and_augmentation_keeps_shapes_and_labels():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(32, 32, 32, 3), dtype=np.uint8)  # Pipeline mechanics only.
    labels = np.arange(32) % 10
    config = cnn_cifar.Config(batch_size=32)
    mean, std = cnn_cifar.channel_statistics(images, config.normalization)
    x, y = next(iter(cnn_cifar.make_pipeline(images, labels, config, mean, std)))
    np.testing.assert_allclose(x.numpy().mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(x.numpy().std(axis=(0, 1, 2)), 1.0, atol=1e-3)
    augmented_config = cnn_cifar.Config(batch_size=32, augmentation=True)
    batch, batch_labels = next(iter(cnn_cifar.make_pipeline(images, labels, augmented_config, mean, std,
                                                            training=True, seed=1)))
    assert batch.shape == (32, 32, 32, 3) and batch.dtype.name == "float32"
    assert sorted(batch_labels.numpy().tolist()) == sorted(labels.tolist())  # Shuffled, not changed.


def test_learning_rate_schedules_and_clipping():
    config = cnn_cifar.Config(optimizer="sgd", learning_rate=0.1, epochs=4)
    assert cnn_cifar.make_learning_rate(config, steps_per_epoch=10) == 0.1
    step = cnn_cifar.make_learning_rate(dataclasses.replace(config, lr_schedule="step"), steps_per_epoch=10)
    assert [float(step(s)) for s in (0, 25, 35)] == pytest.approx([0.1, 0.01, 0.001])
    cosine = cnn_cifar.make_learning_rate(dataclasses.replace(config, lr_schedule="cosine"), steps_per_epoch=10)
    assert float(cosine(20)) == pytest.approx(0.05) and float(cosine(40)) == pytest.approx(0.0, abs=1e-7)
    clipped = cnn_cifar.make_optimizer(dataclasses.replace(config, gradient_clip_norm=1.0), steps_per_epoch=10)
    assert clipped.global_clipnorm == 1.0


def read_single_row(results_dir):
    rows = results.read_rows(Path(results_dir) / "cnn_cifar.csv")  # The CSV rebuilt from the records.
    assert len(rows) == 1 and len(results.read_records(results_dir, "cnn_cifar")) == 1
    return rows[0]


def test_end_to_end_lenet_writes_a_complete_row(tmp_path):
    results_dir = tmp_path / "results"
    status = cli.main(["run", "cnn_cifar", "--variants", "lenet", "--devices", "cpu",
                       "--set", "epochs=2 train_subset=256", "--results-dir", str(results_dir)])
    assert status == 0
    row = read_single_row(results_dir)
    assert row["status"] == "ok" and row["error"] == ""
    assert row["dataset"] == "cifar10" and row["dataset_source"] == "sample"
    assert "JPEG quality-75" in row["dataset_origin"]
    assert int(row["parameters"]) == 62_006
    assert (int(row["n_train"]), int(row["n_validation"]), int(row["n_test"])) == (256, 200, 200)
    assert 0.0 <= float(row["test_accuracy"]) <= 1.0 and float(row["test_loss"]) > 0
    for column in ("time_data_s", "time_build_s", "time_first_unit_s", "time_steady_unit_s",
                   "time_train_s", "time_eval_s", "throughput", "metric_value"):
        assert float(row[column]) > 0, column
    assert json.loads(row["config"])["optimizer"] == "adam" and row["metric"] == "test_accuracy"
    assert row["jit_compile"] == "false" and row["throughput_unit"] == "images/s" and row["units_run"] == "2"
    history = results.read_rows(results_dir / row["history_file"])
    assert len(history) == 2 and {"accuracy", "val_accuracy", "loss", "val_loss"} <= set(history[0])


def test_every_training_switch_together_on_the_fc_model(tmp_path):
    results_dir = tmp_path / "results"
    status = cli.main(["run", "cnn_cifar", "--variants", "fc_sgd", "--devices", "cpu", "--no-energy",
                       "--set", "epochs=2 train_subset=128 augmentation=true lr_schedule=step momentum=0.9 "
                                "gradient_clip_norm=1 early_stopping_patience=1 normalization=unit_range",
                       "--results-dir", str(results_dir)])
    assert status == 0
    row = read_single_row(results_dir)
    assert row["status"] == "ok" and int(row["parameters"]) == 3_426_250
    assert json.loads(row["config"])["optimizer"] == "sgd" and 1 <= int(row["units_run"]) <= 2


def test_train_subset_larger_than_the_data_fails_with_a_reason(tmp_path):
    results_dir = tmp_path / "results"
    status = cli.main(["run", "cnn_cifar", "--variants", "lenet", "--devices", "cpu", "--no-energy",
                       "--set", "train_subset=100000", "--results-dir", str(results_dir)])
    assert status == 1
    row = read_single_row(results_dir)
    assert row["status"] == "failed" and "train_subset=100000" in row["error"]


def test_planning_wide_on_cpu_warns_about_the_run_time(capsys):
    from dlbench import runner

    specs = runner.plan("cnn_cifar", ["lenet", "wide"], ["cpu"], {}, results_dir="unused")
    assert [spec.variant for spec in specs] == ["lenet", "wide"]
    # Said once per command when the data source is known (runner.prepare_data), not by plan().
    runner.announce_slow_runs("cnn_cifar", [spec.variant for spec in specs], on_sample=False)
    warning = capsys.readouterr().err
    assert "cnn_cifar/wide on CPU: about 3.5 minutes per epoch" in warning and "cnn_cifar/lenet" not in warning
    runner.announce_slow_runs("cnn_cifar", ["wide"], on_sample=True)  # Full-data times mislead on the sample.
    assert capsys.readouterr().err == ""
