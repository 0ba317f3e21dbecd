"""The run's record as experiments fill it (tracking.track / Record), with energy off or faked."""

import io
import json
import time

import numpy as np
import pytest

from dlbench import data, progress, registry, results, tracking
from dlbench.experiment import Experiment, Metric, Variant
from experiments.mlp_mnist import Config as MlpConfig


def _experiment(metric=Metric("test_accuracy"), progress_unit="epoch"):
    return Experiment(title="unit", dataset="mnist", variants={"v": Variant("v", MlpConfig())},
                      run=lambda config, variant, record: None, metric=metric, progress_unit=progress_unit,
                      throughput_unit="images/s")


def _row():
    return results.ResultRow(run_id="r1", experiment="unit", variant="v", device="cpu", seed=0)


def _track(tmp_path, energy, body, experiment=None, **options):
    row = _row()
    experiment = experiment or _experiment()
    quiet = progress.Progress("unit", experiment.progress_unit, stream=io.StringIO(), interactive=False)
    with tracking.track(row, experiment, tmp_path, data.DataOptions(), energy, progress=quiet,
                        **options) as record:
        body(record)
    return row


def _read(tmp_path):
    return results.read_records(tmp_path, "unit")


def _off():
    return tracking.EnergyTracker("FRA", "cpu", enabled=False)


def test_successful_run_writes_a_complete_record_and_history(tmp_path):
    def body(record):
        record.expect_units(4, items_per_unit=100)
        with record.phase("train"):
            for seconds in (2.0, 1.0, 1.2, 0.8):
                record.unit(seconds, loss=0.5, accuracy=0.9, val_accuracy=0.85)
        record.set(n_train=100, test_accuracy=0.8, test_loss=0.4)
        record.add_metrics(f1=0.75)

    row = _track(tmp_path, _off(), body)
    [written] = _read(tmp_path)
    assert written["status"] == "ok" and written["energy_status"] == "disabled"
    assert written["metric"] == "test_accuracy" and written["metric_value"] == 0.8
    assert written["metric_direction"] == "max" and written["progress_unit"] == "epoch"
    assert written["time_first_unit_s"] == 2.0
    assert written["time_steady_unit_s"] == 1.0  # Median of the units after the first.
    assert written["throughput"] == pytest.approx(300 / 3.0) and written["throughput_unit"] == "images/s"
    assert written["units_run"] == 4 and written["units_planned"] == 4 and written["validation_accuracy"] == 0.85
    assert json.loads(written["extra_metrics"]) == {"f1": 0.75}
    assert set(json.loads(written["phase_times"])) == {"train"} and written["time_train_s"] >= 0
    assert written["forecast_after_unit"] == 2 and written["forecast_time_s"] > 0
    history = (tmp_path / row.history_file).read_text().splitlines()
    assert history[0].startswith("epoch,seconds,items") and len(history) == 5
    assert (tmp_path / "unit.csv").exists() is False  # The CSV is the runner's to rebuild, from records.


def test_any_phase_name_is_timed_and_a_metric_from_extra_metrics_is_the_headline(tmp_path):
    experiment = _experiment(metric=Metric("mean_score", higher_is_better=True), progress_unit="episode")

    def body(record):
        with record.phase("rollout"):
            pass
        with record.phase("rollout"):
            pass
        record.unit(0.5, items=200, mean_score=1.5)
        record.add_metrics(mean_score=2.5)

    _track(tmp_path, _off(), body, experiment=experiment)
    [written] = _read(tmp_path)
    assert written["status"] == "ok"  # run.phase("rollout") used to raise AttributeError.
    assert "rollout" in json.loads(written["phase_times"]) and written["metric_value"] == 2.5
    assert written["progress_unit"] == "episode"


def test_time_train_is_the_sum_of_every_training_phase_whatever_its_name(tmp_path):
    def body(record):
        with record.phase("train_denoising", training=True):
            time.sleep(0.05)
        with record.phase("eval"):
            time.sleep(0.05)
        with record.phase("train_anomaly", training=True):
            time.sleep(0.05)

    _track(tmp_path, _off(), body)
    [written] = _read(tmp_path)
    phases = json.loads(written["phase_times"])
    assert written["time_train_s"] == pytest.approx(phases["train_denoising"] + phases["train_anomaly"], abs=1e-5)
    assert written["time_eval_s"] == pytest.approx(phases["eval"], abs=1e-5) and written["time_train_s"] >= 0.1


