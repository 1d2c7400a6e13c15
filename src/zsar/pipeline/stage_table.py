"""The stage table: what the workflow and the library agree on, written once.

One entry per rule (`STAGES`), as data, the way `zsar.core.method` holds the method:
- its outputs, as path templates whose wildcards are named in `WILDCARDS` (each with the
  format that writes its values, from which the Snakefile's wildcard constraints come);
- the inputs it reads from other stages, with how they enter its key: by date, ignored
  (`ancient`, for a file it reads only for paths), or by content (its rows are a param);
- its cache key: the config keys it reads (`settings`), the model identities its wildcards
  name (`models`), the other things it is keyed on (`keyed_on`, in words) and its script,
  whose code version is a param;
- the section of a score's provenance chain it contributes to (`chain`).

The rules read their outputs, inputs and final targets from here (`workflow/rules/common.smk`),
the library finds results through the same templates (`path`, `glob`), and
`zsar explain-cache` prints from it which stages each config key re-runs (`reruns`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from string import Formatter
from typing import Any

from zsar.core.names import RUN_NAME, SAMPLING_NAME, SHARD_NAME, NameFormat, one_of

RESULTS = "results"
# A zsar.pipeline.plan.RunPlan. Not imported: the modules that find results through this
# table (the tables' and the report's jobs) would then import the planner, and through it
# every model backend.
RunPlan = Any
MODEL_SECTIONS = ("backbones", "captioners", "llms")


# --- Wildcards: each names its values one way ---------------------------------------------


@dataclass(frozen=True)
class Wildcard:
    """A wildcard of the output templates: its values in this run (`planned`), the format
    that writes them (None: a name the config or the registry gives), and the pattern the
    Snakefile constrains it to: the format's, else one of the names `known` gives (the
    registry's, for a model) or, without it, one of the planned values."""

    doc: str
    planned: Callable[[RunPlan, Sequence[str]], list[str]]
    format: NameFormat | None = None
    known: Callable[[RunPlan, Sequence[str]], list[str]] | None = None

    def pattern(self, plan: RunPlan, runs: Sequence[str]) -> str:
        if self.format is not None and self.known is None:
            return self.format.pattern
        return one_of((self.known or self.planned)(plan, runs))


def _registry(*sections: str) -> Callable[[RunPlan, Sequence[str]], list[str]]:
    def names(plan: RunPlan, runs: Sequence[str]) -> list[str]:
        return [name for s in sections for name in plan.registry[s]]

    return names


WILDCARDS: dict[str, Wildcard] = {
    "dataset": Wildcard("a dataset of the run", lambda plan, runs: list(plan.datasets)),
    "sampling": Wildcard("how frames were sampled (zsar.pipeline.plan.SAMPLING_NAME)",
                         lambda plan, runs: [plan.sampling], SAMPLING_NAME),
    "shard": Wildcard("a shard of a dataset's videos (SHARD_NAME)",
                      lambda plan, runs: plan.shard_ids(), SHARD_NAME),
    "backbone": Wildcard("a backbone of the registry", lambda plan, runs: list(plan.backbones),
                         known=_registry("backbones")),
    "captioner": Wildcard("a captioner of the registry",
                          lambda plan, runs: [plan.captioner] if plan.captioner else [],
                          known=_registry("captioners")),
    "llm": Wildcard("an LLM of the registry", lambda plan, runs: [plan.llm],
                    known=_registry("llms")),
    "model": Wildcard("any model of the registry", _registry(*MODEL_SECTIONS)),
    # Written by RUN_NAME; constrained to the runs planned, so that no other name matches.
    "run": Wildcard("a scored run: variant and λ (RUN_NAME)", lambda plan, runs: list(runs),
                    RUN_NAME, known=lambda plan, runs: list(runs)),
}  # fmt: skip


def wildcard_patterns(plan: RunPlan, runs: Sequence[str]) -> dict[str, str]:
    """The Snakefile's wildcard constraints: a planner-made name matches its format's
    pattern; a name the config or the registry gives (or a run) is one of those planned."""
    return {name: wildcard.pattern(plan, runs) for name, wildcard in WILDCARDS.items()}


def wildcards_of(template: str) -> list[str]:
    return [name for _, name, _, _ in Formatter().parse(template) if name]


