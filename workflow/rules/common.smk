# Helpers shared by all rule files (the resolved run plan, paths, input functions) and each
# job's cache key.
#
# The cache key of a job is what its output depends on and nothing else (docs/cache.md,
# "What re-runs when"): its input files (by content where Snakemake can checksum them), its
# params, and its code version. Params hold the config values the job reads (never batch
# sizes, workers or devices), a model's identity (never its description), and `code`, a
# hash of what the rule's script computes with (zsar.data.provenance.code_version). The profiles
# turn Snakemake's mtime-based `code` trigger off in favour of that param.
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from zsar.pipeline.config import ConfigError, lambdas, validate_config
from zsar.stages.embed import DEFAULT_POOLING
from zsar.data.io import rows_digest
from zsar.core.method import VARIANTS, kind_weights
from zsar.pipeline.plan import (
    parse_variant_run,
    preflight,
    resolve_run,
    variant_runs,
    wildcard_patterns,
)
from zsar.data.provenance import code_version
from zsar.core.references import ReferenceFileError, load_references
from zsar.pipeline.resources import need
from zsar.stages.scoring import interval_options
from zsar.models.registry import (
    backend_of,
    fetch_identity,
    get_entry,
    model_identity,
    ready_path,
    side_identity,
)

try:
    validate_config(config)
    PLAN = resolve_run(config, Path(workflow.basedir) / "config")
    # Only where the run is planned: jobs on cluster nodes parse this file too.
    PREFLIGHT = (
        preflight(PLAN, config["warn_missing_share"])
        if workflow.is_main_process
        else None
    )
except (ConfigError, OSError) as err:
    raise WorkflowError(f"zsar config error: {err}") from None
if PREFLIGHT is not None:
    print(PREFLIGHT.text(), file=sys.stderr)
    if PREFLIGHT.errors:
        raise WorkflowError("zsar: no video found:\n" + "\n".join(PREFLIGHT.errors))

RESOURCES = config["resources"]
LAMBDAS = lambdas(config["scoring"])
RUNS = variant_runs(PLAN.variants, LAMBDAS)
SHARDS = PLAN.shard_ids()


CODE_VERSIONS = {}


def code(script):
    """The code version of workflow/scripts/{script}.py: changes when what it computes with
    changes, not for a touch, a reworded comment or a reformatting."""
    if script not in CODE_VERSIONS:
        path = Path(workflow.basedir) / "workflow" / "scripts" / f"{script}.py"
        CODE_VERSIONS[script] = code_version(path)
    return CODE_VERSIONS[script]


def _inputs_mb(rule, input):
    """The size in MB of the inputs zsar.pipeline.resources counts for the rule (those it names, else
    all). A missing input raises FileNotFoundError naming it, and Snakemake sizes the job
    once its inputs exist."""

    def mb(files):
        return sum(os.path.getsize(f) for f in files) / 1e6

    if not need(rule).inputs:
        return mb(input)
    named = {k: v if isinstance(v, list) else [v] for k, v in input.items()}
    return need(rule).input_mb({k: mb(v) for k, v in named.items()})


def mem_mb(rule):
    """The rule's memory request in MB, from its inputs' size (zsar.pipeline.resources)."""
    return lambda wildcards, input, attempt: need(rule).mem_mb(
        _inputs_mb(rule, input), attempt
    )


def runtime(rule):
    """The rule's wall-time request in minutes, from its inputs' size (zsar.pipeline.resources)."""
    return lambda wildcards, input, attempt: need(rule).runtime(
        _inputs_mb(rule, input), attempt
    )


def registry_entry(section, name):
    return get_entry(PLAN.registry, section, name)


def registry_section(name):
    """The registry section that holds `name` (fetch_model's wildcard names any model)."""
    for section, entries in PLAN.registry.items():
        if name in entries:
            return section
    raise WorkflowError(f"'{name}' is not in the model registry")


def model_key(section, name):
    """A model's part of a cache key: its identity, and that of the model it builds on."""
    entry = registry_entry(section, name)
    key = model_identity(section, entry)
    if entry.get("base"):
        key["base"] = model_key(section, entry["base"])
    return key


def side_model_key(name, side):
    """A backbone's key for its video or text jobs: a field of the video side only
    (`x-side: video` in the registry schema: preprocessing and pooling) re-runs no text job.
    """
    entry = registry_entry("backbones", name)
    key = side_identity("backbones", entry, side)
    if entry.get("base"):
        key["base"] = side_model_key(entry["base"], side)
    return key


