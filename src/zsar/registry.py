"""Model registry: `config/models.yaml` read as data, with errors that name the entry."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

SECTIONS = ("backbones", "captioners", "llms")


class RegistryError(KeyError):
    """A name that is not in the registry, or an entry that is malformed."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def load_registry(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    data = yaml.safe_load(Path(path).read_text()) or {}
    unknown = set(data) - set(SECTIONS)
    if unknown:
        raise RegistryError(f"{path}: unknown section(s) {sorted(unknown)}; expected {SECTIONS}")
    return {section: dict(data.get(section) or {}) for section in SECTIONS}


def get_entry(registry: Mapping[str, Mapping[str, Any]], section: str, name: str) -> dict[str, Any]:
    """The entry `name` of `section`, with its name filled in; a clear error otherwise."""
    entries = registry.get(section, {})
    if name not in entries:
        known = ", ".join(sorted(entries)) or "(none)"
        raise RegistryError(f"{section[:-1]} '{name}' is not in the model registry; known: {known}")
    return {"name": name, **entries[name]}


def model_dir(resources: str | os.PathLike, name: str) -> Path:
    """Where the weights of registry entry `name` live once fetched or built."""
    return Path(resources) / "models" / name
