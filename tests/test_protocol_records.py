"""A record states the protocol its embeddings were made under (zsar.core.protocol): read from
their provenance, refused where the config disagrees; class names spelled per backbone
through the real loaders and UCF101's real lists; the texts, not the rule's name, compared
with a published protocol."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers.stage_inputs import CHAIN, SCORE_PARAMS, VIDEO_PROTOCOL, write_score_inputs

from zsar.core.protocol import ProtocolMismatch
from zsar.core.references import comparisons, load_references
from zsar.data.io import read_provenance, write_parquet
from zsar.stages.scoring import run_scoring_stage

REPO = Path(__file__).resolve().parents[1]
LISTS = REPO.parent / "shared" / "benchmark-lists"


def _score(inputs, out: Path, chain=CHAIN, **kwargs):
    return run_scoring_stage(
        inputs, {**SCORE_PARAMS, "variant": "baseline"}, str(out / "s.parquet"),
        str(out / "m.json"), dataset="toy", backbone={"name": "tiny"}, run="baseline",
        chain=chain, **kwargs,
    )  # fmt: skip


def _remake_videos(inputs, protocol):
    table = pq.read_table(inputs["videos"])
    write_parquet(table, inputs["videos"], {"protocol": protocol})


def test_the_record_reads_its_protocol_from_the_embeddings(tmp_path):
    inputs = write_score_inputs(tmp_path / "in")
    record = _score(inputs, tmp_path / "out")
    made = record["provenance"]["protocol"]
    assert made["frames"] == VIDEO_PROTOCOL["protocol"]["frames"]
    assert made["views"] == {"clips": 1, "crops": 1}
    assert made["pooling"] == "normalise_then_mean"


@pytest.mark.parametrize(
    "field, stale, named",
    [
        ("views", {"clips": 1, "crops": 3}, "views"),
        ("frames", {"sampling": "tsn", "num_frames": 16, "clips": 1}, "frames"),
        ("frames", {"sampling": "stride", "num_frames": 8, "clips": 1, "stride": 16}, "frames"),
        ("pooling", "mean_then_normalise", "pooling"),
    ],
)
def test_embeddings_made_otherwise_than_the_config_says_are_refused(tmp_path, field, stale,
                                                                    named):
    inputs = write_score_inputs(tmp_path / "in")
    _remake_videos(inputs, {**VIDEO_PROTOCOL["protocol"], field: stale})
    with pytest.raises(ProtocolMismatch) as caught:
        _score(inputs, tmp_path / "out")
    message = str(caught.value)
    assert "\n" not in message and inputs["videos"] in message
    assert f"{named}: the embeddings were made with" in message
    assert not (tmp_path / "out" / "m.json").exists()


def test_a_record_from_embeddings_without_a_protocol_is_refused(tmp_path):
    inputs = write_score_inputs(tmp_path / "in")
    bare = pq.read_table(inputs["videos"]).replace_schema_metadata(None)
    pq.write_table(bare, inputs["videos"])  # no provenance
    with pytest.raises(ProtocolMismatch, match="frames: the embeddings were made with"):
        _score(inputs, tmp_path / "out")


# --- class names per backbone, through the real loaders ------------------------------------

VIFI_LIKE = """  vifi-like:
    backend: open_clip
    demo: true
    build: &tiny
      family: open_clip
      seed: 0
      model_cfg:
        embed_dim: 32
        vision_cfg: {image_size: 64, layers: 1, width: 32, head_width: 16, patch_size: 16}
        text_cfg: {context_length: 32, vocab_size: 49408, width: 32, heads: 2, layers: 1}
    name_prompt: "a photo of a {}."
    class_names: raw
  openai-like:
    backend: open_clip
    demo: true
    build: *tiny
    name_prompt: "a photo of a {}."
    class_names: open-vclip