def pooling_of(backbone):
    """How the backbone's checkpoint pools frame embeddings (zsar.stages.embed.POOLINGS)."""
    return registry_entry("backbones", backbone).get("pooling", DEFAULT_POOLING)


def frames_settings():
    """The frames config as the jobs' keys hold it: TSN reads no stride, and its settings
    keep the keys they had before there was a choice of sampler, so a stride edit (or an
    upgrade) under TSN re-runs nothing."""
    frames = dict(config["frames"])
    if frames["sampling"] == "tsn":
        del frames["stride"], frames["sampling"]
    return frames


def frames_params():
    """What the frames stage decodes: the frame settings and the temporal clips (each clip
    num_frames more frames); the spatial crops are cut at the embedding stage, so changing
    them decodes nothing again."""
    frames = {k: v for k, v in frames_settings().items() if k != "views"}
    return {**frames, "clips": config["frames"]["views"]["clips"]}


def text_model_key(name):
    return side_model_key(name, "text")


def video_model_key(name):
    return side_model_key(name, "video")


def fetch_key(name):
    """fetch_model's cache key: what is downloaded or built, not how it is used later."""
    section = registry_section(name)
    return fetch_identity(section, registry_entry(section, name))


def model_ready(section, name):
    """Ready files of a model and of the model it builds on (`base:`; ViFi-CLIP takes its
    token table from OpenAI's CLIP), so no GPU job starts before both are fetched. A
    backend that fetches nothing (a server, a file) has none."""
    entry = registry_entry(section, name)
    fetched = backend_of(section, entry).fetches_weights
    flags = [str(ready_path(RESOURCES, name))] if fetched else []
    if entry.get("base"):
        flags += model_ready(section, entry["base"])
    return flags


def gpus_for(section, name):
    """One GPU for a backend that runs a model locally; files and HTTP endpoints need none."""
    return 1 if backend_of(section, registry_entry(section, name)).uses_gpu else 0


def model_files(section, name):
    """Files the entry names that the stage reads (a caption or descriptors file), as
    inputs, so that editing one re-runs the stage."""
    entry = registry_entry(section, name)
    return backend_of(section, entry).input_files(entry)


def dataset_plan(wildcards):
    return PLAN.datasets[wildcards.dataset]


def manifest_inputs(wildcards):
    plan = dataset_plan(wildcards)
    files = plan.annotation_files()
    if plan.generated:
        # The demo's videos are generated by a rule; wait for them so missing counts are real.
        files.append("resources/demo/videos")
    return files


def classes_inputs(wildcards):
    """A generated dataset's files (the demo's) are rule outputs, so they are inputs here;
    a benchmark's are keyed by content instead (classes_key), not by where they are."""
    plan = dataset_plan(wildcards)
    return plan.annotation_files() if plan.generated else []


def classes_key(wildcards):
    try:
        return dataset_plan(wildcards).class_list_key()
    except ConfigError as err:
        raise WorkflowError(f"zsar config error: {err}") from None


def class_list_content(wildcards):
    """The class list's rows (not its file's date or provenance): the key of the jobs that
    read it with a model, the LLM descriptors above all, so that lists moved to another
    folder (same bytes) re-run the classes checkpoint and none of them. The file is absent
    only before the checkpoint has run; its dependents are planned again once it has."""
    path = Path(f"results/{wildcards.dataset}/classes.parquet")
    return rows_digest(path) if path.exists() else None


def replanned_after_manifest(wildcards):
    """The manifest checkpoint's video list, its date ignored (ancient).

    Snakemake plans the direct dependents of a checkpoint again once it has run; a job
    planned only once keeps a reason to run that may since have gone away (its input's
    producer turned out not to need a run). The rules that decode, caption or embed videos
    list this file, so they are planned again too: videos moved to a new root re-run the
    manifest and none of them (docs/cache.md).
    """
    return ancient(f"results/{wildcards.dataset}/video_files.tsv")


def frames_shard(wildcards):
    return (
        f"results/{wildcards.dataset}/frames/{PLAN.sampling}/{wildcards.shard}.parquet"
    )


def frames_failures(wildcards):
    return expand(
        "results/{dataset}/frames/{sampling}/{shard}.failures.parquet",
        dataset=wildcards.dataset,
        sampling=PLAN.sampling,
        shard=SHARDS,
    )


