"""How sure each accuracy is: bootstrap intervals, paired comparisons, per-class gains.

Pure functions on per-video boolean arrays (is this video right?), as read from a scores
Parquet: `correct` for top-1, `true_class in topk_classes` for top-5, `true_class` for the
labels, `split` for the splits. Nothing here reads files or depends on a model.

Intervals are percentile bootstrap intervals over videos, drawn from numpy's
`Generator(PCG64(seed))`, so the same seed gives the same numbers, to the last bit.

Why the bootstrap costs almost nothing here. Every statistic below depends on the
videos only through a few counts per stratum (a stratum is a split, a class, or a
split x class cell):

- an accuracy, through the number of right videos;
- a paired difference between runs a and b, through the two discordant counts
  (a right and b wrong; a wrong and b right).

Resampling the n videos of a stratum with replacement and counting again gives counts
that are multinomial over those categories, with the observed proportions as
probabilities: Binomial(n, k/n) for an accuracy, Multinomial(n; only_a/n, only_b/n,
rest) for a paired difference. So drawing those counts directly is the same bootstrap,
with exactly the same distribution, as drawing n indices per resample and recounting.
Only the random stream differs. A resample of 20,000 videos then costs one draw per
stratum instead of 20,000, and 1,000 resamples of 400 classes hold 400,000 numbers in
memory (resamples x strata x 8 bytes), whatever the number of videos. A stratified
bootstrap (within class, within split) keeps each stratum's size; so do the
per-stratum draws. Strata that agree in size, weight and counts are merged into one
draw (`merge_identical_strata`), which is again the same distribution and makes
mean-class intervals over hundreds of classes cost a few milliseconds.

Several splits. The metrics JSON reports the mean over splits of each accuracy. Its
interval resamples videos within each split (and within each class, for mean-class
accuracy) and averages the resampled per-split values in the same way. With one split
this is the plain interval, from the same draws.

Paired comparisons test b against a on the same videos. The interval is the paired
bootstrap of b - a. The test is McNemar's exact test: under "a and b are right equally
often", each discordant video is equally likely to favour either, so the count
favouring a is Binomial(only_a + only_b, 1/2). Where several comparisons are reported
together, their p-values are adjusted with Holm's step-down method, and a difference is
called significant only when the adjusted p is below alpha and the (per-comparison)
interval excludes zero, so a marked gain never sits beside an interval that crosses 0.

Why the test decides, not the interval alone: with few discordant videos the percentile
bootstrap is too narrow. In the demo (24 videos) `+caption` gets 4 videos right that
baseline gets wrong and loses none; no resample can then show a loss, and only 1.3% of
resamples ((20/24)**24) draw none of the 4, so the 95% interval is [+4.2, +33.3] points
although the exact p is 0.125. The exact test has no such floor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

DEFAULT_RESAMPLES = 1000
DEFAULT_LEVEL = 0.95
DEFAULT_ALPHA = 0.05


def settings(given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The config's `statistics` block (resamples, seed, level, alpha), with the defaults
    above where a key is absent."""
    given = given or {}
    return {
        "resamples": int(given.get("resamples", DEFAULT_RESAMPLES)),
        "seed": int(given.get("seed", 0)),
        "level": float(given.get("level", DEFAULT_LEVEL)),
        "alpha": float(given.get("alpha", DEFAULT_ALPHA)),
    }


def interval_method(
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
    alpha: float = DEFAULT_ALPHA,
) -> dict[str, Any]:
    """How the intervals and tests were made, for the provenance block."""
    return {
        "method": "percentile bootstrap over videos",
        "resamples": int(resamples),
        "seed": int(seed),
        "level": float(level),
        "rng": "numpy Generator(PCG64(seed))",
        "mean_class": "stratified by class",
        "splits": "stratified by split; the mean over splits is resampled as a whole",
        "paired": "paired bootstrap of the difference; exact McNemar test on discordant videos",
        "multiple_comparisons": f"Holm, alpha={alpha:g}, over the comparisons reported together",
    }


def make_rng(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed))


