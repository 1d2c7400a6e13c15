"""A `file` descriptors entry that lists published files as `sources:` (issue #16), run as
the demo: it scores exactly as a run on the same files imported by hand with
`zsar descriptors import`, and editing one source re-runs the descriptors and what follows
them, never frames, captions or video embeddings.

One finished demo run (captions on, every variant) with two sources in two shapes; each test
works on a copy of it (dates and .snakemake metadata kept, as tests/test_rerun.py does).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from helpers.workflow import REPO, copy_workflow, scheduled_jobs, snakemake

import zsar
from zsar.core.method import VARIANTS
from zsar.data.demo import CLASSES
from zsar.data.io import read_json

pytestmark = pytest.mark.slow  # runs the workflow

LLM = "published"
CURATED = REPO / "config" / "descriptors" / "demo.yaml"
CUES = "published/demo_cues.csv"  # attributes: `class,cue` rows, names spelt another way
TREE = "published/demo_tree.json"  # hierarchy: JSON keyed by class index
RUN_ARGS = ["--cores", "2", "--configfile", "config/config.yaml", "run.yaml"]
SOURCES_ENTRY = f"""\
    sources:
      - attributes={CUES}
      - {{kind: hierarchy, path: {TREE}}}
"""
IMPORTED = "imported/demo-published.json"
# Stages that a change of class texts must leave alone.
UPSTREAM = frozenset({"demo_data", "manifest", "classes", "frames", "fetch_model",
                      "caption_shard", "gather_captions", "embed_captions", "embed_videos",
                      "gather_video_embeddings", "embed_class_names", "failures"})
# Variants whose class texts include descriptors (attributes, descriptions or hierarchy).
DESCRIPTOR_VARIANTS = sorted(name for name, v in VARIANTS.items() if v.descriptor_kinds)
# What a change of the descriptors re-runs, the demo having one backbone: the descriptors,
# their embeddings, the scores of the variants that use them, every variant's explanations
# (they show the hierarchy paths whatever the variant), and the report.
AFTER_DESCRIPTORS = {
    "descriptors": 1, "embed_class_texts": 1,
    "score": len(DESCRIPTOR_VARIANTS), "explain": len(VARIANTS),
    "report_class_plots": 1, "report_explanations": 1,
    "report_ablation": 1, "report_summary": 1, "report_tables_html": 1, "report_runs": 1,
    "tables": 1,
    "compare": 1, "report_class_gains": 1,  # the re-scored variants' paired comparisons
}


def curated_classes() -> dict[str, dict]:
    return yaml.safe_load(CURATED.read_text())["classes"]


def write_published_files(workdir: Path) -> None:
    """The demo's hand-written attributes and hierarchies as two files another project might
    publish: a headed CSV with a row per cue and its own spelling of the class names, and a
    JSON object keyed by class index (the order of the demo's labels.csv) with each path one
    arrow-separated string."""
    curated = curated_classes()
    rows = io.StringIO()
    writer = csv.writer(rows, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow(["class", "cue"])
    for name in CLASSES:
        writer.writerows([name.title(), cue] for cue in curated[name]["attributes"])
    tree = {str(i): " -> ".join(curated[name]["hierarchy"]) for i, name in enumerate(CLASSES)}
    (workdir / "published").mkdir()
    (workdir / CUES).write_text(rows.getvalue(), encoding="utf-8")
    (workdir / TREE).write_text(json.dumps(tree, indent=1), encoding="utf-8")


def register_llm(workdir: Path, how: str) -> None:
    """A registry overlay (models.yaml in the workdir, named by the run's config) with the
    LLM entry `published`, whose body `how` is `sources:` or `path:`."""
    entry = (f"  {LLM}:\n    backend: file\n    family: imported\n"
             f"    description: the demo's descriptors as published files\n{how}")
    registry = (REPO / "config" / "models.yaml").read_text()
    assert registry.count("\nllms:\n") == 1, "config/models.yaml changed shape: update this test"
    (workdir / "models.yaml").write_text(registry.replace("\nllms:\n", f"\nllms:\n{entry}", 1))


def finished(proc: subprocess.CompletedProcess) -> str:
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    return log


def dry_run(workdir: Path) -> dict[str, int]:
    jobs = scheduled_jobs(finished(snakemake(workdir, "-n", *RUN_ARGS, timeout=300)))
    jobs.pop("all", None)
    return jobs


def rules_run(log: str) -> set[str]:
    return set(re.findall(r"^local(?:rule|checkpoint) (\w+):", log, re.M)) - {"all"}


def descriptors(workdir: Path) -> dict:
    return read_json(workdir / "results" / "demo" / "descriptors" / f"{LLM}.json")


def scores(workdir: Path, variant: str):
    """A variant's scores table, its metadata (provenance) left out."""
    path = workdir / "results" / "demo" / "scores" / "tiny-clip" / f"{variant}.parquet"
    return pq.read_table(path).replace_schema_metadata(None)


def copy_of(run: Path, dest: Path) -> Path:
    # copytree keeps the files' dates, which is what Snakemake compares.
    return shutil.copytree(run, dest, symlinks=True)


@pytest.fixture(scope="module")
def sources_run(tmp_path_factory) -> Path:
    """The demo (captions on, every variant) with descriptors from two published files."""
    workdir = copy_workflow(tmp_path_factory.mktemp("sources-run"))
    write_published_files(workdir)
    register_llm(workdir, SOURCES_ENTRY)
    (workdir / "run.yaml").write_text(f"models: models.yaml\ndescriptors: {{llm: {LLM}}}\n")
    finished(snakemake(workdir, *RUN_ARGS))
    return workdir


def test_the_sources_reach_every_class(sources_run):
    """Both files were read and matched (so equal scores below are not two fallbacks)."""
    document = descriptors(sources_run)
    curated = curated_classes()
    assert document["summary"] == {"classes": len(CLASSES), "fallbacks": 0}
    for name in CLASSES:
        record = document["classes"][name]
        assert record["attributes"] == curated[name]["attributes"], name
        assert record["hierarchy"] == curated[name]["hierarchy"], name
        assert record["descriptions"] == [], name
    formats = [s["format"] for s in document["provenance"]["generation"]["sources"]]
    assert formats == ["csv-names", "json-index"]
    # The descriptor variants score with texts that differ from the name alone.
    baseline = scores(sources_run, "baseline")
    assert any(not scores(sources_run, v).equals(baseline) for v in DESCRIPTOR_VARIANTS)


def test_sources_score_as_the_file_imported_by_hand(sources_run, tmp_path):
    workdir = copy_of(sources_run, tmp_path / "by-hand")
    proc = subprocess.run(
        [sys.executable, "-m", "zsar.cli", "descriptors", "import",
         "--labels", "resources/demo/labels.csv", "--out", IMPORTED,
         f"attributes={CUES}", f"hierarchy={TREE}"],
        cwd=workdir, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(zsar.__file__).parents[1])},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1] == f"classes={len(CLASSES)} matched={len(CLASSES)} " \
                                           "fallbacks=0"
    register_llm(workdir, f"    path: {IMPORTED}\n")

    # Switching the entry to the imported file re-runs the descriptors and what follows.
    assert dry_run(workdir) == AFTER_DESCRIPTORS
    log = finished(snakemake(workdir, *RUN_ARGS))
    assert "descriptors" in rules_run(log) and not rules_run(log) & UPSTREAM, rules_run(log)

    by_sources, by_hand = descriptors(sources_run), descriptors(workdir)
    assert by_hand["classes"] == by_sources["classes"]
    assert by_hand["prompt_version"] == by_sources["prompt_version"]
    for variant in VARIANTS:
        assert scores(workdir, variant).equals(scores(sources_run, variant)), variant


