"""Class names as text: the rule that turns a label file's names into what the text encoder
reads, per dataset (its spec's `class_names`) or per backbone (its registry entry's, which
wins), so that one sweep puts every backbone on its own published protocol.

A rule is one of zsar.data.adapters.CLASS_NAME_RULES (`raw`, `words`, `spaced`) or the name of a
mapping file, config/class_names/NAME.yaml: a built-in rule (`base`) and the names it
spells otherwise (`names`: raw name -> text), for a protocol whose names a rule alone does
not give (Open-VCLIP's label files write UCF101's `YoYo` as `Yoyo`).

What a record compares is the texts, not the rule's name (`texts_digest`): two rules that
give the same texts for a dataset (HMDB51's `brush hair` as raw and as words) are the same
protocol there.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from zsar.data.adapters import CLASS_NAME_RULES, get_adapter
from zsar.pipeline.config import ConfigError, read_yaml_mapping


class ClassNameRuleError(ValueError):
    """An unknown rule or a malformed mapping file; the message names it."""


def resolve_rule(name: str, config_dir: str | os.PathLike) -> dict[str, Any]:
    """A rule as a job's params hold it: {"rule", "base", "names"}; a built-in rule is its
    own base with no names."""
    if name in CLASS_NAME_RULES:
        return {"rule": name, "base": name, "names": {}}
    path = Path(config_dir) / "class_names" / f"{name}.yaml"
    if not path.is_file():
        known = sorted([*CLASS_NAME_RULES, *mapping_names(config_dir)])
        raise ClassNameRuleError(
            f"class_names {name!r}: no such rule and no {path}; known: {', '.join(known)}"
        )
    try:
        data = read_yaml_mapping(path)
    except ConfigError as err:
        raise ClassNameRuleError(str(err)) from None
    base, names = data.get("base"), data.get("names") or {}
    if base not in CLASS_NAME_RULES:
        raise ClassNameRuleError(
            f"{path}: base must be one of {', '.join(CLASS_NAME_RULES)}, got {base!r}"
        )
    if not isinstance(names, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in names.items()
    ):
        raise ClassNameRuleError(f"{path}: names must map each raw name to a non-empty text")
    return {"rule": name, "base": base, "names": dict(sorted(names.items()))}


def mapping_names(config_dir: str | os.PathLike) -> list[str]:
    return sorted(p.stem for p in (Path(config_dir) / "class_names").glob("*.yaml"))


def all_rules(config_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Every rule a record can be matched under: the built-in ones and each mapping file."""
    names = [*CLASS_NAME_RULES, *mapping_names(config_dir)]
    return {name: resolve_rule(name, config_dir) for name in names}


def class_texts(rule: Mapping[str, Any], adapter: str, raw_names: Iterable[str]) -> list[str]:
    """The text each raw class name becomes under a resolved rule."""
    spell = CLASS_NAME_RULES[rule["base"]]
    spec = get_adapter(adapter)
    names = rule.get("names") or {}
    return [names.get(name) or spell(spec, name) for name in raw_names]


def texts_digest(texts: Sequence[str]) -> str:
    """A short hash of the class texts in class order: what the protocol check compares."""
    canonical = json.dumps(list(texts), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def rules_giving(
    digest: str, rules: Mapping[str, Mapping[str, Any]], adapter: str, raw_names: Sequence[str]
) -> list[str]:
    """The rules under which these raw names become the texts of `digest`."""
    return sorted(
        name for name, rule in rules.items()
        if texts_digest(class_texts(rule, adapter, raw_names)) == digest
    )  # fmt: skip
