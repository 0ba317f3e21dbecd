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


# Probabilities are clipped this far from 0 and 1 before their log-odds are taken: a float32 sigmoid
# rounds to exactly 1.0 beyond log-odds of about 17, whose logit would be infinite.
PROBABILITY_EPSILON = 1e-7


def expected_calibration_error(labels, probabilities, bins: int = 10) -> float:
    """Expected calibration error of a binary classifier (Guo et al. 2017, top-label): each prediction's
    confidence (the probability of the class it predicts, 0.5 to 1) falls in one of ``bins`` equal
    bins over [0, 1]; ECE is the mean over bins, weighted by their share of predictions, of
    |accuracy in the bin - mean confidence in the bin|. 0 is perfectly calibrated."""
    labels = np.asarray(labels).astype(bool).ravel()
    probabilities = np.asarray(probabilities, dtype=np.float64).ravel()
    predicted = probabilities >= 0.5
    confidence = np.where(predicted, probabilities, 1.0 - probabilities)
    correct = predicted == labels
    # Bin b holds confidences in (b/bins, (b+1)/bins]; a confidence of exactly 0.5 goes in the bin below.
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    error = 0.0
    for bin_index in np.unique(which):
        members = which == bin_index
        error += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(error)


def log_odds(probabilities) -> np.ndarray:
    probabilities = np.clip(np.asarray(probabilities, dtype=np.float64), PROBABILITY_EPSILON, 1 - PROBABILITY_EPSILON)
    return np.log(probabilities) - np.log1p(-probabilities)


def binary_log_loss(labels, probabilities) -> float:
    """Mean negative log-likelihood of 0/1 labels, from clipped probabilities."""
    labels = np.asarray(labels, dtype=np.float64).ravel()
    logits = log_odds(probabilities).ravel()
    # -log sigmoid(z) = log(1 + e^-z), written so that it never overflows.
    return float(np.mean(np.logaddexp(0.0, -logits) * labels + np.logaddexp(0.0, logits) * (1 - labels)))


def scaled_probabilities(probabilities, temperature: float) -> np.ndarray:
    """Temperature scaling: sigmoid(logit(p) / T). T > 1 softens over-confident predictions, T < 1
    sharpens them; the predicted class never changes."""
    return 1.0 / (1.0 + np.exp(-log_odds(probabilities) / temperature))


def fit_temperature(labels, probabilities) -> float:
    """The temperature T (between 0.05 and 20) that minimises the log loss of sigmoid(logit(p) / T) on
    held-out labels (Guo et al. 2017): one number, fitted on the validation split, never the test set."""
    from scipy.optimize import minimize_scalar

    result = minimize_scalar(lambda log_t: binary_log_loss(labels, scaled_probabilities(probabilities, np.exp(log_t))),
                             bounds=(np.log(0.05), np.log(20.0)), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(result.x))
