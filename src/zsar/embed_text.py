"""Embedding stage, text side: class names, class descriptors and captions as text embeddings.

Three rules use it, so that each variant reads only the texts it scores with:
- class names (embed_class_names): one name prompt per class; every variant reads them;
- class descriptors (embed_class_texts): the attribute, description and hierarchy sentences
  of one LLM's descriptors, in their templates; only the descriptor variants read them;
- captions (embed_captions): one text per video; only the caption variants read them.

Every output has the text-embedding contract: kind, owner (raw class name or video id),
text, vector (L2-normalised float32). The video side is zsar.embed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from zsar.io import read_json, write_parquet
from zsar.method import DESCRIPTOR_KINDS, descriptor_texts

logger = logging.getLogger(__name__)

TEXT_EMBEDDING_SCHEMA = pa.schema(
    [
        ("kind", pa.string()),
        ("owner", pa.string()),
        ("text", pa.string()),
        ("vector", pa.list_(pa.float32())),
    ]
)
# The class-name prompt of ViFi-CLIP's zero-shot protocol: the bare class name.
NAME_PROMPT = "{}"

Record = tuple[str, str, str]  # (kind, owner, text)


def embed_text_records(
    records: Iterable[Record], backbone, *, batch_size: int = 256
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


def class_displays(classes: pa.Table) -> dict[str, str]:
    """Raw class name -> display name, each class once, whatever splits it is in."""
    names = classes.column("name").to_pylist()
    displays = classes.column("display_name").to_pylist()
    return dict(sorted(zip(names, displays, strict=True)))


def class_name_records(classes: pa.Table) -> list[Record]:
    """The name prompt of every class (a class shared by several splits is embedded once)."""
    return [("name", name, NAME_PROMPT.format(display))
            for name, display in class_displays(classes).items()]


def class_descriptor_records(
    classes: pa.Table, descriptors: Mapping[str, Any], templates: Mapping[str, str]
) -> list[Record]:
    """Every descriptor sentence of every class, kind by kind, in the kinds' templates."""
    per_class = descriptors.get("classes", {})
    records = []
    for name, display in class_displays(classes).items():
        texts = descriptor_texts(per_class.get(name, {}), display, templates)
        for kind in DESCRIPTOR_KINDS:
            records += [(kind, name, text) for text in texts[kind]]
    return records


def caption_text_records(captions: pa.Table) -> list[Record]:
    return [
        ("caption", video_id, caption)
        for video_id, caption in zip(
            captions.column("video_id").to_pylist(),
            captions.column("caption").to_pylist(),
            strict=True,
        )
        if caption
    ]


def _write(records: list[Record], out_path, backbone, provenance, what: str) -> None:
    write_parquet(embed_text_records(records, backbone), out_path, provenance)
    logger.info("embedded %d %s", len(records), what)


def run_class_name_stage(classes_path, out_path, backbone, provenance=None) -> None:
    _write(class_name_records(pq.read_table(classes_path)), out_path, backbone, provenance,
           "class names")


def run_class_descriptor_stage(
    classes_path, descriptors_path, out_path, backbone, templates, provenance=None
) -> None:
    records = class_descriptor_records(
        pq.read_table(classes_path), read_json(descriptors_path), templates
    )
    _write(records, out_path, backbone, provenance, "descriptor texts")


def run_caption_text_stage(captions_path, out_path, backbone, provenance=None) -> None:
    _write(caption_text_records(pq.read_table(captions_path)), out_path, backbone, provenance,
           "captions")
