"""Dataset adapters: a benchmark's annotation files -> the videos and classes of one split.

An adapter is data: the formats it reads (each a cheap `sniff` and a full `parse`) and how
its class names become display words. `ADAPTERS` maps a dataset name to its adapter, so a
new benchmark is one entry here, never a branch in the stages that use it.

Formats, by adapter (detected from the file's content when `fmt` is not given; the first
format whose sniff accepts the file wins, so more specific formats are listed first):

    ucf101    official  testlistNN.txt `Class/v_Class_gXX_cYY.avi` (trainlistNN.txt adds a
                        1-based label); the class comes from the folder, its id from the class
                        list (classInd.txt `1 ApplyEyeMakeup`, one name per line, or `id,name`)
              list      `path label` (0-based) + class list (ViFi-CLIP)
    hmdb51    official  the folder of `<class>_test_split<k>.txt` files, lines `<video> <flag>`;
                        flag 2 = test. video_id is `<class>/<video>` (the unrarred layout)
              list      `path label` + class list
    kinetics  deepmind  CSV `label,youtube_id,time_start,time_end,split[,is_cc]`; video_id is
                        `<youtube_id>_<start:06d>_<end:06d>.mp4`, with no split subfolder
              list      `path label` + class list
    k600_zs   list      the 160-class ZS split lists + their ZS_split{k}_K600.csv
    ssv2      official  the validation JSON list of {id, label, template, placeholders} +
                        labels.json {template: "id"}; video_id is `<id>.webm`
              list      `path label` + class list
    folder    folder    a folder per class under the annotations folder; every video file in it
    demo      list      the demo's `relative/path.mp4 class_id` + labels.csv `id,name`

Class lists (`labels`) are read by `read_class_list` in any of: `id,name` CSV (with or
without the header), classInd `1 Name` (1-based), one name per line, or SSv2's labels.json.

Every text file is read as UTF-8 (a BOM is dropped) with universal newlines (CRLF, LF or
CR), and blank lines are skipped but still counted, so the line numbers in an
`AnnotationError` are the ones an editor shows.

Rows are split at whitespace, never matched with a regular expression, so reading is linear
in the file whatever a line holds; a line over `MAX_LINE_CHARS` is an error naming it, and
a JSON file over its size limit (zsar.data.limits) is refused before it is read.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zsar.data.limits import FileTooLarge, check_file_size, read_text_limited

VIDEO_EXTENSIONS = frozenset(
    {".avi", ".mp4", ".webm", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp"}
)
# How many non-blank lines a sniff reads: enough to see a header and a few records, cheap
# enough to run for every split at Snakefile parse time.
SNIFF_LINES = 20
# The longest real annotation line is a few hundred characters; this is far above it and far
# below a line that would hold a whole file in memory.
MAX_LINE_CHARS = 64 * 1024
# How much of a file is read to see whether it starts like JSON.
PEEK_CHARS = 4096


class AnnotationError(ValueError):
    """An annotation or class-list file that cannot be read; names the file and line."""


@dataclass(frozen=True)
class VideoEntry:
    video_id: str  # path relative to the video root
    label: str  # raw class name
    class_id: int  # 0-based index into the split's class list
    line: int | None = field(default=None, compare=False)  # where it was read, for errors


@dataclass(frozen=True)
class SplitAnnotations:
    classes: list[str]  # raw class names; the index is the class_id
    videos: list[VideoEntry]  # in file order
    format: str  # the format that was read


@dataclass(frozen=True)
class Format:
    """One file format of an adapter.

    sniff(path) returns None when the file looks like this format, else what was expected
    and where it was not found. parse(path, labels, split) reads it whole.
    """

    description: str
    sniff: Callable[[Path], str | None]
    parse: Callable[[Path, Path | None, int], SplitAnnotations]
    needs_labels: bool = True


@dataclass(frozen=True)
class Adapter:
    name: str
    formats: dict[str, Format]  # detection order
    display_name: Callable[[str], str]
    # Where the videos are when no video root is given; only the folder adapter knows.
    default_video_root: Callable[[Path], str | None] = field(default=lambda path: None)
    # Its annotation files and videos are written by a workflow rule (the demo's), so they
    # may not exist yet when a run is planned.
    generated: bool = False


# ---------------------------------------------------------------------------------------
# Reading text: BOM, CRLF/LF, blank lines, line numbers


def _open_text(path: Path):
    # utf-8-sig drops a BOM; newline=None turns CRLF and CR into LF.
    return open(path, encoding="utf-8-sig", newline=None)


def _bounded_lines(handle, path: Path) -> Iterator[tuple[int, str]]:
    """(line number, raw line) of a text handle; a line over MAX_LINE_CHARS is an error, found
    without ever holding more of it than the limit."""
    number = 0
    while raw := handle.readline(MAX_LINE_CHARS + 1):
        number += 1
        if len(raw.rstrip("\n")) > MAX_LINE_CHARS:
            raise _error(path, number, f"line longer than {MAX_LINE_CHARS} characters; "
                                       "not an annotation or class-list file?")
        yield number, raw


def _reading_errors(path: Path, err: OSError | UnicodeDecodeError) -> AnnotationError:
    if isinstance(err, UnicodeDecodeError):
        return AnnotationError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})")
    if isinstance(err, IsADirectoryError):
        return AnnotationError(f"{path}: is a folder, expected a file")
    if isinstance(err, FileNotFoundError):
        return AnnotationError(f"{path}: no such file")
    return AnnotationError(f"{path}: cannot read ({err.strerror or err})")


def numbered_lines(path: Path, limit: int | None = None) -> Iterator[tuple[int, str]]:
    """(line number, stripped text) of the non-blank lines, at most `limit` of them."""
    path = Path(path)
    try:
        with _open_text(path) as handle:
            count = 0
            for number, raw in _bounded_lines(handle, path):
                text = raw.strip()
                if not text:
                    continue
                yield number, text
                count += 1
                if limit is not None and count >= limit:
                    return
    except (OSError, UnicodeDecodeError) as err:
        raise _reading_errors(path, err) from None


def first_char(path: Path) -> str:
    """The first character of the file's text that is not whitespace ("" if none). Reads at
    most PEEK_CHARS characters, so a JSON file on one long line is recognised without
    reading it as lines."""
    path = Path(path)
    try:
        with _open_text(path) as handle:
            return handle.read(PEEK_CHARS).lstrip()[:1]
    except (OSError, UnicodeDecodeError) as err:
        raise _reading_errors(path, err) from None


def head_lines(path: Path) -> list[tuple[int, str]]:
    return list(numbered_lines(path, limit=SNIFF_LINES))


def _error(path: Path, number: int | None, message: str) -> AnnotationError:
    where = f"{path}:{number}" if number is not None else str(path)
    return AnnotationError(f"{where}: {message}")


def _first_mismatch(
    lines: list[tuple[int, str]], fits: Callable[[str], object], expected: str
) -> str | None:
    """Sniff helper: None if every line fits, else the first line that does not."""
    if not lines:
        return f"empty file, expected {expected}"
    for number, text in lines:
        if not fits(text):
            return f"line {number}: expected {expected}, got {text[:80]!r}"
    return None


# --- Rows, split at whitespace (linear in the line, unlike a pattern that can backtrack) ---


def is_integer(token: str) -> bool:
    """An optional minus, then decimal digits."""
    digits = token[1:] if token.startswith("-") else token
    return digits.isdecimal()


def path_label_row(text: str) -> tuple[str, str] | None:
    """`path label`: (path, last token) where the last whitespace splits them, else None.
    The path may hold whitespace itself; the label is an integer."""
    parts = text.rsplit(None, 1)
    return (parts[0], parts[1]) if len(parts) == 2 and is_integer(parts[1]) else None


def hmdb_row(text: str) -> tuple[str, str] | None:
    """`<video> <flag>` with flag 0, 1 or 2."""
    row = path_label_row(text)
    return row if row and row[1] in ("0", "1", "2") else None


def classind_row(text: str) -> tuple[str, str] | None:
    """classInd `1 ClassName`: (id, name)."""
    parts = text.split(None, 1)
    return (parts[0], parts[1]) if len(parts) == 2 and parts[0].isdecimal() else None


def csv_header(text: str) -> bool:
    return [p.strip().lower() for p in text.split(",")] == ["id", "name"]


def csv_row(text: str) -> bool:
    """`id,name`: an integer, then a comma."""
    head, comma, _ = text.partition(",")
    return bool(comma) and head.rstrip().isdecimal()


def ucf_row(text: str) -> tuple[str, str | None] | None:
    """`Class/v_Class_gXX_cYY.avi [label]`: (class folder, 1-based label or None)."""
    parts = text.split()
    if not 1 <= len(parts) <= 2 or (len(parts) == 2 and not parts[1].isdecimal()):
        return None
    folder, slash, file = parts[0].partition("/")
    name = file.lower()
    ok = (folder and slash and "/" not in file and name.startswith("v_")
          and name.endswith(".avi") and len(name) > len("v_.avi"))
    return (folder, parts[1] if len(parts) == 2 else None) if ok else None


# ---------------------------------------------------------------------------------------
# Class display names


def strip_quotes(name: str) -> str:
    return name.strip().strip("\"'").strip()


_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_BRACKETED = re.compile(r"\[([^\]]*)\]")


def words_display_name(name: str) -> str:
    """CamelCase and snake_case -> lowercase words.

    "ApplyEyeMakeup" -> "apply eye makeup", "YoYo" -> "yo yo", "brush_hair" -> "brush hair".
    """
    text = strip_quotes(name).replace("_", " ")
    text = _CAMEL_BOUNDARY.sub(" ", text)
    return " ".join(text.split()).lower()


def spaced_name(name: str) -> str:
    """CamelCase and snake_case -> words, capitals kept: "ApplyEyeMakeup" -> "Apply Eye
    Makeup", "brush_hair" -> "brush hair" (Open-VCLIP's zs_label_db spelling)."""
    text = _CAMEL_BOUNDARY.sub(" ", strip_quotes(name).replace("_", " "))
    return " ".join(text.split())


