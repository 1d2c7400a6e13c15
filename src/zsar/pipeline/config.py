"""The run config: one schema for its defaults and its checks, one loader for all who read it.

The workflow (workflow/rules/common.smk) and `zsar predict` both call `validate_config`,
which fills every key the config leaves out with the schema's default
(zsar/schemas/config.schema.yaml, package data, so it is found from any folder) and checks
the rest. A bad config is one `ConfigError` whose message fits on a screen: the key at
fault, what is wrong, and the keys (or the values) that are allowed.

The schema's lists that name the method's registries are filled in here from zsar.core.method,
so that adding a fusion mode, a variant or a kind of class text never needs a schema edit:
scoring.fusion's and scoring.variants' allowed values, and one scoring.weights and one
descriptors.templates key per kind, with the kind's default.
"""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Iterable, Mapping
from importlib import resources as package_resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import best_match

from zsar.core.method import DESCRIPTOR_KINDS, FUSIONS, KINDS, VARIANTS

SCHEMA_FILE = "schemas/config.schema.yaml"


class ConfigError(ValueError):
    """A config that cannot run; the message names the key or path at fault."""


def _registry_lists(schema: dict[str, Any]) -> dict[str, Any]:
    scoring = schema["properties"]["scoring"]["properties"]
    scoring["fusion"]["enum"] = list(FUSIONS)
    scoring["variants"]["items"] = {"enum": list(VARIANTS)}
    scoring["variants"]["default"] = list(VARIANTS)
    scoring["weights"]["properties"] = {
        kind: {"type": "number", "minimum": 0, "default": KINDS[kind].weight} for kind in KINDS
    }
    templates = schema["properties"]["descriptors"]["properties"]["templates"]
    templates["properties"] = {
        kind: {"type": "string", "default": KINDS[kind].template} for kind in DESCRIPTOR_KINDS
    }
    return schema


def _without_required(schema: Any) -> Any:
    """The schema with no `required` lists (dataset specs under $defs keep theirs)."""
    if not isinstance(schema, dict):
        return schema
    return {
        key: value if key == "$defs" else _without_required(value)
        for key, value in schema.items()
        if key != "required"
    }


@functools.cache
def _schema(complete: bool = True) -> dict[str, Any]:
    text = package_resources.files("zsar").joinpath(SCHEMA_FILE).read_text()
    schema = _registry_lists(yaml.safe_load(text))
    return schema if complete else _without_required(schema)


def config_schema() -> dict[str, Any]:
    """The config schema with the registry lists filled in (a copy, safe to change)."""
    return copy.deepcopy(_schema())


@functools.cache
def _validator_class():
    """Draft 2020-12, plus: a property missing from an object takes the schema's default.

    jsonschema's own recipe for defaults; objects default to {} so their members'
    defaults apply too. Defaults are deep-copied, so no config shares the schema's.
    """
    check_properties = Draft202012Validator.VALIDATORS["properties"]

    def properties_with_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
                elif name in instance and subschema.get("type") == "boolean":
                    instance[name] = boolean_as_typed(instance[name])
        yield from check_properties(validator, properties, instance, schema)

    return validators.extend(Draft202012Validator, {"properties": properties_with_defaults})


# `snakemake --config allow_demo_models=true` hands the value over as the string 'true'
# (Snakemake's own parser knows only `True`/`False`); a boolean key takes the spellings
# people type. Anything else is left as it is, for the schema to refuse with its name.
BOOLEAN_SPELLINGS = {
    "true": True, "yes": True, "on": True, "1": True,
    "false": False, "no": False, "off": False, "0": False,
}


def boolean_as_typed(value: Any) -> Any:
    """`value` as a boolean when it is a string spelling one (any case), else unchanged."""
    if isinstance(value, str):
        return BOOLEAN_SPELLINGS.get(value.strip().lower(), value)
    return value


def _key(path: Iterable[Any]) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in path]
    return "".join(parts).lstrip(".") or "(top level)"


def _allowed_keys(schema: Mapping[str, Any]) -> str:
    return ", ".join(sorted(schema.get("properties") or {})) or "(none)"


def describe_error(error, label: str = "config") -> str:
    """One short paragraph for a schema violation: the key, the problem, what is allowed."""
    where = _key(error.absolute_path)
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties") or {}))
        keys = ", ".join(f"{where}.{k}" if error.absolute_path else k for k in extra)
        return f"{label}: unknown key {keys}; allowed here: {_allowed_keys(error.schema)}"
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        key = f"{where}.{missing}" if error.absolute_path else missing
        return f"{label}: {key} is required"
    if error.validator == "enum":
        allowed = ", ".join(map(str, error.validator_value))
        return f"{label}: {where}: {error.instance!r} is not one of: {allowed}"
    message = error.message
    if error.validator == "pattern" and "x-pattern-meaning" in error.schema:
        # A schema may say what its pattern means; the pattern itself says little to a reader.
        message = f"{error.instance!r} is not {error.schema['x-pattern-meaning']}"
    if error.validator == "type" and error.validator_value == "boolean":
        message = f"{error.instance!r} is not a boolean: write true or false (or yes, no)"
    if error.validator == "oneOf":
        message = f"{error.instance!r} is not valid ({error.schema.get('description', '')})"
    return f"{label}: {where}: {message}"


def check_against(instance: dict[str, Any], schema: Mapping[str, Any], label: str) -> None:
    validator = _validator_class()(schema)
    errors = list(validator.iter_errors(instance))
    if errors:
        first = best_match(errors)
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise ConfigError(describe_error(first, label) + more)


def validate_config(config: dict[str, Any], *, complete: bool = True) -> dict[str, Any]:
    """Fill in the defaults (in place) and check the config; returns it.

    With complete=False the run's own choices (datasets, backbones, captioner, LLM) may be
    missing: the settings of a config, as `zsar predict` reads them.
    """
    check_against(config, _schema(complete), "config")
    return config


def dataset_spec_default(field: str) -> Any:
    """A dataset spec field's default, as the schema states it (the one place it is)."""
    return _schema()["$defs"]["dataset_spec"]["properties"][field]["default"]


def validate_dataset_spec(spec: dict[str, Any], label: str) -> dict[str, Any]:
    """Check one dataset spec (from config/datasets/*.yaml or dataset_specs)."""
    check_against(spec, _schema()["$defs"]["dataset_spec"], label)
    return spec


def merge(base: dict[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """`overlay` on `base`, mappings merged key by key, as Snakemake merges config files."""
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def read_yaml_mapping(path: str | os.PathLike) -> dict[str, Any]:
    """A YAML file that must hold a mapping (an empty file is an empty one)."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    return data


def load_config(
    paths: Iterable[str | os.PathLike],
    overrides: Mapping[str, Any] | None = None,
    *,
    complete: bool = True,
) -> dict[str, Any]:
    """Config files merged in order, then `overrides`, then defaults and checks."""
    config: dict[str, Any] = {}
    for path in paths:
        merge(config, read_yaml_mapping(path))
    merge(config, overrides or {})
    return validate_config(config, complete=complete)


def lambdas(scoring: Mapping[str, Any]) -> list[float]:
    """scoring.lambda as a list (one value is a list of one)."""
    value = scoring["lambda"]
    return [float(v) for v in (value if isinstance(value, list) else [value])]


def command_line_values(pairs: Iterable[str]) -> dict[str, Any]:
    """KEY=VALUE pairs as a mapping, each value read as YAML (as Snakemake reads them)."""
    values = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise ConfigError(f"--config {pair!r}: expected KEY=VALUE")
        try:
            values[key] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ConfigError(f"--config {key}: {err}") from None
    return values
