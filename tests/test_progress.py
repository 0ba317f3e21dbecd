"""The forecast, the progress display in its three modes, and reading a real CodeCarbon tracker mid-run."""

import io
import logging
import subprocess
import sys
import time

import pytest

from dlbench import progress
from dlbench.progress import Forecast, Progress, energy_so_far, make_forecast, relative_error


@pytest.fixture(autouse=True)
def no_progress_override(monkeypatch):
    monkeypatch.delenv("DLBENCH_PROGRESS", raising=False)


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_forecast_excludes_the_first_unit_and_takes_the_median():
    # The compile-heavy first unit (10 s) is ignored; median of 2, 3, 100 is 3.
    forecast = make_forecast([10.0, 2.0, 3.0, 100.0], total_units=10, elapsed_s=120.0)
    assert forecast == Forecast(after_unit=4, time_s=120.0 + 6 * 3.0, kwh=None, co2_kg=None,
                                provisional=False)


def test_forecast_after_one_unit_is_provisional_and_adds_the_tail():
    forecast = make_forecast([10.0], total_units=5, elapsed_s=12.0, tail_s=4.0)
    assert forecast.provisional
    assert forecast.after_unit == 1
    assert forecast.time_s == pytest.approx(12.0 + 4 * 10.0 + 4.0)


def test_forecast_scales_energy_and_co2_by_the_average_power_so_far():
    # 20 s elapsed, 20 s to go (2 units of 8 s + 4 s tail): energy and CO2 double.
    forecast = make_forecast([5.0, 8.0], total_units=4, elapsed_s=20.0, energy_kwh=0.002,
                             co2_kg=1e-4, tail_s=4.0)
    assert forecast.time_s == pytest.approx(40.0)
    assert forecast.kwh == pytest.approx(0.004)
    assert forecast.co2_kg == pytest.approx(2e-4)
    # The CO2 forecast keeps the carbon intensity so far.
    assert forecast.co2_kg / forecast.kwh == pytest.approx(1e-4 / 0.002)


def test_forecast_when_all_units_are_done_is_the_elapsed_time_plus_tail():
    forecast = make_forecast([5.0, 4.0, 4.0], total_units=3, elapsed_s=15.0, energy_kwh=0.01)
    assert forecast.time_s == pytest.approx(15.0)
    assert forecast.kwh == pytest.approx(0.01)


@pytest.mark.parametrize("unit_seconds, total", [([], 10), ([1.0], 0), ([1.0], None), ([1.0], -3)])
def test_no_forecast_without_units_or_total(unit_seconds, total):
    assert make_forecast(unit_seconds, total, elapsed_s=5.0) is None


def test_forecast_without_elapsed_time_has_no_energy():
    forecast = make_forecast([1.0], total_units=2, elapsed_s=0.0, energy_kwh=0.0, co2_kg=0.0)
    assert forecast.kwh is None and forecast.co2_kg is None


def test_relative_error():
    assert relative_error(110.0, 100.0) == pytest.approx(0.1)
    assert relative_error(90.0, 100.0) == pytest.approx(-0.1)
    assert relative_error(None, 100.0) is None
    assert relative_error(1.0, None) is None
    assert relative_error(1.0, 0.0) is None
    assert relative_error(1.0, -2.0) is None


def run_three_epochs(display):
    display.set_total(3)
    forecasts = [make_forecast([2.0], 3, 3.0, energy_kwh=1e-5, co2_kg=5e-7),
                 make_forecast([2.0, 1.0], 3, 4.0, energy_kwh=2e-5, co2_kg=1e-6),
                 make_forecast([2.0, 1.0, 1.0], 3, 5.0, energy_kwh=3e-5, co2_kg=1.5e-6)]
    for index, forecast in enumerate(forecasts, start=1):
        display.batch(1, 10)
        display.unit_done(index, 1.0 if index > 1 else 2.0, 2.0 + index, {"loss": 0.312149, "accuracy": 0.912},
                          forecast)
    display.close()


def test_lines_mode_writes_unit_lines_and_two_forecasts():
    stream = io.StringIO()
    run_three_epochs(Progress("mlp", "epoch", stream=stream, interactive=False))
    assert stream.getvalue().splitlines() == [
        "  epoch 1/3 2 s | loss 0.3121 accuracy 0.912 | ETA 4 s",
        "[dlbench] forecast after epoch 1: total 7 s, 2.3e-05 kWh, 1.17 mg CO2"
        " (provisional: first epoch includes compilation)",
        "  epoch 2/3 1 s | loss 0.3121 accuracy 0.912 | ETA 1 s",
        "[dlbench] forecast after epoch 2: total 5 s, 2.5e-05 kWh, 1.25 mg CO2 (from steady epochs)",
        "  epoch 3/3 1 s | loss 0.3121 accuracy 0.912 | ETA 0 s",
    ]
    assert "\r" not in stream.getvalue()


def test_unit_line_drops_metrics_rather_than_wrap():
    stream = io.StringIO()
    display = Progress("mlp", "step", stream=stream, interactive=False)
    metrics = {f"metric_number_{i}": i / 7 for i in range(20)} | {"label": "text is skipped"}
    display.unit_done(1, 0.5, 0.7, metrics, None)
    line = stream.getvalue().rstrip("\n")
    assert len(line) <= 100
    assert "metric_number_0 0" in line and "metric_number_19" not in line and "text" not in line
    assert line.startswith("  step 1 0.5 s |") and line.endswith("| elapsed 0.7 s")
    few = io.StringIO()
    Progress("m", "step", stream=few, interactive=False).unit_done(1, 1.0, 1.0, {f"m{i}": 1.0 for i in range(12)}, None)
    assert few.getvalue().count(" m") == 8  # at most 8 metrics even when they would fit


