"""Manifest stage: annotation files -> manifest.parquet (videos) and classes.parquet.

The core turns an adapter's parsed split into rows; the edge reads files, checks which
videos exist on disk and writes the two tables atomically with provenance. A video that is
missing on disk is not an error: it is kept with exists=False, counted in the summary and
later recorded as a failure (stage "manifest") by `gather_failures`, so one lost file never
stops a benchmark run.

Also here: `gather_failures`, which joins the missing videos with every stage's failures
into `failures.parquet`, because the manifest is what defines "missing".
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from zsar.data import adapters, walk
from zsar.data.io import FAILURE_SCHEMA, concat_parquet, failures_table, write_parquet, write_text
from zsar.data.provenance import provenance
from zsar.pipeline.config import dataset_spec_default

logger = logging.getLogger(__name__)

MANIFEST_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("path", pa.string()),
        ("label", pa.string()),
        ("class_id", pa.int32()),
        ("split", pa.int32()),
        ("exists", pa.bool_()),
    ]
)
CLASSES_SCHEMA = pa.schema(
    [
        ("split", pa.int32()),
        ("class_id", pa.int32()),
        ("name", pa.string()),
        ("display_name", pa.string()),
    ]
)
# How many missing videos are named in the log; the table has them all.
MISSING_SHOWN = 10


# ---------------------------------------------------------------------------------------
# Pure core


def video_path(video_root: str | None, video_id: str) -> str:
    """Where a video should be on disk; without a root it cannot be anywhere."""
    return os.path.join(video_root, video_id) if video_root else video_id


# How a listed video was found under the video root (VideoIndex.locate).
AS_LISTED = "at the listed path"
BY_NAME = "by file name, in another folder"
BY_STEM = "by file name, with another extension"


def _folder_key(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum())


@dataclass(frozen=True)
class VideoIndex:
    """Every file under a video root, listed once, to find a listed video whatever the layout.

    Benchmarks unpack in more than one way: UCF101's lists name `v_ApplyEyeMakeup_g01_c01.avi`
    while its archive puts it in `ApplyEyeMakeup/`; HMDB51 and Kinetics are often kept in
    class folders too; a re-encoded copy may be .mp4 where the list says .avi. A video is
    looked for at its listed path, then by its file name anywhere below the root, then by
    its name with another video extension; where one name is in several folders, the folder
    named like the video's class wins, and otherwise the video counts as missing.
    """

    root: str | None
    files: frozenset[str]
    by_name: Mapping[str, tuple[str, ...]]
    by_stem: Mapping[str, tuple[str, ...]]

    @classmethod
    def scan(cls, root: str | None) -> VideoIndex:
        # Each folder once, however many links lead to it: a symlink loop cannot hang this.
        files = walk.files_under(root) if root and os.path.isdir(root) else []
        by_name: dict[str, list[str]] = {}
        by_stem: dict[str, list[str]] = {}
        for rel in files:
            name = rel.rsplit("/", 1)[-1]
            by_name.setdefault(name, []).append(rel)
            stem, dot, ext = name.rpartition(".")
            if dot and f".{ext.lower()}" in adapters.VIDEO_EXTENSIONS:
                by_stem.setdefault(stem, []).append(rel)
        return cls(
            root,
            frozenset(files),
            {k: tuple(v) for k, v in by_name.items()},
            {k: tuple(v) for k, v in by_stem.items()},
        )

    def locate(self, video_id: str, label: str) -> tuple[str | None, str | None]:
        """(path relative to the root, how it was found), or (None, None)."""
        listed = Path(video_id).as_posix()
        if listed in self.files:
            return listed, AS_LISTED
        name = listed.rsplit("/", 1)[-1]
        found = _one_of(self.by_name.get(name, ()), label)
        if found:
            return found, BY_NAME
        stem = name.rpartition(".")[0] or name
        found = _one_of(self.by_stem.get(stem, ()), label)
        return (found, BY_STEM) if found else (None, None)


def _one_of(candidates: tuple[str, ...], label: str) -> str | None:
    if len(candidates) == 1:
        return candidates[0]
    in_class_folder = [c for c in candidates
                       if "/" in c and _folder_key(c.rsplit("/", 2)[-2]) == _folder_key(label)]
    return in_class_folder[0] if len(in_class_folder) == 1 else None


def manifest_rows(
    split: int,
    parsed: adapters.SplitAnnotations,
    index: VideoIndex,
    found_how: collections.Counter | None = None,
) -> list[dict[str, Any]]:
    rows = []
    for video in parsed.videos:
        found, how = index.locate(video.video_id, video.label)
        if found_how is not None:
            found_how[how or "missing"] += 1
        rows.append({
            "video_id": video.video_id,
            "path": video_path(index.root, found or video.video_id),
            "label": video.label,
            "class_id": video.class_id,
            "split": split,
            "exists": found is not None,
        })
    return rows


def class_rows(
    split: int, classes: list[str], display_name: Callable[[str], str]
) -> list[dict[str, Any]]:
    return [
        {"split": split, "class_id": i, "name": name, "display_name": display_name(name)}
        for i, name in enumerate(classes)
    ]


def manifest_table(rows: list[dict[str, Any]]) -> pa.Table:
    # Sorted so that equal annotations give byte-identical manifests, whatever the file order.
    rows = sorted(rows, key=lambda r: (r["split"], r["video_id"]))
    return pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)


def classes_table(rows: list[dict[str, Any]]) -> pa.Table:
    rows = sorted(rows, key=lambda r: (r["split"], r["class_id"]))
    return pa.Table.from_pylist(rows, schema=CLASSES_SCHEMA)


def summary_line(manifest: pa.Table, classes: pa.Table) -> str:
    missing = manifest.filter(pc.invert(manifest["exists"])).num_rows
    return f"videos={manifest.num_rows} classes={classes.num_rows} missing={missing}"


def missing_videos(manifest: pa.Table) -> list[str]:
    """Paths of the rows whose video is not on disk, in manifest order."""
    return manifest.filter(pc.invert(manifest["exists"]))["path"].to_pylist()


def gather_failures(manifest: pa.Table, stage_failures: list[pa.Table]) -> pa.Table:
    """Missing videos (stage "manifest") plus every stage's failures.

    One row per (video_id, stage): a video missing in several splits, or failing in two
    shards, is one failure. Sorted by video_id, then stage (then reason, so that which
    duplicate survives does not depend on shard order).
    """
    missing = manifest.filter(pc.invert(manifest["exists"]))
    records = [
        {"video_id": vid, "stage": "manifest", "reason": f"missing on disk: {path}"}
        for vid, path in zip(
            missing["video_id"].to_pylist(), missing["path"].to_pylist(), strict=True
        )
    ]
    for table in stage_failures:
        records += table.select(FAILURE_SCHEMA.names).to_pylist()
    records.sort(key=lambda r: (r["video_id"], r["stage"], r["reason"] or ""))
    unique: dict[tuple[str, str], dict[str, str]] = {}
    for record in records:
        unique.setdefault((record["video_id"], record["stage"]), record)
    return failures_table(list(unique.values()))


# ---------------------------------------------------------------------------------------
# Reading annotations


def _build(
    adapter: str,
    annotations: Mapping[int, str],
    labels: Mapping[int, str | None],
    video_root: str | None,
    fmt: str | None = None,
    class_names: str | None = None,
) -> tuple[pa.Table, pa.Table, dict[int, str]]:
    spec = adapters.get_adapter(adapter)
    rule = adapters.CLASS_NAME_RULES[class_names or dataset_spec_default("class_names")]
    video_rows, class_list_rows, formats = [], [], {}
    indexes: dict[str | None, VideoIndex] = {}
    found_how: collections.Counter = collections.Counter()
    for split in sorted(annotations):
        path = annotations[split]
        parsed = adapters.read_split(adapter, path, labels.get(split), split, fmt)
        root = video_root or spec.default_video_root(Path(path))
        if root not in indexes:
            indexes[root] = VideoIndex.scan(root)
        video_rows += manifest_rows(split, parsed, indexes[root], found_how)
        class_list_rows += class_rows(split, parsed.classes, lambda n: rule(spec, n))
        formats[split] = parsed.format
    for how in (BY_NAME, BY_STEM):
        if found_how[how]:
            logger.info("%d videos found %s (not at the path the list gives)",
                        found_how[how], how)
    return manifest_table(video_rows), classes_table(class_list_rows), formats


def build_manifest(
    adapter: str,
    annotations: Mapping[int, str],
    labels: Mapping[int, str | None],
    video_root: str | None,
    fmt: str | None = None,
    class_names: str | None = None,
) -> tuple[pa.Table, pa.Table]:
    """(manifest, classes) of every split in `annotations` (split -> annotation path).

    `exists` is checked on disk at video_root/video_id; with no video_root every video
    counts as missing (except for the folder adapter, whose folder holds the videos).
    The classes' display names follow `class_names` (the schema's default where None).
    """
    manifest, classes, _ = _build(adapter, annotations, labels, video_root, fmt, class_names)
    return manifest, classes


# ---------------------------------------------------------------------------------------
# Before a run: are the listed videos there?


@dataclass(frozen=True)
class SplitCheck:
    """What a split's list names and what is on disk, for the preflight summary."""

    dataset: str
    split: int
    annotations: str
    root: str | None
    listed: int
    found: int
    elsewhere: int  # found, but not at the listed path (another folder or extension)
    example: str | None  # where a missing video was expected
    hint: str | None = None  # where the listed videos seem to be instead

    @property
    def missing(self) -> int:
        return self.listed - self.found

    @property
    def missing_share(self) -> float:
        return self.missing / self.listed if self.listed else 0.0

    def line(self) -> str:
        text = (f"{self.dataset} split {self.split}: {self.listed} videos listed in "
                f"{self.annotations}, {self.found} found, {self.missing} missing")
        if self.elsewhere:
            text += f" ({self.elsewhere} found by name, not at the listed path)"
        return text

    def nothing_found(self) -> str:
        where = self.root or "(no video_root)"
        text = (f"{self.dataset} split {self.split}: none of the {self.listed} videos listed in "
                f"{self.annotations} is under {where} (looked at each listed path, then for the "
                f"same file name in any folder below it, with any video extension)")
        if self.root and not os.path.isdir(self.root):
            text += f"; {self.root} does not exist"
        if self.example:
            text += f"; e.g. expected {self.example}"
        if self.hint:
            text += f"; {self.hint}"
        return text


