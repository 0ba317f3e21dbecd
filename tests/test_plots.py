"""Plots are made from the results CSV and history files alone (hand-written rows here, no training)."""

import csv

import pytest
from matplotlib import image as matplotlib_image

from dlbench import cli, plots, results


def write_run(results_dir, run_id, variant, device, source, accuracy, co2_kg=1e-4, machine=""):
    history_file = f"history/cnn_cifar/{run_id}.csv"
    (results_dir / history_file).parent.mkdir(parents=True, exist_ok=True)
    with open(results_dir / history_file, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "seconds", "accuracy", "loss", "val_accuracy", "val_loss"])
        writer.writerow([1, 3.0, 0.3, 1.9, 0.35, 1.8])
        writer.writerow([2, 2.0, 0.4, 1.6, 0.42, 1.6])
    results.write_record(results_dir, results.ResultRow(
        run_id=run_id, experiment="cnn_cifar", variant=variant, device=device, device_name="test CPU",
        status=results.STATUS_OK, dataset="cifar10", dataset_source=source, n_train=40000, parameters=62006,
        units_run=2, test_accuracy=accuracy, test_loss=1.5, time_total_s=10.0, time_steady_unit_s=2.0,
        metric="test_accuracy", metric_direction="max", metric_value=accuracy, progress_unit="epoch",
        co2_kg=co2_kg, carbon_country="FRA", history_file=history_file, config="{}", machine=machine))


def test_latest_full_run_per_variant_and_device_is_chosen(tmp_path):
    write_run(tmp_path, "0", "wide", "cpu", "full", 0.81, machine="another machine")  # Never beside the others.
    write_run(tmp_path, "a", "lenet", "cpu", "full", 0.61)
    write_run(tmp_path, "b", "lenet", "cpu", "sample", 0.20)  # Later, but only a sample check.
    write_run(tmp_path, "c", "lenet", "gpu", "full", 0.62)
    write_run(tmp_path, "d", "fc_adam", "cpu", "full", 0.50)
    chosen = plots.latest_runs(tmp_path, "cnn_cifar")
    assert list(zip(chosen["variant"], chosen["device"], chosen["run_id"])) == [
        ("lenet", "cpu", "a"), ("lenet", "gpu", "c"), ("fc_adam", "cpu", "d")]


def test_plot_command_writes_readable_pngs(tmp_path, capsys):
    write_run(tmp_path, "a", "lenet", "cpu", "full", 0.61)
    write_run(tmp_path, "c", "lenet", "gpu", "full", 0.62)
    write_run(tmp_path, "d", "fc_adam", "cpu", "full", 0.50, co2_kg=None)
    assert cli.main(["plot", "cnn_cifar", "--results-dir", str(tmp_path)]) == 0
    names = sorted(path.name for path in (tmp_path / "plots").iterdir())
    assert names == ["cnn_cifar_curves_fc_adam_cpu.png", "cnn_cifar_curves_lenet_cpu.png",
                     "cnn_cifar_curves_lenet_gpu.png", "cnn_cifar_summary.png"]
    height, width, _ = matplotlib_image.imread(tmp_path / "plots" / "cnn_cifar_summary.png").shape
    assert width > 1000 and height > 700
    assert "written" in capsys.readouterr().out


def test_plot_without_results_or_with_unknown_name_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["plot", "cnn_cifar", "--results-dir", str(tmp_path)]) == 2
    assert "no results for 'cnn_cifar'" in capsys.readouterr().err
    assert cli.main(["plot", "no_such_experiment", "--results-dir", str(tmp_path)]) == 2


def test_failed_runs_only_is_a_clear_error(tmp_path):
    results.write_record(tmp_path, results.ResultRow(
        run_id="x", experiment="cnn_cifar", variant="lenet", device="cpu", status=results.STATUS_FAILED))
    with pytest.raises(ValueError, match="no successful runs"):
        plots.plot_experiment(tmp_path, "cnn_cifar")


def test_curves_draw_every_logged_metric_pair_not_only_accuracy_and_loss(tmp_path):
    history = tmp_path / "history.csv"
    history.write_text("epoch,seconds,d_loss,g_loss,val_fcd\n1,3.0,0.7,1.2,80\n2,2.0,0.6,1.4,40\n")
    import pandas as pd

    assert plots.logged_metrics(pd.read_csv(history)) == ["d_loss", "g_loss", "fcd"]
    episodes = pd.DataFrame({"episode": [1, 2], "seconds": [1.0, 1.0], "items": [200, 200],
                             "score": [1.0, 2.0], "epsilon": [0.9, 0.8]})
    assert plots.logged_metrics(episodes) == ["score", "epsilon"]
