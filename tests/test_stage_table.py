"""The stage table (zsar.pipeline.stage_table) against the workflow it describes: the jobs
Snakemake plans write exactly the table's paths, every input names an output, the rules
take their outputs from it, a score's chain is composed from it, and `zsar explain-cache`
prints from it what the docs say."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.workflow import REPO, snakemake

from zsar.core.method import VARIANTS
from zsar.pipeline import stage_table as table
from zsar.pipeline.config import lambdas, load_config
from zsar.pipeline.plan import resolve_run, variant_runs
from zsar.pipeline.wiring import Wiring, keyed_by_model_field


def test_every_input_names_an_output_of_its_stage():
    variant = next(iter(VARIANTS.values()))
    for name, stage in table.STAGES.items():
        for input_name, entry in stage.inputs.items():
            where = f"{name}.{input_name}"
            produced = table.template(entry.stage, entry.output)
            assert entry.how in ("date", "ancient", "content"), where
            assert entry.when is None or isinstance(getattr(variant, entry.when), bool), where
            assert set(entry.expand) <= set(table.wildcards_of(produced)), where
            for wildcard in entry.fixed:
                assert wildcard in table.wildcards_of(produced) or wildcard == "report_run", where


def test_every_wildcard_of_a_template_is_named_with_its_format():
    for stage in table.STAGES.values():
        for template in stage.outputs.values():
            assert set(table.wildcards_of(template)) <= set(table.WILDCARDS), template


def test_every_key_a_stage_names_is_a_config_key():
    from zsar.commands.explain_cache import config_keys

    keys = config_keys()
    for name, stage in table.STAGES.items():
        for key in stage.settings:
            assert any(k == key or k.startswith(key + ".") for k in keys), (name, key)


def _demo_wiring() -> Wiring:
    config = load_config([REPO / "config" / "config.yaml"])
    plan = resolve_run(config, REPO / "config")
    values = lambdas(config["scoring"])
    runs = variant_runs(plan.variants, values)
    return Wiring(config, plan, runs, values, "full", code=lambda script: f"<{script}>")


def test_a_chain_holds_the_sections_of_what_its_variant_reads():
    wiring = _demo_wiring()
    baseline = wiring.chain("demo", "tiny-clip", "baseline")
    assert list(baseline) == ["dataset", "frames", "backbone"]
    full = wiring.chain("demo", "tiny-clip", next(r for r in wiring.runs if r.startswith("full")))
    assert list(full) == ["dataset", "frames", "backbone", "descriptors", "captions"]
    # Each section is composed from its stages' entries: settings by their last name, the
    # model named by the stages' wildcard, and each stage's code version.
    config = wiring.config
    assert full["descriptors"] == {
        "llm": wiring.model_key("llms", config["descriptors"]["llm"]),
        "prompt_set": config["descriptors"]["prompt_set"],
        "max_new_tokens": config["descriptors"]["max_new_tokens"],
        "repair_attempts": config["descriptors"]["repair_attempts"],
        "templates": config["descriptors"]["templates"],
        "code": {"descriptors": "<descriptors>", "embed_class_texts": "<embed_class_texts>"},
    }
    assert full["captions"] == {
        "captioner": wiring.model_key("captioners", config["captions"]["captioner"]),
        "prompt_set": config["captions"]["prompt_set"],
        "max_new_tokens": config["captions"]["max_new_tokens"],
        "code": {"captions": "<captions>", "embed_captions": "<embed_captions>"},
    }
    assert full["backbone"]["code"] == {"embed_videos": "<embed_videos>",
                                        "embed_class_names": "<embed_class_names>"}


def test_a_planned_job_writes_the_tables_paths(tmp_path):
    """Every job of the demo's dry run (two λ, two clips) writes paths its rule's table
    entry formats, and reads the table's inputs for its wildcards."""
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("scoring: {lambda: [0.2, 0.5]}\nframes: {views: {clips: 2}}\n")
    proc = snakemake(REPO, "-n", "--forceall", "--cores", "1", "--configfile",
                     "config/config.yaml", str(sweep))
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):\n(.*?)(?=\n\n)",
                      proc.stdout + proc.stderr, re.M | re.S)
    checked = set()
    for rule, body in jobs:
        outputs = re.search(r"^\s+output: (.*)$", body, re.M)
        if rule in ("all", "fetch_model") or outputs is None:
            continue
        templates = table.STAGES[rule].outputs
        for path in outputs[1].split(", "):
            assert any(_parses(rule, name, path) for name in templates), (rule, path)
        checked.add(rule)
    assert {"frames", "score", "explain", "compare", "report_explanations"} <= checked


