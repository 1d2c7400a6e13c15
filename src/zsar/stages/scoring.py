"""Scoring: class vectors, fused scores and metrics, as pure functions on arrays.

The formula and the fusion modes are defined once in zsar.core.method; this module applies
them: c_k from the class texts of the kinds a variant uses (a kind with weight 0, or a
class with no text of a kind, contributes nothing), then s_k = q · c_k with the fusion's
query q.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from zsar.core import stats
from zsar.core.class_names import rules_giving
from zsar.core.method import (  # noqa: F401 - normalize is part of this module's interface
    TEMPLATE_COMBINES,
    VARIANTS,
    fusion_query,
    kind_weights,
    normalize,
)
from zsar.core.metrics import (
    METRICS,
    VideoHits,
    counted_hits,
    hit_metrics,
    mean_std,
    rank_classes,
    ranked_correct,
)
from zsar.core.protocol import artifact_protocol, check_protocol, expected_protocol
from zsar.data.io import (
    KeyedRows,
    concat_tables,
    read_json,
    read_provenance,
    vector_matrix,
    write_json,
    write_parquet,
)
from zsar.data.provenance import provenance
from zsar.models.model_origins import recorded_models


def build_class_vectors(
    vectors: np.ndarray,
    owners: np.ndarray,
    kinds: np.ndarray,
    num_classes: int,
    weights: Mapping[str, float],
) -> np.ndarray:
    """c_k for every class from its text embeddings.

    vectors [N, D] are the text embeddings, owners [N] the class index of each text,
    kinds [N] its kind. Kinds absent from `weights` or weighted 0 are dropped.
    """
    dim = vectors.shape[1]
    out = np.zeros((num_classes, dim), dtype=np.float64)
    for kind, weight in weights.items():
        if weight == 0:
            continue
        rows = np.flatnonzero(kinds == kind)
        if not rows.size:
            continue
        sums = class_sums(vectors, owners[rows], num_classes, rows)
        counts = np.bincount(owners[rows], minlength=num_classes)[:, None]
        out += weight * np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    return normalize(out)


# Classes summed at once (class_sums): the float64 copy of their texts is this many
# classes' (a 700-class split with 28 name templates would copy 80 MB at once).
CLASSES_PER_SUM = 64


def class_sums(
    vectors: np.ndarray, owners: np.ndarray, num_classes: int, rows: np.ndarray | None = None
) -> np.ndarray:
    """[num_classes, D] float64: each class's text vectors summed, in their row order.

    owners[i] is the class of vectors[rows[i]] (rows: all of them when None). The same
    additions in the same order as np.add.at(zeros, owners, vectors[rows]), hence the same
    bits, without its per-row cost (a 700-class benchmark's 28 name templates made it a
    second per job): the rows are grouped by a stable sort and each group summed by
    np.add.reduceat, row after row, CLASSES_PER_SUM groups at a time."""
    sums = np.zeros((num_classes, vectors.shape[1]), dtype=np.float64)
    if len(owners) == 0:
        return sums
    rows = np.arange(len(owners)) if rows is None else np.asarray(rows)
    order = np.argsort(owners, kind="stable")
    grouped, picked = owners[order], rows[order]
    starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
    ends = np.r_[starts[1:], len(grouped)]
    for first in range(0, len(starts), CLASSES_PER_SUM):
        these = starts[first : first + CLASSES_PER_SUM]
        block = vectors[picked[these[0] : ends[first + len(these) - 1]]].astype(np.float64)
        # 0.0 + as np.add.at starts from a zero: a sum of -0.0 reads +0.0 there too.
        sums[grouped[these]] = 0.0 + np.add.reduceat(block, these - these[0], axis=0)
    return sums


def score_videos(
    videos: np.ndarray,
    classes: np.ndarray,
    *,
    captions: np.ndarray | None = None,
    has_caption: np.ndarray | None = None,
    fusion: str = "embedding",
    lam: float = 0.0,
) -> np.ndarray:
    """Scores [V, C] of videos against class vectors, with the caption fused in if given.

    A video without a caption (its caption failed) is scored on its visual embedding
    alone, i.e. with λ = 0 for that video, rather than dropped.
    """
    videos = np.asarray(videos, dtype=np.float64)
    query = fusion_query(videos, captions, fusion=fusion, lam=lam)
    if has_caption is not None and query is not videos:
        query[~has_caption] = videos[~has_caption]
    return query @ np.asarray(classes, dtype=np.float64).T


# ---------------------------------------------------------------------------
# I/O edge: the score rule's inputs (Parquet/JSON contracts) -> scores Parquet + metrics JSON.
# ---------------------------------------------------------------------------

SCORES_SCHEMA = pa.schema(
    [
        ("split", pa.int32()),
        ("video_id", pa.string()),
        ("true_class", pa.int32()),
        ("predicted_class", pa.int32()),
        ("predicted_name", pa.string()),
        ("topk_classes", pa.list_(pa.int32())),
        ("topk_scores", pa.list_(pa.float32())),
        ("correct", pa.bool_()),
        ("status", pa.string()),
    ]
)


# The columns of the class texts that scoring reads (not the texts themselves).
CLASS_TEXT_COLUMNS = ("kind", "owner", "vector", "template")


def split_class_vectors(class_texts, class_names: list[str], weights: Mapping[str, float]):
    """Class vectors for one split's class list (in class-id order)."""
    found = pc.index_in(class_texts.column("owner"), value_set=pa.array(class_names))
    table = class_texts.filter(pc.is_valid(found)) if found.null_count else class_texts
    vectors = vector_matrix(table)
    owners = found.drop_null().to_numpy().astype(np.int64)
    kinds = np.asarray(table.column("kind").to_pylist())
    return build_class_vectors(vectors, owners, kinds, len(class_names), weights)


