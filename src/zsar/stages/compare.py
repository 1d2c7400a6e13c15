"""Paired comparisons of one backbone's runs on one dataset, and the per-class gains.

The compare rule reads the scores Parquet of every run of a (dataset, backbone), and
nothing else but the class list: the runs scored the same videos, so each comparison is
paired, video by video (zsar.core.stats). It writes

- `comparisons/{backbone}.json`: every run against `baseline` and `full` against each
  single-component run (zsar.core.stats.comparison_pairs), on top-1, top-5 and mean-class
  accuracy: the difference with its paired-bootstrap interval, and for top-1 and top-5 the
  exact McNemar test on the videos where the two runs disagree, Holm-adjusted over that
  metric's comparisons of this (dataset, backbone);
- `per_class_gains/{backbone}.parquet`: per run against `baseline`, per class, the videos
  each run gets right and how many the run gains and loses.

Each run's entry records the config hash of its scores (their provenance), which is the
hash of its metrics record too: the tables match a comparison to the records it was made
from by it, and show no mark where none matches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from zsar.core import stats
from zsar.core.metrics import VideoHits, counted_hits
from zsar.data.io import read_provenance, write_json, write_parquet
from zsar.data.provenance import provenance

BASELINE = "baseline"
FULL = "full"
METRIC_KEYS = ("top1", "top5", "mean_class")

CLASS_GAINS_SCHEMA = pa.schema(
    [
        ("a", pa.string()),
        ("b", pa.string()),
        ("class", pa.string()),
        ("videos", pa.int64()),
        ("correct_a", pa.int64()),
        ("correct_b", pa.int64()),
        ("gain_points", pa.float64()),
        ("gained", pa.int64()),
        ("lost", pa.int64()),
    ]
)


def paired_videos(hits: Mapping[str, VideoHits]) -> tuple[dict[str, VideoHits], int]:
    """Every run's hits restricted to the videos all runs count, in the same (split,
    video_id) order; and how many videos some run counts but not all (0 when the runs
    share their embeddings, as a backbone's runs do)."""
    if not hits:
        return {}, 0
    first = next(iter(hits.values()))
    if all(np.array_equal(h.split, first.split) and np.array_equal(h.video_id, first.video_id)
           for h in hits.values()):
        return dict(hits), 0  # the usual case, checked without a set of keys per run
    key_sets = [set(h.keys()) for h in hits.values()]
    common = set.intersection(*key_sets)
    dropped = len(set.union(*key_sets) - common)
    aligned = {}
    for run, run_hits in hits.items():
        keep = np.array([key in common for key in run_hits.keys()], dtype=bool)
        aligned[run] = run_hits.take(np.flatnonzero(keep))  # already in key order
    return aligned, dropped


def _finite(value: Any) -> Any:
    """NaN (no video) as None: a JSON record holds no NaN."""
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def _json_safe(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{k: _finite(v) for k, v in r.items()} for r in records]


def compare_ablation(
    hits: Mapping[str, VideoHits],
    runs: Mapping[str, tuple[str, float | None]],
    class_of: Mapping[tuple[int, int], str],
    statistics: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the comparisons, the per-class gain rows) of one backbone's runs.

    hits: run -> its counted videos; runs: run -> (variant, λ for a caption variant else
    None), in the tables' order; class_of: (split, class_id) -> class name. Classes are
    matched by name across splits, so a class's gain pools its videos of every split.
    """
    options = stats.settings(statistics)
    aligned, dropped = paired_videos(hits)
    pairs = stats.comparison_pairs(runs, baseline=BASELINE, full=FULL)
    first = next(iter(aligned.values()), None)
    names = sorted(set(class_of.values()))
    index = {name: i for i, name in enumerate(names)}
    if first is None:
        labels = splits = np.zeros(0, np.int64)
    else:
        splits = first.split
        labels = np.array(
            [index[class_of[key]] for key in zip(first.split.tolist(),
                                                 first.true_class.tolist(), strict=True)],
            dtype=np.int64,
        )
    top5_known = all(h.top5 is not None for h in aligned.values())
    top1 = {run: h.top1 for run, h in aligned.items()}
    top5 = {run: h.top5 if top5_known else h.top1 for run, h in aligned.items()}
    found = stats.ablation_comparisons(top1, top5, labels, splits, pairs, **options)
    record: dict[str, Any] = {
        "pairs": found["pairs"],
        "videos": int(splits.size),
        "videos_not_paired": dropped,
        **{key: _json_safe(found[key]) for key in METRIC_KEYS},
        "settings": options,
        "adjustment": (
            f"Holm, over the {len(pairs)} comparisons of each metric (every run against "
            f"{BASELINE}, {FULL} against each single-component run) of this dataset and "
            "backbone; not across backbones or datasets"
        ),
        "significant_means": (
            f"Holm-adjusted exact McNemar p < {options['alpha']:g} and the "
            f"{100 * options['level']:g}% paired-bootstrap interval excludes 0"
        ),
    }
    if not top5_known:
        record["top5"] = None  # the scores keep fewer than 5 ranked classes
    gains = []
    for a, b in pairs:
        if runs[a][0] != BASELINE:
            continue
        for row in stats.per_class_gains(top1[a], top1[b], labels, names):
            gains.append({"a": a, "b": b, **{k: v for k, v in row.items() if k != "class_id"}})
    return record, gains


# ---------------------------------------------------------------------------
# I/O edge: the compare rule's scores Parquets -> comparisons JSON + per-class gains Parquet.
# ---------------------------------------------------------------------------

SCORE_COLUMNS = ["split", "video_id", "true_class", "topk_classes", "correct", "status"]


def run_compare_stage(
    scores_paths: Sequence[str],
    classes_path: str,
    comparisons_path: str,
    gains_path: str,
    *,
    dataset: str,
    backbone: str,
    runs: Sequence[Sequence[Any]],
    failure_policy: str,
    statistics: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Compare the runs of one (dataset, backbone).

    runs: one [run, variant, λ or None] per scores file, in the same order as
    `scores_paths` (the tables' order).
    """
    if len(runs) != len(scores_paths):
        raise ValueError(f"{len(runs)} runs named for {len(scores_paths)} scores files")
    classes = pq.read_table(classes_path).to_pylist()
    class_of = {(c["split"], c["class_id"]): c["name"] for c in classes}
    classes_per_split: dict[int, int] = {}
    for c in classes:
        classes_per_split[c["split"]] = classes_per_split.get(c["split"], 0) + 1
    hits, entries = {}, {}
    for (run, variant, lam), path in zip(runs, scores_paths, strict=True):
        first = next(iter(hits.values()), None)
        hits[run] = counted_hits(
            pq.read_table(path, columns=SCORE_COLUMNS),
            failure_policy=failure_policy,
            classes_per_split=classes_per_split,
            # One array of ids for all the runs when they count the same videos: at 100,000
            # videos the five runs' own Python strings were most of the job's growth.
            same_ids=None if first is None else first.video_id,
        )
        entries[run] = {
            "variant": variant,
            "lambda": lam,
            "config_hash": read_provenance(path).get("config_hash"),
        }
    comparisons, gains = compare_ablation(
        hits, {run: (e["variant"], e["lambda"]) for run, e in entries.items()}, class_of,
        statistics,
    )
    options = stats.settings(statistics)
    block = provenance(
        {"runs": entries, "statistics": options, "failure_policy": failure_policy},
        model=backbone,
        seed=None,
        extra={"statistics": stats.interval_method(**options)},
    )
    record = {
        "dataset": dataset,
        "backbone": backbone,
        "failure_policy": failure_policy,
        "runs": entries,
        **comparisons,
        "provenance": block,
    }
    write_json(record, comparisons_path)
    write_parquet(pa.Table.from_pylist(gains, schema=CLASS_GAINS_SCHEMA), gains_path, block)
    return record
