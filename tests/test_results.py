"""The run-record store: every defect of the old append-to-CSV design, reproduced, and shown not to lose data.

Each numbered test is one defect: on the old design (one appended CSV line per run) it loses or
corrupts rows; here it must keep every value.
"""

import collections
import csv
import errno
import io
import json
import math
import multiprocessing
import os
import shutil
from pathlib import Path

import pytest

from dlbench import legacy_import, results

TRICKY = "comma, \"quote\"\nnewline, ünïcode"

# A results CSV as dlbench 0.1 wrote it: its own column names, appended with csv.writer and "\n".
LEGACY_HEADER = ["run_id", "timestamp_utc", "experiment", "variant", "device", "repeat", "seed", "status",
                 "error", "test_accuracy", "epochs_run", "time_first_epoch_s", "time_steady_epoch_s",
                 "train_samples_per_s", "old_column"]


def _legacy_row(run_id, timestamp, error="", accuracy="0.5", old="kept"):
    return [run_id, timestamp, "x", "keras", "cpu", "0", "1", "ok", error, accuracy, "3", "1.5", "0.25",
            "1234.5", old]


def _csv_text(rows, header=LEGACY_HEADER):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _write_legacy(results_dir, text, experiment="x"):
    path = results.results_path(results_dir, experiment)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode())
    return path


def _row(run_id, timestamp="2024-05-01T10:00:00+00:00", **values):
    return results.ResultRow(run_id=run_id, timestamp_utc=timestamp, experiment="x", **values)


def _run(results_dir, run_id, timestamp="2024-05-01T10:00:00+00:00", **values):
    """What one run does at its end: its record, then the CSV rebuilt."""
    results.write_record(results_dir, _row(run_id, timestamp, **values))
    return results.rebuild_csv(results_dir, "x")


def _csv_rows(results_dir, experiment="x"):
    return results.read_rows(results.results_path(results_dir, experiment))


def _unparsed_files(results_dir, experiment="x"):
    return sorted(results.runs_dir(results_dir, experiment).glob("legacy-unparsed-*.csv"))


def _leftovers(directory):
    """Temporary files anywhere under ``directory``."""
    return [path for path in Path(directory).rglob("*") if path.name.endswith(".tmp")]


# --- the basic contract ---------------------------------------------------------------------------

def test_record_is_one_json_object_per_run_and_csv_is_rebuilt_from_records(tmp_path):
    path = results.write_record(tmp_path, _row("a", test_accuracy=0.25, test_loss=math.nan, throughput=math.inf))
    assert path == results.record_path(tmp_path, "x", "a") == tmp_path / "runs" / "x" / "a.json"
    assert results.runs_dir(tmp_path, "x") == tmp_path / "runs" / "x"
    record = json.loads(path.read_text())
    assert list(record) == list(results.COLUMNS)
    assert record["test_accuracy"] == 0.25 and record["test_loss"] is None and record["throughput"] is None
    assert record["time_total_s"] is None  # Missing values are empty, never a made-up number.
    assert results.has_record(tmp_path, "x", "a") and not results.has_record(tmp_path, "x", "b")
    assert not results.has_record(tmp_path, "x", "../a")
    csv_path = results.rebuild_csv(tmp_path, "x")
    assert csv_path == results.results_path(tmp_path, "x")
    [row] = results.read_rows(csv_path)
    assert list(row) == list(results.COLUMNS)
    assert row["run_id"] == "a" and row["test_accuracy"] == "0.25" and row["test_loss"] == "" and row["repeat"] == "0"
    assert _leftovers(tmp_path) == []
    for name in ("append_row", "has_run", "_read_header"):
        assert not hasattr(results, name)


def test_records_are_immutable_and_names_checked(tmp_path):
    results.write_record(tmp_path, _row("a", error="first"))
    with pytest.raises(results.ResultsWriteError, match="already exists"):
        results.write_record(tmp_path, _row("a", error="second"))
    assert [r["error"] for r in results.read_records(tmp_path, "x")] == ["first"]
    for bad in ("", ".hidden", "a/b", "a\\b"):
        with pytest.raises(ValueError):
            results.write_record(tmp_path, {"run_id": bad, "experiment": "x"})
    with pytest.raises(ValueError):
        results.write_record(tmp_path, {"run_id": "ok"})  # No experiment: no directory to put it in.
    assert _leftovers(tmp_path) == []