# --- Stages ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Input:
    """An input a stage reads from another stage's output.

    `expand`: wildcards the reader takes every planned value of (a gather reads every
    shard); `fixed`: wildcards the run plan fixes for the reader (the run's sampling, LLM,
    captioner, the report's run); `how`: "date" (a newer input re-runs the reader),
    "ancient" (read for paths only, its date ignored) or "content" (its date ignored, its
    rows a param: only another content re-runs the reader); `when`: a variant trait
    (zsar.core.method.Variant) without which a scored run does not read it.
    """

    stage: str
    output: str
    expand: tuple[str, ...] = ()
    fixed: tuple[str, ...] = ()
    how: str = "date"
    when: str | None = None


@dataclass(frozen=True)
class ModelKey:
    """A model identity in a stage's key: the registry section, the wildcard (or planned
    name) that names it, and the side of a backbone the stage uses (`x-side` in the
    registry schema: a video-only field re-runs no text job) or `fetch` (what is
    downloaded, `x-fetch-key`)."""

    section: str
    wildcard: str
    side: str = "all"
    # The job loads the model, so it waits on its ready file and reads the files the
    # entry names (a score holds a backbone's identity without loading it).
    loads: bool = True


@dataclass(frozen=True)
class Condition:
    """Where a stage reads a setting for some runs only: in words, and, where a config
    decides it, the config key and value under which it does."""

    text: str
    key: str | None = None
    value: Any = None

    def holds(self, config: Mapping[str, Any] | None) -> bool:
        if config is None or self.key is None:
            return True
        value: Any = config
        for part in self.key.split("."):
            value = value[part]
        return value == self.value


@dataclass(frozen=True)
class Stage:
    outputs: Mapping[str, str]
    script: str | None
    inputs: Mapping[str, Input] = field(default_factory=dict)
    settings: tuple[str, ...] = ()  # dotted config keys in its cache key
    models: tuple[ModelKey, ...] = ()
    # Registry fields of its models held as params of their own (not in the identity).
    model_fields: tuple[str, ...] = ()
    keyed_on: tuple[str, ...] = ()  # other parts of its key, in words
    chain: str | None = None  # the section of a score's provenance chain it feeds
    # Settings it reads only under a condition (explain-cache prints them).
    conditions: Mapping[str, Condition] = field(default_factory=dict)


def _dataset(path: str) -> str:
    return f"{RESULTS}/{{dataset}}/{path}"


_SHARD = "{sampling}/{shard}"
_EMBEDDINGS = "embeddings/{backbone}"
_CLASSES_BY_CONTENT = Input("classes", "classes", how="content")
_REPLANNED = Input("manifest", "video_files", how="ancient")
_BACKBONE_TEXT = (ModelKey("backbones", "backbone", "text"),)
_REPORT = f"{RESULTS}/report"
# What a scored run reads: a variant's kinds of class text and its caption, nothing else.
_SCORED_WITH = {
    "manifest": Input("manifest", "manifest"),
    "classes": Input("classes", "classes"),
    "videos": Input("gather_video_embeddings", "videos"),
    "class_names": Input("embed_class_names", "class_names"),
    "class_texts": Input("embed_class_texts", "class_texts", fixed=("llm",),
                         when="uses_descriptors"),
    "descriptors": Input("descriptors", "descriptors", fixed=("llm",), when="uses_descriptors"),
    "captions": Input("embed_captions", "captions", fixed=("captioner",), when="caption"),
}