"""


@pytest.fixture
def ucf101_sweep(tmp_path):
    """A config folder with two tiny backbones, one on ViFi-CLIP's spelling and one on
    Open-VCLIP's, and UCF101 from ViFi-CLIP's real split list and label file."""
    if not (LISTS / "vificlip-splits").is_dir():
        pytest.skip(f"needs the real benchmark lists in {LISTS}")
    config_dir = shutil.copytree(REPO / "config", tmp_path / "config")
    models = config_dir / "models.yaml"
    models.write_text(models.read_text().replace("backbones:\n", f"backbones:\n{VIFI_LIKE}", 1))
    config = {
        "datasets": ["ucf101"],
        "backbones": ["vifi-like", "openai-like"],
        "allow_demo_models": True,
        "models": str(models),
        "captions": {"captioner": "none"},
        "descriptors": {"llm": "demo-curated"},
        "dataset_specs": {"ucf101": {
            "adapter": "ucf101",
            "annotations": str(LISTS / "vificlip-splits" / "ucf_splits_val1.txt"),
            "labels": str(LISTS / "vificlip-labels" / "ucf_101_labels.csv"),
            "splits": [1],
        }},
    }  # fmt: skip
    return config, config_dir


def _sent_texts(run, backbone: str) -> dict[str, str]:
    table = pq.read_table(run[backbone]).to_pylist()
    return {row["owner"]: row["text"] for row in table}


@pytest.fixture
def class_name_jobs(ucf101_sweep, tmp_path):
    """The classes job and each backbone's class-name job, as the workflow runs them (the
    models built by fetch_model's own code)."""
    from zsar.models.backbones import load_backbone
    from zsar.models.fetch import fetch_model
    from zsar.models.registry import get_entry
    from zsar.pipeline.config import load_config
    from zsar.pipeline.plan import resolve_run
    from zsar.stages.embed_text import load_name_prompt, run_class_name_stage
    from zsar.stages.manifest import run_classes_stage

    config, config_dir = ucf101_sweep
    plan = resolve_run(load_config([config_dir / "config.yaml"], config), config_dir)
    data = plan.datasets["ucf101"]
    classes = tmp_path / "classes.parquet"
    run_classes_stage(data, str(classes), data.class_list_key())
    out = {}
    for name in plan.backbones:
        entry = get_entry(plan.registry, "backbones", name)
        fetch_model(entry, tmp_path / "resources", "backbones")
        backbone = load_backbone(entry, tmp_path / "resources")
        out[name] = tmp_path / f"{name}.parquet"
        run_class_name_stage(
            str(classes), str(out[name]), backbone,
            load_name_prompt(entry.get("name_prompt"), config_dir / "prompts"), {},
            class_names=plan.class_name_rule("ucf101", name),
        )  # fmt: skip
    return out


def test_one_sweep_sends_each_backbone_its_own_spelling(class_name_jobs):
    vifi, openai = (_sent_texts(class_name_jobs, b) for b in ("vifi-like", "openai-like"))
    assert vifi["ApplyEyeMakeup"] == "a photo of a ApplyEyeMakeup."
    assert openai["ApplyEyeMakeup"] == "a photo of a Apply Eye Makeup."
    assert openai["YoYo"] == "a photo of a Yoyo."  # Open-VCLIP's label file's spelling
    assert len(vifi) == len(openai) == 101
    made = {b: read_provenance(p)["protocol"] for b, p in class_name_jobs.items()}
    assert made["vifi-like"]["class_names"] == "raw"
    assert made["openai-like"]["class_names"] == "open-vclip"
    assert made["vifi-like"]["class_texts"] != made["openai-like"]["class_texts"]


