"""Run results that are never lost: one immutable JSON record per run, and a CSV rebuilt from them.

Each run writes ``<results>/runs/<experiment>/<run_id>.json`` (write_record): a temporary file in the
same directory, every byte written and fsync-ed, then ``os.replace``-d onto its final name, so a
record is either complete or absent. ``<results>/<experiment>.csv``, the file users open, is only
ever rebuilt from the records (rebuild_csv), atomically and under a lock; a CSV changed by hand is
moved aside first, never overwritten. The columns are the ResultRow dataclass (README.md lists them).
A CSV written by dlbench 0.1 (one appended line per run) is imported once into records by
legacy_import.py (import_legacy_csv), which read_records and rebuild_csv call before reading records.
"""

from __future__ import annotations

import csv
import dataclasses
import errno
import fcntl
import hashlib
import io
import json
import math
import os
import secrets
import shutil
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

STATUS_RUNNING = "running"
STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUS_INTERRUPTED = "interrupted"
STATUS_SKIPPED = "skipped"  # The run could not start its work: something only the user can provide is missing.


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
    # The machine (dlbench.machine): comparisons group by its label and never pool two machines.
    machine: str = ""  # Short label: CPU model x logical cores, memory, GPUs.
    machine_fingerprint: str = ""  # JSON: cpu, logical_cores, memory_gib, gpus, os, blas, host_hash.
    # Contention: what else used the machine while this run executed (dlbench.machine.CpuWatch).
    concurrent: bool | None = None  # Started with --concurrent (or as a Ray task sharing its node).
    lock_wait_s: float | None = None  # Seconds waited for the machine-wide measurement lock.
    cpu_other_share: float | None = None  # Mean share of the machine's CPU other processes used (1 = all cores).
    cpu_other_share_max: float | None = None  # Highest 1-second share.
    cpu_own_share: float | None = None  # Mean share the run itself used.
    load_max: float | None = None  # Highest 1-minute load average seen.
    contended: bool | None = None  # cpu_other_share above 10 %: its times are slowed, its energy includes others'.
    contention_note: str = ""  # Why contention is not measured, if it is not.
    # Files beside the record, relative to the results directory.
    history_file: str = ""  # Per-unit history (CSV).
    artifacts_dir: str = ""  # Figures, grids, curves the experiment wrote.
    log_file: str = ""  # The worker's silenced start-up lines (TensorFlow's) and any traceback.


COLUMNS: tuple[str, ...] = tuple(field.name for field in dataclasses.fields(ResultRow))


def results_path(results_dir: str | os.PathLike, experiment: str) -> Path:
    return Path(results_dir) / f"{experiment}.csv"


class ResultsWriteError(OSError):
    """A run record or the results CSV could not be written (disk full, read-only, ...).

    ``str()`` is one line naming the path and the OS reason; ``errno`` is the OS error number (or None)
    and ``path`` the file that could not be written.
    """

    def __init__(self, message: str, *, errno_number: int | None = None, path: Path | None = None):
        super().__init__(message)
        self.errno = errno_number
        self.path = path


class ResultsDirError(ValueError):
    """The results directory cannot be used; raised before a run starts. ``str()`` is one line."""


def runs_dir(results_dir: str | os.PathLike, experiment: str) -> Path:
    return Path(results_dir) / "runs" / experiment


def record_path(results_dir: str | os.PathLike, experiment: str, run_id: str) -> Path:
    return runs_dir(results_dir, experiment) / f"{run_id}.json"


# --- small helpers --------------------------------------------------------------------------------

_HASH_FILE = ".csv.sha256"
_LOCK_FILE = ".lock"
# The one list of column types (the CSV importer and every table read records through it).
KINDS = {field.name: ("bool" if "bool" in str(field.type) else "int" if "int" in str(field.type)
                      else "float" if "float" in str(field.type) else "str")
         for field in dataclasses.fields(ResultRow)}
