"""dlbench: the hands-on parts of a deep-learning course as reproducible, measured experiments.

Every run is one immutable record in ``results/runs/<experiment>/<run_id>.json`` with its metrics,
timings, energy, CO2, device, seed, versions and configuration; ``results/<experiment>.csv`` is rebuilt
from the records after every run. See README.md for the commands.
"""

__version__ = "0.2.0"


# The Python API for notebooks (dlbench/api.py), imported on first use: `import dlbench` stays cheap
# (no pandas, no TensorFlow) for the command line and for every worker process.

def run(name, variants=None, devices=None, overrides=None, repeats=1, seed=0, results_dir=None, energy=True):
    """Run an experiment like ``dlbench run``; returns the runs just made as a pandas DataFrame.
    E.g. ``dlbench.run("mlp_mnist", variants=["numpy"], overrides={"epochs": 1})``; see dlbench.api.run."""
    from dlbench import api

    return api.run(name, variants=variants, devices=devices, overrides=overrides, repeats=repeats, seed=seed,
                   results_dir=results_dir, energy=energy)


def compare(name, results_dir=None, include_contended=False):
    """The comparison ``dlbench compare`` prints, as a pandas DataFrame; see dlbench.api.compare."""
    from dlbench import api

    return api.compare(name, results_dir=results_dir, include_contended=include_contended)


def write_report(results_dir=None, out=None):
    """Write report.html and REPORT.md like ``dlbench report``; returns the path of report.html.
    (Not ``dlbench.report``: that name is the module of comparison tables, dlbench/report.py.)"""
    from dlbench import api

    return api.write_report(results_dir=results_dir, out=out)