def percentile_interval(draws: np.ndarray, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """The central `level` interval of the bootstrap draws."""
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    if draws.size == 0:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(draws, [tail, 1.0 - tail])
    return float(low), float(high)


# ---------------------------------------------------------------------------
# Strata: which videos are resampled together, and the weight of each stratum's mean.
# ---------------------------------------------------------------------------


def strata(
    n: int, splits: np.ndarray | None = None, labels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(stratum index per video, weight per stratum) for "mean over splits of the mean
    over classes". Without labels a split is one stratum; without splits all videos are
    one split. The weights sum to 1, so sum(weight * per-stratum accuracy) is the metric.
    """
    split_key = np.zeros(n, np.int64) if splits is None else np.asarray(splits)
    class_key = np.zeros(n, np.int64) if labels is None else np.asarray(labels)
    if split_key.shape != (n,) or class_key.shape != (n,):
        raise ValueError("splits and labels must have one entry per video")
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    split_values, split_code = np.unique(split_key, return_inverse=True)
    class_values, class_code = np.unique(class_key, return_inverse=True)
    cell_code = split_code.reshape(-1) * class_values.size + class_code.reshape(-1)
    cells, index = np.unique(cell_code, return_inverse=True)
    cell_split = cells // class_values.size
    cells_per_split = np.bincount(cell_split, minlength=split_values.size)
    weights = 1.0 / (split_values.size * cells_per_split[cell_split])
    return index.reshape(-1).astype(np.int64), weights


def _counts(index: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    return np.bincount(index, weights=values.astype(np.float64), minlength=size).astype(np.int64)


def _check_hits(name: str, values: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"{name} must be a 1-d array of per-video booleans")
    return values.astype(bool)


# ---------------------------------------------------------------------------
# One run: accuracy, mean-class accuracy, means over splits.
# ---------------------------------------------------------------------------


def merge_identical_strata(
    sizes: np.ndarray, weights: np.ndarray, *counts: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Strata that agree in size, weight and counts, merged: (sizes, weights, *counts,
    how many strata each merged row stands for), sorted.

    The metric sums weight * count / size over strata; for m such strata that sum is
    weight / size times the sum of m iid resampled counts, and m iid Binomial(n, p)
    counts sum to Binomial(m * n, p) (multinomials likewise). So one draw per merged row
    has the same distribution as one per stratum. With K400's 50 videos per class, 400
    classes fall to at most 51 rows.
    """
    rows = np.stack([sizes, weights, *counts], axis=1).astype(np.float64)
    merged, multiplicity = np.unique(rows, axis=0, return_counts=True)
    columns = [merged[:, 0].astype(np.int64), merged[:, 1]]
    columns += [merged[:, 2 + i].astype(np.int64) for i in range(len(counts))]
    return (*columns, multiplicity.astype(np.int64))


def resampled_accuracy(
    hits: np.ndarray, sizes: np.ndarray, weights: np.ndarray, resamples: int, rng
) -> np.ndarray:
    """Bootstrap draws of sum_s weight_s * hits_s / size_s, each stratum resampled at
    its own size (a binomial draw is a resample of that stratum's videos, recounted)."""
    sizes, weights, hits, times = merge_identical_strata(sizes, weights, hits)
    drawn = rng.binomial(times * sizes, hits / sizes, size=(resamples, sizes.size))
    return (drawn / sizes) @ weights


def bootstrap_ci(
    correct: np.ndarray,
    *,
    splits: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> tuple[float, float]:
    """Percentile interval of the mean over splits of the accuracy (labels=None) or of
    the mean-class accuracy (labels given), resampling videos within split and class."""
    correct = _check_hits("correct", correct)
    if correct.size == 0:
        return float("nan"), float("nan")
    index, weights = strata(correct.size, splits, labels)
    sizes = np.bincount(index, minlength=weights.size)
    hits = _counts(index, correct, weights.size)
    draws = resampled_accuracy(hits, sizes, weights, resamples, make_rng(seed))
    return percentile_interval(draws, level)


def bootstrap_accuracy_ci(
    correct: np.ndarray,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> tuple[float, float]:
    """Interval of the fraction of videos right (top-1 or top-k), resampling videos."""
    return bootstrap_ci(correct, resamples=resamples, seed=seed, level=level)


def bootstrap_mean_class_ci(
    correct: np.ndarray,
    labels: np.ndarray,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> tuple[float, float]:
    """Interval of mean-class accuracy, resampling videos within each class (so every
    class keeps its size and stays in every resample)."""
    return bootstrap_ci(correct, labels=labels, resamples=resamples, seed=seed, level=level)


def weighted_accuracy(
    correct: np.ndarray, splits: np.ndarray | None = None, labels: np.ndarray | None = None
) -> float:
    """The point estimate that `bootstrap_ci` brackets (e.g. mean over splits of
    mean-class accuracy), computed with the same strata."""
    correct = _check_hits("correct", correct)
    if correct.size == 0:
        return float("nan")
    index, weights = strata(correct.size, splits, labels)
    sizes = np.bincount(index, minlength=weights.size)
    return float((_counts(index, correct, weights.size) / sizes) @ weights)


def accuracy_intervals(
    top1: np.ndarray,
    topk: np.ndarray,
    labels: np.ndarray,
    splits: np.ndarray,
    *,
    topk_key: str = "top5",
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> dict[str, Any]:
    """The intervals of one run, shaped like its metrics JSON: per split and for the mean
    over splits, [low, high] of top-1, top-k and mean-class accuracy (fractions)."""
    top1, topk = _check_hits("top1", top1), _check_hits("topk", topk)
    labels, splits = np.asarray(labels), np.asarray(splits)
    options = {"resamples": resamples, "seed": seed, "level": level}

    def three(mask: np.ndarray, by_split: np.ndarray | None) -> dict[str, list[float]]:
        return {
            "top1": list(bootstrap_ci(top1[mask], splits=by_split, **options)),
            topk_key: list(bootstrap_ci(topk[mask], splits=by_split, **options)),
            "mean_class": list(
                bootstrap_ci(top1[mask], splits=by_split, labels=labels[mask], **options)
            ),
        }

    every = np.ones(top1.size, bool)
    return {
        "splits": {str(s): three(splits == s, None) for s in np.unique(splits).tolist()},
        "mean": three(every, splits),
    }


# ---------------------------------------------------------------------------
# Two runs on the same videos: paired bootstrap and McNemar's exact test.
# ---------------------------------------------------------------------------


@lru_cache(maxsize=4096)  # a top-1 and a mean-class comparison test the same counts
def mcnemar_exact_p(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts.

    Under the null each of the n = only_a + only_b discordant videos favours a or b with
    probability 1/2; p = min(1, 2 * P(X <= min(only_a, only_b))), X ~ Binomial(n, 1/2).
    Computed in exact integer arithmetic (the tail sum of binomial coefficients, each
    from the last), then divided by 2**n once: Python rounds that quotient correctly,
    and it underflows to 0.0 only below about 1e-308.
    """
    if only_a < 0 or only_b < 0:
        raise ValueError(f"discordant counts must be >= 0, got {only_a} and {only_b}")
    n, smaller = int(only_a + only_b), int(min(only_a, only_b))
    if n == 0:
        return 1.0
    term, tail = 1, 1  # C(n, 0)
    for k in range(smaller):
        term = term * (n - k) // (k + 1)  # C(n, k+1), exact
        tail += term
    return min(1.0, (2 * tail) / (1 << n))


def resampled_difference(
    only_a: np.ndarray,
    only_b: np.ndarray,
    sizes: np.ndarray,
    weights: np.ndarray,
    resamples: int,
    rng,
) -> np.ndarray:
    """Bootstrap draws of sum_s weight_s * (only_b_s - only_a_s) / size_s, resampling
    the videos of each stratum as pairs. The multinomial over (only a right, only b
    right, the rest) is drawn as a binomial for the first count and a binomial for the
    second given the first, which is the same distribution."""
    sizes, weights, only_a, only_b, times = merge_identical_strata(sizes, weights, only_a, only_b)
    p_a = only_a / sizes
    rest = 1.0 - p_a
    p_b_given = np.divide(only_b / sizes, rest, out=np.zeros_like(rest), where=rest > 0)
    drawn_a = rng.binomial(times * sizes, p_a, size=(resamples, sizes.size))
    drawn_b = rng.binomial(times * sizes - drawn_a, np.minimum(p_b_given, 1.0))
    return ((drawn_b - drawn_a) / sizes) @ weights


def paired_difference(
    correct_a: np.ndarray,
    correct_b: np.ndarray,
    *,
    splits: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> dict[str, Any]:
    """b minus a on the same videos (row i of both arrays is the same video).

    `difference` is the metric of b minus that of a (as fractions): the accuracy, or the
    mean-class accuracy when labels are given, as a mean over splits. `only_a` counts
    videos a gets right and b wrong (McNemar's b), `only_b` the reverse (McNemar's c);
    the exact McNemar p-value is computed on those pooled counts.
    """
    correct_a = _check_hits("correct_a", correct_a)
    correct_b = _check_hits("correct_b", correct_b)
    if correct_a.shape != correct_b.shape:
        raise ValueError(
            f"paired runs must cover the same videos: {correct_a.size} vs {correct_b.size}"
        )
    only_a_video = correct_a & ~correct_b
    only_b_video = correct_b & ~correct_a
    record: dict[str, Any] = {
        "videos": int(correct_a.size),
        "only_a": int(only_a_video.sum()),
        "only_b": int(only_b_video.sum()),
    }
    record["mcnemar_p"] = mcnemar_exact_p(record["only_a"], record["only_b"])
    if correct_a.size == 0:
        return {
            "difference": float("nan"),
            "ci_low": float("nan"),
            "ci_high": float("nan"),
            **record,
        }
    index, weights = strata(correct_a.size, splits, labels)
    sizes = np.bincount(index, minlength=weights.size)
    a_counts = _counts(index, only_a_video, weights.size)
    b_counts = _counts(index, only_b_video, weights.size)
    draws = resampled_difference(a_counts, b_counts, sizes, weights, resamples, make_rng(seed))
    low, high = percentile_interval(draws, level)
    difference = float(((b_counts - a_counts) / sizes) @ weights)
    return {"difference": difference, "ci_low": low, "ci_high": high, **record}


def holm_adjust(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input's order.

    Sorted ascending, the i-th smallest (i from 0) of m is multiplied by m - i; the
    running maximum keeps the adjusted values in the same order as the raw ones, and
    they are capped at 1. Rejecting where adjusted p < alpha is Holm's procedure.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError("pvalues must be a flat sequence")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError(f"p-values must lie in [0, 1], got {p.tolist()}")
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return adjusted.tolist()


def comparison_pairs(
    runs: Mapping[str, tuple[str, float | None]],
    *,
    baseline: str = "baseline",
    full: str = "full",
) -> list[tuple[str, str]]:
    """(a, b) run pairs of an ablation: every run against the baseline run, and each
    full run against each single-component run at the same λ (or with none).

    `runs` maps run name -> (variant, λ or None), in the order the table shows them.
    """
    base_runs = [r for r, (variant, _) in runs.items() if variant == baseline]
    pairs = [(base, r) for base in base_runs for r, (v, _) in runs.items() if v != baseline]
    for full_run, (variant, lam) in runs.items():
        if variant != full:
            continue
        for single, (v, single_lam) in runs.items():
            if v not in (baseline, full) and single_lam in (None, lam):
                pairs.append((single, full_run))
    return pairs


def compare_runs(
    correct: Mapping[str, np.ndarray],
    pairs: Sequence[tuple[str, str]],
    *,
    splits: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
    alpha: float = DEFAULT_ALPHA,
) -> list[dict[str, Any]]:
    """One paired record per (a, b) pair, Holm-adjusted together.

    All arrays are aligned on the same videos (see `align`). `significant` holds when the
    Holm-adjusted McNemar p is below alpha and the interval excludes zero.
    """
    records = []
    for a, b in pairs:
        result = paired_difference(
            correct[a],
            correct[b],
            splits=splits,
            labels=labels,
            resamples=resamples,
            seed=seed,
            level=level,
        )
        records.append({"a": a, "b": b, **result})
    adjusted = holm_adjust([r["mcnemar_p"] for r in records])
    for record, p in zip(records, adjusted, strict=True):
        excludes_zero = record["ci_low"] > 0 or record["ci_high"] < 0
        record["mcnemar_p_holm"] = p
        record["significant"] = bool(p < alpha and excludes_zero)
    return records


def ablation_comparisons(
    top1: Mapping[str, np.ndarray],
    topk: Mapping[str, np.ndarray],
    labels: np.ndarray,
    splits: np.ndarray,
    pairs: Sequence[tuple[str, str]],
    *,
    topk_key: str = "top5",
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
    alpha: float = DEFAULT_ALPHA,
) -> dict[str, Any]:
    """Every pair compared on top-1, top-k and mean-class accuracy (means over splits).

    Holm adjusts each metric's comparisons together (one pivot table's worth). McNemar's
    test is on per-video hits, so it tests top-1 and top-k; the mean-class records carry
    the difference and its stratified interval only, and no significance.
    """
    options = {"resamples": resamples, "seed": seed, "level": level, "alpha": alpha}
    mean_class = compare_runs(top1, pairs, splits=splits, labels=labels, **options)
    untested = ("mcnemar_p", "mcnemar_p_holm", "significant")
    return {
        "pairs": [list(pair) for pair in pairs],
        "top1": compare_runs(top1, pairs, splits=splits, **options),
        topk_key: compare_runs(topk, pairs, splits=splits, **options),
        "mean_class": [{k: v for k, v in r.items() if k not in untested} for r in mean_class],
    }


def align(keys_a: Sequence[Any], keys_b: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Row indices into a and into b of the videos both runs hold, in sorted key order,
    so that paired arrays line up video by video whatever order the files were in."""
    position_b = {key: i for i, key in enumerate(keys_b)}
    common = sorted((key, i) for i, key in enumerate(keys_a) if key in position_b)
    index_a = np.array([i for _, i in common], dtype=np.int64)
    index_b = np.array([position_b[key] for key, _ in common], dtype=np.int64)
    return index_a, index_b


# ---------------------------------------------------------------------------
# Per-class gains.
# ---------------------------------------------------------------------------


def per_class_gains(
    correct_a: np.ndarray,
    correct_b: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
) -> list[dict[str, Any]]:
    """Per class that has videos: its top-1 counts under a and b, the gain of b over a
    in points, and how many videos b newly gets right (gained) or newly gets wrong
    (lost). Sorted by gain, largest first, then by class name."""
    correct_a = _check_hits("correct_a", correct_a)
    correct_b = _check_hits("correct_b", correct_b)
    labels = np.asarray(labels, dtype=np.int64)
    if not correct_a.shape == correct_b.shape == labels.shape:
        raise ValueError("correct_a, correct_b and labels must have one entry per video")
    if labels.size and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise ValueError(f"labels must index class_names (0..{len(class_names) - 1})")
    size = len(class_names)

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(labels[mask], minlength=size)

    videos = np.bincount(labels, minlength=size)
    right_a, right_b = count(correct_a), count(correct_b)
    gained, lost = count(correct_b & ~correct_a), count(correct_a & ~correct_b)
    rows = [
        {
            "class_id": c,
            "class": class_names[c],
            "videos": int(videos[c]),
            "correct_a": int(right_a[c]),
            "correct_b": int(right_b[c]),
            "gain_points": 100.0 * (int(right_b[c]) - int(right_a[c])) / int(videos[c]),
            "gained": int(gained[c]),
            "lost": int(lost[c]),
        }
        for c in np.flatnonzero(videos).tolist()
    ]
    return sorted(rows, key=lambda r: (-r["gain_points"], r["class"], r["class_id"]))


def largest_changes(
    rows: Sequence[Mapping[str, Any]], limit: int = 10
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """The `limit` classes that gain most (gain > 0) and that lose most (gain < 0, the
    worst first), from rows sorted as `per_class_gains` returns them."""
    gains = [r for r in rows if r["gain_points"] > 0][:limit]
    losses = sorted(
        (r for r in rows if r["gain_points"] < 0),
        key=lambda r: (r["gain_points"], r["class"], r["class_id"]),
    )[:limit]
    return gains, losses