def test_the_reference_check_compares_texts_not_rule_names(tmp_path):
    """HMDB51's label file already spells its names as words: a run with `raw` gives the
    texts `words` gives, and is set beside a reference that says `words`."""
    from zsar.core.class_names import all_rules, rules_giving, texts_digest

    names = ["brush hair", "cartwheel", "climb stairs"]
    rules = all_rules(REPO / "config")
    same = rules_giving(texts_digest(names), rules, "hmdb51", names)
    assert {"raw", "words", "spaced", "open-vclip"} <= set(same)
    camel = ["ApplyEyeMakeup", "YoYo"]
    assert rules_giving(texts_digest(camel), rules, "ucf101", camel) == ["raw"]

    references = load_references(REPO / "config" / "reference_results.yaml")
    record = {
        "variant": "baseline", "backbone": "openai-vit-b-16", "dataset": "hmdb51",
        "mean": {"top1": 0.5},
        "provenance": {
            "chain": {"dataset": {"adapter": "hmdb51", "splits": [1, 2, 3]}},
            "protocol": {
                "frames": {"sampling": "stride", "num_frames": 8, "clips": 3, "stride": 16},
                "views": {"clips": 3, "crops": 1}, "pooling": "normalise_then_mean",
                "name_prompt": "openai-kinetics-28", "class_names": "raw",
                "class_names_same_as": same,
            },
        },
    }  # fmt: skip
    (found,) = comparisons(record, references)
    assert found.matched, found.differences


# --- one overlay per published protocol, checked before any job --------------------------


@pytest.mark.parametrize(
    "overlay, published",
    [("vificlip-zero-shot", "ucf101 x vificlip-vit-b-16-k400: 76.8 ± 0.7"),
     ("frozen-clip-froster", "ucf101 x openai-vit-b-16: 73.8 ± 0.6")],
)
def test_each_overlay_is_set_beside_its_published_number(tmp_path, overlay, published):
    """As the overlay's own comment types it, on a data root holding ViFi-CLIP's real
    UCF101 lists (the class names are read from them)."""
    if not (LISTS / "vificlip-splits").is_dir():
        pytest.skip(f"needs the real benchmark lists in {LISTS}")
    import subprocess
    import sys

    root = tmp_path / "data" / "ucf101"
    (root / "videos").mkdir(parents=True)
    for split in (1, 2, 3):
        shutil.copy(LISTS / "vificlip-splits" / f"ucf_splits_val{split}.txt", root)
    shutil.copy(LISTS / "vificlip-labels" / "ucf_101_labels.csv", root)
    command = [
        sys.executable, "-m", "zsar.cli", "config", "--check-reference", "config/config.yaml",
        "config/datasets/ucf101.yaml", f"config/runs/{overlay}.yaml",
    ]
    assert " ".join(command[3:]) in " ".join(
        (REPO / "config" / "runs" / f"{overlay}.yaml").read_text().replace("\\\n#", "").split()
    )  # the command the overlay's comment gives
    data_root = tmp_path / "root.yaml"
    data_root.write_text(f"data_root: {tmp_path / 'data'}\n")
    done = subprocess.run([*command, str(data_root)], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line for line in lines if line.startswith(published)] == [
        next(line for line in lines if line.startswith(published))
    ]
    mine = next(line for line in lines if line.startswith(published))
    assert mine.endswith("compared, every protocol field agrees"), mine


def test_the_default_run_says_which_fields_keep_it_from_a_published_number(tmp_path):
    """Without an overlay, ViFi-CLIP runs 8 frames: the preflight names that field."""
    from zsar.commands.config_command import check_reference
    from zsar.pipeline.config import load_config

    overlay = tmp_path / "run.yaml"
    lists = LISTS / "vificlip-splits" / "ucf_splits_val{split}.txt"
    overlay.write_text("backbones: [vificlip-vit-b-16-k400]\ndatasets: [ucf101]\n"
                       f"data_root: {tmp_path}\n"
                       "dataset_specs:\n  ucf101:\n    adapter: ucf101\n"
                       f"    annotations: {lists}\n"
                       f"    labels: {LISTS / 'vificlip-labels' / 'ucf_101_labels.csv'}\n"
                       "    splits: [1, 2, 3]\n")
    if not (LISTS / "vificlip-splits").is_dir():
        pytest.skip(f"needs the real benchmark lists in {LISTS}")
    lines = check_reference(load_config([REPO / "config" / "config.yaml", overlay]),
                            REPO / "config")
    assert lines == [
        "ucf101 x vificlip-vit-b-16-k400: 76.8 ± 0.7 (ViFi-CLIP README, zero-shot results "
        "(std from FROSTER README, Table 2)): NOT compared; frames per view: this run 8, "
        "published 32"
    ]


