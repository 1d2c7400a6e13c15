"""Published numbers beside ours: config/reference_results.yaml, matched to runs by protocol.

A reference is a published zero-shot top-1 (mean ± std over splits) of one backbone on one
dataset, with its source and the protocol it was measured under. A run's protocol is read
from its metrics record's provenance chain (`run_protocol`); the two are set side by side
only where every protocol field agrees. Otherwise the tables say which fields differ, so a
number measured one way is never set beside one measured another way.

Only a run of the `baseline` variant (the class name alone, no caption) is compared: the
published numbers are those of the bare models.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from zsar.core.class_names import class_texts, rules_giving, texts_digest
from zsar.core.protocol import DEFAULT_POOLING, expected_protocol, sampling_label

# The protocol fields, in the order a mismatch is told, with what each means in words.
PROTOCOL_FIELDS = {
    "lists": "split lists (the adapter that reads them)",
    "splits": "splits averaged",
    "class_names": "class names",
    "name_prompt": "class-name prompt",
    "frames": "frames per view",
    "sampling": "frame sampling",
    "views": "views (clips x crops)",
    "pooling": "frame pooling",
}
COMPARED_VARIANT = "baseline"
# What a run of this zsar does where its record predates a field (the defaults then).
FRAME_SAMPLING = "tsn"


class ReferenceFileError(ValueError):
    """A malformed reference file; the message names the file and the entry."""


@dataclass(frozen=True)
class Reference:
    backbone: str
    dataset: str
    top1: float  # percent
    std: float | None
    source: str
    protocol: dict[str, Any]

    def published(self) -> str:
        return f"{self.top1:.1f}" + ("" if self.std is None else f" ± {self.std:.1f}")


@dataclass(frozen=True)
class Comparison:
    reference: Reference
    measured: float | None  # percent
    differences: tuple[str, ...]  # empty: the protocols agree

    @property
    def matched(self) -> bool:
        return not self.differences and self.measured is not None

    @property
    def delta(self) -> float | None:
        return self.measured - self.reference.top1 if self.matched else None


# --- the pure core --------------------------------------------------------------------------


def views_label(frames: Mapping[str, Any]) -> str:
    views = frames.get("views") or {}
    return f"{views.get('clips', 1)}x{views.get('crops', 1)}"


def run_protocol(record: Mapping[str, Any]) -> dict[str, Any]:
    """The protocol a metrics record was made under, in the reference file's terms: read
    from the record's `provenance.protocol` (what its embeddings' own provenance says;
    zsar.core.protocol), the lists and splits from its chain. `class_names` is every rule that
    gives the class texts the run embedded (zsar.core.class_names), so two rules that spell a
    dataset alike both match. A record from before zsar kept a protocol block is read from
    its chain, with the defaults of that time."""
    provenance = record["provenance"]
    chain = provenance["chain"]
    made = provenance.get("protocol")
    if made is None:
        return _protocol_from_chain(chain)
    return protocol_terms(chain.get("dataset") or {}, made)


def protocol_terms(dataset: Mapping[str, Any], made: Mapping[str, Any]) -> dict[str, Any]:
    """A protocol block (zsar.core.protocol's terms) and the dataset's lists, as the reference
    file states a protocol."""
    frames, views = made.get("frames") or {}, made.get("views") or {}
    used = made.get("class_names")
    rules = [used, *(r for r in made.get("class_names_same_as") or [] if r != used)]
    return {
        "lists": dataset.get("adapter"),
        "splits": list(dataset.get("splits") or []),
        "class_names": rules,
        "name_prompt": made.get("name_prompt"),
        "frames": frames.get("num_frames"),
        "sampling": sampling_label(frames),
        "views": views_label({"views": views}) if views else None,
        "pooling": made.get("pooling"),
    }


def _protocol_from_chain(chain: Mapping[str, Any]) -> dict[str, Any]:
    dataset, frames, backbone = (chain.get(k) or {} for k in ("dataset", "frames", "backbone"))
    prompt = backbone.get("name_prompt") or {}
    return {
        "lists": dataset.get("adapter"),
        "splits": list(dataset.get("splits") or []),
        "class_names": [dataset.get("class_names", "words")],
        "name_prompt": prompt.get("version", "{}"),
        "frames": frames.get("num_frames"),
        "sampling": frames.get("sampling", FRAME_SAMPLING),
        "views": views_label(frames),
        "pooling": backbone.get("pooling", DEFAULT_POOLING),
    }


def _agrees(field: str, ours: Any, theirs: Any) -> bool:
    # A run's class texts may be those of several rules; the reference names one.
    return theirs in ours if field == "class_names" else ours == theirs


def _shown(field: str, value: Any) -> Any:
    return class_names_words(value) if field == "class_names" else value


def class_names_words(rules: Sequence[str | None]) -> str:
    """The rule a run used, then those that give the same texts: "raw (the same texts as
    words)"."""
    used, *same = rules or [None]
    return str(used) + (f" (the same texts as {', '.join(same)})" if same else "")


