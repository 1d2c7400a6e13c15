"""A researcher's first real run: a UCF101 data root laid out as the archive unpacks, with
the real ViFi-CLIP split lists and a few generated clips, run as the README says.

It runs to tables with the clips found (in class folders, though the lists name bare file
names); a wrong layout, demo models or a data root without the lists stop before any job;
two splits without any video give the per-split numbers and the mean of the one that has
them; and a second command's dataset joins the same tables.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers.secret_scan import readable_texts
from helpers.workflow import BENCHMARK_LISTS, copy_workflow, snakemake

pytestmark = pytest.mark.slow  # runs the workflow

UCF_ARGS = ["--configfile", "config/config.yaml", "config/datasets/ucf101.yaml", "smoke.yaml"]


def ucf101_root(root: Path, demo_videos: Path, *, layout: str = "class folders") -> Path:
    """data_root/ucf101 with the real lists and six demo clips named as split-1 videos."""
    folder = root / "ucf101"
    folder.mkdir(parents=True)
    for k in (1, 2, 3):
        shutil.copy(BENCHMARK_LISTS / f"vificlip-splits/ucf_splits_val{k}.txt", folder)
    shutil.copy(BENCHMARK_LISTS / "vificlip-labels/ucf_101_labels.csv", folder)
    lines = (folder / "ucf_splits_val1.txt").read_text().splitlines()
    clips = sorted((demo_videos / "videos").rglob("*.mp4"))[:6]
    for i, (line, clip) in enumerate(zip(lines[::600], clips, strict=False)):
        name = line.split()[0]  # v_ApplyEyeMakeup_g01_c01.avi: a bare file name
        if layout == "class folders":
            target = folder / "videos" / name.split("_")[1] / name
        else:  # renamed: nothing a layout could recognise
            target = folder / "videos" / f"clip{i}.avi"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(clip, target)
    return root


def smoke_overlay(workdir: Path, data_root: Path, *, allow_demo: bool = True) -> None:
    text = f"data_root: {data_root}\n"
    if allow_demo:
        text += "allow_demo_models: true\n"
    (workdir / "smoke.yaml").write_text(text)


@pytest.fixture(scope="module")
def ucf_run(tmp_path_factory, demo_videos):
    if not BENCHMARK_LISTS.is_dir():
        pytest.skip(f"{BENCHMARK_LISTS} is not here")
    data_root = ucf101_root(tmp_path_factory.mktemp("data"), demo_videos)
    workdir = copy_workflow(tmp_path_factory.mktemp("wf"))
    smoke_overlay(workdir, data_root)
    proc = snakemake(workdir, "--cores", "2", *UCF_ARGS)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return workdir, data_root, proc.stdout + proc.stderr


def test_clips_in_class_folders_are_found_and_scored(ucf_run):
    workdir, _, log = ucf_run
    assert "ucf101 split 1: 3783 videos listed" in log and "6 found" in log
    manifest = pq.read_table(workdir / "results/ucf101/manifest.parquet").to_pylist()
    found = [r for r in manifest if r["exists"]]
    assert len(found) == 6 and {r["split"] for r in found} == {1}
    assert all(Path(r["path"]).parent.name in r["video_id"] for r in found)  # class folder
    metrics = json.loads((workdir / "results/ucf101/metrics/tiny-clip/baseline.json").read_text())
    assert metrics["splits"]["1"]["counts"]["evaluated"] == 6
    # Splits 2 and 3 list none of the six: no result, said, and the mean is split 1's.
    assert metrics["splits"]["2"]["top1"] is None and metrics["splits"]["3"]["top1"] is None
    assert metrics["splits_with_results"] == 1
    assert metrics["mean"]["top1"] == metrics["splits"]["1"]["top1"]
    assert "WARNING: ucf101 split 2: none of the 3734 videos" in log


def test_tables_show_the_split_with_results_and_flag_the_missing_videos(ucf_run):
    workdir, _, _ = ucf_run
    table = (workdir / "results/tables/results.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| ucf101 | tiny-clip |"))
    assert "| 1 of 3 |" in row and "n/a" not in row
    assert "% of videos missing" in row and "mean of 1 of 3 splits" in row
    per_split = table.split("## Top-1 (%) per split", 1)[1]
    assert "| ucf101 | tiny-clip (demo models) | baseline |" in per_split
    assert "| — | — |" in per_split


def test_every_json_the_run_wrote_is_strict_json(ucf_run):
    workdir, _, _ = ucf_run
    paths = list((workdir / "results").rglob("*.json"))
    assert len(paths) >= 6
    def reject(constant):
        raise ValueError(f"{constant} is not JSON")

    for path in paths:
        json.loads(path.read_text(), parse_constant=reject)


def test_a_data_root_without_the_lists_is_a_missing_input_not_nothing_to_do(ucf_run, tmp_path):
    workdir, _, _ = ucf_run
    proc = snakemake(workdir, "-n", *UCF_ARGS, "--config", f"data_root={tmp_path}")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Nothing to be done" not in out
    assert f"missing input: {tmp_path}/ucf101/ucf_splits_val1.txt" in out


def test_the_run_ends_with_a_line_per_dataset(ucf_run):
    workdir, _, log = ucf_run
    manifest = pq.read_table(workdir / "results/ucf101/manifest.parquet").to_pylist()
    missing = sum(1 for r in manifest if not r["exists"])  # one row per video and split
    assert (f"zsar: ucf101: 6 videos evaluated, 0 failed (listed in "
            f"results/ucf101/failures.parquet), {missing} missing (summed over 3 splits); "
            "made with demo models: demo-curated (LLM), tiny-clip (backbone), tiny-vlm "
            "(captioner)") in log


def test_tables_say_which_rows_demo_models_made(ucf_run):
    workdir, _, _ = ucf_run
    table = (workdir / "results/tables/results.md").read_text()
    full = table.split("\n\n")[1].splitlines()  # the table of every run, after the title
    assert "| evaluated | failed | missing | excluded |" in full[0]
    rows = [line for line in full if line.startswith("| ucf101 | tiny-clip |")]
    assert len(rows) == 5 and all("demo models: tiny-clip (backbone)" in r for r in rows)
    # The other tables name the backbone with the mark.
    assert not [line for line in table.splitlines() if line.startswith("| ucf101 | tiny-clip |")
                and line not in rows]
    assert "| ucf101 | tiny-clip (demo models) | full − baseline |" in table
    assert any("tiny-vlm (captioner)" in r for r in rows)
    assert 'Rows noted "demo models" were made with demo models' in table
    metrics = json.loads((workdir / "results/ucf101/metrics/tiny-clip/full.json").read_text())
    assert metrics["models"] == {"backbone": {"name": "tiny-clip", "demo": True},
                                 "captioner": {"name": "tiny-vlm", "demo": True},
                                 "llm": {"name": "demo-curated", "demo": True}}
    csv_text = (workdir / "results/tables/results.csv").read_text()
    assert "demo_models" in csv_text.splitlines()[0] and "tiny-clip (backbone)" in csv_text
    assert r"tiny-clip$^{\ddagger}$" in (workdir / "results/tables/results.tex").read_text()


def test_the_report_names_the_runs_it_holds(ucf_run):
    workdir, data_root, _ = ucf_run
    proc = snakemake(workdir, *UCF_ARGS, "--report", "results/report.html", timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    pages = [text for where, text in readable_texts(workdir / "results/report.html")
             if "URI" in where]
    runs = next(page for page in pages if "the runs it holds" in page)
    assert ("datasets <b>ucf101</b> × backbones <b>tiny-clip</b> × runs <b>baseline, "
            "+descriptors, +hierarchy, +caption, full</b>") in runs
    for given in ("config/config.yaml", "config/datasets/ucf101.yaml", "smoke.yaml",
                  str(data_root)):
        assert f"<code>{given}</code>" in runs
    tables = next(page for page in pages if "<h2>All runs</h2>" in page)
    assert "demo models: tiny-clip (backbone)" in tables and "<th>failed</th>" in tables


def test_a_second_dataset_joins_the_same_tables(ucf_run):
    workdir, _, _ = ucf_run
    proc = snakemake(workdir, "--cores", "2", "--config", "demo_clips_per_class=1")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = (workdir / "results/tables/results.md").read_text()
    assert "| demo | tiny-clip | baseline |" in table
    assert "| ucf101 | tiny-clip | baseline |" in table
    assert "backbone tiny-clip" in table.split("## Settings", 1)[1]


def test_a_wrong_layout_stops_before_any_job(tmp_path, demo_videos):
    if not BENCHMARK_LISTS.is_dir():
        pytest.skip(f"{BENCHMARK_LISTS} is not here")
    data_root = ucf101_root(tmp_path / "data", demo_videos, layout="renamed")
    workdir = copy_workflow(tmp_path / "wf")
    smoke_overlay(workdir, data_root)
    proc = snakemake(workdir, "--cores", "2", *UCF_ARGS)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and not (workdir / "results").exists()
    videos = data_root / "ucf101" / "videos"
    assert f"none of the 3783 videos listed in {data_root}/ucf101/ucf_splits_val1.txt is under " \
           f"{videos}" in out
    assert f"e.g. expected {videos}/v_ApplyEyeMakeup_g01_c01.avi" in out


def test_demo_models_on_a_benchmark_stop_before_any_job(tmp_path, demo_videos):
    if not BENCHMARK_LISTS.is_dir():
        pytest.skip(f"{BENCHMARK_LISTS} is not here")
    data_root = ucf101_root(tmp_path / "data", demo_videos)
    workdir = copy_workflow(tmp_path / "wf")
    smoke_overlay(workdir, data_root, allow_demo=False)
    proc = snakemake(workdir, "-n", *UCF_ARGS)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and not (workdir / "results").exists()
    assert "would run with demo models" in out
    for stage in ("backbones[0]: tiny-clip", "captions.captioner: tiny-vlm",
                  "descriptors.llm: demo-curated"):
        assert stage in out
    smoke_overlay(workdir, data_root, allow_demo=True)
    assert snakemake(workdir, "-n", *UCF_ARGS).returncode == 0  # the explicit allowance