STAGES: dict[str, Stage] = {
    "demo_data": Stage(
        outputs={"annotations": "resources/demo/annotations.txt",
                 "labels": "resources/demo/labels.csv", "videos": "resources/demo/videos"},
        script="demo_data", settings=("demo_clips_per_class", "seed")),
    "manifest": Stage(
        outputs={"manifest": _dataset("manifest.parquet"),
                 "video_files": _dataset("video_files.tsv")},
        script="manifest", settings=("data_root", "dataset_specs"),
        keyed_on=("the annotation files and the dates of the video folders",)),
    "classes": Stage(
        outputs={"classes": _dataset("classes.parquet")}, script="classes",
        keyed_on=("the annotation and label files' content",), chain="dataset"),
    "frames": Stage(
        outputs={"frames": _dataset(f"frames/{_SHARD}.parquet"),
                 "failures": _dataset(f"frames/{_SHARD}.failures.parquet")},
        script="frames",
        inputs={"video_files": Input("manifest", "video_files"),
                "manifest": Input("manifest", "manifest", how="ancient")},
        settings=("frames.num_frames", "frames.short_side", "frames.jpeg_quality",
                  "frames.sampling", "frames.stride", "frames.views.clips"),
        conditions={"frames.stride": Condition("under `frames.sampling: stride` only",
                                               "frames.sampling", "stride")},
        chain="frames"),
    "caption_shard": Stage(
        outputs={"captions": _dataset("captions/{captioner}/{shard}.parquet"),
                 "failures": _dataset("captions/{captioner}/{shard}.failures.parquet")},
        script="captions",
        inputs={"frames": Input("frames", "frames", fixed=("sampling",)),
                "replanned": _REPLANNED},
        settings=("captions.prompt_set", "captions.max_new_tokens"),
        models=(ModelKey("captioners", "captioner"),),
        keyed_on=("the prompt set's file", "a file captioner's caption file"),
        chain="captions"),
    "gather_captions": Stage(
        outputs={"captions": _dataset("captions/{captioner}.parquet")}, script="gather",
        inputs={"shards": Input("caption_shard", "captions", expand=("shard",)),
                "replanned": _REPLANNED}),
    "descriptors": Stage(
        outputs={"descriptors": _dataset("descriptors/{llm}.json")}, script="descriptors",
        inputs={"classes": _CLASSES_BY_CONTENT},
        settings=("descriptors.prompt_set", "descriptors.max_new_tokens",
                  "descriptors.repair_attempts"),
        models=(ModelKey("llms", "llm"),),
        keyed_on=("the prompt set's file", "a file LLM's descriptor files"),
        chain="descriptors"),
    "embed_videos": Stage(
        outputs={"videos": _dataset(f"{_EMBEDDINGS}/videos/{{shard}}.parquet")},
        script="embed_videos",
        inputs={"frames": Input("frames", "frames", fixed=("sampling",)),
                "replanned": _REPLANNED},
        settings=("frames.views",), models=(ModelKey("backbones", "backbone", "video"),),
        model_fields=("pooling",), chain="backbone"),
    "gather_video_embeddings": Stage(
        outputs={"videos": _dataset(f"{_EMBEDDINGS}/videos.parquet")}, script="gather",
        inputs={"shards": Input("embed_videos", "videos", expand=("shard",)),
                "replanned": _REPLANNED}),
    "embed_class_names": Stage(
        outputs={"class_names": _dataset(f"{_EMBEDDINGS}/class-names.parquet")},
        script="embed_class_names", inputs={"classes": _CLASSES_BY_CONTENT},
        models=_BACKBONE_TEXT, model_fields=("name_prompt", "class_names"),
        keyed_on=("the dataset's class-name rule",), chain="backbone"),
    "embed_class_texts": Stage(
        outputs={"class_texts": _dataset(f"{_EMBEDDINGS}/classes-{{llm}}.parquet")},
        script="embed_class_texts",
        inputs={"classes": _CLASSES_BY_CONTENT,
                "descriptors": Input("descriptors", "descriptors")},
        settings=("descriptors.templates",), models=_BACKBONE_TEXT, chain="descriptors"),
    "embed_captions": Stage(
        outputs={"captions": _dataset(f"{_EMBEDDINGS}/captions-{{captioner}}.parquet")},
        script="embed_captions",
        inputs={"captions": Input("gather_captions", "captions"), "replanned": _REPLANNED},
        models=_BACKBONE_TEXT, chain="captions"),
    "failures": Stage(
        outputs={"failures": _dataset("failures.parquet")}, script="gather_failures",
        inputs={"manifest": Input("manifest", "manifest"),
                "frames": Input("frames", "failures", expand=("shard",), fixed=("sampling",)),
                "captions": Input("caption_shard", "failures", expand=("shard",),
                                  fixed=("captioner",), when="caption")}),
    "score": Stage(
        outputs={"scores": _dataset("scores/{backbone}/{run}.parquet"),
                 "metrics": _dataset("metrics/{backbone}/{run}.json")},
        script="score",
        inputs=_SCORED_WITH,
        settings=("scoring.weights", "scoring.topk", "failure_policy", "scoring.lambda",
                  "scoring.fusion", "statistics.resamples", "statistics.seed",
                  "statistics.level"),
        models=(ModelKey("backbones", "backbone", loads=False),),
        model_fields=("name_prompt", "class_names", "trained_on"),
        conditions={"scoring.weights": Condition("the runs whose variant uses that kind"),
                    "scoring.lambda": Condition("the caption variants"),
                    "scoring.fusion": Condition("the caption variants")}),
    "compare": Stage(
        outputs={"comparisons": _dataset("comparisons/{backbone}.json"),
                 "class_gains": _dataset("per_class_gains/{backbone}.parquet")},
        script="compare",
        inputs={"scores": Input("score", "scores", expand=("run",)),
                "classes": Input("classes", "classes")},
        settings=("scoring.variants", "scoring.lambda", "failure_policy", "statistics")),
    "explain": Stage(
        outputs={"explanations": _dataset("explanations/{backbone}/{run}.parquet")},
        script="explain",
        # What its run scored with, its scores, the hierarchy paths (every variant shows
        # them) and the captions' text for a caption variant.
        inputs={**_SCORED_WITH,
                "scores": Input("score", "scores"),
                "descriptors": Input("descriptors", "descriptors", fixed=("llm",)),
                "caption_texts": Input("gather_captions", "captions", fixed=("captioner",),
                                       when="caption")},
        settings=("scoring.weights", "scoring.topk", "failure_policy", "scoring.lambda",
                  "scoring.fusion", "descriptors.templates"),
        model_fields=("name_prompt",)),
    "tables": Stage(
        outputs={"md": f"{RESULTS}/tables/results.md", "csv": f"{RESULTS}/tables/results.csv",
                 "tex": f"{RESULTS}/tables/results.tex"},
        script="tables",
        inputs={"metrics": Input("score", "metrics", expand=("dataset", "backbone", "run")),
                "comparisons": Input("compare", "comparisons",
                                     expand=("dataset", "backbone"))},
        settings=("warn_missing_share", "reference_results"),
        keyed_on=("the published numbers' file", "the records other commands left")),
    "report_tables_html": Stage(
        outputs={"html": f"{_REPORT}/tables.html"}, script="report_tables_html",
        inputs={"metrics": Input("score", "metrics", expand=("dataset", "backbone", "run")),
                "comparisons": Input("compare", "comparisons",
                                     expand=("dataset", "backbone"))},
        settings=("warn_missing_share", "reference_results"),
        keyed_on=("the published numbers' file", "the records other commands left")),
    "report_ablation": Stage(
        outputs={"png": f"{_REPORT}/{{dataset}}/ablation.png"}, script="report_ablation",
        inputs={"metrics": Input("score", "metrics", expand=("backbone", "run"))}),
    "report_class_plots": Stage(
        outputs={"confusion": f"{_REPORT}/{{dataset}}/{{backbone}}/confusion.png",
                 "per_class": f"{_REPORT}/{{dataset}}/{{backbone}}/per_class_accuracy.png"},
        script="report_class_plots",
        inputs={"scores": Input("score", "scores", fixed=("report_run",)),
                "classes": Input("classes", "classes")},
        settings=("report.confusion_max_classes",)),
    "report_explanations": Stage(
        outputs={
            "correct": f"{_REPORT}/{{dataset}}/{{backbone}}/explanations-correct.html",
            "wrong": f"{_REPORT}/{{dataset}}/{{backbone}}/explanations-wrong.html"},
        script="report_explanations",
        inputs={"explanations": Input("explain", "explanations", fixed=("report_run",)),
                "frames": Input("frames", "frames", expand=("shard",), fixed=("sampling",))},
        settings=("report.explanations_per_group", "seed")),
    "report_class_gains": Stage(
        outputs={"html": f"{_REPORT}/{{dataset}}/{{backbone}}/per_class_gains.html"},
        script="report_class_gains",
        inputs={"class_gains": Input("compare", "class_gains")}),
    "report_summary": Stage(
        outputs={"html": f"{_REPORT}/{{dataset}}/summary.html"}, script="report_summary",
        inputs={"metrics": Input("score", "metrics", expand=("backbone", "run")),
                "descriptors": Input("descriptors", "descriptors", fixed=("llm",)),
                "failures": Input("failures", "failures")}),
    "report_runs": Stage(
        outputs={"html": f"{_REPORT}/runs.html"}, script="report_runs",
        inputs={"metrics": Input("score", "metrics", expand=("dataset", "backbone", "run"))},
        settings=("data_root",),
        keyed_on=("the run's config files and --config values",)),
    # Its output is a model's ready file, whose path zsar.models.registry.ready_path
    # defines; every stage with a model waits on it (downstream).
    "fetch_model": Stage(outputs={}, script="fetch_model",
                         models=(ModelKey("any", "model", "fetch", loads=False),)),
}  # fmt: skip

