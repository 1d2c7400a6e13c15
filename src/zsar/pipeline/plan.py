"""The run plan: config resolved into what the workflow schedules, checked before any job.

The Snakefile calls `resolve_run` once at parse time. Everything that can be wrong with
a config (an unknown model, a missing data root, an annotation file in the wrong
format) is raised here as a `ConfigError` that names the key or path, so a bad run
stops before the first job instead of failing hours later on a GPU node.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zsar.core.class_names import ClassNameRuleError, all_rules, resolve_rule
from zsar.core.method import VARIANTS
from zsar.core.names import RUN_NAME, SAMPLING_NAME, shard_id
from zsar.data import adapters
from zsar.data.adapters import ADAPTERS, AnnotationError
from zsar.data.io import content_digest
from zsar.data.lists import missing_input
from zsar.models.registry import RegistryError, describe_source, get_entry, load_registry
from zsar.pipeline.config import ConfigError, read_yaml_mapping, validate_dataset_spec
from zsar.stages.embed_text import load_name_prompt
from zsar.stages.manifest import check_videos


@dataclass(frozen=True)
class DatasetPlan:
    name: str
    adapter: str
    annotations: dict[int, str]  # split -> resolved annotation path
    labels: dict[int, str | None]
    video_root: str | None
    format: str | None
    splits: tuple[int, ...]
    # zsar.core.class_names: a built-in rule or a mapping file's name; the schema's default
    class_names: str
    # Its files are written by a rule (the demo), so they may not exist when planning.
    generated: bool = False
    # Where the paths were filled from, for the missing-input message (zsar.data.lists).
    data_root: str = ""
    config_dir: str = "config"

    def missing_input(self, path: str, role: str, split: int) -> ConfigError:
        return ConfigError(
            missing_input(path, self.name, role, split, self.data_root, self.config_dir)
        )

    def as_params(self) -> dict[str, Any]:
        """The fields that define the manifest (what its rule's params track)."""
        return {
            "adapter": self.adapter,
            "annotations": {str(k): v for k, v in self.annotations.items()},
            "labels": {str(k): v for k, v in self.labels.items()},
            "video_root": self.video_root,
            "format": self.format,
            "splits": list(self.splits),
        }

    def video_folders_state(self) -> str | None:
        """A hash of the dates of the video root and every folder below it.

        A folder's date changes when a file is added to it, removed or renamed, so this
        changes when videos appear or go (a download finished, a broken file deleted),
        and costs one look per folder, not per video. The manifest rule has it as a
        param: it re-runs then, and only the stages whose videos really changed follow
        (the frames are keyed on the videos' sizes, video_files.tsv). None where there is
        no folder to look at, or it is a rule's output (the demo's).
        """
        if self.generated or not self.video_root or not Path(self.video_root).is_dir():
            return None
        digest = hashlib.sha256()
        stack = [Path(self.video_root)]
        while stack:
            folder = stack.pop()
            digest.update(f"{folder}\0{folder.stat().st_mtime_ns}\0".encode())
            stack += sorted((Path(e.path) for e in os.scandir(folder) if e.is_dir()), reverse=True)
        return digest.hexdigest()[:16]

    def annotation_files(self) -> list[str]:
        """Every annotation and label file (or folder) of the splits, each once."""
        return sorted({*self.annotations.values(), *(p for p in self.labels.values() if p)})

    def class_list_key(self) -> dict[str, Any]:
        """What the class list depends on: the adapter and the *content* of the annotation
        and label files, not where they are, so the same lists under a new data root re-run
        nothing downstream (the LLM descriptors hang on the class list). A generated
        dataset's files do not exist before its rule has run; their paths stand in."""
        def key(path: str | None, role: str, split: int) -> str | None:
            if path is None or self.generated:
                return path
            if not Path(path).exists():
                raise self.missing_input(path, role, split)
            return content_digest(path)

        return {
            "adapter": self.adapter,
            "format": self.format,
            "class_names": self.class_names,
            "splits": list(self.splits),
            "files": {
                str(s): {
                    "annotations": key(self.annotations[s], "annotations", s),
                    "labels": key(self.labels[s], "labels", s),
                }
                for s in self.splits
            },
        }


@dataclass(frozen=True)
class RunPlan:
    datasets: dict[str, DatasetPlan]
    backbones: tuple[str, ...]
    captioner: str | None
    llm: str
    sampling: str
    shards: int
    variants: tuple[str, ...]
    registry: dict[str, dict[str, Any]] = field(repr=False)
    # backbone -> its class-name protocol (zsar.stages.embed_text.NamePrompt)
    name_prompts: dict[str, Any] = field(default_factory=dict, repr=False)
    # every class-name rule by name, resolved (zsar.core.class_names.all_rules)
    class_rules: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    def shard_ids(self) -> list[str]:
        return [shard_id(i, self.shards) for i in range(self.shards)]

    def class_name_rule(self, dataset: str, backbone: str) -> dict[str, Any]:
        """The class-name rule a backbone's class-name job spells the dataset's names by:
        the backbone's own (its registry entry's `class_names`), else the dataset's; with
        the dataset's adapter, which the `words` rule reads."""
        data = self.datasets[dataset]
        name = self.registry["backbones"][backbone].get("class_names") or data.class_names
        return {"adapter": data.adapter, **self.class_rules[name]}


def sampling_name(frames_cfg: Mapping[str, Any]) -> str:
    """The frames folder name: everything that changes the decoded frames, nothing else."""
    clips = int((frames_cfg.get("views") or {}).get("clips", 1))
    return SAMPLING_NAME.format({**frames_cfg, "clips": clips})


def _fill(template: str | None, data_root: str, split: int) -> str | None:
    if template is None:
        return None
    return template.replace("{data_root}", data_root).replace("{split}", str(split))


def load_dataset_specs(config_dir: str | os.PathLike, overrides: Mapping[str, Any]) -> dict:
    """Dataset specs from config/datasets/*.yaml, overlaid by the config's own `dataset_specs`.

    Each spec is checked against the config schema's dataset spec where it is read, so an
    error names the file and the key.
    """
    specs: dict[str, Any] = {}
    for path in sorted(Path(config_dir, "datasets").glob("*.yaml")):
        for name, spec in (read_yaml_mapping(path).get("dataset_specs") or {}).items():
            specs[name] = validate_dataset_spec(dict(spec), f"{path}: dataset_specs.{name}")
    specs.update(overrides or {})
    return specs


def resolve_dataset(
    name: str, spec: Mapping[str, Any], data_root: str, config_dir: str | os.PathLike = "config"
) -> DatasetPlan:
    uses_root = any(
        "{data_root}" in str(spec.get(k) or "") for k in ("annotations", "labels", "video_root")
    )
    if uses_root and not Path(data_root).is_dir():
        raise ConfigError(
            f"data_root '{data_root}' does not exist (needed by dataset '{name}'); set "
            "data_root (in a config file, or --config data_root=...) to the folder that holds "
            "the benchmarks' folders"
        )
    splits = tuple(int(s) for s in spec["splits"])
    adapter = ADAPTERS.get(spec["adapter"])
    return DatasetPlan(
        name=name,
        adapter=spec["adapter"],
        annotations={s: _fill(spec["annotations"], data_root, s) for s in splits},
        labels={s: _fill(spec.get("labels"), data_root, s) for s in splits},
        video_root=_fill(spec.get("video_root"), data_root, splits[0]),
        format=spec.get("format"),
        splits=splits,
        generated=bool(adapter and adapter.generated),
        class_names=spec["class_names"],
        data_root=data_root,
        config_dir=str(config_dir),
    )


def dataset_from_config(
    config: Mapping[str, Any], config_dir: str | os.PathLike, name: str
) -> DatasetPlan:
    """One dataset's plan from a (validated) config: where a job finds its files now."""
    specs = load_dataset_specs(config_dir, config.get("dataset_specs") or {})
    if name not in specs:
        raise ConfigError(f"datasets: '{name}' has no spec")
    return resolve_dataset(name, specs[name], str(config["data_root"]), config_dir)


def _check_annotations(plan: DatasetPlan) -> None:
    """Sniff every annotation file that already exists (generated ones are checked later)."""
    if plan.adapter not in adapters.ADAPTERS:
        known = ", ".join(sorted(adapters.ADAPTERS))
        raise ConfigError(
            f"dataset_specs.{plan.name}.adapter: unknown adapter '{plan.adapter}'; known: {known}"
        )
    for split in plan.splits:
        path = plan.annotations[split]
        if not Path(path).exists():
            continue
        try:
            adapters.check_annotations(
                plan.adapter, path, labels=plan.labels[split], fmt=plan.format
            )
        except adapters.AnnotationError as err:
            raise ConfigError(f"dataset_specs.{plan.name}.annotations: {err}") from err


def _check_model(registry, section: str, name: str, key: str) -> None:
    try:
        get_entry(registry, section, name)
    except RegistryError as err:
        raise ConfigError(f"{key}: {err}") from err


def demo_models_in_use(
    config: Mapping[str, Any], registry: Mapping[str, Any], captioner: str | None
) -> list[str]:
    """"key: name" of each configured model whose registry entry is marked `demo: true`."""
    stages = [(f"backbones[{i}]", "backbones", b) for i, b in enumerate(config["backbones"])]
    if captioner is not None:
        stages.append(("captions.captioner", "captioners", captioner))
    stages.append(("descriptors.llm", "llms", config["descriptors"]["llm"]))
    return [
        f"{key}: {name}"
        for key, section, name in stages
        if registry[section][name].get("demo")
    ]


def _refuse_demo_models_on_benchmarks(config, datasets, registry, captioner) -> None:
    """Tiny random models and the demo's hand-written descriptors make numbers that look
    real and mean nothing: on a benchmark they are a config error unless asked for."""
    benchmarks = [name for name, plan in datasets.items() if not plan.generated]
    demo = demo_models_in_use(config, registry, captioner)
    if benchmarks and demo and not config.get("allow_demo_models"):
        raise ConfigError(
            f"dataset(s) {', '.join(benchmarks)} would run with demo models ("
            + "; ".join(demo)
            + "). Name real models, e.g. put `config/runs/vit-b16-qwen.yaml` last among the "
            "--configfile files, or put `allow_demo_models=true` among the --config values to "
            "run them anyway (tests, smoke runs). Snakemake keeps only the last --configfile "
            "and the last --config of a command, so add to those rather than repeat them"
        )


def resolve_run(config: Mapping[str, Any], config_dir: str | os.PathLike = "config") -> RunPlan:
    registry = load_registry(config["models"])
    specs = load_dataset_specs(config_dir, config.get("dataset_specs") or {})
    datasets = {}
    for name in config["datasets"]:
        if name not in specs:
            raise ConfigError(
                f"datasets: '{name}' has no spec; known: {', '.join(sorted(specs))} "
                "(add it under dataset_specs or in config/datasets/)"
            )
        datasets[name] = resolve_dataset(name, specs[name], str(config["data_root"]), config_dir)
        _check_annotations(datasets[name])

    for i, backbone in enumerate(config["backbones"]):
        _check_model(registry, "backbones", backbone, f"backbones[{i}]")
        base = registry["backbones"][backbone].get("base")
        if base:
            _check_model(registry, "backbones", base, f"backbones[{i}].base")
    captioner = config["captions"]["captioner"]
    if captioner == "none":
        captioner = None
    else:
        _check_model(registry, "captioners", captioner, "captions.captioner")
    _check_model(registry, "llms", config["descriptors"]["llm"], "descriptors.llm")

    _refuse_demo_models_on_benchmarks(config, datasets, registry, captioner)
    if captioner is not None:
        check_caption_context(get_entry(registry, "captioners", captioner), config)
    variants = tuple(
        v for v in config["scoring"]["variants"] if captioner or not VARIANTS[v].caption
    )
    return RunPlan(
        datasets=datasets,
        backbones=tuple(config["backbones"]),
        captioner=captioner,
        llm=config["descriptors"]["llm"],
        sampling=sampling_name(config["frames"]),
        shards=int(config["shards"]),
        variants=variants,
        registry=registry,
        name_prompts={b: _name_prompt(registry, b, config_dir) for b in config["backbones"]},
        class_rules=_class_rules(registry, datasets, config["backbones"], config_dir),
    )


def _class_rules(registry, datasets, backbones, config_dir) -> dict[str, dict[str, Any]]:
    """Every rule, resolved; each rule a dataset or backbone names must be among them."""
    named = {f"dataset {d}": p.class_names for d, p in datasets.items()}
    named |= {f"backbone {b}": registry["backbones"][b].get("class_names") for b in backbones}
    for where, name in named.items():
        try:
            if name:
                resolve_rule(name, config_dir)
        except ClassNameRuleError as err:
            raise ConfigError(f"{where}: {err}") from None
    try:
        return all_rules(config_dir)
    except ClassNameRuleError as err:
        raise ConfigError(str(err)) from None


def _name_prompt(registry, backbone: str, config_dir):
    entry = registry["backbones"][backbone]
    try:
        return load_name_prompt(entry.get("name_prompt"), Path(config_dir) / "prompts")
    except ValueError as err:
        raise ConfigError(f"backbone {backbone}: {err}") from None


# Tokens a caption request takes besides the frames: the chat template, the prompt set's
# prompt (about 60 words) and the answer's markup. Generous, so a check never passes a
# request that then overflows.
PROMPT_TOKENS = 256


def check_caption_context(entry: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    """A captioner whose frames, prompt and answer would not fit its context is a config
    error naming the entry and both numbers: an overflowing model fails, or worse, writes
    garbage, hours into a run."""
    if not entry.get("context_length") or not entry.get("visual_tokens_per_frame"):
        return
    # Every frame the frames stage decodes goes to the captioner: all temporal clips.
    frames = int(config["frames"]["num_frames"]) * int(
        (config["frames"].get("views") or {}).get("clips", 1)
    )
    if entry.get("max_frames"):
        frames = min(frames, int(entry["max_frames"]))
    new_tokens = int(config["captions"]["max_new_tokens"])
    needed = frames * int(entry["visual_tokens_per_frame"]) + PROMPT_TOKENS + new_tokens
    limit = int(entry["context_length"])
    if needed > limit:
        most = (limit - PROMPT_TOKENS - new_tokens) // int(entry["visual_tokens_per_frame"])
        raise ConfigError(
            f"captions.captioner {entry['name']}: {frames} frames x "
            f"{entry['visual_tokens_per_frame']} tokens + {PROMPT_TOKENS} (prompt) + "
            f"{new_tokens} (answer) = {needed} tokens, more than its context of {limit}; "
            f"give its registry entry max_frames: {max(most, 1)} (or fewer frames.num_frames)"
        )


def variant_runs(variants: tuple[str, ...] | list[str], lambda_values: list[float]) -> list[str]:
    """Names of the scored runs: a caption variant is scored once per λ of a sweep.

    With a single λ the names are the plain variant names, so the common case reads
    naturally (`full.json`); a sweep gives `full_lambda0.5.json` and so on.
    """
    runs = []
    for variant in variants:
        if VARIANTS[variant].caption and len(lambda_values) > 1:
            runs += [RUN_NAME.format({"variant": variant, "lambda": lam}) for lam in lambda_values]
        else:
            runs.append(RUN_NAME.format({"variant": variant}))
    return runs


def parse_variant_run(run: str, lambda_values: list[float]) -> tuple[str, float]:
    """(variant, λ) of a run name made by `variant_runs`."""
    try:
        values = RUN_NAME.parse(run)
    except ValueError:
        raise ConfigError(f"unknown variant '{run}'; known: {', '.join(VARIANTS)}") from None
    return values["variant"], values.get("lambda", lambda_values[0])


# --- before a run: what it will read and with which models --------------------------------------


@dataclass
class Preflight:
    """The summary printed before any job, what stops the run, and what it warns about
    (at the start and again at the end)."""

    lines: list[str]
    errors: list[str]
    warnings: list[str]

    def text(self) -> str:
        parts = list(self.lines)
        parts += [f"WARNING: {w}" for w in self.warnings]
        return "\n".join(parts)


def _model_lines(plan: RunPlan) -> list[str]:
    stages = [("backbone", "backbones", b) for b in plan.backbones]
    if plan.captioner is not None:
        stages.append(("captioner", "captioners", plan.captioner))
    stages.append(("descriptors LLM", "llms", plan.llm))
    return [
        f"    {stage} {name}: {describe_source(get_entry(plan.registry, section, name))}"
        for stage, section, name in stages
    ]


def preflight(plan: RunPlan, warn_missing_share: float) -> Preflight:
    """For each dataset and split: the list, the videos it names, found and missing; for each
    stage, its model and where that comes from. A dataset with no video found in any split
    is an error (a wrong path or layout); a split with none found while others have some,
    or more than `warn_missing_share` of a split missing, is a warning."""
    lines, errors, warnings = ["zsar preflight:"], [], []
    for name, dataset in plan.datasets.items():
        if dataset.generated:
            lines.append(f"  {name}: generated by the workflow (demo_data)")
            continue
        for split, path in sorted(dataset.annotations.items()):
            if not Path(path).exists():
                raise dataset.missing_input(path, "annotations", split)
        try:
            checks = check_videos(name, dataset.adapter, dataset.annotations, dataset.labels,
                                  dataset.video_root, dataset.format)
        except AnnotationError as err:
            raise ConfigError(f"dataset_specs.{name}.annotations: {err}") from err
        empty = [c for c in checks if c.listed and not c.found]
        if empty and len(empty) == len(checks):
            # Nothing to evaluate at all: almost always a wrong path or layout.
            errors += [c.nothing_found() for c in empty]
        for check in checks:
            lines.append(f"  {check.line()}")
            if check in empty and len(empty) < len(checks):
                warnings.append(f"{check.nothing_found()}. This split will have no result; "
                                "the others are scored, and the tables say so.")
            elif check.missing_share > warn_missing_share:
                warnings.append(
                    f"{check.dataset} split {check.split}: {check.missing} of {check.listed} "
                    f"listed videos ({check.missing_share:.0%}) are missing under "
                    f"{check.root}; e.g. {check.example}. Its numbers are on the videos found "
                    "only, and the tables flag them."
                )
    lines.append("  models:")
    lines += _model_lines(plan)
    return Preflight(lines, errors, warnings)