def template_display_name(name: str) -> str:
    """SSv2 templates stay sentences: "Pushing [something] left" -> "pushing something left"."""
    text = _BRACKETED.sub(r"\1", strip_quotes(name))
    return " ".join(text.split()).lower()


def kinetics_display_name(name: str) -> str:
    # Kinetics names are already lowercase words, with meaningful capitals ("American").
    return " ".join(strip_quotes(name).split())


# ---------------------------------------------------------------------------------------
# Class lists


def _classes_from_ids(
    path: Path, rows: list[tuple[int | None, int, str]], first_id: int
) -> list[str]:
    """rows of (line, id, name) -> names in id order; ids must be first_id..first_id+K-1."""
    by_id: dict[int, tuple[int | None, str]] = {}
    for number, class_id, name in rows:
        if class_id in by_id:
            raise _error(path, number, f"class id {class_id} appears twice")
        by_id[class_id] = (number, name)
    expected = list(range(first_id, first_id + len(by_id)))
    if sorted(by_id) != expected:
        gaps = sorted(set(expected) - set(by_id))[:5]
        last = first_id + len(by_id) - 1
        raise _error(path, None, f"class ids must run {first_id}..{last}; missing {gaps}")
    return [by_id[i][1] for i in expected]


def _read_csv_class_list(path: Path) -> list[str]:
    lines = list(numbered_lines(path))
    if lines and csv_header(lines[0][1]):
        lines = lines[1:]
    rows = []
    for number, text in lines:
        fields = next(csv.reader([text]))
        if len(fields) < 2 or not fields[0].strip().isdigit():
            raise _error(path, number, f"expected `id,name`, got {text[:80]!r}")
        rows.append((number, int(fields[0]), strip_quotes(",".join(fields[1:]))))
    return _classes_from_ids(path, rows, first_id=0)


