"""The pieces that keep the downstream jobs flat in memory give what the whole-matrix code
gave: one partial sort ranks as a full stable sort does (ties included), class sums by
grouping add in np.add.at's order, rows read by key from row groups are the rows asked for,
and a split scored in many blocks ranks and counts as in one.

The oracles are numpy's own full stable argsort and np.add.at, and the vectors as written.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from zsar.core.metrics import rank_classes
from zsar.data.io import KeyedRows, RowGroups
from zsar.stages import scoring
from zsar.stages.scoring import class_sums, score_split


@pytest.mark.parametrize("k", [1, 3, 5, 9, 12])
def test_one_partial_sort_ranks_as_a_full_stable_sort(k):
    rng = np.random.default_rng(0)
    # Few distinct values: most rows hold ties, across and at the k-th place.
    scores = rng.integers(0, 4, size=(300, 12)).astype(np.float64)
    scores[::7] = rng.standard_normal((len(scores[::7]), 12))  # and some rows without
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(rank_classes(scores, k), expected)


def test_ranking_an_empty_block():
    assert rank_classes(np.zeros((0, 7)), 5).shape == (0, 5)


def test_class_sums_are_np_add_at_bit_for_bit():
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((3000, 16)).astype(np.float32)
    owners = rng.integers(0, 200, size=3000)  # several CLASSES_PER_SUM chunks
    expected = np.zeros((201, 16))  # class 200 has none: its sum stays 0
    np.add.at(expected, owners, vectors.astype(np.float64))
    assert class_sums(vectors, owners, 201).tobytes() == expected.tobytes()
    rows = rng.permutation(3000)[:900]  # a kind's rows, in any order
    expected = np.zeros((201, 16))
    np.add.at(expected, owners[rows], vectors[rows].astype(np.float64))
    assert class_sums(vectors, owners[rows], 201, rows).tobytes() == expected.tobytes()


def write_rows(path, ids, vectors, group):
    table = pa.table({
        "video_id": ids,
        "vector": pa.array(list(vectors), pa.list_(pa.float32())),
        "caption": [f"caption of {v}" for v in ids],
    })  # fmt: skip
    pq.write_table(table, path, row_group_size=group)


def test_rows_by_key_come_from_their_row_groups_in_the_order_asked(tmp_path):
    rng = np.random.default_rng(2)
    ids = [f"v{i:03d}" for i in rng.permutation(50)]
    vectors = rng.standard_normal((50, 4)).astype(np.float32)
    write_rows(tmp_path / "e.parquet", ids, vectors, group=7)
    rows = KeyedRows(tmp_path / "e.parquet", "video_id")
    wanted = ["v010", "nope", "v000", "v049", "v010"]
    found = rows.rows(pa.array(wanted))
    assert found[1] == -1
    hit = found[found >= 0]
    np.testing.assert_array_equal(rows.vectors(hit), vectors[[ids.index(w) for w in
                                                              ("v010", "v000", "v049", "v010")]])
    assert rows.column(hit, "caption") == [f"caption of {w}" for w in ("v010", "v000", "v049",
                                                                       "v010")]
    records = RowGroups(tmp_path / "e.parquet").records([49, 0, 8])
    assert [r["video_id"] for r in records] == [ids[49], ids[0], ids[8]]


def score_demo_split(tmp_path, monkeypatch, cells):
    rng = np.random.default_rng(3)
    n, classes, dim = 400, 9, 8
    ids = [f"v{i:04d}" for i in range(n)]
    embedded = [v for i, v in enumerate(ids) if i % 13]  # every 13th failed or missing
    vectors = rng.standard_normal((len(embedded), dim)).astype(np.float32)
    write_rows(tmp_path / "videos.parquet", embedded, vectors, group=64)
    captioned = embedded[::2]
    write_rows(tmp_path / "captions.parquet", captioned,
               rng.standard_normal((len(captioned), dim)).astype(np.float32), group=50)
    class_vectors = scoring.normalize(rng.standard_normal((classes, dim)))
    monkeypatch.setattr(scoring, "BLOCK_CELLS", cells)
    return score_split(
        1, pa.array(ids), rng.integers(0, classes, n), np.arange(n) % 2 == 0,
        [f"class {c}" for c in range(classes)],
        KeyedRows(tmp_path / "videos.parquet", "video_id"), class_vectors,
        KeyedRows(tmp_path / "captions.parquet", "video_id"),
        fusion="embedding", lam=0.5, topk=5, failure_policy="count_as_wrong",
    )  # fmt: skip


def test_a_split_scored_in_blocks_ranks_and_counts_as_in_one(tmp_path, monkeypatch):
    whole, whole_metrics = score_demo_split(tmp_path, monkeypatch, 10**9)
    blocks, block_metrics = score_demo_split(tmp_path, monkeypatch, 1)  # 64 videos a block
    assert scoring.block_rows(9, 1, 8) == 64
    assert block_metrics == whole_metrics
    for column in ("video_id", "topk_classes", "predicted_class", "correct", "status"):
        assert blocks.column(column).equals(whole.column(column))
    np.testing.assert_allclose(
        pa.compute.list_flatten(blocks.column("topk_scores")).to_numpy(),
        pa.compute.list_flatten(whole.column("topk_scores")).to_numpy(), rtol=1e-6,
    )  # fmt: skip
    assert whole_metrics["counts"]["without_caption"] > 0
    assert whole_metrics["counts"]["failed"] + whole_metrics["counts"]["missing"] > 0
