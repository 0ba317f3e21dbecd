"""dlbench: the hands-on parts of a deep-learning course as reproducible, measured experiments.

Every run is one immutable record in ``results/runs/<experiment>/<run_id>.json`` with its metrics,
timings, energy, CO2, device, seed, versions and configuration; ``results/<experiment>.csv`` is rebuilt
from the records after every run. See README.md for the commands.
"""

__version__ = "0.2.0"
