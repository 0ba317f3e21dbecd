"""Timing and energy measurement around one run, written so that measurement never kills a run.

``track(row, ...)`` is the one place a run is measured: it starts a CodeCarbon
``OfflineEmissionsTracker`` (no network, explicit country), hands the experiment a ``Record`` for its
phase timers, per-unit history, metrics and artifacts, shows progress and a forecast of the whole
run, and when the block ends, normally or not, fills in the status, timings and energy columns and
writes the run's record.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import math
import os
import statistics
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

from dlbench import data as data_module
from dlbench import machine
from dlbench import progress as progress_module
from dlbench import results
from dlbench.experiment import Experiment

DEFAULT_COUNTRY = "FRA"  # The course is taught in France; override with --country / DLBENCH_COUNTRY.
MEASURE_POWER_SECONDS = 5.0


# --------------------------------------------------------------------------------------------------
# Energy (CodeCarbon)
# --------------------------------------------------------------------------------------------------


class EnergyTracker:
    """A thin wrapper over CodeCarbon whose start() and stop() never raise.

    Every CodeCarbon argument is passed explicitly (CodeCarbon otherwise fills missing ones from
    ~/.codecarbon.config, ./.codecarbon.config and CODECARBON_* variables) and recorded in the row.
    """

    def __init__(self, country: str, device: str, enabled: bool = True, project_name: str = "dlbench",
                 tracking_mode: str = "machine"):
        self.enabled = enabled
        self.device = device
        self.settings = {
            "country_iso_code": country,
            "project_name": project_name,
            "measure_power_secs": MEASURE_POWER_SECONDS,
            # "machine": the whole machine's energy (the run has it to itself); "process": only this
            # process and its children, for runs sharing a machine (see RunSpec.energy_tracking_mode).
            "tracking_mode": tracking_mode,
            # A CPU run must not count an idle GPU's power; a GPU run measures GPU 0 through NVML.
            "gpu_ids": [0] if device == "gpu" else [],
            "pue": 1.0,
            # No CSV, API, logger or Prometheus output from CodeCarbon: dlbench writes the row itself.
            "output_methods": [],
            # dlbench guarantees one tracker per run process; CodeCarbon's lock would otherwise make
            # two experiments started at once fail instead of measuring.
            "allow_multiple_runs": True,
            "log_level": "error",
        }
        self._tracker = None
        self._error = ""
        self.ignored_external_config = sorted(
            [name for name in os.environ if name.startswith("CODECARBON_")]
            + [str(p) for p in (Path.home() / ".codecarbon.config", Path(".codecarbon.config")) if p.exists()]
        )

    def start(self) -> None:
        if not self.enabled:
            return
        try:
            from codecarbon import OfflineEmissionsTracker

            # Importing CodeCarbon sets its logger to INFO, and its constructor logs before it applies
            # log_level: lower the level in between to keep the user's console readable.
            logging.getLogger("codecarbon").setLevel(logging.ERROR)

            self._tracker = OfflineEmissionsTracker(**self.settings)
            self._tracker.start()
            # The first mid-run reading loads CodeCarbon's carbon data (~0.1 s): do it now, before
            # the run's clocks start, so the forecast after the first unit costs under a millisecond.
            self.so_far()
        except Exception as error:
            self._tracker = None
            self._error = f"start failed: {type(error).__name__}: {error}"

    def stop(self, row: results.ResultRow) -> None:
        """Fill the energy columns of ``row``; on any failure say why instead of raising."""
        row.carbon_country = self.settings["country_iso_code"]
        settings = dict(self.settings)
        if self.ignored_external_config:
            settings["external_config_present"] = self.ignored_external_config
        row.energy_settings = json.dumps(settings, sort_keys=True)
        if not self.enabled:
            row.energy_status = "disabled"
            return
        if self._tracker is None:
            row.energy_status = f"unavailable: {self._error}"
            return
        try:
            emissions = self._tracker.stop()
            data = getattr(self._tracker, "final_emissions_data", None)
            if emissions is None or data is None:
                row.energy_status = "unavailable: CodeCarbon stop() returned no measurement"
                return
            row.energy_cpu_kwh = float(data.cpu_energy)
            row.energy_gpu_kwh = float(data.gpu_energy)
            row.energy_ram_kwh = float(data.ram_energy)
            row.energy_kwh = float(data.energy_consumed)
            row.co2_kg = float(emissions)
            if row.energy_kwh > 0:
                row.carbon_intensity_g_per_kwh = 1000.0 * row.co2_kg / row.energy_kwh
            row.energy_method = self._describe_method()
            row.energy_status = "ok"
        except Exception as error:
            row.energy_status = f"unavailable: stop failed: {type(error).__name__}: {error}"

    def so_far(self) -> tuple[float, float] | None:
        """(kWh, kg CO2) since start, read without stopping the tracker; None when not measuring."""
        if self._tracker is None:
            return None
        return progress_module.energy_so_far(self._tracker)

    def _describe_method(self) -> str:
        """Say how each part was obtained, e.g. 'cpu=cpu_load estimate (TDP 35 W); ram=...; gpu=NVML'."""
        parts = []
        for hardware in getattr(self._tracker, "_hardware", []):
            kind = type(hardware).__name__
            if kind == "CPU":
                mode = getattr(hardware, "_mode", "unknown")
                if mode in ("intel_rapl", "windows_emi", "intel_power_gadget"):
                    parts.append(f"cpu={mode} (measured)")
                else:
                    tdp = getattr(hardware, "_tdp", None)
                    generic = " generic" if getattr(hardware, "_is_generic_tdp", False) else ""
                    parts.append(f"cpu={mode} estimate (TDP {tdp} W{generic})")
            elif kind == "RAM":
                parts.append("ram=estimate from memory size")
            elif kind == "GPU":
                parts.append("gpu=NVML (measured)")
            else:
                parts.append(kind.lower())
        return "; ".join(parts) or "unknown"




# --------------------------------------------------------------------------------------------------
# What an experiment sees of the harness: the run's record
# --------------------------------------------------------------------------------------------------

# Columns only the harness writes: who ran what, with which configuration and data.
HARNESS_COLUMNS = frozenset({
    "run_id", "timestamp_utc", "experiment", "variant", "device", "repeat", "seed", "group_id", "study",
    "study_point", "status", "error", "config", "jit_compile", "dataset", "dataset_source", "dataset_origin",
    "metric", "metric_direction", "metric_value", "progress_unit", "units_run", "history_file",
    "artifacts_dir", "log_file", "machine", "machine_fingerprint", "concurrent", "lock_wait_s",
    "cpu_other_share", "cpu_other_share_max", "cpu_own_share", "load_max", "contended", "contention_note"})


class StopRequest:
    """Ctrl-C during training stops the run at the end of the current unit instead of inside
    TensorFlow: a KeyboardInterrupt raised while TensorFlow executes a step can crash the worker
    (SIGSEGV, seen in CI) before it writes its record. A second Ctrl-C stops at once."""

    def __init__(self):
        self.training = False  # Inside a training phase: defer the interrupt to the end of the unit.
        self.requested = False

    def on_interrupt(self, signum, frame):
        if self.training and not self.requested:
            self.requested = True
            print("\n[dlbench] stopping at the end of this unit (Ctrl-C again to stop now)", file=sys.stderr,
                  flush=True)
            return
        raise KeyboardInterrupt

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt


STOP = StopRequest()


class RunSkipped(Exception):
    """Raised by an experiment that cannot do its work without something only the user can provide
    (pretrained weights that cannot be downloaded here): the record says ``skipped`` and why, in one
    line, and the run ends at once without a traceback."""


class Record:
    """One run as the experiment fills it: phases, data, per-unit history, metrics, artifacts.

    ``unit(seconds, **metrics)`` logs one epoch, episode or step and drives the progress display and
    the forecast; ``phase(name)`` times any named phase; ``artifact_path(name)`` gives a file under
    ``results/artifacts/<experiment>/<run_id>/`` for figures the experiment writes."""

    def __init__(self, row: results.ResultRow, experiment: Experiment, results_dir: Path,
                 data_options: data_module.DataOptions, energy: "EnergyTracker",
                 progress: progress_module.Progress | None = None):
        self.row = row
        self.experiment = experiment
        self.seed = row.seed
        self.device = row.device
        self.results_dir = Path(results_dir)
        self.data_options = data_options
        self.energy = energy
        self.progress = progress or progress_module.Progress(
            f"{row.experiment}/{row.variant}/{row.device}", experiment.progress_unit, stream=sys.stdout)
        self.units: list[dict] = []
        self.extra_metrics: dict = {}
        self.phase_times: dict[str, float] = {}
        self.training_seconds = 0.0  # Every training=True phase (time_train_s).
        self.forecast: progress_module.Forecast | None = None
        self.items_per_unit: float | None = None
        self.started = time.perf_counter()

    # ---------------------------------------------------------------------------------- clocks
    def synchronize(self) -> None:
        """GPU work is asynchronous: wait for it before reading a clock."""
        if self.device == "gpu":
            import tensorflow as tf

            tf.test.experimental.sync_devices()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @contextmanager
    def phase(self, name: str, training: bool = False):
        """Time one phase; any name is fine (data, build, train, eval, rollout, ...). A phase entered
        twice (loading, then preparing the data) adds up. data/build/eval also have columns.
        ``training=True`` declares a phase that trains in units: Ctrl-C there waits for the end of the
        current unit (StopRequest), whatever the phase is called, and its time counts in time_train_s
        (the sum of every training phase: train_anomaly alone had left the column empty)."""
        start = time.perf_counter()
        STOP.training = training
        try:
            yield
            if training:
                STOP.check()  # A unit-less training phase stops at its end at the latest.
        finally:
            STOP.training = False
            self.synchronize()
            seconds = time.perf_counter() - start
            self.phase_times[name] = self.phase_times.get(name, 0.0) + seconds
            column = f"time_{name}_s"
            if training:
                self.training_seconds += seconds
                self.row.time_train_s = self.training_seconds
            elif column in results.COLUMNS:
                setattr(self.row, column, self.phase_times[name])

    # ------------------------------------------------------------------------------------ data
    def load_data(self, name: str) -> data_module.Dataset:
        with self.phase("data"):
            dataset = data_module.load(name, self.data_options)
        self.row.dataset = dataset.name
        self.row.dataset_source = dataset.source
        self.row.dataset_origin = dataset.origin
        self.row.n_test = len(dataset.x_test)
        return dataset

    def generated_data(self, name: str, origin: str) -> None:
        """For topics whose data the run generates itself (games of an environment, drawn from seeds):
        the record says so instead of naming a dataset file."""
        self.row.dataset, self.row.dataset_source, self.row.dataset_origin = name, "generated", origin

    # --------------------------------------------------------------------------------- metrics
    def set(self, **fields) -> None:
        """Set row columns the experiment measures (parameters, test_accuracy, n_train, ...)."""
        for name, value in fields.items():
            if name in HARNESS_COLUMNS:
                raise AttributeError(f"column '{name}' is written by the harness, not the experiment")
            if not hasattr(self.row, name):
                raise AttributeError(f"ResultRow has no column '{name}'")
            setattr(self.row, name, value)

    def add_metrics(self, **metrics) -> None:
        """Further metrics (F1, Dice, FCD, ...) for the row's extra_metrics JSON."""
        self.extra_metrics.update({key: float(value) for key, value in metrics.items()})

    def artifact_path(self, name: str) -> Path:
        """A path for a file this run writes (a figure, a grid, a curve), directory created."""
        directory = self.results_dir / "artifacts" / self.row.experiment / self.row.run_id
        directory.mkdir(parents=True, exist_ok=True)
        self.row.artifacts_dir = str(directory.relative_to(self.results_dir))
        return directory / name

    # -------------------------------------------------------------------------------- progress
    def expect_units(self, total: int, items_per_unit: float | None = None) -> None:
        """How many units the run plans, and how many items (images, tokens...) one unit processes."""
        self.row.units_planned = int(total)
        self.items_per_unit = items_per_unit
        self.progress.set_total(int(total))

    def batch(self, done: int, total: int | None) -> None:
        """Progress inside a long unit (a bar on a terminal)."""
        self.progress.batch(done, total)

    def unit(self, seconds: float, items: float | None = None, count: int = 1, **metrics) -> None:
        """Log finished units: their wall time, how many items they processed, and their metrics.

        ``count`` > 1 logs several units that ran together (16 games stepped at once) as one entry:
        each of them is counted, and per-unit times are the entry's seconds / count."""
        done = self.units_done() + count
        entry = {self.experiment.progress_unit: done, "seconds": float(seconds)}
        if count != 1:
            entry["count"] = int(count)
        if items is not None or self.items_per_unit is not None:
            entry["items"] = float(items if items is not None else self.items_per_unit * count)
        entry.update({key: float(value) for key, value in metrics.items()})
        self.units.append(entry)
        elapsed = self.elapsed()
        entries = len(self.units)
        reached_target = self._reached_target(entry)
        # Energy is read (a fresh CodeCarbon measurement) only where it is used: for the forecasts
        # after the first two entries and at the target; the time forecast (the ETA) is made every time.
        energy = self.energy.so_far() if entries <= 2 or reached_target else None
        forecast = progress_module.make_forecast(self.unit_seconds(), self.row.units_planned or 0, elapsed,
                                                 *(energy or (None, None)), done=done)
        if reached_target:
            self.row.time_to_target_s = elapsed
            self.row.energy_to_target_kwh = energy[0] if energy else None
        # The stored forecast is the first one made from a steady entry, not from the compile-heavy first.
        if forecast is not None and entries == 2:
            self.forecast = forecast
            self.row.forecast_after_unit = forecast.after_unit
            self.row.forecast_time_s = forecast.time_s
            self.row.forecast_kwh = forecast.kwh
            self.row.forecast_co2_kg = forecast.co2_kg
        self.progress.unit_done(done, seconds, elapsed, metrics, forecast)
        STOP.check()  # A Ctrl-C during this unit stops the run here, its units recorded.

    def units_done(self) -> int:
        return sum(entry.get("count", 1) for entry in self.units)

    def unit_seconds(self) -> list[float]:
        """Seconds per unit of each logged entry (an entry of several units: its mean)."""
        return [entry["seconds"] / entry.get("count", 1) for entry in self.units]

    def _reached_target(self, entry: dict) -> bool:
        metric = self.experiment.metric
        if metric.target is None or self.row.time_to_target_s is not None:
            return False
        value = entry.get(metric.validation_key)
        if value is None or not math.isfinite(value):
            return False
        return value >= metric.target if metric.higher_is_better else value <= metric.target

    def keras_callback(self):
        """A Keras callback: each epoch's wall time and logs become a unit.

        No per-batch hook: Keras turns every batch's logs into Python numbers for such a hook, a device
        synchronisation per batch that made the keras variant's epochs 50 % slower. On a terminal, a
        thread reads the optimizer's step counter ten times a second for the bar instead."""
        import keras

        record = self
        show_bar = self.progress.enabled and self.progress.interactive

        class UnitTimer(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                if record.row.units_planned is None and self.params.get("epochs"):
                    record.expect_units(self.params["epochs"], record.items_per_unit)

            def on_epoch_begin(self, epoch, logs=None):
                self._start = time.perf_counter()
                if show_bar and self.params.get("steps"):
                    self._bar = _StepWatcher(record, self.model.optimizer.iterations, self.params["steps"])

            def on_epoch_end(self, epoch, logs=None):
                if getattr(self, "_bar", None) is not None:
                    self._bar.stop()
                    self._bar = None
                # Keras has already fetched the epoch's metrics to the host, which waits for the
                # device; synchronize anyway so the figure never depends on that detail.
                record.synchronize()
                record.unit(time.perf_counter() - self._start, **(logs or {}))

        return UnitTimer()

    def keras_stop_callback(self):
        """A Keras callback for a training that logs no units (a run's second model): a deferred Ctrl-C
        stops it at the end of the current epoch, as keras_callback() does for the logged one."""
        import keras

        class StopAtEpochEnd(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                STOP.check()

        return StopAtEpochEnd()

    # ---------------------------------------------------------------------------------- finish
    def finish(self) -> None:
        """Derive the per-unit figures, the headline metric and write the history file."""
        row = self.row
        self.progress.close()
        row.phase_times = json.dumps({name: round(seconds, 6) for name, seconds in self.phase_times.items()},
                                     sort_keys=True)
        if self.units:
            row.units_run = self.units_done()
            per_unit = self.unit_seconds()
            row.time_first_unit_s = per_unit[0]
            steady = self.units[1:]
            if steady:
                row.time_steady_unit_s = statistics.median(per_unit[1:])
                seconds = sum(unit["seconds"] for unit in steady)
                if "items" in steady[0] and seconds > 0:
                    row.throughput = sum(unit.get("items", 0.0) for unit in steady) / seconds
                    row.throughput_unit = self.experiment.throughput_unit
            last = self.units[-1]
            row.train_accuracy = last.get("accuracy", row.train_accuracy)
            row.validation_accuracy = last.get("val_accuracy", row.validation_accuracy)
        if self.extra_metrics:
            row.extra_metrics = json.dumps(self.extra_metrics, sort_keys=True)
        row.metric_value = results.headline_value(
            {**dataclasses.asdict(row), "metric_value": None, "extra_metrics": self.extra_metrics},
            self.experiment.metric.name)
        if self.units:
            self.write_history()

    def write_history(self) -> None:
        path = self.results_dir / "history" / self.row.experiment / f"{self.row.run_id}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        columns = list(dict.fromkeys(key for unit in self.units for key in unit))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.units)
        results.write_atomically(path, buffer.getvalue().encode())  # A full disk leaves no empty file.
        self.row.history_file = str(path.relative_to(self.results_dir))


class _StepWatcher:
    """Moves the progress bar from a background thread, from the optimizer's step counter."""

    def __init__(self, record: Record, iterations, steps_per_epoch: int):
        import threading

        self.record, self.iterations, self.steps = record, iterations, steps_per_epoch
        self.first = int(iterations.numpy())
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        while not self.done.wait(0.1):
            try:
                self.record.batch(min(int(self.iterations.numpy()) - self.first, self.steps), self.steps)
            except Exception:  # noqa: BLE001 - a display problem must never touch the training.
                return

    def stop(self) -> None:
        self.done.set()
        self.thread.join(timeout=1)


def _log_traceback(log_path: Path | None) -> None:
    """Keep the failure's traceback in the run's log file, whatever the console showed."""
    if log_path is None:
        return
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a") as log:
            traceback.print_exc(file=log)
    except OSError:
        pass


def _append_error(row: results.ResultRow, message: str) -> None:
    row.error = (row.error + " | " + message).strip(" |")


@contextmanager
def track(row: results.ResultRow, experiment: Experiment, results_dir: Path, data_options,
          energy: EnergyTracker, progress: progress_module.Progress | None = None, verbose: bool = False,
          log_path: Path | None = None):
    """Measure one run and always leave its record, whatever happens inside the block.

    A data error (missing full data in strict mode, a corrupt file) is one line on the console; any
    other failure prints its traceback. Both are in the row's error column."""
    row.metric, row.metric_direction = experiment.metric.name, experiment.metric.direction
    row.progress_unit, row.target = experiment.progress_unit, experiment.metric.target
    watch = machine.CpuWatch().start()
    energy.start()
    record = Record(row, experiment, results_dir, data_options, energy, progress)
    try:
        yield record
        row.status = results.STATUS_OK
    except KeyboardInterrupt:
        row.status = results.STATUS_INTERRUPTED
        row.error = "interrupted (Ctrl-C or termination signal)"
        raise
    except RunSkipped as skip:
        row.status = results.STATUS_SKIPPED
        row.error = str(skip)
        record.progress.close()
        print(f"[dlbench] skipped: {skip}", file=sys.stderr, flush=True)
    except BaseException as error:
        row.status = results.STATUS_FAILED
        row.error = f"{type(error).__name__}: {error}".replace("\n", " ")[:2000]
        record.progress.close()
        out_of_memory = isinstance(error, MemoryError) or type(error).__name__ == "ResourceExhaustedError"
        if out_of_memory:
            row.error = f"out of memory ({type(error).__name__}): the config is too large for this machine"
        if (isinstance(error, data_module.DataError) or out_of_memory) and not verbose:
            print(f"dlbench: error: {row.error if out_of_memory else error}", file=sys.stderr, flush=True)
        else:
            traceback.print_exc()
        _log_traceback(log_path)
        raise
    finally:
        row.time_total_s = record.elapsed()
        try:
            record.finish()
        except Exception as error:  # A history write failure must not lose the row.
            _append_error(row, f"history not saved: {error}")
        energy.stop(row)
        for name, value in watch.stop().items():
            setattr(row, name, value)
        if row.contended and row.energy_method:
            # Machine-level CodeCarbon counts every process's load: say so where the energy is read.
            row.energy_method += (f"; contended: includes other processes' load ({row.cpu_other_share:.0%} "
                                  f"of the machine's CPU)")
        if row.status == results.STATUS_OK:  # A run that was cut short has no forecast error to show.
            row.forecast_time_error = progress_module.relative_error(row.forecast_time_s, row.time_total_s)
            row.forecast_kwh_error = progress_module.relative_error(row.forecast_kwh, row.energy_kwh)
        for name in ("test_accuracy", "test_loss"):
            value = getattr(row, name)
            if value is not None and not math.isfinite(value):
                _append_error(row, f"{name} is not finite (training diverged?)")
        if log_path is not None and log_path.exists() and log_path.stat().st_size == 0:
            try:  # Nothing was logged (or the disk was full): no empty file left behind.
                log_path.unlink()
            except OSError:
                pass
        if log_path is None or not log_path.exists():
            row.log_file = ""
        results.write_record(results_dir, row)
