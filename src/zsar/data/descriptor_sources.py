"""Descriptor files made elsewhere, imported into zsar's format.

Import (`zsar descriptors import`, or a `file` LLM entry with `sources:`) turns one or more
published files, each given as KIND=PATH, into a descriptors document that the `file`
backend reads. KIND is a record field: `attributes`, `descriptions` or `hierarchy`. Each
file's format is recognised from its content (zsar.data.descriptor_formats).

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
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zsar.core.method import DESCRIPTOR_KINDS, HIERARCHY_SEPARATOR
from zsar.data.descriptor_classes import LabelClasses, read_label_classes
from zsar.data.descriptor_formats import (
    FORMATS,
    DescriptorFileError,
    Entry,
    ParsedSource,
    clean_text,
    decode_text,
    name_key,
    parse_source_text,
)
from zsar.data.descriptor_records import (
    KIND_FIELDS,
    descriptors_document,
    fallback_record,
    validate_descriptors,
)
from zsar.data.io import write_json
from zsar.data.limits import FileTooLarge, read_bytes_limited
from zsar.data.provenance import config_hash, provenance

logger = logging.getLogger(__name__)

# What KIND may be: the record fields, in the order the workflow lists the kinds.
IMPORT_KINDS = tuple(KIND_FIELDS[kind] for kind in DESCRIPTOR_KINDS)
_HIERARCHY_SPLIT = re.compile(r"\s*(?:→|->|>|»)\s*")
# How many unmatched names a report lists; the count is always complete.
NAMES_SHOWN = 10


# --- Matching (pure) --------------------------------------------------------------------------


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

