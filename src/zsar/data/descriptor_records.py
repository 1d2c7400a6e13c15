"""The descriptors document and what checks it: the record fields of each kind, the JSON
schema (`schemas/descriptors.schema.json`, widened to every kind of zsar.core.method), a class that
falls back to its name, and curated files read as data.

Both the LLM stage (zsar.stages.descriptors) and the import of published files
(zsar.data.descriptor_sources) write records of this shape; neither depends on the other for it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from importlib import resources as package_resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from zsar.core.method import DESCRIPTOR_KINDS, KINDS
from zsar.data.limits import load_yaml_limited, read_text_limited

# Record field of each kind of descriptor text (the kinds are zsar.core.method's).
KIND_FIELDS = {kind: KINDS[kind].field for kind in DESCRIPTOR_KINDS}
MAX_ERROR_TEXT = 400


# --- The schema -------------------------------------------------------------------------


def _with_every_kind(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with a field for every descriptor kind of zsar.core.method.KINDS.

    The file spells out the limits of the three kinds it was written for; a kind added to
    zsar.core.method later gets a plain list of sentences, required in an answer and empty in a
    fallback, without an edit here.
    """
    defs = schema["$defs"]
    answer, record = defs["answer"], defs["class_record"]
    for field in KIND_FIELDS.values():
        if field in answer["properties"]:
            continue
        answer["properties"][field] = {
            "type": "array", "minItems": 1, "items": {"$ref": "#/$defs/sentence"}
        }
        answer["required"].append(field)
        record["properties"][field] = {"type": "array", "items": {"type": "string"}}
        record["required"].append(field)
        record["then"]["properties"][field] = {"maxItems": 0}
    return schema


@functools.cache
def descriptors_schema() -> dict[str, Any]:
    """The JSON schema of a descriptors file (package data), covering every kind."""
    text = package_resources.files("zsar").joinpath("schemas/descriptors.schema.json").read_text()
    return _with_every_kind(json.loads(text))


@functools.cache
def _validator(definition: str | None):
    schema = descriptors_schema()
    if definition is not None:
        # Validate against one definition while keeping the file's $defs reachable.
        schema = {"$defs": schema["$defs"], "$ref": f"#/$defs/{definition}"}
    return Draft202012Validator(schema)


def schema_errors(obj: Any, definition: str | None) -> list[str]:
    errors = sorted(_validator(definition).iter_errors(obj), key=lambda e: list(e.absolute_path))
    messages = []
    for error in errors:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        messages.append(f"{where}: {error.message}")
    return messages


def validate_descriptors(document: Mapping[str, Any]) -> None:
    """Raise ValueError naming every problem if `document` does not pass the file schema."""
    errors = schema_errors(document, None)
    if errors:
        raise ValueError("descriptors do not pass the schema: " + "; ".join(errors[:10]))


def fallback_record(reason: str) -> dict[str, Any]:
    """A class that falls back to its name: no descriptor texts, and why."""
    return {**{field: [] for field in KIND_FIELDS.values()}, "fallback": True, "reason": reason}


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# The top-level keys of a descriptors document (schemas/descriptors.schema.json).
DOCUMENT_KEYS = frozenset({"llm", "prompt_version", "provenance", "classes", "summary"})


def _yaml_problem(path: Path, err: yaml.YAMLError) -> ValueError:
    """A YAML error as one line naming the file and line (PyYAML's own spans several)."""
    mark = getattr(err, "problem_mark", None)
    where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return ValueError(f"{where}: cannot read it as YAML: {problem}")


def read_curated_data(path: Path) -> Any:
    """A curated file's content: a `.json` file parsed as JSON, any other as YAML whose
    aliases stay within zsar.data.limits, after a size check; errors are one line naming the
    file."""
    text = read_text_limited(path, "descriptor")
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from None
        except RecursionError:
            raise ValueError(f"{path}: invalid JSON: nested too deeply") from None
    try:
        return load_yaml_limited(text)
    except yaml.YAMLError as err:
        raise _yaml_problem(path, err) from None
    except RecursionError:
        raise ValueError(f"{path}: cannot read it as YAML: nested too deeply") from None


def load_curated(path: str | Path) -> tuple[str | None, dict[str, Any]]:
    """(version, class name -> entry) from a curated YAML or JSON file.

    Either a plain mapping of class names to {attributes, descriptions, hierarchy}, or
    {version: ..., classes: {...}}, which records which edition of the file was used.
    """
    data = read_curated_data(Path(path))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of class names to descriptors")
    if "classes" in data and set(data) <= {"version", "classes"}:
        return (str(data["version"]) if "version" in data else None), dict(data["classes"])
    # A descriptors document: `zsar descriptors import` output, or another run's descriptors.
    if "classes" in data and set(data) <= DOCUMENT_KEYS and isinstance(data["classes"], dict):
        return str(data.get("prompt_version") or "") or None, dict(data["classes"])
    return None, data


def descriptors_document(
    llm: str, prompt_version: str, records: Mapping[str, Mapping[str, Any]],
    provenance_block: Mapping[str, Any],
) -> dict[str, Any]:
    fallbacks = sum(1 for r in records.values() if r.get("fallback"))
    return {
        "llm": llm,
        "prompt_version": prompt_version,
        "provenance": dict(provenance_block),
        "classes": {name: dict(records[name]) for name in sorted(records)},
        "summary": {"classes": len(records), "fallbacks": fallbacks},
    }