def test_editing_one_source_reruns_only_the_descriptors_and_what_follows(sources_run, tmp_path):
    workdir = copy_of(sources_run, tmp_path / "edited")
    cues = workdir / CUES
    old, new = "straight horizontal path", "a level track from edge to edge"
    text = cues.read_text(encoding="utf-8")
    assert text.count(f'"{old}"') == 1, "the demo's curated cues changed: update this test"
    cues.write_text(text.replace(f'"{old}"', f'"{new}"'), encoding="utf-8")

    assert dry_run(workdir) == AFTER_DESCRIPTORS
    log = finished(snakemake(workdir, *RUN_ARGS))
    ran = rules_run(log)
    assert "descriptors" in ran and not ran & UPSTREAM, ran

    attributes = descriptors(workdir)["classes"]["sliding"]["attributes"]
    assert new in attributes and old not in attributes
    edited, before = descriptors(workdir)["classes"], descriptors(sources_run)["classes"]
    assert {n: r for n, r in edited.items() if n != "sliding"} == {
        n: r for n, r in before.items() if n != "sliding"}
    for path in ("results/demo/captions/tiny-vlm.parquet",
                 "results/demo/embeddings/tiny-clip/videos.parquet"):
        assert (workdir / path).read_bytes() == (sources_run / path).read_bytes(), path
    assert not scores(workdir, "+descriptors").equals(scores(sources_run, "+descriptors"))
