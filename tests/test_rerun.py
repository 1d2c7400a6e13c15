"""What re-runs when: each edit of a finished run schedules exactly what its output depends
on (helpers/rerun_cases.py), and what does re-run computes something new.

Two finished runs are shared: the demo with two backbones, and a benchmark-like dataset
under a data root. Each case edits its own copy (dates kept, .snakemake metadata included),
checks the dry run's job counts exactly, then runs a target and compares bytes with the
finished run's. The README's table is printed from the same cases.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from helpers import rerun_cases
from helpers.rerun_cases import CASES, LISTS_EDITED, LISTS_MOVED, RUN_ARGS, Case
from helpers.workflow import REPO, copy_workflow, scheduled_jobs, snakemake

from zsar.commands.explain_cache import markdown, module_stages
from zsar.pipeline import stage_table
from zsar.pipeline.config import load_config
from zsar.pipeline.wiring import keyed_by_model_field

pytestmark = pytest.mark.slow  # runs the workflow


def finished_run(workdir: Path) -> Path:
    proc = snakemake(workdir, "--cores", "2", *RUN_ARGS)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return workdir


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    workdir = copy_workflow(tmp_path_factory.mktemp("demo"), with_library=True)
    rerun_cases.prepare_demo(workdir)
    return finished_run(workdir)


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory) -> Path:
    workdir = copy_workflow(tmp_path_factory.mktemp("benchmark"), with_library=True)
    rerun_cases.prepare_benchmark(workdir)
    return finished_run(workdir)


def edited_copy(case: Case, finished: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    # copytree keeps the files' dates, which is what Snakemake compares.
    workdir = shutil.copytree(finished, tmp_path / "copy", symlinks=True)
    return workdir, [*RUN_ARGS, *case.apply(workdir)]


def dry_run(workdir: Path, args: list[str]) -> dict[str, int]:
    proc = snakemake(workdir, "-n", "--cores", "2", *args, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = scheduled_jobs(proc.stdout + proc.stderr)
    jobs.pop("all", None)
    if not jobs:
        assert "Nothing to be done" in proc.stdout + proc.stderr
    return jobs


@pytest.fixture(scope="module")
def rules_of(demo, benchmark) -> dict[str, set[str]]:
    """The rules each finished run has (a dry run that forces every job)."""
    return {name: set(dry_run(workdir, ["--forceall", *RUN_ARGS]))
            for name, workdir in (("demo", demo), ("benchmark", benchmark))}


# How each kind of edit names the stages keyed by it (zsar.pipeline.stage_table).
KEYED_BY = {
    "config": lambda what, workdir, config: stage_table.keyed_by(what, config),
    "registry": lambda what, workdir, config: keyed_by_model_field(
        *what.split(".", 1)),
    "module": lambda what, workdir, config: module_stages(what, workdir),
    "stage": lambda what, workdir, config: [what],
}


def table_reruns(case: Case, workdir: Path, content_changed: bool) -> set[str]:
    """The rules the stage table says the case's edits re-run, under the edited config."""
    config = load_config([workdir / "config" / "config.yaml", workdir / "run.yaml"])
    keyed = [stage for edit in case.edits
             for stage in KEYED_BY[edit.partition(":")[0]](edit.partition(":")[2], workdir,
                                                           config)]
    return set(stage_table.downstream(keyed, content_changed))


@pytest.mark.parametrize("case", [*CASES, LISTS_MOVED, LISTS_EDITED],
                         ids=[c.key for c in [*CASES, LISTS_MOVED, LISTS_EDITED]])
