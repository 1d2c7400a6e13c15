"""The compare rule's I/O edge (zsar.stages.compare) and the tables built from what it writes:
paired comparisons of a backbone's runs, their marks in the tables, per-class gains."""

from __future__ import annotations

import json
import random

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers.stage_inputs import (
    BACKBONE,
    CHAIN,
    SCORE_PARAMS,
    lean_videos_towards_descriptors,
    write_score_inputs,
)

from zsar.commands.tables import MARK, run_tables_stage
from zsar.core import stats
from zsar.core.metrics import counted_hits
from zsar.data.io import read_json, write_parquet
from zsar.data.io import read_provenance as parquet_provenance
from zsar.stages.compare import run_compare_stage
from zsar.stages.scoring import run_scoring_stage

PARAMS = SCORE_PARAMS
# Few resamples: the tests check how intervals are used, not their precision.
STATISTICS = {"resamples": 200, "seed": 0, "level": 0.95, "alpha": 0.05}
RUNS = [["baseline", "baseline", None], ["+descriptors", "+descriptors", None],
        ["+hierarchy", "+hierarchy", None]]


def score_runs(folder, inputs, runs=RUNS, **params):
    """Score each run as the score rule does; (scores paths, metrics paths)."""
    scores, metrics = [], []
    for run, variant, _ in runs:
        scores.append(folder / "scores" / f"{run}.parquet")
        metrics.append(folder / "metrics" / f"{run}.json")
        run_scoring_stage(inputs, {**PARAMS, **params, "variant": variant}, str(scores[-1]),
                          str(metrics[-1]), dataset="toy", backbone=BACKBONE, run=run,
                          chain=CHAIN, statistics=STATISTICS)
    return scores, metrics


def compare(folder, inputs, scores, runs=RUNS, failure_policy="exclude"):
    out = {"comparisons": folder / "comparisons.json", "gains": folder / "gains.parquet"}
    record = run_compare_stage(
        [str(p) for p in scores], inputs["classes"], str(out["comparisons"]), str(out["gains"]),
        dataset="toy", backbone="tiny", runs=runs, failure_policy=failure_policy,
        statistics=STATISTICS)
    return record, out


def tables(folder, metrics, comparisons=()):
    paths = {fmt: folder / f"results.{fmt}" for fmt in ("md", "csv", "tex")}
    run_tables_stage([str(p) for p in metrics], **{k: str(v) for k, v in paths.items()},
                     comparisons_paths=[str(p) for p in comparisons])
    return {fmt: path.read_text() for fmt, path in paths.items()}


def pivot_row(md: str) -> str:
    section = md.split("## Ablation", 1)[1]
    return next(line for line in section.splitlines() if line.startswith("| toy | tiny |"))


def csv_rows(text: str) -> dict[str, dict[str, str]]:
    header, *rows = text.splitlines()
    names = header.split(",")
    return {row.split(",")[2]: dict(zip(names, row.split(","), strict=True)) for row in rows}


@pytest.fixture(scope="module")
def strong(tmp_path_factory):
    """+descriptors far better than baseline on 120 videos; +hierarchy equal to baseline
    (the inputs hold no hierarchy text, so it scores with the names alone)."""
    folder = tmp_path_factory.mktemp("strong")
    inputs = write_score_inputs(folder / "in", videos=120, classes=6, dim=16, captions=False)
    lean_videos_towards_descriptors(inputs, noise=0.8)
    scores, metrics = score_runs(folder, inputs)
    record, out = compare(folder, inputs, scores)
    return folder, inputs, scores, metrics, record, out