def test_dict_records_keep_extra_keys_and_sort_by_time_then_run_id(tmp_path):
    results.write_record(tmp_path, {"run_id": "b", "experiment": "x", "timestamp_utc": "2024-01-02", "zz": 1})
    results.write_record(tmp_path, {"run_id": "c", "experiment": "x", "timestamp_utc": "2024-01-01"})
    results.write_record(tmp_path, {"run_id": "a", "experiment": "x", "timestamp_utc": "2024-01-02"})
    assert [r["run_id"] for r in results.read_records(tmp_path, "x")] == ["c", "a", "b"]
    results.rebuild_csv(tmp_path, "x")
    rows = _csv_rows(tmp_path)
    assert list(rows[0])[-1] == "zz" and [r["zz"] for r in rows] == ["", "", "1"]


def test_reading_a_missing_experiment_creates_nothing(tmp_path):
    assert results.read_records(tmp_path / "nowhere", "x") == []
    assert not (tmp_path / "nowhere").exists()


def test_short_writes_are_continued(tmp_path, monkeypatch):
    real_write = os.write
    monkeypatch.setattr(results.os, "write", lambda fd, data: real_write(fd, bytes(data[:7])))
    results.write_record(tmp_path, _row("a", error=TRICKY))
    results.rebuild_csv(tmp_path, "x")
    monkeypatch.undo()
    assert results.read_records(tmp_path, "x")[0]["error"] == TRICKY
    assert _csv_rows(tmp_path)[0]["error"] == TRICKY


# --- 1. a CSV missing its final newline -------------------------------------------------------------

def test_1_csv_missing_final_newline_then_two_runs_keeps_every_row_separate(tmp_path):
    legacy = [_legacy_row("old-1", "2024-01-01T00:00:00+00:00"), _legacy_row("old-2", "2024-01-02T00:00:00+00:00",
                                                                              old="last")]
    path = _write_legacy(tmp_path, _csv_text(legacy))
    with open(path, "r+b") as handle:  # truncate -s -1: the final newline is gone.
        handle.truncate(path.stat().st_size - 1)
    assert not path.read_bytes().endswith(b"\n")
    _run(tmp_path, "new-1", "2024-05-01T00:00:00+00:00", test_accuracy=0.75)
    _run(tmp_path, "new-2", "2024-05-02T00:00:00+00:00", error=TRICKY)
    rows = _csv_rows(tmp_path)
    assert [r["run_id"] for r in rows] == ["old-1", "old-2", "new-1", "new-2"]
    assert rows[1]["old_column"] == "last" and rows[1]["variant"] == "keras"  # Not glued to the next run.
    assert rows[2]["test_accuracy"] == "0.75" and rows[2]["old_column"] == ""
    assert rows[3]["error"] == TRICKY
    assert all(len(r) == len(rows[0]) and None not in r for r in rows)
    assert all(results.has_record(tmp_path, "x", r["run_id"]) for r in rows)  # No run reported missing.
    assert _unparsed_files(tmp_path) == []


# --- 2. disk full while writing ---------------------------------------------------------------------

