"""`zsar descriptors`: import descriptor files published elsewhere
(zsar.data.descriptor_sources), or export ours in their formats (zsar.data.descriptor_export).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from zsar.data.descriptor_export import EXPORT_FORMATS, export_descriptors, read_templates
from zsar.data.descriptor_formats import FORMATS, DescriptorFileError
from zsar.data.descriptor_sources import (
    IMPORT_KINDS,
    NAMES_SHOWN,
    Source,
    import_descriptor_sources,
)

EXIT_BAD_INPUT = 2


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