def class_vector_sets(
    class_texts, class_names: list[str], weights: Mapping[str, float], combine: str
) -> list[np.ndarray]:
    """The class vectors to score with: one set, or one per name template where the
    backbone's protocol scores each template on its own (TEMPLATE_COMBINES). A template's
    set holds that template's name prompt and every descriptor text of the class."""
    if not TEMPLATE_COMBINES[combine].per_template or "template" not in class_texts.schema.names:
        return [split_class_vectors(class_texts, class_names, weights)]
    template = class_texts.column("template")
    sets = []
    for t in sorted(set(template.drop_null().to_pylist())):
        mine = pc.or_(pc.is_null(template), pc.equal(template, t))
        sets.append(split_class_vectors(class_texts.filter(mine), class_names, weights))
    return sets


def score_with_templates(
    videos: np.ndarray,
    vector_sets: list[np.ndarray],
    *,
    combine: str = "embedding_mean",
    scale: float = 100.0,
    **fusion,
) -> np.ndarray:
    """score_videos against each set of class vectors, merged as the protocol says."""
    scores = [score_videos(videos, vectors, **fusion) for vectors in vector_sets]
    return TEMPLATE_COMBINES[combine].merge(scores, scale)


# How many cells (float64) a block of videos holds in its widest matrix: its score matrix
# (videos x classes, one per name template where the protocol scores each on its own) or
# its embeddings (videos x dim). A scoring job ranks its videos block by block, so its
# memory does not grow with their number (8 MB a matrix; 1,400 rows of a 700-class split).
BLOCK_CELLS = 1_000_000


def block_rows(classes: int, sets: int = 1, dim: int = 1) -> int:
    """Videos per block for `classes` classes, `sets` sets of class vectors, `dim`-d vectors."""
    return max(64, BLOCK_CELLS // max(1, classes * sets, dim))


def _ranked_blocks(
    at: np.ndarray, video_ids: pa.Array, videos, captions, vector_sets, keep: int, **scoring
):
    """(ranked classes [n, keep], their scores, has caption or None) of the videos at file
    rows `at`, scored a block at a time (score_with_templates, then one partial sort)."""
    n = len(at)
    ranked = np.zeros((n, keep), dtype=np.int64)
    best = np.zeros((n, keep), dtype=np.float64)
    # Each video's caption row, looked up once (a lookup hashes the file's keys).
    caption_at = None if captions is None else captions.rows(video_ids)
    has_caption = None if captions is None else caption_at >= 0
    classes, dim = vector_sets[0].shape
    step = block_rows(classes, len(vector_sets), dim)
    for start in range(0, n, step):
        block = slice(start, min(n, start + step))
        v = videos.vectors(at[block]).astype(np.float64)
        t = mine = None
        if captions is not None:
            found = caption_at[block]
            mine = has_caption[block]
            # A video without a caption is fused with zeros, then scored on v alone.
            t = np.zeros_like(v)
            if mine.any():
                t[mine] = captions.vectors(found[mine])
        scores = score_with_templates(v, vector_sets, captions=t, has_caption=mine, **scoring)
        ranked[block] = rank_classes(scores, keep)
        best[block] = np.take_along_axis(scores, ranked[block], axis=1)
    return ranked, best, has_caption


def _list_column(values: np.ndarray, counts: np.ndarray, type_: pa.DataType) -> pa.Array:
    """A list column whose row i holds the next counts[i] of `values` (flattened)."""
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values.reshape(-1), type_))


