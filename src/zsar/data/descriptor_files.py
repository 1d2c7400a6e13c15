"""Descriptor files made elsewhere: read them into zsar's format, and write ours in theirs.

Import (`zsar descriptors import`, or a `file` LLM entry with `sources:`) turns one or more
published files, each given as KIND=PATH, into a descriptors document that the `file`
backend reads. KIND is a record field: `attributes`, `descriptions` or `hierarchy`.

The format of each file is recognised from its content (`FORMATS`; force one with
KIND:FORMAT=PATH):

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

Names are matched to the label list exactly first, then on `name_key` (letters and digits
only, case-folded: case, spaces, underscores, hyphens, CamelCase and punctuation do not
count). A name whose key belongs to two classes is an error naming both; a name that
matches no class is reported and skipped (published files often cover a larger list).

Several sources: texts of the same kind are concatenated in the order given, duplicates
dropped. A hierarchy is one path, so it is not concatenated: the first source that gives a
class a path wins, and a later source with a different path for it is reported as a
conflict (in the summary and the provenance). A hierarchy value is read as its levels from
the root to the leaf: a list of levels, or strings split at "→", "->", ">" or "»".

A class that no source covers falls back to its name (`fallback: true` and a reason), as
an LLM failure does. The output is a descriptors document (schemas/descriptors.schema.json)
whose records carry `imported: true`; its provenance lists each source's path, sha256,
kind and format, and how every class was matched.

Export (`zsar descriptors export`) writes a descriptors document as CuPL JSON: per class,
the sentences the workflow embeds (the same `descriptor_texts` and templates), so CLIP_benchmark
and other tools can use them. Importing that file as one kind gives every class exactly the
sentences it had (now all of that kind); see `export_prompts`.
"""

from __future__ import annotations

import argparse
import codecs
import csv
import hashlib
import io
import json
import logging
import re
import sys
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

from zsar.core.method import DESCRIPTOR_KINDS, HIERARCHY_SEPARATOR, descriptor_texts
from zsar.data.adapters import AnnotationError, read_class_list, words_display_name
from zsar.data.descriptor_records import (
    KIND_FIELDS,
    descriptors_document,
    fallback_record,
    load_curated,
    validate_descriptors,
)
from zsar.data.io import write_json
from zsar.data.limits import FileTooLarge, check_file_size, read_bytes_limited
from zsar.data.provenance import config_hash, provenance
from zsar.pipeline.config import ConfigError, load_config
from zsar.stages.embed_text import NAME_PROMPT

logger = logging.getLogger(__name__)

# What KIND may be: the record fields, in the order the workflow lists the kinds.
IMPORT_KINDS = tuple(KIND_FIELDS[kind] for kind in DESCRIPTOR_KINDS)
# A name-keyed JSON of lists is CuPL when at least this share of its texts name their class.
CUPL_MENTION_SHARE = 0.8
# First fields of a CSV header row (compared by name_key).
CSV_HEADER_KEYS = frozenset(
    {"class", "classname", "name", "label", "labelname", "category", "action", "actionname",
     "id", "index", "classid", "classindex"}
)
_INDEX = re.compile(r"\d+")
_HIERARCHY_SPLIT = re.compile(r"\s*(?:→|->|>|»)\s*")
# How many unmatched names a report lists; the count is always complete.
NAMES_SHOWN = 10
EXIT_BAD_INPUT = 2


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


# --- Class lists ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelClasses:
    """The classes descriptors are imported for."""

    names: list[str]  # raw names, distinct: the keys of the output
    displays: list[str]  # display names, for matching and templates
    origin: str  # the label file, for messages
    # Raw names by class index, for index-keyed files; None when there is no single order
    # (a classes.parquet whose splits list different classes), with the reason.
    index_order: list[str] | None = None
    no_order_reason: str | None = None

    @property
    def display(self) -> dict[str, str]:
        return dict(zip(self.names, self.displays, strict=True))


def classes_from_rows(rows: Iterable[Mapping[str, Any]], origin: str) -> LabelClasses:
    """LabelClasses from classes.parquet rows {split, class_id, name, display_name}."""
    rows = sorted(rows, key=lambda r: (r["split"], r["class_id"]))
    displays: dict[str, str] = {}
    per_split: dict[int, list[str]] = {}
    for row in rows:
        displays.setdefault(row["name"], row["display_name"] or row["name"])
        per_split.setdefault(row["split"], []).append(row["name"])
    orders = list(per_split.values())
    same = all(order == orders[0] for order in orders)
    reason = None if same else (f"{origin} has {len(orders)} splits with different class lists "
                                "(pass the label file of the split instead)")
    return LabelClasses(list(displays), list(displays.values()), origin,
                        index_order=orders[0] if same and orders else None,
                        no_order_reason=reason)


