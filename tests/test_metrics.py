"""Top-1, top-5 and mean-class accuracy against values worked out by hand, ties included."""

import numpy as np
import pytest

from zsar.core.metrics import accuracy_metrics, mean_std, rank_classes

# 6 classes, 5 videos. Worked by hand (tie rule: equal scores rank the lower class id first).
SCORES = np.array(
    [
        [0.9, 0.1, 0.0, 0.0, 0.0, 0.0],  # label 0: top-1 correct
        [0.5, 0.5, 0.1, 0.0, 0.0, 0.0],  # label 1: tie 0/1 -> class 0 ranks first: wrong, in top-5
        [0.5, 0.5, 0.1, 0.0, 0.0, 0.0],  # label 0: same tie -> class 0 first: correct
        [0.6, 0.5, 0.4, 0.3, 0.2, 0.1],  # label 5: ranked 6th: wrong, not in top-5
        [0.2, 0.2, 0.2, 0.2, 0.2, 0.2],  # label 4: all tied -> order 0..5, 4 is 5th: in top-5
    ]
)
LABELS = np.array([0, 1, 0, 5, 4])


def test_rank_ties_go_to_lower_class_id():
    assert rank_classes(SCORES, 6)[4].tolist() == [0, 1, 2, 3, 4, 5]
    assert rank_classes(SCORES, 2)[1].tolist() == [0, 1]


def test_accuracies_by_hand():
    m = accuracy_metrics(SCORES, LABELS)
    assert m["top1"] == pytest.approx(2 / 5)
    # top-5 hits: videos 0, 1, 2, 4 -> 4/5
    assert m["top5"] == pytest.approx(4 / 5)
    # per class top-1 recall: class 0 -> 2/2, class 1 -> 0/1, class 4 -> 0/1, class 5 -> 0/1
    assert m["mean_class"] == pytest.approx((1 + 0 + 0 + 0) / 4)


def test_invalid_rows_count_as_wrong_whatever_their_scores():
    valid = np.array([False, True, True, True, True])
    m = accuracy_metrics(SCORES, LABELS, valid=valid)
    assert m["top1"] == pytest.approx(1 / 5)
    assert m["top5"] == pytest.approx(3 / 5)
    assert m["mean_class"] == pytest.approx((0.5 + 0 + 0 + 0) / 4)


def test_topk_larger_than_classes_is_all():
    m = accuracy_metrics(SCORES[:, :3], np.array([0, 1, 2, 0, 1]))
    assert m["top5"] == 1.0


def test_mean_std_over_splits():
    assert mean_std([0.5]) == (0.5, 0.0)
    mean, std = mean_std([0.2, 0.4, 0.6])
    assert mean == pytest.approx(0.4)
    assert std == pytest.approx(np.sqrt(((0.2 - 0.4) ** 2 + 0 + (0.6 - 0.4) ** 2) / 3))