def protocol_differences(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> list[str]:
    """Each field where the run and the reference differ, in words."""
    return [
        f"{words}: this run {_shown(field, ours.get(field))!r}, published {theirs[field]!r}"
        for field, words in PROTOCOL_FIELDS.items()
        if field in theirs and not _agrees(field, ours.get(field), theirs[field])
    ]


def comparisons(
    record: Mapping[str, Any], references: Sequence[Reference]
) -> list[Comparison]:
    """The references of this record's backbone and dataset, each matched or not."""
    if record.get("variant") != COMPARED_VARIANT:
        return []
    ours = run_protocol(record)
    top1 = (record.get("mean") or {}).get("top1")
    measured = None if top1 is None else 100 * top1
    return [
        Comparison(ref, measured, tuple(protocol_differences(ours, ref.protocol)))
        for ref in references
        if ref.backbone == record["backbone"] and ref.dataset == record["dataset"]
    ]


def seen_classes(record: Mapping[str, Any]) -> bool:
    """True where the backbone was trained on the dataset's classes (not zero-shot)."""
    backbone = record["provenance"]["chain"].get("backbone") or {}
    return record["dataset"] in (backbone.get("trained_on") or ())


# --- the I/O edge -----------------------------------------------------------------------------


def _reference(entry: Any, where: str) -> Reference:
    if not isinstance(entry, Mapping):
        raise ReferenceFileError(f"{where}: expected a mapping, got {type(entry).__name__}")
    missing = [k for k in ("backbone", "dataset", "top1", "source", "protocol") if k not in entry]
    if missing:
        raise ReferenceFileError(f"{where}: lacks {', '.join(missing)}")
    protocol = entry["protocol"]
    unknown = sorted(set(protocol) - set(PROTOCOL_FIELDS)) if isinstance(protocol, Mapping) else []
    if not isinstance(protocol, Mapping) or unknown:
        raise ReferenceFileError(
            f"{where}.protocol: unknown field(s) {unknown}; known: {', '.join(PROTOCOL_FIELDS)}"
        )
    try:
        top1 = float(entry["top1"])
        std = None if entry.get("std") is None else float(entry["std"])
    except (TypeError, ValueError):
        raise ReferenceFileError(f"{where}: top1 and std must be numbers (percent)") from None
    return Reference(
        str(entry["backbone"]), str(entry["dataset"]), top1, std, str(entry["source"]),
        dict(protocol),
    )


def load_references(path: str | os.PathLike | None) -> list[Reference]:
    """The reference file's entries (none where no file is configured)."""
    if not path:
        return []
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ReferenceFileError(f"{path}: {err}") from None
    entries = data.get("references") if isinstance(data, Mapping) else None
    if not isinstance(entries, list):
        raise ReferenceFileError(f"{path}: expected a `references:` list")
    return [_reference(e, f"{path}: references[{i}]") for i, e in enumerate(entries)]


# --- the planned run: which published numbers it will be set beside -----------------------


def planned_protocol(
    plan, frames: Mapping[str, Any], dataset: str, backbone: str,
    raw_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The protocol a planned run's baseline will be recorded under (before any job), in
    the reference file's terms: the config's frames, the backbone's pooling, name prompt and
    class-name rule; with the dataset's raw class names, every rule giving the same texts."""
    entry = plan.registry["backbones"][backbone]
    rule = plan.class_name_rule(dataset, backbone)
    made = expected_protocol({
        "frames": frames,
        "backbone": {"pooling": entry.get("pooling", DEFAULT_POOLING),
                     "name_prompt": plan.name_prompts[backbone].as_params(),
                     "class_names": rule},
    })  # fmt: skip
    if raw_names:
        digest = texts_digest(class_texts(rule, rule["adapter"], raw_names))
        made["class_names_same_as"] = rules_giving(
            digest, plan.class_rules, rule["adapter"], raw_names
        )
    data = plan.datasets[dataset]
    return protocol_terms({"adapter": data.adapter, "splits": list(data.splits)}, made)


def reference_preflight(
    plan, frames: Mapping[str, Any], references: Sequence[Reference],
    raw_names: Mapping[str, Sequence[str] | None],
) -> list[str]:
    """One line per published number of the run's datasets and backbones: set beside the
    run's baseline (every protocol field agrees), or not, with each differing field."""
    lines = []
    for dataset in plan.datasets:
        for backbone in plan.backbones:
            mine = [r for r in references if r.backbone == backbone and r.dataset == dataset]
            if not mine:
                continue
            ours = planned_protocol(plan, frames, dataset, backbone, raw_names.get(dataset))
            for ref in mine:
                differences = protocol_differences(ours, ref.protocol)
                head = f"{dataset} x {backbone}: {ref.published()} ({ref.source})"
                lines.append(
                    f"{head}: NOT compared; " + "; ".join(differences) if differences
                    else f"{head}: compared, every protocol field agrees"
                )
    if not lines:
        lines.append("no published number is for a dataset and backbone of this run")
    elif COMPARED_VARIANT not in plan.variants:
        lines.append(f"(only a `{COMPARED_VARIANT}` run is compared, and this run has none)")
    return lines