def classes_from_list(names: Sequence[str], origin: str) -> LabelClasses:
    distinct = list(dict.fromkeys(names))
    return LabelClasses(distinct, [words_display_name(n) for n in distinct], origin,
                        index_order=list(names))


def read_label_classes(path: str | Path) -> LabelClasses:
    """A label list in any style `read_class_list` reads, or a workflow classes.parquet."""
    path = Path(path)
    if path.is_dir():
        raise DescriptorFileError(f"{path}: is a folder, expected a label file")
    if not path.is_file():
        raise DescriptorFileError(f"{path}: no such file")
    if path.suffix == ".parquet":
        try:
            check_file_size(path, "label")
        except FileTooLarge as err:
            raise DescriptorFileError(str(err)) from None
        try:
            table = pq.read_table(path)
        except Exception as err:  # noqa: BLE001 - any unreadable Parquet is the same user error
            raise DescriptorFileError(f"{path}: not a Parquet file ({err})") from None
        missing = {"split", "class_id", "name", "display_name"} - set(table.column_names)
        if missing:
            raise DescriptorFileError(f"{path}: not a classes.parquet; missing {sorted(missing)}")
        if table.num_rows == 0:
            raise DescriptorFileError(f"{path}: no classes")
        return classes_from_rows(table.to_pylist(), str(path))
    try:
        return classes_from_list(read_class_list(path), str(path))
    except AnnotationError as err:
        raise DescriptorFileError(str(err)) from None


# --- Matching (pure) --------------------------------------------------------------------------


def name_key(name: str) -> str:
    """A class name's letters and digits, case-folded and without accents.

    "Hand Stand Pushups", "handstand_pushups" and "HandstandPushups" share one key.
    """
    folded = unicodedata.normalize("NFKD", name).casefold()
    return "".join(char for char in folded if char.isalnum())


@dataclass
class SourceMatch:
    texts: dict[str, list[str]]  # raw class name -> texts, in file order
    how: dict[str, list[dict[str, str]]]  # raw class name -> [{name, how}] per entry
    unmatched: list[str]  # names in the file that match no class


class NameIndex:
    """Finds a class by a name spelled differently from the label list."""

    def __init__(self, classes: LabelClasses):
        self.classes = classes
        self.exact = set(classes.names)
        self.by_key: dict[str, list[str]] = {}
        for raw, display in zip(classes.names, classes.displays, strict=True):
            for key in dict.fromkeys((name_key(raw), name_key(display))):
                owners = self.by_key.setdefault(key, [])
                if key and raw not in owners:
                    owners.append(raw)

    def find(self, name: str, where: str) -> tuple[str, str] | None:
        """(raw class name, "exact" | "normalised"), or None; two classes are an error."""
        if name in self.exact:
            return name, "exact"
        owners = self.by_key.get(name_key(name), [])
        if len(owners) > 1:
            shown = " and ".join(repr(o) for o in owners[:5])
            raise DescriptorFileError(
                f"{where}: {name!r} matches {len(owners)} classes of {self.classes.origin}: "
                f"{shown}; spell it exactly as one of them"
            )
        return (owners[0], "normalised") if owners else None


def _add(match: SourceMatch, raw: str, entry: Entry, how: str) -> None:
    match.texts.setdefault(raw, []).extend(entry.texts)
    hows = match.how.setdefault(raw, [])
    if {"name": entry.key, "how": how} not in hows:  # a CSV has a row per text
        hows.append({"name": entry.key, "how": how})


def match_by_index(parsed: ParsedSource, classes: LabelClasses, where: str) -> SourceMatch:
    order = classes.index_order
    if order is None:
        raise DescriptorFileError(
            f"{where}: is keyed by class index, but {classes.no_order_reason or 'no class order'}"
        )
    indices = sorted({int(e.key) for e in parsed.entries})
    if indices != list(range(len(order))):
        raise DescriptorFileError(
            f"{where}: keyed by class index with {len(indices)} classes "
            f"(indices {indices[0]}..{indices[-1]}), but {classes.origin} has {len(order)} "
            f"classes (indices 0..{len(order) - 1}); is it for another class list?"
        )
    match = SourceMatch({}, {}, [])
    for entry in parsed.entries:
        _add(match, order[int(entry.key)], entry, "index")
    return match


