"""One flat row per run, appended to ``results/<experiment>.csv`` without ever losing earlier rows.

The row is a dataclass so the columns are fixed and documented in one place (README.md lists them).
Appends take an exclusive ``fcntl`` lock on a side file, so two runs finishing at the same moment
cannot interleave their lines. If the file was written by an older dlbench with other columns, it is
rewritten with the union of both column sets (old rows keep their values) through a temporary file
and an atomic ``os.replace``.
"""

from __future__ import annotations

import csv
import dataclasses
import fcntl
import io
import math
import os
from contextlib import contextmanager
from pathlib import Path

STATUS_RUNNING = "running"
STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUS_INTERRUPTED = "interrupted"


@dataclasses.dataclass
class ResultRow:
    # Identity of the run.
    run_id: str = ""
    timestamp_utc: str = ""
    experiment: str = ""
    variant: str = ""
    device: str = ""  # "cpu" or "gpu": what the run was allowed to use.
    device_name: str = ""  # The processor or GPU model the run actually saw.
    repeat: int = 0
    seed: int = 0
    group_id: str = ""  # Shared by every run started by one `dlbench run` / `dlbench study` command.
    study: str = ""  # The study this run is a point of, if any (e.g. mlp_learning_rate).
    study_point: str = ""  # The point's label within the study (e.g. learning_rate=0.1).
    status: str = STATUS_RUNNING
    error: str = ""
    # Data: which copy was used, so a row on the shipped sample is never mistaken for a full run.
    dataset: str = ""
    dataset_source: str = ""  # "full" or "sample"
    dataset_origin: str = ""  # Where it came from: a file path, the Keras cache, the download...
    n_train: int | None = None
    n_validation: int | None = None
    n_test: int | None = None
    # Model and training configuration.
    config: str = ""  # JSON of the experiment's config dataclass, overrides applied.
    jit_compile: str = ""  # "true" / "false", or "n/a" for code that does not run through XLA.
    parameters: int | None = None
    # The experiment's declared headline metric: what compare, plots and reports rank on.
    metric: str = ""  # Its name, e.g. test_accuracy, dice, fcd.
    metric_direction: str = ""  # "max" (higher is better) or "min".
    metric_value: float | None = None
    # Classification metrics (empty for topics that have none).
    test_accuracy: float | None = None
    test_loss: float | None = None
    train_accuracy: float | None = None  # Last unit, as reported during training.
    validation_accuracy: float | None = None  # Last unit.
    extra_metrics: str = ""  # JSON of any further metrics an experiment reports (F1, Dice, ...).
    # Progress: epochs, episodes or steps.
    progress_unit: str = ""
    units_planned: int | None = None
    units_run: int | None = None
    # Timings in seconds (time.perf_counter).
    time_data_s: float | None = None
    time_build_s: float | None = None
    time_first_unit_s: float | None = None  # Includes tracing / XLA compilation.
    time_steady_unit_s: float | None = None  # Median of the units after the first.
    time_train_s: float | None = None
    time_eval_s: float | None = None
    time_total_s: float | None = None
    phase_times: str = ""  # JSON: seconds of every phase the experiment opened (data, build, rollout...).
    throughput: float | None = None  # Steady state, in throughput_unit.
    throughput_unit: str = ""  # images/s, tokens/s, environment steps/s...
    # Time-to-target: when the validation metric first reached the experiment's declared target.
    target: float | None = None
    time_to_target_s: float | None = None
    energy_to_target_kwh: float | None = None
    # Forecast of the whole run, made from the first steady unit (carbontracker's idea).
    forecast_after_unit: int | None = None
    forecast_time_s: float | None = None
    forecast_kwh: float | None = None
    forecast_co2_kg: float | None = None
    forecast_time_error: float | None = None  # (forecast - actual) / actual.
    forecast_kwh_error: float | None = None
    # Energy and emissions (CodeCarbon), for the whole run: data, build, training and evaluation.
    energy_cpu_kwh: float | None = None
    energy_gpu_kwh: float | None = None
    energy_ram_kwh: float | None = None
    energy_kwh: float | None = None
    co2_kg: float | None = None
    energy_method: str = ""  # How each part was obtained (RAPL, load-based estimate, NVML...).
    energy_status: str = ""  # "ok", "disabled" or "unavailable: <why>"; energy_method says measured or estimated.
    carbon_country: str = ""
    carbon_intensity_g_per_kwh: float | None = None
    energy_settings: str = ""  # JSON of every argument given to CodeCarbon.
    # Provenance.
    python_version: str = ""
    tensorflow_version: str = ""
    keras_version: str = ""
    numpy_version: str = ""
    codecarbon_version: str = ""
    dlbench_version: str = ""
    git_commit: str = ""
    host: str = ""
    # Files beside the record, relative to the results directory.
    history_file: str = ""  # Per-unit history (CSV).
    artifacts_dir: str = ""  # Figures, grids, curves the experiment wrote.
    log_file: str = ""  # The worker's silenced start-up lines (TensorFlow's) and any traceback.


# Columns of results written by dlbench 0.1, and what they are called now.
LEGACY_RENAMES = {"epochs_run": "units_run", "time_first_epoch_s": "time_first_unit_s",
                  "time_steady_epoch_s": "time_steady_unit_s", "train_samples_per_s": "throughput"}


COLUMNS: tuple[str, ...] = tuple(field.name for field in dataclasses.fields(ResultRow))


def results_path(results_dir: str | os.PathLike, experiment: str) -> Path:
    return Path(results_dir) / f"{experiment}.csv"


def _format(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return repr(value)
    return str(value)


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _read_header(path: Path) -> list[str] | None:
    if not path.exists() or path.stat().st_size == 0:
        return None
    with open(path, newline="") as handle:
        return next(csv.reader(handle), None)


def _line(columns, values: dict) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([_format(values.get(c)) for c in columns])
    return buffer.getvalue()


def append_row(path: str | os.PathLike, row: ResultRow | dict) -> None:
    """Append one row; safe against concurrent writers and never drops existing rows."""
    path = Path(path)
    values = dataclasses.asdict(row) if isinstance(row, ResultRow) else dict(row)
    with _locked(path):
        header = _read_header(path)
        if header is None:
            _write_atomically(path, _line(COLUMNS, dict(zip(COLUMNS, COLUMNS))) + _line(COLUMNS, values))
            return
        if header != list(COLUMNS):
            # Written by another dlbench version: migrate to the union of columns, keeping every row.
            columns = list(COLUMNS) + [c for c in header if c not in COLUMNS]
            with open(path, newline="") as handle:
                old_rows = list(csv.DictReader(handle))
            text = _line(columns, dict(zip(columns, columns)))
            text += "".join(_line(columns, old) for old in old_rows)
            _write_atomically(path, text + _line(columns, values))
            return
        # One os.write of one complete line on an O_APPEND descriptor: readers never see half a row.
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(descriptor, _line(header, values).encode())
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "w", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def read_rows(path: str | os.PathLike) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def has_run(path: str | os.PathLike, run_id: str) -> bool:
    return any(row.get("run_id") == run_id for row in read_rows(path))
