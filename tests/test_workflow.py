"""The whole demo workflow, end to end, in a scratch copy of the repository.

One full run is shared by the tests of this module; each test then asks Snakemake what a
config change would re-run (dry runs), or runs again and compares bytes.
"""

from __future__ import annotations

import pytest
from helpers.workflow import copy_workflow, scheduled_jobs, snakemake

# Runs the Snakemake workflow: the full suite (make test), not the fast tier (make check).
pytestmark = pytest.mark.slow

HEAVY_RULES = {"frames", "embed_videos", "caption_shard", "descriptors", "fetch_model", "demo_data"}
UPSTREAM_OF_SCORING = HEAVY_RULES | {
    "manifest",
    "gather_video_embeddings",
    "gather_captions",
    "embed_class_texts",
    "embed_captions",
    "failures",
}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("demo"))
    proc = snakemake(workdir, "--cores", "2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return workdir


def overlay(tmp_path, text):
    path = tmp_path / "overlay.yaml"
    path.write_text(text)
    return ["--configfile", "config/config.yaml", str(path)]


def dry_run(workdir, *args):
    proc = snakemake(workdir, "-n", "--cores", "2", *args, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return scheduled_jobs(proc.stdout + proc.stderr)


def test_demo_writes_tables_with_a_row_per_variant(demo_run):
    table = (demo_run / "results/tables/results.md").read_text()
    for variant in ("baseline", "+descriptors", "+hierarchy", "+caption", "full"):
        assert f"| demo | tiny-clip | {variant} |" in table
    assert dry_run(demo_run) == {}, "a finished run must have nothing left to do"


def test_scoring_option_change_reruns_no_frames_or_embeddings(demo_run, tmp_path):
    jobs = dry_run(demo_run, *overlay(tmp_path, "scoring:\n  fusion: score\n  topk: 3\n"))
    assert jobs.get("score", 0) >= 1
    assert not set(jobs) & UPSTREAM_OF_SCORING, jobs


def test_lambda_change_reruns_scoring_and_later_only(demo_run, tmp_path):
    jobs = dry_run(demo_run, *overlay(tmp_path, "scoring:\n  lambda: [0.6]\n"))
    # only the caption variants depend on λ
    assert jobs.get("score") == 2, jobs
    assert not set(jobs) & UPSTREAM_OF_SCORING, jobs


def test_lambda_sweep_is_one_config_entry(demo_run, tmp_path):
    jobs = dry_run(demo_run, *overlay(tmp_path, "scoring:\n  lambda: [0.2, 0.4, 0.6]\n"))
    assert jobs.get("score") == 6, jobs  # 2 caption variants x 3 values of λ
    assert not set(jobs) & UPSTREAM_OF_SCORING, jobs


def test_backbone_change_does_not_rerun_descriptors_or_frames(demo_run, tmp_path):
    """A second backbone adds embeddings and scores, and re-uses frames and descriptors."""
    models = (demo_run / "config/models.yaml").read_text()
    models = models.replace("backbones:\n", "backbones:\n  tiny-clip-b:\n    backend: open_clip\n"
                            "    family: CLIP (tiny, random init)\n    build:\n"
                            "      family: open_clip\n      seed: 1\n      model_cfg:\n"
                            "        embed_dim: 32\n"
                            "        vision_cfg: {image_size: 64, layers: 1, width: 32, "
                            "head_width: 16, patch_size: 16}\n"
                            "        text_cfg: {context_length: 32, vocab_size: 49408, "
                            "width: 32, heads: 2, layers: 1}\n", 1)
    registry = tmp_path / "models.yaml"
    registry.write_text(models)
    jobs = dry_run(
        demo_run, *overlay(tmp_path, f"models: {registry}\nbackbones: [tiny-clip, tiny-clip-b]\n")
    )
    assert jobs.get("embed_videos") == 1 and jobs.get("fetch_model") == 1, jobs
    assert not set(jobs) & {"frames", "descriptors", "caption_shard", "manifest"}, jobs


def test_moving_the_videos_keeps_the_class_list_and_descriptors(demo_run, tmp_path):
    """A new video_root re-runs the manifest and what reads videos, never the LLM stage."""
    jobs = dry_run(
        demo_run,
        *overlay(tmp_path, "dataset_specs:\n  demo:\n    video_root: ./resources/demo/videos\n"),
    )
    assert jobs.get("manifest") == 1 and jobs.get("frames") == 1, jobs
    assert not set(jobs) & {"classes", "descriptors", "fetch_model", "demo_data"}, jobs