def match_by_name(parsed: ParsedSource, classes: LabelClasses, where: str) -> SourceMatch:
    index = NameIndex(classes)
    match = SourceMatch({}, {}, [])
    for entry in parsed.entries:
        found = index.find(entry.key, f"{where}: {entry.where}")
        if found is None:
            match.unmatched.append(entry.key)
        else:
            _add(match, found[0], entry, found[1])
    match.unmatched = list(dict.fromkeys(match.unmatched))
    return match


def match_source(parsed: ParsedSource, classes: LabelClasses, where: str) -> SourceMatch:
    matcher = match_by_index if parsed.spec.by_index else match_by_name
    return matcher(parsed, classes, where)


# --- Merging several sources (pure) ---------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One KIND=PATH source, with an optional forced format."""

    kind: str
    path: str
    format: str | None = None

    @classmethod
    def parse(cls, spec: str) -> Source:
        """KIND=PATH or KIND:FORMAT=PATH."""
        head, sep, path = spec.partition("=")
        kind, _, fmt = head.partition(":")
        if not sep or not path:
            raise DescriptorFileError(
                f"{spec}: expected KIND=PATH (KIND: {', '.join(IMPORT_KINDS)})")
        return cls(kind.strip(), path, fmt.strip() or None).checked(spec)

    @classmethod
    def from_entry(cls, item: Any) -> Source:
        """A registry `sources:` item: {kind, path[, format]} or a "KIND=PATH" string."""
        if isinstance(item, str):
            return cls.parse(item)
        if not isinstance(item, Mapping) or "kind" not in item or "path" not in item:
            raise DescriptorFileError(f"{item!r}: a source needs `kind` and `path`")
        return cls(str(item["kind"]), str(item["path"]), item.get("format")).checked(str(item))

    def checked(self, spec: str) -> Source:
        if self.kind not in IMPORT_KINDS:
            raise DescriptorFileError(
                f"{spec}: unknown kind {self.kind!r}; use one of {', '.join(IMPORT_KINDS)}")
        if self.format is not None and self.format not in FORMATS:
            raise DescriptorFileError(
                f"{spec}: unknown format {self.format!r}; known: {', '.join(FORMATS)}")
        return self


@dataclass
class MatchedSource:
    source: Source
    format: str
    sha256: str
    entries: int
    match: SourceMatch

    @property
    def sentences(self) -> bool:
        return FORMATS[self.format].sentences


def check_kinds(sources: Sequence[MatchedSource]) -> None:
    """A kind's texts are either all for the template or all complete prompts (CuPL)."""
    for kind in IMPORT_KINDS:
        of_kind = [s for s in sources if s.source.kind == kind]
        if len({s.sentences for s in of_kind}) > 1:
            prompts = next(s for s in of_kind if s.sentences)
            texts = next(s for s in of_kind if not s.sentences)
            raise DescriptorFileError(
                f"{prompts.source.path}: holds complete prompts ({prompts.format}), but "
                f"{texts.source.path} holds {kind} for the template ({texts.format}); import "
                f"them as different kinds, or force one format with {kind}:FORMAT=PATH"
            )
        if kind == "hierarchy" and any(s.sentences for s in of_kind):
            bad = next(s for s in of_kind if s.sentences)
            raise DescriptorFileError(
                f"{bad.source.path}: a {bad.format} file holds prompts, not hierarchy levels; "
                "import it as attributes or descriptions"
            )


def hierarchy_levels(texts: Iterable[str]) -> list[str]:
    """Levels root -> leaf: each text split at →, ->, > or », empty and repeated levels dropped."""
    levels = (clean_text(level) for text in texts for level in _HIERARCHY_SPLIT.split(text))
    return list(dict.fromkeys(level for level in levels if level))


@dataclass
class MergeReport:
    matched: list[str] = field(default_factory=list)  # classes named by some source
    conflicts: dict[str, list[str]] = field(default_factory=dict)  # class -> ignored paths


def _fallback(reason: str) -> dict[str, Any]:
    return {**fallback_record(reason), "imported": True, "verbatim": []}


