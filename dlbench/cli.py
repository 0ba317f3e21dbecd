"""dlbench's command line: list, run, study, compare, plot, predict and report.

list shows the experiments, their variants and settings, and the studies; run and study measure (one
process and one record per run); compare, plot and report read the records; predict uses the model a
finished run saved. `dlbench COMMAND --help` lists a command's options. Bad input is one line on stderr
and exit status 2, before anything runs; a failed run exits 1, Ctrl-C 130 (its record says so).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Quiet TensorFlow's C++ start-up chatter before anything imports it (users can still override).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from dlbench import config as config_module  # noqa: E402
from dlbench import registry, results, runner, tracking  # noqa: E402
from dlbench.data import DataOptions  # noqa: E402
from dlbench.experiment import DamagedModelError  # noqa: E402

EXIT_BAD_INPUT = 2


def default_results_dir() -> str:
    return os.environ.get("DLBENCH_RESULTS_DIR", "results")


# The default listing fits this many columns, one line per variant (--keys prints every line in full).
LIST_WIDTH = 120


def command_list(arguments) -> int:
    """Each experiment, its metric and one line per variant; with --keys also every --set key, its type
    and its default (the variants that depart from it named), without cutting any line."""
    def show(line: str) -> None:
        print(line if arguments.keys or len(line) <= LIST_WIDTH else line[:LIST_WIDTH - 1] + "…")

    for name in registry.EXPERIMENTS:
        experiment = registry.get(name)
        metric = experiment.metric
        show(f"{name}: {experiment.title}")
        show(f"  metric {metric.name} ({'higher' if metric.higher_is_better else 'lower'} is better), "
             f"progress per {experiment.progress_unit}, data {experiment.dataset}")
        devices = {variant_name: f"[{','.join(variant.devices)}]"
                   for variant_name, variant in experiment.variants.items()}
        name_width, devices_width = max(map(len, devices)), max(map(len, devices.values()))
        for variant_name, variant in experiment.variants.items():
            show(f"  {variant_name:<{name_width}} {devices[variant_name]:<{devices_width}} {variant.description}")
        if not arguments.keys:
            continue
        configs = {variant_name: variant.config for variant_name, variant in experiment.variants.items()}
        for key, kind, default, others in config_module.settings_table(configs):
            print(f"  --set {key}=  ({kind}, default {default}" + (f"; {others}" if others else "") + ")")
    from dlbench import studies

    print("studies (dlbench study NAME):")
    name_width = max(map(len, studies.STUDIES))
    for name in studies.STUDIES:
        study = studies.get(name)
        show(f"  {name:<{name_width}} [{study.experiment}, {len(study.points)} runs] {study.description}")
    if not arguments.keys:
        print("every --set key with its type and default: dlbench list --keys")
    return 0


def _run_options(arguments) -> dict:
    """The options `run` and `study` share, as keyword arguments for runner.plan."""
    data_options = DataOptions.from_environment(
        data_dir=arguments.data_dir, strict=True if arguments.strict_data else None,
        allow_download=False if arguments.no_download else None)
    return dict(repeats=arguments.repeats, seed=arguments.seed, data_options=data_options,
                results_dir=arguments.results_dir, country=arguments.country, energy=not arguments.no_energy,
                verbose=arguments.verbose)


def _variants(arguments) -> list[str] | None:
    return [v for v in (arguments.variants or "").split(",") if v] or None


def _check_backend(arguments) -> None:
    """Before planning: Ray installed for --backend ray (else one line saying how), Ray options only with it."""
    if arguments.backend == "ray":
        from dlbench import cluster

        cluster.import_ray()
    elif arguments.address or arguments.cpus_per_run is not None or arguments.gpus_per_run is not None:
        raise runner.RunnerError("--address, --cpus-per-run and --gpus-per-run need --backend ray")


def _run_specs(specs, arguments) -> int:
    """Local: one process after another on this machine; ray: Ray tasks on a local instance or a cluster."""
    if arguments.backend == "ray":
        from dlbench import cluster

        return cluster.run_all(specs, address=arguments.address, cpus_per_run=arguments.cpus_per_run,
                               gpus_per_run=arguments.gpus_per_run, concurrent=arguments.concurrent)
    return runner.run_all(specs, concurrent=arguments.concurrent)


def command_run(arguments) -> int:
    _check_backend(arguments)
    overrides = config_module.parse_assignments(arguments.set or [])
    specs = runner.plan(arguments.experiment, _variants(arguments), runner.parse_devices(arguments.devices),
                        overrides, **_run_options(arguments))
    return _run_specs(specs, arguments)


def command_study(arguments) -> int:
    from dlbench import studies

    study = studies.get(arguments.study)
    status = 0
    if not arguments.plot_only:
        _check_backend(arguments)
        print(f"[dlbench] study {study.name}: {study.description}", flush=True)
        specs = studies.plan(study, config_module.parse_assignments(arguments.set or []), _variants(arguments),
                             runner.parse_devices(arguments.devices), **_run_options(arguments))
        status = _run_specs(specs, arguments)
        if status == 130:
            return status
    for path in studies.plot(study, arguments.results_dir):
        print(f"[dlbench] plot written: {path}")
    return status


def command_compare(arguments) -> int:
    from dlbench import report

    registry.check(arguments.experiment)  # Without importing the experiment (and TensorFlow).
    try:
        results.rebuild_csv(arguments.results_dir, arguments.experiment)  # The CSV users open, from the records.
    except results.ResultsWriteError as error:  # A read-only results folder: compare what is there.
        print(f"dlbench: warning: {error}; the CSV was not rebuilt, the records are compared as they are",
              file=sys.stderr)
    try:
        table, path = report.write_comparison(arguments.results_dir, arguments.experiment,
                                              include_contended=arguments.include_contended, out_dir=arguments.out)
    except OSError as error:
        table, path = report.compare(arguments.results_dir, arguments.experiment,
                                     include_contended=arguments.include_contended), None
        reason = error.strerror or str(error)
        print(f"dlbench: warning: comparison CSV not written ({reason}); write it elsewhere with --out DIR",
              file=sys.stderr)
    print(report.markdown_table(table) if arguments.markdown
          else report.format_table(table, width=None if arguments.wide else report.TERMINAL_WIDTH))
    if path is not None:
        print(f"\nwritten to {path}")
    return 0


def command_plot(arguments) -> int:
    from dlbench import plots

    registry.check(arguments.experiment)  # Without importing the experiment (and TensorFlow).
    for path in plots.plot_experiment(arguments.results_dir, arguments.experiment):
        print(f"written {path}")
    return 0


def command_predict(arguments) -> int:
    """Predictions of the saved model of a finished run (the latest successful one of a variant)."""
    experiment = registry.get(arguments.experiment)
    if experiment.predict is None:
        raise ValueError(f"{arguments.experiment} saves no model to predict with")
    variant = arguments.variant or experiment.predict_variant or next(iter(experiment.variants))
    finished = [record for record in results.read_records(arguments.results_dir, arguments.experiment)
                if record.get("status") == results.STATUS_OK and record.get("artifacts_dir")
                and (record.get("run_id") == arguments.run if arguments.run else record.get("variant") == variant)]
    how = f"make one with: dlbench run {arguments.experiment} --variants {variant}"
    if not finished:
        which = f"run {arguments.run}" if arguments.run else f"{arguments.experiment}/{variant}"
        raise FileNotFoundError(f"no finished run with a saved model for {which} in {arguments.results_dir}; {how}")
    chosen = finished[-1]  # Records are read oldest first.
    from dlbench.data import native_stderr_quieted

    try:
        # Loading the model starts TensorFlow, whose start-up lines (absl, CUDA probes) would precede the answer.
        with native_stderr_quieted():
            artifacts_dir = Path(arguments.results_dir) / chosen["artifacts_dir"]
            values = experiment.predict(artifacts_dir, arguments.inputs, Path(arguments.out))
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{error} (run {chosen['run_id']}); {how}") from None
    except DamagedModelError as error:
        raise DamagedModelError(f"{error} (run {chosen['run_id']}); re-run: dlbench run {arguments.experiment} "
                                f"--variants {chosen['variant']}") from None
    print(f"[dlbench] {arguments.experiment}/{chosen['variant']} run {chosen['run_id']} "
          f"({chosen.get('dataset_source')} data, {chosen.get('metric')}={chosen.get('metric_value')})", file=sys.stderr)
    for value, text in zip(values, arguments.inputs):  # A number per input, or a line saying what was written.
        print(value if isinstance(value, str) else f"{value:.4f}\t{text}")
    return 0


def command_report(arguments) -> int:
    from dlbench import report_html

    for path in report_html.write_report(arguments.results_dir, arguments.out):
        print(f"written {path} ({path.stat().st_size / 1024:,.0f} kB)")
    return 0


def add_results_dir(parser, what: str = "the records are read from") -> None:
    parser.add_argument("--results-dir", default=default_results_dir(),
                        help=f"folder {what} (default: $DLBENCH_RESULTS_DIR, else results)")


def add_run_options(parser) -> None:
    parser.add_argument("--variants", help="comma-separated variants (default: all)")
    parser.add_argument("--devices", help="comma-separated cpu,gpu (default: cpu, plus gpu when one is usable)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override, repeatable")
    parser.add_argument("--repeats", type=int, default=1, help="runs per (variant, device); seeds seed..seed+n-1")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the first repeat (default 0); repeat i uses seed + i")
    parser.add_argument("--data-dir", help="directory with the full datasets (default: $DLBENCH_DATA_DIR)")
    parser.add_argument("--strict-data", action="store_true",
                        help="fail instead of falling back to the shipped sample when full data is missing")
    parser.add_argument("--no-download", action="store_true", help="never try the Keras download")
    parser.add_argument("--country", default=os.environ.get("DLBENCH_COUNTRY", tracking.DEFAULT_COUNTRY),
                        help="ISO 3166 alpha-3 country for the carbon intensity (default: $DLBENCH_COUNTRY or FRA)")
    parser.add_argument("--no-energy", action="store_true", help="do not start CodeCarbon (rows say 'disabled')")
    add_results_dir(parser, "the records are written to")
    parser.add_argument("--verbose", action="store_true", help="full tracebacks for data errors too")
    parser.add_argument("--concurrent", action="store_true",
                        help="do not wait for other dlbench runs on this machine (recorded in each row: its "
                             "times and energy may include theirs)")
    parser.add_argument("--backend", choices=("local", "ray"), default="local",
                        help="local: one run after another here (default); ray: each run a Ray task, on a local "
                             "Ray instance or the cluster at --address (needs dlbench[cluster])")
    parser.add_argument("--address", help="Ray cluster address (ray start --head prints it; default: a Ray "
                                          "instance started on this machine)")
    parser.add_argument("--cpus-per-run", type=int, help="Ray: CPUs each run reserves (default: all of a node, so "
                                                         "CodeCarbon's machine-level figure is that run's)")
    parser.add_argument("--gpus-per-run", type=float, help="Ray: GPUs each GPU run reserves (default 1)")


class Parser(argparse.ArgumentParser):
    """argparse, with its errors in one line (usage stays available with --help)."""

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"dlbench: error: {message} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="dlbench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    listing = commands.add_parser("list", help="experiments, their variants and the studies (--keys: every setting)",
                                  description="Every experiment with its headline metric and its variants (and the "
                                              "devices each can use), then every study; with --keys also every "
                                              "--set key with its type and default.")
    listing.add_argument("--keys", action="store_true",
                         help="also every --set key with its type and default (and the variants that depart from "
                              "it), every line in full")

    run = commands.add_parser("run", help="run an experiment: one process per (variant, device, repeat)",
                              description="Run an experiment: one fresh process and one record per (variant, "
                                          "device, repeat), with progress, a forecast, and at the end the table of "
                                          "the runs made.")
    run.add_argument("experiment", help="the experiment to run (dlbench list shows them)")
    add_run_options(run)

    study = commands.add_parser("study", help="run every point of a study, then plot it",
                                description="Run every point of a study as an ordinary run (each with its record), "
                                            "then draw the study's plot in RESULTS_DIR/plots/STUDY.png.")
    study.add_argument("study", help="the study to run (dlbench list shows them)")
    add_run_options(study)
    study.add_argument("--plot-only", action="store_true", help="only redraw the plot from the latest rows")

    compare = commands.add_parser("compare", help="table: variant x device -> headline metric, time, kWh, CO2",
                                  description="One table per machine (never pooled): variant x device -> n, "
                                              "headline metric and steady time per unit as median [min-max], total "
                                              "time, kWh, g CO2, flags; printed and written to NAME_compare.csv.")
    compare.add_argument("experiment", help="the experiment whose records are compared")
    add_results_dir(compare)
    compare.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    compare.add_argument("--out", help="folder for NAME_compare.csv (default: the results directory)")
    compare.add_argument("--include-contended", action="store_true",
                         help="pool contended runs (others used over 10 %% of the CPU) with the clean ones")
    compare.add_argument("--wide", action="store_true",
                         help="every column and the whole config text (default: fit 120 columns, leaving out the "
                              "first unit's time and g CO2, then cutting the config text)")

    plot = commands.add_parser("plot", help="PNG plots in RESULTS_DIR/plots: per-epoch curves, accuracy/time/CO2 bars",
                               description="Per-run curves of every metric the history logged, and a summary "
                                           "(headline metric, time per unit, run time, CO2 per variant), as PNGs "
                                           "in RESULTS_DIR/plots.")
    plot.add_argument("experiment", help="the experiment whose records are plotted")
    add_results_dir(plot)

    predict = commands.add_parser("predict", help="predictions of a finished run's saved model, e.g. "
                                  "dlbench predict sentiment_imdb \"This film is great\"",
                                  description="One prediction per input (e.g. the probability that a review is "
                                              "positive, or the labelled nuclei of an image written to --out) "
                                              "from the model saved by the latest successful run of a variant, or "
                                              "by the run --run names.")
    predict.add_argument("experiment", help="the experiment whose saved model predicts, e.g. sentiment_imdb")
    predict.add_argument("inputs", nargs="+", help="inputs, e.g. sentences, or image files for unet_nuclei")
    predict.add_argument("--variant", help="the variant whose latest successful run is used (default: the "
                                           "experiment's prediction variant, e.g. unet_nuclei's instances, else the "
                                           "first)")
    predict.add_argument("--out", default="predictions", metavar="DIR",
                         help="folder for the files a prediction writes (unet_nuclei: <stem>_labels.png and "
                              "<stem>_overlay.png per image), created if missing (default: predictions)")
    predict.add_argument("--run", help="a run id instead")
    add_results_dir(predict, "the records and saved models are read from")

    report = commands.add_parser("report", help="RESULTS_DIR/report.html (self-contained) and REPORT.md: "
                                                "every experiment's tables and figures",
                                 description="One self-contained page, RESULTS_DIR/report.html, and REPORT.md: "
                                             "every experiment's comparison tables, curves and figures, and the "
                                             "views across experiments (metric against CO2, energy per topic, "
                                             "forecasts, provenance).")
    add_results_dir(report)
    report.add_argument("--out", help="folder for report.html, REPORT.md and their figures (default: the "
                                      "results directory; the records are only read)")
    return parser


COMMANDS = {"list": command_list, "run": command_run, "study": command_study, "compare": command_compare,
            "plot": command_plot, "report": command_report, "predict": command_predict}


def main(argv=None) -> int:
    for stream in (sys.stdout, sys.stderr):  # A path that is not UTF-8 prints escaped, never crashes.
        if hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):
                pass
    arguments = build_parser().parse_args(argv)
    try:
        return COMMANDS[arguments.command](arguments)
    except (config_module.ConfigError, registry.UnknownExperimentError, runner.RunnerError,
            FileNotFoundError, ValueError) as error:  # UnknownStudyError, ResultsDirError: ValueErrors too.
        print(f"dlbench: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except results.ResultsWriteError as error:
        print(f"dlbench: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