# --- a run under a protocol other than the default, on a fresh root ------------------------


@pytest.mark.slow  # runs the workflow
def test_every_record_of_a_multi_view_stride_run_states_what_its_embeddings_were_made_with(
    tmp_path,
):
    """3 clips x 3 crops of 4 frames at a stride, planned and run on a fresh root (the
    edits one at a time are tests/test_rerun.py's cases): every metrics JSON, the frames
    shard and the video embeddings agree with each other and with the config, and the
    tables say the views the embeddings were made with."""
    import json

    from helpers.workflow import copy_workflow, snakemake

    workdir = copy_workflow(tmp_path / "wf", with_library=True)
    (workdir / "run.yaml").write_text(
        "demo_clips_per_class: 2\ncaptions: {captioner: none}\n"
        "frames: {num_frames: 4, sampling: stride, stride: 2, views: {clips: 3, crops: 3}}\n"
    )
    done = snakemake(workdir, "--cores", "2", "--configfile", "config/config.yaml", "run.yaml")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    results = workdir / "results" / "demo"
    (frames,) = (results / "frames").glob("*/000-of-001.parquet")
    assert frames.parent.name == "stride4x2_s256_q90_c3"
    sampled = {"sampling": "stride", "num_frames": 4, "clips": 3, "stride": 2, "target_fps": 30}
    assert read_provenance(frames)["protocol"] == sampled
    assert {len(i) for i in pq.read_table(frames).column("frame_indices").to_pylist()} == {12}
    videos = read_provenance(results / "embeddings" / "tiny-clip" / "videos.parquet")
    assert videos["protocol"]["frames"] == sampled
    assert videos["protocol"]["views"] == {"clips": 3, "crops": 3}
    records = sorted((results / "metrics").glob("*/*.json"))
    assert records
    for path in records:
        made = json.loads(path.read_text())["provenance"]["protocol"]
        assert made["frames"] == sampled and made["views"] == {"clips": 3, "crops": 3}, path
    settings = (workdir / "results" / "tables" / "results.md").read_text()
    assert "4 per view (at stride 2 from each clip's offset, Open-VCLIP's), views 3x3" in settings


def test_the_readmes_preflight_command_as_typed(tmp_path):
    """docs/protocols.md's `zsar config --check-reference` command, continued lines joined,
    with its data root pointed at one holding the real UCF101 lists."""
    if not (LISTS / "vificlip-splits").is_dir():
        pytest.skip(f"needs the real benchmark lists in {LISTS}")
    import re
    import shlex
    import subprocess

    readme = (REPO / "docs" / "protocols.md").read_text()
    (typed,) = [
        line for block in re.findall(r"```sh\n(.*?)```", readme, re.S)
        for line in re.sub(r"\\\n\s*", "", block).splitlines()
        if line.startswith("zsar config --check-reference")
    ]  # fmt: skip
    root = tmp_path / "data" / "ucf101"
    (root / "videos").mkdir(parents=True)
    for split in (1, 2, 3):
        shutil.copy(LISTS / "vificlip-splits" / f"ucf_splits_val{split}.txt", root)
    shutil.copy(LISTS / "vificlip-labels" / "ucf_101_labels.csv", root)
    argv = [a.replace("data_root=/data", f"data_root={tmp_path / 'data'}")
            for a in shlex.split(typed)]
    zsar = Path(sys.executable).with_name("zsar")
    done = subprocess.run([str(zsar), *argv[1:]], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ucf101 x vificlip-vit-b-16-k400: 76.8 ± 0.7")
    assert "compared, every protocol field agrees" in done.stdout
