"""`zsar predict` end to end: tiny models built here, demo videos, a bad file among good ones."""

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from zsar.cli import main
from zsar.data.io import write_json
from zsar.pipeline.config import load_config

REPO = Path(__file__).resolve().parents[1]
REGISTRY = REPO / "config" / "models.yaml"
CONFIG = REPO / "config" / "config.yaml"


@pytest.fixture(scope="session")
def resources(tiny_resources):
    """tiny-clip and tiny-vlm of the registry, built by the fetch_model rule's own code."""
    return tiny_resources


@pytest.fixture(scope="session")
def descriptors_file(tmp_path_factory):
    """The demo's curated descriptors as a descriptors JSON (the contract's shape)."""
    curated = yaml.safe_load((REPO / "config" / "descriptors" / "demo.yaml").read_text())
    classes = {
        name: {**entry, "fallback": False, "reason": None}
        for name, entry in curated["classes"].items()
    }
    path = tmp_path_factory.mktemp("descriptors") / "demo.json"
    write_json({"llm": "demo-curated", "prompt_version": "demo", "provenance": {},
                "classes": classes}, path)
    return path


@pytest.fixture()
def videos(demo_videos, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video")
    good = [demo_videos / "videos" / "rotating" / "rotating_0.mp4",
            demo_videos / "videos" / "sliding" / "sliding_1.mp4"]
    return [str(good[0]), str(bad), str(good[1])]


def class_list(demo_videos, tmp_path):
    names = [line.split(",", 1)[1] for line in
             (demo_videos / "labels.csv").read_text().splitlines()[1:]]
    path = tmp_path / "classes.txt"
    path.write_text("\n".join(names) + "\n")
    return path, names


def predict(capsys, *args):
    code = main(["predict", *map(str, args), "--registry", str(REGISTRY),
                 "--config", str(CONFIG)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_text_explain_with_a_bad_file_among_good_ones(
    capsys, tmp_path, demo_videos, videos, resources, descriptors_file
):
    classes, names = class_list(demo_videos, tmp_path)
    code, out, err = predict(
        capsys, *videos, "--classes", classes, "--backbone", "tiny-clip",
        "--descriptors", descriptors_file, "--explain", "--resources", resources,
    )
    assert code == 1
    errors = err.strip().splitlines()
    assert errors == [line for line in errors if "broken.mp4" in line] and len(errors) == 1
    assert errors[0].startswith(f"zsar predict: error: cannot read {videos[1]}: ")
    blocks = out.strip().split("\n\n")
    assert [b.splitlines()[0] for b in blocks] == [videos[0], videos[2]]
    for block in blocks:
        lines = block.splitlines()
        ranked = lines[1:6]
        assert [line.strip()[:2] for line in ranked] == ["1.", "2.", "3.", "4.", "5."]
        scores = [float(line.split()[-1]) for line in ranked]
        assert scores == sorted(scores, reverse=True)
        assert {line.split()[1] for line in ranked} <= set(names)
        why = next(line for line in lines if line.startswith("  why: "))
        top1 = ranked[0].split()[1]
        assert why.startswith(f'  why: Predicted "{top1}"') and "context: " in why
        assert any(line.startswith(f"  top descriptors of {top1}: ") for line in lines)
        assert any(line.startswith("  hierarchy: ") and " → " in line for line in lines)


@pytest.mark.slow  # runs the tiny captioner over the videos as well as the backbone
def test_json_with_captioner(capsys, tmp_path, demo_videos, videos, resources, descriptors_file):
    classes, names = class_list(demo_videos, tmp_path)
    code, out, err = predict(
        capsys, *videos, "--classes", classes, "--backbone", "tiny-clip", "--captioner",
        "tiny-vlm", "--descriptors", descriptors_file, "--explain", "--json",
        "--resources", resources, "--fusion", "score", "--lambda", "0.4", "--workers", "0",
    )
    assert code == 1
    doc = json.loads(out)
    assert [v["video"] for v in doc["videos"]] == [videos[0], videos[2]]
    assert doc["errors"][0]["video"] == videos[1] and len(doc["errors"]) == 1
    assert doc["fusion"] == "score" and doc["lambda"] == 0.4 and doc["classes"] == len(names)
    assert "cannot read" in err and videos[1] in err
    for video in doc["videos"]:
        scores = [c["score"] for c in video["top"]]
        assert len(scores) == 5 and scores == sorted(scores, reverse=True)
        explanation = video["explanation"]
        assert explanation["predicted"] == video["top"][0]["class"]
        assert explanation["runner_up"] == video["top"][1]["class"]
        assert explanation["caption"] == video["caption"] and video["caption"]
        assert explanation["similarity_to"].startswith("(1-λ)·video + λ·caption")
        assert len(explanation["predicted_descriptors"]) == 3
        assert "the caption says" in explanation["sentence"]


def test_scores_equal_the_workflow_stages(capsys, tmp_path, demo_videos, resources):
    """Without captions or descriptors a score is cos(video, name prompt), where the video
    embedding comes from the frames and embedding stages as the workflow runs them."""
    from zsar.models.backbones import load_backbone
    from zsar.models.registry import get_entry, load_registry
    from zsar.stages.embed import run_video_embedding_stage
    from zsar.stages.frames import run_frames_stage

    settings = load_config([CONFIG])["frames"]
    video = demo_videos / "videos" / "growing" / "growing_1.mp4"
    pq.write_table(pa.table({"video_id": ["v"], "path": [str(video)], "exists": [True]}),
                   tmp_path / "manifest.parquet")
    run_frames_stage(tmp_path / "manifest.parquet", tmp_path / "frames.parquet",
                     tmp_path / "failures.parquet", "000-of-001", settings["num_frames"],
                     settings["short_side"], settings["jpeg_quality"], workers=0)
    backbone = load_backbone(get_entry(load_registry(REGISTRY), "backbones", "tiny-clip"),
                             resources)
    run_video_embedding_stage(tmp_path / "frames.parquet", tmp_path / "emb.parquet", backbone)
    v = np.asarray(pq.read_table(tmp_path / "emb.parquet").column("vector")[0].as_py())

    classes, names = class_list(demo_videos, tmp_path)
    code, out, _ = predict(capsys, video, "--classes", classes, "--backbone", "tiny-clip",
                           "--resources", resources, "--json", "--top", "6")
    assert code == 0
    doc = json.loads(out)
    assert doc["kinds"] == ["name"] and doc["errors"] == []
    got = {c["class"]: c["score"] for c in doc["videos"][0]["top"]}
    texts = backbone.encode_texts(names).numpy()
    want = dict(zip(names, texts @ v, strict=True))
    assert got.keys() == want.keys()
    for name in names:
        assert got[name] == pytest.approx(want[name], abs=1e-5)


def test_dataset_classes_pick_up_the_dataset_descriptors(
    capsys, tmp_path, demo_videos, resources, descriptors_file
):
    results = tmp_path / "results"
    (results / "demo" / "descriptors").mkdir(parents=True)
    _, names = class_list(demo_videos, tmp_path)
    pq.write_table(pa.Table.from_pylist([
        {"split": 1, "class_id": i, "name": n, "display_name": n} for i, n in enumerate(names)
    ]), results / "demo" / "classes.parquet")
    (results / "demo" / "descriptors" / "demo-curated.json").write_text(
        descriptors_file.read_text())
    video = demo_videos / "videos" / "flashing" / "flashing_0.mp4"
    code, out, err = predict(capsys, video, "--classes", "demo", "--results", results,
                             "--backbone", "tiny-clip", "--resources", resources, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["descriptors"].endswith("demo-curated.json")
    assert doc["kinds"] == ["name", "attribute", "description", "hierarchy"]
    assert "explanation" not in doc["videos"][0]


def test_unknown_classes_is_a_setup_error(capsys, demo_videos, resources, tmp_path):
    code, out, err = predict(capsys, demo_videos / "videos" / "flashing" / "flashing_0.mp4",
                             "--classes", "nosuchdataset", "--results", tmp_path,
                             "--backbone", "tiny-clip", "--resources", resources)
    assert code == 2 and out == ""
    assert "nosuchdataset" in err and "classes.parquet" in err


def test_runs_from_any_folder_with_the_descriptors_of_the_datasets_run(
    capsys, tmp_path, monkeypatch, demo_videos, resources, descriptors_file
):
    """From another folder: the workflow's files are found (--workdir, or the checkout zsar
    is installed from), and --classes DATASET takes the descriptors of the LLM its run used,
    not just any descriptors file there."""
    import shutil

    workdir = tmp_path / "run"
    shutil.copytree(REPO / "config", workdir / "config")
    results = workdir / "results" / "demo"
    (results / "descriptors").mkdir(parents=True)
    _, names = class_list(demo_videos, tmp_path)
    pq.write_table(pa.Table.from_pylist([
        {"split": 1, "class_id": i, "name": n, "display_name": n} for i, n in enumerate(names)
    ]), results / "classes.parquet")
    (results / "descriptors" / "other-llm.json").write_text(descriptors_file.read_text())
    empty = json.loads(descriptors_file.read_text())
    empty["classes"] = {}
    (results / "descriptors" / "demo-curated.json").write_text(json.dumps(empty))
    chain = {"descriptors": {"llm": {"name": "other-llm", "backend": "file"}}}
    (results / "metrics" / "tiny-clip").mkdir(parents=True)
    (results / "metrics" / "tiny-clip" / "full.json").write_text(
        json.dumps({"provenance": {"chain": chain}}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    video = demo_videos / "videos" / "flashing" / "flashing_0.mp4"
    code = main(["predict", str(video), "--classes", "demo", "--backbone", "tiny-clip",
                 "--workdir", str(workdir), "--resources", str(resources), "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    doc = json.loads(out.out)
    assert doc["descriptors"] == str(results / "descriptors" / "other-llm.json")
    assert "descriptors of the run's LLM" in out.err and "other-llm.json" in out.err
    assert doc["kinds"] == ["name", "attribute", "description", "hierarchy"]
    # Without --workdir, the checkout zsar is installed from holds the registry.
    code = main(["predict", str(video), "--classes", str(results / "classes.parquet"),
                 "--backbone", "tiny-clip", "--resources", str(resources), "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert json.loads(out.out)["classes"] == len(names)
