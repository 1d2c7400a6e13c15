"""The score rule's I/O edge, and the tables built from what it writes."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers.stage_inputs import BACKBONE, CHAIN, SCORE_PARAMS, write_score_inputs

from zsar.commands.tables import run_tables_stage
from zsar.data.io import read_json
from zsar.stages.scoring import run_scoring_stage

PARAMS = SCORE_PARAMS


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


def test_each_accuracy_has_a_bootstrap_interval_from_a_fixed_seed(tmp_path):
    inputs = write_score_inputs(tmp_path / "in", videos=60, classes=6, missing=5)
    settings = {"resamples": 300, "seed": 0, "level": 0.9}

    def run(name, **statistics):
        out = tmp_path / name
        record = run_scoring_stage(
            inputs, PARAMS, str(out / "scores.parquet"), str(out / "metrics.json"),
            dataset="toy", backbone=BACKBONE, run="full", chain=CHAIN,
            statistics={**settings, **statistics})
        return record, out

    record, out = run("a")
    again, out_again = run("b")
    assert (out / "metrics.json").read_bytes() == (out_again / "metrics.json").read_bytes()
    assert (out / "scores.parquet").read_bytes() == (out_again / "scores.parquet").read_bytes()
    for block, ci in ((record["mean"], record["ci"]),
                      (record["splits"]["1"], record["splits"]["1"]["ci"])):
        for metric in ("top1", "top5", "mean_class"):
            low, high = ci[metric]
            assert low <= block[metric] <= high and low < high, metric
    # From the counted videos (55 of 60 here): a narrower level gives a narrower interval.
    wide, _ = run("wide", level=0.99)
    assert wide["ci"]["top1"][0] <= record["ci"]["top1"][0]
    assert wide["ci"]["top1"][1] >= record["ci"]["top1"][1]
    assert wide["ci"]["top1"] != record["ci"]["top1"]
    reseeded, _ = run("seed", seed=1)
    assert reseeded["ci"] != record["ci"] and reseeded["mean"] == record["mean"]
    method = record["provenance"]["statistics"]
    assert method["resamples"] == 300 and method["seed"] == 0 and method["level"] == 0.9
    assert "percentile bootstrap" in method["method"]
    # The settings are in the record's config hash: a record made otherwise is told apart.
    more, _ = run("more", resamples=400)
    assert more["provenance"]["config_hash"] != record["provenance"]["config_hash"]
    assert reseeded["provenance"]["config_hash"] != record["provenance"]["config_hash"]


def test_no_top5_interval_where_the_scores_keep_fewer_than_5_classes(tmp_path):
    inputs = write_score_inputs(tmp_path / "in", videos=40, classes=12)
    record, _ = score(tmp_path, inputs, topk=3)
    assert record["ci"]["top5"] is None and record["splits"]["1"]["ci"]["top5"] is None
    assert record["ci"]["top1"] is not None and record["mean"]["top5"] is not None
    few = write_score_inputs(tmp_path / "few", videos=40, classes=3)
    record, _ = score(tmp_path / "f", few, topk=3)  # all 3 classes ranked: top-5 known
    assert record["ci"]["top5"] == [1.0, 1.0]


def test_a_split_without_a_counted_video_has_no_interval(tmp_path):
    inputs = write_score_inputs(tmp_path / "in", videos=8, classes=4, missing=8)
    record, out = score(tmp_path, inputs)
    assert record["splits"]["1"]["ci"] == {"top1": None, "top5": None, "mean_class": None}
    assert record["ci"] == {"top1": None, "top5": None, "mean_class": None}
    text = tables(tmp_path, [out / "metrics.json"])
    assert "n/a" in text["md"]
