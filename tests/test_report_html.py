"""dlbench report: the self-contained HTML page and REPORT.md, on hand-written records."""

import html.parser
import itertools
import json
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

from dlbench import cli, plots, registry, report, report_html, results  # noqa: E402

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


def _history(results_dir, experiment, run_id, text):
    path = results_dir / "history" / experiment / f"{run_id}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return f"history/{experiment}/{run_id}.csv"


def write_example_results(results_dir):
    """mlp_mnist: a full run with measured energy that reached nothing (with history, artifacts), a
    sample run with estimated energy that reached its target, a dlbench 0.1 row (no target), a failed
    run and two points of the learning-rate study; cnn_cifar: one row; plus figures already in
    results/plots/."""
    _record(results_dir, "full1", metric_value=0.9123, test_accuracy=0.9123, target=0.95,
            history_file=_history(results_dir, "mlp_mnist", "full1",
                                  "epoch,seconds,items,loss,accuracy,val_loss,val_accuracy\n"
                                  "1,0.3,54000,1.0,0.70,0.50,0.85\n2,0.25,54000,0.4,0.88,0.37,0.89\n"
                                  "3,0.25,54000,0.3,0.91,0.30,0.91\n"),
            artifacts_dir="artifacts/mlp_mnist/full1")
    _image(results_dir / "artifacts" / "mlp_mnist" / "full1" / "grid.png")
    _image(results_dir / "artifacts" / "mlp_mnist" / "full1" / "rollout.gif", kind="gif")
    _record(results_dir, "sample22", variant="keras", dataset_source="sample", energy_method=ESTIMATED,
            metric_value=0.8042, target=0.95, time_to_target_s=12.5, energy_to_target_kwh=1.2e-4,
            energy_kwh=2e-4, co2_kg=1.1e-5)
    _record(results_dir, "legacy333", variant="keras_fast", dataset_source="full", metric_value=None,
            test_accuracy=0.9485, dlbench_version="0.1.0", forecast_time_s=None, forecast_time_error=None,
            co2_kg=5e-6, time_steady_unit_s=0.6)
    _record(results_dir, "failed4444", variant="keras", status="failed", error="boom", metric_value=None)
    for run_id, rate, accuracy in (("lr_small", 0.0001, 0.61), ("lr_large", 3.0, 0.098)):
        _record(results_dir, run_id, study="mlp_learning_rate", study_point=f"learning_rate={rate}",
                group_id="study1", config=json.dumps({"learning_rate": rate}), metric_value=accuracy)
    _record(results_dir, "cifar55555", experiment="cnn_cifar", variant="lenet", metric_value=0.6123,
            target=0.6, time_to_target_s=40.0, energy_to_target_kwh=2.5e-4, time_total_s=86.5, co2_kg=3.1e-5)
    for name in ("mlp_mnist_summary.png", "mlp_mnist_curves_numpy_fast_cpu.png", "mlp_learning_rate.png",
                 "mlp_mnistic.png", "unrelated.png"):
        _image(results_dir / "plots" / name)
    (results_dir / "plots" / "mlp_mnist_broken.png").write_bytes(b"not a PNG")