def _read_classind(path: Path) -> list[str]:
    rows = []
    for number, text in numbered_lines(path):
        row = classind_row(text)
        if not row:
            raise _error(path, number, f"expected classInd `1 ClassName`, got {text[:80]!r}")
        rows.append((number, int(row[0]), strip_quotes(row[1])))
    return _classes_from_ids(path, rows, first_id=1)


def _read_name_per_line(path: Path) -> list[str]:
    return [strip_quotes(text) for _, text in numbered_lines(path)]


def _load_json(path: Path, kind: str) -> Any:
    """Parse a JSON file (`kind` names its size limit); a syntax error names the file and
    its line."""
    try:
        return json.loads(read_text_limited(path, kind))
    except json.JSONDecodeError as err:
        raise _error(path, err.lineno, f"invalid JSON: {err.msg}") from None
    except RecursionError:
        raise _error(path, None, "invalid JSON: nested too deeply") from None
    except FileTooLarge as err:
        raise AnnotationError(str(err)) from None
    except (OSError, UnicodeDecodeError) as err:
        raise _reading_errors(path, err) from None


def _read_json_class_list(path: Path) -> list[str]:
    """SSv2's labels.json ({template: "id"}) or Open-VCLIP's index2cls ({"id": name}: every
    key an integer, every value a name)."""
    data = _load_json(path, "label")
    if not isinstance(data, dict):
        raise _error(path, 1, "expected a JSON object {name: \"id\"} or {\"id\": name}")
    by_index = bool(data) and all(
        str(k).isdecimal() and isinstance(v, str) and not v.isdecimal() for k, v in data.items()
    )
    rows = []
    for key, value in data.items():
        name, class_id = (value, key) if by_index else (key, value)
        if not str(class_id).strip().isdigit():
            raise _error(path, None, f"class {name!r}: id {class_id!r} is not an integer")
        rows.append((None, int(class_id), name))
    return _classes_from_ids(path, rows, first_id=0)