def test_readable_units():
    assert progress.format_duration(45.04) == "45 s"
    assert progress.format_duration(150) == "2.5 min"
    assert progress.format_duration(5400) == "1.5 h"
    assert progress.format_co2(6.8e-6) == "6.8 mg CO2"
    assert progress.format_co2(0.0123) == "12.3 g CO2"
    assert progress.format_co2(2.5) == "2.5 kg CO2"
    assert progress.format_kwh(1.23e-4) == "1.2e-04 kWh"
    assert progress.format_kwh(0.5) == "0.5 kWh"
    assert progress.format_clock(112) == "1:52" and progress.format_clock(3725) == "1:02:05"


def test_bar_mode_redraws_at_most_ten_times_a_second():
    stream, clock = io.StringIO(), FakeClock()
    display = Progress("cnn", "epoch", stream=stream, interactive=True, clock=clock)
    display.set_total(12)
    for done in range(1, 845):
        clock.now += 0.001  # 844 batches in 0.844 s: 9 redraws, one every 0.1 s
        display.batch(done, 844)
    text = stream.getvalue()
    assert text.count("\r") == 9
    assert "\n" not in text
    last = text.split("\r")[-1]
    # 801 batches done after 0.8 s from the first batch: 43 left in this epoch plus 11 epochs of 0.844 s.
    assert last.startswith("  epoch 1/12 [##################--] 801/844  elapsed 0:00  ETA 0:09")
    display.unit_done(1, 0.9, 1.0, {"loss": 1.0}, None)
    assert stream.getvalue()[len(text):].startswith("\r" + " " * len(last) + "\r  epoch 1/12")


def test_bar_eta_comes_from_the_forecast_and_close_clears_the_bar():
    stream, clock = io.StringIO(), FakeClock()
    display = Progress("cnn", "epoch", stream=stream, interactive=True, clock=clock)
    display.set_total(12)
    display.unit_done(1, 10.0, 30.0, {}, Forecast(1, 141.0, None, None, True))
    clock.now += 11.0
    before = len(stream.getvalue())
    display.batch(312, 844)
    assert stream.getvalue()[before:] == "\r  epoch 2/12 [#######-------------] 312/844  elapsed 0:41  ETA 1:40"
    display.close()
    assert stream.getvalue().endswith("\r" + " " * 67 + "\r")


def test_off_mode_writes_nothing(monkeypatch):
    monkeypatch.setenv("DLBENCH_PROGRESS", "off")
    stream = io.StringIO()
    run_three_epochs(Progress("mlp", "epoch", stream=stream, interactive=True))
    assert stream.getvalue() == ""


def test_environment_chooses_bar_or_lines(monkeypatch):
    monkeypatch.setenv("DLBENCH_PROGRESS", "bar")
    assert Progress("x", "step", stream=io.StringIO()).interactive
    monkeypatch.setenv("DLBENCH_PROGRESS", "lines")
    assert not Progress("x", "step", stream=io.StringIO(), interactive=True).interactive
    monkeypatch.delenv("DLBENCH_PROGRESS")
    assert not Progress("x", "step", stream=io.StringIO()).interactive  # a StringIO is no terminal


def test_import_loads_no_heavy_library():
    code = ("import sys, dlbench.progress; heavy = {'tensorflow', 'keras', 'pandas', 'codecarbon'};"
            "print(sorted(heavy & {name.split('.')[0] for name in sys.modules}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_energy_so_far_of_nothing_or_a_broken_tracker_is_none():
    assert energy_so_far(None) is None
    assert energy_so_far(object()) is None

    class Broken:
        _start_time = 1.0

        def _measure_power_and_energy_if_stale(self):
            raise RuntimeError("no sensor")

    assert energy_so_far(Broken()) is None


def busy(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_energy_so_far_reads_a_running_tracker(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # any file CodeCarbon wrote would land here
    try:
        from codecarbon import OfflineEmissionsTracker

        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        tracker = OfflineEmissionsTracker(
            country_iso_code="FRA", measure_power_secs=5, output_methods=[], allow_multiple_runs=True,
            log_level="error", tracking_mode="machine", gpu_ids=[], pue=1.0, project_name="test")
        tracker.start()
    except Exception as error:
        pytest.skip(f"CodeCarbon cannot start here: {error}")
    try:
        assert energy_so_far(tracker) is not None  # the first call also loads the intensity data
        busy(0.5)
        first = energy_so_far(tracker)
        busy(0.5)
        started = time.perf_counter()
        second = energy_so_far(tracker)
        cost_s = time.perf_counter() - started
    finally:
        emissions = tracker.stop()
    assert first is not None and second is not None
    assert second[0] > first[0] > 0
    assert second[1] > first[1] > 0
    assert cost_s < 0.05
    # stop() still works after the reads and counts at least what was read.
    assert emissions is not None and emissions >= second[1]
    assert tracker.final_emissions_data.energy_consumed >= second[0]
    assert energy_so_far(tracker) is None  # a stopped tracker is not read
    assert list(tmp_path.iterdir()) == []