def score_split(
    split: int,
    video_ids: pa.Array,
    labels: np.ndarray,
    exists: np.ndarray,
    class_names: list[str],
    videos,
    class_vectors: np.ndarray | list[np.ndarray],
    captions=None,
    *,
    fusion: str,
    lam: float,
    topk: int,
    failure_policy: str,
    combine: str = "embedding_mean",
    scale: float = 100.0,
) -> tuple[pa.Table, dict[str, Any]]:
    """Score one split's videos; returns the score rows (SCORES_SCHEMA: the evaluated videos,
    then the others, each in the given order) and the split's metrics.

    video_ids, labels (class ids) and exists: the split's manifest rows, sorted by video id.
    videos and captions: zsar.data.io.KeyedRows of the embeddings (captions None for a variant
    without them). class_vectors: one [C, D] set, or one per name template
    (class_vector_sets), merged by `combine`. Each video is ranked once, for its top-1,
    top-5 and the `topk` classes its row keeps.
    """
    vector_sets = class_vectors if isinstance(class_vectors, list) else [class_vectors]
    at = videos.rows(video_ids)
    evaluated = at >= 0
    status = np.where(evaluated, "evaluated", np.where(exists, "failed", "missing"))
    n_eval = int(evaluated.sum())
    keep = min(max(topk, 5), len(class_names))
    ranked, best, has_caption = _ranked_blocks(
        at[evaluated], video_ids.filter(pa.array(evaluated)), videos, captions, vector_sets,
        keep, fusion=fusion, lam=lam, combine=combine, scale=scale,
    )  # fmt: skip
    labels = np.asarray(labels, dtype=np.int64)
    order = np.concatenate([np.flatnonzero(evaluated), np.flatnonzero(~evaluated)])
    top1 = ranked_correct(ranked, labels[evaluated], 1)
    top5 = ranked_correct(ranked, labels[evaluated], 5)
    lost = len(order) - n_eval
    valid = None
    if failure_policy == "count_as_wrong":
        # Failed and missing videos count, as wrong in every metric.
        top1, top5 = (np.concatenate([h, np.zeros(lost, bool)]) for h in (top1, top5))
        valid = np.concatenate([np.ones(n_eval, bool), np.zeros(lost, bool)])
        metrics = hit_metrics(top1, top5, labels[order], valid=valid)
    else:
        metrics = hit_metrics(top1, top5, labels[evaluated])
    counts = {
        "videos": len(order),
        "evaluated": n_eval,
        "failed": int((status == "failed").sum()),
        "missing": int((status == "missing").sum()),
        "excluded": 0 if failure_policy == "count_as_wrong" else lost,
        "counted_as_wrong": lost if failure_policy == "count_as_wrong" else 0,
    }
    if has_caption is not None:
        counts["without_caption"] = int((~has_caption).sum())

    shown = min(topk, len(class_names))
    predicted = np.concatenate([ranked[:, 0] if n_eval else np.zeros(0, np.int64),
                                np.full(lost, -1)])  # fmt: skip
    names = pa.array([*class_names, ""], pa.string())
    listed = np.concatenate([np.full(n_eval, shown), np.zeros(lost, np.int64)])
    table = pa.Table.from_arrays(
        [
            pa.array(np.full(len(order), split), pa.int32()),
            video_ids.take(pa.array(order)),
            pa.array(labels[order], pa.int32()),
            pa.array(predicted, pa.int32()),
            names.take(pa.array(np.where(predicted >= 0, predicted, len(class_names)))),
            _list_column(ranked[:, :shown], listed, pa.int32()),
            _list_column(best[:, :shown], listed, pa.float32()),
            pa.array(np.concatenate([ranked_correct(ranked, labels[evaluated], 1)[:n_eval],
                                     np.zeros(lost, bool)])),  # fmt: skip
            pa.array(status[order].tolist(), pa.string()),
        ],
        schema=SCORES_SCHEMA,
    )
    return table, {**metrics, "counts": counts}