def _where_they_are(root: str, parsed: adapters.SplitAnnotations, sample: int = 200) -> str | None:
    """A hint when no video is under the root: the folder beside it that holds them."""
    parent = Path(root).parent
    if not parent.is_dir():
        return None
    index = VideoIndex.scan(str(parent))
    folders = collections.Counter()
    for video in parsed.videos[:sample]:
        found, _ = index.locate(video.video_id, video.label)
        if found:
            folders[found.split("/", 1)[0]] += 1
    if not folders:
        return None
    folder, count = folders.most_common(1)[0]
    return (f"{count} of the first {min(sample, len(parsed.videos))} are under "
            f"{parent / folder}: point the dataset's video_root there")


def check_videos(
    name: str,
    adapter: str,
    annotations: Mapping[int, str],
    labels: Mapping[int, str | None],
    video_root: str | None,
    fmt: str | None = None,
) -> list[SplitCheck]:
    """Per split: how many listed videos are found, the way the manifest will find them."""
    spec = adapters.get_adapter(adapter)
    indexes: dict[str | None, VideoIndex] = {}
    checks = []
    for split in sorted(annotations):
        parsed = adapters.read_split(adapter, annotations[split], labels.get(split), split, fmt)
        root = video_root or spec.default_video_root(Path(annotations[split]))
        if root not in indexes:
            indexes[root] = VideoIndex.scan(root)
        found = elsewhere = 0
        example = None
        for video in parsed.videos:
            path, how = indexes[root].locate(video.video_id, video.label)
            found += path is not None
            elsewhere += how in (BY_NAME, BY_STEM)
            if path is None and example is None:
                example = video_path(root, video.video_id)
        hint = _where_they_are(root, parsed) if root and not found and parsed.videos else None
        checks.append(SplitCheck(name, split, str(annotations[split]), root,
                                 len(parsed.videos), found, elsewhere, example, hint))
    return checks


