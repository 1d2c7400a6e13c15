"""A run whose backbone, dataset and protocol match a published number shows it beside the
measured one; a backbone trained on the dataset's classes is marked not zero-shot; a
captioner sent more frames than its context holds stops before any job.

The backbone is the tiny CLIP under another registry name, whose entry declares ViFi-CLIP's
protocol and Kinetics-400 as its training data; the dataset is K400 laid out with the real
ViFi-CLIP list and a few demo clips under listed names.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
import yaml
from helpers.workflow import BENCHMARK_LISTS, copy_workflow, snakemake

pytestmark = pytest.mark.slow  # runs the workflow

REPO = Path(__file__).parents[1]
BACKBONE = "tiny-clip-k400"
K400_ARGS = ["--configfile", "config/config.yaml", "config/datasets/k400.yaml", "run.yaml"]


def k400_root(root: Path, demo_videos: Path) -> Path:
    folder = root / "k400"
    folder.mkdir(parents=True)
    shutil.copy(BENCHMARK_LISTS / "vificlip-splits/k400_splits_val.txt", folder)
    shutil.copy(BENCHMARK_LISTS / "vificlip-labels/kinetics_400_labels.csv", folder)
    lines = (folder / "k400_splits_val.txt").read_text().splitlines()
    clips = sorted((demo_videos / "videos").rglob("*.mp4"))[:6]
    for line, clip in zip(lines[::3000], clips, strict=False):
        target = folder / "videos" / line.split()[0]  # val/<youtube id>_<start>_<end>.mp4
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(clip, target)
    return root


def registry_with_k400_backbone(workdir: Path) -> None:
    registry = yaml.safe_load((REPO / "config/models.yaml").read_text())
    registry["backbones"][BACKBONE] = {
        **registry["backbones"]["tiny-clip"],
        "name_prompt": "a photo of a {}.",
        "pooling": "mean_then_normalise",
        "trained_on": ["k400"],
    }
    (workdir / "models-test.yaml").write_text(yaml.safe_dump(registry, sort_keys=False))


PROTOCOL = {
    "lists": "kinetics", "splits": [1], "class_names": "raw", "name_prompt": "a photo of a {}.",
    "frames": 8, "sampling": "tsn", "views": "1x1", "pooling": "mean_then_normalise",
}


@pytest.fixture(scope="module")
def k400_run(tmp_path_factory, demo_videos):
    if not BENCHMARK_LISTS.is_dir():
        pytest.skip(f"{BENCHMARK_LISTS} is not here")
    data_root = k400_root(tmp_path_factory.mktemp("data"), demo_videos)
    workdir = copy_workflow(tmp_path_factory.mktemp("wf"))
    registry_with_k400_backbone(workdir)
    references = {"references": [
        {"backbone": BACKBONE, "dataset": "k400", "top1": 50.0, "std": 1.5,
         "source": "a made-up paper, Table 1", "protocol": PROTOCOL},
        {"backbone": BACKBONE, "dataset": "k400", "top1": 60.0,
         "source": "another paper", "protocol": {**PROTOCOL, "frames": 32}},
    ]}
    (workdir / "refs.yaml").write_text(yaml.safe_dump(references))
    (workdir / "run.yaml").write_text(yaml.safe_dump({
        "data_root": str(data_root), "allow_demo_models": True,
        "models": "models-test.yaml", "reference_results": "refs.yaml",
        "backbones": [BACKBONE], "captions": {"captioner": "none"},
        "scoring": {"variants": ["baseline"]},
    }))
    proc = snakemake(workdir, "--cores", "2", *K400_ARGS)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return workdir


def test_the_published_number_and_the_difference_beside_a_matching_run(k400_run):
    table = (k400_run / "results/tables/results.md").read_text()
    published = table.split("## Published numbers beside the baseline runs", 1)[1]
    row = next(line for line in published.splitlines() if line.startswith("| k400 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    measured, reference, difference = float(cells[2]), cells[3], float(cells[4])
    assert reference == "50.0 ± 1.5" and cells[5] == "a made-up paper, Table 1"
    assert difference == pytest.approx(measured - 50.0, abs=0.051)
    assert ("not compared, the protocols differ in frames per view: this run 8, published 32"
            in published)
    rows = list(csv.DictReader((k400_run / "results/tables/results.csv").open()))
    assert float(rows[0]["published_top1"]) == 50.0
    html = (k400_run / "results/report/tables.html").read_text()
    assert "Published numbers beside the baseline runs" in html and "50.0 ± 1.5" in html


def test_a_backbone_trained_on_the_dataset_is_not_zero_shot_in_every_table(k400_run):
    note = f"not zero-shot: {BACKBONE} was trained on k400"
    table = (k400_run / "results/tables/results.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith(f"| k400 | {BACKBONE} |"))
    assert note in row
    rows = list(csv.DictReader((k400_run / "results/tables/results.csv").open()))
    assert rows[0]["zero_shot"] == "False" and note in rows[0]["notes"]
    assert r"k400$^{*}$" in (k400_run / "results/tables/results.tex").read_text()
    assert note in (k400_run / "results/report/tables.html").read_text()
    settings = table.split("## Settings", 1)[1]
    assert (f"protocol of {BACKBONE}: class-name prompt 'a photo of a {{}}.', frame pooling "
            "mean_then_normalise, trained on k400") in settings


def test_a_captioner_sent_more_frames_than_its_context_stops_before_any_job(tmp_path):
    registry = yaml.safe_load((REPO / "config/models.yaml").read_text())
    del registry["captioners"]["llava-next-video-7b"]["max_frames"]
    workdir = copy_workflow(tmp_path / "wf")
    (workdir / "models-test.yaml").write_text(yaml.safe_dump(registry, sort_keys=False))
    (workdir / "run.yaml").write_text(yaml.safe_dump({
        "models": "models-test.yaml", "captions": {"captioner": "llava-next-video-7b"},
        "frames": {"num_frames": 32},
    }))
    proc = snakemake(workdir, "-n", "--configfile", "config/config.yaml", "run.yaml")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and not (workdir / "results").exists()
    line = next(x for x in out.splitlines() if "llava-next-video-7b" in x)
    assert "32 frames x 144 tokens" in line and "context of 4096" in line
