"""dlbench report: the self-contained HTML page and REPORT.md, on hand-written records."""

import html.parser
import itertools
import re
import shutil
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from dlbench import cli, registry, report_html, results  # noqa: E402

MEASURED = "cpu=intel_rapl (measured)"
ESTIMATED = "ram=estimate from memory size; cpu=cpu_load estimate (TDP 8 W)"


RECORD_HOURS = itertools.count()


def _record(results_dir, run_id, experiment="mlp_mnist", **fields):
    # One run an hour: records that overlap in time would be judged contended.
    hour = next(RECORD_HOURS) % 24
    values = dict(run_id=run_id, timestamp_utc=f"2026-12-01T{hour:02d}:00:00+00:00", experiment=experiment,
                  variant="numpy_fast", device="cpu", status="ok", dataset_source="full", metric="test_accuracy",
                  metric_direction="max", config="{}", progress_unit="epoch", time_steady_unit_s=0.25,
                  time_total_s=5.0, energy_kwh=3e-5, co2_kg=1.7e-6, throughput=2.1e5, throughput_unit="images/s",
                  energy_method=MEASURED, energy_status="ok", carbon_country="FRA", carbon_intensity_g_per_kwh=56.0,
                  forecast_time_s=5.2, forecast_kwh=3.1e-5, forecast_time_error=0.04, forecast_kwh_error=0.03,
                  host="testhost", device_name="Test CPU", dlbench_version="0.2.0", git_commit="abc123")
    values.update(fields)
    results.write_record(results_dir, results.ResultRow(**values))


def _image(path, kind="png"):
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "gif":
        frames = [Image.new("RGB", (20, 20), colour) for colour in ("red", "blue")]
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
        return
    figure, axis = plt.subplots(figsize=(2, 1.5))
    axis.plot([0, 1], [0, 1])
    figure.savefig(path, dpi=40)
    plt.close(figure)


