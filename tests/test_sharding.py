"""Sharding: frames, captions and video embeddings split into N jobs and gathered back.

The demo workflow runs for N = 1 and 7 in one scratch copy of the checkout (7 does not
divide the demo's 24 videos, so the shards are uneven). Shard ids carry N ("002-of-007"),
so the two runs share the manifest, the models and the
descriptors, and each run redoes only the sharded stages and what follows them. After
each run the gathered tables and the metrics are kept, and the tests check that:
  - the N frames shards partition the demo's videos: each decodable video in exactly one
    shard, each other video in exactly one failures shard;
  - the gathered video embeddings and captions hold each decoded video exactly once;
  - each video's embedding, and every metrics JSON, are the same for every N.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from helpers.workflow import copy_workflow, snakemake

# Runs the Snakemake workflow: the full suite (make test), not the fast tier (make check).
pytestmark = pytest.mark.slow

SHARD_COUNTS = (1, 7)
DATASET = "demo"
BACKBONE = "tiny-clip"
CAPTIONER = "tiny-vlm"

# Only what makes the runs cheaper: few small frames, and one variant instead of five:
# `full`, which uses every kind of class text and the caption. Shards are given per run
# on the command line.
OVERLAY = {
    "frames": {"num_frames": 4, "short_side": 64, "jpeg_quality": 90},
    "captions": {"captioner": CAPTIONER},
    "scoring": {"variants": ["full"]},
}

# Gathered outputs, overwritten by the next run, so they are kept per N.
GATHERED = {
    "videos": f"results/{DATASET}/embeddings/{BACKBONE}/videos.parquet",
    "captions": f"results/{DATASET}/captions/{CAPTIONER}.parquet",
    "failures": f"results/{DATASET}/failures.parquet",
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[int | str, Path]:
    """Runs the workflow for each N; returns N -> folder with that run's kept outputs,
    and "repo" -> the scratch checkout, which holds the frames shards of every N."""
    base = tmp_path_factory.mktemp("sharding")
    workdir = copy_workflow(base / "repo")
    overlay = base / "overlay.yaml"
    overlay.write_text(yaml.safe_dump(OVERLAY))
    kept: dict[int, Path] = {}
    for shards in SHARD_COUNTS:
        result = snakemake(
            workdir,
            "--workflow-profile", "profiles/default",
            "--configfile", "config/config.yaml", str(overlay),
            "--config", f"shards={shards}",
        )  # fmt: skip
        assert result.returncode == 0, f"shards={shards}:\n{result.stderr[-4000:]}"
        kept[shards] = _keep_outputs(workdir, base / f"kept-{shards}")
    return {"repo": workdir, **kept}


def _keep_outputs(workdir: Path, dest: Path) -> Path:
    dest.mkdir()
    for name, rel in GATHERED.items():
        shutil.copy2(workdir / rel, dest / f"{name}.parquet")
    shutil.copytree(workdir / "results" / DATASET / "metrics", dest / "metrics")
    return dest


def _ids(path: Path) -> list[str]:
    return pq.read_table(path, columns=["video_id"]).column("video_id").to_pylist()


def _demo_videos(repo: Path) -> set[str]:
    """Every video of the demo's manifest, once (a video in several splits counts once)."""
    return set(_ids(repo / "results" / DATASET / "manifest.parquet"))


def _missing_videos(repo: Path) -> set[str]:
    """Videos of the manifest whose file does not exist: never given to a frames shard."""
    rows = pq.read_table(repo / "results" / DATASET / "manifest.parquet").to_pylist()
    return {row["video_id"] for row in rows if not row["exists"]}


def _shard_files(repo: Path, shards: int, suffix: str) -> list[Path]:
    frames = repo / "results" / DATASET / "frames"
    return sorted(frames.glob(f"*/[0-9][0-9][0-9]-of-{shards:03d}{suffix}"))


@pytest.mark.parametrize("shards", SHARD_COUNTS)
def test_frames_shards_partition_the_videos(runs, shards):
    frames = _shard_files(runs["repo"], shards, ".parquet")
    failures = _shard_files(runs["repo"], shards, ".failures.parquet")
    assert len(frames) == shards and len(failures) == shards

    decoded = [vid for path in frames for vid in _ids(path)]
    failed = [vid for path in failures for vid in _ids(path)]
    assert len(decoded) == len(set(decoded)), "a video was decoded in two shards"
    assert len(failed) == len(set(failed)), "a failure was recorded in two shards"
    assert not set(decoded) & set(failed), "a video both decoded and failed"
    assert set(decoded) | set(failed) | _missing_videos(runs["repo"]) == _demo_videos(runs["repo"])
    # The demo is 24 videos: more shards than a handful of videos would leave some empty.
    assert all(_ids(path) for path in frames), "an empty frames shard"


@pytest.mark.parametrize("shards", SHARD_COUNTS)
def test_gathered_tables_hold_each_decoded_video_once(runs, shards):
    decoded = {vid for path in _shard_files(runs["repo"], shards, ".parquet") for vid in _ids(path)}
    assert len(decoded) > len(_demo_videos(runs["repo"])) // 2
    for name in ("videos", "captions"):
        gathered = _ids(runs[shards] / f"{name}.parquet")
        assert len(gathered) == len(set(gathered)), f"{name}: a video gathered twice"
        assert set(gathered) == decoded, f"{name}: videos lost or added by the gather"

    shard_failures = [
        vid
        for path in _shard_files(runs["repo"], shards, ".failures.parquet")
        for vid in _ids(path)
    ]
    gathered = pq.read_table(runs[shards] / "failures.parquet").to_pylist()
    frames_failures = [row["video_id"] for row in gathered if row["stage"] == "frames"]
    assert sorted(frames_failures) == sorted(shard_failures)


def _vectors(path: Path) -> dict[str, np.ndarray]:
    table = pq.read_table(path, columns=["video_id", "vector"]).to_pylist()
    return {row["video_id"]: np.asarray(row["vector"]) for row in table}


def test_video_embeddings_do_not_depend_on_the_shard_count(runs):
    reference = _vectors(runs[SHARD_COUNTS[0]] / "videos.parquet")
    for shards in SHARD_COUNTS[1:]:
        vectors = _vectors(runs[shards] / "videos.parquet")
        assert vectors.keys() == reference.keys()
        for video_id, vector in vectors.items():
            # A shard is a different batch, which may change float rounding, nothing more.
            np.testing.assert_allclose(vector, reference[video_id], atol=1e-5, err_msg=video_id)


def _metrics(run_dir: Path) -> dict[str, dict]:
    """Each metrics JSON by its path under metrics/, without the provenance block."""
    records = {}
    for path in sorted((run_dir / "metrics").rglob("*.json")):
        record = json.loads(path.read_text())
        record.pop("provenance")
        records[str(path.relative_to(run_dir / "metrics"))] = record
    return records


def test_metrics_do_not_depend_on_the_shard_count(runs):
    reference = _metrics(runs[SHARD_COUNTS[0]])
    assert len(reference) == len(OVERLAY["scoring"]["variants"])
    for record in reference.values():
        assert record["counts"]["evaluated"] > 0 and "top1" in record["mean"]
    for shards in SHARD_COUNTS[1:]:
        assert _metrics(runs[shards]) == reference, f"metrics changed with shards={shards}"