# The files a run ends with (rule all): these outputs over the planned values of their
# wildcards (a score's scores and a comparison's per-class gains come with them).
FINAL_OUTPUTS = (("score", "metrics"), ("compare", "comparisons"), ("tables", "md"),
                 ("tables", "csv"), ("tables", "tex"), ("explain", "explanations"),
                 ("report_tables_html", "html"), ("report_runs", "html"),
                 ("report_ablation", "png"), ("report_summary", "html"),
                 ("report_class_plots", "confusion"), ("report_class_plots", "per_class"),
                 ("report_explanations", "correct"), ("report_explanations", "wrong"),
                 ("report_class_gains", "html"))


# --- Paths ------------------------------------------------------------------------------------


def template(stage: str, output: str) -> str:
    """The path template of a stage's output, its wildcards in braces."""
    try:
        return STAGES[stage].outputs[output]
    except KeyError:
        raise KeyError(f"the stage table has no output {stage}.{output}") from None


def path(stage: str, output: str, results: str = RESULTS, **values: Any) -> str:
    """A stage output's path for these wildcard values, under another results folder if
    given (zsar predict's --results)."""
    text = template(stage, output).format(**values)
    return results + text[len(RESULTS):] if text.startswith(RESULTS + "/") else text


def glob(stage: str, output: str, results: str = RESULTS, **values: Any) -> str:
    """The glob pattern of a stage output: the wildcards not given match anything."""
    names = wildcards_of(template(stage, output))
    return path(stage, output, results, **{n: values.get(n, "*") for n in names})


