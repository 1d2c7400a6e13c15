"""Explanations: why a video got its prediction, as a record and one readable sentence.

For each evaluated video the record holds the predicted class and the runner-up with
their scores, the caption, the top descriptors of both classes with their similarity
to the video, the hierarchy path, and a sentence tying these together.

Descriptor similarities are measured against the run's own fusion query q (zsar.core.method):
a class's score is q · c_k, so a descriptor's similarity q · d is exactly its share in the
class score. Without a caption (λ = 0, a variant without caption, or this video's caption
failed) q is the video embedding v itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from zsar.core.method import HIERARCHY_SEPARATOR, VARIANTS, descriptor_texts, fusion_query
from zsar.data.io import (
    KeyedRows,
    ParquetStreamWriter,
    concat_tables,
    read_json,
    read_provenance,
    vector_matrix,
)

TOP_DESCRIPTORS = 3
# The caption is quoted in full in its own field; the sentence keeps it short.
SENTENCE_CAPTION_CHARS = 120


@dataclass(frozen=True)
class ClassDescriptors:
    """The embedded descriptor texts of one class: kind, text shown, unit vector."""

    kinds: tuple[str, ...]
    texts: tuple[str, ...]
    vectors: np.ndarray  # [n, D], L2-normalised

    @classmethod
    def empty(cls, dim: int) -> ClassDescriptors:
        return cls((), (), np.zeros((0, dim), dtype=np.float32))


def explanation_query(
    video: np.ndarray, caption: np.ndarray | None = None, *, fusion: str = "embedding",
    lam: float = 0.0,
) -> np.ndarray:
    """The vector whose dot product with a text embedding is the run's similarity to it."""
    captions = None if caption is None else np.asarray(caption)[None]
    return fusion_query(np.asarray(video)[None], captions, fusion=fusion, lam=lam)[0]


def similarity_basis(has_caption: bool, fusion: str, lam: float) -> str:
    """Words for what the similarities were measured against (stored with each record)."""
    if not has_caption or lam == 0:
        return "video"
    if fusion == "embedding":
        return f"video+caption embedding (λ={lam:g})"
    return f"(1-λ)·video + λ·caption score (λ={lam:g})"


def top_descriptors(
    query: np.ndarray, descriptors: ClassDescriptors | None, k: int = TOP_DESCRIPTORS
) -> list[dict[str, Any]]:
    """The k descriptors of a class most similar to the query, best first.

    Ties are broken by kind and then text, so the order never depends on input order.
    """
    if descriptors is None or not descriptors.texts:
        return []
    sims = np.asarray(descriptors.vectors, dtype=np.float64) @ query
    order = sorted(
        range(len(sims)), key=lambda i: (-sims[i], descriptors.kinds[i], descriptors.texts[i])
    )
    return [
        {"kind": descriptors.kinds[i], "text": descriptors.texts[i], "similarity": float(sims[i])}
        for i in order[:k]
    ]


