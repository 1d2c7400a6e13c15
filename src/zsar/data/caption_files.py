"""Captions made elsewhere, read from a file: CSV, JSON(L) or Parquet (video_id -> caption),
and matched to a shard's videos by id, exactly, by file stem or as Kinetics clips.

The I/O and the pure matching of the captioners' `file` backend (zsar.models.captioners).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow.parquet as pq

from zsar.data.adapters import kinetics_clip_key
from zsar.data.limits import check_file_size
from zsar.models.batching import Outcome

# How ids of an imported file are matched to video_ids: exactly, or by file stem, for caption
# files keyed by e.g. "abc_000001_000011" where the manifest says "val/abc_000001_000011.mp4",
# or as Kinetics clips, whose published caption files also drop the zero padding ("abc_1_11").
# The key is applied to the file's ids and to the video ids alike.
ID_KEYS: dict[str, Callable[[str], str]] = {
    "video_id": lambda vid: vid,
    "stem": lambda vid: PurePosixPath(vid).stem,
    "kinetics": kinetics_clip_key,
}
# A caption file that matches less than this share of a shard's videos is the wrong file.
DEFAULT_MIN_MATCH = 0.5


def _read_csv(path: Path, id_col: str, caption_col: str) -> list[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:  # -sig: a BOM is dropped
        reader = csv.DictReader(handle)
        missing = {id_col, caption_col} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}; "
                             f"found {reader.fieldnames}")
        return [(row[id_col], row[caption_col]) for row in reader]


def _read_json(path: Path, id_col: str, caption_col: str) -> list[tuple[str, str]]:
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix == ".jsonl":
        data: Any = [json.loads(line) for line in text.splitlines() if line.strip()]
    else:
        data = json.loads(text)
    if isinstance(data, dict):  # {video_id: caption}
        return [(str(k), v) for k, v in data.items()]
    if isinstance(data, list):  # [{video_id: ..., caption: ...}, ...]
        try:
            return [(str(r[id_col]), r[caption_col]) for r in data]
        except (KeyError, TypeError) as err:
            raise ValueError(f"{path}: records need '{id_col}' and '{caption_col}'") from err
    raise ValueError(f"{path}: expected an object or a list of records")


def _read_parquet(path: Path, id_col: str, caption_col: str) -> list[tuple[str, str]]:
    table = pq.read_table(path, columns=[id_col, caption_col])
    return list(zip(table.column(id_col).to_pylist(), table.column(caption_col).to_pylist(),
                    strict=True))


CAPTION_FILE_READERS: dict[str, Callable[[Path, str, str], list[tuple[str, str]]]] = {
    ".csv": _read_csv,
    ".json": _read_json,
    ".jsonl": _read_json,
    ".parquet": _read_parquet,
}


def read_caption_file(path: str | Path, id_column: str = "video_id",
                      caption_column: str = "caption") -> dict[str, str]:
    """video_id -> caption from a CSV, JSON(L) or Parquet file; a repeated id is an error."""
    path = Path(path)
    reader = CAPTION_FILE_READERS.get(path.suffix.lower())
    if reader is None:
        known = ", ".join(sorted(CAPTION_FILE_READERS))
        raise ValueError(f"{path}: unsupported caption file type; use one of {known}")
    check_file_size(path, "caption")  # a FileTooLarge is a ValueError naming the file
    mapping: dict[str, str] = {}
    for vid, caption in reader(path, id_column, caption_column):
        if vid in mapping:
            raise ValueError(f"{path}: video id '{vid}' appears more than once")
        mapping[vid] = "" if caption is None else str(caption)
    return mapping


def key_captions(captions: Mapping[str, str], key: Callable[[str], str],
                 source: str | Path) -> dict[str, str]:
    """The file's captions under the match key; two ids with one key are an error."""
    keyed: dict[str, str] = {}
    first: dict[str, str] = {}
    for vid, caption in captions.items():
        k = key(vid)
        if k in keyed:
            raise ValueError(f"{source}: ids '{first[k]}' and '{vid}' are the same video "
                             f"('{k}') under this match rule")
        keyed[k], first[k] = caption, vid
    return keyed


def check_match_share(matched: int, videos: int, min_match: float, source: str | Path,
                      match: str) -> None:
    """Stop when a caption file matches too few videos: it is almost certainly the wrong file."""
    if videos and matched < min_match * videos:
        raise ValueError(
            f"caption file {source} matches {matched} of {videos} videos "
            f"({matched / videos:.0%}), less than min_match {min_match:.0%}: it is almost "
            f"certainly the wrong file for this dataset (ids matched by '{match}'; try "
            f"match: kinetics or stem, or lower min_match)"
        )


@dataclass
class ImportReport:
    matched: int
    missing: list[str]  # videos of the shard with no caption in the file
    unused: list[str]  # ids in the file that matched no video of the shard


def match_imported_captions(
    video_ids: Sequence[str], captions: Mapping[str, str], key: Callable[[str], str]
) -> tuple[list[Outcome], ImportReport]:
    """Pure core of the file backend: one outcome per video, and the counts to report."""
    outcomes: list[Outcome] = []
    missing, used = [], set()
    for vid in video_ids:
        k = key(vid)
        if k in captions:
            outcomes.append((captions[k], None))
            used.add(k)
        else:
            outcomes.append((None, "no caption for this video in the caption file"))
            missing.append(vid)
    unused = sorted(set(captions) - used)
    return outcomes, ImportReport(matched=len(used), missing=missing, unused=unused)