# ---------------------------------------------------------------------------------------
# I/O edge


def default_classes_path(out: str | os.PathLike) -> Path:
    """manifest.parquet -> manifest.classes.parquet, beside it."""
    out = Path(out)
    return out.with_name(f"{out.stem}.classes.parquet")


def report_missing(manifest: pa.Table, video_root: str | None) -> None:
    missing = missing_videos(manifest)
    if not missing:
        return
    why = "" if video_root else " (no video root given)"
    logger.warning("missing on disk: %d of %d videos%s", len(missing), manifest.num_rows, why)
    for path in missing[:MISSING_SHOWN]:
        logger.warning("  missing: %s", path)
    if len(missing) > MISSING_SHOWN:
        logger.warning("  ... and %d more (exists=False in the manifest)",
                       len(missing) - MISSING_SHOWN)


def formats_by_split(formats: Mapping[int, str]) -> dict[str, str]:
    return {str(k): v for k, v in formats.items()}


def write_manifest(
    adapter: str,
    annotations: Mapping[int, str],
    labels: Mapping[int, str | None],
    video_root: str | None,
    fmt: str | None,
    manifest_out: str | os.PathLike | None,
    classes_out: str | os.PathLike | None,
) -> str:
    """Build and write the tables whose path is given; return the summary line."""
    manifest, classes, formats = _build(adapter, annotations, labels, video_root, fmt)
    spec = {
        "adapter": adapter,
        "annotations": {str(k): str(v) for k, v in annotations.items()},
        "labels": {str(k): (str(v) if v else None) for k, v in labels.items()},
        "video_root": video_root,
        "format": fmt,
    }
    block = provenance(spec, extra={"stage": "manifest", "formats": formats_by_split(formats)})
    if manifest_out is not None:
        write_parquet(manifest, manifest_out, provenance=block)
        report_missing(manifest, video_root)
    if classes_out is not None:
        write_parquet(classes, classes_out, provenance=block)
    return summary_line(manifest, classes)