def parse_path(stage: str, output: str, text: str | os.PathLike) -> tuple[str, dict[str, str]]:
    """(results folder, wildcard values) of a path a stage output's template wrote, the
    results folder being whatever stands before the template's `results/` part; raises
    ValueError for a path the template does not write."""
    pattern = re.escape(template(stage, output))
    for name in dict.fromkeys(wildcards_of(template(stage, output))):
        # A name the planner writes is read with its format's pattern, so a shard's
        # failures file is no shard named `000-of-004.failures`.
        name_format = WILDCARDS[name].format
        body = name_format.pattern if name_format else "[^/]+"
        pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>{body})", 1)
        pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P={name})")
    if pattern.startswith(RESULTS + "/"):
        pattern = "(?P<_results>.*?)" + pattern[len(RESULTS):]
    found = re.fullmatch(pattern, Path(text).as_posix())
    if found is None:
        raise ValueError(f"{text}: not a path of {stage}.{output} "
                         f"({template(stage, output)})")
    values = found.groupdict()
    return values.pop("_results", RESULTS), values


def expand(stage: str, output: str, values: Mapping[str, Sequence[Any]]) -> list[str]:
    """Every path of a stage output over these values of its wildcards, in the order the
    values are given (first wildcard slowest)."""
    names = wildcards_of(template(stage, output))
    unique = list(dict.fromkeys(names))
    return [path(stage, output, **dict(zip(unique, combo, strict=True)))
            for combo in product(*(values[n] for n in unique))]


@dataclass(frozen=True)
class Planned:
    """The planned values of each wildcard, and the single values the plan fixes."""

    plan: RunPlan
    runs: Sequence[str]
    report_run: str

    def values(self, wildcard: str) -> list[str]:
        if wildcard == "report_run":
            return [self.report_run]
        return WILDCARDS[wildcard].planned(self.plan, self.runs)

    def fixed(self, wildcard: str) -> str:
        """The run plan's one value of a wildcard (its sampling, LLM, captioner)."""
        single = {"sampling": self.plan.sampling, "llm": self.plan.llm,
                  "captioner": self.plan.captioner, "report_run": self.report_run}
        return single[wildcard]


