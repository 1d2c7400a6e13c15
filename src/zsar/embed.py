"""Embedding stage: video embeddings from frames shards, text embeddings of classes and captions.

Video side: JPEG decoding and the backbone's preprocessing run in DataLoader worker
processes, so the model in the main process is fed large batches of frames without
waiting; each video's embedding is the L2-normalised mean of its L2-normalised frame
embeddings. Results stream to Parquet batch by batch, so memory does not grow with
the shard.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from zsar.io import ParquetStreamWriter, read_json, write_parquet

log = logging.getLogger(__name__)

VIDEO_EMBEDDING_SCHEMA = pa.schema(
    [("video_id", pa.string()), ("vector", pa.list_(pa.float32())), ("num_frames", pa.int32())]
)
# The class-name prompt of ViFi-CLIP's zero-shot protocol: the bare class name.
NAME_PROMPT = "{}"

TEXT_EMBEDDING_SCHEMA = pa.schema(
    [
        ("kind", pa.string()),
        ("owner", pa.string()),
        ("text", pa.string()),
        ("vector", pa.list_(pa.float32())),
    ]
)


def mean_frame_embedding(frame_embeddings: np.ndarray) -> np.ndarray:
    """The video embedding: the L2-normalised mean of L2-normalised frame embeddings."""
    frames = frame_embeddings / np.linalg.norm(frame_embeddings, axis=1, keepdims=True)
    mean = frames.mean(axis=0)
    return mean / np.linalg.norm(mean)


def _frames_dataset(shard_path: str, transform):
    """An IterableDataset over a frames shard; each worker takes every n-th row group."""
    import torch
    from PIL import Image

    class FramesShard(torch.utils.data.IterableDataset):
        def __iter__(self):
            info = torch.utils.data.get_worker_info()
            worker, workers = (info.id, info.num_workers) if info else (0, 1)
            parquet = pq.ParquetFile(shard_path)
            for group in range(worker, parquet.num_row_groups, workers):
                table = parquet.read_row_group(group, columns=["video_id", "jpeg"])
                for video_id, jpegs in zip(
                    table.column("video_id").to_pylist(),
                    table.column("jpeg").to_pylist(),
                    strict=True,
                ):
                    images = [Image.open(io.BytesIO(b)).convert("RGB") for b in jpegs]
                    yield video_id, torch.stack([transform(im) for im in images])

    return FramesShard()


def iter_video_embeddings(
    shard_path: str | Path, backbone, *, batch_frames: int = 256, workers: int = 0
) -> Iterator[tuple[str, np.ndarray, int]]:
    """Yield (video_id, embedding, num_frames) for every video of a frames shard.

    Frames of several videos are packed into one forward pass of about `batch_frames`
    frames; the order of videos is deterministic for a given number of workers.
    """
    import torch

    loader = torch.utils.data.DataLoader(
        _frames_dataset(str(shard_path), backbone.transform),
        batch_size=None,
        num_workers=workers,
        pin_memory=str(backbone.device).startswith("cuda"),
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
    )
    pending: list[tuple[str, Any]] = []
    size = 0
    for video_id, pixels in loader:
        pending.append((video_id, pixels))
        size += len(pixels)
        if size >= batch_frames:
            yield from _encode_pending(pending, backbone)
            pending, size = [], 0
    if pending:
        yield from _encode_pending(pending, backbone)


def _encode_pending(pending, backbone) -> Iterator[tuple[str, np.ndarray, int]]:
    import torch

    pixels = torch.cat([p for _, p in pending])
    frames = backbone.encode_images(pixels).numpy()
    start = 0
    for video_id, video_pixels in pending:
        count = len(video_pixels)
        yield video_id, mean_frame_embedding(frames[start : start + count]), count
        start += count


def run_video_embedding_stage(
    frames_shard: str | Path,
    out_path: str | Path,
    backbone,
    *,
    batch_frames: int = 256,
    workers: int = 0,
    provenance: Mapping[str, Any] | None = None,
    progress=None,
) -> int:
    """Embed every video of a frames shard and stream the rows to `out_path`."""
    from tqdm import tqdm

    total = pq.ParquetFile(str(frames_shard)).metadata.num_rows
    bar = tqdm(total=total, unit="video", file=progress or sys.stderr, mininterval=5)
    rows: list[dict[str, Any]] = []
    with ParquetStreamWriter(out_path, VIDEO_EMBEDDING_SCHEMA, provenance) as writer:
        for video_id, vector, count in iter_video_embeddings(
            frames_shard, backbone, batch_frames=batch_frames, workers=workers
        ):
            rows.append(
                {"video_id": video_id, "vector": vector.astype(np.float32), "num_frames": count}
            )
            bar.update(1)
            if len(rows) >= 512:
                writer.write_rows(rows)
                rows = []
        writer.write_rows(rows)
        written = writer.rows
    bar.close()
    log.info("embedded %d videos from %s", written, frames_shard)
    return written


def embed_text_records(
    records: Iterable[tuple[str, str, str]], backbone, *, batch_size: int = 256
) -> pa.Table:
    """Embed (kind, owner, text) records; equal texts are encoded once."""
    records = list(records)
    unique = sorted({text for _, _, text in records})
    vectors: dict[str, np.ndarray] = {}
    for start in range(0, len(unique), batch_size):
        chunk = unique[start : start + batch_size]
        for text, vec in zip(chunk, backbone.encode_texts(chunk).numpy(), strict=True):
            vectors[text] = vec.astype(np.float32)
    return pa.Table.from_pylist(
        [
            {"kind": kind, "owner": owner, "text": text, "vector": vectors[text]}
            for kind, owner, text in records
        ],
        schema=TEXT_EMBEDDING_SCHEMA,
    )


def class_text_records(
    classes: pa.Table, descriptors: Mapping[str, Any], templates: Mapping[str, str]
) -> list[tuple[str, str, str]]:
    """Every text of every class: the "{}" name prompt plus its descriptor sentences.

    A class is one raw name across splits, so a class shared by several splits is
    embedded once.
    """
    from zsar.descriptors import descriptor_texts

    displays = dict(
        zip(
            classes.column("name").to_pylist(),
            classes.column("display_name").to_pylist(),
            strict=True,
        )
    )
    per_class = descriptors.get("classes", {})
    records = []
    for name in sorted(displays):
        display = displays[name]
        records.append(("name", name, NAME_PROMPT.format(display)))
        texts = descriptor_texts(per_class.get(name, {}), display, templates)
        for kind in ("attribute", "description", "hierarchy"):
            records += [(kind, name, text) for text in texts.get(kind, [])]
    return records


def caption_text_records(captions: pa.Table) -> list[tuple[str, str, str]]:
    return [
        ("caption", video_id, caption)
        for video_id, caption in zip(
            captions.column("video_id").to_pylist(),
            captions.column("caption").to_pylist(),
            strict=True,
        )
        if caption
    ]


def run_class_text_stage(
    classes_path, descriptors_path, out_path, backbone, templates, provenance=None
) -> None:
    records = class_text_records(
        pq.read_table(classes_path), read_json(descriptors_path), templates
    )
    write_parquet(embed_text_records(records, backbone), out_path, provenance)
    log.info("embedded %d class texts", len(records))


def run_caption_text_stage(captions_path, out_path, backbone, provenance=None) -> None:
    records = caption_text_records(pq.read_table(captions_path))
    write_parquet(embed_text_records(records, backbone), out_path, provenance)
    log.info("embedded %d captions", len(records))
