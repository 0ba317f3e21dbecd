"""autoencoder_mnist: PSNR, region scores and detection metrics on known inputs, the models' shapes,
the anomaly study's points, and smoke runs of both variants on the shipped MNIST sample."""

import dataclasses
import math

import numpy as np
import pytest

from dlbench import metrics as shared_metrics
from dlbench import studies
from experiments import autoencoder_mnist


def test_psnr_on_known_arrays():
    clean = np.zeros((2, 28, 28, 1))
    off_by_a_tenth = clean + 0.1  # MSE 0.01 -> 20 dB.
    assert autoencoder_mnist.psnr(clean, off_by_a_tenth) == pytest.approx([20.0, 20.0])
    half = clean.copy()
    half[1] = 1.0  # MSE 1 -> 0 dB.
    assert autoencoder_mnist.psnr(clean, half)[1] == pytest.approx(0.0)


def test_noise_is_clipped_to_the_pixel_range_and_seeded():
    images = np.full((4, 28, 28, 1), 0.5, np.float32)
    noisy = autoencoder_mnist.add_noise(images, 0.4, seed=1)
    assert noisy.min() >= 0.0 and noisy.max() <= 1.0 and not np.allclose(noisy, images)
    assert np.array_equal(noisy, autoencoder_mnist.add_noise(images, 0.4, seed=1))


def test_roc_auc_on_separable_tied_and_reversed_scores():
    labels = np.array([0, 0, 0, 1, 1])
    assert shared_metrics.roc_auc(labels, [0.1, 0.2, 0.3, 0.8, 0.9]) == 1.0
    assert shared_metrics.roc_auc(labels, [0.9, 0.8, 0.7, 0.2, 0.1]) == 0.0
    assert shared_metrics.roc_auc(labels, np.ones(5)) == 0.5
    assert math.isnan(shared_metrics.roc_auc([1, 1], [0.1, 0.2]))


def test_detection_metrics_at_a_threshold():
    is_anomaly = np.array([False, False, False, False, True, True])
    scores = np.array([0.1, 0.2, 0.3, 0.6, 0.5, 0.9])
    result = autoencoder_mnist.detection_metrics(is_anomaly, scores, threshold=0.4)
    assert result["anomaly_auc"] == pytest.approx(7 / 8)  # 0.6 (normal) outranks the anomaly at 0.5.
    assert result["anomaly_precision"] == pytest.approx(2 / 3) and result["anomaly_recall"] == 1.0
    assert result["anomaly_false_positive_rate"] == pytest.approx(1 / 4)


def test_region_score_is_the_worst_window_mean():
    errors = np.zeros((2, 28, 28))
    errors[0, 3:10, 5:12] = 1.0  # One 7x7 block of errors: its window mean is 1.
    errors[1, :, :] = 0.1  # Spread out: every window means 0.1.
    assert autoencoder_mnist.region_scores(errors, 7) == pytest.approx([1.0, 0.1])
    brute = max(errors[0, row:row + 5, column:column + 5].mean() for row in range(24) for column in range(24))
    assert autoencoder_mnist.region_scores(errors[:1], 5)[0] == pytest.approx(brute)


@pytest.mark.parametrize("variant", ["dense", "conv"])
def test_autoencoder_maps_images_to_images_through_a_code_of_m(variant):
    config = dataclasses.replace(autoencoder_mnist.EXPERIMENT.variants[variant].config, code_size=8,
                                 hidden_units=16, filters=4)
    model = autoencoder_mnist.build_autoencoder(config)
    output = model(np.zeros((3, 28, 28, 1), np.float32))
    assert tuple(output.shape) == (3, 28, 28, 1)
    assert model.get_layer("code").output.shape[-1] == 8


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="tasks"):
        dataclasses.replace(autoencoder_mnist.Config(), tasks="compression,telepathy").validate()
    with pytest.raises(ValueError, match="normal_digit"):
        dataclasses.replace(autoencoder_mnist.Config(), normal_digit=10).validate()