def write_topic_results(results_dir):
    """Topics judged on their own metrics: unet_nuclei (dice, iou), dqn_mouse on generated games (a
    random mouse that never trains, a conv agent with a score log), gan_mnist (a DCGAN with a numbered
    series of grids, and an interrupted run whose grids must not show)."""
    for run_id, loss, dice, iou, co2 in (("unet_dice", "dice", 0.955, 0.914, 2e-5), ("unet_bce", "bce", 0.953, 0.911, 1e-5)):
        _record(results_dir, run_id, experiment="unet_nuclei", variant=loss, metric="dice", metric_value=dice,
                extra_metrics=json.dumps({"dice": dice, "iou": iou, "average_precision": 0.99}),
                config=json.dumps({"loss": loss}), co2_kg=co2, artifacts_dir=f"artifacts/unet_nuclei/{run_id}")
        _image(results_dir / "artifacts" / "unet_nuclei" / run_id / "overlays.png")
    _record(results_dir, "mouse_random", experiment="dqn_mouse", variant="random", dataset_source="generated",
            metric="mean_score", metric_value=-3.5, progress_unit="episode", units_run=None,
            time_steady_unit_s=None, co2_kg=3e-7, extra_metrics=json.dumps({"mean_score": -3.5}),
            artifacts_dir="artifacts/dqn_mouse/mouse_random")
    _image(results_dir / "artifacts" / "dqn_mouse" / "mouse_random" / "game_random_strip.png")
    _record(results_dir, "mouse_conv", experiment="dqn_mouse", variant="conv", dataset_source="generated",
            metric="mean_score", metric_value=14.9, progress_unit="episode", units_run=160, co2_kg=9e-6,
            time_steady_unit_s=0.13, extra_metrics=json.dumps({"mean_score": 14.9}),
            history_file=_history(results_dir, "dqn_mouse", "mouse_conv",
                                  "episode,seconds,count,items,score,training_return,loss,epsilon\n"
                                  "16,2.9,16,3200,-2.9,-16.5,0.019,1.0\n32,2.1,16,3200,4.0,-10.0,0.0015,0.8\n"),
            artifacts_dir="artifacts/dqn_mouse/mouse_conv")
    for name in ("game_conv.gif", "game_conv_strip.png", "learning_curve_conv.png"):
        _image(results_dir / "artifacts" / "dqn_mouse" / "mouse_conv" / name, kind=name.rsplit(".", 1)[1])
    _record(results_dir, "gan_cut", experiment="gan_mnist", variant="dcgan", status="interrupted", metric="fcd",
            metric_value=None, artifacts_dir="artifacts/gan_mnist/gan_cut")
    _image(results_dir / "artifacts" / "gan_mnist" / "gan_cut" / "grid_epoch_001.png")
    _record(results_dir, "gan_done", experiment="gan_mnist", variant="dcgan", metric="fcd", metric_direction="min",
            metric_value=24.8, artifacts_dir="artifacts/gan_mnist/gan_done")
    for name in ("grid_epoch_001.png", "grid_epoch_002.png", "grid_epoch_010.png", "grid_final.png"):
        _image(results_dir / "artifacts" / "gan_mnist" / "gan_done" / name)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The report of the example results, built once: (results dir, HTML text, Markdown text)."""
    results_dir = tmp_path_factory.mktemp("results")
    write_example_results(results_dir)
    write_topic_results(results_dir)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(registry.EXPERIMENTS, "never_run", "experiments.mlp_mnist")
        assert cli.main(["report", "--results-dir", str(results_dir)]) == 0
    return (results_dir, (results_dir / "report.html").read_text(encoding="utf-8"),
            (results_dir / "REPORT.md").read_text(encoding="utf-8"))


class PageChecker(html.parser.HTMLParser):
    """Collects the images, the visible text, the summary's lines, and every tag closed out of order or never."""
    VOID = {"meta", "img", "br", "hr", "link", "input", "source", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.open_tags, self.problems, self.images, self.text = [], [], [], []
        self.summary_lines, self._in_summary_item = [], False

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))
        if tag == "li" and 'id="summary"' in self._open_sections():
            self.summary_lines.append("")
            self._in_summary_item = True
        if tag not in self.VOID:
            self.open_tags.append(tag + "".join(f' {key}="{value}"' for key, value in attrs if key == "id"))

    def _open_sections(self):
        return " ".join(tag for tag in self.open_tags if tag.startswith("section"))

    def handle_endtag(self, tag):
        if not self.open_tags or self.open_tags[-1].split(" ")[0] != tag:
            self.problems.append(f"</{tag}> while open: {self.open_tags[-3:]}")
        else:
            self.open_tags.pop()
        if tag == "li":
            self._in_summary_item = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_summary_item:
            self.summary_lines[-1] += data


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
    assert "@media print" in page and "figure:target" in page  # Printable; a click opens an image full size.
    assert checker.images and all(image["src"].startswith("data:image/") for image in checker.images)
    assert {image["src"].split(";")[0] for image in checker.images} == {"data:image/png", "data:image/gif"}
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "mlp_mnist_broken.png not embedded (unreadable" in " ".join(checker.text)  # A note, not a crash.
    # Every image opens full size: its link targets its own figure.
    assert len(re.findall(r'<figure id="(figure-\d+)"[^>]*><a class="close" href="#\1-caption">close ✕</a>'
                          r'<a href="#\1"', page)) == len(checker.images)


