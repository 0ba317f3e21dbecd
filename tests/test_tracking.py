import json

import pytest

from dlbench import results, tracking
from dlbench.data import DataOptions


def _row():
    return results.ResultRow(run_id="r1", experiment="unit", variant="v", device="cpu", seed=0)


def _track(tmp_path, energy, body):
    row = _row()
    with tracking.track(row, tmp_path, DataOptions(), energy) as run:
        body(run)
    return row


def test_successful_run_writes_a_complete_row_and_history(tmp_path):
    def body(run):
        with run.phase("train"):
            for seconds in (2.0, 1.0, 1.2, 0.8):
                run.record_epoch(seconds, loss=0.5, accuracy=0.9, val_accuracy=0.85)
        run.record(n_train=100, test_accuracy=0.8, test_loss=0.4)
        run.record_metrics(f1=0.75)

    row = _track(tmp_path, tracking.EnergyTracker("FRA", "cpu", enabled=False), body)
    [written] = results.read_rows(tmp_path / "unit.csv")
    assert written["status"] == "ok" and written["energy_status"] == "disabled"
    assert float(written["time_first_epoch_s"]) == 2.0
    assert float(written["time_steady_epoch_s"]) == 1.0  # Median of the epochs after the first.
    assert float(written["train_samples_per_s"]) == pytest.approx(100.0)
    assert written["epochs_run"] == "4" and float(written["validation_accuracy"]) == 0.85
    assert json.loads(written["extra_metrics"]) == {"f1": 0.75}
    assert float(written["time_train_s"]) >= 0 and float(written["time_total_s"]) >= 0
    history = (tmp_path / row.history_file).read_text().splitlines()
    assert history[0].startswith("epoch,seconds") and len(history) == 5


def test_recording_an_unknown_column_is_an_error(tmp_path):
    with pytest.raises(AttributeError, match="no column 'accuracy_typo'"):
        _track(tmp_path, tracking.EnergyTracker("FRA", "cpu", enabled=False),
               lambda run: run.record(accuracy_typo=1))
    [written] = results.read_rows(tmp_path / "unit.csv")
    assert written["status"] == "failed" and "accuracy_typo" in written["error"]


def test_failed_run_still_leaves_its_row(tmp_path):
    def body(run):
        run.record_epoch(1.0, loss=1.0)
        raise RuntimeError("out of memory, say")

    with pytest.raises(RuntimeError):
        _track(tmp_path, tracking.EnergyTracker("FRA", "cpu", enabled=False), body)
    [written] = results.read_rows(tmp_path / "unit.csv")
    assert written["status"] == "failed"
    assert written["error"] == "RuntimeError: out of memory, say"
    assert written["epochs_run"] == "1" and written["time_total_s"] != ""


def test_interrupted_run_is_recorded_as_such(tmp_path):
    def body(run):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _track(tmp_path, tracking.EnergyTracker("FRA", "cpu", enabled=False), body)
    assert results.read_rows(tmp_path / "unit.csv")[0]["status"] == "interrupted"


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
    row = _track(tmp_path, tracking.EnergyTracker("FRA", "cpu"), lambda run: run.record(test_accuracy=0.5))
    assert row.status == "ok" and row.test_accuracy == 0.5
    assert row.energy_status == reason
    assert row.energy_kwh is None and row.co2_kg is None
    assert results.read_rows(tmp_path / "unit.csv")[0]["energy_kwh"] == ""


def test_codecarbon_measures_and_says_how(tmp_path):
    row = _track(tmp_path, tracking.EnergyTracker("FRA", "cpu"), lambda run: sum(range(200_000)))
    assert row.energy_status == "ok"
    assert row.energy_kwh > 0 and row.co2_kg > 0
    assert row.energy_kwh == pytest.approx(row.energy_cpu_kwh + row.energy_gpu_kwh + row.energy_ram_kwh)
    assert "cpu=" in row.energy_method and "ram=" in row.energy_method
    assert row.carbon_country == "FRA" and row.carbon_intensity_g_per_kwh > 0
    settings = json.loads(row.energy_settings)
    assert settings["country_iso_code"] == "FRA" and settings["gpu_ids"] == []