# Line-based class-list styles in detection order: (what a first line looks like, reader).
# A JSON class list (SSv2's labels.json) is recognised before any line is read.
CLASS_LIST_STYLES: dict[str, tuple[Callable[[str], bool], Callable[[Path], list[str]]]] = {
    "csv": (lambda first: csv_header(first) or csv_row(first), _read_csv_class_list),
    "classind": (lambda first: classind_row(first) is not None, _read_classind),
    "names": (lambda first: True, _read_name_per_line),
}
CLASS_LIST_READERS = {"json": _read_json_class_list,
                      **{style: read for style, (_, read) in CLASS_LIST_STYLES.items()}}
# Each line-based style's check of a row (`_check_class_list`).
CLASS_LIST_ROWS: dict[str, Callable[[str], object]] = {"csv": csv_row, "classind": classind_row}


def class_list_style(path: Path) -> str:
    path = Path(path)
    check_size(path, "label")
    if first_char(path) == "{":
        return "json"
    lines = head_lines(path)
    if not lines:
        raise _error(path, None, "empty class list")
    first = lines[0][1]
    return next(style for style, (looks_like, _) in CLASS_LIST_STYLES.items() if looks_like(first))


def check_size(path: Path, kind: str) -> None:
    """The size limit of `kind` (zsar.data.limits) as an AnnotationError."""
    try:
        check_file_size(path, kind)
    except FileTooLarge as err:
        raise AnnotationError(str(err)) from None


def read_class_list(path: str | Path) -> list[str]:
    """Raw class names in class-id order, from any of the class-list styles."""
    path = Path(path)
    names = CLASS_LIST_READERS[class_list_style(path)](path)
    if not names:
        raise _error(path, None, "no classes")
    return names


def _require_labels(labels: Path | None, what: str) -> Path:
    if labels is None:
        raise AnnotationError(f"{what} needs a class list (--labels / `labels:`)")
    return labels


def _class_index(classes: list[str], key: Callable[[str], str] = str) -> dict[str, int]:
    return {key(name): i for i, name in enumerate(classes)}


# ---------------------------------------------------------------------------------------
# The "path label" list (ViFi-CLIP and the demo)


def sniff_list(path: Path) -> str | None:
    return _first_mismatch(head_lines(path), path_label_row, "`relative/path label`")


def _labelled_rows(
    path: Path, labels: Path | None, row_of: Callable[[str], tuple[str, str] | None],
    shape: str, fmt: str,
) -> SplitAnnotations:
    """A list of (relative path, 0-based label) rows read by `row_of`, into a class list."""
    classes = read_class_list(_require_labels(labels, f"{path} (a `{shape}` list)"))
    videos = []
    for number, text in numbered_lines(path):
        row = row_of(text)
        if not row:
            raise _error(path, number, f"expected `{shape}`, got {text[:80]!r}")
        video_id, class_id = row[0], int(row[1])
        if not 0 <= class_id < len(classes):
            raise _error(
                path, number, f"label {class_id} is outside 0..{len(classes) - 1} of {labels}"
            )
        videos.append(VideoEntry(video_id, classes[class_id], class_id, number))
    return SplitAnnotations(classes, videos, fmt)


def parse_list(path: Path, labels: Path | None, split: int) -> SplitAnnotations:
    return _labelled_rows(path, labels, path_label_row, "relative/path label", "list")