def all_frames():
    """Every frames shard of the run and its failures, for the frames-only target."""
    return expand(
        "results/{dataset}/frames/{sampling}/{shard}{suffix}",
        dataset=PLAN.datasets,
        sampling=PLAN.sampling,
        shard=SHARDS,
        suffix=[".parquet", ".failures.parquet"],
    )


def caption_failures(wildcards):
    if PLAN.captioner is None:
        return []
    return expand(
        "results/{dataset}/captions/{captioner}/{shard}.failures.parquet",
        dataset=wildcards.dataset,
        captioner=PLAN.captioner,
        shard=SHARDS,
    )


def variant_of(wildcards):
    return VARIANTS[parse_variant_run(wildcards.run, LAMBDAS)[0]]


def scoring_inputs(wildcards):
    """What the run's variant scores with, and nothing else: descriptor embeddings only for
    the descriptor variants, caption embeddings only for the caption variants."""
    variant = variant_of(wildcards)
    base = f"results/{wildcards.dataset}"
    embeddings = f"{base}/embeddings/{wildcards.backbone}"
    inputs = {
        "manifest": f"{base}/manifest.parquet",
        "classes": f"{base}/classes.parquet",
        "videos": f"{embeddings}/videos.parquet",
        "class_names": f"{embeddings}/class-names.parquet",
    }
    if variant.uses_descriptors:
        inputs["class_texts"] = f"{embeddings}/classes-{PLAN.llm}.parquet"
        inputs["descriptors"] = f"{base}/descriptors/{PLAN.llm}.json"
    if variant.caption:
        inputs["captions"] = f"{embeddings}/captions-{PLAN.captioner}.parquet"
    return inputs


def explain_inputs(wildcards):
    """What scoring read, the run's scores, the hierarchy paths (shown for every variant),
    and the captions' text for the caption variants."""
    base = f"results/{wildcards.dataset}"
    inputs = {
        **scoring_inputs(wildcards),
        "scores": f"{base}/scores/{wildcards.backbone}/{wildcards.run}.parquet",
        "descriptors": f"{base}/descriptors/{PLAN.llm}.json",
    }
    if variant_of(wildcards).caption:
        inputs["caption_texts"] = f"{base}/captions/{PLAN.captioner}.parquet"
    return inputs


def name_prompt(wildcards):
    """The backbone's class-name protocol (templates, how they combine) as params."""
    return PLAN.name_prompts[wildcards.backbone].as_params()


def class_name_rule(wildcards):
    """How the backbone spells the dataset's class names (its own rule, else the dataset's):
    the class-name job's key is the texts it embeds, i.e. the classes (an input) and this.
    """
    return PLAN.class_name_rule(wildcards.dataset, wildcards.backbone)


def scoring_params(wildcards):
    """Only what changes this variant's scores: the weights of the kinds it uses, λ and the
    fusion for a caption variant, top-k, the failure policy, and how the backbone's name
    templates combine."""
    name, lam = parse_variant_run(wildcards.run, LAMBDAS)
    variant = VARIANTS[name]
    scoring = config["scoring"]
    prompt = PLAN.name_prompts[wildcards.backbone]
    params = {
        "variant": name,
        "weights": kind_weights(variant.kinds, scoring["weights"]),
        "topk": scoring["topk"],
        "failure_policy": config["failure_policy"],
        "combine": prompt.combine,
        "scale": prompt.scale,
    }
    if variant.caption:
        params.update({"lambda": lam, "fusion": scoring["fusion"]})
    return params


def scoring_chain(wildcards):
    """What made the inputs of this run's scores, for its provenance and config hash: the
    dataset's lists (by content), the frames, the backbone, and, for a variant that uses
    them, the descriptors' LLM and the captioner with their settings; each with the code
    version of its stage."""
    variant = variant_of(wildcards)
    chain = {
        "dataset": {"name": wildcards.dataset, **classes_key(wildcards)},
        "frames": {**frames_settings(), "code": code("frames")},
        "backbone": {
            **model_key("backbones", wildcards.backbone),
            "name_prompt": name_prompt(wildcards),
            "class_names": class_name_rule(wildcards),
            # No embedding's key (it changes none), but the record's: it marks a result not
            # zero-shot, so an edit re-scores that backbone (cheap) and re-makes the tables.
            "trained_on": registry_entry("backbones", wildcards.backbone).get(
                "trained_on", []
            ),
            "code": {s: code(s) for s in ("embed_videos", "embed_class_names")},
        },
    }
    if variant.uses_descriptors:
        descriptors = config["descriptors"]
        chain["descriptors"] = {
            "llm": model_key("llms", PLAN.llm),
            "prompt_set": descriptors["prompt_set"],
            "max_new_tokens": descriptors["max_new_tokens"],
            "repair_attempts": descriptors["repair_attempts"],
            "templates": descriptors["templates"],
            "code": {s: code(s) for s in ("descriptors", "embed_class_texts")},
        }
    if variant.caption:
        captions = config["captions"]
        chain["captions"] = {
            "captioner": model_key("captioners", PLAN.captioner),
            "prompt_set": captions["prompt_set"],
            "max_new_tokens": captions["max_new_tokens"],
            "code": {s: code(s) for s in ("captions", "embed_captions")},
        }
    return chain