def test_a_strong_effect_is_significant_and_marked_in_every_table(strong, tmp_path):
    folder, _, _, metrics, record, out = strong
    base, desc, hier = (read_json(p) for p in metrics)
    assert desc["mean"]["top1"] - base["mean"]["top1"] > 0.4  # the effect is there
    by_pair = {(r["a"], r["b"]): r for r in record["top1"]}
    gain = by_pair[("baseline", "+descriptors")]
    assert gain["significant"] and gain["ci_low"] > 0 and gain["mcnemar_p_holm"] < 0.05
    assert gain["difference"] == pytest.approx(desc["mean"]["top1"] - base["mean"]["top1"])
    same = by_pair[("baseline", "+hierarchy")]
    assert not same["significant"] and same["only_a"] == same["only_b"] == 0
    assert record["pairs"] == [["baseline", "+descriptors"], ["baseline", "+hierarchy"]]

    text = tables(tmp_path, metrics, [out["comparisons"]])
    row = pivot_row(text["md"])
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3].endswith(f"){MARK}") and "[+" in cells[3]  # +descriptors: gain, interval
    assert MARK not in cells[2] and MARK not in cells[4]  # baseline, +hierarchy
    assert f"{MARK} marks a significant gain" in text["md"]
    assert "Holm adjusts over the 2 comparisons of each dataset and backbone" in text["md"]
    assert "No gain here is significant" not in text["md"]
    csv = csv_rows(text["csv"])
    assert csv["+descriptors"]["top1_gain_significant"] == "True"
    assert csv["+hierarchy"]["top1_gain_significant"] == "False"
    assert csv["baseline"]["top1_gain_significant"] == ""
    assert float(csv["+descriptors"]["top1_gain_ci_low"]) > 0
    tex_rows = [line for line in text["tex"].splitlines() if line.startswith("toy & tiny")]
    assert [r"$^{\dagger}$" in line for line in tex_rows] == [False, True, False]


def test_no_effect_is_not_significant_and_the_table_says_so(tmp_path):
    """Random embeddings, 24 videos, as in the demo: whatever the gains, none is marked."""
    inputs = write_score_inputs(tmp_path / "in", videos=24, classes=6, dim=16, captions=False)
    runs = [["baseline", "baseline", None], ["+descriptors", "+descriptors", None]]
    scores, metrics = score_runs(tmp_path, inputs, runs)
    record, out = compare(tmp_path, inputs, scores, runs)
    assert not any(r["significant"] for r in record["top1"] + record["top5"])
    text = tables(tmp_path, metrics, [out["comparisons"]])
    assert MARK not in pivot_row(text["md"])
    assert f"No gain here is significant: none is marked {MARK}." in text["md"]


def test_compare_is_byte_identical_for_a_seed_and_pairs_videos_by_key(strong, tmp_path):
    folder, inputs, scores, _, record, out = strong
    again, again_out = compare(tmp_path, inputs, scores)
    for key in ("comparisons", "gains"):
        assert again_out[key].read_bytes() == out[key].read_bytes(), key
    # Rows in another order are the same videos: the comparison does not change.
    shuffled = tmp_path / "shuffled.parquet"
    table = pq.read_table(scores[1])
    order = list(range(table.num_rows))
    random.Random(0).shuffle(order)
    write_parquet(table.take(order), shuffled, parquet_provenance(scores[1]))
    moved, _ = compare(tmp_path / "moved", inputs, [scores[0], shuffled, scores[2]])
    assert moved["top1"] == record["top1"] and moved["mean_class"] == record["mean_class"]
    other = {**STATISTICS, "seed": 1}
    reseeded = run_compare_stage(
        [str(p) for p in scores], inputs["classes"], str(tmp_path / "c1.json"),
        str(tmp_path / "g1.parquet"), dataset="toy", backbone="tiny", runs=RUNS,
        failure_policy="exclude", statistics=other)
    assert [r["ci_low"] for r in reseeded["top1"]] != [r["ci_low"] for r in record["top1"]]


def test_a_video_only_some_runs_count_is_left_out_of_the_pairs(strong, tmp_path):
    _, inputs, scores, _, record, _ = strong
    fewer = tmp_path / "fewer.parquet"
    table = pq.read_table(scores[0])
    write_parquet(table.slice(1), fewer, parquet_provenance(scores[0]))
    found, _ = compare(tmp_path, inputs, [fewer, *scores[1:]])
    assert found["videos"] == record["videos"] - 1 and found["videos_not_paired"] == 1
    assert {r["videos"] for r in found["top1"]} == {record["videos"] - 1}


def test_per_class_gains_count_each_class_from_the_scores(strong):
    _, inputs, scores, _, record, out = strong
    rows = pq.read_table(out["gains"]).to_pylist()
    assert {(r["a"], r["b"]) for r in rows} == {("baseline", "+descriptors"),
                                                ("baseline", "+hierarchy")}
    names = {c["class_id"]: c["name"] for c in pq.read_table(inputs["classes"]).to_pylist()}
    base = {r["video_id"]: r for r in pq.read_table(scores[0]).to_pylist()}
    desc = {r["video_id"]: r for r in pq.read_table(scores[1]).to_pylist()}
    mine = [r for r in rows if r["b"] == "+descriptors"]
    assert [r["gain_points"] for r in mine] == sorted((r["gain_points"] for r in mine),
                                                       reverse=True)
    for row in mine:
        videos = [v for v, r in base.items() if names[r["true_class"]] == row["class"]]
        assert row["videos"] == len(videos)
        assert row["correct_a"] == sum(base[v]["correct"] for v in videos)
        assert row["correct_b"] == sum(desc[v]["correct"] for v in videos)
        assert row["gained"] == sum(desc[v]["correct"] and not base[v]["correct"] for v in videos)
        assert row["lost"] == sum(base[v]["correct"] and not desc[v]["correct"] for v in videos)
        assert row["gain_points"] == pytest.approx(
            100 * (row["correct_b"] - row["correct_a"]) / row["videos"])
    assert sum(r["gained"] for r in mine) == next(
        r["only_b"] for r in record["top1"] if r["b"] == "+descriptors")