def video_files_text(manifest: pa.Table) -> str:
    """The frames stage's cache key: each video on disk and its size, nothing about where.

    One line per unique video id, sorted ("video_id<TAB>bytes"); a video that appears or
    disappears, or whose file changes size, changes it; moving the folder does not.
    """
    rows = manifest.select(["video_id", "path", "exists"]).to_pylist()
    sizes = {r["video_id"]: os.path.getsize(r["path"]) for r in rows if r["exists"]}
    return "video_id\tbytes\n" + "".join(f"{v}\t{sizes[v]}\n" for v in sorted(sizes))


def run_manifest_stage(
    spec: Mapping[str, Any], manifest_out: str, video_files_out: str | None = None
) -> str:
    """The manifest rule: `spec` is DatasetPlan.as_params() (splits keyed as strings).

    Beside the manifest it writes `video_files_out` (video_files_text), which the frames
    stage keys on instead of the manifest: the manifest holds the videos' paths, which
    change when the videos move, while the decoded frames do not.
    """
    splits = [int(s) for s in spec["splits"]]
    annotations = {s: spec["annotations"][str(s)] for s in splits}
    labels = {s: (spec.get("labels") or {}).get(str(s)) for s in splits}
    summary = write_manifest(
        spec["adapter"], annotations, labels, spec.get("video_root"), spec.get("format"),
        manifest_out, None,
    )
    if video_files_out is not None:
        write_text(video_files_text(pq.read_table(manifest_out)), video_files_out)
    logger.info(summary)
    return summary


def raw_class_names(plan) -> list[str] | None:
    """The raw class names of a DatasetPlan's lists, sorted, or None where they cannot be
    read yet (a generated dataset, lists not there): for a check before any job."""
    try:
        _, classes, _ = _build(plan.adapter, plan.annotations, plan.labels, None, plan.format,
                               plan.class_names)
    except (OSError, ValueError):
        return None
    return sorted(set(classes.column("name").to_pylist()))


