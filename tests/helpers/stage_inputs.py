"""Synthetic inputs of the score rule (the Parquet/JSON contracts), written by a test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from zsar.data.io import write_json, write_parquet

# The score rule's params for the `full` variant, and a minimal backbone and chain.
SCORE_PARAMS = {
    "variant": "full",
    "lambda": 0.3,
    "fusion": "embedding",
    "weights": {"name": 1.0, "attribute": 1.0, "description": 1.0, "hierarchy": 0.5},
    "topk": 5,
    "failure_policy": "exclude",
}
BACKBONE = {"name": "tiny", "backend": "open_clip"}
CHAIN = {"dataset": {"name": "toy"}, "frames": {"num_frames": 8}, "backbone": BACKBONE}
# What the embedding stages would have written beside such a chain (zsar.core.protocol).
VIDEO_PROTOCOL = {"protocol": {"frames": {"sampling": "tsn", "num_frames": 8, "clips": 1},
                               "views": {"clips": 1, "crops": 1},
                               "pooling": "normalise_then_mean"}}
NAME_PROTOCOL = {"protocol": {"name_prompt": None, "class_names": None, "class_texts": None}}


def unit_rows(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    x = rng.normal(size=(rows, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def vector_table(key: str, ids: list[str], vectors: np.ndarray, **columns) -> pa.Table:
    """A table with a string key column and a list<float32> `vector` column, built without
    Python floats (so large synthetic tables cost what their arrays cost)."""
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel())
    offsets = pa.array(np.arange(0, len(flat) + 1, vectors.shape[1], dtype=np.int32))
    data = {key: pa.array(ids, pa.string()), "vector": pa.ListArray.from_arrays(offsets, flat)}
    return pa.table({**data, **columns})


def write_score_inputs(
    folder: Path,
    *,
    videos: int = 12,
    classes: int = 4,
    dim: int = 16,
    missing: int = 0,
    captions: bool = True,
    seed: int = 0,
) -> dict[str, str]:
    """Every input of the score rule for one split; the last `missing` videos are not on disk.

    Video embeddings lean towards their class's name embedding, so accuracies are neither 0
    nor 1. Returns the rule's `input` mapping (name -> path).
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"Class{k}" for k in range(classes)]
    labels = [i % classes for i in range(videos)]
    ids = [f"v{i:05d}" for i in range(videos)]
    exists = [i < videos - missing for i in range(videos)]
    pq.write_table(pa.Table.from_pylist([
        {"video_id": v, "path": f"/data/{v}.mp4", "label": names[c], "class_id": c, "split": 1,
         "exists": e}
        for v, c, e in zip(ids, labels, exists, strict=True)
    ]), folder / "manifest.parquet")
    pq.write_table(pa.Table.from_pylist([
        {"split": 1, "class_id": k, "name": n, "display_name": n.lower()}
        for k, n in enumerate(names)
    ]), folder / "classes.parquet")
    pq.write_table(pa.Table.from_pylist(
        [{"video_id": v, "stage": "manifest", "reason": "missing on disk"}
         for v, e in zip(ids, exists, strict=True) if not e],
        schema=pa.schema([("video_id", pa.string()), ("stage", pa.string()),
                          ("reason", pa.string())]),
    ), folder / "failures.parquet")
    name_vectors = unit_rows(rng, classes, dim)
    kept = [i for i in range(videos) if exists[i]]
    noisy = name_vectors[[labels[i] for i in kept]] + 1.5 * unit_rows(rng, len(kept), dim)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    write_parquet(vector_table("video_id", [ids[i] for i in kept], noisy),
                  folder / "videos.parquet", VIDEO_PROTOCOL)
    write_parquet(
        vector_table("kind", ["name"] * classes, name_vectors, owner=names,
                     text=[n.lower() for n in names]),
        folder / "class_names.parquet", NAME_PROTOCOL,
    )
    pq.write_table(
        vector_table("kind", ["attribute"] * classes, unit_rows(rng, classes, dim), owner=names,
                     text=[f"{n.lower()}, which involves a cue" for n in names]),
        folder / "class_texts.parquet",
    )
    write_json({"llm": "curated", "prompt_version": "test", "classes": {
        n: {"attributes": ["a cue"], "descriptions": [], "hierarchy": [], "fallback": False,
            "reason": None} for n in names}}, folder / "descriptors.json")
    inputs = {
        name: str(folder / f"{name}.parquet")
        for name in ("manifest", "classes", "videos", "class_names", "class_texts")
    }
    inputs["descriptors"] = str(folder / "descriptors.json")
    if captions:
        caption_ids = [ids[i] for i in kept]
        pq.write_table(
            vector_table("kind", ["caption"] * len(kept), unit_rows(rng, len(kept), dim),
                         owner=caption_ids, text=[f"caption of {v}" for v in caption_ids]),
            folder / "captions.parquet",
        )
        pq.write_table(pa.table({"video_id": caption_ids,
                                 "caption": [f"caption of {v}" for v in caption_ids]}),
                       folder / "caption_texts.parquet")
        inputs["captions"] = str(folder / "captions.parquet")
        inputs["caption_texts"] = str(folder / "caption_texts.parquet")
    return inputs


def lean_videos_towards_descriptors(inputs: dict[str, str], *, noise: float, seed: int = 1):
    """Rewrite the video embeddings of `write_score_inputs` as their class's descriptor
    (attribute) embedding plus Gaussian noise of `noise` per unit vector: a strong effect,
    where `+descriptors` gets most videos right and `baseline` (the class names, which the
    videos no longer lean towards) about chance."""
    rng = np.random.default_rng(seed)
    texts = pq.read_table(inputs["class_texts"])
    attribute = dict(zip(texts.column("owner").to_pylist(),
                         np.stack(texts.column("vector").to_numpy(zero_copy_only=False)),
                         strict=True))
    videos = pq.read_table(inputs["videos"], columns=["video_id"]).column(0).to_pylist()
    label = {r["video_id"]: r["label"] for r in pq.read_table(inputs["manifest"]).to_pylist()}
    dim = len(next(iter(attribute.values())))
    leaning = np.stack([attribute[label[v]] for v in videos])
    leaning = leaning + noise * unit_rows(rng, len(videos), dim)
    leaning /= np.linalg.norm(leaning, axis=1, keepdims=True)
    write_parquet(vector_table("video_id", videos, leaning), inputs["videos"], VIDEO_PROTOCOL)
