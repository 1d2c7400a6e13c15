"""Intervals, paired tests and per-class gains against references written here."""

import json
import math
from fractions import Fraction

import numpy as np
import pytest

from zsar.core import stats
from zsar.core.metrics import mean_class_accuracy


def binomial_two_sided_p(only_a: int, only_b: int) -> float:
    """Reference: the probability, under Binomial(n, 1/2), of every outcome at least as
    far from n/2 as the observed one, summed term by term with math.comb."""
    n = only_a + only_b
    distance = abs(only_a - Fraction(n, 2))
    tail = sum(math.comb(n, k) for k in range(n + 1) if abs(k - Fraction(n, 2)) >= distance)
    return float(Fraction(tail, 2**n))


def naive_bootstrap_interval(correct, resamples, seed, level=0.95):
    """Reference: draw n video indices with replacement per resample and recount."""
    rng = np.random.default_rng(seed)
    index = rng.integers(0, correct.size, size=(resamples, correct.size))
    draws = correct[index].mean(axis=1)
    tail = (1 - level) / 2
    return tuple(np.quantile(draws, [tail, 1 - tail]))


def naive_stratified_interval(correct_a, correct_b, labels, resamples, seed, level=0.95):
    """Reference: within each class, draw that class's video indices with replacement and
    recount; the statistic is the mean over classes of b's accuracy minus a's (pass an
    all-False a for b's own mean-class accuracy)."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    draws = np.zeros(resamples)
    for c in classes:
        a, b = correct_a[labels == c], correct_b[labels == c]
        index = rng.integers(0, a.size, size=(resamples, a.size))
        draws += b[index].mean(axis=1) - a[index].mean(axis=1)
    tail = (1 - level) / 2
    return tuple(np.quantile(draws / classes.size, [tail, 1 - tail]))


def bernoulli_runs(seed: int, n: int, p: float, trials: int):
    data = np.random.default_rng(seed)
    return [data.random(n) < p for _ in range(trials)]


# --- McNemar ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "only_a, only_b",
    [(0, 0), (0, 1), (0, 5), (1, 9), (3, 3), (4, 7), (7, 4), (30, 150), (150, 30), (60, 61)],
)
def test_mcnemar_matches_direct_binomial_sum(only_a, only_b):
    assert stats.mcnemar_exact_p(only_a, only_b) == pytest.approx(
        binomial_two_sided_p(only_a, only_b), rel=1e-12, abs=0
    )


def test_mcnemar_by_hand_and_at_scale():
    # n = 5, none favour a: 2 * C(5,0) / 2^5 = 2/32.
    assert stats.mcnemar_exact_p(0, 5) == 2 / 32
    # n = 10, one favours a: 2 * (C(10,0) + C(10,1)) / 2^10 = 22/1024.
    assert stats.mcnemar_exact_p(1, 9) == 22 / 1024
    assert stats.mcnemar_exact_p(0, 0) == 1.0
    assert stats.mcnemar_exact_p(6, 6) == 1.0  # both tails together exceed 1: capped
    # Thousands of discordant videos: exact, symmetric, and no overflow.
    big = stats.mcnemar_exact_p(1900, 2100)
    assert big == stats.mcnemar_exact_p(2100, 1900)
    assert big == pytest.approx(binomial_two_sided_p(1900, 2100), rel=1e-12)
    assert 0 < big < 0.01


def test_mcnemar_rejects_negative_counts():
    with pytest.raises(ValueError, match="discordant"):
        stats.mcnemar_exact_p(-1, 3)


# --- Holm ------------------------------------------------------------------------------


def test_holm_hand_worked():
    # m = 4. Sorted: 0.005 (#3), 0.01 (#0), 0.03 (#2), 0.04 (#1).
    # Multiplied by 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04.
    # Running maximum: 0.02, 0.03, 0.06, 0.06. Back in input order:
    # #0 -> 0.03, #1 -> 0.06, #2 -> 0.06, #3 -> 0.02.
    assert stats.holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # m = 3. Sorted 0.3, 0.6, 0.9 -> 0.9, 1.2 (cap 1), 0.9 (max with 1 -> 1).
    assert stats.holm_adjust([0.6, 0.9, 0.3]) == pytest.approx([1.0, 1.0, 0.9])
    # Ties keep equal adjusted values: 0.02 * 2 = 0.04, then max(0.04, 0.02 * 1).
    assert stats.holm_adjust([0.02, 0.02]) == pytest.approx([0.04, 0.04])
    assert stats.holm_adjust([0.2]) == [0.2]
    assert stats.holm_adjust([]) == []


def test_holm_rejects_values_that_are_not_p_values():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        stats.holm_adjust([0.1, float("nan")])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        stats.holm_adjust([1.5])


# --- Intervals of one run ----------------------------------------------------------------


def test_accuracy_interval_covers_the_true_accuracy_about_95_percent_of_the_time():
    # 200 trials resolve coverage to about +-3 points (binomial sd 1.5), so this cannot
    # tell 95% from 92%; the width test below pins the level more tightly.
    runs = bernoulli_runs(seed=12345, n=500, p=0.7, trials=200)
    covered = [
        low <= 0.7 <= high
        for trial, correct in enumerate(runs)
        for low, high in [stats.bootstrap_accuracy_ci(correct, seed=trial)]
    ]
    assert 0.90 <= np.mean(covered) <= 0.99


def test_coverage_follows_the_level():
    # The same harness must fail a wrong interval: a 50% one covers about half the time.
    runs = bernoulli_runs(seed=12345, n=500, p=0.7, trials=200)
    covered = [
        low <= 0.7 <= high
        for trial, correct in enumerate(runs)
        for low, high in [stats.bootstrap_accuracy_ci(correct, seed=trial, level=0.5)]
    ]
    assert 0.40 <= np.mean(covered) <= 0.60


def test_count_draws_give_the_same_interval_as_resampling_indices():
    correct = np.random.default_rng(3).random(300) < 0.4
    fast = stats.bootstrap_accuracy_ci(correct, resamples=20000, seed=1)
    slow = naive_bootstrap_interval(correct, resamples=20000, seed=2)
    # Both are Monte Carlo estimates of the same quantiles (the grid step is 1/300).
    assert fast == pytest.approx(slow, abs=0.005)


def stratified_example():
    # 40 classes of 6 or 10 videos, so that many share (size, count) and the module
    # merges them into single draws; the reference draws every video.
    data = np.random.default_rng(8)
    labels = np.repeat(np.arange(40), data.choice([6, 10], 40))
    accuracy = data.uniform(0.2, 0.9, 40)[labels]
    a = data.random(labels.size) < accuracy
    b = a.copy()
    flip = data.random(labels.size) < 0.15
    b[flip] = ~b[flip]
    index, weights = stats.strata(labels.size, labels=labels)
    sizes = np.bincount(index)
    merged = stats.merge_identical_strata(sizes, weights, np.bincount(index, weights=b))
    assert merged[-1].max() > 1 and merged[-1].sum() == 40
    return a, b, labels


def test_stratified_count_draws_match_resampling_within_classes():
    a, b, labels = stratified_example()
    fast = stats.bootstrap_mean_class_ci(b, labels, resamples=20000, seed=1)
    slow = naive_stratified_interval(np.zeros_like(b), b, labels, resamples=20000, seed=2)
    assert fast == pytest.approx(slow, abs=0.004)


def test_paired_stratified_count_draws_match_resampling_pairs_within_classes():
    a, b, labels = stratified_example()
    result = stats.paired_difference(a, b, labels=labels, resamples=20000, seed=1)
    slow = naive_stratified_interval(a, b, labels, resamples=20000, seed=2)
    assert (result["ci_low"], result["ci_high"]) == pytest.approx(slow, abs=0.004)


def test_interval_width_shrinks_like_one_over_root_n():
    small = np.random.default_rng(0).random(400) < 0.5
    large = np.tile(small, 16)  # same accuracy, 16 times the videos
    w_small = np.subtract(*stats.bootstrap_accuracy_ci(small)[::-1])
    w_large = np.subtract(*stats.bootstrap_accuracy_ci(large)[::-1])
    assert w_small / w_large == pytest.approx(4, rel=0.15)
    # 1.96 * 2 * sqrt(0.25 / 400) = 0.098 for the small one.
    assert w_small == pytest.approx(0.098, rel=0.1)


def test_mean_class_interval_is_stratified_and_brackets_mean_class_accuracy():
    data = np.random.default_rng(7)
    classes = 20
    accuracy = np.linspace(0.3, 0.9, classes)
    true_mean = accuracy.mean()
    labels = np.repeat(np.arange(classes), 25)
    covered = []
    for trial in range(200):
        correct = data.random(labels.size) < accuracy[labels]
        low, high = stats.bootstrap_mean_class_ci(correct, labels, seed=trial)
        assert low <= mean_class_accuracy(correct, labels) <= high
        covered.append(low <= true_mean <= high)
    assert 0.88 <= np.mean(covered) <= 0.99


def test_mean_class_interval_keeps_each_class_in_every_resample():
    # Class 0 is always right, class 1 never: every stratified resample has mean-class
    # accuracy exactly 0.5, although a plain resample of videos would not.
    labels = np.array([0] * 3 + [1] * 17)
    correct = labels == 0
    assert stats.bootstrap_mean_class_ci(correct, labels) == (0.5, 0.5)
    low, high = stats.bootstrap_accuracy_ci(correct)
    assert low < 0.15 < high


def test_all_right_or_all_wrong_gives_a_point_interval():
    assert stats.bootstrap_accuracy_ci(np.ones(50, bool)) == (1.0, 1.0)
    assert stats.bootstrap_accuracy_ci(np.zeros(50, bool)) == (0.0, 0.0)


def test_no_videos_give_nan():
    low, high = stats.bootstrap_accuracy_ci(np.zeros(0, bool))
    assert math.isnan(low) and math.isnan(high)


def test_mean_over_splits_weights_each_split_equally():
    # Split 1: 10 videos, all right; split 2: 30 videos, none right. Mean over splits is
    # 0.5 (pooled would be 0.25); each split resampled alone keeps it at exactly 0.5.
    splits = np.array([1] * 10 + [2] * 30)
    correct = splits == 1
    assert stats.weighted_accuracy(correct, splits) == 0.5
    assert stats.bootstrap_ci(correct, splits=splits) == (0.5, 0.5)


def test_one_split_gives_the_plain_interval():
    correct = np.random.default_rng(4).random(200) < 0.3
    labels = np.random.default_rng(5).integers(0, 8, 200)
    splits = np.full(200, 3)
    assert stats.bootstrap_ci(correct, splits=splits) == stats.bootstrap_accuracy_ci(correct)
    assert stats.bootstrap_ci(
        correct, splits=splits, labels=labels
    ) == stats.bootstrap_mean_class_ci(correct, labels)


def test_mean_over_splits_of_mean_class_accuracy():
    splits = np.array([1, 1, 1, 2, 2])
    labels = np.array([0, 0, 1, 0, 1])
    correct = np.array([True, False, True, False, False])
    # split 1: class 0 -> 1/2, class 1 -> 1/1: 0.75; split 2: 0 and 0: 0. Mean 0.375.
    assert stats.weighted_accuracy(correct, splits, labels) == pytest.approx(0.375)


def test_same_seed_same_interval_other_seed_other_interval():
    correct = np.random.default_rng(9).random(1000) < 0.55
    labels = np.random.default_rng(10).integers(0, 30, 1000)
    first = stats.bootstrap_mean_class_ci(correct, labels, seed=0)
    assert stats.bootstrap_mean_class_ci(correct, labels, seed=0) == first
    others = {stats.bootstrap_mean_class_ci(correct, labels, seed=s) for s in range(1, 4)}
    assert first not in others


def test_level_must_be_a_fraction():
    with pytest.raises(ValueError, match="level"):
        stats.bootstrap_accuracy_ci(np.ones(5, bool), level=95)


# --- Paired comparisons ----------------------------------------------------------------


def paired_videos(both: int, only_a: int, only_b: int, neither: int):
    correct_a = np.array([True] * both + [True] * only_a + [False] * only_b + [False] * neither)
    correct_b = np.array([True] * both + [False] * only_a + [True] * only_b + [False] * neither)
    return correct_a, correct_b


def test_a_strong_effect_is_significant():
    a, b = paired_videos(both=800, only_a=30, only_b=150, neither=1020)  # 2,000 videos
    result = stats.paired_difference(a, b)
    assert result["only_a"] == 30 and result["only_b"] == 150 and result["videos"] == 2000
    assert result["difference"] == pytest.approx(120 / 2000)
    assert 0 < result["ci_low"] < 0.06 < result["ci_high"]
    assert result["mcnemar_p"] < 1e-15
    [record] = stats.compare_runs({"baseline": a, "full": b}, [("baseline", "full")])
    assert record["significant"]


def test_a_demo_sized_gain_is_not_significant():
    # 24 videos, baseline 3 right, the variant 7: a gain of 16.7 points from 5 videos
    # the variant gets and 1 it loses.
    a, b = paired_videos(both=2, only_a=1, only_b=5, neither=16)
    result = stats.paired_difference(a, b)
    assert result["difference"] == pytest.approx(4 / 24)
    assert result["mcnemar_p"] == pytest.approx(2 * 7 / 64)  # 2 * (C(6,0) + C(6,1)) / 2^6
    assert result["ci_low"] <= 0 <= result["ci_high"]
    [record] = stats.compare_runs({"baseline": a, "+caption": b}, [("baseline", "+caption")])
    assert not record["significant"]


def test_the_exact_test_decides_where_the_bootstrap_interval_is_too_narrow():
    # The demo's +caption: 4 videos gained, none lost, of 24. No resample can show a loss
    # and (20/24)^24 = 1.3% < 2.5% of them draw none of the 4, so the percentile interval
    # excludes zero; the exact test (p = 2/16) does not, and nothing is marked.
    a, b = paired_videos(both=3, only_a=0, only_b=4, neither=17)
    result = stats.paired_difference(a, b)
    assert result["ci_low"] > 0
    assert result["mcnemar_p"] == 2 / 16
    [record] = stats.compare_runs({"baseline": a, "+caption": b}, [("baseline", "+caption")])
    assert not record["significant"]


def test_paired_interval_covers_the_true_difference():
    data = np.random.default_rng(21)
    covered = []
    for trial in range(200):
        u = data.random(500)
        # cells: both right 0.5, only a 0.1, only b 0.15, neither 0.25 -> b - a = 0.05
        a = u < 0.6
        b = (u < 0.5) | ((u >= 0.6) & (u < 0.75))
        result = stats.paired_difference(a, b, seed=trial)
        covered.append(result["ci_low"] <= 0.05 <= result["ci_high"])
    assert 0.90 <= np.mean(covered) <= 0.99


def test_pairing_narrows_the_interval():
    # b equals a except on 10 videos: the paired interval is much narrower than the
    # two unpaired intervals would suggest.
    a = np.random.default_rng(2).random(1000) < 0.5
    b = a.copy()
    b[np.flatnonzero(~a)[:10]] = True
    result = stats.paired_difference(a, b)
    low_a, high_a = stats.bootstrap_accuracy_ci(a)
    assert result["ci_high"] - result["ci_low"] < (high_a - low_a) / 3
    assert result["ci_low"] > 0


def test_paired_mean_class_difference():
    labels = np.array([0, 0, 0, 0, 1, 1])
    a = np.array([True, False, False, False, True, True])
    b = np.array([True, True, True, False, True, False])
    result = stats.paired_difference(a, b, labels=labels, seed=3)
    # class 0: 1/4 -> 3/4 (+0.5); class 1: 2/2 -> 1/2 (-0.5); mean 0.
    assert result["difference"] == pytest.approx(0.0)
    expected = mean_class_accuracy(b, labels) - mean_class_accuracy(a, labels)
    assert result["difference"] == pytest.approx(expected)
    assert result["ci_low"] <= 0 <= result["ci_high"]


def test_identical_runs_differ_by_exactly_zero():
    a = np.random.default_rng(1).random(100) < 0.5
    result = stats.paired_difference(a, a.copy())
    assert (result["difference"], result["ci_low"], result["ci_high"]) == (0.0, 0.0, 0.0)
    assert result["mcnemar_p"] == 1.0


def test_paired_runs_must_cover_the_same_videos():
    with pytest.raises(ValueError, match="same videos"):
        stats.paired_difference(np.ones(3, bool), np.ones(4, bool))


def test_holm_can_take_away_a_mark():
    # Five comparisons with the same raw p just under 0.05: alone each would count, but
    # Holm multiplies the smallest by 5.
    a, b = paired_videos(both=200, only_a=10, only_b=24, neither=266)
    raw = stats.mcnemar_exact_p(10, 24)
    assert 0.01 < raw < 0.05
    runs = {"baseline": a, **{f"v{i}": b for i in range(5)}}
    records = stats.compare_runs(runs, [("baseline", f"v{i}") for i in range(5)])
    assert all(r["mcnemar_p"] == raw for r in records)
    assert all(r["mcnemar_p_holm"] == pytest.approx(min(1, 5 * raw)) for r in records)
    assert not any(r["significant"] for r in records)
    [alone] = stats.compare_runs(runs, [("baseline", "v0")])
    assert alone["significant"]


def test_comparison_records_are_byte_identical_for_a_seed():
    data = np.random.default_rng(11)
    labels = data.integers(0, 40, 3000)
    runs = {name: data.random(3000) < p for name, p in [("baseline", 0.4), ("full", 0.45)]}
    once = json.dumps(stats.compare_runs(runs, [("baseline", "full")], labels=labels, seed=5))
    again = json.dumps(stats.compare_runs(runs, [("baseline", "full")], labels=labels, seed=5))
    other = json.dumps(stats.compare_runs(runs, [("baseline", "full")], labels=labels, seed=6))
    assert once == again
    assert once != other


def test_ablation_pairs():
    runs = {
        "baseline": ("baseline", None),
        "+descriptors": ("+descriptors", None),
        "+hierarchy": ("+hierarchy", None),
        "+caption_lambda0.3": ("+caption", 0.3),
        "+caption_lambda0.5": ("+caption", 0.5),
        "full_lambda0.3": ("full", 0.3),
        "full_lambda0.5": ("full", 0.5),
    }
    pairs = stats.comparison_pairs(runs)
    assert pairs == [
        ("baseline", "+descriptors"),
        ("baseline", "+hierarchy"),
        ("baseline", "+caption_lambda0.3"),
        ("baseline", "+caption_lambda0.5"),
        ("baseline", "full_lambda0.3"),
        ("baseline", "full_lambda0.5"),
        ("+descriptors", "full_lambda0.3"),
        ("+hierarchy", "full_lambda0.3"),
        ("+caption_lambda0.3", "full_lambda0.3"),
        ("+descriptors", "full_lambda0.5"),
        ("+hierarchy", "full_lambda0.5"),
        ("+caption_lambda0.5", "full_lambda0.5"),
    ]


def test_align_pairs_videos_by_key_whatever_the_row_order():
    keys_a = [(1, "v3"), (1, "v1"), (1, "v2")]
    keys_b = [(1, "v2"), (1, "v3"), (1, "v9"), (1, "v1")]
    index_a, index_b = stats.align(keys_a, keys_b)
    assert [keys_a[i] for i in index_a] == [(1, "v1"), (1, "v2"), (1, "v3")]
    assert [keys_b[i] for i in index_b] == [(1, "v1"), (1, "v2"), (1, "v3")]


# --- Per-class gains -----------------------------------------------------------------


def test_per_class_gains_by_hand():
    names = ["clap", "jump", "run", "wave"]  # "wave" has no videos
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    a = np.array([0, 0, 1, 1, 1, 1, 1, 0, 0], bool)
    b = np.array([1, 1, 0, 1, 0, 1, 1, 1, 1], bool)
    rows = stats.per_class_gains(a, b, labels, names)
    # clap: 1/3 -> 2/3, gained 2 lost 1: +33.3; jump: 2/2 -> 1/2, lost 1: -50;
    # run: 2/4 -> 4/4, gained 2: +50.
    assert [r["class"] for r in rows] == ["run", "clap", "jump"]
    run, clap, jump = rows
    assert run == {
        "class_id": 2,
        "class": "run",
        "videos": 4,
        "correct_a": 2,
        "correct_b": 4,
        "gain_points": 50.0,
        "gained": 2,
        "lost": 0,
    }
    assert (clap["gained"], clap["lost"]) == (2, 1)
    assert clap["gain_points"] == pytest.approx(100 / 3)
    assert (jump["gain_points"], jump["gained"], jump["lost"]) == (-50.0, 0, 1)
    gains, losses = stats.largest_changes(rows, limit=1)
    assert [r["class"] for r in gains] == ["run"] and [r["class"] for r in losses] == ["jump"]


def test_per_class_gain_ties_sort_by_name():
    labels = np.array([0, 1, 2])
    rows = stats.per_class_gains(
        np.zeros(3, bool), np.ones(3, bool), labels, ["zebra", "apple", "mango"]
    )
    assert [r["class"] for r in rows] == ["apple", "mango", "zebra"]


def test_per_class_gains_reject_labels_outside_the_class_list():
    with pytest.raises(ValueError, match="class_names"):
        stats.per_class_gains(np.ones(2, bool), np.ones(2, bool), np.array([0, 5]), ["a", "b"])


def test_interval_method_names_what_was_done():
    method = stats.interval_method(resamples=500, seed=3)
    assert method["resamples"] == 500 and method["seed"] == 3 and method["level"] == 0.95
    assert "bootstrap" in method["method"] and "Holm" in method["multiple_comparisons"]


# --- Record shapes for the score and compare rules -------------------------------------


def two_split_runs():
    data = np.random.default_rng(31)
    splits = np.repeat([1, 2], 300)
    labels = np.tile(np.arange(10), 60)
    base = data.random(600) < 0.4
    full = base | (data.random(600) < 0.3)
    return splits, labels, base, full


def test_accuracy_intervals_shaped_like_the_metrics_json():
    splits, labels, top1, _ = two_split_runs()
    top5 = top1 | (np.random.default_rng(1).random(600) < 0.5)
    out = stats.accuracy_intervals(top1, top5, labels, splits)
    assert sorted(out) == ["mean", "splits"] and sorted(out["splits"]) == ["1", "2"]
    first = top1[:300]
    assert out["splits"]["1"]["top1"] == list(stats.bootstrap_accuracy_ci(first))
    assert out["splits"]["1"]["mean_class"] == list(
        stats.bootstrap_mean_class_ci(first, labels[:300])
    )
    for key in ("top1", "top5", "mean_class"):
        low, high = out["mean"][key]
        point = stats.weighted_accuracy(
            top5 if key == "top5" else top1, splits, labels if key == "mean_class" else None
        )
        assert low <= point <= high
    # The mean over two splits of 300 is surer than either split.
    width = np.diff(out["mean"]["top1"])[0]
    assert width < np.diff(out["splits"]["1"]["top1"])[0]
    assert json.dumps(out) == json.dumps(stats.accuracy_intervals(top1, top5, labels, splits))


def test_ablation_comparisons_holm_per_metric_and_no_test_for_mean_class():
    splits, labels, base, full = two_split_runs()
    top1 = {"baseline": base, "full": full}
    out = stats.ablation_comparisons(top1, top1, labels, splits, [("baseline", "full")])
    assert out["pairs"] == [["baseline", "full"]]
    [record] = out["top1"]
    assert record["significant"] and record["difference"] > 0.1
    [mean_class] = out["mean_class"]
    assert "significant" not in mean_class and "mcnemar_p" not in mean_class
    assert mean_class["ci_low"] <= mean_class["difference"] <= mean_class["ci_high"]
