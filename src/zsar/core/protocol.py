"""The protocol a score was computed under, read from the files it was computed from.

A metrics record states its frames, sampling, views, pooling, name prompt and class names as
the video embeddings' and the class-name embeddings' own provenance says they were made
(each stage writes a `protocol` block: zsar.stages.frames, zsar.stages.embed,
zsar.stages.embed_text), never as the config of the command that scores them says. Where the
two disagree (embeddings left from another setting, edited by hand or copied in) the score
job refuses, naming the field: a number labelled with a protocol it was not computed under
is worse than no number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# How a backbone entry without `pooling` pools its frames (zsar.stages.embed.POOLINGS);
# defined here, the lightest module that needs it, and imported by zsar.stages.embed and
# zsar.core.references.
DEFAULT_POOLING = "normalise_then_mean"


def sampling_label(frames: Mapping[str, Any]) -> str | None:
    """ "tsn", or "stride16" for the stride sampler at stride 16: the reference file's terms."""
    rule = frames.get("sampling")
    return f"stride{frames['stride']}" if rule == "stride" else rule


def artifact_protocol(
    video_provenance: Mapping[str, Any], name_provenance: Mapping[str, Any]
) -> dict[str, Any]:
    """The protocol blocks of the video embeddings and the class-name embeddings, merged;
    a field a file does not state is None (unknown)."""
    video = video_provenance.get("protocol") or {}
    names = name_provenance.get("protocol") or {}
    return {
        "frames": dict(video.get("frames") or {}),
        "views": dict(video.get("views") or {}),
        "pooling": video.get("pooling"),
        "name_prompt": names.get("name_prompt"),
        "class_names": names.get("class_names"),
        "class_texts": names.get("class_texts"),
    }


def expected_protocol(chain: Mapping[str, Any]) -> dict[str, Any]:
    """What a score job's params (its chain: the config it was planned with) say the
    embeddings were made with, in artifact_protocol's terms."""
    frames = chain.get("frames") or {}
    views = frames.get("views") or {}
    backbone = chain.get("backbone") or {}
    sampled = {
        "sampling": frames.get("sampling", "tsn"),
        "num_frames": frames.get("num_frames"),
        "clips": views.get("clips", 1),
    }
    if sampled["sampling"] == "stride":
        sampled["stride"] = frames.get("stride")
    return {
        "frames": sampled,
        "views": {"clips": views.get("clips", 1), "crops": views.get("crops", 1)},
        "pooling": backbone.get("pooling", DEFAULT_POOLING),
        "name_prompt": (backbone.get("name_prompt") or {}).get("version"),
        "class_names": (backbone.get("class_names") or {}).get("rule"),
    }


def protocol_conflicts(made: Mapping[str, Any], planned: Mapping[str, Any]) -> list[str]:
    """Each field where the files disagree with the plan, as `field: files X, config Y`
    (a frames field is compared only where the plan states it)."""
    conflicts = []
    for field, want in planned.items():
        have = made.get(field)
        if isinstance(want, Mapping):
            have = {k: (have or {}).get(k) for k in want}
        if have != want:
            conflicts.append(
                f"{field}: the embeddings were made with {have!r}, the config says {want!r}"
            )
    return conflicts


def check_protocol(
    made: Mapping[str, Any], planned: Mapping[str, Any], files: Sequence[str]
) -> None:
    """Refuse, in one line naming the field, scores whose inputs were made otherwise than
    their record would say."""
    conflicts = protocol_conflicts(made, planned)
    if conflicts:
        raise ProtocolMismatch(
            f"{' and '.join(files)}: {conflicts[0]}"
            + (f" (and {len(conflicts) - 1} more field(s))" if len(conflicts) > 1 else "")
            + "; make them again under this config rather than score them under it"
        )


class ProtocolMismatch(ValueError):
    """Embeddings made under another protocol than the run's config says."""