def test_an_edit_reruns_exactly_what_depends_on_it(case, demo, benchmark, rules_of,
                                                   tmp_path):
    finished = demo if case.fixture == "demo" else benchmark
    workdir, args = edited_copy(case, finished, tmp_path)
    scheduled = dry_run(workdir, args)
    # The stage table's answer (zsar explain-cache), of the rules this run has; a dry run
    # cannot see a content-keyed input's new content (it is planned after the checkpoint).
    expected = table_reruns(case, workdir, content_changed=False) & rules_of[case.fixture]
    assert set(scheduled) == expected, (sorted(set(scheduled) - expected),
                                        sorted(expected - set(scheduled)))
    assert scheduled == case.schedules

    if case.executes is not None:
        # Where a dry run cannot know (after the manifest checkpoint), the real run shows it.
        proc = snakemake(workdir, "--cores", "2", *args)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        ran = set(re.findall(r"^local(?:rule|checkpoint) (\w+):", proc.stdout + proc.stderr,
                             re.M)) - {"all"}
        assert ran == case.executes, ran
        assert not ran & case.not_executes
        assert ran <= table_reruns(case, workdir, content_changed=True)
        dataset = "demo" if case.fixture == "demo" else "toy"
        frames = f"results/{dataset}/frames/tsn8_s256_q90/000-of-001.parquet"
        assert (workdir / frames).read_bytes() == (finished / frames).read_bytes()
    if case.changes is not None:
        target, output = case.changes
        proc = snakemake(workdir, "--cores", "2", *args, "--", target)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert (workdir / output).read_bytes() != (finished / output).read_bytes(), output


def test_the_docs_tables_are_explain_caches():
    page = (REPO / "docs" / "cache.md").read_text()
    assert markdown() in page, (
        "docs/cache.md's tables of what each config key and registry field re-runs are out "
        "of date: paste the output of `zsar explain-cache --markdown`"
    )


def test_a_finished_run_has_nothing_left_to_do(demo):
    assert dry_run(demo, RUN_ARGS) == {}


def test_the_docs_table_is_the_cases_table():
    page = (REPO / "docs" / "cache.md").read_text()
    assert rerun_cases.markdown_table() in page, (
        "docs/cache.md's 'What re-runs when' table is out of date: paste the output of "
        "`python tests/helpers/rerun_cases.py`"
    )


def test_lambda_sweep_adds_caption_scores_only(demo, tmp_path):
    """A list of λ scores the caption variants at each value and re-runs nothing upstream."""
    workdir = shutil.copytree(demo, tmp_path / "copy", symlinks=True)
    (workdir / "sweep.yaml").write_text("scoring:\n  lambda: [0.2, 0.4, 0.6]\n")
    jobs = dry_run(workdir, [*RUN_ARGS, "sweep.yaml"])
    # 2 caption variants x 3 values of λ x 2 backbones; nothing before the scores.
    assert jobs["score"] == 12 and jobs["explain"] == 12, jobs
    assert not set(jobs) & set(rerun_cases.HEAVY), jobs


def test_a_new_backbone_reuses_frames_captions_and_descriptors(demo, tmp_path):
    workdir = shutil.copytree(demo, tmp_path / "copy", symlinks=True)
    models = workdir / "config" / "models.yaml"
    third = rerun_cases.SECOND_BACKBONE.replace("tiny-clip-b:", "tiny-clip-c:").replace(
        "seed: 1", "seed: 2")
    models.write_text(models.read_text().replace("backbones:\n", f"backbones:\n{third}", 1))
    with open(workdir / "run.yaml", "a") as f:
        f.write("backbones: [tiny-clip, tiny-clip-b, tiny-clip-c]\n")
    jobs = dry_run(workdir, RUN_ARGS)
    assert jobs["fetch_model"] == 1 and jobs["embed_videos"] == 1 and jobs["score"] == 5, jobs
    assert not set(jobs) & {"frames", "caption_shard", "descriptors", "manifest", "classes"}


def test_the_demo_tables_have_a_row_per_backbone_and_variant(demo):
    table = (demo / "results/tables/results.md").read_text()
    for backbone in ("tiny-clip", "tiny-clip-b"):
        for variant in ("baseline", "+descriptors", "+hierarchy", "+caption", "full"):
            assert f"| demo | {backbone} | {variant} |" in table


def test_the_readmes_demo_predict_command_as_typed(demo):
    """The README's `zsar predict` command on the demo, typed in the finished demo's folder."""
    import os
    import subprocess
    import sys

    readme = (REPO / "README.md").read_text()
    (typed,) = [
        line for block in re.findall(r"```sh\n(.*?)```", readme, re.S)
        for line in re.sub(r"\\\n\s*", "", block).splitlines()
        if line.startswith("zsar predict resources/demo/")
    ]  # fmt: skip
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["bash", "-c", typed], cwd=demo, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rotating_0.mp4" in proc.stdout and "caption:" in proc.stdout.lower()
