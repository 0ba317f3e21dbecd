"""dlbench from Python, for notebooks (the course's hands-ons live in Jupyter).

    import dlbench

    runs = dlbench.run("mlp_mnist", variants=["numpy"], overrides={"epochs": 1})  # a pandas DataFrame
    table = dlbench.compare("mlp_mnist")  # the table `dlbench compare` prints, as a DataFrame
    path = dlbench.write_report()  # results/report.html

The same machinery as the command line, not a second one: each run is its own worker process with the
device fixed before TensorFlow loads, its record is written whatever happens, the measurement lock is
held. The worker's output is passed on through this process's ``sys.stdout``, line by line, since a
notebook never shows what a child process writes. Bad input raises ValueError with the command line's
one-line message, before anything runs.
"""

from __future__ import annotations

import numbers

from dlbench import config as config_module
from dlbench import runner
from dlbench.data import DataOptions


def setting_text(key: str, value) -> str:
    """A Python value as the text ``--set`` takes: True -> "true", 0.1 -> "0.1", (64, 32) -> "64,32",
    None -> "none"; the config then checks it against the field's type, as for the command line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, (str, numbers.Real)):
        return str(value)
    if isinstance(value, (tuple, list)):
        return ",".join(setting_text(key, item) for item in value)
    raise config_module.ConfigError(f"bad value for '{key}': {value!r} (expected a number, text, True/False, "
                                    f"None, or a list of numbers)")


def _names(value, what: str) -> list[str] | None:
    """A list of names from a list or a comma-separated string; None for all."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.split(",")
    if not all(isinstance(name, str) for name in value):
        raise ValueError(f"{what} must be names (strings), got {value!r}")
    return [name.strip() for name in value if name.strip()] or None


def _results_dir(results_dir) -> str:
    from dlbench.cli import default_results_dir  # One default for both: $DLBENCH_RESULTS_DIR, else results.

    return str(results_dir) if results_dir is not None else default_results_dir()


def run(name: str, variants=None, devices=None, overrides: dict | None = None, repeats: int = 1, seed: int = 0,
        results_dir=None, energy: bool = True):
    """Run an experiment's variants (default: all) on the devices (default: cpu, plus gpu when usable),
    like ``dlbench run``; return the runs just made as a pandas DataFrame, one row each, in the order run.

    ``overrides`` maps config keys to Python values ({"epochs": 1, "learning_rate": 0.1}); ``energy=False``
    skips CodeCarbon (like --no-energy). The data come from $DLBENCH_DATA_DIR, the Keras cache or the shipped
    sample, as for the command line. A failed run is a row with status "failed" and its error; Ctrl-C (the
    notebook's stop button) records the running run as interrupted and raises KeyboardInterrupt."""
    for label, number in (("repeats", repeats), ("seed", seed)):
        if isinstance(number, bool) or not isinstance(number, int):
            raise ValueError(f"{label} must be an integer, got {number!r}")
    devices = _names(devices, "devices")
    settings = {str(key): setting_text(str(key), value) for key, value in (overrides or {}).items()}
    results_dir = _results_dir(results_dir)
    specs = runner.plan(name, _names(variants, "variants"), runner.parse_devices(",".join(devices or [])),
                        settings, repeats=repeats, seed=seed, data_options=DataOptions.from_environment(),
                        results_dir=results_dir, energy=energy)
    status = runner.run_all(specs, relay_output=True)
    if status >= 128:  # Ctrl-C or a termination signal: run_all has said what was recorded.
        raise KeyboardInterrupt
    return runs_frame(results_dir, name, [spec.run_id for spec in specs])


def runs_frame(results_dir, name: str, run_ids: list[str]):
    """The records of the given runs as the typed frame every table reads (``report.load_results``), in
    the order of ``run_ids``."""
    from dlbench import report

    frame = report.load_results(results_dir, name, judge_overlaps=False)
    order = {run_id: index for index, run_id in enumerate(run_ids)}
    made = frame[frame["run_id"].isin(order)]
    return made.sort_values("run_id", key=lambda ids: ids.map(order)).reset_index(drop=True)


def compare(name: str, results_dir=None, include_contended: bool = False):
    """The comparison of every successful run of the experiment, as ``dlbench compare`` computes it: one
    row per machine x variant x device x data source x config difference, with n and spread."""
    from dlbench import registry, report

    registry.check(name)
    return report.compare(_results_dir(results_dir), name, include_contended=include_contended)


def write_report(results_dir=None, out=None):
    """Write report.html and REPORT.md (every experiment's tables and figures) like ``dlbench report``;
    return the path of report.html."""
    from dlbench import report_html

    html_path, _ = report_html.write_report(_results_dir(results_dir), out)
    return html_path
