"""Accuracy metrics from a score matrix: top-1, top-5 and mean-class accuracy.

Tie rule: classes are ranked by score, highest first, and equal scores are ranked by
class id, lowest first (a stable sort). So a prediction tied between the true class
and another class counts as correct exactly when the true class has the lower id.
This is deterministic and needs no random tie-breaking; with float embeddings exact
ties are rare, but they do occur (e.g. a failed caption fused as zeros, identical
class prompts), and the rule must not depend on the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# The accuracies every metrics record holds, whatever `scoring.topk` is (topk sets how many
# ranked classes a scores row keeps). Tables and the report read these keys from here.
METRICS = ("top1", "top5", "mean_class")


def rank_classes(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the top-k classes per row, best first, ties broken by lower class id.

    One partial sort (argpartition) picks k candidates per row and only those are sorted:
    a full sort of every row cost a benchmark's scoring most of its time. Where a row holds
    more than k scores equal to its k-th best, the partition may have picked any of them,
    so that row (rare: tied scores) is ranked by a full stable sort instead.
    """
    k = min(k, scores.shape[1])
    if k == 0 or scores.shape[0] == 0:
        return np.zeros((scores.shape[0], k), dtype=np.int64)
    negated = -scores
    if k == scores.shape[1]:
        return np.argsort(negated, axis=1, kind="stable")
    picked = np.argpartition(negated, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(negated, picked, axis=1)
    # lexsort: by value, then class id (its last key is the primary one).
    ranked = np.take_along_axis(picked, np.lexsort((picked, values), axis=1), axis=1)
    kth = values.max(axis=1, keepdims=True)
    tied = (negated <= kth).sum(axis=1) > k
    if tied.any():
        ranked[tied] = np.argsort(negated[tied], axis=1, kind="stable")[:, :k]
    return ranked


def topk_correct(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per row: whether the true label is among the top-k classes."""
    return ranked_correct(rank_classes(scores, k), labels, k)


def ranked_correct(ranked: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per row of ranked classes (best first): whether the true label is among the first k."""
    return (ranked[:, :k] == np.asarray(labels)[:, None]).any(axis=1)


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
    ranked = rank_classes(scores, 5)
    return hit_metrics(ranked_correct(ranked, labels, 1), ranked_correct(ranked, labels, 5),
                       labels, valid=valid)  # fmt: skip


def hit_metrics(
    top1: np.ndarray, top5: np.ndarray, labels: np.ndarray, *, valid: np.ndarray | None = None
) -> dict[str, float]:
    """accuracy_metrics from each row's top-1 and top-5 hits (a scoring job ranks its
    videos block by block and keeps only these)."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        return {key: None for key in METRICS}
    valid = np.ones(len(labels), bool) if valid is None else np.asarray(valid, bool)
    top1 = np.asarray(top1, bool) & valid
    top5 = np.asarray(top5, bool) & valid
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


# ---------------------------------------------------------------------------
# Per-video hits, read back from the rows of a scores Parquet (zsar.stages.scoring.SCORES_SCHEMA):
# what the statistics (zsar.core.stats) resample.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoHits:
    """The videos a run's accuracies count, one entry each, in (split, video_id) order.

    `top5` is None where the scores cannot tell: a row keeps `scoring.topk` ranked classes,
    and with topk < 5 a split of more than topk classes has no top-5 in its rows.
    """

    split: np.ndarray  # int64
    video_id: np.ndarray  # str
    true_class: np.ndarray  # int64, the class id within its split
    top1: np.ndarray  # bool
    top5: np.ndarray | None  # bool

    def keys(self) -> list[tuple[int, str]]:
        return list(zip(self.split.tolist(), self.video_id.tolist(), strict=True))

    def take(self, index: np.ndarray) -> VideoHits:
        return VideoHits(
            self.split[index], self.video_id[index], self.true_class[index], self.top1[index],
            None if self.top5 is None else self.top5[index],
        )


def counted_hits(
    scores,
    *,
    failure_policy: str,
    classes_per_split: Mapping[int, int],
    k: int = 5,
    same_ids: np.ndarray | None = None,
) -> VideoHits:
    """Top-1 and top-k hits of the videos the metrics count: the evaluated ones, and under
    count_as_wrong the failed and missing ones too (wrong in every metric, as
    `accuracy_metrics` counts them). The same numbers `accuracy_metrics` gives, read from
    the scores (a pyarrow table of SCORES_SCHEMA's columns) rather than the score matrix;
    column by column, since a benchmark's scores hold tens of thousands of rows.

    same_ids: another run's `video_id`, used as this one's where the videos are the same
    (a backbone's runs): no second set of Python strings for the same ids."""
    order = pc.sort_indices(scores, sort_keys=[("split", "ascending"),
                                               ("video_id", "ascending")])
    table = scores.take(order)
    evaluated = pc.equal(table.column("status"), "evaluated").to_numpy(zero_copy_only=False)
    if failure_policy != "count_as_wrong":
        table = table.filter(evaluated)
        evaluated = evaluated[evaluated]
    split = table.column("split").to_numpy().astype(np.int64)
    true_class = table.column("true_class").to_numpy().astype(np.int64)
    top1 = table.column("correct").to_numpy(zero_copy_only=False).astype(bool) & evaluated
    ranked = table.column("topk_classes")
    # A row ranks min(topk, classes) classes: top-k is known when that covers min(k, classes).
    lengths = pc.list_value_length(ranked).to_numpy(zero_copy_only=False)
    classes = np.array([classes_per_split[s] for s in split.tolist()], dtype=np.int64)
    topk = None
    if np.all(lengths[evaluated] >= np.minimum(k, classes[evaluated])):
        first = pc.list_slice(ranked, 0, k)
        parents = pc.list_parent_indices(first).to_numpy()
        flat = pc.list_flatten(first).to_numpy()
        topk = np.zeros(len(split), dtype=bool)
        topk[parents[flat == true_class[parents]]] = True
        topk &= evaluated
    ids = table.column("video_id").combine_chunks()
    if same_ids is None or not ids.equals(pa.array(same_ids, ids.type)):
        same_ids = np.asarray(ids.to_pylist(), dtype=object)
    return VideoHits(
        split,
        same_ids,
        true_class,
        top1,
        topk,
    )