LIST_FORMAT = Format(
    "`relative/path label` lines (0-based) + a class list", sniff_list, parse_list
)


# ---------------------------------------------------------------------------------------
# Open-VCLIP's lists (zs_label_db/*/test.csv): `relative/path,label`, labels 0-based into an
# index2cls JSON ({"0": "acting in play", ...}); wengzejia1/Open-VCLIP @ 047a817


def path_comma_label_row(text: str) -> tuple[str, str] | None:
    """`path,label`: split at the last comma (a path may hold commas)."""
    path, comma, label = (part.strip() for part in text.rpartition(","))
    return (path, label) if comma and path and is_integer(label) else None


def sniff_comma_list(path: Path) -> str | None:
    return _first_mismatch(head_lines(path), path_comma_label_row, "`relative/path,label`")


def parse_comma_list(path: Path, labels: Path | None, split: int) -> SplitAnnotations:
    return _labelled_rows(path, labels, path_comma_label_row, "relative/path,label",
                          "open_vclip")


OPEN_VCLIP_FORMAT = Format(
    "Open-VCLIP's `relative/path,label` test.csv (0-based) + its index2cls JSON",
    sniff_comma_list, parse_comma_list,
)


# ---------------------------------------------------------------------------------------
# UCF101 official: testlistNN.txt / trainlistNN.txt + classInd.txt


def sniff_ucf_official(path: Path) -> str | None:
    return _first_mismatch(head_lines(path), ucf_row, "`Class/v_Class_gXX_cYY.avi [label]`")


def parse_ucf_official(path: Path, labels: Path | None, split: int) -> SplitAnnotations:
    classes = read_class_list(_require_labels(labels, f"{path} (UCF101 official list)"))
    exact, folded = _class_index(classes), _class_index(classes, str.lower)
    videos = []
    for number, text in numbered_lines(path):
        row = ucf_row(text)
        if not row:
            raise _error(
                path, number, f"expected `Class/v_Class_gXX_cYY.avi [label]`, got {text[:80]!r}"
            )
        folder, label = row
        # Folder and file disagree in case for some classes (HandstandPushups/v_HandStand...);
        # the folder is the class, as in classInd.txt.
        class_id = exact.get(folder, folded.get(folder.lower()))
        if class_id is None:
            raise _error(path, number, f"class folder {folder!r} is not in {labels}")
        if label is not None and int(label) - 1 != class_id:
            raise _error(
                path, number,
                f"label {label} (1-based) disagrees with folder {folder!r} = {class_id + 1}",
            )
        videos.append(VideoEntry(text.split()[0], classes[class_id], class_id, number))
    return SplitAnnotations(classes, videos, "official")


# ---------------------------------------------------------------------------------------
# HMDB51 official: testTrainMulti_7030_splits/<class>_test_split<k>.txt


_HMDB_FILE = re.compile(r"(?P<cls>.+)_test_split(?P<split>\d+)\.txt")
HMDB_TEST_FLAG = 2


def _hmdb_split_files(folder: Path, split: int) -> list[tuple[str, Path]]:
    files = []
    for path in sorted(folder.iterdir()):
        match = _HMDB_FILE.fullmatch(path.name)
        if match and int(match.group("split")) == split:
            files.append((match.group("cls"), path))
    return files


def sniff_hmdb_official(path: Path) -> str | None:
    if not path.is_dir():
        return "expected the folder of `<class>_test_split<k>.txt` files"
    files = sorted(p for p in path.iterdir() if _HMDB_FILE.fullmatch(p.name))
    if not files:
        return "no `<class>_test_split<k>.txt` files in the folder"
    problem = _first_mismatch(head_lines(files[0]), hmdb_row, "`<video>.avi <flag 0|1|2>`")
    return f"{files[0].name}: {problem}" if problem else None