def write_example_results(results_dir):
    """mlp_mnist: a full run with measured energy that reached nothing (with history, artifacts), a
    sample run with estimated energy that reached its target, a dlbench 0.1 row (no target) and a
    failed run; cnn_cifar: one row; plus figures already in results/plots/."""
    _record(results_dir, "full1", metric_value=0.9123, test_accuracy=0.9123, target=0.95,
            history_file="history/mlp_mnist/full1.csv", artifacts_dir="artifacts/mlp_mnist/full1")
    history = results_dir / "history" / "mlp_mnist" / "full1.csv"
    history.parent.mkdir(parents=True)
    history.write_text("epoch,seconds,items,loss,accuracy,val_loss,val_accuracy\n"
                       "1,0.3,54000,1.0,0.70,0.50,0.85\n2,0.25,54000,0.4,0.88,0.37,0.89\n"
                       "3,0.25,54000,0.3,0.91,0.30,0.91\n")
    _image(results_dir / "artifacts" / "mlp_mnist" / "full1" / "grid.png")
    _image(results_dir / "artifacts" / "mlp_mnist" / "full1" / "rollout.gif", kind="gif")
    _record(results_dir, "sample22", variant="keras", dataset_source="sample", energy_method=ESTIMATED,
            metric_value=0.8042, target=0.95, time_to_target_s=12.5, energy_to_target_kwh=1.2e-4,
            energy_kwh=2e-4, co2_kg=1.1e-5)
    _record(results_dir, "legacy333", variant="keras_fast", dataset_source="full", metric_value=None,
            test_accuracy=0.9485, dlbench_version="0.1.0", forecast_time_s=None, forecast_time_error=None)
    _record(results_dir, "failed4444", variant="keras", status="failed", error="boom", metric_value=None)
    _record(results_dir, "cifar55555", experiment="cnn_cifar", variant="lenet", metric_value=0.6123,
            target=0.6, time_to_target_s=40.0, energy_to_target_kwh=2.5e-4, time_total_s=86.5, co2_kg=3.1e-5)
    for name in ("mlp_mnist_summary.png", "mlp_learning_rate.png", "mlp_mnistic.png", "unrelated.png"):
        _image(results_dir / "plots" / name)
    (results_dir / "plots" / "mlp_mnist_broken.png").write_bytes(b"not a PNG")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The report of the example results, built once: (results dir, HTML text, Markdown text)."""
    results_dir = tmp_path_factory.mktemp("results")
    write_example_results(results_dir)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(registry.EXPERIMENTS, "never_run", "experiments.mlp_mnist")
        assert cli.main(["report", "--results-dir", str(results_dir)]) == 0
    return (results_dir, (results_dir / "report.html").read_text(encoding="utf-8"),
            (results_dir / "REPORT.md").read_text(encoding="utf-8"))


class PageChecker(html.parser.HTMLParser):
    """Collects the images and the visible text, and every tag closed out of order or never."""
    VOID = {"meta", "img", "br", "hr", "link", "input", "source", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.open_tags, self.problems, self.images, self.text = [], [], [], []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))
        if tag not in self.VOID:
            self.open_tags.append(tag)

    def handle_endtag(self, tag):
        if not self.open_tags or self.open_tags[-1] != tag:
            self.problems.append(f"</{tag}> while open: {self.open_tags[-3:]}")
        else:
            self.open_tags.pop()

    def handle_data(self, data):
        self.text.append(data)


def parsed(page: str) -> PageChecker:
    checker = PageChecker()
    checker.feed(page)
    checker.close()
    return checker


def test_the_page_is_well_formed_self_contained_and_phone_readable(built):
    _, page, _ = built
    checker = parsed(page)
    assert checker.problems == [] and checker.open_tags == []
    assert page.startswith("<!DOCTYPE html>") and 'name="viewport"' in page and "overflow-x: auto" in page
    assert "@media print" in page
    assert checker.images and all(image["src"].startswith("data:image/") for image in checker.images)
    kinds = {image["src"].split(";")[0] for image in checker.images}
    assert kinds == {"data:image/png", "data:image/gif"}
    # Curves drawn from the history, the experiment's and its study's PNGs, the two artifacts, 3 overview panels.
    assert len(checker.images) == 1 + 2 + 2 + 3  # cnn_cifar has no history: no curves.
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "mlp_mnist_broken.png not embedded (unreadable" in " ".join(checker.text)  # A note, not a crash.


def test_every_experiment_with_rows_shows_its_metric_and_values_and_flags(built):
    _, page, _ = built
    text = " ".join(parsed(page).text)
    for expected in ("mlp_mnist", "cnn_cifar", "test_accuracy median [min–max] (max is better)", "0.9123", "0.8042",
                     "0.6123", "0.9485", "machine: Test CPU (older record)", "210,000 images/s",
                     report_html.SAMPLE_LEGEND, report_html.ESTIMATE_LEGEND,
                     f"sample {report_html.SAMPLE_MARK}", f"{report_html.ESTIMATE_MARK} {ESTIMATED}"):
        assert expected in text, expected
    assert re.search(r"never_run[^.]*: not run yet", text)
    assert 'class="sample estimate"' in page  # The sample row is highlighted.
    assert "1 failed" in text  # The failed run is counted, not tabled.
    assert f"{report_html.ESTIMATE_MARK} {MEASURED}" not in text and MEASURED in text


def test_time_and_energy_to_target_say_not_reached_and_n_a(built):
    _, _, markdown = built
    rows = {line.split(" | ")[0].strip("| "): line for line in markdown.splitlines() if line.startswith("| ")}
    assert "| ≥ 0.95 | not reached | not reached |" in rows["numpy_fast"]
    assert "| ≥ 0.95 | 12.5 s | 0.00012 kWh |" in rows["keras"]
    assert "| n/a | n/a | n/a |" in rows["keras_fast"]  # Imported from dlbench 0.1: no target.
    assert "| ≥ 0.6 | 40.0 s | 0.00025 kWh |" in rows["lenet"]


def test_report_md_has_the_same_table_values_and_links_to_existing_pngs(built):
    results_dir, page, markdown = built
    page_text = " ".join(parsed(page).text)
    table_lines = [line for line in markdown.splitlines() if line.startswith("| ") and "---" not in line]
    assert table_lines
    for line in table_lines:
        for cell in line.strip("| ").split(" | "):
            assert cell.replace("\\|", "|") in page_text, cell
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert links and all((results_dir / link).is_file() for link in links)
    assert any(link.startswith("plots/report/") for link in links)
    assert "plots/mlp_mnist_summary.png" in links and "plots/mlp_learning_rate.png" in links
    assert "plots/mlp_mnistic.png" not in links and "plots/unrelated.png" not in links
    assert "artifacts/mlp_mnist/full1/rollout.gif" in links
    assert "not run yet" in markdown


def test_no_results_at_all_is_one_line_and_exit_2(tmp_path, capsys):
    assert cli.main(["report", "--results-dir", str(tmp_path / "empty")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("dlbench: error: no run records") and error.count("\n") == 1


def test_pareto_front_in_both_directions():
    co2 = [1.0, 2.0, 3.0, 4.0, 4.0, np.nan, 0.5]
    metric = [0.5, 0.7, 0.6, 0.9, 0.9, 1.0, np.nan]
    # Higher is better: (3, 0.6) is beaten by (2, 0.7); the two equal (4, 0.9) points both stay.
    assert report_html.pareto_front(co2, metric, True).tolist() == [True, True, False, True, True, False, False]
    # Lower is better (a loss): the cheapest run also has the lowest value and beats all others.
    assert report_html.pareto_front(co2, metric, False).tolist() == [True, False, False, False, False, False, False]
    assert report_html.pareto_front([1, 2, 3], [0.3, 0.2, 0.1], False).tolist() == [True, True, True]


def test_cpu_gpu_speed_up_of_a_known_pair(tmp_path):
    for run_id, device, steady, total in (("c1", "cpu", 2.0, 100.0), ("c2", "cpu", 2.2, 110.0),
                                          ("g1", "gpu", 0.5, 42.0)):
        _record(tmp_path, run_id, variant="keras", device=device, time_steady_unit_s=steady, time_total_s=total,
                metric_value=0.9)
    _record(tmp_path, "other", variant="keras", device="gpu", config='{"epochs": 3}', metric_value=0.8)
    pairs = report_html.speedups(report_html.prepared_rows(tmp_path, "mlp_mnist"))
    assert len(pairs) == 1 and pairs["variant"].iloc[0] == "keras"
    assert pairs["steady_speedup"].iloc[0] == pytest.approx(2.1 / 0.5)
    assert pairs["total_speedup"].iloc[0] == pytest.approx(105.0 / 42.0)
    section = report_html.experiment_section(tmp_path, "mlp_mnist", report_html.prepared_rows(tmp_path, "mlp_mnist"),
                                             tmp_path)
    speedup = next(block for block in section.blocks if getattr(block, "title", "").startswith("CPU vs GPU"))
    assert speedup.rows == [["keras", "full", "2.1", "0.5", "4.20×", "105.0", "42.0", "2.50×", "defaults"]]


def test_the_report_never_imports_tensorflow(tmp_path):
    write_example_results(tmp_path)
    code = ("import sys; from dlbench import cli; assert cli.main(['report', '--results-dir', sys.argv[1]]) == 0; "
            "loaded = {'tensorflow', 'keras'} & set(sys.modules); assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, timeout=120)


BROWSER = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(name)), None)


@pytest.mark.skipif(BROWSER is None, reason="no chromium / chromium-browser / google-chrome on PATH")
def test_headless_chromium_renders_the_page(built, tmp_path):
    results_dir, _, _ = built
    screenshot = tmp_path / "phone.png"
    subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=412,2000",
                    f"--screenshot={screenshot}", (results_dir / "report.html").as_uri()],
                   check=True, timeout=120, capture_output=True)
    with Image.open(screenshot) as image:
        assert image.size == (412, 2000)
        darkest, lightest = image.convert("L").getextrema()
        assert lightest - darkest > 100  # Something was drawn: not a blank page.


def test_curves_show_the_headline_log_and_each_named_loss_once():
    from dlbench.experiment import Metric
    from dlbench.report_html import curve_columns

    gan = pd.DataFrame({"epoch": [1, 2], "seconds": [1, 1], "d_loss": [1.3, 1.2], "g_loss": [0.7, 0.8], "fcd": [90, 50]})
    assert curve_columns([gan], Metric("fcd", higher_is_better=False, validation_log="fcd")) == ["fcd", "d_loss", "g_loss"]
    autoencoder = pd.DataFrame({"epoch": [1], "loss": [0.02], "val_loss": [0.01]})
    assert curve_columns([autoencoder], Metric("test_mse", False, validation_log="val_loss")) == ["val_loss"]
