import json

import numpy as np
import pandas as pd
import pytest

from dlbench import report


def test_config_differences_show_only_what_departs_from_the_variants_defaults():
    frame = pd.DataFrame({"variant": "keras", "config": [
        '{"epochs": 12, "learning_rate": 0.01}',
        '{"epochs": 12, "learning_rate": 0.01, "l2": 0.0}',  # A newer row with one more key.
        '{"epochs": 12, "learning_rate": 0.1, "l2": 0.0}',
        '{"epochs": 3, "learning_rate": 0.01, "l2": 0.001}',
    ]})
    defaults = {"keras": {"epochs": "12", "learning_rate": "0.01", "l2": "0.0"}}
    assert report.config_differences(frame, defaults).tolist() == ["", "", "learning_rate=0.1", "epochs=3 l2=0.001"]


def test_each_variants_own_defaults_are_not_differences():
    # cnn_cifar's variants differ in optimizer, learning rate and epochs by default.
    defaults = report.variant_defaults("cnn_cifar")
    assert defaults["fc_adam"]["learning_rate"] != defaults["fc_sgd"]["learning_rate"]
    frame = pd.DataFrame({"variant": ["fc_sgd", "fc_adam", "lenet", "wide"], "config": [
        json.dumps({key: json.loads(value) for key, value in defaults[variant].items()})
        for variant in ("fc_sgd", "fc_adam", "lenet", "wide")]})
    frame.loc[3, "config"] = frame.loc[3, "config"].replace('"epochs": 15', '"epochs": 2')
    assert report.config_differences(frame, defaults).tolist() == ["", "", "", "epochs=2"]


def _record(results_dir, run_id, variant, value, **fields):
    from dlbench import results

    results.write_record(results_dir, results.ResultRow(
        run_id=run_id, timestamp_utc=f"2026-12-01T00:00:0{run_id[-1]}+00:00", experiment="mlp_mnist",
        variant=variant, device="cpu", status="ok", dataset_source="full", metric="test_accuracy",
        metric_direction="max", metric_value=value, test_accuracy=value, config="{}", **fields))


def test_compare_ranks_on_the_declared_metric_and_averages_repeats(tmp_path):
    _record(tmp_path, "run1", "numpy", 0.90)
    _record(tmp_path, "run2", "keras", 0.95)
    _record(tmp_path, "run3", "keras", 0.97)
    table = report.compare(tmp_path, "mlp_mnist")
    assert table["variant"].tolist() == ["keras", "numpy"]  # Higher is better for test_accuracy.
    assert table["metric_median"].tolist() == [0.96, 0.90] and table["runs"].tolist() == [2, 1]
    text = report.format_table(table)
    assert "0.96 [0.95–0.97]" in text and text.splitlines()[1].startswith("variant")
    assert text.splitlines()[0] == "machine: unknown machine (older record)"  # Records without a machine.


def test_rows_imported_from_dlbench_0_1_get_their_headline_from_the_old_column():
    row = {"metric_value": None, "test_accuracy": 0.91, "extra_metrics": ""}
    from dlbench import results

    assert results.headline_value(row, "test_accuracy") == 0.91
    assert results.headline_value({"metric_value": None, "extra_metrics": '{"dice": 0.8}'}, "dice") == 0.8
    assert results.headline_value({"metric_value": float("nan")}, "dice") is None


def test_the_run_table_fits_a_100_column_terminal(tmp_path):
    _record(tmp_path, "run1", "keras_fast", 0.9485, time_steady_unit_s=0.55, time_total_s=11.7,
            energy_kwh=7.6e-5, co2_kg=4.3e-6, forecast_time_error=-0.031, progress_unit="epoch",
            cpu_other_share=0.012)
    from dlbench import runner

    table = runner.run_table(tmp_path, "mlp_mnist", ["run1"])
    assert "keras_fast" in table and "0.9485" in table and "-3%" in table and "s/epoch" in table
    assert "1%" in table.splitlines()[1]  # What other processes used of the CPU meanwhile.
    assert max(len(line) for line in table.splitlines()) < 100


def test_compare_shows_the_metrics_an_experiment_declares_beside_its_headline(tmp_path):
    from dlbench import results

    for run_id, auc in (("run1", 0.90), ("run2", 0.94)):
        results.write_record(tmp_path, results.ResultRow(
            run_id=run_id, experiment="autoencoder_mnist", variant="conv", device="cpu", status="ok",
            dataset_source="full", metric="test_mse", metric_direction="min", metric_value=0.005, config="{}",
            extra_metrics=json.dumps({"test_mse": 0.005, "anomaly_auc": auc, "psnr_gain": 7.0})))
    table = report.compare(tmp_path, "autoencoder_mnist")
    assert table.loc[0, "anomaly_auc"] == pytest.approx(0.92) and table.loc[0, "psnr_gain"] == 7.0
    assert np.isnan(table.loc[0, "noisy_psnr"])  # Declared but absent from these rows: empty, not an error.
    assert "anomaly_auc" in report.format_table(table).splitlines()[1]
    header = report.markdown_table(table).splitlines()[2:]
    assert "| anomaly_auc |" in header[0] and header[1].count("---") == header[0].count("|") - 1