def run_classes_stage(plan, classes_out: str, key: Mapping[str, Any]) -> str:
    """The classes rule: the class list of `plan` (a DatasetPlan), keyed on `key`, the
    plan's class_list_key() that the rule's params hold.

    The files are read where the config says they are now; if their content is no longer
    what the rule was planned with (they changed between planning and running), that is
    an error rather than a class list that does not match its cache key.
    """
    if plan.class_list_key() != dict(key):
        raise ValueError(
            f"the annotation files of {plan.name} changed since the run was planned; run again"
        )
    _, classes, formats = _build(plan.adapter, plan.annotations, plan.labels, None, plan.format,
                                 plan.class_names)
    # Provenance without paths: the class list is the same wherever the lists are.
    block = provenance(dict(key), extra={"stage": "classes", "formats": formats_by_split(formats)})
    write_parquet(classes, classes_out, provenance=block)
    summary = f"classes={classes.num_rows} splits={len(plan.splits)}"
    logger.info(summary)
    return summary


def run_failures_stage(manifest_path: str, failure_paths: list[str], out: str) -> None:
    manifest = pq.read_table(manifest_path, columns=["video_id", "path", "exists"])
    # Stage failure files are read in sorted order; the result is sorted anyway.
    stage_failures = [concat_parquet(sorted(failure_paths), schema=FAILURE_SCHEMA)]
    failures = gather_failures(manifest, stage_failures)
    write_parquet(failures, out, provenance=provenance(extra={"stage": "failures"}))
    by_stage = pc.value_counts(failures["stage"]).to_pylist() if failures.num_rows else []
    counts = " ".join(f"{c['values']}={c['counts']}" for c in by_stage)
    logger.info(f"failures={failures.num_rows} {counts}".strip())


# ---------------------------------------------------------------------------------------
# `zsar manifest`


def _adapter_help() -> str:
    lines = []
    for name, spec in adapters.ADAPTERS.items():
        formats = "; ".join(f"{f}: {fmt.description}" for f, fmt in spec.formats.items())
        lines.append(f"{name} ({formats})")
    return ". ".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Read a benchmark's annotation files and write the manifest Parquet at --out and its "
        "class list beside it as <stem>.classes.parquet (e.g. manifest.parquet -> "
        "manifest.classes.parquet; override with --classes-out). Prints one summary line: "
        "videos=N classes=K missing=M. Videos missing on disk are kept with exists=False and "
        "the first few are listed on stderr."
    )
    parser.add_argument(
        "--dataset", required=True, choices=sorted(adapters.ADAPTERS), metavar="NAME",
        help="the adapter: " + _adapter_help(),
    )
    parser.add_argument(
        "--annotations", required=True, metavar="PATH",
        help="annotation file (or folder, for hmdb51 official and folder)",
    )
    parser.add_argument(
        "--labels", metavar="PATH",
        help="class list: `id,name` CSV, classInd.txt, one name per line, or SSv2 labels.json",
    )
    parser.add_argument(
        "--video-root", metavar="DIR",
        help="folder the video paths are relative to; without it every video counts as missing",
    )
    parser.add_argument(
        "--split", type=int, default=1, metavar="K",
        help="split number recorded in the manifest (and which HMDB51 official files to read)",
    )
    parser.add_argument(
        "--format", dest="fmt", metavar="F",
        help="force a format of the adapter (default: detected from the file's content)",
    )
    parser.add_argument("--out", required=True, metavar="FILE", help="manifest Parquet to write")
    parser.add_argument(
        "--classes-out", metavar="FILE",
        help="classes Parquet (default: <out stem>.classes.parquet beside --out)",
    )


def run(args: argparse.Namespace) -> int:
    classes_out = args.classes_out or default_classes_path(args.out)
    try:
        summary = write_manifest(
            args.dataset, {args.split: args.annotations}, {args.split: args.labels},
            args.video_root, args.fmt, args.out, classes_out,
        )
    except adapters.AnnotationError as err:
        print(f"zsar manifest: error: {err}", file=sys.stderr)
        return 2
    print(summary)
    return 0
