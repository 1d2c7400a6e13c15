"""Names the planner writes into paths, each defined once as a `NameFormat`: the same
definition formats a name from its settings, reads the settings back from a name, and gives
the regular expression the workflow's wildcard matches it with (the Snakefile's
`wildcard_constraints`, zsar.pipeline.plan.wildcard_patterns). So a name and its pattern cannot
drift apart, as `tsn\\d+_s\\d+_q\\d+` once did from the `_c{clips}` a run with clips wrote.

A format is a sequence of parts: literal text, a setting (an integer, a float as `:g`
writes it, or one of a set of names), a part written only when its settings ask for it
(`Optional`), and a choice of parts by a setting's value (`Branches`). Patterns use no
`{m,}` counts and no capturing groups: Snakemake reads braces as wildcards and wraps each
constraint in a group of its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from zsar.core.method import VARIANTS

Values = Mapping[str, Any]


def one_of(names: Iterable[str]) -> str:
    """The pattern that matches exactly these names (none: a pattern no path segment
    matches, so a wildcard with nothing planned matches nothing)."""
    return "|".join(re.escape(str(n)) for n in names) or "^$"


class Part(Protocol):
    def format(self, values: Values) -> str: ...

    def regex(self, groups: _Groups) -> str:
        """This part's pattern; with `groups`, each setting in a named group it records."""
        ...


@dataclass
class _Groups:
    """Named groups of the parsing regex: name -> (setting, its type), and the branch
    markers (name -> (setting, value)). None where the pattern is for the workflow."""

    settings: dict[str, tuple[str, Callable[[str], Any]]] = field(default_factory=dict)
    branches: dict[str, tuple[str, Any]] = field(default_factory=dict)

    def name(self) -> str:
        return f"g{len(self.settings) + len(self.branches)}"


def _group(groups: _Groups | None, body: str, record: Callable[[_Groups, str], None]) -> str:
    if groups is None:
        return body
    name = groups.name()
    record(groups, name)
    return f"(?P<{name}>{body})"


@dataclass(frozen=True)
class Text:
    text: str

    def format(self, values: Values) -> str:
        return self.text

    def regex(self, groups: _Groups | None) -> str:
        return re.escape(self.text)


@dataclass(frozen=True)
class Int:
    """A non-negative integer setting, zero-padded to `width` digits (more where needed)."""

    key: str
    width: int = 1

    def format(self, values: Values) -> str:
        value = int(values[self.key])
        if value < 0:
            raise ValueError(f"{self.key}: a name holds no negative number ({value})")
        return f"{value:0{self.width}d}"

    def regex(self, groups: _Groups | None) -> str:
        body = r"\d+" if self.width == 1 else rf"\d{{{self.width}}}\d*"
        return _group(groups, body, lambda g, n: g.settings.__setitem__(n, (self.key, int)))


@dataclass(frozen=True)
class Float:
    """A non-negative number as Python's `:g` writes it (0.3, 1, 1e-05), or in full where
    `:g`'s six digits would round it (0.1234567), so two numbers never share a name."""

    key: str

    def format(self, values: Values) -> str:
        value = float(values[self.key])
        if not value >= 0 or value == float("inf"):
            raise ValueError(f"{self.key}: a name holds a finite number >= 0, not {value}")
        short = f"{value:g}"
        return short if float(short) == value else repr(value)

    def regex(self, groups: _Groups | None) -> str:
        body = r"\d+(?:\.\d+)?(?:e[+-]\d+)?"
        return _group(groups, body, lambda g, n: g.settings.__setitem__(n, (self.key, float)))


@dataclass(frozen=True)
class Choice:
    """A setting that is one of a set of names, written as it is."""

    key: str
    options: tuple[str, ...]

    def format(self, values: Values) -> str:
        value = str(values[self.key])
        if value not in self.options:
            raise ValueError(f"{self.key}: '{value}' is not one of {', '.join(self.options)}")
        return value

    def regex(self, groups: _Groups | None) -> str:
        body = f"(?:{one_of(self.options)})"
        return _group(groups, body, lambda g, n: g.settings.__setitem__(n, (self.key, str)))