def test_each_run_is_recorded_with_the_config_hash_of_its_scores(strong):
    _, _, scores, metrics, record, out = strong
    for (run, variant, lam), path, metric in zip(RUNS, scores, metrics, strict=True):
        entry = record["runs"][run]
        assert entry == {"variant": variant, "lambda": lam,
                         "config_hash": read_json(metric)["provenance"]["config_hash"]}
        assert entry["config_hash"] == parquet_provenance(path)["config_hash"]
    method = record["provenance"]["statistics"]
    assert method["resamples"] == 200 and "Holm" in method["multiple_comparisons"]
    json.loads(out["comparisons"].read_text(), parse_constant=pytest.fail)  # strict JSON


def test_records_without_a_matching_comparison_get_no_mark_and_a_note(strong, tmp_path):
    folder, inputs, _, metrics, _, out = strong
    # No comparisons file at all (records made before zsar compared runs): tables still build.
    plain = tables(tmp_path / "none", metrics)
    assert MARK not in pivot_row(plain["md"]) and "[+" not in pivot_row(plain["md"])
    assert "Gains without interval or mark (toy/tiny): no paired comparison" in plain["md"]
    # A comparison made from other scores than these records': not used for them.
    rescored = tmp_path / "rescored"
    _, new_metrics = score_runs(rescored, inputs, RUNS[1:2], weights={
        **PARAMS["weights"], "attribute": 0.5})
    text = tables(tmp_path / "stale", [metrics[0], *new_metrics], [out["comparisons"]])
    assert MARK not in pivot_row(text["md"])
    assert "Gains without interval or mark (toy/tiny)" in text["md"]


def test_count_as_wrong_pairs_every_listed_video(tmp_path):
    inputs = write_score_inputs(tmp_path / "in", videos=30, classes=5, dim=16, missing=4,
                                captions=False)
    scores, metrics = score_runs(tmp_path, inputs, RUNS[:2], failure_policy="count_as_wrong")
    record, _ = compare(tmp_path, inputs, scores, RUNS[:2], failure_policy="count_as_wrong")
    assert record["videos"] == 30
    excluded, _ = compare(tmp_path / "x", inputs, scores, RUNS[:2])
    assert excluded["videos"] == 26
    # The same videos as the metrics count: the paired difference is the metrics' difference.
    base, desc = (read_json(p) for p in metrics)
    assert record["top1"][0]["difference"] == pytest.approx(
        desc["mean"]["top1"] - base["mean"]["top1"])
    assert record["mean_class"][0]["difference"] == pytest.approx(
        desc["mean"]["mean_class"] - base["mean"]["mean_class"])


def test_counted_hits_give_the_metrics_of_the_record(strong):
    """The statistics resample what the metrics count: the same accuracies, read back."""
    _, inputs, scores, metrics, _, _ = strong
    for path, metric in zip(scores, metrics, strict=True):
        table = pq.read_table(path)
        hits = counted_hits(table, failure_policy="exclude", classes_per_split={1: 6})
        mean = read_json(metric)["mean"]
        assert hits.top1.mean() == pytest.approx(mean["top1"])
        assert hits.top5.mean() == pytest.approx(mean["top5"])
        assert stats.weighted_accuracy(hits.top1, hits.split, hits.true_class) == pytest.approx(
            mean["mean_class"])
        assert list(hits.keys()) == sorted(hits.keys())
    assert np.all(counted_hits(table, failure_policy="exclude", classes_per_split={1: 6},
                               k=1).top5 == hits.top1)
    # Fewer ranked classes than k, of more classes than that: top-k is unknown.
    assert counted_hits(table, failure_policy="exclude", classes_per_split={1: 6},
                        k=6).top5 is None
