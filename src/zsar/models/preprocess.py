"""A backbone's preprocessing as its registry entry states it: size, mean, std,
interpolation, resize mode and crop, every field filled in (no torch, no download).

zsar.models.backbones builds the image transform from it, zsar.models.device_frames its
tensor form, and `zsar models` lists it (zsar.models.registry)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEFAULT_PREPROCESS = {
    "size": 224,
    "mean": (0.48145466, 0.4578275, 0.40821073),  # OpenAI CLIP's dataset statistics
    "std": (0.26862954, 0.26130258, 0.27577711),
    "interpolation": "bicubic",
    "resize_mode": "shortest",
    "crop_pct": 1.0,
}


def canonical_preprocess(pp: Mapping[str, Any]) -> dict[str, Any]:
    """A preprocessing config with every field, as plain numbers and tuples."""
    full = {**DEFAULT_PREPROCESS, **{k: v for k, v in pp.items() if v is not None}}
    size = full["size"]
    if isinstance(size, (list, tuple)):
        if len(set(size)) != 1:
            raise ValueError(f"non-square input sizes are not supported: {size}")
        size = size[0]
    return {
        "size": int(size),
        "mean": tuple(float(x) for x in full["mean"]),
        "std": tuple(float(x) for x in full["std"]),
        "interpolation": str(full["interpolation"]),
        "resize_mode": str(full["resize_mode"]),
        "crop_pct": float(full["crop_pct"]),
    }


def preprocess_of(entry: Mapping[str, Any]) -> dict[str, Any] | None:
    """A backbone's preprocessing as the registry states it (no torch, no download)."""
    if "preprocess" in entry:
        return canonical_preprocess(entry["preprocess"])
    build = entry.get("build") or {}
    if "preprocess_cfg" in build:
        size = build.get("model_cfg", {}).get("vision_cfg", {}).get("image_size")
        return canonical_preprocess({"size": size, **build["preprocess_cfg"]})
    return None