def input_paths(stage: str, name: str, wildcards: Mapping[str, str],
                planned: Planned) -> str | list[str]:
    """The path (or, for expanded wildcards, the paths) of one input of a stage, for a
    job's wildcards."""
    entry = STAGES[stage].inputs[name]
    values: dict[str, list[str]] = {}
    for wildcard in wildcards_of(template(entry.stage, entry.output)):
        if wildcard in entry.expand:
            values[wildcard] = planned.values(wildcard)
        elif wildcard in entry.fixed:
            values[wildcard] = [planned.fixed(wildcard)]
        elif wildcard == "run" and "report_run" in entry.fixed:
            values[wildcard] = [planned.fixed("report_run")]
        else:
            values[wildcard] = [wildcards[wildcard]]
    paths = expand(entry.stage, entry.output, values)
    return paths if entry.expand else paths[0]


def final_targets(planned: Planned) -> list[str]:
    """Every final output over the planned values of its wildcards."""
    targets = []
    for stage, output in FINAL_OUTPUTS:
        names = wildcards_of(template(stage, output))
        targets += expand(stage, output, {n: planned.values(n) for n in names})
    return targets


# --- What re-runs when --------------------------------------------------------------------


def readers(stage: str) -> list[tuple[str, Input]]:
    """(stage, input) of every stage that reads one of this stage's outputs. (A stage that
    loads a model also waits on its ready file; what re-fetches a model is in the
    identity of every stage that loads it, so those are keyed by the edit themselves.)"""
    return [(name, entry) for name, s in STAGES.items() for entry in s.inputs.values()
            if entry.stage == stage]


def downstream(stages: Iterable[str], content_changed: bool = True) -> list[str]:
    """The stages that re-run after these did, in table order: a reader of a re-run
    stage's output re-runs, except through an input read for its paths only (`ancient`),
    and through one keyed by its content only where the content changed."""
    seen = set(stages)
    pending = list(seen)
    while pending:
        for reader, entry in readers(pending.pop()):
            if reader in seen or entry.how == "ancient":
                continue
            if entry.how == "content" and not content_changed:
                continue
            seen.add(reader)
            pending.append(reader)
    return [name for name in STAGES if name in seen]


# Config keys that pick the values of a wildcard: a new value writes new paths, so the
# stages whose outputs carry that wildcard run for it (a previous value's outputs stay).
NAMING_KEYS = {"datasets": "dataset", "backbones": "backbone", "captions.captioner": "captioner",
               "descriptors.llm": "llm", "scoring.variants": "run", "scoring.lambda": "run",
               "shards": "shard"}


def _related(own: str, setting: str) -> bool:
    """A stage keyed by `own` reads `setting` (the same key, a block it is part of, or a
    key inside it)."""
    return own == setting or setting.startswith(own + ".") or own.startswith(setting + ".")


def keyed_by(setting: str, config: Mapping[str, Any] | None = None) -> list[str]:
    """The stages whose cache key holds a config key (under `config`, where a condition
    decides it) or whose output paths carry a wildcard the key picks, in table order."""
    named = NAMING_KEYS.get(setting)
    found = []
    for name, s in STAGES.items():
        keyed = any(_related(k, setting) and (k not in s.conditions
                                              or s.conditions[k].holds(config))
                    for k in s.settings)
        carries = named is not None and any(named in wildcards_of(t)
                                            for t in s.outputs.values())
        if keyed or carries:
            found.append(name)
    return found


def reruns(setting: str, config: Mapping[str, Any] | None = None) -> list[str]:
    """The stages a change of one config key re-runs: those keyed by it, and what reads
    their outputs."""
    return downstream(keyed_by(setting, config))


def setting_conditions(setting: str) -> dict[str, str]:
    """stage -> the condition under which it reads the key, where only some runs do."""
    return {name: s.conditions[key].text for name, s in STAGES.items()
            for key in s.conditions if _related(key, setting)}