def merge_class(raw: str, sources: Sequence[MatchedSource],
                report: MergeReport) -> dict[str, Any]:
    """One class's record from every source that names it, in source order."""
    fields: dict[str, list[str]] = {kind: [] for kind in IMPORT_KINDS}
    verbatim: set[str] = set()
    named = [s for s in sources if raw in s.match.texts]
    for source in named:
        texts, kind = source.match.texts[raw], source.source.kind
        if kind == "hierarchy":
            levels = hierarchy_levels(texts)
            if levels and not fields[kind]:
                fields[kind] = levels
            elif levels and levels != fields[kind]:
                report.conflicts.setdefault(raw, []).append(HIERARCHY_SEPARATOR.join(levels))
            continue
        fields[kind] = list(dict.fromkeys([*fields[kind], *texts]))
        if source.sentences and texts:
            verbatim.add(kind)
    paths = ", ".join(dict.fromkeys(s.source.path for s in sources))
    if not named:
        return _fallback(f"no source names class '{raw}' ({paths})")
    report.matched.append(raw)
    if not any(fields.values()):
        return _fallback(f"the sources name class '{raw}' but give it no text ({paths})")
    return {**fields, "fallback": False, "reason": None, "imported": True,
            "verbatim": sorted(verbatim)}


def merge_sources(classes: LabelClasses, sources: Sequence[MatchedSource]
                  ) -> tuple[dict[str, dict[str, Any]], MergeReport]:
    check_kinds(sources)
    report = MergeReport()
    records = {raw: merge_class(raw, sources, report) for raw in classes.names}
    return records, report


# --- Import: files in, a descriptors document out --------------------------------------------


def read_source(source: Source, classes: LabelClasses) -> MatchedSource:
    """Read, recognise and match one source file (the I/O edge of one source)."""
    path = Path(source.path)
    try:
        data = read_bytes_limited(path, "descriptor")
    except FileTooLarge as err:
        raise DescriptorFileError(str(err)) from None
    except OSError as err:
        raise DescriptorFileError(f"{path}: cannot read ({err.strerror or err})") from None
    parsed = parse_source_text(decode_text(data, str(path)), str(path), source.format,
                               prompts_allowed=source.kind != "hierarchy")
    match = match_source(parsed, classes, str(path))
    return MatchedSource(source, parsed.format, hashlib.sha256(data).hexdigest(),
                         len(parsed.entries), match)


def import_version(sources: Sequence[MatchedSource]) -> str:
    """Names the edition of the imported texts: the same files give the same version, whatever
    label file they were matched against (so both import routes score alike)."""
    return "import-" + config_hash(
        [{"kind": s.source.kind, "format": s.format, "sha256": s.sha256} for s in sources])


def source_record(matched: MatchedSource) -> dict[str, Any]:
    """What the provenance says about one source."""
    match = matched.match
    return {
        "kind": matched.source.kind,
        "path": matched.source.path,
        "sha256": matched.sha256,
        "format": matched.format,
        "entries": matched.entries,
        "classes_matched": len(match.texts),
        "unmatched": len(match.unmatched),
        "unmatched_names": match.unmatched[:NAMES_SHOWN],
    }


@dataclass
class ImportResult:
    records: dict[str, dict[str, Any]]
    sources: list[MatchedSource]
    report: MergeReport
    version: str

    @property
    def fallbacks(self) -> int:
        return sum(1 for r in self.records.values() if r["fallback"])

    def summary_line(self) -> str:
        return (f"classes={len(self.records)} matched={len(self.report.matched)} "
                f"fallbacks={self.fallbacks}")

    def source_lines(self) -> list[str]:
        return [f"{s.source.kind}={s.source.path} format={s.format} entries={s.entries} "
                f"classes={len(s.match.texts)} unmatched={len(s.match.unmatched)}"
                for s in self.sources]

    def warnings(self) -> list[str]:
        lines = []
        for s in self.sources:
            if s.match.unmatched:
                shown = ", ".join(repr(n) for n in s.match.unmatched[:NAMES_SHOWN])
                lines.append(f"{s.source.path}: {len(s.match.unmatched)} name(s) match no class "
                             f"and are skipped, e.g. {shown}")
            spelt = [[h["name"] for h in hows] for hows in s.match.how.values()
                     if len({h["name"] for h in hows}) > 1]
            if spelt:
                lines.append(f"{s.source.path}: {len(spelt)} class(es) are named in more than "
                             f"one spelling, e.g. {', '.join(map(repr, spelt[0]))}; their texts "
                             "are concatenated")
        for raw, paths in self.report.conflicts.items():
            lines.append(f"class {raw!r}: a later hierarchy source gives another path "
                         f"({'; '.join(paths)}); the first source's path is kept")
        return lines

    def provenance_extra(self) -> dict[str, Any]:
        matches = {raw: [{"source": i, **how} for i, s in enumerate(self.sources)
                         for how in s.match.how.get(raw, [])]
                   for raw in sorted(self.records)}
        return {
            "stage": "descriptors-import",
            "sources": [source_record(s) for s in self.sources],
            "import": {"classes": len(self.records), "matched": len(self.report.matched),
                       "fallbacks": self.fallbacks},
            "matches": matches,
            "hierarchy_conflicts": dict(sorted(self.report.conflicts.items())),
        }