def parse_hmdb_official(path: Path, labels: Path | None, split: int) -> SplitAnnotations:
    files = _hmdb_split_files(path, split)
    if not files:
        raise _error(path, None, f"no `<class>_test_split{split}.txt` files")
    if labels is not None:
        classes = read_class_list(labels)
    else:
        # Named as the label files spell them ("brush hair", ViFi-CLIP's and Open-VCLIP's),
        # not as the file names do (brush_hair): one class, one text, whatever the lists.
        classes = sorted(cls.replace("_", " ") for cls, _ in files)
    # ViFi-CLIP's CSV says "brush hair" where the file names say "brush_hair".
    by_words = _class_index(classes, words_display_name)
    videos = []
    for folder, file in files:
        class_id = by_words.get(words_display_name(folder))
        if class_id is None:
            raise _error(file, None, f"class {folder!r} is not in {labels}")
        for number, text in numbered_lines(file):
            row = hmdb_row(text)
            if not row:
                raise _error(
                    file, number, f"expected `<video>.avi <flag 0|1|2>`, got {text[:80]!r}"
                )
            if int(row[1]) == HMDB_TEST_FLAG:
                videos.append(VideoEntry(f"{folder}/{row[0]}", classes[class_id], class_id))
    return SplitAnnotations(classes, videos, "official")


# ---------------------------------------------------------------------------------------
# Kinetics official: DeepMind's CSV


KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end")


def _csv_records(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    lines = numbered_lines(path)
    header_line = next(lines, None)
    if header_line is None:
        raise _error(path, None, "empty file")
    header = [h.strip() for h in next(csv.reader([header_line[1]]))]
    for number, text in lines:
        values = next(csv.reader([text]))
        if len(values) < len(header):
            expected = f"{len(header)} CSV fields ({','.join(header)})"
            raise _error(path, number, f"expected {expected}, got {text[:80]!r}")
        yield number, dict(zip(header, values, strict=False))


def sniff_kinetics_csv(path: Path) -> str | None:
    lines = head_lines(path)
    if not lines:
        return "empty file, expected a CSV header"
    number, text = lines[0]
    header = {h.strip() for h in next(csv.reader([text]))}
    if not set(KINETICS_COLUMNS) <= header:
        return f"line {number}: expected a header with {','.join(KINETICS_COLUMNS)}, got {text!r}"
    return None


def _seconds(path: Path, number: int, text: str) -> int:
    # Some releases write 14.0 for 14; anything fractional is not a clip name we can build.
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value.is_integer() or value < 0:
        raise _error(path, number, f"expected whole seconds, got {text!r}")
    return int(value)


def kinetics_clip_name(youtube_id: str, start: int, end: int) -> str:
    return f"{youtube_id}_{start:06d}_{end:06d}.mp4"


# A YouTube id may itself hold "_" and digits, so the two numbers are taken from the right.
_KINETICS_CLIP = re.compile(r"(?P<youtube_id>.+)_(?P<start>\d+)(?:\.0+)?_(?P<end>\d+)(?:\.0+)?")


def kinetics_clip_key(video_id: str) -> str:
    """One spelling of a Kinetics clip however it is written: folders, a video extension and
    zero padding dropped ("val/abc_000010_000020.mp4" and "abc_10_20" -> "abc_10_20").
    An id that is not `<youtube id>_<start>_<end>` keeps its file name without extension."""
    name = video_id.replace("\\", "/").rsplit("/", 1)[-1].strip()
    stem, dot, suffix = name.rpartition(".")
    if dot and f".{suffix.lower()}" in VIDEO_EXTENSIONS:
        name = stem
    match = _KINETICS_CLIP.fullmatch(name)
    if match is None:
        return name
    return f"{match['youtube_id']}_{int(match['start'])}_{int(match['end'])}"


def parse_kinetics_csv(path: Path, labels: Path | None, split: int) -> SplitAnnotations:
    problem = sniff_kinetics_csv(path)
    if problem:
        raise _error(path, None, problem)
    rows = []
    for number, record in _csv_records(path):
        label = strip_quotes(record["label"])
        if not label:
            raise _error(path, number, "empty label")
        start = _seconds(path, number, record["time_start"])
        end = _seconds(path, number, record["time_end"])
        rows.append((number, kinetics_clip_name(record["youtube_id"].strip(), start, end), label))
    # Without a class list the sorted names are the class order: DeepMind's files and every
    # released label map list Kinetics classes alphabetically.
    classes = read_class_list(labels) if labels is not None else sorted({r[2] for r in rows})
    index = _class_index(classes)
    videos = []
    for number, video_id, label in rows:
        if label not in index:
            raise _error(path, number, f"label {label!r} is not in {labels}")
        videos.append(VideoEntry(video_id, label, index[label], number))
    return SplitAnnotations(classes, videos, "deepmind")


# ---------------------------------------------------------------------------------------
# Something-Something v2 official: validation JSON + labels.json


def sniff_ssv2_json(path: Path) -> str | None:
    # The first character only: the list may be one long line.
    first = first_char(path)
    if first != "[":
        return f"expected a JSON list of videos, got {first!r}" if first else (
            "expected a JSON list of videos, got an empty file")
    return None


def ssv2_template_key(template: str) -> str:
    """The validation JSON's "[something]" -> labels.json's "something"."""
    return " ".join(_BRACKETED.sub(r"\1", template).split())


def parse_ssv2_json(path: Path, labels: Path | None, split: int) -> SplitAnnotations:
    classes = read_class_list(_require_labels(labels, f"{path} (SSv2 validation JSON)"))
    exact = _class_index(classes, ssv2_template_key)
    folded = _class_index(classes, lambda n: ssv2_template_key(n).lower())
    items = _load_json(path, "annotation")
    if not isinstance(items, list):
        raise _error(path, 1, "expected a JSON list of {id, label, template, placeholders}")
    videos = []
    for position, item in enumerate(items):
        where = f"item {position}"
        if not isinstance(item, dict) or "id" not in item or "template" not in item:
            raise _error(path, None, f"{where}: expected an object with `id` and `template`")
        key = ssv2_template_key(str(item["template"]))
        class_id = exact.get(key, folded.get(key.lower()))
        if class_id is None:
            raise _error(path, None, f"{where} (id {item['id']}): template {key!r} not in {labels}")
        videos.append(VideoEntry(f"{item['id']}.webm", classes[class_id], class_id))
    return SplitAnnotations(classes, videos, "official")


# ---------------------------------------------------------------------------------------
# A folder per class


def sniff_folder(path: Path) -> str | None:
    if not path.is_dir():
        return "expected a folder with one subfolder per class"
    if not any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir()):
        return "the folder has no class subfolders"
    return None


