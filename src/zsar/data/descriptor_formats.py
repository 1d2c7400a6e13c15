"""Descriptor files made elsewhere, as text: their encoding, and their formats, recognised
from the content (`FORMATS`; a source forces one with KIND:FORMAT=PATH):

- `json-index`  a JSON object whose keys are all class indices: {"0": [...], "1": "..."};
                index i is line i of the label list, and the keys must be exactly 0..K-1;
- `cupl`        a JSON object of class name -> a list of complete prompts (CuPL, and what
                CLIP_benchmark reads with --custom_template_file);
- `json-names`  any other JSON object keyed by class name, a string or a list of strings each;
- `csv-index`   rows `index,text` (every first field an integer);
- `csv-names`   rows `class,text`, with or without a header, quoted or not; a class may have
                many rows. Unquoted commas after the first belong to the text.

CuPL and `json-names` are both name -> list of strings. They differ in what the strings are:
CuPL prompts are whole sentences that already name the class ("a video of a person doing
handstand pushups, ..."), so the workflow must embed them as they are; the workflow's
templates ("{class}: {text}") would name the class twice. The rule: a name-keyed JSON whose
values are all lists, and in which at least `CUPL_MENTION_SHARE` of the texts contain every
word of their own key, is read as CuPL (so is any such file of sentences that name their
class: what matters is that the template would repeat the name). Its texts are stored as
ordinary descriptor texts of KIND and the record lists KIND under `verbatim`, which tells
`descriptor_texts` to skip the template. All other formats hold texts for the template, as
an LLM's answer does. A hierarchy source is never read as CuPL unless forced (and then
refused): its one-level paths would look like prompts naming their class.

Pure: text in, entries out. Matching the entries to a class list, and merging several
sources, is zsar.data.descriptor_sources.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from zsar.data.adapters import words_display_name

# A name-keyed JSON of lists is CuPL when at least this share of its texts name their class.
CUPL_MENTION_SHARE = 0.8
# First fields of a CSV header row (compared by name_key).
CSV_HEADER_KEYS = frozenset(
    {"class", "classname", "name", "label", "labelname", "category", "action", "actionname",
     "id", "index", "classid", "classindex"}
)
_INDEX = re.compile(r"\d+")


class DescriptorFileError(ValueError):
    """A descriptor or label file that cannot be used; the message starts with the file."""


# --- Text from bytes (pure) -----------------------------------------------------------------


def decode_text(data: bytes, where: str) -> str:
    """The text of a file: UTF-8 (a BOM dropped) or UTF-16 with a BOM; else a named error."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise DescriptorFileError(f"{where}: not a text file (bad UTF-16)") from None
    elif b"\x00" in data:
        raise DescriptorFileError(f"{where}: not a text file (it contains NUL bytes)")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise DescriptorFileError(
                f"{where}: not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8"
            ) from None
    if not text.strip():
        raise DescriptorFileError(f"{where}: empty file")
    return text


def clean_text(text: str) -> str:
    # One line per text: these strings go straight to a text encoder.
    return " ".join(text.split())


# --- Formats (pure: text in, entries out) ---------------------------------------------------


@dataclass(frozen=True)
class Entry:
    key: str  # a class name, or a class index as written
    texts: tuple[str, ...]
    where: str  # "line 4" or "key 'X'", for messages


@dataclass(frozen=True)
class SourceFormat:
    family: str  # "json" or "csv": how the text is parsed
    by_index: bool  # keys are indices into the label list
    sentences: bool  # texts are complete prompts, embedded without a template
    description: str


FORMATS: dict[str, SourceFormat] = {
    "json-index": SourceFormat("json", True, False,
                               'JSON object keyed by class index: {"0": ["...", ...], ...}'),
    "cupl": SourceFormat("json", False, True,
                         "CuPL JSON: class name -> list of complete prompts naming the class"),
    "json-names": SourceFormat("json", False, False,
                               "JSON object keyed by class name; a string or list of strings"),
    "csv-index": SourceFormat("csv", True, False, "two-column CSV `index,text`"),
    "csv-names": SourceFormat("csv", False, False,
                              "two-column CSV `class,text`, header optional, a row per text"),
}


@dataclass(frozen=True)
class ParsedSource:
    format: str
    entries: list[Entry]

    @property
    def spec(self) -> SourceFormat:
        return FORMATS[self.format]


def looks_like_json(text: str) -> bool:
    return text.lstrip()[:1] in ("{", "[")


def _object_without_duplicates(where: str):
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, value in pairs:
            if key in obj:
                raise DescriptorFileError(f"{where}: key {key!r} appears twice")
            obj[key] = value
        return obj

    return hook


