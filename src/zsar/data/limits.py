"""Limits on what zsar reads from files it did not write (SECURITY.md).

A file that is read whole (a descriptor, caption or label file, a JSON annotation list)
is refused before it is read when it is larger than its kind's limit, so one huge or
hostile file fails at once with a message instead of exhausting a job's memory. Each
limit is in MB (10^6 bytes) and can be raised with its environment variable, which
Snakemake's jobs inherit.

YAML from such files is read with a limit on what its aliases expand to: an alias bomb
(each level naming the one below ten times) is a few lines that expand to billions of
values for anything that walks the result, so such a file is refused at the line where
the expansion passes the limit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MB = 10**6


@dataclass(frozen=True)
class Limit:
    what: str  # for messages, plural
    variable: str  # the environment variable that overrides the default
    default_mb: float


# kind -> its limit. Defaults sit far above the largest real file of each kind (CuPL or
# LLM descriptors for a 700-class benchmark: a few MB; captions of Kinetics-700's training
# videos: about 100 MB; a class list: kilobytes; SSv2's validation list: 5 MB).
LIMITS: dict[str, Limit] = {
    "descriptor": Limit("descriptor files", "ZSAR_MAX_DESCRIPTOR_FILE_MB", 32),
    "caption": Limit("caption files", "ZSAR_MAX_CAPTION_FILE_MB", 512),
    "label": Limit("label files", "ZSAR_MAX_LABEL_FILE_MB", 16),
    "annotation": Limit("JSON annotation files", "ZSAR_MAX_ANNOTATION_FILE_MB", 256),
}


class FileTooLarge(ValueError):
    """A file over its kind's size limit; the message names the file, the limit and how to
    raise it."""


def limit_bytes(kind: str) -> int:
    limit = LIMITS[kind]
    raw = os.environ.get(limit.variable, "").strip()
    if not raw:
        return int(limit.default_mb * MB)
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"{limit.variable}={raw!r}: expected a size in MB above 0")
    return int(value * MB)


def _too_large(path: Path, size: int | None, kind: str) -> FileTooLarge:
    limit = LIMITS[kind]
    allowed = limit_bytes(kind) / MB
    found = f"{size / MB:.1f} MB" if size is not None else "more than that"
    return FileTooLarge(
        f"{path}: {found}, over the limit of {allowed:g} MB for {limit.what}; "
        f"set {limit.variable} to raise it"
    )


def check_file_size(path: str | os.PathLike, kind: str) -> None:
    """FileTooLarge when the file is larger than `kind`'s limit (missing files pass: their
    reader says so in its own words)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        return
    if path.is_file() and size > limit_bytes(kind):
        raise _too_large(path, size, kind)


def read_bytes_limited(path: str | os.PathLike, kind: str) -> bytes:
    """The file's bytes, at most `kind`'s limit of them; the size is checked before the read,
    and the read itself stops at the limit (a file that grows, or a device, cannot pass)."""
    path = Path(path)
    check_file_size(path, kind)
    limit = limit_bytes(kind)
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise _too_large(path, None, kind)
    return data


def read_text_limited(path: str | os.PathLike, kind: str) -> str:
    """`read_bytes_limited` as UTF-8 text (a BOM dropped, universal newlines)."""
    text = read_bytes_limited(path, kind).decode("utf-8-sig")
    return text.replace("\r\n", "\n").replace("\r", "\n")


# Values of a YAML file counted with every alias spelled out: far above a real descriptor
# file (a 700-class file holds about 10^4), far below what hangs whatever walks the result.
MAX_YAML_VALUES = 10**6


def _too_many(problem: str, node: yaml.Node) -> yaml.YAMLError:
    return yaml.composer.ComposerError(None, None, problem, node.start_mark)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def expanded_values(root: yaml.Node, limit: int) -> int:
    """How many values the document holds with aliases spelled out; a YAMLError past `limit`
    or for an alias inside its own anchor. Each shared node is counted once and reused, so
    this takes time in the nodes as written, not as expanded."""
    sizes: dict[int, int | None] = {}  # None: being counted (met again: a cycle)

    def count(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            if sizes[key] is None:
                raise _too_many("an alias inside its own anchor (a cycle)", node)
            return sizes[key]
        sizes[key] = None
        total = 1
        for child in _children(node):
            total += count(child)
            if total > limit:
                raise _too_many(
                    f"the values expand to more than {limit} through aliases (an alias bomb?)",
                    node,
                )
        sizes[key] = total
        return total

    return count(root)


def load_yaml_limited(text: str, max_values: int = MAX_YAML_VALUES) -> Any:
    """yaml.safe_load, refusing a document that aliases expand past `max_values` values (a
    yaml.YAMLError naming the line). Aliases themselves are fine: PyYAML writes them for
    shared values, so curated files saved with yaml.safe_dump hold them."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        expanded_values(node, max_values)
        return loader.construct_document(node)
    finally:
        loader.dispose()
