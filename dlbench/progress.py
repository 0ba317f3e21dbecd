"""A live progress display for one run and a forecast of the run's total time, kWh and CO2.

The worker process imports this module before it starts training, so it uses the standard library
only: it never imports TensorFlow, Keras, pandas or CodeCarbon (``energy_so_far`` only reads a
tracker object that the caller already made).
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
import sys
import time

LINE_WIDTH = 100  # unit lines drop metrics rather than wrap in a 100-column terminal
MAX_METRICS = 8
BAR_CELLS = 20
REDRAW_INTERVAL_S = 0.1  # at most 10 bar redraws a second: a redraw per batch would slow training


@dataclasses.dataclass(frozen=True)
class Forecast:
    after_unit: int  # number of units done when the forecast was made
    time_s: float  # whole run, from the run's start
    kwh: float | None
    co2_kg: float | None
    provisional: bool  # made from the first unit only, which includes tracing/compilation


def make_forecast(unit_seconds: list[float], total_units: int, elapsed_s: float,
                  energy_kwh: float | None = None, co2_kg: float | None = None,
                  tail_s: float = 0.0, done: int | None = None) -> Forecast | None:
    """Forecast the whole run after ``len(unit_seconds)`` units, ``elapsed_s`` seconds after its start.

    The steady duration of a unit is the median of units 2 to k, because the first unit also pays
    for tracing and compilation and the median ignores a stray slow unit. With one unit done, the
    first unit is all there is: its duration is used and the forecast is marked provisional, so it
    tends to overestimate. The forecast time is the time elapsed so far (data loading and model
    build included) plus the remaining units at the steady duration plus ``tail_s``, an estimate of
    the evaluation after training. Energy assumes that the average power so far (``energy_kwh``
    over ``elapsed_s``) holds for the remaining time, tail included; since the time so far includes
    data loading and model build, which usually draw less power, energy tends to be underestimated
    a little. CO2 is scaled by the same factor as energy, which amounts to applying the carbon
    intensity so far to the forecast energy. Units done beyond ``total_units`` leave none to go. The
    function returns None when the total number of units is unknown or not positive, or when no
    unit is done yet; energy and CO2 are None when they were not given or no time has elapsed.
    ``done`` (default: one unit per duration) is the number of units done when each duration stands
    for a group of units that ran together (the duration is then the group's mean per unit).
    """
    done = len(unit_seconds) if done is None else done
    if not total_units or total_units <= 0 or done == 0 or not unit_seconds:
        return None
    provisional = len(unit_seconds) < 2
    steady_s = unit_seconds[0] if provisional else statistics.median(unit_seconds[1:])
    remaining_s = max(total_units - done, 0) * steady_s + tail_s
    scale = (elapsed_s + remaining_s) / elapsed_s if elapsed_s > 0 else None
    kwh = energy_kwh * scale if energy_kwh is not None and scale is not None else None
    co2 = co2_kg * scale if co2_kg is not None and scale is not None else None
    return Forecast(after_unit=done, time_s=elapsed_s + remaining_s, kwh=kwh, co2_kg=co2,
                    provisional=provisional)


def relative_error(forecast: float | None, actual: float | None) -> float | None:
    """(forecast - actual) / actual; None when either is missing or ``actual`` is not positive."""
    if forecast is None or actual is None or actual <= 0:
        return None
    return (forecast - actual) / actual


def energy_so_far(tracker) -> tuple[float, float] | None:
    """Total (kWh, kg CO2) of a running CodeCarbon tracker up to now, without stopping it; None on any failure.

    This reads CodeCarbon 3.3 internals on purpose. ``flush()`` would take the same fresh
    measurement, but it also builds a full EmissionsData record, moves the baseline that the
    outputs' deltas are computed from, hands the record to every output handler (none with
    output_methods=[], unless a config file adds an emissions_endpoint, which adds an HTTP output)
    and returns only the CO2. Measured on a CPU machine, after a first call of about 0.1 s that
    loads the carbon intensity data, one call takes about 0.6 ms (flush() about 0.7 ms).
    """
    try:
        if tracker is None or getattr(tracker, "_start_time", None) is None:
            return None  # never started, or already stopped
        # The scheduler measures only every measure_power_secs; a unit may be shorter, so measure
        # now (skipped if the last sample is under 50 ms old). Like flush(), this can rarely race
        # the scheduler's own measurement and count one short interval twice.
        measure = getattr(tracker, "_measure_power_and_energy_if_stale", None)
        (measure or tracker._measure_power_and_energy)()
        tracker._update_emissions()  # converts the energy not yet covered into CO2
        kwh = float(tracker._total_energy.kWh)
        co2_kg = float(tracker._total_emissions)
        return (kwh, co2_kg) if math.isfinite(kwh) and math.isfinite(co2_kg) else None
    except Exception:
        return None


def format_duration(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.3g} s"
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def format_clock(seconds: float) -> str:
    hours, rest = divmod(int(max(seconds, 0.0)), 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def format_kwh(kwh: float) -> str:
    return f"{kwh:.1e} kWh" if abs(kwh) < 0.01 else f"{kwh:.3g} kWh"


def format_co2(kg: float) -> str:
    if abs(kg) < 1e-3:
        return f"{kg * 1e6:.3g} mg CO2"
    return f"{kg * 1e3:.3g} g CO2" if abs(kg) < 1 else f"{kg:.3g} kg CO2"


class Progress:
    """Prints one line per unit of a run and, on a terminal, a bar redrawn inside long units.

    Make it when the run starts: the elapsed time shown inside the first unit counts from then.
    The environment variable DLBENCH_PROGRESS (bar, lines or off) overrides ``interactive``, which
    otherwise defaults to whether the stream is a terminal; off prints nothing at all.
    """

    def __init__(self, label: str, unit: str, stream=None, interactive: bool | None = None,
                 clock=time.monotonic):
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stdout
        mode = os.environ.get("DLBENCH_PROGRESS", "").strip().lower()
        self.enabled = mode != "off"
        if mode in ("bar", "lines"):
            interactive = mode == "bar"
        elif interactive is None:
            isatty = getattr(self.stream, "isatty", None)
            interactive = bool(isatty and isatty())
        self.interactive = interactive
        self.clock = clock
        self.total_units: int | None = None
        self.forecast: Forecast | None = None
        self.units_done = 0
        # Elapsed time inside a unit = elapsed at the last unit_done + clock time since then.
        self._anchor_clock, self._anchor_elapsed_s = clock(), 0.0
        self._first_batch: tuple[float, int] | None = None  # (clock, done) at the unit's first batch
        self._last_draw: float | None = None
        self._bar_width = 0  # characters of the bar now on screen, 0 when none
        self._printed_first_forecast = self._printed_steady_forecast = False

    def set_total(self, total_units: int | None) -> None:
        self.total_units = total_units if total_units and total_units > 0 else None

    def _unit_name(self, index: int) -> str:
        return f"{self.unit} {index}/{self.total_units}" if self.total_units else f"{self.unit} {index}"

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()  # the display is live even when the stream is a pipe to a log

    def _clear_bar(self) -> None:
        if self._bar_width:
            self._write("\r" + " " * self._bar_width + "\r")
            self._bar_width = 0

    def batch(self, done: int, total: int | None) -> None:
        """Redraw the bar inside a unit after ``done`` of ``total`` batches (terminal only)."""
        if not (self.enabled and self.interactive):
            return
        now = self.clock()
        if self._first_batch is None or done < self._first_batch[1]:
            self._first_batch = (now, done)  # timing from here excludes what came before the unit
        if self._last_draw is not None and now - self._last_draw < REDRAW_INTERVAL_S:
            return
        self._last_draw = now
        elapsed_s = self._anchor_elapsed_s + (now - self._anchor_clock)
        index = self.units_done + 1
        filled = min(BAR_CELLS, BAR_CELLS * done // total) if total else 0
        counts = f"[{'#' * filled}{'-' * (BAR_CELLS - filled)}] {done}/{total}" if total else str(done)
        line = f"  {self._unit_name(index)} {counts}  elapsed {format_clock(elapsed_s)}"
        eta_s = None
        if self.forecast is not None:
            eta_s = self.forecast.time_s - elapsed_s
        elif total and done > self._first_batch[1]:
            # No forecast yet (first unit, or total unknown): extrapolate this unit's batch pace.
            first_clock, first_done = self._first_batch
            unit_s = (now - first_clock) / (done - first_done) * total
            eta_s = (total - done) / total * unit_s
            if self.total_units:
                eta_s += max(self.total_units - index, 0) * unit_s
        if eta_s is not None:
            line += f"  ETA {format_clock(eta_s)}"
        # Pad to the previous width so that a shorter line leaves no characters behind.
        self._write("\r" + line.ljust(self._bar_width))
        self._bar_width = max(self._bar_width, len(line))

    def unit_done(self, index: int, seconds: float, elapsed_s: float, metrics: dict,
                  forecast: Forecast | None) -> None:
        """Print the line of unit ``index`` (1-based), which took ``seconds``, and any new forecast."""
        self.units_done = index
        self._anchor_clock, self._anchor_elapsed_s = self.clock(), elapsed_s
        self._first_batch = self._last_draw = None
        if forecast is not None:
            self.forecast = forecast
        if not self.enabled:
            return
        self._clear_bar()
        # Indented under the run's "[dlbench] run ..." line, so that four metrics fit in 100 columns.
        head = f"  {self._unit_name(index)} {format_duration(seconds)} |"
        tail = (f" | ETA {format_duration(self.forecast.time_s - elapsed_s)}" if self.forecast is not None
                else f" | elapsed {format_duration(elapsed_s)}")
        numbers = [f" {name} {value:.4g}" for name, value in metrics.items()
                   if isinstance(value, (int, float)) and not isinstance(value, bool)]
        for text in numbers[:MAX_METRICS]:
            if len(head) + len(text) + len(tail) > LINE_WIDTH:
                break  # keep the metrics in order: drop the rest rather than wrap
            head += text
        self._write(head + tail + "\n")
        steady_news = forecast is not None and not forecast.provisional and not self._printed_steady_forecast
        if forecast is not None and (not self._printed_first_forecast or steady_news):
            self._write(self.forecast_line(forecast) + "\n")
            self._printed_first_forecast = True
            self._printed_steady_forecast |= not forecast.provisional

    def forecast_line(self, forecast: Forecast) -> str:
        parts = [f"total {format_duration(forecast.time_s)}"]
        parts += [format_kwh(forecast.kwh)] if forecast.kwh is not None else []
        parts += [format_co2(forecast.co2_kg)] if forecast.co2_kg is not None else []
        basis = (f"provisional: first {self.unit} includes compilation" if forecast.provisional
                 else f"from steady {self.unit}s")
        return f"[dlbench] forecast after {self.unit} {forecast.after_unit}: {', '.join(parts)} ({basis})"

    def close(self) -> None:
        """End the run's display: clear any bar so that what follows starts on a clean line."""
        if self.enabled:
            self._clear_bar()
