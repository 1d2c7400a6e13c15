"""The paper's sweep (config/sweeps/paper.yaml) plans as one run: a Snakemake dry run.

The data root holds the real annotation files from ../shared/benchmark-lists, laid out as
config/datasets/*.yaml expects (no videos: every video counts as missing, which is fine
for planning). The workflow runs in a scratch copy, so the repository gets no .snakemake/.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from helpers.workflow import BENCHMARK_LISTS, REPO, copy_workflow, snakemake

from zsar.core.method import VARIANTS
from zsar.models.registry import load_registry
from zsar.pipeline.config import load_config

# Runs the Snakemake workflow: the full suite (make test), not the fast tier (make check).
pytestmark = pytest.mark.slow

SWEEP = REPO / "config" / "sweeps" / "paper.yaml"
# {dataset folder: [(benchmark-lists file, ...)]}, as config/datasets/*.yaml name them.
LAYOUT = {
    "ucf101": [f"vificlip-splits/ucf_splits_val{k}.txt" for k in (1, 2, 3)]
    + ["vificlip-labels/ucf_101_labels.csv"],
    "hmdb51": [f"vificlip-splits/hmdb_splits_val{k}.txt" for k in (1, 2, 3)]
    + ["vificlip-labels/hmdb_51_labels.csv"],
    "k400": ["vificlip-splits/k400_splits_val.txt", "vificlip-labels/kinetics_400_labels.csv"],
    "k600_zs": [f"vificlip-splits/k600_splits_ZS_split{k}_K600_eval.txt" for k in (1, 2, 3)]
    + [f"vificlip-labels/ZS_split{k}_K600.csv" for k in (1, 2, 3)],
    "ssv2": ["vificlip-splits/ssv2_splits_validation.txt", "vificlip-labels/ssv2_labels.csv"],
}


@pytest.fixture
def data_root(tmp_path):
    if not BENCHMARK_LISTS.is_dir():
        pytest.skip(f"{BENCHMARK_LISTS} is not here")
    root = tmp_path / "data"
    for dataset, files in LAYOUT.items():
        (root / dataset).mkdir(parents=True)
        for name in files:
            shutil.copy(BENCHMARK_LISTS / name, root / dataset / Path(name).name)
            if "splits" in name:
                # One video of each split on disk: the preflight stops a split with none.
                first = (BENCHMARK_LISTS / name).read_text().split()[0]
                video = root / dataset / "videos" / first
                video.parent.mkdir(parents=True, exist_ok=True)
                video.touch()
    return root


def job_counts(stdout: str) -> dict[str, int]:
    """The dry run's "Job stats" table as {rule: count}."""
    table = stdout.split("Job stats:", 1)[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_paper_sweep_plans_the_whole_grid(tmp_path, data_root):
    workdir = copy_workflow(tmp_path / "wf")
    run = snakemake(
        workdir,
        "-n",
        "--configfile",
        "config/config.yaml",
        "config/sweeps/paper.yaml",
        "--config",
        f"data_root={data_root}",
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]

    sweep = load_config([REPO / "config" / "config.yaml", SWEEP])
    datasets, backbones, shards = sweep["datasets"], sweep["backbones"], sweep["shards"]
    variants = sweep["scoring"]["variants"]
    assert set(datasets) == {"ucf101", "hmdb51", "k400", "k600_zs", "ssv2"}
    assert len(backbones) == 4 and set(variants) == set(VARIANTS)
    registry = load_registry(REPO / "config" / "models.yaml")
    assert registry["backbones"]["vificlip-vit-b-16-k400"]["backend"] == "vificlip"  # video-adapted

    jobs = job_counts(run.stdout)
    assert jobs["manifest"] == len(datasets)
    assert jobs["frames"] == len(datasets) * shards  # decoded once, shared by every backbone
    assert jobs["embed_videos"] == len(datasets) * len(backbones) * shards
    assert jobs["score"] == len(datasets) * len(backbones) * len(variants)
    assert jobs["tables"] == 1
    models = {*backbones, sweep["captions"]["captioner"], sweep["descriptors"]["llm"]}
    fetched = {
        name
        for section in registry.values()
        for name, entry in section.items()
        if name in models and entry.get("backend") not in ("openai", "file")
    }
    assert jobs["fetch_model"] == len(fetched)
    for name in backbones:
        assert f"resources/models/{name}/.zsar-ready" in run.stdout