def interval_params():
    """What each run's accuracy intervals depend on: `statistics` without alpha, which only
    the comparisons use (so changing alpha re-scores nothing)."""
    return interval_options(config["statistics"])


def compared_runs():
    """[run, variant, λ] of every run in the tables' order, λ None for a variant without a
    caption: the compare rule pairs full with the single-component runs at its λ."""
    runs = []
    for run in RUNS:
        variant, lam = parse_variant_run(run, LAMBDAS)
        runs.append([run, variant, lam if VARIANTS[variant].caption else None])
    return runs


def explain_templates(wildcards):
    """The descriptor templates, for a variant whose explanations show descriptors."""
    return (
        config["descriptors"]["templates"]
        if variant_of(wildcards).uses_descriptors
        else None
    )


def all_metrics():
    return expand(
        "results/{dataset}/metrics/{backbone}/{run}.json",
        dataset=PLAN.datasets,
        backbone=PLAN.backbones,
        run=RUNS,
    )


def all_comparisons():
    return expand(
        "results/{dataset}/comparisons/{backbone}.json",
        dataset=PLAN.datasets,
        backbone=PLAN.backbones,
    )


def reference_results():
    """The published-numbers file, checked when the workflow is parsed so that a malformed
    one stops the run before any job rather than at its last."""
    path = config["reference_results"]
    if not path:
        return []
    try:
        load_references(path)
    except ReferenceFileError as err:
        raise WorkflowError(f"zsar config error: reference_results: {err}") from None
    return path


def records_on_disk():
    """The metrics records other commands left in results/ (this run's are the tables'
    inputs): listed as a param, so that a record added by another command re-runs them.
    """
    found = {str(p) for p in Path("results").glob("*/metrics/*/*.json")}
    return sorted(found - set(all_metrics()))


def comparisons_on_disk():
    """The comparisons other commands left in results/, beside their records: the tables
    mark the gains of those records only where one matches them (zsar.commands.tables).
    """
    found = {str(p) for p in Path("results").glob("*/comparisons/*.json")}
    return sorted(found - set(all_comparisons()))


def report_targets():
    """Every file the report rules (report.smk) write, explanations of every run included."""
    datasets, backbones = list(PLAN.datasets), list(PLAN.backbones)
    return [
        *expand(
            "results/{dataset}/explanations/{backbone}/{run}.parquet",
            dataset=datasets,
            backbone=backbones,
            run=RUNS,
        ),
        "results/report/tables.html",
        "results/report/runs.html",
        *expand(
            "results/report/{dataset}/{page}",
            dataset=datasets,
            page=["ablation.png", "summary.html"],
        ),
        *expand(
            "results/report/{dataset}/{backbone}/{page}",
            dataset=datasets,
            backbone=backbones,
            page=[
                "confusion.png",
                "per_class_accuracy.png",
                "explanations-correct.html",
                "explanations-wrong.html",
                "per_class_gains.html",
            ],
        ),
    ]


def final_outputs():
    return [
        *all_metrics(),
        *all_comparisons(),
        "results/tables/results.md",
        "results/tables/results.csv",
        "results/tables/results.tex",
        *report_targets(),
    ]


# What the run holds: the console's last lines and the report's page of runs.
from zsar.pipeline.run_summary import run_summary_lines, shown_configfiles


def command_line_config():
    """The `--config` values the run was given, for the report's page of runs."""
    return dict(workflow.config_settings.config)


def print_run_summary():
    """One line per dataset of the run's metrics: videos evaluated, failed (with the
    failures file) and missing (zsar.pipeline.run_summary), at the end of the run's output.
    """
    print("\n".join(run_summary_lines(all_metrics())), file=sys.stderr)
