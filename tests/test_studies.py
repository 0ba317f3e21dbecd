import pytest

from dlbench import results, studies
from dlbench.cli import main


def test_every_study_point_is_a_valid_run_of_its_experiment():
    for name in studies.STUDIES:
        study = studies.get(name)
        specs = studies.plan(study, {"epochs": "1"}, None, ["cpu"], results_dir="unused")
        assert len(specs) == len(study.points)
        assert len({spec.group_id for spec in specs}) == 1
        assert all(spec.study == name and spec.study_point for spec in specs)


def test_user_overrides_apply_to_every_point_but_not_the_studied_key():
    study = studies.get("mlp_learning_rate")
    specs = studies.plan(study, {"epochs": "2", "learning_rate": "0.5"}, ["numpy"], ["cpu"], results_dir="unused")
    assert {spec.variant for spec in specs} == {"numpy"}
    assert all(spec.overrides["epochs"] == "2" for spec in specs)
    studied = sorted(point.overrides["learning_rate"] for point in study.points if point.variant == "numpy")
    assert sorted(spec.overrides["learning_rate"] for spec in specs) == studied
    assert "0.5" not in studied


def test_unknown_study_is_exit_2(capsys):
    assert main(["study", "mlp_everything"]) == 2
    assert "unknown study 'mlp_everything'; valid: mlp_architecture" in capsys.readouterr().err


def test_plot_without_rows_says_how_to_get_them(tmp_path, capsys):
    assert main(["study", "mlp_architecture", "--plot-only", "--results-dir", str(tmp_path)]) == 2
    assert "run: dlbench study mlp_architecture" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["mlp_gradient_descent"])
def test_a_short_study_runs_and_draws_its_plot(tmp_path, name):
    status = main(["study", name, "--set", "epochs=2", "--no-energy", "--results-dir", str(tmp_path)])
    assert status == 0
    plot = tmp_path / "plots" / f"{name}.png"
    assert plot.exists() and plot.stat().st_size > 10_000


def test_user_overrides_change_the_study_base_but_keep_the_rest():
    study = studies.get("mlp_overtraining")
    specs = studies.plan(study, {"epochs": "5"}, None, ["cpu"], results_dir="unused")
    assert all(spec.overrides["epochs"] == "5" and spec.overrides["train_subset"] == "2000" for spec in specs)
    assert [spec.overrides.get("dropout") for spec in specs][-1] == "0.3"


def test_plot_of_a_study_whose_every_point_failed_is_a_clear_error(tmp_path, capsys):
    for index in range(2):
        results.write_record(tmp_path, results.ResultRow(
            run_id=f"run{index}", experiment="mlp_mnist", variant="numpy", status="failed", group_id="g1",
            study="mlp_learning_rate", study_point=f"lr={index}"))
    assert main(["study", "mlp_learning_rate", "--plot-only", "--results-dir", str(tmp_path)]) == 2
    assert "no successful runs in the latest invocation of study 'mlp_learning_rate'" in capsys.readouterr().err


def test_a_gpu_study_keeps_its_gpu_points_and_says_once_what_it_skips(monkeypatch, capsys):
    from dlbench import environment

    monkeypatch.setattr(environment, "gpu_available", lambda: (True, "fake"))
    study = studies.get("mlp_overtraining")  # Its first point is NumPy (CPU only), the others Keras.
    specs = studies.plan(study, {}, None, ["gpu"], results_dir="unused")
    assert {(spec.variant, spec.device) for spec in specs} == {("keras", "gpu")}
    assert len(specs) == sum(point.variant == "keras" for point in study.points)
    assert capsys.readouterr().err.count("skipping mlp_mnist/numpy on gpu") == 1