def import_sources(classes: LabelClasses, sources: Sequence[Source]) -> ImportResult:
    """Records for every class of `classes` from the sources, in order."""
    if not sources:
        raise DescriptorFileError("no sources: give at least one KIND=PATH")
    matched = [read_source(source, classes) for source in sources]
    records, report = merge_sources(classes, matched)
    return ImportResult(records, matched, report, import_version(matched))


def import_descriptor_sources(
    labels: str | Path, sources: Sequence[Source | Mapping[str, Any] | str],
    out_path: str | Path,
) -> ImportResult:
    """Import `sources` for the classes of `labels` and write the descriptors document.

    The workflow's entry for a rule (or a script) that imports outside the descriptors stage;
    the `file` backend with `sources:` does the same inside it (`describe_from_sources`).
    """
    labels = Path(labels)
    classes = read_label_classes(labels)
    labels_sha256 = hashlib.sha256(labels.read_bytes()).hexdigest()
    result = import_sources(classes, [s if isinstance(s, Source) else Source.from_entry(s)
                                      for s in sources])
    block = provenance(
        {"sources": [{"kind": s.source.kind, "format": s.format, "sha256": s.sha256}
                     for s in result.sources],
         "labels": labels_sha256},
        prompt_version=result.version,
        extra={**result.provenance_extra(),
               "labels": {"path": str(labels), "sha256": labels_sha256,
                          "classes": len(classes.names)}},
    )
    document = descriptors_document("import", result.version, result.records, block)
    validate_descriptors(document)
    write_json(document, out_path)
    return result


def describe_from_sources(entry: Mapping[str, Any], classes: Sequence[Any], settings):
    """The `file` backend for an entry with `sources:` instead of `path:`.

    Same records and prompt version as importing the sources by hand and pointing `path:` at
    the result, so the two give the same scores.
    """
    classes_path = getattr(settings, "classes_path", None)
    if classes_path:
        labels = read_label_classes(classes_path)
    else:
        labels = LabelClasses([c.raw for c in classes], [c.display for c in classes],
                              "the dataset's class list", None, "the class order is unknown")
    sources = [Source.from_entry(item) for item in entry.get("sources") or []]
    result = import_sources(labels, sources)
    for line in result.source_lines():
        logger.info("%s", line)
    for line in result.warnings():
        logger.warning("%s", line)
    logger.info("%s", result.summary_line())
    records = {c.raw: result.records[c.raw] for c in classes}
    generation = {"sources": [source_record(s) for s in result.sources]}
    return records, f"curated:{result.version}", generation


# --- Export: our descriptors in other tools' formats -----------------------------------------


def class_sentences(record: Mapping[str, Any], display: str,
                    templates: Mapping[str, str]) -> list[str]:
    """Every sentence the workflow embeds for one class besides its name, kinds in order."""
    texts = descriptor_texts(record, display, templates)
    return list(dict.fromkeys(t for kind in DESCRIPTOR_KINDS for t in texts[kind]))