def test_time_to_target_is_the_first_unit_reaching_it(tmp_path):
    experiment = _experiment(metric=Metric("test_accuracy", target=0.9))

    def body(record):
        record.expect_units(3)
        for accuracy in (0.5, 0.91, 0.95):
            record.unit(0.01, val_accuracy=accuracy)

    row = _track(tmp_path, _off(), body, experiment=experiment)
    assert row.target == 0.9 and 0 < row.time_to_target_s <= row.time_total_s


@pytest.mark.parametrize("column", ["run_id", "config", "status", "metric_value"])
def test_the_harness_columns_cannot_be_written_by_an_experiment(tmp_path, column):
    with pytest.raises(AttributeError, match="written by the harness"):
        _track(tmp_path, _off(), lambda record: record.set(**{column: "x"}))
    assert _read(tmp_path)[0]["status"] == "failed"


def test_recording_an_unknown_column_is_an_error(tmp_path):
    with pytest.raises(AttributeError, match="no column 'accuracy_typo'"):
        _track(tmp_path, _off(), lambda record: record.set(accuracy_typo=1))
    [written] = _read(tmp_path)
    assert written["status"] == "failed" and "accuracy_typo" in written["error"]


def test_failed_run_still_leaves_its_record_and_its_traceback_in_the_log(tmp_path):
    def body(record):
        record.unit(1.0, loss=1.0)
        raise RuntimeError("out of memory, say")

    with pytest.raises(RuntimeError):
        _track(tmp_path, _off(), body, log_path=tmp_path / "r1.log")
    [written] = _read(tmp_path)
    assert written["status"] == "failed"
    assert written["error"] == "RuntimeError: out of memory, say"
    assert written["units_run"] == 1 and written["time_total_s"] is not None
    assert "out of memory, say" in (tmp_path / "r1.log").read_text()


def test_a_data_error_is_one_line_on_the_console_without_traceback(tmp_path, capsys):
    def body(record):
        raise data.DataError("cannot read mnist data from /x/mnist.npz: not a zip file. Replace it")

    with pytest.raises(data.DataError):
        _track(tmp_path, _off(), body)
    err = capsys.readouterr().err
    assert err.strip() == "dlbench: error: cannot read mnist data from /x/mnist.npz: not a zip file. Replace it"
    assert _read(tmp_path)[0]["status"] == "failed"


def test_interrupted_run_is_recorded_as_such(tmp_path):
    def body(record):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _track(tmp_path, _off(), body)
    assert _read(tmp_path)[0]["status"] == "interrupted"


def test_artifact_paths_are_under_the_runs_own_directory(tmp_path):
    def body(record):
        record.artifact_path("grid.png").write_bytes(b"png")

    row = _track(tmp_path, _off(), body)
    assert row.artifacts_dir == "artifacts/unit/r1" and (tmp_path / row.artifacts_dir / "grid.png").exists()


class _BrokenOnStart:
    def __init__(self, **settings):
        raise OSError("cannot read power sensors")


class _StopReturnsNone:
    def __init__(self, **settings):
        self.final_emissions_data = None

    def start(self):
        pass

    def stop(self):
        return None


@pytest.mark.parametrize("fake, reason", [
    (_BrokenOnStart, "unavailable: start failed: OSError: cannot read power sensors"),
    (_StopReturnsNone, "unavailable: CodeCarbon stop() returned no measurement"),
])
def test_codecarbon_failure_never_kills_the_run(tmp_path, monkeypatch, fake, reason):
    import codecarbon

    monkeypatch.setattr(codecarbon, "OfflineEmissionsTracker", fake)
    row = _track(tmp_path, tracking.EnergyTracker("FRA", "cpu"), lambda record: record.set(test_accuracy=0.5))
    assert row.status == "ok" and row.test_accuracy == 0.5
    assert row.energy_status == reason
    assert row.energy_kwh is None and row.co2_kg is None
    assert _read(tmp_path)[0]["energy_kwh"] is None


