"""Command line: ``dlbench list | run | compare | plot``. Bad input is one line on stderr and exit 2."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

# Quiet TensorFlow's C++ start-up chatter before anything imports it (users can still override).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from dlbench import config as config_module  # noqa: E402
from dlbench import registry, runner, tracking  # noqa: E402
from dlbench.data import DataOptions  # noqa: E402

EXIT_BAD_INPUT = 2


def default_results_dir() -> str:
    return os.environ.get("DLBENCH_RESULTS_DIR", "results")


def command_list(arguments) -> int:
    for name in registry.EXPERIMENTS:
        module = registry.get(name)
        summary = (module.__doc__ or "").strip().splitlines()
        title = summary[0].removeprefix("Title:").strip() if summary else ""
        print(f"{name}: {title}")
        for variant, description in registry.variants(module).items():
            devices = ",".join(registry.devices_for(module, variant))
            print(f"  variant {variant} [{devices}]: {description}")
        types_by_name = config_module.field_types(module.Config)
        for field in dataclasses.fields(module.Config):
            print(f"  --set {field.name}=  ({config_module.describe_type(types_by_name[field.name])}, "
                  f"default {field.default})")
    return 0


def command_run(arguments) -> int:
    overrides = config_module.parse_assignments(arguments.set or [])
    variants = [v for v in (arguments.variants or "").split(",") if v] or None
    data_options = DataOptions.from_environment(
        data_dir=arguments.data_dir, strict=True if arguments.strict_data else None,
        allow_download=False if arguments.no_download else None)
    specs = runner.plan(
        arguments.experiment, variants, runner.parse_devices(arguments.devices), overrides,
        repeats=arguments.repeats, seed=arguments.seed, data_options=data_options,
        results_dir=arguments.results_dir, country=arguments.country, energy=not arguments.no_energy)
    return runner.run_all(specs)


def command_compare(arguments) -> int:
    from dlbench import report

    if arguments.experiment not in registry.EXPERIMENTS:
        raise registry.UnknownExperimentError(
            f"unknown experiment '{arguments.experiment}'; valid: {', '.join(registry.EXPERIMENTS)}")
    table, path = report.write_comparison(arguments.results_dir, arguments.experiment)
    print(report.format_table(table))
    print(f"\nwritten to {path}")
    return 0


def command_plot(arguments) -> int:
    from dlbench import plots

    if arguments.experiment not in registry.EXPERIMENTS:
        raise registry.UnknownExperimentError(
            f"unknown experiment '{arguments.experiment}'; valid: {', '.join(registry.EXPERIMENTS)}")
    for path in plots.plot_experiment(arguments.results_dir, arguments.experiment):
        print(f"written {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dlbench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("list", help="experiments, their variants and configurable keys")

    run = commands.add_parser("run", help="run an experiment: one process per (variant, device, repeat)")
    run.add_argument("experiment")
    run.add_argument("--variants", help="comma-separated variants (default: all)")
    run.add_argument("--devices", help="comma-separated cpu,gpu (default: cpu, plus gpu when one is usable)")
    run.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override, repeatable")
    run.add_argument("--repeats", type=int, default=1, help="runs per (variant, device); seeds seed..seed+n-1")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--data-dir", help="directory with the full datasets (default: $DLBENCH_DATA_DIR)")
    run.add_argument("--strict-data", action="store_true",
                     help="fail instead of falling back to the shipped sample when full data is missing")
    run.add_argument("--no-download", action="store_true", help="never try the Keras download")
    run.add_argument("--country", default=os.environ.get("DLBENCH_COUNTRY", tracking.DEFAULT_COUNTRY),
                     help="ISO 3166 alpha-3 country for the carbon intensity (default: $DLBENCH_COUNTRY or FRA)")
    run.add_argument("--no-energy", action="store_true", help="do not start CodeCarbon (rows say 'disabled')")
    run.add_argument("--results-dir", default=default_results_dir())

    compare = commands.add_parser("compare", help="table: variant x device -> accuracy, time, kWh, CO2")
    compare.add_argument("experiment")
    compare.add_argument("--results-dir", default=default_results_dir())

    plot = commands.add_parser("plot", help="PNG plots in RESULTS_DIR/plots: per-epoch curves, accuracy/time/CO2 bars")
    plot.add_argument("experiment")
    plot.add_argument("--results-dir", default=default_results_dir())
    return parser


COMMANDS = {"list": command_list, "run": command_run, "compare": command_compare, "plot": command_plot}


def main(argv=None) -> int:
    arguments = build_parser().parse_args(argv)
    try:
        return COMMANDS[arguments.command](arguments)
    except (config_module.ConfigError, registry.UnknownExperimentError, runner.RunnerError,
            FileNotFoundError, ValueError) as error:
        print(f"dlbench: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