def _parses(stage: str, output: str, path: str) -> bool:
    try:
        table.parse_path(stage, output, path)
    except ValueError:
        return False
    return True


def test_reruns_follow_the_readers_of_each_output():
    assert table.reruns("statistics.alpha") == ["compare", "tables", "report_tables_html",
                                                "report_class_gains"]
    # Under TSN the frames read no stride; under stride sampling they do.
    assert table.reruns("frames.stride", {"frames": {"sampling": "tsn"}}) == []
    assert table.reruns("frames.stride", {"frames": {"sampling": "stride"}})[0] == "frames"
    # A class list moved with the same rows re-runs no LLM; other rows do.
    same = table.downstream(["classes"], content_changed=False)
    assert "descriptors" not in same and "score" in same
    assert "descriptors" in table.downstream(["classes"], content_changed=True)
    # Preprocessing is applied at load time and on the video side only.
    assert keyed_by_model_field("backbones", "preprocess") == ["embed_videos", "score"]
    assert keyed_by_model_field("backbones", "description") == []


def test_explain_cache_as_the_docs_type_it():
    """The page's `zsar explain-cache` command, as typed, answers from the table."""
    page = (REPO / "docs/cache.md").read_text()
    (typed,) = [line for block in re.findall(r"```sh\n(.*?)```", page, re.S)
                for line in block.splitlines() if line.startswith("zsar explain-cache ")]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["bash", "-c", typed], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = dict(line.split(": ", 1) for line in proc.stdout.splitlines())
    assert lines["frames.views.crops"].startswith("embed_videos; then gather_video_embeddings")
    assert lines["backbones.preprocess"].startswith("embed_videos, score;")
    assert lines["zsar.stages.embed"].startswith("embed_videos;")


@pytest.mark.parametrize("key", ["frames.no_such_key", "zsar", "zsar.stages.no_such_module"])
def test_explain_cache_refuses_what_it_does_not_know(key):
    proc = subprocess.run([sys.executable, "-m", "zsar.cli", "explain-cache", key], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and key in proc.stderr


SAMPLE = {"dataset": "ucf101", "backbone": "vit-b-16", "run": "full_lambda0.5",
          "shard": "000-of-004", "sampling": "tsn8_s256_q90", "llm": "llm-a",
          "captioner": "cap-b"}


def test_each_output_path_is_read_back_by_its_own_template_only():
    """parse_path tells the outputs apart: a frames shard's failures file is no shard."""
    outputs = [(s, o) for s, stage in table.STAGES.items() for o in stage.outputs]
    for stage, output in outputs:
        path = table.path(stage, output, **SAMPLE)
        readers = [(s, o) for s, o in outputs if _parses(s, o, path)
                   and table.template(s, o) != table.template(stage, output)]
        assert not readers, (path, readers)
        names = table.wildcards_of(table.template(stage, output))
        assert table.parse_path(stage, output, path)[1] == {
            k: v for k, v in SAMPLE.items() if k in names}


def test_a_list_input_a_job_does_not_read_is_empty_and_a_single_one_absent():
    """Without a captioner, the failures job reads no caption failures (an empty list, as
    its script expects) and a baseline score no caption embeddings (no input at all)."""
    config = load_config([REPO / "config" / "config.yaml"])
    config["captions"]["captioner"] = "none"
    plan = resolve_run(config, REPO / "config")
    values = lambdas(config["scoring"])
    runs = variant_runs(plan.variants, values)
    wiring = Wiring(config, plan, runs, values, "baseline", code=lambda script: script)
    failures = wiring.inputs("failures", {"dataset": "demo"})
    assert failures["captions"] == [] and failures["frames"]
    score = wiring.inputs("score", {"dataset": "demo", "backbone": "tiny-clip",
                                    "run": "baseline"})
    assert "captions" not in score and "class_texts" not in score
