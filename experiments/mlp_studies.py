"""
Title: The MLP chapter's studies (docs/topics/mlp_mnist.md), each one command: `dlbench study NAME`.

Every point of a study is an ordinary `mlp_mnist` run (its own row with time, energy and CO2); the
study's PNG in results/plots/ is drawn from the rows of its latest invocation. `--set` shortens a
study for every point (e.g. `--set epochs=3`), except the key the study varies.

- mlp_architecture: hidden widths and depths, NumPy and Keras: accuracy vs parameters, vs CO2, time.
- mlp_learning_rate: learning rates 1e-4 ... 3 on a log grid: final accuracy and loss curves; shows
  the two failure modes (too small: slow; too large: divergence, detected and recorded, not a crash).
- mlp_gradient_descent: full batch vs online (batch 1) vs mini-batch (64) at equal epochs, NumPy
  (Keras at batch 1 would take ~10 minutes an epoch on 2 cores): accuracy vs epochs and vs wall time.
- mlp_overtraining: the course split (10 % test held out, the rest 80 % train / 20 % validation), a
  256-128 network on 2,000 training images for 150 epochs: train vs validation curves, the epoch where
  validation loss stops improving marked; then the cures: early stopping, L2, dropout (Keras).
- mlp_activations: the course's hidden activations compared on accuracy and time (NumPy), and the
  vanishing gradient: per-layer gradient norms at initialisation of a deep (8 x 32) sigmoid network
  next to the same network with ReLU.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # Files only; no display needed.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from dlbench.report import history  # noqa: E402
from dlbench.experiment import Point, Study  # noqa: E402

EXPERIMENT = "mlp_mnist"
COLORS = {"numpy": "tab:blue", "keras": "tab:orange", "keras_fast": "tab:green"}


def _save(figure, plots_dir: Path, name: str) -> Path:
    path = plots_dir / f"{name}.png"
    for axis in figure.axes:
        for scale, ticks, limits in ((axis.get_xscale(), axis.xaxis, axis.get_xlim()),
                                     (axis.get_yscale(), axis.yaxis, axis.get_ylim())):
            if scale == "log":  # Plain numbers at 1 (2, 5) x 10^k instead of unreadable minor labels.
                decades = np.log10(max(limits) / min(limits))
                subs = (1.0,) if decades > 3 else (1.0, 2.0, 5.0)
                ticks.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=subs))
                ticks.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
                ticks.set_minor_formatter(matplotlib.ticker.NullFormatter())
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def _extra(row, key):
    try:
        return json.loads(row["extra_metrics"] or "{}").get(key)
    except (TypeError, json.JSONDecodeError):
        return None


# ------------------------------------------------------------------------------------ architecture
ARCHITECTURES = ("16", "64", "256", "64,32", "256,128,64")


def plot_architecture(frame, results_dir, plots_dir):
    frame = frame.copy()
    frame["co2_g"] = frame["co2_kg"] * 1000
    figure, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    for variant, rows in frame.groupby("variant"):
        rows = rows.sort_values("parameters")
        for axis, x_column in zip(axes, ("parameters", "co2_g", "parameters")):
            y_column = "time_steady_unit_s" if axis is axes[2] else "test_accuracy"
            y_values = rows[y_column] * (100 if y_column == "test_accuracy" else 1)
            axis.plot(rows[x_column], y_values, "o", color=COLORS.get(variant), label=variant)
            for _, row in rows.iterrows():
                axis.annotate(row["study_point"].replace("hidden_units=", ""), (row[x_column],
                              row[y_column] * (100 if y_column == "test_accuracy" else 1)),
                              fontsize=7, xytext=(3, 3), textcoords="offset points")
    axes[0].set(xscale="log", xlabel="parameters (log scale)", ylabel="test accuracy (%)",
                title="Accuracy vs model size")
    axes[1].set(xscale="log", xlabel="CO2 per run (g, log scale)", ylabel="test accuracy (%)",
                title="Accuracy vs emissions")
    axes[2].set(xscale="log", xlabel="parameters (log scale)", ylabel="steady-state seconds per epoch",
                title="Training time vs model size")
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle("mlp_architecture: hidden widths/depths on MNIST (labels: hidden units)")
    return [_save(figure, plots_dir, "mlp_architecture")]


# ------------------------------------------------------------------------------------ learning rate
LEARNING_RATES = ("0.0001", "0.001", "0.01", "0.1", "1", "3")


def plot_learning_rate(frame, results_dir, plots_dir):
    frame = frame.copy()
    frame["learning_rate"] = [json.loads(c)["learning_rate"] for c in frame["config"]]
    figure, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    for variant, rows in frame.groupby("variant"):
        rows = rows.sort_values("learning_rate")
        accuracy = rows["test_accuracy"].fillna(0.0) * 100
        axes[0].plot(rows["learning_rate"], accuracy, "o-", color=COLORS.get(variant), label=variant)
        failed = rows[[bool(_extra(row, "failed_to_learn")) for _, row in rows.iterrows()]]
        if len(failed):
            axes[0].plot(failed["learning_rate"], failed["test_accuracy"].fillna(0.0) * 100, "x",
                         color="red", markersize=12, mew=2,
                         label=f"{variant}: diverged (loss NaN/inf, or no better than chance)")
    axes[0].set(xscale="log", xlabel="learning rate (log scale)", ylabel="test accuracy (%)",
                title="Final accuracy vs learning rate")
    variant = "numpy" if (frame["variant"] == "numpy").any() else frame["variant"].iloc[0]
    colors = plt.cm.viridis(np.linspace(0, 1, len(LEARNING_RATES)))
    for color, (_, row) in zip(colors, frame[frame["variant"] == variant].sort_values("learning_rate").iterrows()):
        epochs = history(results_dir, row)
        if epochs is None:
            continue
        label = f"lr={row['learning_rate']:g}"
        axes[1].plot(epochs["epoch"], epochs["loss"], "o-", color=color, markersize=3, label=label)
        if "val_accuracy" in epochs:
            axes[2].plot(epochs["epoch"], epochs["val_accuracy"] * 100, "o-", color=color, markersize=3, label=label)
    axes[1].set(yscale="log", xlabel="epoch", ylabel="training loss (cross-entropy, log scale)",
                title=f"Loss curves ({variant}): small lr is slow")
    axes[2].set(xlabel="epoch", ylabel="validation accuracy (%)", title=f"Validation accuracy ({variant})")
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle("mlp_learning_rate: too small learns slowly, too large diverges")
    return [_save(figure, plots_dir, "mlp_learning_rate")]


# ------------------------------------------------------------------------------ gradient descent
GRADIENT_DESCENT = (("full batch", "60000"), ("mini-batch 64", "64"), ("online (batch 1)", "1"))


def plot_gradient_descent(frame, results_dir, plots_dir):
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for _, row in frame.iterrows():
        epochs = history(results_dir, row)
        if epochs is None:
            continue
        label = f"{row['study_point']} ({row['variant']})"
        axes[0].plot(epochs["epoch"], epochs["val_accuracy"] * 100, "o-", markersize=3, label=label)
        axes[1].plot(epochs["seconds"].cumsum(), epochs["val_accuracy"] * 100, "o-", markersize=3, label=label)
    axes[0].set(xlabel="epoch", ylabel="validation accuracy (%)", title="Accuracy vs epochs (equal epochs)")
    axes[1].set(xscale="log", xlabel="cumulative training wall time (s, log scale)",
                ylabel="validation accuracy (%)", title="Accuracy vs wall time")
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle("mlp_gradient_descent: one update per pass vs per sample vs per batch")
    return [_save(figure, plots_dir, "mlp_gradient_descent")]


# ---------------------------------------------------------------------------------- overtraining
OVERTRAINING_BASE = {"split": "course", "validation_fraction": "0.2", "train_subset": "2000",
                     "hidden_units": "256,128", "epochs": "150",
                     "learning_rate": "0.1"}


def plot_overtraining(frame, results_dir, plots_dir):
    rows = list(frame.iterrows())
    figure, axes = plt.subplots(2, max(len(rows), 1), figsize=(4.2 * max(len(rows), 1), 8), squeeze=False)
    for column, (_, row) in enumerate(rows):
        epochs = history(results_dir, row)
        if epochs is None:
            continue
        best = int(epochs.loc[epochs["val_loss"].idxmin(), "epoch"])
        top, bottom = axes[0][column], axes[1][column]
        top.plot(epochs["epoch"], epochs["accuracy"] * 100, label="train")
        top.plot(epochs["epoch"], epochs["val_accuracy"] * 100, label="validation")
        bottom.plot(epochs["epoch"], epochs["loss"], label="train")
        bottom.plot(epochs["epoch"], epochs["val_loss"], label="validation")
        for axis in (top, bottom):
            axis.axvline(best, color="red", linestyle="--", label=f"best validation loss (epoch {best})")
            axis.grid(alpha=0.3)
            axis.legend(fontsize=8)
        top.set(title=f"{row['study_point']} ({row['variant']})\ntest accuracy {row['test_accuracy'] * 100:.2f} %",
                xlabel="epoch", ylabel="accuracy (%)")
        bottom.set(xlabel="epoch", ylabel="loss (cross-entropy)")
    figure.suptitle("mlp_overtraining: train keeps improving while validation stops (2,000 training images)")
    return [_save(figure, plots_dir, "mlp_overtraining")]


# ------------------------------------------------------------------------------------ activations
ACTIVATIONS = ("relu", "leaky_relu", "elu", "softplus", "swish", "tanh", "sigmoid", "linear")
DEEP = {"hidden_units": ",".join(["32"] * 8)}


def plot_activations(frame, results_dir, plots_dir):
    shallow = frame[~frame["study_point"].str.startswith("deep")]
    deep = frame[frame["study_point"].str.startswith("deep")]
    figure, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    positions = np.arange(len(shallow))
    axes[0].bar(positions, shallow["test_accuracy"] * 100, color="tab:blue")
    axes[0].set(xticks=positions, ylabel="test accuracy (%)", title="Accuracy by hidden activation (64-32)",
                ylim=(max(0, (shallow["test_accuracy"].min() * 100) - 5), 100))
    axes[0].set_xticklabels(shallow["study_point"], rotation=30, ha="right")
    axes[1].bar(positions, shallow["time_steady_unit_s"], color="tab:gray")
    axes[1].set(xticks=positions, ylabel="steady-state seconds per epoch", title="Time by hidden activation")
    axes[1].set_xticklabels(shallow["study_point"], rotation=30, ha="right")
    for _, row in deep.iterrows():
        norms = json.loads(row["extra_metrics"] or "{}")
        layers = sorted((int(k.rsplit("_", 1)[1]), v) for k, v in norms.items() if k.startswith("gradient_norm_layer_"))
        if layers:
            axes[2].plot([k for k, _ in layers], [v for _, v in layers], "o-",
                         label=f"{row['study_point']}: test acc {row['test_accuracy'] * 100:.1f} %")
    axes[2].set(yscale="log", xlabel="layer (1 = first hidden, last = output)",
                ylabel="||dJ/dW|| at initialisation (log scale)", title="Vanishing gradient, 8 hidden layers of 32")
    for axis in axes:
        axis.grid(alpha=0.3, axis="y")
    axes[2].legend(fontsize=8)
    figure.suptitle("mlp_activations: the course's hidden activations (NumPy MLP on MNIST)")
    return [_save(figure, plots_dir, "mlp_activations")]


STUDIES = {
    "mlp_architecture": Study(
        "mlp_architecture", EXPERIMENT, "hidden widths and depths, NumPy and Keras",
        tuple(Point(f"hidden_units={units}", variant, {"hidden_units": units})
              for variant in ("numpy", "keras") for units in ARCHITECTURES),
        plot_architecture),
    "mlp_learning_rate": Study(
        "mlp_learning_rate", EXPERIMENT, "learning rates on a log grid, NumPy and Keras",
        tuple(Point(f"learning_rate={rate}", variant, {"learning_rate": rate})
              for variant in ("numpy", "keras") for rate in LEARNING_RATES),
        plot_learning_rate),
    "mlp_gradient_descent": Study(
        "mlp_gradient_descent", EXPERIMENT, "full batch vs mini-batch vs online at equal epochs (NumPy)",
        tuple(Point(label, "numpy", {"batch_size": size}) for label, size in GRADIENT_DESCENT),
        plot_gradient_descent),
    "mlp_overtraining": Study(
        "mlp_overtraining", EXPERIMENT, "overfitting on 2,000 images and its cures",
        (Point("no regularisation", "numpy", {}),
         Point("no regularisation", "keras", {}),
         Point("early stopping (patience 10)", "keras", {"early_stopping_patience": "10"}),
         Point("L2 1e-3", "keras", {"l2": "0.001"}),
         Point("dropout 0.3", "keras", {"dropout": "0.3"})),
        plot_overtraining, base=OVERTRAINING_BASE),
    "mlp_activations": Study(
        "mlp_activations", EXPERIMENT, "hidden activations compared; vanishing gradient in a deep sigmoid net",
        tuple(Point(name, "numpy", {"hidden_activation": name}) for name in ACTIVATIONS)
        + (Point("deep sigmoid", "numpy", {**DEEP, "hidden_activation": "sigmoid"}),
           Point("deep relu", "numpy", {**DEEP, "hidden_activation": "relu"})),
        plot_activations),
}
