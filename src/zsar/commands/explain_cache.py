"""`zsar explain-cache`: which stages a config key, a registry field or a library module
re-runs, read from the stage table (zsar.pipeline.stage_table). docs/cache.md's table of
what re-runs when is this command's `--markdown` output, and tests/test_rerun.py checks
each edit it makes against the same answers.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from zsar.commands.checkout import add_workdir_argument, find_workdir
from zsar.data.provenance import code_modules, is_module
from zsar.models.registry import models_schema
from zsar.pipeline import stage_table as table
from zsar.pipeline.config import config_schema
from zsar.pipeline.wiring import keyed_by_model_field

# Stages a reader looks for by name; the rest are counted as the report's pages.
REPORT_PAGES = "report_"


def _leaves(node: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    properties = node.get("properties")
    if not properties:
        yield prefix
        return
    for name, child in properties.items():
        yield from _leaves(child, f"{prefix}.{name}" if prefix else name)


def config_keys() -> list[str]:
    """Every key of the config schema, down to its leaves."""
    return list(_leaves(config_schema()))


def registry_fields(section: str) -> list[str]:
    schema = models_schema()
    entry = schema["properties"][section]["additionalProperties"]
    while "$ref" in entry:
        entry = schema["$defs"][entry["$ref"].rsplit("/", 1)[-1]]
    return list(entry["properties"])


def describe(keyed: Sequence[str], conditions: Mapping[str, str] | None = None) -> str:
    """The stages keyed directly, with where only some runs read the key, then what
    re-runs after them (the report's pages counted, not named)."""
    if not keyed:
        return "nothing"
    conditions = conditions or {}
    first = [f"{s} ({conditions[s]})" if s in conditions else s for s in keyed]
    after = [s for s in table.downstream(keyed) if s not in keyed]
    pages = [s for s in after if s.startswith(REPORT_PAGES)]
    named = [s for s in after if not s.startswith(REPORT_PAGES)]
    if pages:
        named.append(f"{len(pages)} report pages")
    return ", ".join(first) + ("; then " + ", ".join(named) if named else "")


def config_rows() -> list[tuple[str, str]]:
    """(keys, what they re-run), keys with the same answer on one row, in schema order."""
    rows: dict[str, list[str]] = {}
    for key in config_keys():
        answer = describe(table.keyed_by(key), table.setting_conditions(key))
        rows.setdefault(answer, []).append(f"`{key}`")
    return [(", ".join(keys), answer) for answer, keys in rows.items()]


def registry_rows() -> list[tuple[str, str]]:
    rows: dict[str, list[str]] = {}
    for section in table.MODEL_SECTIONS:
        for field in registry_fields(section):
            answer = describe(keyed_by_model_field(section, field))
            rows.setdefault(answer, []).append(f"`{section}.{field}`")
    return [(", ".join(fields), answer) for answer, fields in rows.items()]


def module_stages(module: str, workdir: Path) -> list[str]:
    """The stages whose code version holds a zsar module (their scripts import it)."""
    scripts = workdir / "workflow" / "scripts"
    return [name for name, s in table.STAGES.items()
            if s.script and module in code_modules(scripts / f"{s.script}.py")]


def markdown() -> str:
    lines = ["| config key | re-runs |", "|---|---|"]
    lines += [f"| {keys} | {answer} |" for keys, answer in config_rows()]
    lines += ["", "| registry field | re-runs |", "|---|---|"]
    lines += [f"| {fields} | {answer} |" for fields, answer in registry_rows()]
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("keys", nargs="*", metavar="KEY",
                        help="config keys (frames.num_frames), registry fields "
                        "(backbones.preprocess) or zsar modules (zsar.stages.embed); "
                        "none: every config key and registry field")
    parser.add_argument("--markdown", action="store_true",
                        help="the tables docs/cache.md holds")
    add_workdir_argument(parser)


def answer(key: str, workdir: Path | None) -> str:
    section, _, field = key.partition(".")
    if section in table.MODEL_SECTIONS and field in registry_fields(section):
        return describe(keyed_by_model_field(section, field))
    if key.startswith("zsar."):
        if not is_module(key):
            raise SystemExit(f"zsar explain-cache: {key}: no such zsar module")
        if workdir is None:
            raise SystemExit(f"zsar explain-cache: {key}: a module's stages are read from "
                             "the workflow's scripts; run it in a zsar checkout or give "
                             "--workdir")
        return describe(module_stages(key, workdir))
    if not any(k == key or k.startswith(key + ".") for k in config_keys()):
        raise SystemExit(f"zsar explain-cache: {key}: not a config key, a registry field "
                         "or a zsar module")
    return describe(table.keyed_by(key), table.setting_conditions(key))


def run(args: argparse.Namespace) -> int:
    if args.markdown or not args.keys:
        print(markdown() if args.markdown else "\n".join(
            f"{keys}: {answer}" for keys, answer in [*config_rows(), *registry_rows()]))
        return 0
    workdir = find_workdir(args.workdir)
    for key in args.keys:
        print(f"{key}: {answer(key, workdir)}")
    return 0
