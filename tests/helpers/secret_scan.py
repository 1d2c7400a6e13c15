"""Look for a secret in a run's files the way a person who shares them would expose it.

Raw bytes are not enough: Parquet compresses its columns, JSON may escape characters, and
a self-contained HTML report (Snakemake's report.html) carries its pages and files as
base64 data URIs. So each file is read as text, Parquet as its decoded columns and its
metadata, JSON as its parsed values, and every base64 data URI inside any of them is
decoded and read the same way. A leak is any `PIECE`-character run of the secret.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq

PIECE = 8
DATA_URI = re.compile(r"data:[^,\"'\s]{0,300}?;base64,([A-Za-z0-9+/=]+)")
# Data URIs inside data URIs (a page embedding an image) are followed this deep.
MAX_DEPTH = 3


def pieces(secret: str, width: int = PIECE) -> set[str]:
    width = min(width, len(secret))
    return {secret[i : i + width] for i in range(len(secret) - width + 1)}


def _parquet_texts(path: Path) -> Iterator[tuple[str, str]]:
    meta = pq.read_metadata(path)
    for key, value in (meta.metadata or {}).items():
        yield "metadata", key.decode("utf-8", "replace") + "=" + value.decode("utf-8", "replace")
    table = pq.read_table(path)
    for name in table.column_names:
        values = table.column(name).to_pylist()
        yield f"column {name}", json.dumps(values, default=repr, ensure_ascii=False)


def _json_text(text: str) -> str | None:
    try:
        return json.dumps(json.loads(text), ensure_ascii=False)
    except ValueError:
        return None


def _embedded(text: str, where: str, depth: int) -> Iterator[tuple[str, str]]:
    """Every base64 data URI in `text`, decoded; JSON may write `/` as `\\/`."""
    if depth > MAX_DEPTH:
        return
    for n, match in enumerate(DATA_URI.finditer(text.replace("\\/", "/"))):
        encoded = match.group(1)
        try:
            data = base64.b64decode(encoded + "=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError):
            continue
        inner = f"{where} > data URI {n}"
        decoded = data.decode("utf-8", "replace")
        yield inner, decoded
        yield from _embedded(decoded, inner, depth + 1)


def readable_texts(path: Path) -> Iterator[tuple[str, str]]:
    """(where, text) for everything in the file a reader could see."""
    raw = path.read_bytes()
    text = raw.decode("utf-8", "replace")
    yield "bytes", text
    if path.suffix == ".parquet":
        yield from _parquet_texts(path)
    parsed = _json_text(text) if path.suffix == ".json" else None
    if parsed is not None:
        yield "parsed JSON", parsed
    yield from _embedded(text, "bytes", 1)


def leaks(root: Path, secret: str) -> list[str]:
    """`file (where): piece` for every piece of the secret found under root."""
    needles = pieces(secret)
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        for where, text in readable_texts(path):
            hit = next((piece for piece in needles if piece in text), None)
            if hit:
                found.append(f"{path.relative_to(root)} ({where}): {hit}")
    return found


def text_leaks(text: str, secret: str) -> list[str]:
    return sorted(piece for piece in pieces(secret) if piece in text)
