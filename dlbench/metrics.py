"""Metrics more than one topic needs, in NumPy (no TensorFlow): the experiments' own numbers are
computed from predictions they already hold, so they stay checkable on known inputs."""

from __future__ import annotations

import numpy as np


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve: the probability that a positive scores above a negative, ties
    counting half (the Mann-Whitney statistic from mid-ranks). NaN without both classes."""
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    # Tied scores share their mean rank: one pass over the runs of equal values.
    starts = np.flatnonzero(np.r_[True, np.diff(sorted_scores) != 0])
    ends = np.r_[starts[1:], len(scores)]
    for start, end in zip(starts, ends):
        if end - start > 1:
            ranks[order[start:end]] = (start + end + 1) / 2
    positives, negatives = labels.sum(), (~labels).sum()
    if not positives or not negatives:
        return float("nan")
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def precision_recall_f1(true_positive, predicted_positive, actual_positive) -> dict[str, float]:
    """Precision, recall and F1 from counts (0 where a denominator is 0, never a division error):
    the same three numbers for sentiment labels, anomaly flags, nucleus pixels and nucleus instances."""
    precision = float(true_positive) / max(float(predicted_positive), 1.0)
    recall = float(true_positive) / max(float(actual_positive), 1.0)
    f1 = 2 * float(true_positive) / max(float(predicted_positive) + float(actual_positive), 1.0)
    return {"precision": precision, "recall": recall, "f1": f1}
