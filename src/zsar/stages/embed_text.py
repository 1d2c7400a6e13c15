"""Embedding stage, text side: class names, class descriptors and captions as text embeddings.

Three rules use it, so that each variant reads only the texts it scores with:
- class names (embed_class_names): one name prompt per class; every variant reads them;
- class descriptors (embed_class_texts): the attribute, description and hierarchy sentences
  of one LLM's descriptors, in their templates; only the descriptor variants read them;
- captions (embed_captions): one text per video; only the caption variants read them.

Every output has the text-embedding contract: kind, owner (raw class name or video id),
text, vector (L2-normalised float32). The video side is zsar.stages.embed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from zsar.core.class_names import class_texts, texts_digest
from zsar.core.method import DESCRIPTOR_KINDS, TEMPLATE_COMBINES, descriptor_texts
from zsar.data.io import read_json, write_parquet

logger = logging.getLogger(__name__)

TEXT_EMBEDDING_SCHEMA = pa.schema(
    [
        ("kind", pa.string()),
        ("owner", pa.string()),
        ("text", pa.string()),
        ("vector", pa.list_(pa.float32())),
    ]
)
# The name prompt of a backbone that names none: the bare class name (ViFi-CLIP's protocol
# for vanilla CLIP, trainers/vificlip.py in muzairkhattak/ViFi-CLIP).
NAME_PROMPT = "{}"

Record = tuple[str, str, str]  # (kind, owner, text)


@dataclass(frozen=True)
class NamePrompt:
    """A backbone's class-name protocol: its templates and how their scores combine.

    A registry entry's `name_prompt` is one template with `{}` for the class name
    ("a photo of a {}.", ViFi-CLIP's), or the name of an ensemble in
    config/prompts/names-NAME.yaml (its `templates`, `combine`, `scale`).
    """

    version: str
    templates: tuple[str, ...]
    combine: str = "embedding_mean"  # zsar.core.method.TEMPLATE_COMBINES
    scale: float = 100.0

    def as_params(self) -> dict[str, Any]:
        return {"version": self.version, "templates": list(self.templates),
                "combine": self.combine, "scale": self.scale}


def load_name_prompt(spec: str | None, prompts_dir: str | os.PathLike) -> NamePrompt:
    """The NamePrompt an entry's `name_prompt` names (None: the bare class name)."""
    spec = spec or NAME_PROMPT
    if "{}" in spec:
        return NamePrompt(spec, (spec,))
    path = Path(prompts_dir) / f"names-{spec}.yaml"
    if not path.is_file():
        raise ValueError(f"name_prompt '{spec}': no template with {{}} and no {path}")
    data = yaml.safe_load(path.read_text()) or {}
    templates = tuple(str(t) for t in data.get("templates") or ())
    combine = str(data.get("combine", "embedding_mean"))
    bad = [t for t in templates if "{}" not in t]
    if not templates or bad or combine not in TEMPLATE_COMBINES:
        raise ValueError(
            f"{path}: needs `templates` (each with {{}}) and `combine` in "
            f"{sorted(TEMPLATE_COMBINES)}; got {len(templates)} templates, {bad[:1]}, {combine!r}"
        )
    return NamePrompt(str(data.get("version", spec)), templates, combine,
                      float(data.get("scale", 100.0)))


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


def class_name_texts(
    classes: pa.Table, class_names: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """Raw class name -> the text that fills the name prompt: the classes table's display
    names (the dataset's rule), or those of a backbone's rule (`class_names`: a resolved
    zsar.core.class_names rule with the dataset's `adapter`)."""
    displays = class_displays(classes)
    if class_names is None:
        return displays
    raw = list(displays)
    return dict(zip(raw, class_texts(class_names, class_names["adapter"], raw), strict=True))


def class_name_records(
    classes: pa.Table,
    prompt: NamePrompt = NamePrompt(NAME_PROMPT, (NAME_PROMPT,)),
    class_names: Mapping[str, Any] | None = None,
) -> list[tuple[str, str, str, int]]:
    """Every class in every template of the prompt: (kind, owner, text, template index).
    A class shared by several splits is embedded once."""
    return [
        ("name", name, template.format(text), index)
        for name, text in class_name_texts(classes, class_names).items()
        for index, template in enumerate(prompt.templates)
    ]


def embed_class_names(
    classes: pa.Table, backbone, prompt: NamePrompt,
    class_names: Mapping[str, Any] | None = None,
) -> pa.Table:
    """The class-names table: text embeddings with the template index of each row."""
    records = class_name_records(classes, prompt, class_names)
    table = embed_text_records([r[:3] for r in records], backbone)
    return table.append_column("template", pa.array([r[3] for r in records], pa.int32()))


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


def run_class_name_stage(
    classes_path, out_path, backbone, prompt: NamePrompt, provenance=None,
    class_names: Mapping[str, Any] | None = None,
) -> None:
    """Embed every class's name prompt; the provenance's `protocol` says what was sent: the
    prompt's version, the class-name rule and a digest of the class texts in class order
    (zsar.core.class_names.texts_digest), which the score job reports and references compare."""
    classes = pq.read_table(classes_path)
    table = embed_class_names(classes, backbone, prompt, class_names)
    texts = class_name_texts(classes, class_names)
    protocol = {
        "name_prompt": prompt.version,
        "class_names": class_names["rule"] if class_names else None,
        "class_texts": texts_digest([texts[name] for name in sorted(texts)]),
    }
    write_parquet(table, out_path, {**(provenance or {}), "protocol": protocol})
    logger.info("embedded %d class names in %d template(s) (%s)", table.num_rows,
                len(prompt.templates), prompt.version)


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