_IGNORED_FSYNC_ERRORS = {errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF, errno.EACCES, errno.EISDIR}


def _format(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""
        return repr(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _reason(error: BaseException) -> str:
    """The OS reason of an error, on one line: ``[Errno 28] No space left on device``."""
    if isinstance(error, OSError) and error.errno is not None and error.strerror:
        return f"[Errno {error.errno}] {_one_line(error.strerror)}"
    return _one_line(str(error)) or type(error).__name__


def _strerror(error: OSError) -> str:
    return _one_line(error.strerror or str(error) or type(error).__name__)


_WARNED: set[str] = set()


def _warn_stderr(message: str) -> None:
    """A warning on stderr, once per process: the CSV rebuild and the table after it read the same
    records, and one damaged file is one line, not two."""
    if message in _WARNED:
        return
    _WARNED.add(message)
    print(f"dlbench: warning: {message}", file=sys.stderr, flush=True)


def _utc_stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def _unused(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3``... whichever does not exist yet."""
    candidate, number = path, 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}-{number}")
    return candidate


def _raise_field_size_limit() -> None:
    limit = sys.maxsize
    while True:
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:
            limit //= 2


def _check_name(kind: str, value) -> str:
    if (not isinstance(value, str) or not value or value.startswith(".") or "/" in value or "\\" in value
            or "\0" in value or len(value.encode("utf-8", "surrogateescape")) > 200):
        raise ValueError(f"{kind} {value!r} cannot name a run record file (empty, starts with '.', "
                         f"contains '/', '\\' or NUL, or is longer than 200 bytes)")
    return value


def _valid_name(value) -> bool:
    try:
        _check_name("name", value)
    except ValueError:
        return False
    return True


def _write_all(descriptor: int, data: bytes) -> None:
    """os.write until every byte is written: a short write is continued, never ignored."""
    view = memoryview(data)
    while view:
        written = os.write(descriptor, view)
        if written is None or written <= 0:
            raise OSError(errno.EIO, "os.write wrote nothing")
        view = view[written:]


def _fsync_dir(directory: Path) -> None:
    try:
        descriptor = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as error:
        if error.errno in _IGNORED_FSYNC_ERRORS:
            return
        raise
    try:
        os.fsync(descriptor)
    except OSError as error:
        if error.errno not in _IGNORED_FSYNC_ERRORS:
            raise
    finally:
        os.close(descriptor)


def _atomic_write(path: Path, data: bytes, durable: bool = True, exclusive: bool = False) -> None:
    """Write ``data`` to a temporary file beside ``path``, then ``os.replace`` it onto ``path``.

    Raises OSError (FileExistsError if ``exclusive`` and ``path`` exists); the temporary file is
    removed on any failure, so ``path`` is either untouched or complete.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        try:
            _write_all(descriptor, data)
            if durable:
                os.fsync(descriptor)
        finally:
            os.close(descriptor)
        if exclusive and path.exists():
            raise FileExistsError(errno.EEXIST, "a run record with this run_id already exists (records are immutable)")
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    if durable:
        _fsync_dir(path.parent)


def write_atomically(path: str | os.PathLike, data: bytes) -> None:
    """A file another process may read (a run's history): complete or absent, never cut or empty."""
    _atomic_write(Path(path), data, durable=False)


@contextmanager
def _lock(directory: Path):
    """Exclusive fcntl lock on ``directory/.lock`` (created with the directory if needed)."""
    lock_path = directory / _LOCK_FILE
    try:
        directory.mkdir(parents=True, exist_ok=True)
        lock_file = open(lock_path, "a")
    except OSError as error:
        raise ResultsWriteError(f"cannot create lock file {lock_path}: {_reason(error)}",
                                errno_number=error.errno, path=lock_path) from error
    with lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _clean(value):
    """A JSON-safe copy: NaN/inf become None, numpy scalars plain numbers, anything else its str()."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): _clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(item) for item in value]
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            plain = item()
        except Exception:
            plain = None
        if isinstance(plain, (bool, int, float, str)):
            return _clean(plain)
    return str(value)


def _record_values(row: ResultRow | dict) -> dict:
    values = dataclasses.asdict(row) if isinstance(row, ResultRow) else dict(row)
    ordered = {name: values[name] for name in COLUMNS if name in values}
    ordered.update((str(key), value) for key, value in values.items() if key not in ordered)
    return {key: _clean(value) for key, value in ordered.items()}


def _encode_record(values: dict) -> bytes:
    try:
        return (json.dumps(values, ensure_ascii=False, indent=1, allow_nan=False) + "\n").encode("utf-8")
    except UnicodeEncodeError:  # Undecodable bytes kept from a legacy CSV (lone surrogates): escape them.
        return (json.dumps(values, ensure_ascii=True, indent=1, allow_nan=False) + "\n").encode("ascii")


# --- records ---------------------------------------------------------------------------------------

def _write_record(results_dir, values: dict, durable: bool = True) -> Path:
    experiment = _check_name("experiment", values.get("experiment"))
    run_id = _check_name("run_id", values.get("run_id"))
    path = record_path(results_dir, experiment, run_id)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, _encode_record(values), durable=durable, exclusive=True)
    except OSError as error:
        raise ResultsWriteError(f"cannot write run record {path}: {_reason(error)}",
                                errno_number=error.errno, path=path) from error
    return path


def write_record(results_dir: str | os.PathLike, row: ResultRow | dict) -> Path:
    """Write one immutable JSON record for the run; returns its path.

    The record (column -> value, None for a missing value, NaN/inf stored as None) goes to a
    temporary file in the same directory (every byte written, fsync), is ``os.replace``-d onto
    ``runs/<experiment>/<run_id>.json`` and the directory is fsync-ed. Raises ResultsWriteError if it
    cannot be written (nothing is then left under the final name, and no temporary file) or if a
    record for this run_id already exists; ValueError if run_id or experiment is empty or cannot be
    a file name.
    """
    return _write_record(results_dir, _record_values(row))


def headline_value(record: dict, metric_name: str) -> float | None:
    """The declared headline metric of a record, read in this one place: its ``metric_value``, or (rows
    imported from dlbench 0.1, which had none) the column or extra metric of that name."""
    for value in (record.get("metric_value"), record.get(metric_name)):
        if value not in (None, ""):
            try:
                number = float(value)
            except (TypeError, ValueError):
                return None
            return number if math.isfinite(number) else None
    extra = record.get("extra_metrics") or "{}"
    try:
        value = (json.loads(extra) if isinstance(extra, str) else extra).get(metric_name)
    except (AttributeError, json.JSONDecodeError):
        return None
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def has_record(results_dir: str | os.PathLike, experiment: str, run_id: str) -> bool:
    if not (_valid_name(experiment) and _valid_name(run_id)):
        return False
    return record_path(results_dir, experiment, run_id).is_file()


def _read_records(directory: Path, warn, damaged: list | None = None) -> list[dict]:
    """The valid records; each damaged one is named in a warning, or, given a ``damaged`` list, added to
    it as (path, problem) for the caller to report."""
    if not directory.is_dir():
        return []
    records = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or not path.name.endswith(".json"):
            continue  # Temporary files, the lock, markers, logs, legacy-unparsed-*.csv, damaged-*.
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as error:
            warn(f"skipping unreadable run record {path}: {_reason(error)}")
            continue
        problem = None
        try:
            record = json.loads(data.decode("utf-8"))
        except UnicodeDecodeError as error:
            problem = f"not UTF-8 ({_one_line(error)})"
        except ValueError as error:
            problem = f"not valid JSON ({_one_line(error)})"
        else:
            if not isinstance(record, dict):
                problem = "not a JSON object"
            elif not isinstance(record.get("run_id"), str) or not record["run_id"]:
                problem = "no run_id"
        if problem:
            if damaged is None:
                warn(f"skipping damaged run record {path}: {problem}")
            else:  # The caller says what it did with it, in one line.
                damaged.append((path, problem))
            continue
        records.append(_clean(record))
    records.sort(key=lambda record: (str(record.get("timestamp_utc") or ""), record["run_id"]))
    return records


def read_records(results_dir: str | os.PathLike, experiment: str, warn=None) -> list[dict]:
    """Every valid record of the experiment, sorted by (timestamp_utc, run_id).

    A damaged record is named in one warning line and skipped (never deleted). ``warn(message)``
    receives the warnings (without the ``dlbench: warning:`` prefix); by default they go to stderr.
    If ``<experiment>.csv`` exists it is imported first when it has not been (see legacy_import.import_legacy_csv); if
    that is impossible (read-only directory...), a warning says so and the existing records are returned.
    """
    from dlbench.legacy_import import import_legacy_csv  # Here, not at the top: legacy_import imports this module.

    warn = warn or _warn_stderr
    if results_path(results_dir, experiment).exists():
        try:
            import_legacy_csv(results_dir, experiment, warn=warn)
        except OSError as error:
            warn(f"legacy CSV {results_path(results_dir, experiment)} not imported: {_one_line(error)}")
    return _read_records(runs_dir(results_dir, experiment), warn)


# --- the CSV users open ---------------------------------------------------------------------------

def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rebuild_csv(results_dir: str | os.PathLike, experiment: str, warn=None) -> Path:
    """Rewrite ``<experiment>.csv`` from the run records, atomically, under the runs directory's lock.

    Columns: COLUMNS, then any other key found in the records (sorted). If the CSV was changed since
    dlbench last wrote it, it is first moved to ``<experiment>.csv.edited-<UTC>`` with one warning.
    Returns the CSV's path; raises ResultsWriteError if it cannot be written.
    """
    from dlbench.legacy_import import _import_locked, _is_pre_v2_copy  # Here: legacy_import imports this module.

    warn = warn or _warn_stderr
    results_dir = Path(results_dir)
    path = results_path(results_dir, experiment)
    directory = runs_dir(results_dir, experiment)
    hash_file = directory / _HASH_FILE
    with _lock(directory):
        _import_locked(results_dir, experiment, warn)
        damaged: list[Path] = []
        records = _read_records(directory, warn, damaged)
        if damaged:
            _set_damaged_aside(path, damaged, warn)
        columns = list(COLUMNS) + sorted({key for record in records for key in record} - set(COLUMNS))
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([_format(record.get(column)) for column in columns] for record in records)
        data = buffer.getvalue().encode("utf-8", "surrogateescape")
        new_hash = _sha256(data)
        try:
            known = set(hash_file.read_text().split()) if hash_file.exists() else None
            keep = set()
            if path.exists():
                current_data = path.read_bytes()
                current = _sha256(current_data)
                if known is not None:
                    edited = current not in known
                else:
                    edited = not _is_pre_v2_copy(results_dir, experiment, current_data)
                if current == new_hash:
                    if known is None or current not in known or len(known) > 1:
                        _atomic_write(hash_file, f"{new_hash}\n".encode())
                    return path
                if edited:
                    aside = _unused(path.with_name(f"{path.name}.edited-{_utc_stamp()}"))
                    os.replace(path, aside)
                    _fsync_dir(path.parent)
                    warn(f"{path} was changed by hand since dlbench wrote it; moved it to {aside} "
                         f"(hand edits are not read back: the CSV is rebuilt from the run records in {directory})")
                else:
                    keep.add(current)
            # The hash goes first, listing the old content too: a crash between the two writes is no "edit".
            _atomic_write(hash_file, "".join(f"{value}\n" for value in [new_hash, *keep]).encode())
            _atomic_write(path, data)
            if keep:
                _atomic_write(hash_file, f"{new_hash}\n".encode())
        except OSError as error:
            raise ResultsWriteError(f"cannot write results CSV {path}: {_reason(error)}",
                                    errno_number=error.errno, path=path) from error
    return path


def _set_damaged_aside(csv_path: Path, damaged: list[tuple[Path, str]], warn) -> None:
    """Each damaged record moves to ``<run_id>.json.damaged-<UTC>`` (kept, no longer read, so it is
    reported once, not by every command), and the CSV that still holds its row is kept as
    ``<experiment>.csv.before-damage-<UTC>``, since the rebuilt one cannot have it. One line each."""
    stamp = _utc_stamp()
    kept = None
    if csv_path.exists():
        try:
            kept = _unused(csv_path.with_name(f"{csv_path.name}.before-damage-{stamp}"))
            shutil.copy2(csv_path, kept)
        except OSError:
            kept = None
    for record, problem in damaged:
        aside = _unused(record.with_name(f"{record.name}.damaged-{stamp}"))
        try:
            os.replace(record, aside)
            moved = f"moved to {aside.name}"
        except OSError as error:
            moved = f"left in place ({_strerror(error)})"
        row = f"its row in the previous CSV is kept in {kept}" if kept else "no earlier CSV row to keep"
        warn(f"damaged run record {record} ({problem}) {moved}; {row}")
    try:
        _fsync_dir(damaged[0][0].parent)
    except OSError:
        pass


def read_rows(path: str | os.PathLike) -> list[dict]:
    """The rows of a CSV (e.g. the rebuilt ``<experiment>.csv``) as dicts of strings; [] if it does not exist."""
    path = Path(path)
    if not path.exists():
        return []
    _raise_field_size_limit()
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as handle:
        return list(csv.DictReader(handle))


# --- before a run -----------------------------------------------------------------------------------

def run_folders(results_dir: str | os.PathLike, experiment: str) -> list[Path]:
    """Every folder a run of the experiment writes into: records and logs, history, artifacts."""
    results_dir = Path(results_dir)
    return [runs_dir(results_dir, experiment), results_dir / "history" / experiment,
            results_dir / "artifacts" / experiment]


def check_results_dir(results_dir: str | os.PathLike, experiment: str | None = None,
                      min_free_bytes: int = 50 * 2**20) -> None:
    """Make sure runs can record their results: the directory exists (created if needed), a file can
    actually be created in it and, given the experiment, in every folder its runs write (a read-only
    ``runs/<experiment>/`` alone would otherwise fail only at the end of a run), and it has
    ``min_free_bytes`` free. Raises ResultsDirError (one line)."""
    directory = Path(results_dir)
    fix = "choose another with --results-dir DIR"
    if directory.exists() and not directory.is_dir():
        raise ResultsDirError(f"results directory {directory} is not a directory; {fix}")
    for folder in [directory, *(run_folders(directory, experiment) if experiment else [])]:
        kind = "results directory" if folder == directory else "results folder"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ResultsDirError(f"cannot create {kind} {folder} ({_strerror(error)}); {fix}") from error
        probe = folder / f".dlbench-write-test.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            descriptor = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                _write_all(descriptor, b"dlbench\n")
            finally:
                os.close(descriptor)
            os.unlink(probe)
        except OSError as error:
            try:
                os.unlink(probe)
            except OSError:
                pass
            raise ResultsDirError(f"{kind} {folder} is not writable ({_strerror(error)}); {fix}") from error
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return  # Free space unknown on this file system: the write test passed, go on.
    if free < min_free_bytes:
        raise ResultsDirError(f"results directory {directory} has only {free / 2**20:.1f} MiB free "
                              f"(at least {min_free_bytes / 2**20:.0f} MiB needed); free some space or {fix}")