def load_json_object(text: str, where: str) -> dict[str, Any]:
    try:
        obj = json.loads(text, object_pairs_hook=_object_without_duplicates(where))
    except json.JSONDecodeError as err:
        raise DescriptorFileError(
            f"{where}: invalid JSON: {err.msg} at line {err.lineno} column {err.colno}"
        ) from None
    if not isinstance(obj, dict):
        raise DescriptorFileError(
            f"{where}: expected a JSON object keyed by class index or name, "
            f"got a {type(obj).__name__}"
        )
    if not obj:
        raise DescriptorFileError(f"{where}: the JSON object has no entries")
    return obj


def _json_texts(key: str, value: Any, where: str) -> tuple[str, ...]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list):
        raise DescriptorFileError(
            f"{where}: the value of {key!r} is a {type(value).__name__}; "
            "expected a string or a list of strings"
        )
    for position, item in enumerate(values):
        if not isinstance(item, str):
            raise DescriptorFileError(
                f"{where}: {key!r} item {position} is not a string ({type(item).__name__})"
            )
    return tuple(t for t in (clean_text(v) for v in values) if t)


def json_entries(obj: Mapping[str, Any], where: str) -> list[Entry]:
    return [Entry(key.strip(), _json_texts(key, value, where), f"key {key!r}")
            for key, value in obj.items()]


def csv_entries(text: str, where: str) -> list[Entry]:
    """Rows `key,text`; a first row whose first field is a header word is skipped."""
    entries: list[Entry] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for fields in reader:
            line = reader.line_num
            while len(fields) > 2 and not fields[-1].strip():
                fields = fields[:-1]  # trailing empty columns, as spreadsheets write them
            if not any(f.strip() for f in fields):
                continue
            if len(fields) < 2:
                raise DescriptorFileError(
                    f"{where}:{line}: neither JSON nor a two-column CSV `class,text`: "
                    f"got {fields[0][:80]!r}"
                )
            key, value = fields[0].strip(), ",".join(fields[1:])
            if not entries and name_key(key) in CSV_HEADER_KEYS:
                continue
            entries.append(Entry(key, tuple(t for t in [clean_text(value)] if t), f"line {line}"))
    except csv.Error as err:
        raise DescriptorFileError(f"{where}:{reader.line_num}: not a CSV file ({err})") from None
    if not entries:
        raise DescriptorFileError(f"{where}: no rows")
    return entries


def name_key(name: str) -> str:
    """A class name's letters and digits, case-folded and without accents.

    "Hand Stand Pushups", "handstand_pushups" and "HandstandPushups" share one key.
    """
    folded = unicodedata.normalize("NFKD", name).casefold()
    return "".join(char for char in folded if char.isalnum())


def names_class(name: str, text: str) -> bool:
    """Whether `text` contains every word of the class `name` (a CuPL prompt does)."""
    words = [name_key(w) for w in words_display_name(name).split()]
    words = [w for w in words if len(w) > 2] or [name_key(name)]
    compact = name_key(text)
    return all(w in compact for w in words)


def detect_json_format(obj: Mapping[str, Any], entries: Sequence[Entry],
                       prompts_allowed: bool = True) -> str:
    """json-index, cupl or json-names; never cupl where prompts make no sense (a hierarchy,
    whose one-level paths would otherwise read as prompts naming their class)."""
    if all(_INDEX.fullmatch(key.strip()) for key in obj):
        return "json-index"
    if prompts_allowed and all(isinstance(value, list) for value in obj.values()):
        pairs = [(e.key, t) for e in entries for t in e.texts]
        mentions = sum(names_class(key, text) for key, text in pairs)
        if pairs and mentions >= CUPL_MENTION_SHARE * len(pairs):
            return "cupl"
    return "json-names"


def detect_csv_format(entries: Sequence[Entry]) -> str:
    return "csv-index" if all(_INDEX.fullmatch(e.key) for e in entries) else "csv-names"


def parse_source_text(text: str, where: str, fmt: str | None = None,
                      prompts_allowed: bool = True) -> ParsedSource:
    """Entries of a descriptor file, in file order, in its recognised (or forced) format."""
    if fmt is not None and fmt not in FORMATS:
        raise DescriptorFileError(f"{where}: unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    family = "json" if looks_like_json(text) else "csv"
    if fmt is not None and FORMATS[fmt].family != family:
        raise DescriptorFileError(f"{where}: format {fmt} needs {FORMATS[fmt].family.upper()}, "
                                  f"but the file is {family.upper()}")
    if family == "json":
        obj = load_json_object(text, where)
        entries = json_entries(obj, where)
        fmt = fmt or detect_json_format(obj, entries, prompts_allowed)
    else:
        entries = csv_entries(text, where)
        fmt = fmt or detect_csv_format(entries)
    if FORMATS[fmt].by_index:
        bad = next((e for e in entries if not _INDEX.fullmatch(e.key)), None)
        if bad is not None:
            raise DescriptorFileError(f"{where}: {bad.where}: {bad.key!r} is not a class index")
    return ParsedSource(fmt, entries)