@dataclass(frozen=True)
class Optional:
    """Parts written only where `written(values)`; a name without them reads `absent`."""

    parts: tuple[Part, ...]
    written: Callable[[Values], bool]
    absent: Mapping[str, Any]

    def format(self, values: Values) -> str:
        return "".join(p.format(values) for p in self.parts) if self.written(values) else ""

    def regex(self, groups: _Groups | None) -> str:
        return "(?:" + "".join(p.regex(groups) for p in self.parts) + ")?"


@dataclass(frozen=True)
class Branches:
    """Parts chosen by the value of setting `key` (its absence reads as `default`)."""

    key: str
    options: Mapping[str, tuple[Part, ...]]
    default: str

    def format(self, values: Values) -> str:
        value = values.get(self.key, self.default)
        if value not in self.options:
            raise ValueError(f"{self.key}: '{value}' is not one of {', '.join(self.options)}")
        return "".join(p.format(values) for p in self.options[value])

    def regex(self, groups: _Groups | None) -> str:
        bodies = []
        for value, parts in self.options.items():
            body = "".join(p.regex(groups) for p in parts)
            bodies.append(_group(groups, body,
                                 lambda g, n, v=value: g.branches.__setitem__(n, (self.key, v))))
        return "(?:" + "|".join(bodies) + ")"


@dataclass(frozen=True)
class NameFormat:
    """A name made of parts: `format` writes it, `parse` reads its settings back, and
    `pattern` matches every name `format` can write (a Snakemake wildcard constraint)."""

    parts: tuple[Part, ...]

    def format(self, values: Values) -> str:
        return "".join(p.format(values) for p in self.parts)

    @property
    def pattern(self) -> str:
        return "".join(p.regex(None) for p in self.parts)

    def parse(self, name: str) -> dict[str, Any]:
        """The settings a name was written from (an optional part left out reads as its
        `absent` values); ValueError if `format` could not have written it."""
        groups = _Groups()
        match = re.fullmatch("".join(p.regex(groups) for p in self.parts), name)
        if match is None:
            raise ValueError(f"'{name}' is no name of the form {self.pattern}")
        values: dict[str, Any] = {}
        for part in _optional_parts(self.parts):
            values.update(part.absent)
        for group, (key, value) in groups.branches.items():
            if match.group(group) is not None:
                values[key] = value
        for group, (key, convert) in groups.settings.items():
            if match.group(group) is not None:
                values[key] = convert(match.group(group))
        return values


def _optional_parts(parts: Sequence[Part]) -> list[Optional]:
    found = []
    for part in parts:
        if isinstance(part, Optional):
            found += [part, *_optional_parts(part.parts)]
        elif isinstance(part, Branches):
            for branch in part.options.values():
                found += _optional_parts(branch)
    return found


# The names the planner writes into paths, each one definition that formats it, reads it
# back and gives the Snakefile's wildcard its pattern (zsar.pipeline.stage_table's
# WILDCARDS); tests/test_plan_names.py round-trips each.
SHARD_NAME = NameFormat((Int("index", width=3), Text("-of-"), Int("total", width=3)))
# Each frame-sampling rule's part of the frames folder name.
SAMPLING_RULE_NAMES: dict[str, tuple[Part, ...]] = {
    "tsn": (Text("tsn"), Int("num_frames")),
    "stride": (Text("stride"), Int("num_frames"), Text("x"), Int("stride")),
}
# One clip keeps the folder it had before there were clips: nothing is decoded again.
SAMPLING_NAME = NameFormat((
    Branches("sampling", SAMPLING_RULE_NAMES, default="tsn"),
    Text("_s"), Int("short_side"), Text("_q"), Int("jpeg_quality"),
    Optional((Text("_c"), Int("clips")), written=lambda v: v["clips"] > 1, absent={"clips": 1}),
))  # fmt: skip
# A scored run: its variant, and the caption weight λ where a sweep scores it more than once.
RUN_NAME = NameFormat((
    Choice("variant", tuple(VARIANTS)),
    Optional((Text("_lambda"), Float("lambda")), written=lambda v: v.get("lambda") is not None,
             absent={}),
))  # fmt: skip


def shard_id(index: int, total: int) -> str:
    """Shard names carry the total, so a change of N never reuses shards of another N."""
    return SHARD_NAME.format({"index": index, "total": total})


def parse_shard_id(text: str) -> tuple[int, int]:
    values = SHARD_NAME.parse(text)
    return values["index"], values["total"]
