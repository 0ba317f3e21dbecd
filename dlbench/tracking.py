"""Timing and energy measurement around one run, written so that measurement never kills a run.

``track(row, ...)`` is the one place a run is measured: it starts a CodeCarbon
``OfflineEmissionsTracker`` (no network, explicit country), hands the experiment a ``Run`` for its
phase timers and per-epoch history, and when the block ends, normally or not, fills in the status,
timings and energy columns and appends the row to the results CSV.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import statistics
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

from dlbench import data as data_module
from dlbench import results

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

    def __init__(self, country: str, device: str, enabled: bool = True, project_name: str = "dlbench"):
        self.enabled = enabled
        self.device = device
        self.settings = {
            "country_iso_code": country,
            "project_name": project_name,
            "measure_power_secs": MEASURE_POWER_SECONDS,
            "tracking_mode": "machine",
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
# What an experiment sees of the runner
# --------------------------------------------------------------------------------------------------


class Run:
    """Phase timers, data loading, per-epoch history and metric recording for one run."""

    def __init__(self, row: results.ResultRow, data_options: data_module.DataOptions, device: str):
        self.row = row
        self.seed = row.seed
        self.device = device
        self.data_options = data_options
        self.epochs: list[dict] = []
        self.extra_metrics: dict = {}

    def synchronize(self) -> None:
        """GPU work is asynchronous: wait for it before reading a clock."""
        if self.device == "gpu":
            import tensorflow as tf

            tf.test.experimental.sync_devices()

    @contextmanager
    def phase(self, name: str):
        """Time one phase ('data', 'build', 'train', 'eval') into the row's time_<name>_s column.

        A phase entered twice (loading, then preparing the data) adds up."""
        column = f"time_{name}_s"
        start = time.perf_counter()
        try:
            yield
        finally:
            self.synchronize()
            setattr(self.row, column, (getattr(self.row, column) or 0.0) + time.perf_counter() - start)

    def load_data(self, name: str) -> data_module.Dataset:
        with self.phase("data"):
            dataset = data_module.load(name, self.data_options)
        self.row.dataset = dataset.name
        self.row.dataset_source = dataset.source
        self.row.dataset_origin = dataset.origin
        self.row.n_test = len(dataset.x_test)
        return dataset

    def record(self, **fields) -> None:
        """Set row columns (parameters, test_accuracy, n_train, ...); unknown names are an error."""
        for name, value in fields.items():
            if not hasattr(self.row, name):
                raise AttributeError(f"ResultRow has no column '{name}'")
            setattr(self.row, name, value)

    def record_metrics(self, **metrics) -> None:
        """Further metrics (F1, Dice, ...) that go into the row's extra_metrics JSON."""
        self.extra_metrics.update({k: float(v) for k, v in metrics.items()})

    def record_epoch(self, seconds: float, **metrics) -> None:
        self.epochs.append({"epoch": len(self.epochs) + 1, "seconds": seconds,
                            **{k: float(v) for k, v in metrics.items()}})

    def keras_callback(self):
        """A Keras callback that records each epoch's wall time and logs (loss, accuracy, val_*)."""
        import keras

        run = self

        class EpochTimer(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self._start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                # Keras has already fetched the epoch's metrics to the host, which waits for the
                # device; synchronize anyway so the figure never depends on that detail.
                run.synchronize()
                run.record_epoch(time.perf_counter() - self._start, **(logs or {}))

        return EpochTimer()

    def finish(self, history_path: Path | None) -> None:
        """Derive the epoch figures and write the per-epoch history file."""
        row = self.row
        if self.epochs:
            row.epochs_run = len(self.epochs)
            row.time_first_epoch_s = self.epochs[0]["seconds"]
            if len(self.epochs) > 1:
                row.time_steady_epoch_s = statistics.median(e["seconds"] for e in self.epochs[1:])
                if row.n_train and row.time_steady_epoch_s > 0:
                    row.train_samples_per_s = row.n_train / row.time_steady_epoch_s
            last = self.epochs[-1]
            row.train_accuracy = last.get("accuracy", row.train_accuracy)
            row.validation_accuracy = last.get("val_accuracy", row.validation_accuracy)
            if history_path is not None:
                history_path.parent.mkdir(parents=True, exist_ok=True)
                columns = list(dict.fromkeys(key for epoch in self.epochs for key in epoch))
                with open(history_path, "w", newline="") as handle:
                    writer = csv.DictWriter(handle, fieldnames=columns)
                    writer.writeheader()
                    writer.writerows(self.epochs)
        if self.extra_metrics:
            row.extra_metrics = json.dumps(self.extra_metrics, sort_keys=True)


@contextmanager
def track(row: results.ResultRow, results_dir: Path, data_options, energy: EnergyTracker):
    """Measure one run and always leave its row, whatever happens inside the block."""
    csv_path = results.results_path(results_dir, row.experiment)
    history_path = Path(results_dir) / "history" / row.experiment / f"{row.run_id}.csv"
    run = Run(row, data_options, energy.device)
    energy.start()
    start = time.perf_counter()
    try:
        yield run
        row.status = results.STATUS_OK
    except KeyboardInterrupt:
        row.status = results.STATUS_INTERRUPTED
        row.error = "interrupted (Ctrl-C or termination signal)"
        raise
    except BaseException as error:
        row.status = results.STATUS_FAILED
        row.error = f"{type(error).__name__}: {error}".replace("\n", " ")[:2000]
        traceback.print_exc()
        raise
    finally:
        row.time_total_s = time.perf_counter() - start
        try:
            run.finish(history_path)
            if run.epochs:
                row.history_file = str(history_path.relative_to(results_dir))
        except Exception as error:  # A history write failure must not lose the row.
            row.error = (row.error + f" | history not saved: {error}").strip(" |")
        energy.stop(row)
        for name in ("test_accuracy", "test_loss"):
            value = getattr(row, name)
            if value is not None and not math.isfinite(value):
                row.error = (row.error + f" | {name} is not finite (training diverged?)").strip(" |")
        results.append_row(csv_path, row)