def test_the_anomaly_study_trains_one_class_models_for_each_digit():
    study = studies.get("autoencoder_anomaly")
    specs = studies.plan(study, {}, None, ["cpu"], results_dir="unused")
    assert sorted(spec.overrides["normal_digit"] for spec in specs) == [str(digit) for digit in range(10)]
    assert all(spec.variant == "conv" and spec.overrides["tasks"] == "anomaly" for spec in specs)


@pytest.mark.parametrize("variant", ["dense", "conv"])
def test_smoke_run_reports_the_three_uses(run_in_process, variant, tmp_path):
    row, metrics = run_in_process("autoencoder_mnist", variant, epochs=1, anomaly_epochs=2, code_size=8,
                                  hidden_units=32, filters=4)
    assert row.status == "ok" and row.dataset_source == "sample" and row.units_run == 1
    assert row.metric_value == pytest.approx(metrics["test_mse"]) and 0 < row.metric_value < 0.25
    assert metrics["compression_ratio"] == 784 / 8
    assert metrics["noisy_psnr"] < 15  # sigma = 0.4 noise: about 11 dB.
    for key in ("denoised_psnr", "psnr_gain", "anomaly_auc", "anomaly_precision", "anomaly_recall"):
        assert math.isfinite(metrics[key]), key
    assert 0 <= metrics["anomaly_auc"] <= 1
    artifacts = {path.name for path in (tmp_path / row.artifacts_dir).iterdir()}
    assert {"reconstructions.png", "anomaly_scores.png", "autoencoder.keras"} <= artifacts


def test_anomaly_only_run_logs_the_one_class_epochs(run_in_process):
    row, metrics = run_in_process("autoencoder_mnist", "conv", tasks="anomaly", anomaly_epochs=2, filters=4,
                                  normal_digit=1)
    assert row.status == "ok" and row.units_run == 2 and row.metric_value is None
    assert metrics["normal_digit"] == 1 and "test_mse" not in metrics and 0 <= metrics["anomaly_auc"] <= 1


def test_ctrl_c_during_the_denoising_training_leaves_an_interrupted_record(tmp_path, monkeypatch):
    """The denoiser is the run's second model (its epochs are no progress units): a Ctrl-C there used
    to be unprotected. Now it is deferred to the end of the epoch and the record says interrupted."""
    import io
    import json
    import signal

    import keras

    from dlbench import data, progress, registry, results, tracking

    class CtrlCAtFirstBatch(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0 and not tracking.STOP.requested:
                signal.raise_signal(signal.SIGINT)

    original_train = autoencoder_mnist.train
    trainings = []

    def train_and_interrupt_the_denoiser(model, inputs, targets, validation, epochs, config, callbacks=()):
        trainings.append(epochs)
        extra = [CtrlCAtFirstBatch()] if len(trainings) == 2 else []  # The second training: denoising.
        original_train(model, inputs, targets, validation, epochs, config, [*callbacks, *extra])

    monkeypatch.setattr(autoencoder_mnist, "train", train_and_interrupt_the_denoiser)
    experiment = registry.get("autoencoder_mnist")
    config = dataclasses.replace(experiment.variants["dense"].config, epochs=3, hidden_units=16, code_size=4)
    row = results.ResultRow(run_id="ctrl-c", experiment="autoencoder_mnist", variant="dense", device="cpu")
    quiet = progress.Progress("t", "epoch", stream=io.StringIO(), interactive=False)
    previous = signal.signal(signal.SIGINT, tracking.STOP.on_interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            with tracking.track(row, experiment, tmp_path, data.DataOptions(allow_download=False),
                                tracking.EnergyTracker("FRA", "cpu", enabled=False), progress=quiet) as record:
                experiment.run(config, "dense", record)
    finally:
        signal.signal(signal.SIGINT, previous)
        tracking.STOP.requested = False
    written = json.loads(results.record_path(tmp_path, "autoencoder_mnist", "ctrl-c").read_text())
    assert written["status"] == "interrupted" and len(trainings) == 2  # Stopped in the denoising training.
    assert "train_denoising" in json.loads(written["phase_times"]) and written["units_run"] == 3
