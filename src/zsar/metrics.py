"""Accuracy metrics from a score matrix: top-1, top-5 and mean-class accuracy.

Tie rule: classes are ranked by score, highest first, and equal scores are ranked by
class id, lowest first (a stable sort). So a prediction tied between the true class
and another class counts as correct exactly when the true class has the lower id.
This is deterministic and needs no random tie-breaking; with float embeddings exact
ties are rare, but they do occur (e.g. a failed caption fused as zeros, identical
class prompts), and the rule must not depend on the run.
"""

from __future__ import annotations

import numpy as np

# The accuracies every metrics record holds, whatever `scoring.topk` is (topk sets how many
# ranked classes a scores row keeps). Tables and the report read these keys from here.
METRICS = ("top1", "top5", "mean_class")


def rank_classes(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the top-k classes per row, best first, ties broken by lower class id."""
    k = min(k, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")
    return order[:, :k]


def topk_correct(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per row: whether the true label is among the top-k classes."""
    return (rank_classes(scores, k) == labels[:, None]).any(axis=1)


def mean_class_accuracy(correct: np.ndarray, labels: np.ndarray) -> float | None:
    """Top-1 recall averaged over the classes that occur in `labels`; None without any."""
    classes = np.unique(labels)
    if classes.size == 0:
        return None
    return float(np.mean([correct[labels == c].mean() for c in classes]))


def accuracy_metrics(
    scores: np.ndarray, labels: np.ndarray, *, valid: np.ndarray | None = None
) -> dict[str, float]:
    """Top-1, top-5 and mean-class accuracy (METRICS), as fractions; None for a split with no
    video to score (a record holds no NaN: JSON has no such number).

    Rows where `valid` is False (videos that failed, under the count_as_wrong policy)
    are counted as misclassified, in every metric, whatever their score row holds.
    """
    labels = np.asarray(labels)
    if len(labels) == 0:
        return {key: None for key in METRICS}
    valid = np.ones(len(labels), bool) if valid is None else np.asarray(valid, bool)
    top1 = topk_correct(scores, labels, 1) & valid
    top5 = topk_correct(scores, labels, 5) & valid
    return {
        "top1": float(top1.mean()),
        "top5": float(top5.mean()),
        "mean_class": mean_class_accuracy(top1, labels),
    }


def mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    """Mean and population std over the splits that have a value (std 0 for one split);
    (None, None) when no split has one."""
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    if arr.size == 0:
        return None, None
    return float(arr.mean()), float(arr.std(ddof=0)) if arr.size > 1 else 0.0
