"""The score rule's I/O edge, and the tables built from what it writes."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers.stage_inputs import write_score_inputs

from zsar.io import read_json
from zsar.scoring import run_scoring_stage
from zsar.tables import run_tables_stage

PARAMS = {
    "variant": "full",
    "lambda": 0.3,
    "fusion": "embedding",
    "weights": {"name": 1.0, "attribute": 1.0, "description": 1.0, "hierarchy": 0.5},
    "topk": 5,
    "failure_policy": "exclude",
}
BACKBONE = {"name": "tiny", "backend": "open_clip"}
CHAIN = {"dataset": {"name": "toy"}, "frames": {"num_frames": 8}, "backbone": BACKBONE}


def score(tmp_path, inputs, **params):
    out = tmp_path / "out"
    record = run_scoring_stage(
        inputs, {**PARAMS, **params}, str(out / "scores.parquet"), str(out / "metrics.json"),
        dataset="toy", backbone=BACKBONE, run=params.get("variant", PARAMS["variant"]),
        chain=CHAIN,
    )
    return record, out


def tables(tmp_path, metrics_paths):
    paths = {fmt: tmp_path / f"results.{fmt}" for fmt in ("md", "csv", "tex")}
    run_tables_stage([str(p) for p in metrics_paths], **{k: str(v) for k, v in paths.items()})
    return {fmt: path.read_text() for fmt, path in paths.items()}


@pytest.mark.parametrize("topk", [1, 3, 10])
def test_top5_is_reported_whatever_topk_is(tmp_path, topk):
    """topk sets how many ranked classes a scores row keeps; the metrics still report top-5."""
    inputs = write_score_inputs(tmp_path / "in", videos=40, classes=12)
    record, out = score(tmp_path, inputs, topk=topk)
    assert {"top1", "top5", "mean_class"} <= set(record["mean"])
    assert 0 < record["mean"]["top5"] <= 1 and record["mean"]["top5"] >= record["mean"]["top1"]
    rows = pq.read_table(out / "scores.parquet").to_pylist()
    assert {len(r["topk_classes"]) for r in rows} == {topk}
    text = tables(tmp_path, [out / "metrics.json"])
    assert "n/a" not in text["md"] and "n/a" not in text["tex"]
    header, row = text["csv"].splitlines()[:2]
    top5 = row.split(",")[header.split(",").index("top5_mean")]
    assert float(top5) == pytest.approx(record["mean"]["top5"], abs=1e-6)


def test_excluded_column_holds_only_excluded_videos(tmp_path):
    """Under count_as_wrong, lost videos are counted as wrong, not shown as excluded."""
    inputs = write_score_inputs(tmp_path / "in", videos=12, missing=3)
    counted, out_wrong = score(tmp_path / "wrong", inputs, failure_policy="count_as_wrong")
    excluded, out_excl = score(tmp_path / "excl", inputs, failure_policy="exclude")
    assert counted["counts"]["counted_as_wrong"] == 3 and counted["counts"]["excluded"] == 0
    assert excluded["counts"]["excluded"] == 3
    for out, want in ((out_wrong, "0"), (out_excl, "3")):
        header, row = tables(out, [out / "metrics.json"])["csv"].splitlines()[:2]
        assert row.split(",")[header.split(",").index("excluded")] == want


def test_scoring_reads_vectors_without_a_python_float_per_value(tmp_path):
    """A large benchmark's embeddings must not become lists of Python floats: that costs
    about 30 bytes per value instead of 4 (gigabytes for Kinetics at 768 dimensions)."""
    videos, dim = 6000, 512
    inputs = write_score_inputs(tmp_path / "in", videos=videos, classes=8, dim=dim,
                                captions=False)
    array_bytes = videos * dim * 4  # the video embeddings, float32
    tracemalloc.start()
    try:
        record, _ = score(tmp_path, inputs, variant="+descriptors")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert record["counts"]["evaluated"] == videos
    # One float64 copy for the arithmetic is fine (2x); lists of Python floats are 8x alone.
    assert peak < 5 * array_bytes, f"peak {peak / 1e6:.0f} MB for {array_bytes / 1e6:.0f} MB"


def test_scores_match_a_direct_computation(tmp_path):
    """The stage's top-1 equals argmax of cos(normalize(0.7 v + 0.3 t), c) computed here."""
    inputs = write_score_inputs(tmp_path / "in", videos=30, classes=5, dim=8)
    record, _ = score(tmp_path, inputs, variant="+caption")
    v = pq.read_table(inputs["videos"])
    t = pq.read_table(inputs["captions"])
    c = pq.read_table(inputs["class_names"])
    vv = np.stack(v.column("vector").to_numpy(zero_copy_only=False))
    tt = np.stack(t.column("vector").to_numpy(zero_copy_only=False))
    cc = np.stack(c.column("vector").to_numpy(zero_copy_only=False))
    fused = 0.7 * vv + 0.3 * tt
    fused /= np.linalg.norm(fused, axis=1, keepdims=True)
    labels = np.arange(30) % 5
    want = float(np.mean(np.argmax(fused @ cc.T, axis=1) == labels))
    assert record["mean"]["top1"] == pytest.approx(want)
    assert read_json(tmp_path / "out" / "metrics.json")["mean"]["top1"] == record["mean"]["top1"]
