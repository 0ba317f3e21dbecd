import csv
import multiprocessing

from dlbench import results


def _append_many(path, writer, count):
    for index in range(count):
        results.append_row(path, results.ResultRow(run_id=f"{writer}-{index}", experiment="x",
                                                    error="comma, \"quote\"\nnewline", test_accuracy=0.5))


def test_first_append_writes_header_and_row(tmp_path):
    path = tmp_path / "sub" / "x.csv"
    results.append_row(path, results.ResultRow(run_id="a", experiment="x", test_accuracy=0.25))
    rows = results.read_rows(path)
    assert list(rows[0]) == list(results.COLUMNS)
    assert rows[0]["run_id"] == "a" and rows[0]["test_accuracy"] == "0.25"
    assert rows[0]["time_total_s"] == ""  # Missing values are empty, never a made-up number.


def test_concurrent_appends_lose_nothing(tmp_path):
    path = tmp_path / "x.csv"
    writers, per_writer = 6, 25
    # "spawn": fresh interpreters, as separate dlbench runs are (forking after TensorFlow is imported is unsafe).
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_append_many, args=(path, w, per_writer)) for w in range(writers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    rows = results.read_rows(path)
    assert sorted(r["run_id"] for r in rows) == sorted(f"{w}-{i}" for w in range(writers) for i in range(per_writer))
    assert all(r["error"] == "comma, \"quote\"\nnewline" and len(r) == len(results.COLUMNS) for r in rows)


def test_older_file_with_other_columns_is_migrated_without_losing_rows(tmp_path):
    path = tmp_path / "x.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["run_id", "experiment", "old_column"])
        writer.writerow(["old-1", "x", "kept"])
    results.append_row(path, results.ResultRow(run_id="new-1", experiment="x"))
    rows = results.read_rows(path)
    assert [r["run_id"] for r in rows] == ["old-1", "new-1"]
    assert rows[0]["old_column"] == "kept" and rows[1]["old_column"] == ""
    assert results.has_run(path, "new-1") and not results.has_run(path, "missing")