def summarise_splits(per_split: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std of each accuracy over the splits that have results (a split of which no
    video could be scored has none), how many those are, and the counts summed."""
    keys = METRICS
    with_results = [s for s in sorted(per_split) if per_split[s]["top1"] is not None]
    summary: dict[str, Any] = {"mean": {}, "std": {}, "splits_with_results": len(with_results)}
    for key in keys:
        mean, std = mean_std([per_split[s][key] for s in sorted(per_split)])
        summary["mean"][key], summary["std"][key] = mean, std
    counts: dict[str, int] = {}
    for split in sorted(per_split):
        for name, value in per_split[split]["counts"].items():
            counts[name] = counts.get(name, 0) + value
    summary["counts"] = counts
    return summary


def _interval(values: list[float]) -> list[float] | None:
    """[low, high], or None where undefined (no video: the bootstrap gives NaN, which a
    JSON record cannot hold)."""
    return None if any(np.isnan(v) for v in values) else [float(v) for v in values]


def interval_options(statistics: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a run's intervals depend on (config `statistics`, zsar.core.stats' defaults where
    absent): resamples, seed, level. alpha concerns the paired comparisons only."""
    return {k: v for k, v in stats.settings(statistics).items() if k != "alpha"}


def accuracy_ci(
    hits: VideoHits, splits: list[int], statistics: Mapping[str, Any] | None = None
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """(per split, for the mean over splits) the bootstrap interval of each of METRICS
    (zsar.core.stats.accuracy_intervals), as fractions; None where a split has no counted video
    or the scores hold no top-5 (`hits.top5` is None)."""
    top5 = hits.top1 if hits.top5 is None else hits.top5  # a stand-in, its interval nulled
    found = stats.accuracy_intervals(
        hits.top1, top5, hits.true_class, hits.split, **interval_options(statistics)
    )

    def shown(block: Mapping[str, list[float]] | None) -> dict[str, Any]:
        out = {key: None if block is None else _interval(block[key]) for key in METRICS}
        if hits.top5 is None:
            out["top5"] = None
        return out

    per_split = {str(s): shown(found["splits"].get(str(s))) for s in splits}
    return per_split, shown(found["mean"] if hits.split.size else None)


def interval_provenance(statistics: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """How a run's intervals were made (zsar.core.stats.interval_method, without the paired
    comparisons' part, which the compare rule records)."""
    method = stats.interval_method(**interval_options(statistics))
    return {k: v for k, v in method.items() if k not in ("paired", "multiple_comparisons")}


def scored_protocol(
    inputs: Mapping[str, str],
    chain: Mapping[str, Any],
    class_rules: Mapping[str, Mapping[str, Any]] | None,
    classes: list[dict[str, Any]],
) -> dict[str, Any]:
    """The protocol the embeddings were made under (zsar.core.protocol), checked against the
    chain the job was planned with where it states one."""
    made = artifact_protocol(
        read_provenance(inputs["videos"]), read_provenance(inputs["class_names"])
    )
    if chain.get("frames"):
        planned = expected_protocol(chain)
        if planned["class_names"] is None:  # a chain from before class-name rules
            del planned["class_names"]
        check_protocol(made, planned, [inputs["videos"], inputs["class_names"]])
    adapter = (chain.get("dataset") or {}).get("adapter")
    if class_rules and adapter and made["class_texts"]:
        raw = sorted({c["name"] for c in classes})
        made["class_names_same_as"] = rules_giving(made["class_texts"], class_rules, adapter, raw)
    return made


def scored_models(inputs: Mapping[str, str], chain: Mapping[str, Any]) -> dict[str, Any]:
    """role -> name and `demo` of each model that made the embeddings scored, as the
    embedding jobs recorded it (zsar.models.model_origins)."""
    embedded = ("videos", "class_names", "class_texts", "captions")
    return recorded_models([read_provenance(inputs[k]) for k in embedded if inputs.get(k)], chain)


def run_scoring_stage(
    inputs: Mapping[str, str],
    params: Mapping[str, Any],
    scores_path: str,
    metrics_path: str,
    *,
    dataset: str,
    backbone: Mapping[str, Any],
    run: str,
    chain: Mapping[str, Any] | None = None,
    statistics: Mapping[str, Any] | None = None,
    class_rules: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Score every split of a dataset for one backbone and variant run.

    The record's `provenance.protocol` is read from the embeddings' own provenance
    (zsar.core.protocol), and the job refuses embeddings made otherwise than `chain` says; with
    `class_rules` (every class-name rule), it also names the rules that give the class
    texts that were embedded (`class_names_same_as`).

    `chain` is what made the inputs (the rule's params: the dataset's lists, frames,
    backbone, and for the variants that use them the captioner and the LLM with their
    prompt sets): the record's provenance holds it whole, and its config hash covers it,
    the scoring settings and the intervals' settings (`statistics`: resamples, seed, level;
    zsar.core.stats' defaults where absent), everything that can change the numbers and nothing
    else. Each accuracy gets its bootstrap interval (`ci`), computed from the score rows.
    """
    variant = VARIANTS[params["variant"]]
    # Only the columns scoring reads: no paths, no caption or prompt texts.
    manifest = pq.read_table(inputs["manifest"], columns=["video_id", "class_id", "split",
                                                          "exists"])  # fmt: skip
    classes = pq.read_table(inputs["classes"]).to_pylist()
    protocol = scored_protocol(inputs, chain or {}, class_rules, classes)
    videos = KeyedRows(inputs["videos"], "video_id")
    # Name prompts for every variant; descriptor sentences only where the variant uses them.
    class_texts = concat_tables([
        pq.read_table(p, columns=[c for c in CLASS_TEXT_COLUMNS if c in pq.read_schema(p).names])
        for p in (inputs["class_names"], inputs.get("class_texts")) if p is not None
    ])  # fmt: skip
    captions = KeyedRows(inputs["captions"], "owner") if variant.caption else None
    weights = kind_weights(variant.kinds, params["weights"])
    descriptors = read_json(inputs["descriptors"]) if variant.uses_descriptors else {}

    tables: list[pa.Table] = []
    per_split: dict[int, dict[str, Any]] = {}
    classes_per_split: dict[int, int] = {}
    for split in sorted({c["split"] for c in classes}):
        names = [
            c["name"]
            for c in sorted(
                (c for c in classes if c["split"] == split), key=lambda c: c["class_id"]
            )
        ]
        combine = params.get("combine", "embedding_mean")
        class_vectors = class_vector_sets(class_texts, names, weights, combine)
        rows = manifest.filter(pc.equal(manifest.column("split"), split))
        rows = rows.take(pc.sort_indices(rows, sort_keys=[("video_id", "ascending")]))
        table, metrics = score_split(
            split,
            rows.column("video_id").combine_chunks(),
            rows.column("class_id").to_numpy(),
            rows.column("exists").to_numpy(zero_copy_only=False).astype(bool),
            names,
            videos,
            class_vectors,
            captions,
            fusion=params.get("fusion", "embedding"),
            lam=params["lambda"] if variant.caption else 0.0,
            topk=params["topk"],
            failure_policy=params["failure_policy"],
            combine=combine,
            scale=float(params.get("scale", 100.0)),
        )
        tables.append(table)
        per_split[split] = metrics
        classes_per_split[split] = len(names)

    # The intervals, from the scores table as the Parquet holds it (and the compare rule
    # reads it).
    table = pa.concat_tables(tables).combine_chunks() if tables else SCORES_SCHEMA.empty_table()
    hits = counted_hits(
        table, failure_policy=params["failure_policy"], classes_per_split=classes_per_split
    )
    split_ci, mean_ci = accuracy_ci(hits, sorted(per_split), statistics)
    for split, metrics in per_split.items():
        metrics["ci"] = split_ci[str(split)]

    # Only a variant that scores with descriptors can suffer from a class's fallback.
    fallbacks = (
        sum(1 for c in descriptors.get("classes", {}).values() if c.get("fallback"))
        if variant.uses_descriptors
        else None
    )
    record = {
        "dataset": dataset,
        "backbone": backbone["name"],
        "run": run,
        "variant": params["variant"],
        "fusion": params.get("fusion"),
        "lambda": params["lambda"] if variant.caption else None,
        "weights": weights,
        "failure_policy": params["failure_policy"],
        "splits": {str(s): m for s, m in per_split.items()},
        **summarise_splits(per_split),
        "ci": mean_ci,
        "descriptor_fallbacks": fallbacks,
        "models": scored_models(inputs, chain or {}),
        "provenance": provenance(
            {
                "chain": dict(chain or {}),
                "scoring": dict(params),
                "statistics": interval_options(statistics),
            },
            model=backbone["name"],
            seed=None,
            extra={
                "chain": dict(chain or {}),
                "protocol": protocol,
                "llm": descriptors.get("llm"),
                "prompt_version": descriptors.get("prompt_version"),
                "statistics": interval_provenance(statistics),
            },
        ),
    }
    write_parquet(table, scores_path, record["provenance"])
    write_json(record, metrics_path)
    return record
