"""The one-time import of a results CSV written by dlbench 0.1 (one appended line per run) into run records.

results.read_records and results.rebuild_csv call it before they read records (import_legacy_csv):
columns are renamed per LEGACY_RENAMES, lines it cannot parse are kept verbatim, and the original is
copied aside to ``<experiment>.csv.pre-v2``. ``runs/<experiment>/.csv-imported`` marks it done.
"""

from __future__ import annotations

import csv
import glob
import math
import os
from pathlib import Path

from dlbench.results import (KINDS, ResultsWriteError, _atomic_write, _fsync_dir, _lock, _one_line,
                             _raise_field_size_limit, _reason, _record_values, _unused, _utc_stamp,
                             _valid_name, _warn_stderr, _write_record, record_path, results_path, runs_dir)

_MARKER = ".csv-imported"
_PRE_V2_SUFFIX = ".csv.pre-v2"

# Columns of results written by dlbench 0.1, and what they are called now.
LEGACY_RENAMES = {"epochs_run": "units_run", "time_first_epoch_s": "time_first_unit_s",
                  "time_steady_epoch_s": "time_steady_unit_s", "train_samples_per_s": "throughput"}


def _split_lines(text: str) -> list[str]:
    """Physical lines, each with its '\\n' (the last one may lack it); only '\\n' separates lines."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _next_csv_record(lines: list[str], position: int):
    """Parse the CSV record starting at lines[position]: (fields or csv.Error, index after its last line)."""
    reader = csv.reader((lines[index] for index in range(position, len(lines))), strict=True)
    try:
        fields = next(reader)
    except StopIteration:
        return [], len(lines)
    except csv.Error as error:
        return error, position + max(reader.line_num, 1)
    return fields, position + max(reader.line_num, 1)


def _is_whole_row(line: str, width: int) -> bool:
    fields, _ = _next_csv_record([line], 0)
    return isinstance(fields, list) and len(fields) == width


def _parse_legacy(lines: list[str]):
    """Split a legacy CSV into (header, header index, good rows as (start, end, fields), bad lines as (index, why)).

    A record that spans several lines is accepted only if it has the header's width and the line
    after its first one is not itself a whole row: an unterminated quote then loses only its own
    line (kept verbatim by the caller), never the rows that follow it.
    """
    header, header_index, good, bad = None, None, [], []
    position = 0
    while position < len(lines) and header is None:
        fields = next(csv.reader([lines[position].lstrip("\ufeff")]), [])
        if fields:
            header, header_index = fields, position
        position += 1
    if header is None:
        return None, None, good, bad
    width = len(header)
    while position < len(lines):
        fields, end = _next_csv_record(lines, position)
        if isinstance(fields, csv.Error):
            bad.append((position, f"line {position + 1}: {_one_line(fields)}"))
            position += 1
        elif not fields:
            position = end  # Blank line.
        elif len(fields) != width:
            bad.append((position, f"line {position + 1}: {len(fields)} fields where the header has {width}"))
            position += 1
        elif end - position > 1 and _is_whole_row(lines[position + 1], width):
            bad.append((position, f"line {position + 1}: unterminated quote"))
            position += 1
        else:
            good.append((position, end, fields))
            position = end
    return header, header_index, good, bad


def _column_names(header: list[str]) -> list[str]:
    """The header with LEGACY_RENAMES applied; duplicate or empty names made unique so no value is dropped."""
    names, seen = [], set()
    for index, name in enumerate(header):
        new = LEGACY_RENAMES.get(name, name)
        if new != name and new in header:
            new = name  # Both the old and the new name present: keep both columns.
        if not new:
            new = f"column_{index + 1}"
        candidate, number = new, 1
        while candidate in seen:
            number += 1
            candidate = f"{new}_{number}"
        seen.add(candidate)
        names.append(candidate)
    return names


def _convert(name: str, text: str):
    kind = KINDS.get(name, "str")
    if kind in ("str", "bool"):
        return text
    if not text.strip():
        return None
    try:
        number = float(text)
    except ValueError:
        return text  # Kept as it was rather than lost.
    if not math.isfinite(number):
        return text
    if kind == "float":
        return number
    try:
        return int(text)
    except ValueError:
        return int(number) if number.is_integer() else text


def _backup_pre_v2(results_dir: Path, experiment: str, data: bytes) -> None:
    backup = Path(results_dir) / f"{experiment}{_PRE_V2_SUFFIX}"
    if backup.exists():
        if backup.read_bytes() == data:
            return
        backup = _unused(backup.with_name(f"{backup.name}-{_utc_stamp()}"))
    try:
        _atomic_write(backup, data)
    except OSError as error:
        raise ResultsWriteError(f"cannot write backup {backup}: {_reason(error)}",
                                errno_number=error.errno, path=backup) from error


def _import_rows(results_dir: Path, experiment: str, csv_file: Path, data: bytes, warn) -> tuple[int, str]:
    _raise_field_size_limit()
    text = data.decode("utf-8", "surrogateescape")
    lines = _split_lines(text)
    header, header_index, good, bad = _parse_legacy(lines)
    directory = runs_dir(results_dir, experiment)
    written: list[Path] = []
    seen: dict[str, list[str]] = {}
    if header is not None:
        names = _column_names(header)
        for start, _end, fields in good:
            if fields == header:
                continue  # A repeated header line.
            record = {name: _convert(name, value) for name, value in zip(names, fields)}
            run_id = record.get("run_id")
            if not _valid_name(run_id):
                bad.append((start, f"line {start + 1}: no usable run_id"))
                continue
            if run_id in seen:
                if seen[run_id] != fields:
                    bad.append((start, f"line {start + 1}: run_id {run_id} repeated with other values"))
                continue
            seen[run_id] = fields
            if record.get("experiment") not in (None, "", experiment):
                record["legacy_experiment"] = record["experiment"]  # Kept; the file name says which it is.
            record["experiment"] = experiment
            record["imported_from"] = csv_file.name
            if record_path(results_dir, experiment, run_id).exists():
                continue
            written.append(_write_record(results_dir, _record_values(record), durable=False))
    try:
        for path in written:  # One pass of fsyncs at the end is much cheaper than one per record.
            descriptor = os.open(path, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        if written:
            _fsync_dir(directory)
    except OSError as error:
        raise ResultsWriteError(f"cannot write run records in {directory}: {_reason(error)}",
                                errno_number=error.errno) from error
    unparsed = "none"
    if bad:
        bad.sort()
        indices = sorted({index for index, _ in bad})
        content = ([lines[header_index]] if header_index is not None else []) + [lines[i] for i in indices]
        target = _unused(directory / f"legacy-unparsed-{_utc_stamp()}.csv")
        try:
            _atomic_write(target, "".join(content).encode("utf-8", "surrogateescape"))
        except OSError as error:
            raise ResultsWriteError(f"cannot write {target}: {_reason(error)}",
                                    errno_number=error.errno, path=target) from error
        unparsed = f"{len(indices)} in {target.name}"
        warn(f"{len(indices)} line(s) of {csv_file} could not be imported ({bad[0][1]}); "
             f"kept verbatim, after the header line, in {target}")
    return len(written), unparsed


def _import_locked(results_dir: Path, experiment: str, warn) -> int:
    directory = runs_dir(results_dir, experiment)
    marker = directory / _MARKER
    if marker.exists():
        return 0
    csv_file = results_path(results_dir, experiment)
    imported = 0
    note = f"no {csv_file.name} to import at {_utc_stamp()}\n"
    if csv_file.exists():
        try:
            data = csv_file.read_bytes()
        except OSError as error:
            raise ResultsWriteError(f"cannot import legacy CSV {csv_file}: {_reason(error)}",
                                    errno_number=error.errno, path=csv_file) from error
        _backup_pre_v2(results_dir, experiment, data)
        imported, unparsed = _import_rows(results_dir, experiment, csv_file, data, warn)
        note = f"imported {imported} row(s) of {csv_file.name} at {_utc_stamp()}; unparsed lines: {unparsed}\n"
    try:
        _atomic_write(marker, note.encode())
    except OSError as error:
        raise ResultsWriteError(f"cannot write import marker {marker}: {_reason(error)}",
                                errno_number=error.errno, path=marker) from error
    return imported


def import_legacy_csv(results_dir: str | os.PathLike, experiment: str, warn=None) -> int:
    """Turn the rows of a dlbench 0.1 ``<experiment>.csv`` into run records, once; returns rows imported.

    Runs when ``runs/<experiment>/.csv-imported`` does not exist: columns are renamed per
    LEGACY_RENAMES, values converted to ResultRow's types where they parse (kept as strings
    otherwise), unknown columns kept, ``imported_from`` added; a run_id that already has a record is
    skipped. Lines that cannot be parsed are kept verbatim in ``runs/<experiment>/legacy-unparsed-<UTC>.csv``
    with one warning; the original CSV is copied to ``<experiment>.csv.pre-v2``. The marker is
    written afterwards (also when there was no CSV but the runs directory exists). Holds the
    ``runs/<experiment>/.lock`` lock. Raises ResultsWriteError if something cannot be written.
    """
    warn = warn or _warn_stderr
    results_dir = Path(results_dir)
    directory = runs_dir(results_dir, experiment)
    if (directory / _MARKER).exists():
        return 0
    if not results_path(results_dir, experiment).exists() and not directory.exists():
        return 0  # Nothing to import and nothing to protect yet: create nothing.
    with _lock(directory):
        return _import_locked(results_dir, experiment, warn)


def _is_pre_v2_copy(results_dir: Path, experiment: str, data: bytes) -> bool:
    """Whether ``data`` is the legacy CSV that import already copied aside (so it is no hand edit)."""
    for backup in Path(results_dir).glob(f"{glob.escape(experiment)}{_PRE_V2_SUFFIX}*"):
        try:
            if backup.stat().st_size == len(data) and backup.read_bytes() == data:
                return True
        except OSError:
            continue
    return False
