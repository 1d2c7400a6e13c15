"""Which models made a result, and whether any was a demo model, read from the artifacts.

Each embedding job records, in its output's provenance (`models`), the origin of every model
its wildcards name (zsar.pipeline.job.job_models, zsar.models.registry.model_origin): the
backbone, and the captioner or LLM whose texts it embeds. The score job reads those records
from the files it scores, never from the command that runs it, so a table row made with a
tiny random model says so however the config looks today (DESIGN, "Metrics").

Files made before the embedding jobs recorded origins have none; for those the record's
chain (the identities the inputs were made with, which is their cache key) still tells
random weights apart: an identity with `build:` is a model zsar.models.tiny built.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# A model's role in a record -> where the chain (zsar.stages.scoring's `chain`) holds its identity.
CHAIN_PLACES = {
    "backbone": ("backbone",),
    "captioner": ("captions", "captioner"),
    "llm": ("descriptors", "llm"),
}
# How tables name a role.
ROLE_WORDS = {"backbone": "backbone", "captioner": "captioner", "llm": "LLM"}


def _chain_identity(chain: Mapping[str, Any], role: str) -> Mapping[str, Any] | None:
    found: Any = chain
    for key in CHAIN_PLACES[role]:
        found = (found or {}).get(key)
    return found


def recorded_models(
    provenances: Iterable[Mapping[str, Any]], chain: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """role -> {"name", "demo"} of each model the chain names, from the inputs'
    provenances; a model no input recorded is judged by its chain identity (demo where it
    was built; None, unknown, otherwise)."""
    recorded: dict[str, dict[str, Any]] = {}
    for block in provenances:
        for role, origin in (block.get("models") or {}).items():
            seen = recorded.setdefault(role, {"name": origin["name"], "demo": False})
            seen["demo"] = seen["demo"] or bool(origin.get("demo"))
    models = {}
    for role in CHAIN_PLACES:
        identity = _chain_identity(chain, role)
        if identity is None:
            continue
        models[role] = recorded.get(role) or {
            "name": identity.get("name"),
            "demo": True if "build" in identity else None,
        }
    return models


def demo_models(record: Mapping[str, Any]) -> list[str]:
    """"name (role)" of each demo model a metrics record says made it, in role order."""
    models = record.get("models") or {}
    return [
        f"{models[role]['name']} ({ROLE_WORDS[role]})"
        for role in CHAIN_PLACES
        if (models.get(role) or {}).get("demo")
    ]