def test_the_page_opens_with_the_summary_one_line_per_topic(built):
    _, page, markdown = built
    assert re.search(r'<main>\s*<section id="summary">', page)  # Before any table or figure.
    lines = dict(line.split(": ", 1) for line in parsed(page).summary_lines)
    assert list(lines) == [*registry.EXPERIMENTS, "never_run"]  # In the registry's order (never_run patched in).
    assert lines["never_run"] == lines["sentiment_imdb"] == "not run yet (no run record)."
    # The mlp line answers from its full-data plain runs: keras_fast (94.9 %) best, numpy_fast (91.2 %)
    # is not within 1 %, so the cheaper one is named as the cheapest; the sample run and the study are not used.
    assert lines["mlp_mnist"].startswith("best test accuracy: keras_fast 94.8 %") and "numpy_fast 91.2 % (the cheapest)" in lines["mlp_mnist"]
    assert "80.4" not in lines["mlp_mnist"] and "61.0" not in lines["mlp_mnist"]
    # unet: dice within 1 % of each other, so the cheaper bce is the Pareto choice, with half the CO2.
    assert lines["unet_nuclei"] == ("best dice: dice 0.955 (iou 0.914, average precision 0.99) at 0.02 g CO2; "
                                    "bce 0.953 (as good, within 1 %) with 2.0× less CO2 and about the same time "
                                    "per epoch — Test CPU (older record), CPU, full data, n=1 each.")
    assert "generated data" in lines["dqn_mouse"] and "sample" not in lines["dqn_mouse"]
    assert lines["dqn_mouse"].startswith("best mean score: conv 14.9 at 0.009 g CO2; random -3.5 (the cheapest)")
    assert lines["gan_mnist"].startswith("fcd: dcgan 24.8") and "(one variant so far)" in lines["gan_mnist"]
    cpu_gpu = "CPU vs GPU: not measured yet. All "
    assert page.count(cpu_gpu) == 1 and markdown.count(cpu_gpu) == 1  # Once for all topics, not per topic.
    assert "- **unet_nuclei**: best dice: dice 0.955" in markdown


def test_every_figure_of_the_shown_runs_is_on_the_page_and_only_theirs(built):
    results_dir, page, markdown = built
    shown = set(re.findall(r'alt="[^"]*run (\w+): ([\w.]+)"', page))
    expected = set()
    for name in ("mlp_mnist", "unet_nuclei", "dqn_mouse", "gan_mnist"):
        for _, row in report_html.runs_to_draw(report_html.prepared_rows(results_dir, name)).iterrows():
            folder = results_dir / row["artifacts_dir"] if row["artifacts_dir"] else None
            expected |= {(row["run_id"], path.name) for path in (folder.iterdir() if folder else [])}
    assert shown == expected and len(expected) == 12
    assert not any(run_id == "gan_cut" for run_id, _ in shown)  # The interrupted run's grids are not shown.
    # The series' latest grid and the final grid in view, the two earlier grids behind a fold that counts them.
    fold = page[page.index("<summary>2 more figures of these runs"):]
    assert "grid_epoch_001.png" in fold[:fold.index("</details>")] and "grid_epoch_010.png" not in fold[:fold.index("</details>")]
    assert "<details><summary>2 more figures of these runs" in markdown


def test_topic_tables_show_their_own_metrics_study_keys_and_energy_as_a_flag(built):
    _, page, markdown = built
    text = " ".join(parsed(page).text)
    for expected in ("test_accuracy median [min–max] (max is better)", "0.9123", "0.8042", "0.6123", "0.9485",
                     "machine: Test CPU (older record)", "210,000 images/s", "iou", "average_precision", "0.914",
                     report_html.SAMPLE_LEGEND, report_html.ESTIMATE_LEGEND, f"sample {report_html.SAMPLE_MARK}",
                     f"{report_html.ESTIMATE_MARK} estimated energy in 1 of 3 rows: “{ESTIMATED}”."):
        assert expected in text, expected
    assert ESTIMATED not in text.replace(f"“{ESTIMATED}”", "")  # The method once as a footnote, never per row.
    assert "| 0.0002 ≈ |" in markdown and "3e-05 ≈" not in markdown  # Only the estimated row is flagged.
    assert re.search(r"never_run[^.]*: not run yet", text)
    assert 'class="sample estimate"' in page  # The sample row is highlighted.
    assert "1 failed run" in text  # The failed run is counted, not tabled.
    # The study's table starts with the key it varies, in the study's order, and its findings name the points.
    study = markdown[markdown.index("### Study mlp_learning_rate"):]
    assert study.splitlines()[2].startswith("| learning_rate | n | test_accuracy median")
    assert "| 0.0001 | 1 | 0.61 |" in study and "| 3.0 | 1 | 0.098 |" in study
    assert "Study mlp_learning_rate (2 points): best test_accuracy 61.0 % at learning_rate=0.0001, worst 9.8 % at " \
           "learning_rate=3.0." in markdown


