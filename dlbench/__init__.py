"""dlbench: the hands-on parts of a deep-learning course as reproducible, measured experiments.

Every run is one row in ``results/<experiment>.csv`` with its metrics, timings, energy, CO2, device,
seed, versions and configuration. See README.md for the commands.
"""

__version__ = "0.1.0"