def test_codecarbon_measures_says_how_and_the_forecast_is_checked(tmp_path):
    def body(record):
        record.expect_units(4)
        for _ in range(4):
            record.unit(0.2 if record.units else 0.3)
            sum(range(300_000))

    row = _track(tmp_path, tracking.EnergyTracker("FRA", "cpu"), body)
    assert row.energy_status == "ok"
    assert row.energy_kwh > 0 and row.co2_kg > 0
    assert row.energy_kwh == pytest.approx(row.energy_cpu_kwh + row.energy_gpu_kwh + row.energy_ram_kwh)
    assert "cpu=" in row.energy_method and "ram=" in row.energy_method
    assert row.carbon_country == "FRA" and row.carbon_intensity_g_per_kwh > 0
    assert row.forecast_kwh > 0 and row.forecast_kwh_error is not None and row.forecast_time_error is not None
    settings = json.loads(row.energy_settings)
    assert settings["country_iso_code"] == "FRA" and settings["gpu_ids"] == []


def test_precision_recall_f1_from_counts():
    from dlbench.metrics import precision_recall_f1

    assert precision_recall_f1(3, 4, 6) == pytest.approx({"precision": 0.75, "recall": 0.5, "f1": 0.6})
    assert precision_recall_f1(0, 0, 0) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_ctrl_c_in_a_declared_training_phase_waits_for_the_end_of_the_unit(tmp_path):
    import signal

    from dlbench import tracking

    previous = signal.signal(signal.SIGINT, tracking.STOP.on_interrupt)
    tracking.STOP.requested = False
    row = results.ResultRow(run_id="deferred", experiment="mlp_mnist", variant="numpy", device="cpu")
    experiment = registry.get("mlp_mnist")
    quiet = progress.Progress("t", "epoch", stream=io.StringIO(), interactive=False)
    units_seen = []
    try:
        with pytest.raises(KeyboardInterrupt):
            with tracking.track(row, experiment, tmp_path, data.DataOptions(), tracking.EnergyTracker(
                    "FRA", "cpu", enabled=False), progress=quiet) as record:
                with record.phase("train_anything", training=True):
                    for unit in range(3):
                        if unit == 1:
                            signal.raise_signal(signal.SIGINT)  # Deferred: this unit still finishes.
                        units_seen.append(unit)
                        record.unit(0.01)
    finally:
        signal.signal(signal.SIGINT, previous)
        tracking.STOP.requested = False
    assert units_seen == [0, 1] and row.status == "interrupted" and row.units_run == 2


def test_expected_calibration_error_on_known_inputs():
    from dlbench.metrics import expected_calibration_error

    labels = [1, 1, 0, 0, 0]
    probabilities = [0.9, 0.9, 0.9, 0.4, 0.4]  # The last two predict 0 with confidence 0.6, both right.
    # Bin (0.8, 0.9]: accuracy 2/3, confidence 0.9, weight 3/5. Bin (0.5, 0.6]: accuracy 1, confidence 0.6, weight 2/5.
    expected = 3 / 5 * abs(2 / 3 - 0.9) + 2 / 5 * abs(1.0 - 0.6)
    assert expected_calibration_error(labels, probabilities) == pytest.approx(expected)
    assert expected_calibration_error([1, 0], [1.0, 0.0]) == pytest.approx(0.0)


def test_fit_temperature_recovers_a_known_over_confidence():
    from dlbench.metrics import binary_log_loss, fit_temperature, scaled_probabilities

    rng = np.random.default_rng(1)
    z = rng.normal(0, 2, 50_000)
    labels = rng.random(len(z)) < 1 / (1 + np.exp(-z))
    answered = 1 / (1 + np.exp(-z / 0.5))  # Over-confident by a factor 2.
    temperature = fit_temperature(labels, answered)
    assert temperature == pytest.approx(2.0, rel=0.05)
    assert binary_log_loss(labels, scaled_probabilities(answered, temperature)) < binary_log_loss(labels, answered)
    assert binary_log_loss([1, 0], [0.5, 0.5]) == pytest.approx(np.log(2))