def _videos_under(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS and not p.name.startswith(".")
    )


def parse_folder(path: Path, labels: Path | None, split: int) -> SplitAnnotations:
    problem = sniff_folder(path)
    if problem:
        raise _error(path, None, problem)
    folders = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    classes = read_class_list(labels) if labels is not None else folders
    by_words = _class_index(classes, words_display_name)
    videos = []
    for folder in folders:
        class_id = by_words.get(words_display_name(folder))
        if class_id is None:
            raise _error(path / folder, None, f"class folder {folder!r} is not in {labels}")
        for video in _videos_under(path / folder):
            video_id = video.relative_to(path).as_posix()
            videos.append(VideoEntry(video_id, classes[class_id], class_id))
    return SplitAnnotations(classes, videos, "folder")


# ---------------------------------------------------------------------------------------
# The registry


ADAPTERS: dict[str, Adapter] = {
    "ucf101": Adapter(
        "ucf101",
        {
            "official": Format(
                "testlistNN/trainlistNN.txt `Class/v_Class_gXX_cYY.avi [label]` + classInd.txt",
                sniff_ucf_official, parse_ucf_official,
            ),
            "list": LIST_FORMAT,
        },
        words_display_name,
    ),
    "hmdb51": Adapter(
        "hmdb51",
        {
            "official": Format(
                "folder of `<class>_test_split<k>.txt` (flag 2 = test)",
                sniff_hmdb_official, parse_hmdb_official, needs_labels=False,
            ),
            "list": LIST_FORMAT,
        },
        words_display_name,
    ),
    "kinetics": Adapter(
        "kinetics",
        {
            "deepmind": Format(
                "DeepMind CSV `label,youtube_id,time_start,time_end,split[,is_cc]`",
                sniff_kinetics_csv, parse_kinetics_csv, needs_labels=False,
            ),
            "list": LIST_FORMAT,
        },
        kinetics_display_name,
    ),
    "k600_zs": Adapter("k600_zs", {"list": LIST_FORMAT}, kinetics_display_name),
    # Open-VCLIP's K600 zero-shot lists: the K600 validation videos of each split's 160
    # classes (FROSTER's frozen-CLIP numbers), not ViFi-CLIP's (k600_zs).
    "k600_open_vclip": Adapter(
        "k600_open_vclip", {"open_vclip": OPEN_VCLIP_FORMAT}, kinetics_display_name
    ),
    "ssv2": Adapter(
        "ssv2",
        {
            "official": Format(
                "validation JSON [{id, label, template, placeholders}] + labels.json",
                sniff_ssv2_json, parse_ssv2_json,
            ),
            "list": LIST_FORMAT,
        },
        template_display_name,
    ),
    "folder": Adapter(
        "folder",
        {
            "folder": Format(
                "a folder per class under the annotations folder",
                sniff_folder, parse_folder, needs_labels=False,
            )
        },
        words_display_name,
        # The annotation folder holds the videos themselves.
        default_video_root=lambda path: str(path),
    ),
    "demo": Adapter("demo", {"list": LIST_FORMAT}, words_display_name, generated=True),
}


