"""The model registry: `config/models.yaml` read as data, checked, and listed (`zsar models`).

Three sections, backbones, captioners and LLMs, each a name -> entry mapping. Every entry
names its `backend`: how it is loaded and run. The backends of a section are declared by
the stage module that runs them (SECTION_BACKENDS), each with its traits (`Backend`):
whether fetch_model puts weights in place first, whether its jobs need a GPU, and which
files named in the entry the stage reads. The workflow's rules and zsar.models.fetch read those
traits instead of keeping lists of their own, so a new backend is one entry in its stage
module (plus the registry entries that use it).

Entries are checked against `zsar/schemas/models.schema.yaml` when the registry is loaded,
with the same one-line errors as the config. A model's folder, and the ready file the
fetch_model rule leaves there, are defined here once: the loaders read them, the rule
writes them.
"""

from __future__ import annotations

import argparse
import copy
import functools
import importlib
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources as package_resources
from pathlib import Path
from typing import Any

import yaml

from zsar.commands.checkout import add_workdir_argument, user_paths_then_workdir
from zsar.models.preprocess import preprocess_of
from zsar.pipeline.config import ConfigError, check_against

SECTIONS = ("backbones", "captioners", "llms")
# The module that declares each section's backends, as a `BACKENDS` mapping.
SECTION_BACKENDS = {
    "backbones": "zsar.models.backbones",
    "captioners": "zsar.models.captioners",
    "llms": "zsar.stages.descriptors",
}
SCHEMA_FILE = "schemas/models.schema.yaml"
# Written last by the fetch_model rule: a model folder without it is never used.
READY_FILE = ".zsar-ready"


class RegistryError(KeyError):
    """A name that is not in the registry, or an entry that is malformed."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def _no_files(entry: Mapping[str, Any]) -> list[str]:
    return []


@dataclass(frozen=True)
class Backend:
    """One way to run a registry entry, declared beside its code in the stage module.

    make: the stage's factory (its signature is the stage's own);
    fetches_weights: fetch_model puts its weights under resources/models/NAME/ first;
    uses_gpu: its jobs ask the scheduler for one GPU;
    input_files: the files named in an entry that the stage reads (rule inputs, so that
    editing one re-runs the stage).
    """

    make: Callable[..., Any]
    fetches_weights: bool
    uses_gpu: bool
    input_files: Callable[[Mapping[str, Any]], list[str]] = field(default=_no_files)


def backends(section: str) -> Mapping[str, Backend]:
    """The backends of one registry section, as its stage module declares them."""
    return importlib.import_module(SECTION_BACKENDS[section]).BACKENDS


def backend_of(section: str, entry: Mapping[str, Any]) -> Backend:
    known = backends(section)
    name = entry.get("backend")
    if name not in known:
        raise RegistryError(
            f"{section}.{entry.get('name', '?')}.backend: '{name}' is not one of "
            f"{', '.join(sorted(known))}"
        )
    return known[name]


# --- the schema -------------------------------------------------------------------------------


@functools.cache
def _schema() -> dict[str, Any]:
    text = package_resources.files("zsar").joinpath(SCHEMA_FILE).read_text()
    schema = yaml.safe_load(text)
    for section, definition in (("backbones", "backbone"), ("captioners", "captioner"),
                                ("llms", "llm")):
        schema["$defs"][definition]["properties"]["backend"]["enum"] = sorted(backends(section))
    return schema


def models_schema() -> dict[str, Any]:
    """The registry schema with each section's backends filled in (a copy)."""
    return copy.deepcopy(_schema())


