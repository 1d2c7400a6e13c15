"""Export: a descriptors document written in other tools' formats.

`zsar descriptors export` writes one as CuPL JSON: per class, the sentences the workflow
embeds (the same `descriptor_texts` and templates), so CLIP_benchmark and other tools can use
them. Importing that file as one kind (zsar.data.descriptor_sources) gives every class
exactly the sentences it had (now all of that kind); see `export_prompts`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from zsar.core.method import DESCRIPTOR_KINDS, descriptor_texts
from zsar.data.descriptor_classes import LabelClasses, read_label_classes
from zsar.data.descriptor_formats import DescriptorFileError
from zsar.data.descriptor_records import load_curated
from zsar.data.io import write_json
from zsar.pipeline import stage_table
from zsar.pipeline.config import ConfigError, load_config
from zsar.stages.embed_text import NAME_PROMPT


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
    pass_classes = ("pass --classes with the dataset's classes.parquet or label file "
                    "(templates need the display names)")
    try:
        results, values = stage_table.parse_path("descriptors", "descriptors",
                                                 descriptors_path.resolve())
    except ValueError:
        raise DescriptorFileError(
            f"{descriptors_path}: not a workflow descriptors file "
            f"({stage_table.template('descriptors', 'descriptors')}), so no dataset "
            f"classes beside it; {pass_classes}") from None
    beside = Path(stage_table.path("classes", "classes", results, dataset=values["dataset"]))
    if beside.is_file():
        return read_label_classes(beside)
    raise DescriptorFileError(f"{descriptors_path}: no classes.parquet at {beside}; {pass_classes}")


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