def test_labels_say_generated_not_sample_and_never_nan(built, tmp_path):
    results_dir, page, _ = built
    assert not re.search(r"\bnan\b", " ".join(parsed(page).text), re.IGNORECASE)
    rows = plots.latest_runs(results_dir, "dqn_mouse")
    assert plots._data_note(rows) == "generated data"
    assert plots._data_note(pd.DataFrame({"dataset_source": ["full", "sample"]})) == \
        "mixed: full data and shipped SAMPLE data, not the full dataset"
    assert plots._summary_layout(rows)[3] == ["random\nno training", "conv\n160 episodes"]  # Not "nan episodes".
    # The dqn curves show the score (the headline's log), then the loss; the accuracy axis zooms in.
    assert (results_dir / "plots" / "report" / "dqn_mouse_curves_score.png").exists()
    assert report_html.curve_columns([report.history(results_dir, rows.iloc[-1])],
                                     registry.get("dqn_mouse").metric) == ["score", "loss"]
    low, high = plots.zoomed_limits([0.946, 0.949])
    assert 0.9 < low < 0.946 and 0.949 < high < 1.0
    assert plots.zoomed_limits([16.3, 24.9]) is None and plots.zoomed_limits([-3.5, 14.9]) is None


def test_the_game_strip_has_a_legend(tmp_path):
    from experiments import dqn_mouse

    class FakeRecord:
        units = []

        def artifact_path(self, name):
            return tmp_path / name

    frame = np.full((24, 24, 3), 235, np.uint8)
    frame[:12, :12] = dqn_mouse.PICTURE_LEGEND["poison (-1)"]
    dqn_mouse.save_pictures(FakeRecord(), [frame] * 20, "conv")
    with Image.open(tmp_path / "game_conv_strip.png") as strip:
        pixels = np.asarray(strip.convert("RGB"))
    legend = pixels[int(0.88 * len(pixels)):]  # The bottom: the legend's colour patches.
    for colour in (dqn_mouse.PICTURE_LEGEND["mouse"], dqn_mouse.PICTURE_LEGEND["cheese (+0.5)"]):
        assert (np.abs(legend.astype(int) - colour).sum(axis=2) < 30).any(), colour
    assert (tmp_path / "game_conv.gif").exists()


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
    assert "plots/report/mlp_mnist_summary_metric_value.png" in links
    assert "plots/mlp_learning_rate.png" in links and "plots/mlp_mnist_curves_numpy_fast_cpu.png" in links
    # The summary bars are drawn from the records now: the old file of `dlbench plot` is not shown twice.
    assert "plots/mlp_mnist_summary.png" not in links
    assert "plots/mlp_mnistic.png" not in links and "plots/unrelated.png" not in links
    assert "artifacts/mlp_mnist/full1/rollout.gif" in links
    assert "not run yet" in markdown