def _resolve(schema: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    """`node` with a local "#/..." $ref followed."""
    while "$ref" in node:
        target: Any = schema
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


@functools.cache
def _fields_marked(section: str, mark: str) -> frozenset[str]:
    """The entry fields of a section whose schema says `mark: false`."""
    schema = _schema()
    entry = _resolve(schema, schema["properties"][section]["additionalProperties"])
    return frozenset(
        name
        for name, prop in entry["properties"].items()
        if _resolve(schema, prop).get(mark) is False
    )


def model_identity(section: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    """What an entry computes with: the entry without the fields that only document it or
    only change how fast or where it runs (`x-cache-key: false` in the schema)."""
    uncached = _fields_marked(section, "x-cache-key")
    return {key: value for key, value in entry.items() if key not in uncached}


def side_identity(section: str, entry: Mapping[str, Any], side: str) -> dict[str, Any]:
    """The identity as one side of a backbone sees it (`video` or `text`): without the fields
    that change only the other side (`x-side` in the schema), so new preprocessing or frame
    pooling re-runs no text embedding."""
    schema = _schema()
    entry_schema = _resolve(schema, schema["properties"][section]["additionalProperties"])
    other_side = {
        name for name, prop in entry_schema["properties"].items()
        if _resolve(schema, prop).get("x-side", side) != side
    }
    return {k: v for k, v in model_identity(section, entry).items() if k not in other_side}


def fetch_identity(section: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    """What fetch_model's download depends on: the identity without the fields a loader
    applies itself (`x-fetch-key: false`, e.g. preprocessing)."""
    applied_at_load = _fields_marked(section, "x-fetch-key")
    identity = model_identity(section, entry)
    return {key: value for key, value in identity.items() if key not in applied_at_load}


def check_registry(data: Mapping[str, Any], path: str | os.PathLike) -> None:
    try:
        check_against(dict(data), _schema(), str(path))
    except ConfigError as err:
        raise RegistryError(str(err)) from None


# --- loading and looking up -----------------------------------------------------------------


def load_registry(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The registry file, checked; each section a name -> entry mapping."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise RegistryError(f"{path}: {err}") from None
    if not isinstance(data, dict):
        raise RegistryError(f"{path}: expected sections {SECTIONS}, got {type(data).__name__}")
    check_registry(data, path)
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


def ready_path(resources: str | os.PathLike, name: str) -> Path:
    """The file fetch_model writes last into a model's folder (the rule's output)."""
    return model_dir(resources, name) / READY_FILE


def model_origin(entry: Mapping[str, Any], resources: str | os.PathLike) -> dict[str, Any]:
    """What a stage records of a model it ran with, for the records made downstream: its
    name, and `demo`: whether its outputs mean nothing. That is so for random weights (the
    ready file fetch_model wrote says they were built, zsar.models.tiny) and for an entry the
    registry marks `demo` (the demo's hand-written descriptors, which no ready file names).
    """
    ready = ready_path(resources, entry["name"])
    fetched_by = json.loads(ready.read_text()).get("fetched_by") if ready.is_file() else None
    return {"name": entry["name"], "demo": bool(entry.get("demo")) or fetched_by == "build"}


# --- `zsar models` --------------------------------------------------------------------------


# Where an entry's model comes from, by the key that names it (first match wins).
_SOURCES: tuple[tuple[str, Callable[[Mapping[str, Any]], str]], ...] = (
    ("build", lambda e: f"built from config (seed {e['build'].get('seed', 0)})"),
    ("local_file", lambda e: f"local file {e['local_file']} from {e.get('download_url', '?')}"),
    ("url", lambda e: f"url {e['url']}"),
    ("hf_repo", lambda e: f"hf {e['hf_repo']}"),
    ("pretrained", lambda e: f"{e.get('architecture')} pretrained={e['pretrained']}"),
    ("source", lambda e: str(e["source"])),
    ("base_url", lambda e: f"endpoint {e['base_url']} model={e.get('model', '?')}"),
    ("path", lambda e: f"file {e['path']}"),
)
MODEL_LIST_COLUMNS = ("section", "name", "family", "source", "preprocessing")


def describe_source(entry: Mapping[str, Any]) -> str:
    where = next((describe(entry) for key, describe in _SOURCES if key in entry), "?")
    return f"{entry.get('backend', '?')}: {where}"


def describe_preprocess(pp: Mapping[str, Any] | None) -> str:
    if pp is None:
        return "-"

    def triple(values):
        return "(" + ",".join(f"{v:.4g}" for v in values) + ")"

    crop = f" crop_pct={pp['crop_pct']:g}" if pp["crop_pct"] != 1.0 else ""
    return (
        f"size={pp['size']} {pp['interpolation']} {pp['resize_mode']}{crop} "
        f"mean={triple(pp['mean'])} std={triple(pp['std'])}"
    )


def registry_rows(registry: Mapping[str, Mapping[str, Any]]) -> list[dict[str, str]]:
    rows = []
    for section in SECTIONS:
        for name, entry in registry.get(section, {}).items():
            preprocessing = preprocess_of(entry) if section == "backbones" else None
            rows.append(
                {
                    "section": section,
                    "name": name,
                    "family": str(entry.get("family", "-")),
                    "source": describe_source(entry),
                    "preprocessing": describe_preprocess(preprocessing),
                }
            )
    return rows


def format_rows(rows: list[dict[str, str]]) -> str:
    """Entries grouped by section, one block each: name and family, then source, preprocessing."""
    lines: list[str] = []
    section = None
    for row in rows:
        if row["section"] != section:
            section = row["section"]
            lines += [""] * bool(lines) + [section]
        lines.append(f"  {row['name']}  ({row['family']})")
        lines.append(f"      source         {row['source']}")
        if row["preprocessing"] != "-":
            lines.append(f"      preprocessing  {row['preprocessing']}")
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--registry", default="config/models.yaml", help="registry YAML (default: %(default)s)"
    )
    add_workdir_argument(parser)
    parser.add_argument("--section", choices=SECTIONS, help="list only this section")
    parser.add_argument("--tsv", action="store_true", help="one tab-separated row per entry")


def run(args: argparse.Namespace) -> int:
    try:
        [registry] = user_paths_then_workdir([args.registry], args.workdir)
        rows = registry_rows(load_registry(registry))
    except (RegistryError, OSError) as err:
        print(f"zsar models: error: {err}", file=sys.stderr)
        return 2
    if args.section:
        rows = [r for r in rows if r["section"] == args.section]
    if args.tsv:
        lines = ["\t".join(MODEL_LIST_COLUMNS)]
        lines += ["\t".join(row[c] for c in MODEL_LIST_COLUMNS) for row in rows]
        sys.stdout.write("\n".join(lines) + "\n")
    else:
        sys.stdout.write(format_rows(rows))
    return 0