def _disk_fills_after_half(monkeypatch):
    real_write, calls = os.write, []

    def write(fd, data):
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[:max(1, len(data) // 2)]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(results.os, "write", write)
    return calls


def test_2_disk_full_while_writing_a_record_leaves_no_partial_record(tmp_path, monkeypatch):
    results.write_record(tmp_path, _row("a", error=TRICKY))
    csv_before = results.rebuild_csv(tmp_path, "x").read_bytes()
    calls = _disk_fills_after_half(monkeypatch)
    with pytest.raises(results.ResultsWriteError) as caught:
        results.write_record(tmp_path, _row("b"))
    monkeypatch.undo()
    assert len(calls) == 2  # The short write was continued, and then the disk was full.
    path = results.record_path(tmp_path, "x", "b")
    assert str(caught.value) == f"cannot write run record {path}: [Errno 28] {os.strerror(errno.ENOSPC)}"
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, OSError) and caught.value.errno == errno.ENOSPC
    assert not path.exists() and _leftovers(tmp_path) == []
    assert sorted(p.name for p in results.runs_dir(tmp_path, "x").glob("*.json")) == ["a.json"]
    assert [r["error"] for r in results.read_records(tmp_path, "x")] == [TRICKY]
    assert results.results_path(tmp_path, "x").read_bytes() == csv_before


def test_2_disk_full_while_rebuilding_the_csv_keeps_the_old_csv(tmp_path, monkeypatch):
    _run(tmp_path, "a")
    results.write_record(tmp_path, _row("b"))
    csv_before = results.results_path(tmp_path, "x").read_bytes()
    _disk_fills_after_half(monkeypatch)
    with pytest.raises(results.ResultsWriteError, match=r"^cannot write results CSV .*x\.csv: \[Errno 28\]"):
        results.rebuild_csv(tmp_path, "x")
    monkeypatch.undo()
    assert results.results_path(tmp_path, "x").read_bytes() == csv_before and _leftovers(tmp_path) == []
    results.rebuild_csv(tmp_path, "x")  # Space freed: the next rebuild catches up, no "edited" false alarm.
    assert [r["run_id"] for r in _csv_rows(tmp_path)] == ["a", "b"]
    assert list(tmp_path.glob("x.csv.edited-*")) == []


# --- 3. an unusable results directory, found before any run ----------------------------------------

def _one_line_error(results_dir, **kwargs):
    with pytest.raises(results.ResultsDirError) as caught:
        results.check_results_dir(results_dir, **kwargs)
    message = str(caught.value)
    assert "\n" not in message and str(results_dir) in message and "--results-dir" in message
    return message


def test_3_results_dir_that_cannot_be_created(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    message = _one_line_error(tmp_path / "file" / "results")  # mkdir fails even for root.
    assert message.startswith("cannot create results directory")
    assert "is not a directory" in _one_line_error(tmp_path / "file")


def test_3_read_only_results_dir(tmp_path, monkeypatch):
    real_open = os.open

    def read_only_open(path, flags, *args, **kwargs):
        if str(path).startswith(str(tmp_path)) and flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(results.os, "open", read_only_open)
    message = _one_line_error(tmp_path)
    monkeypatch.undo()
    assert message == (f"results directory {tmp_path} is not writable ({os.strerror(errno.EROFS)}); "
                       f"choose another with --results-dir DIR")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits")
def test_3_chmod_read_only_results_dir(tmp_path):
    (tmp_path / "ro").mkdir(mode=0o500)
    try:
        assert "is not writable (Permission denied)" in _one_line_error(tmp_path / "ro")
    finally:
        (tmp_path / "ro").chmod(0o700)


def test_3_low_free_space(tmp_path, monkeypatch):
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(results.shutil, "disk_usage", lambda path: usage(10 * 2**30, 10 * 2**30, 2**20))
    assert "only 1.0 MiB free" in _one_line_error(tmp_path / "r")
    results.check_results_dir(tmp_path / "r", min_free_bytes=2**19)
    monkeypatch.undo()
    results.check_results_dir(tmp_path / "r")
    assert list((tmp_path / "r").iterdir()) == []  # The write test left nothing behind.


# --- 4. a damaged header ------------------------------------------------------------------------

def test_4_damaged_header_keeps_every_old_value(tmp_path, capsys):
    original = _csv_text([_legacy_row("old-1", "t1"), _legacy_row("old-2", "t2", error=TRICKY),
                          _legacy_row("old-3", "t3")])
    damaged = "alpha,beta,gamma\n" + original.split("\n", 1)[1]
    _write_legacy(tmp_path, damaged)
    assert legacy_import.import_legacy_csv(tmp_path, "x") == 0
    warning = capsys.readouterr().err
    assert warning.count("\n") == 1 and warning.startswith("dlbench: warning: ") and "x.csv" in warning
    [unparsed] = _unparsed_files(tmp_path)
    assert unparsed.read_text() == damaged  # Header line, then every row's lines, verbatim.
    for _ in range(2):  # Later runs and rebuilds neither lose nor re-import them.
        _run(tmp_path, f"new-{_}", f"2024-05-0{_ + 1}")
    assert [r["run_id"] for r in _csv_rows(tmp_path)] == ["new-0", "new-1"]
    assert _unparsed_files(tmp_path) == [unparsed] and unparsed.read_text() == damaged
    assert (tmp_path / "x.csv.pre-v2").read_text() == damaged
    assert list(tmp_path.glob("x.csv.edited-*")) == []


def test_4_damaged_header_name_keeps_the_value_as_an_extra_key(tmp_path):
    header = ["t3st_accuracy" if name == "test_accuracy" else name for name in LEGACY_HEADER]
    _write_legacy(tmp_path, _csv_text([_legacy_row("old-1", "t1", accuracy="0.875")], header=header))
    _run(tmp_path, "new", "t2")
    rows = _csv_rows(tmp_path)
    assert rows[0]["t3st_accuracy"] == "0.875" and rows[0]["test_accuracy"] == "" and rows[1]["t3st_accuracy"] == ""


# --- 5. a field over 128 KB -----------------------------------------------------------------------

def test_5_field_over_128_kb_in_a_record_and_in_a_legacy_csv(tmp_path):
    limit = csv.field_size_limit(128 * 1024)  # csv's default, whatever earlier tests did to it.
    big = "x" * 200_000 + "\n" + "y,\"" * 1000
    _write_legacy(tmp_path, _csv_text([_legacy_row("old", "t1", error=big), _legacy_row("old-2", "t2")]))
    results.write_record(tmp_path, _row("new", "t3", config=big))
    records = results.read_records(tmp_path, "x")
    assert [r["run_id"] for r in records] == ["old", "old-2", "new"]
    assert records[0]["error"] == big and records[2]["config"] == big
    results.rebuild_csv(tmp_path, "x")
    rows = _csv_rows(tmp_path)
    assert rows[0]["error"] == big and rows[2]["config"] == big and _unparsed_files(tmp_path) == []
    csv.field_size_limit(limit)


# --- 6. an unterminated quote ---------------------------------------------------------------------

def test_6_unterminated_quote_does_not_swallow_the_following_rows(tmp_path, capsys):
    text = _csv_text([_legacy_row("old-1", "t1")])
    damaged_line = 'old-2,t2,x,keras,cpu,0,1,ok,"this quote never ends,0.5,3,1.5,0.25,1234.5,kept\n'
    text += damaged_line
    text += _csv_text([_legacy_row("old-3", "t3"), _legacy_row("old-4", "t4", error=TRICKY),
                       _legacy_row("old-5", "t5")]).split("\n", 1)[1]
    last_line = 'old-6,t6,x,keras,cpu,0,1,ok,"never ends either,0.5,3,1.5,0.25,1234.5,kept\n'
    text += last_line
    _write_legacy(tmp_path, text)
    records = results.read_records(tmp_path, "x")
    assert [r["run_id"] for r in records] == ["old-1", "old-3", "old-4", "old-5"]
    assert records[2]["error"] == TRICKY
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "2 line(s)" in err
    [unparsed] = _unparsed_files(tmp_path)
    assert unparsed.read_text() == ",".join(LEGACY_HEADER) + "\n" + damaged_line + last_line


def test_6_unterminated_quote_closed_by_a_later_row_swallows_nothing(tmp_path):
    # The quote opened in 'status' is closed by the quote that starts old-4's error, and the fields
    # then add up to the header's width: parsed naively, one row would swallow old-3 and old-4.
    text = _csv_text([_legacy_row("old-1", "t1")])
    damaged_line = 'old-2,t2,x,keras,cpu,0,1,"ok,,0.5,3,1.5,0.25,1234.5,kept\n'
    text += damaged_line
    text += _csv_text([_legacy_row("old-3", "t3"), _legacy_row("old-4", "t4", error=", leading comma")]
                      ).split("\n", 1)[1]
    _write_legacy(tmp_path, text)
    messages = []
    records = results.read_records(tmp_path, "x", warn=messages.append)
    assert [r["run_id"] for r in records] == ["old-1", "old-3", "old-4"]
    assert records[2]["error"] == ", leading comma" and len(messages) == 1
    [unparsed] = _unparsed_files(tmp_path)
    assert unparsed.read_text().splitlines(keepends=True)[1:] == [damaged_line]


# --- 7. a damaged record file ---------------------------------------------------------------------

def test_7_damaged_record_is_named_in_one_line_skipped_and_kept(tmp_path, capsys):
    results.write_record(tmp_path, _row("a", "t1"))
    results.write_record(tmp_path, _row("b", "t2"))
    directory = results.runs_dir(tmp_path, "x")
    damaged = {"garbage.json": b"{\"run_id\": \"c\", \"trunc", "list.json": b"[1, 2]", "anon.json": b"{\"x\": 1}",
               "binary.json": b"\xff\xfe\x00"}
    for name, content in damaged.items():
        (directory / name).write_bytes(content)
    (directory / ".b.json.123.abcd.tmp").write_text("{half")  # A writer's temporary file: not a record.
    messages = []
    assert [r["run_id"] for r in results.read_records(tmp_path, "x", warn=messages.append)] == ["a", "b"]
    assert len(messages) == len(damaged)
    for name in damaged:
        [message] = [m for m in messages if str(directory / name) in m]
        assert message.startswith(f"skipping damaged run record {directory / name}: ") and "\n" not in message
    results.rebuild_csv(tmp_path, "x")
    err = capsys.readouterr().err.splitlines()
    # Rebuilding the CSV sets each damaged record aside (issue 19): one line each, the bytes kept.
    assert len(err) == len(damaged) and all(line.startswith("dlbench: warning: damaged run record ") for line in err)
    assert [r["run_id"] for r in _csv_rows(tmp_path)] == ["a", "b"]
    for name, content in damaged.items():
        [aside] = directory.glob(f"{name}.damaged-*")
        assert aside.read_bytes() == content and not (directory / name).exists()
    results.rebuild_csv(tmp_path, "x")
    assert capsys.readouterr().err == ""  # Said once, not by every command after.


# --- 8. concurrent writers ------------------------------------------------------------------------

def _write_many(results_dir, writer, count):
    for index in range(count):
        results.write_record(results_dir, _row(f"{writer}-{index}", f"2024-05-01T00:00:{index:02d}",
                                               error=TRICKY, test_accuracy=0.5, seed=writer))
        results.rebuild_csv(results_dir, "x")


def test_8_concurrent_writers_lose_nothing(tmp_path):
    writers, per_writer = 6, 25
    # "spawn": fresh interpreters, as separate dlbench runs are (forking after TensorFlow is imported is unsafe).
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_write_many, args=(tmp_path, w, per_writer)) for w in range(writers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    expected = sorted(f"{w}-{i}" for w in range(writers) for i in range(per_writer))
    assert sorted(r["run_id"] for r in results.read_records(tmp_path, "x")) == expected
    rows = _csv_rows(tmp_path)
    assert sorted(r["run_id"] for r in rows) == expected
    assert all(r["error"] == TRICKY and r["test_accuracy"] == "0.5" and len(r) == len(results.COLUMNS)
               and r["seed"] == r["run_id"].split("-")[0] for r in rows)
    assert list(tmp_path.glob("x.csv.*")) == [] and _leftovers(tmp_path) == []


# --- 9. importing a dlbench 0.1 CSV -----------------------------------------------------------------

def test_9_legacy_csv_import_renames_keeps_unknown_columns_and_never_duplicates(tmp_path, capsys):
    original = _csv_text([_legacy_row("old-1", "2024-01-01", error=TRICKY),
                          _legacy_row("old-2", "2024-01-02", accuracy="")])
    _write_legacy(tmp_path, original)
    assert legacy_import.import_legacy_csv(tmp_path, "x") == 2
    assert legacy_import.import_legacy_csv(tmp_path, "x") == 0
    (results.runs_dir(tmp_path, "x") / ".csv-imported").unlink()  # Even forced again: no duplicates.
    assert legacy_import.import_legacy_csv(tmp_path, "x") == 0
    records = results.read_records(tmp_path, "x")
    assert [r["run_id"] for r in records] == ["old-1", "old-2"]
    first = records[0]
    assert first["units_run"] == 3 and first["time_first_unit_s"] == 1.5 and first["time_steady_unit_s"] == 0.25
    assert first["throughput"] == 1234.5 and first["test_accuracy"] == 0.5 and first["repeat"] == 0
    assert first["old_column"] == "kept" and first["imported_from"] == "x.csv" and first["error"] == TRICKY
    assert not set(legacy_import.LEGACY_RENAMES) & set(first)
    assert records[1]["test_accuracy"] is None
    assert (tmp_path / "x.csv.pre-v2").read_text() == original
    _run(tmp_path, "new", "2024-02-01")
    rows = _csv_rows(tmp_path)
    assert list(rows[0]) == list(results.COLUMNS) + ["imported_from", "old_column"]
    assert [(r["run_id"], r["imported_from"], r["old_column"]) for r in rows] == [
        ("old-1", "x.csv", "kept"), ("old-2", "x.csv", "kept"), ("new", "", "")]
    assert rows[0]["units_run"] == "3" and rows[0]["throughput"] == "1234.5"
    assert list(tmp_path.glob("x.csv.edited-*")) == [] and _unparsed_files(tmp_path) == []
    assert capsys.readouterr().err == ""  # The original CSV, copied to .pre-v2, is no "hand edit".
    _run(tmp_path, "new-2", "2024-03-01")  # The rebuilt CSV is never imported again.
    assert [r["run_id"] for r in _csv_rows(tmp_path)] == ["old-1", "old-2", "new", "new-2"]


def test_9_fresh_results_dir_marks_import_done_before_the_first_csv(tmp_path):
    _run(tmp_path, "a")
    assert (results.runs_dir(tmp_path, "x") / ".csv-imported").exists()
    assert not (tmp_path / "x.csv.pre-v2").exists()
    assert legacy_import.import_legacy_csv(tmp_path, "x") == 0
    assert [r["run_id"] for r in results.read_records(tmp_path, "x")] == ["a"]


def test_9_read_only_results_dir_still_reads_records_and_says_why_csv_was_not_imported(tmp_path, monkeypatch):
    results.write_record(tmp_path, _row("a"))
    _write_legacy(tmp_path, _csv_text([_legacy_row("old-1", "2020-01-01T00:00:00+00:00")]))
    real_open = os.open

    def read_only_open(path, flags, *args, **kwargs):
        if flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(results.os, "open", read_only_open)
    messages = []
    assert [r["run_id"] for r in results.read_records(tmp_path, "x", warn=messages.append)] == ["a"]
    monkeypatch.undo()
    [message] = messages
    assert "x.csv not imported" in message and "[Errno 30]" in message and "\n" not in message
    assert [r["run_id"] for r in results.read_records(tmp_path, "x")] == ["old-1", "a"]  # Writable again.


# --- 10. a CSV edited by hand -----------------------------------------------------------------------

def test_10_hand_edited_csv_is_moved_aside_not_overwritten(tmp_path, capsys):
    _run(tmp_path, "a", "t1")
    _run(tmp_path, "b", "t2")
    path = results.results_path(tmp_path, "x")
    edited = path.read_text().replace("t2", "my note") + "my,own,line\n"
    path.write_text(edited)
    capsys.readouterr()
    _run(tmp_path, "c", "t3")
    [aside] = tmp_path.glob("x.csv.edited-*")
    assert aside.read_text() == edited
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(aside) in err and "changed by hand" in err
    assert [r["run_id"] for r in _csv_rows(tmp_path)] == ["a", "b", "c"]
    _run(tmp_path, "d", "t4")  # Unedited since: rewritten in place, nothing more moved aside.
    assert list(tmp_path.glob("x.csv.edited-*")) == [aside] and capsys.readouterr().err == ""


def test_10_csv_without_hash_file_counts_as_edited_unless_identical(tmp_path):
    _run(tmp_path, "a")
    hash_file = results.runs_dir(tmp_path, "x") / ".csv.sha256"
    hash_file.unlink()
    results.rebuild_csv(tmp_path, "x", warn=pytest.fail)  # Identical to what it would write: kept.
    hash_file.unlink()
    path = results.results_path(tmp_path, "x")
    path.write_text(path.read_text() + "hand,made\n")
    messages = []
    results.rebuild_csv(tmp_path, "x", warn=messages.append)
    assert len(messages) == 1 and len(list(tmp_path.glob("x.csv.edited-*"))) == 1
    assert [r["run_id"] for r in _csv_rows(tmp_path)] == ["a"]


# --- 11. merging two results directories --------------------------------------------------------------

def test_11_records_from_two_results_dirs_merge_by_copying_files(tmp_path):
    first, second = tmp_path / "laptop", tmp_path / "cluster"
    _run(first, "a", "2024-01-01")
    _run(first, "c", "2024-01-03")
    _run(second, "b", "2024-01-02", device="gpu")
    _run(second, "d", "2024-01-04", error=TRICKY)
    for path in results.runs_dir(second, "x").glob("*.json"):
        shutil.copy(path, results.runs_dir(first, "x"))
    results.rebuild_csv(first, "x")
    rows = _csv_rows(first)
    assert [r["run_id"] for r in rows] == ["a", "b", "c", "d"]
    assert rows[1]["device"] == "gpu" and rows[3]["error"] == TRICKY
    assert list(first.glob("x.csv.edited-*")) == []