def test_no_results_at_all_is_one_line_and_exit_2(tmp_path, capsys):
    assert cli.main(["report", "--results-dir", str(tmp_path / "empty")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("dlbench: error: no run records") and error.count("\n") == 1


def test_a_topic_whose_runs_all_failed_has_its_summary_line(tmp_path):
    _record(tmp_path, "ok1", metric_value=0.9)
    _record(tmp_path, "bad1", experiment="cnn_cifar", variant="lenet", status="failed", metric_value=None)
    report_html.write_report(tmp_path)
    lines = dict(line.split(": ", 1) for line in parsed((tmp_path / "report.html").read_text()).summary_lines)
    assert lines["cnn_cifar"] == "no successful run yet (1 failed run)."
    assert lines["mlp_mnist"].startswith("test accuracy: numpy_fast 90.0 %")


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
    frame = report_html.prepared_rows(tmp_path, "mlp_mnist")
    pairs = report_html.speedups(frame)
    assert len(pairs) == 1 and pairs["variant"].iloc[0] == "keras"
    assert pairs["steady_speedup"].iloc[0] == pytest.approx(2.1 / 0.5)
    assert pairs["total_speedup"].iloc[0] == pytest.approx(105.0 / 42.0)
    assert report_html.cpu_gpu_line({"mlp_mnist": frame}) == (
        "CPU vs GPU (CPU time / GPU time on the same machine, variant and configuration; above 1× the GPU is "
        "faster): mlp_mnist keras 4.2× per epoch, 2.5× the whole run.")
    section = report_html.experiment_section(tmp_path, "mlp_mnist", frame,
                                             report_html.comparisons(tmp_path, "mlp_mnist", frame), tmp_path)
    speedup = next(block for block in section.blocks if getattr(block, "title", "").startswith("CPU vs GPU"))
    assert speedup.rows == [["keras", "full", "2.1", "0.5", "4.20×", "105.0", "42.0", "2.50×", "defaults"]]


def test_the_report_never_imports_tensorflow(tmp_path):
    write_example_results(tmp_path)
    code = ("import sys; from dlbench import cli; assert cli.main(['report', '--results-dir', sys.argv[1]]) == 0; "
            "loaded = {'tensorflow', 'keras'} & set(sys.modules); assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, timeout=120)


def test_curves_show_the_headline_log_and_each_named_loss_once():
    from dlbench.experiment import Metric
    from dlbench.report_html import curve_columns

    gan = pd.DataFrame({"epoch": [1, 2], "seconds": [1, 1], "d_loss": [1.3, 1.2], "g_loss": [0.7, 0.8], "fcd": [90, 50]})
    assert curve_columns([gan], Metric("fcd", higher_is_better=False, validation_log="fcd")) == ["fcd", "d_loss", "g_loss"]
    autoencoder = pd.DataFrame({"epoch": [1], "loss": [0.02], "val_loss": [0.01]})
    assert curve_columns([autoencoder], Metric("test_mse", False, validation_log="val_loss")) == ["val_loss"]


# --- in a real browser: desktop and phone widths ---------------------------------------------------

BROWSER = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(name)), None)
# Added to a copy of the page (the report itself has no script): once loaded, every image is loaded,
# the widths measured, and a click on an image checked to open it full size. The copy is shown in a
# frame as wide as the screen tested (headless Chromium's window is at least 500 pixels wide), and posts
# its result to the frame's parent, which writes it into its own page for --dump-dom to print.
CHECK_SCRIPT = """<script>
window.addEventListener("load", async () => {
  const images = Array.from(document.images);
  images.forEach((image) => { image.loading = "eager"; });
  // Load events, not image.decode(): Chromium decodes a frame's images off screen slowly or never.
  await Promise.all(images.map((image) => image.complete ? null : new Promise((resolve) => {
    image.addEventListener("load", resolve);
    image.addEventListener("error", resolve);
  })));
  const loaded = images.map((image) => image.complete && image.naturalWidth > 0);
  const summary = document.getElementById("summary");
  const first = images.find((image) => image.naturalWidth > window.innerWidth) || images[0];
  first.closest("a").click();
  await new Promise((resolve) => setTimeout(resolve, 50));
  parent.postMessage(JSON.stringify({
    viewport: window.innerWidth, page_width: document.documentElement.scrollWidth,
    summary_overflow: summary.scrollWidth - summary.clientWidth,
    first_section: document.querySelector("main").firstElementChild.id,
    images: images.length, broken: images.filter((image, index) => !loaded[index]).map((image) => image.alt),
    opened_position: getComputedStyle(first.closest("figure")).position,
    opened_width: first.getBoundingClientRect().width, natural_width: first.naturalWidth,
  }), "*");
});
</script>"""
FRAME_PAGE = """<!DOCTYPE html><html><body style="margin: 0">
<iframe src="{page}" style="width: {width}px; height: 900px; border: 0"></iframe>
<script>
window.addEventListener("message", (event) => {{
  const out = document.createElement("pre");
  out.id = "browser-check";
  out.textContent = event.data;
  document.body.appendChild(out);
}});
</script></body></html>"""


def browser_check(page_path, tmp_path, width: int) -> dict:
    checked = tmp_path / "checked.html"
    checked.write_text(page_path.read_text(encoding="utf-8").replace("</body>", CHECK_SCRIPT + "</body>"),
                       encoding="utf-8")
    frame = tmp_path / "frame.html"
    frame.write_text(FRAME_PAGE.format(page=checked.name, width=width), encoding="utf-8")
    completed = subprocess.run(
        [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={max(width, 500) + 40},1000",
         "--virtual-time-budget=30000", "--dump-dom", frame.as_uri()],
        check=True, timeout=180, capture_output=True, text=True)
    found = re.search(r'<pre id="browser-check">(.*?)</pre>', completed.stdout, re.DOTALL)
    assert found, completed.stdout[-2000:] + completed.stderr[-2000:]
    return json.loads(html.unescape(found.group(1)))


@pytest.mark.skipif(BROWSER is None, reason="no chromium / chromium-browser / google-chrome on PATH "
                                            "(.ci/run installs Debian's chromium)")
@pytest.mark.parametrize("width", [1280, 412], ids=["desktop", "phone"])
def test_in_a_browser_every_image_loads_nothing_overflows_and_a_click_opens_full_size(built, tmp_path, width):
    results_dir, page, _ = built
    result = browser_check(results_dir / "report.html", tmp_path, width)
    assert result["viewport"] == width and result["first_section"] == "summary"
    assert result["images"] == len(parsed(page).images) and result["broken"] == []
    assert result["summary_overflow"] <= 0 and result["page_width"] <= width, result
    assert result["opened_position"] == "fixed" and result["opened_width"] == pytest.approx(result["natural_width"], abs=1)
