"""
Title: dlbench from a notebook
Description: run two variants of the course's MLP on MNIST, get the runs as a pandas DataFrame, compare them.
Accelerator: none (NumPy only; about half a minute on 2 CPU cores, most of it CodeCarbon starting up)

Each `# %%` starts a notebook cell: Jupyter (with jupytext) and VS Code open this file as a notebook; it
also runs as a script: `python examples/notebook_api.py`. Without the full MNIST data (README.md,
section Data) the runs use the small sample shipped with dlbench, and say so once.
"""

# %% [markdown]
# ## Run
# `dlbench.run` is `dlbench run` from Python: each run is its own process with its own record in
# `results/runs/mlp_mnist/`; the progress lines appear below the cell. Settings are Python values.

# %%
import dlbench

runs = dlbench.run("mlp_mnist", variants=["numpy", "numpy_fast"], overrides={"epochs": 2, "train_subset": 1000})
print(runs[["variant", "status", "test_accuracy", "time_steady_unit_s", "energy_kwh", "dataset_source"]])

# %% [markdown]
# ## Compare
# The table `dlbench compare mlp_mnist` prints, as a DataFrame: every successful run of the experiment in
# the results folder, grouped by machine, variant, device, data and settings, with n and spread.
# The fused loop of `numpy_fast` computes the same numbers as `numpy`, faster.

# %%
table = dlbench.compare("mlp_mnist")
print(table[["variant", "device", "dataset_source", "config_diff", "runs", "metric_median", "steady_unit_s"]])

# %% [markdown]
# ## Report
# `dlbench.write_report()` writes results/report.html (every experiment's tables and figures) and returns
# its path: open it in a browser.