def _quote(text: str, limit: int | None = None) -> str:
    text = " ".join(text.split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return f'"{text}"'


def explanation_sentence(record: Mapping[str, Any], display: Mapping[str, str]) -> str:
    """One sentence: prediction over runner-up, then caption, best descriptors, context."""

    def name(raw: str) -> str:
        return display.get(raw, raw)

    head = f"Predicted {_quote(name(record['predicted']))} ({record['predicted_score']:.3f})"
    if record.get("runner_up") is not None:
        head += f" over {_quote(name(record['runner_up']))} ({record['runner_up_score']:.3f})"
    clauses = []
    if record.get("caption"):
        clauses.append(f"the caption says {_quote(record['caption'], SENTENCE_CAPTION_CHARS)}")
    best = record.get("predicted_descriptors") or []
    if best:
        clause = (
            f"the video best matches {_quote(best[0]['text'])} ({best[0]['similarity']:.3f})"
            f" of {_quote(name(record['predicted']))}"
        )
        rival = record.get("runner_up_descriptors") or []
        if rival:
            clause += (
                f" and {_quote(rival[0]['text'])} ({rival[0]['similarity']:.3f})"
                f" of {_quote(name(record['runner_up']))}"
            )
        clauses.append(clause)
    else:
        clauses.append("the score rests on the class name alone")
    sentence = f"{head}: {', and '.join(clauses)}"
    if record.get("hierarchy"):
        sentence += f"; context: {HIERARCHY_SEPARATOR.join(record['hierarchy'])}"
    return sentence + "."


def explain_prediction(
    *,
    ranked: Sequence[tuple[str, float]],
    query: np.ndarray,
    descriptors: Mapping[str, ClassDescriptors],
    hierarchy: Mapping[str, Sequence[str]],
    caption: str | None = None,
    display: Mapping[str, str] | None = None,
    basis: str = "video",
    top: int = TOP_DESCRIPTORS,
) -> dict[str, Any]:
    """The explanation record of one video.

    ranked: (raw class name, score) best first (at least the top 1; the second is the
    runner-up). descriptors and hierarchy are keyed by raw class name; a class missing
    from them simply has none. display maps raw names to the words used in the sentence.
    """
    if not ranked:
        raise ValueError("explain_prediction needs at least the predicted class")
    predicted, predicted_score = ranked[0]
    runner_up, runner_up_score = ranked[1] if len(ranked) > 1 else (None, None)
    record: dict[str, Any] = {
        "predicted": predicted,
        "predicted_score": float(predicted_score),
        "runner_up": runner_up,
        "runner_up_score": None if runner_up_score is None else float(runner_up_score),
        "caption": caption or None,
        "predicted_descriptors": top_descriptors(query, descriptors.get(predicted), top),
        "runner_up_descriptors": []
        if runner_up is None
        else top_descriptors(query, descriptors.get(runner_up), top),
        "hierarchy": list(hierarchy.get(predicted, [])),
        "runner_up_hierarchy": [] if runner_up is None else list(hierarchy.get(runner_up, [])),
        "similarity_to": basis,
    }
    record["sentence"] = explanation_sentence(record, display or {})
    return record


# ---------------------------------------------------------------------------
# Building the inputs from the workflow's contracts (tables already read).
# ---------------------------------------------------------------------------


def descriptors_by_class(
    class_texts: Sequence[Mapping[str, Any]],
    kinds: Sequence[str],
    shown_text: Mapping[tuple[str, str, str], str] | None = None,
) -> dict[str, ClassDescriptors]:
    """Group text-embedding rows (kind, owner, text, vector) of the given kinds by class.

    shown_text optionally maps (owner, kind, embedded text) to the text to show, e.g. the
    raw descriptor instead of the templated sentence that was embedded.
    """
    shown_text = shown_text or {}
    grouped: dict[str, list[tuple[str, str, Any]]] = {}
    for row in class_texts:
        if row["kind"] in kinds:
            text = shown_text.get((row["owner"], row["kind"], row["text"]), row["text"])
            grouped.setdefault(row["owner"], []).append((row["kind"], text, row["vector"]))
    return {
        owner: ClassDescriptors(
            kinds=tuple(k for k, _, _ in rows),
            texts=tuple(t for _, t, _ in rows),
            vectors=np.asarray([v for _, _, v in rows], dtype=np.float32),
        )
        for owner, rows in grouped.items()
    }


def hierarchy_paths(descriptors_json: Mapping[str, Any]) -> dict[str, list[str]]:
    """Raw class name -> hierarchy path (root to leaf) from a descriptors JSON."""
    return {
        name: list(entry.get("hierarchy") or [])
        for name, entry in (descriptors_json.get("classes") or {}).items()
    }


def shown_descriptor_texts(
    descriptors_json: Mapping[str, Any],
    displays: Mapping[str, str],
    templates: Mapping[str, str],
) -> dict[tuple[str, str, str], str]:
    """(class, kind, embedded sentence) -> the raw descriptor it was made from.

    The class-text embeddings hold the templated sentences ("rotating, which involves a
    long thin bar"); an explanation reads better with the descriptor itself ("a long thin
    bar"). Running `descriptor_texts` once with the real templates and once with the
    identity template pairs them up without re-implementing the templating.
    """
    identity = {kind: "{text}" for kind in templates}
    shown = {}
    for name, entry in (descriptors_json.get("classes") or {}).items():
        display = displays.get(name, name)
        embedded = descriptor_texts(entry, display, templates)
        raw = descriptor_texts(entry, display, identity)
        for kind, texts in embedded.items():
            for sentence, text in zip(texts, raw.get(kind, []), strict=False):
                shown[(name, kind, sentence)] = text
    return shown


EXPLANATION_FIELDS = (
    "split", "video_id", "true_class", "correct", "predicted", "predicted_score", "runner_up",
    "runner_up_score", "caption", "predicted_descriptors", "runner_up_descriptors",
    "hierarchy", "runner_up_hierarchy", "similarity_to", "sentence",
)  # fmt: skip


def explanations_schema():
    descriptor = pa.struct(
        [("kind", pa.string()), ("text", pa.string()), ("similarity", pa.float32())]
    )
    types = {
        "split": pa.int32(),
        "correct": pa.bool_(),
        "predicted_score": pa.float32(),
        "runner_up_score": pa.float32(),
        "predicted_descriptors": pa.list_(descriptor),
        "runner_up_descriptors": pa.list_(descriptor),
        "hierarchy": pa.list_(pa.string()),
        "runner_up_hierarchy": pa.list_(pa.string()),
    }
    return pa.schema([(name, types.get(name, pa.string())) for name in EXPLANATION_FIELDS])


def _by_key(table, key: str, value: str) -> dict[str, Any]:
    return dict(zip(table.column(key).to_pylist(), table.column(value).to_pylist(), strict=True))


def _text_rows(table) -> list[dict[str, Any]]:
    """Text-embedding rows (kind, owner, text) with their vectors as numpy rows."""
    columns = [table.column(c).to_pylist() for c in ("kind", "owner", "text")]
    return [
        {"kind": kind, "owner": owner, "text": text, "vector": vector}
        for kind, owner, text, vector in zip(*columns, vector_matrix(table), strict=True)
    ]


def descriptor_rows(paths: Sequence[str | None], kinds: Sequence[str]) -> list[dict[str, Any]]:
    """The text-embedding rows (_text_rows) of the given kinds, in file and row order; a
    file none of whose rows is of those kinds (the class names' prompts) is not read."""
    tables = []
    for path in paths:
        if path is None or not kinds:
            continue
        wanted = pc.is_in(pq.read_table(path, columns=["kind"]).column("kind"),
                          value_set=pa.array(list(kinds)))  # fmt: skip
        if pc.any(wanted).as_py():
            tables.append(pq.read_table(path).filter(wanted))
    return _text_rows(concat_tables(tables)) if tables else []


def run_explain_stage(
    inputs: Mapping[str, str],
    params: Mapping[str, Any],
    out_path: str,
    *,
    templates: Mapping[str, str] | None,
    top: int = TOP_DESCRIPTORS,
) -> int:
    """Explain every evaluated video of one scored run; returns the number of rows.

    inputs: scores, classes, videos, class_names, descriptors, and for descriptor variants
    class_texts (descriptor embeddings), for caption variants captions (caption embeddings)
    and caption_texts (the gathered captions).
    params: the score rule's params (variant, lambda, fusion).

    Descriptors are those of the kinds the variant scores with (none for `baseline`), and
    the caption is shown only where it was fused: both are evidence for the score. The
    hierarchy path is shown for every variant: it places the class, it is not evidence.
    """
    variant = VARIANTS[params["variant"]]
    lam = float(params["lambda"]) if variant.caption else 0.0
    fusion = params.get("fusion", "embedding")  # only caption variants have one
    classes = pq.read_table(inputs["classes"]).to_pylist()
    names = {(c["split"], c["class_id"]): c["name"] for c in classes}
    displays = {c["name"]: c["display_name"] for c in classes}
    descriptors_json = read_json(inputs["descriptors"])
    descriptors = descriptors_by_class(
        descriptor_rows([inputs["class_names"], inputs.get("class_texts")],
                        variant.descriptor_kinds),  # fmt: skip
        variant.descriptor_kinds,
        shown_descriptor_texts(descriptors_json, displays, templates)
        if variant.uses_descriptors
        else {},
    )
    hierarchy = hierarchy_paths(descriptors_json)
    # The videos, their captions and caption texts are read a block of videos at a time
    # (zsar.data.io.KeyedRows), and each block's explanations written as one row group: memory
    # does not grow with the number of videos.
    videos = KeyedRows(inputs["videos"], "video_id")
    caption_vectors = KeyedRows(inputs["captions"], "owner") if variant.caption else None
    caption_texts = KeyedRows(inputs["caption_texts"], "video_id") if variant.caption else None
    scores = evaluated_scores(inputs["scores"])
    context = {"descriptors": descriptors, "hierarchy": hierarchy, "display": displays,
               "top": top}  # fmt: skip
    with ParquetStreamWriter(
        out_path, explanations_schema(), read_provenance(inputs["scores"])
    ) as writer:
        for start in range(0, scores.num_rows, EXPLAIN_BLOCK):
            block = scores.slice(start, EXPLAIN_BLOCK)
            ids = block.column("video_id").combine_chunks()
            query_inputs = {"video": videos.vectors(videos.rows(ids))}
            if variant.caption:
                found = caption_vectors.rows(ids)
                query_inputs["caption"] = _rows_or_none(caption_vectors.vectors, found)
                query_inputs["text"] = _rows_or_none(
                    lambda r: caption_texts.column(r, "caption"), caption_texts.rows(ids)
                )
            rows = [
                explained_row(row, names, fusion=fusion, lam=lam, **context,
                              **{k: v[i] for k, v in query_inputs.items()})
                for i, row in enumerate(block.to_pylist())
            ]  # fmt: skip
            writer.write_rows(rows)
        if writer.rows == 0:  # an empty file still holds the schema, as write_parquet's does
            writer.write_table(explanations_schema().empty_table())
    return writer.rows


# Videos explained at once: one row group of the explanations, and a block of the inputs.
EXPLAIN_BLOCK = 2048


def evaluated_scores(path: str):
    """The evaluated rows of a scores Parquet, in (split, video_id) order, with the columns
    an explanation reads."""
    columns = ["split", "video_id", "true_class", "correct", "topk_classes", "topk_scores"]
    table = pq.read_table(path, columns=[*columns, "status"])
    table = table.filter(pc.equal(table.column("status"), "evaluated")).select(columns)
    order = pc.sort_indices(table, sort_keys=[("split", "ascending"), ("video_id", "ascending")])
    return table.take(order)


def _rows_or_none(read, found: np.ndarray) -> list[Any]:
    """read(rows) at the rows found (>= 0), None where a key has no row."""
    out: list[Any] = [None] * len(found)
    hit = np.flatnonzero(found >= 0)
    if hit.size:
        for i, value in zip(hit.tolist(), read(found[hit]), strict=True):
            out[i] = value
    return out


def explained_row(
    row: Mapping[str, Any],
    names: Mapping[tuple[int, int], str],
    *,
    video: np.ndarray,
    caption: np.ndarray | None = None,
    text: str | None = None,
    fusion: str,
    lam: float,
    **context: Any,
) -> dict[str, Any]:
    """One scores row's explanation record (EXPLANATION_FIELDS), from its video's vector
    and, for a caption variant, its caption's vector and text."""
    query = explanation_query(video, caption, fusion=fusion, lam=lam)
    ranked = [
        (names[(row["split"], c)], s)
        for c, s in zip(row["topk_classes"][:2], row["topk_scores"][:2], strict=True)
    ]
    record = explain_prediction(
        ranked=ranked, query=query, caption=text,
        basis=similarity_basis(caption is not None, fusion, lam), **context,
    )  # fmt: skip
    return {
        "split": row["split"],
        "video_id": row["video_id"],
        "true_class": names[(row["split"], row["true_class"])],
        "correct": row["correct"],
        **record,
    }