def export_prompts(
    records: Mapping[str, Mapping[str, Any]], displays: Mapping[str, str],
    templates: Mapping[str, str], keys: str = "raw", fallback_name: bool = False,
) -> tuple[dict[str, list[str]], list[str]]:
    """(class -> sentences, fallback classes) for a CuPL file.

    A fallback class has no sentences; it is left out (the second value lists it), or with
    `fallback_name` given its name prompt, which is all the workflow scores it by.
    Round trip: importing the result as one kind gives each class the same sentences in the
    same order; what is lost is which kind each sentence was.
    """
    prompts: dict[str, list[str]] = {}
    fallbacks: list[str] = []
    owner: dict[str, str] = {}
    for raw in sorted(records):
        display = displays[raw]
        sentences = class_sentences(records[raw], display, templates)
        if not sentences:
            fallbacks.append(raw)
            if not fallback_name:
                continue
            sentences = [NAME_PROMPT.format(display)]
        key = raw if keys == "raw" else display
        if key in owner:
            raise DescriptorFileError(
                f"classes {owner[key]!r} and {raw!r} share the {keys} name {key!r}")
        owner[key] = raw
        prompts[key] = sentences
    return prompts, fallbacks


# format -> (description, writer(prompts, path))
EXPORT_FORMATS: dict[str, tuple[str, Callable[[dict[str, list[str]], Path], None]]] = {
    "cupl": ("CuPL JSON: class name -> list of complete prompts (CLIP_benchmark "
             "--custom_template_file)", lambda prompts, path: write_json(prompts, path)),
}


def read_templates(config: str | Path | None, templates: str | Path | None) -> dict[str, str]:
    """The descriptor templates: a templates file, else the config's descriptors.templates
    (read as the workflow reads it, so a config that leaves them out gets the defaults)."""
    if templates is None:
        path = Path(config or "config/config.yaml")
        try:
            found = load_config([path] if path.is_file() or config else [], complete=False)
        except ConfigError as err:
            raise DescriptorFileError(str(err)) from None
        return dict(found["descriptors"]["templates"])
    path = Path(templates)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise DescriptorFileError(f"{path}: cannot read ({err.strerror or err}); "
                                  "pass --config or --templates") from None
    except yaml.YAMLError as err:
        raise DescriptorFileError(f"{path}: not YAML ({err})") from None
    if not isinstance(data, dict):
        raise DescriptorFileError(f"{path}: expected a mapping of kind -> template")
    missing = [kind for kind in DESCRIPTOR_KINDS if not isinstance(data.get(kind), str)]
    if missing:
        raise DescriptorFileError(f"{path}: no template for {', '.join(missing)}")
    return {kind: data[kind] for kind in DESCRIPTOR_KINDS}


def export_classes(descriptors_path: Path, classes: str | Path | None) -> LabelClasses:
    """The class list to take display names from: --classes, else the dataset's classes.parquet
    (results/DATASET/classes.parquet for results/DATASET/descriptors/LLM.json)."""
    if classes is not None:
        return read_label_classes(classes)
    beside = descriptors_path.resolve().parent.parent / "classes.parquet"
    if beside.is_file():
        return read_label_classes(beside)
    raise DescriptorFileError(
        f"{descriptors_path}: no classes.parquet at {beside}; pass --classes with the "
        "dataset's classes.parquet or label file (templates need the display names)")


