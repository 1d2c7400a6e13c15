"""Provenance of an artifact: what code, config and models produced it.

Nothing here records wall-clock time, so equal inputs give byte-identical
metrics and tables; timestamps belong in logs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from zsar import __version__

TRACKED_PACKAGES = ("torch", "open_clip_torch", "transformers", "decord", "pyarrow", "numpy")


def config_hash(obj: Any) -> str:
    """A short, stable hash of a JSON-able object (key order does not matter)."""
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@functools.cache
def git_commit(start: str | None = None) -> str:
    """The commit of the checkout that holds the workflow, or "unknown" outside git."""
    cwd = Path(start) if start else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def package_versions(names: Iterable[str] = TRACKED_PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def provenance(
    config: Mapping[str, Any] | None = None,
    *,
    model: str | None = None,
    prompt_version: str | None = None,
    seed: int = 0,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The provenance block every artifact and metrics record carries."""
    block: dict[str, Any] = {
        "zsar_version": __version__,
        "git_commit": git_commit(),
        "config_hash": config_hash(config or {}),
        "packages": package_versions(),
        "seed": seed,
    }
    if model is not None:
        block["model"] = model
    if prompt_version is not None:
        block["prompt_version"] = prompt_version
    if extra:
        block.update(extra)
    return block
