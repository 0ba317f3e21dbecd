"""
Title: the autoencoder's anomaly-detection study (docs/topics/autoencoder_mnist.md):
`dlbench study autoencoder_anomaly`.

The standard one-class protocol run ten times: each point trains the `conv` autoencoder on one normal
digit only (tasks=anomaly, so the compression and denoising models are not trained again) and scores
all 10,000 test digits by reconstruction error, the nine other digits being the anomalies. The plot
shows the ROC AUC per normal digit, their mean, and the mean of the convolutional-autoencoder baseline
published with Deep SVDD (Ruff et al. 2018, about 0.90). `--set anomaly_score=mse` compares the
whole-image error with the default worst-region score.
"""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")  # Files only; no display needed.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dlbench.experiment import Point, Study  # noqa: E402

EXPERIMENT = "autoencoder_mnist"
DEEP_SVDD_CAE_MEAN_AUC = 0.90  # The reference the issue quotes: Ruff et al. 2018, Table 1, DCAE, mean over digits.


def plot_anomaly(frame, results_dir, plots_dir):
    extra = [json.loads(text or "{}") for text in frame["extra_metrics"]]
    digits = np.array([metrics.get("normal_digit", np.nan) for metrics in extra])
    auc = np.array([metrics.get("anomaly_auc", np.nan) for metrics in extra])
    order = np.argsort(digits)
    digits, auc = digits[order], auc[order]
    score = json.loads(frame["config"].iloc[0]).get("anomaly_score", "?")
    figure, axis = plt.subplots(figsize=(8, 4.5))
    axis.bar([f"{int(digit)}" for digit in digits], auc, color="tab:blue")
    for position, value in enumerate(auc):
        axis.annotate(f"{value:.3f}", (position, value), ha="center", va="bottom", fontsize=8)
    axis.axhline(np.nanmean(auc), color="tab:blue", linestyle="-", label=f"mean here: {np.nanmean(auc):.3f}")
    axis.axhline(DEEP_SVDD_CAE_MEAN_AUC, color="gray", linestyle="--",
                 label=f"Deep SVDD paper's conv autoencoder: ~{DEEP_SVDD_CAE_MEAN_AUC:.2f}")
    axis.set(ylim=(max(0.0, np.nanmin(auc) - 0.1), 1.01), xlabel="normal digit (the other nine are anomalies)",
             ylabel="test ROC AUC", title=f"autoencoder_anomaly: one-class conv autoencoder, score = {score}")
    axis.legend(loc="lower right", fontsize=8)
    axis.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    path = plots_dir / "autoencoder_anomaly.png"
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return [path]


STUDIES = {
    "autoencoder_anomaly": Study(
        "autoencoder_anomaly", EXPERIMENT, "one-class anomaly detection, each digit in turn the normal one",
        tuple(Point(f"normal_digit={digit}", "conv", {"normal_digit": str(digit)}) for digit in range(10)),
        plot_anomaly, base={"tasks": "anomaly"}),
}