# How class names become the text the models read (a dataset spec's `class_names`): `raw`,
# as the label file spells them (ViFi-CLIP's protocol: its label CSVs reach the tokenizer
# unchanged, e.g. "ApplyEyeMakeup"), or `words`, the adapter's reading (CamelCase and
# underscores split into lowercase words: "apply eye makeup"), or `spaced`, split into words
# with their capitals ("Apply Eye Makeup"). A backbone may name its own (zsar.core.class_names).
CLASS_NAME_RULES: dict[str, Callable[[Adapter, str], str]] = {
    "raw": lambda adapter, name: strip_quotes(name),
    "words": lambda adapter, name: adapter.display_name(name),
    "spaced": lambda adapter, name: spaced_name(name),
}


def get_adapter(name: str) -> Adapter:
    if name not in ADAPTERS:
        raise AnnotationError(f"unknown adapter {name!r}; known: {', '.join(sorted(ADAPTERS))}")
    return ADAPTERS[name]


def detect_format(adapter: str, path: str | Path, fmt: str | None = None) -> str:
    """The adapter's format of `path`: `fmt` if given and it fits, else the first that fits."""
    spec = get_adapter(adapter)
    path = Path(path)
    if not path.exists():
        raise AnnotationError(f"{path}: no such file or folder")
    if fmt is not None and fmt not in spec.formats:
        raise AnnotationError(
            f"{path}: adapter {adapter!r} has no format {fmt!r}; known: {', '.join(spec.formats)}"
        )
    problems = []
    for name in [fmt] if fmt else spec.formats:
        problem = spec.formats[name].sniff(path)
        if problem is None:
            return name
        problems.append(f"as {name} ({spec.formats[name].description}): {problem}")
    raise AnnotationError(f"{path}: not a {adapter} annotation file; " + "; ".join(problems))


def _check_class_list(path: Path) -> None:
    """Cheap look at a class list: the style of its first line must hold for the next few."""
    style = class_list_style(path)
    if style not in CLASS_LIST_ROWS:
        return
    lines = head_lines(path)
    if style == "csv" and csv_header(lines[0][1]):
        lines = lines[1:]
    fits = CLASS_LIST_ROWS[style]
    problem = _first_mismatch(lines, fits, f"a {style} class list row") if lines else None
    if problem:
        raise AnnotationError(f"{path}: {problem}")


def check_annotations(
    adapter: str, path: str | Path, labels: str | Path | None = None, fmt: str | None = None
) -> None:
    """A cheap sniff (first lines only) for parse time; raises AnnotationError naming the line."""
    name = detect_format(adapter, path, fmt)
    if get_adapter(adapter).formats[name].needs_labels and labels is None:
        raise AnnotationError(f"{path}: the {adapter} {name} format needs a class list (labels)")
    if labels is not None and Path(labels).exists():
        _check_class_list(Path(labels))


def read_split(
    adapter: str, path: str | Path, labels: str | Path | None = None, split: int = 1,
    fmt: str | None = None,
) -> SplitAnnotations:
    """Read one split's annotations whole, in the detected (or forced) format."""
    name = detect_format(adapter, path, fmt)
    parsed = get_adapter(adapter).formats[name].parse(
        Path(path), Path(labels) if labels is not None else None, split
    )
    _check_unique_videos(Path(path), parsed.videos)
    return parsed


def _check_unique_videos(path: Path, videos: list[VideoEntry]) -> None:
    # A video listed twice would be scored twice and weigh double in every accuracy.
    seen: dict[str, VideoEntry] = {}
    for video in videos:
        first = seen.setdefault(video.video_id, video)
        if first is not video:
            where = f" (first at line {first.line})" if first.line is not None else ""
            raise _error(path, video.line, f"video {video.video_id!r} is listed twice{where}")