def read_descriptor_records(path: Path) -> dict[str, dict[str, Any]]:
    try:
        _, records = load_curated(path)
    except OSError as err:
        raise DescriptorFileError(f"{path}: cannot read ({err.strerror or err})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise DescriptorFileError(f"{path}: not a descriptors file ({err})") from None
    except ValueError as err:  # load_curated's message names the file
        raise DescriptorFileError(str(err)) from None
    bad = next((name for name, r in records.items() if not isinstance(r, dict)), None)
    if bad is not None:
        raise DescriptorFileError(f"{path}: the entry of class {bad!r} is not a mapping")
    return records


def export_descriptors(
    descriptors_path: str | Path, out_path: str | Path, fmt: str = "cupl",
    templates: Mapping[str, str] | None = None, classes: str | Path | None = None,
    keys: str = "raw", fallback_name: bool = False,
) -> tuple[int, int, list[str]]:
    """Write a descriptors document in `fmt`; (classes, sentences, fallback classes)."""
    descriptors_path = Path(descriptors_path)
    records = read_descriptor_records(descriptors_path)
    label_classes = export_classes(descriptors_path, classes)
    displays = label_classes.display
    unknown = sorted(set(records) - set(displays))
    if unknown:
        raise DescriptorFileError(
            f"{descriptors_path}: {len(unknown)} class(es) are not in {label_classes.origin}, "
            f"e.g. {', '.join(repr(n) for n in unknown[:5])}; pass the matching --classes")
    prompts, fallbacks = export_prompts(records, displays, templates or {}, keys, fallback_name)
    EXPORT_FORMATS[fmt][1](prompts, Path(out_path))
    return len(records), sum(len(v) for v in prompts.values()), fallbacks


# --- `zsar descriptors` ------------------------------------------------------------------------


def _add_import(sub) -> None:
    parser = sub.add_parser(
        "import", help="turn published descriptor files into a descriptors file",
        description=(
            "Read descriptor files published elsewhere and write a descriptors file that a "
            "`backend: file` LLM entry reads (path: OUT). Each source is KIND=PATH or "
            "KIND:FORMAT=PATH with KIND one of " + ", ".join(IMPORT_KINDS) + "; a kind may "
            "be given several times (texts concatenated in order, duplicates dropped). "
            "Formats, recognised from the content: "
            + "; ".join(f"{name}: {spec.description}" for name, spec in FORMATS.items())
            + ". The last line printed is classes=N matched=M fallbacks=F."),
    )
    parser.add_argument("--labels", required=True, metavar="LABELS",
                        help="the class list: `id,name` CSV, classInd.txt, one name per line, "
                             "SSv2 labels.json, or a workflow classes.parquet")
    parser.add_argument("--out", required=True, metavar="OUT.json", help="descriptors to write")
    parser.add_argument("sources", nargs="+", metavar="KIND=PATH", help="descriptor files")


def _add_export(sub) -> None:
    parser = sub.add_parser(
        "export", help="write our descriptors in another tool's format",
        description=(
            "Write a descriptors file (results/DATASET/descriptors/LLM.json, or an imported "
            "one) as complete sentences per class, through the workflow's templates. Classes "
            "that fell back to their name are left out unless --fallback name."),
    )
    parser.add_argument("descriptors", metavar="DESCRIPTORS.json")
    parser.add_argument("--format", dest="fmt", default="cupl", choices=sorted(EXPORT_FORMATS),
                        help="; ".join(f"{k}: {v[0]}" for k, v in EXPORT_FORMATS.items()))
    parser.add_argument("--out", required=True, metavar="FILE", help="file to write")
    parser.add_argument("--config", default="config/config.yaml",
                        help="workflow config whose descriptors.templates are used")
    parser.add_argument("--templates", metavar="FILE",
                        help="a YAML/JSON mapping attribute/description/hierarchy -> template "
                             "(instead of --config)")
    parser.add_argument("--classes", metavar="FILE",
                        help="classes.parquet or label file for display names (default: "
                             "classes.parquet of the descriptors' dataset folder)")
    parser.add_argument("--names", dest="keys", choices=("raw", "display"), default="raw",
                        help="key the output by raw class names (default) or display names")
    parser.add_argument("--fallback", choices=("omit", "name"), default="omit",
                        help="classes without descriptors: leave out (default), or give "
                             "their name prompt")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Import descriptor files published elsewhere, or export ours in "
                          "their formats.")
    sub = parser.add_subparsers(dest="action", required=True)
    _add_import(sub)
    _add_export(sub)


def run_import(args: argparse.Namespace) -> int:
    sources = [Source.parse(spec) for spec in args.sources]
    result = import_descriptor_sources(args.labels, sources, args.out)
    for line in result.warnings():
        print(f"warning: {line}", file=sys.stderr)
    for line in result.source_lines():
        print(line)
    print(result.summary_line())
    return 0


def run_export(args: argparse.Namespace) -> int:
    templates = read_templates(args.config, args.templates)
    classes, sentences, fallbacks = export_descriptors(
        args.descriptors, args.out, args.fmt, templates, args.classes, args.keys,
        args.fallback == "name")
    if fallbacks:
        what = "given their name prompt" if args.fallback == "name" else "left out"
        shown = ", ".join(repr(n) for n in fallbacks[:NAMES_SHOWN])
        print(f"warning: {len(fallbacks)} class(es) have no descriptors and are {what}: "
              f"{shown}", file=sys.stderr)
    print(f"classes={classes} sentences={sentences} fallbacks={len(fallbacks)}")
    return 0


ACTIONS: dict[str, Callable[[argparse.Namespace], int]] = {
    "import": run_import,
    "export": run_export,
}


def run(args: argparse.Namespace) -> int:
    try:
        return ACTIONS[args.action](args)
    except (DescriptorFileError, OSError) as err:  # OSError: the output cannot be written
        print(f"zsar descriptors {args.action}: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
