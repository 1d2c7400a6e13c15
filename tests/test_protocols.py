"""Each backbone's own evaluation protocol, checked against what its authors' code does.

The class texts: for ViFi-CLIP, ActionCLIP, an OpenAI CLIP and SigLIP, a tiny model of the
checkpoint's layout is loaded through the registry entry and the real loader, the class-name
stage embeds UCF101's real class list (as the dataset file of config/datasets/ reads it),
and the texts reaching the tokenizer are compared with the protocol written out here from
the upstream sources (README, "Models"). Then the frame pooling and the views, against a
numpy reference, and the captioners' context check.
"""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from helpers.checkpoints import (
    TINY_CFG,
    random_openai_state,
    write_actionclip_checkpoint,
    write_vificlip_checkpoint,
)
from helpers.workflow import BENCHMARK_LISTS
from PIL import Image

from zsar.models.backbones import load_backbone
from zsar.models.registry import READY_FILE, get_entry, load_registry
from zsar.models.tiny import build_tiny_open_clip, train_tiny_tokenizer
from zsar.pipeline.config import ConfigError
from zsar.pipeline.plan import _name_prompt, check_caption_context, resolve_dataset
from zsar.stages.embed import (
    SPATIAL_CROPS,
    Views,
    iter_video_embeddings,
    video_embedding,
)
from zsar.stages.embed_text import embed_class_names
from zsar.stages.frames import FRAMES_SCHEMA, sample_frame_indices
from zsar.stages.manifest import run_classes_stage
from zsar.stages.scoring import class_vector_sets, score_with_templates

REPO = Path(__file__).parents[1]
CONFIG = REPO / "config"

# --- the protocols, as the upstream code has them -------------------------------------------

# ViFi-CLIP, trainers/vificlip.py (muzairkhattak/ViFi-CLIP): "a photo of a " + name + "."
VIFI = ["a photo of a {}."]
# ActionCLIP, utils/Text_Prompt.py (sallymmx/ActionCLIP): its 16 templates, in order.
ACTIONCLIP = [
    "a photo of action {}", "a picture of action {}", "Human action of {}", "{}, an action",
    "{} this is an action", "{}, a video of action", "Playing action of {}", "{}",
    "Playing a kind of action, {}", "Doing a kind of action, {}", "Look, the human is {}",
    "Can you recognize the action of {}?", "Video classification of {}", "A video of {}",
    "The man is {}", "The woman is {}",
]
# OpenAI's CLIP, data/prompts.md, Kinetics-700: four openings x seven endings (28).
OPENAI_KINETICS = [
    f"{opening} {ending}."
    for opening in ("a photo of", "a video of", "a example of", "a demonstration of")
    for ending in ("{}", "a person {}", "a person using {}", "a person doing {}",
                   "a person during {}", "a person performing {}", "a person practicing {}")
]
# (templates, how they combine) per registry entry.
PROTOCOLS = {
    "vificlip-vit-b-16-k400": (VIFI, "embedding_mean"),
    "actionclip-vit-b-16": (ACTIONCLIP, "softmax_mean"),
    "openai-vit-b-16": (OPENAI_KINETICS, "embedding_mean"),
    "siglip-vit-b-16": (OPENAI_KINETICS, "embedding_mean"),
}


# --- tiny checkpoints in each entry's layout, under the entry's own name ---------------------


def _ready(folder: Path) -> None:
    (folder / READY_FILE).write_text("{}")


def _siglip_like(folder: Path) -> None:
    """A tiny custom-text open_clip model with the text settings open_clip's SigLIP config
    gives (what fetch_model writes): its own HF tokenizer, canonicalised text."""
    import open_clip

    text = open_clip.get_model_config("ViT-B-16-SigLIP")["text_cfg"]
    corpus = [t.format(n) for t in OPENAI_KINETICS for n in ("apply eye makeup", "yo yo")]
    tokenizer = train_tiny_tokenizer(corpus, 300)
    tokenizer.save_pretrained(folder)
    cfg = {
        "embed_dim": 16, "custom_text": True,
        "vision_cfg": TINY_CFG["vision_cfg"],
        "text_cfg": {
            "context_length": text["context_length"], "vocab_size": len(tokenizer),
            "hf_tokenizer_name": text["hf_tokenizer_name"],
            "tokenizer_kwargs": text["tokenizer_kwargs"],
            "width": 32, "heads": 2, "layers": 1, "no_causal_mask": True, "pool_type": "last",
        },
    }
    build_tiny_open_clip({"model_cfg": cfg, "seed": 4}, folder)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """resources/ with a tiny model under each real entry's name; entries made tiny only in
    their architecture (`model_cfg`), everything else as config/models.yaml has it."""
    root = tmp_path_factory.mktemp("resources")
    registry = load_registry(CONFIG / "models.yaml")
    models = root / "models"
    openai = models / "openai-vit-b-16"
    build_tiny_open_clip({"model_cfg": TINY_CFG, "seed": 3}, openai)
    _ready(openai)
    siglip = models / "siglip-vit-b-16"
    siglip.mkdir(parents=True)
    _siglip_like(siglip)
    _ready(siglip)
    entries = {name: get_entry(registry, "backbones", name) for name in PROTOCOLS}
    for name, write in (("vificlip-vit-b-16-k400", write_vificlip_checkpoint),
                        ("actionclip-vit-b-16", write_actionclip_checkpoint)):
        (models / name).mkdir(parents=True)
        write(models / name / entries[name]["local_file"], random_openai_state(seed=1))
        _ready(models / name)
        entries[name] = {**entries[name], "model_cfg": TINY_CFG}
    return root, registry, entries


@pytest.fixture(scope="module")
def ucf101_classes(tmp_path_factory):
    """UCF101's class list as the classes rule writes it from the real ViFi-CLIP lists,
    read with config/datasets/ucf101.yaml's own spec."""
    if not BENCHMARK_LISTS.is_dir():
        pytest.skip(f"{BENCHMARK_LISTS} is not here")
    root = tmp_path_factory.mktemp("data")
    folder = root / "ucf101"
    folder.mkdir()
    for k in (1, 2, 3):
        shutil.copy(BENCHMARK_LISTS / f"vificlip-splits/ucf_splits_val{k}.txt", folder)
    shutil.copy(BENCHMARK_LISTS / "vificlip-labels/ucf_101_labels.csv", folder)
    spec = yaml.safe_load((CONFIG / "datasets/ucf101.yaml").read_text())["dataset_specs"]
    plan = resolve_dataset("ucf101", spec["ucf101"], str(root))
    out = root / "classes.parquet"
    run_classes_stage(plan, str(out), plan.class_list_key())
    return pq.read_table(out)


def label_file_names() -> list[str]:
    lines = (BENCHMARK_LISTS / "vificlip-labels/ucf_101_labels.csv").read_text().splitlines()
    return [line.split(",", 1)[1] for line in lines[1:]]


def test_ucf101_reads_names_raw_as_the_published_numbers_did(ucf101_classes):
    """The default in config/datasets/ucf101.yaml is `raw`, ViFi-CLIP's protocol: the label
    file's CamelCase names reach the text encoder as they are spelled."""
    spec = yaml.safe_load((CONFIG / "datasets/ucf101.yaml").read_text())["dataset_specs"]
    assert spec["ucf101"]["class_names"] == "raw"
    displays = sorted(set(ucf101_classes.column("display_name").to_pylist()))
    assert displays == sorted(label_file_names())
    assert "ApplyEyeMakeup" in displays and "YoYo" in displays


class Spy:
    """Stands in for a tokenizer, recording each batch of texts it is given."""

    def __init__(self, inner):
        self.inner, self.texts = inner, []

    def __call__(self, texts, *args, **kwargs):
        self.texts += list(texts)
        return self.inner(texts, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.mark.parametrize("name", list(PROTOCOLS))
def test_class_texts_are_the_checkpoints_protocol(name, checkpoints, ucf101_classes):
    resources, registry, entries = checkpoints
    templates, combine = PROTOCOLS[name]
    backbone = load_backbone(entries[name], resources)
    prompt = _name_prompt(registry, name, CONFIG)
    assert (list(prompt.templates), prompt.combine) == (templates, combine)

    sent = Spy(backbone.encoders.tokenize)
    backbone.encoders.tokenize = sent
    table = embed_class_names(ucf101_classes, backbone, prompt)
    names = label_file_names()
    expected = {t.format(n) for t in templates for n in names}
    assert set(sent.texts) == expected and len(sent.texts) == len(expected)
    assert "a photo of a ApplyEyeMakeup." in sent.texts or name != "vificlip-vit-b-16-k400"

    # How the templates' scores combine, against a numpy reference.
    unit = table.column("vector").to_numpy(zero_copy_only=False)
    by_text = dict(zip(table.column("text").to_pylist(), unit, strict=True))
    class_names = ucf101_classes.filter(pa.compute.equal(ucf101_classes["split"], 1))
    order = class_names.column("name").to_pylist()
    per_template = np.stack([[by_text[t.format(n)] for n in order] for t in templates])
    videos = np.random.default_rng(0).normal(size=(4, per_template.shape[-1]))
    videos /= np.linalg.norm(videos, axis=1, keepdims=True)
    sets = class_vector_sets(table, order, {"name": 1.0}, prompt.combine)
    got = score_with_templates(videos, sets, combine=prompt.combine, scale=prompt.scale)
    if combine == "embedding_mean":
        mean = per_template.mean(axis=0)
        want = videos @ (mean / np.linalg.norm(mean, axis=1, keepdims=True)).T
    else:
        logits = 100.0 * np.einsum("vd,tcd->tvc", videos, per_template)
        probs = np.exp(logits - logits.max(axis=2, keepdims=True))
        want = (probs / probs.sum(axis=2, keepdims=True)).mean(axis=0)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_siglip_text_is_canonicalised_by_its_own_tokenizer(checkpoints, ucf101_classes):
    """SigLIP's tokenizer lower-cases and strips punctuation (open_clip's `canonicalize`,
    from the model's own config); what its BPE sees is that, not zsar's text."""
    resources, registry, entries = checkpoints
    backbone = load_backbone(entries["siglip-vit-b-16"], resources)
    inner = Spy(backbone.encoders.tokenizer.tokenizer)
    backbone.encoders.tokenizer.tokenizer = inner
    embed_class_names(ucf101_classes, backbone, _name_prompt(registry, "siglip-vit-b-16", CONFIG))
    assert "a photo of a person doing applyeyemakeup" in inner.texts
    assert all(t == t.lower() and not re.search(r"[.,?]", t) for t in inner.texts)


# --- frame pooling and views ------------------------------------------------------------------


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.mark.parametrize(("clips", "crops"), [(1, 1), (3, 1), (1, 3), (2, 3)])
def test_pooling_rules_and_views_against_a_numpy_reference(clips, crops):
    frames_per_view, dim = 4, 6
    rng = np.random.default_rng(clips * 10 + crops)
    # Frame embeddings as the stage orders them: clip-major, then frame, then crop.
    frames = rng.normal(size=(clips * frames_per_view * crops, dim)).astype(np.float32)
    views = []
    for c in range(clips):
        for k in range(crops):
            rows = [(c * frames_per_view + t) * crops + k for t in range(frames_per_view)]
            views.append(frames[rows])
    ntm = _unit(np.mean([_unit(v).mean(axis=0) for v in views], axis=0))
    mtn = _unit(np.mean([_unit(v.mean(axis=0)) for v in views], axis=0))
    got_ntm = video_embedding(frames, Views(clips, crops), "normalise_then_mean")
    got_mtn = video_embedding(frames, Views(clips, crops), "mean_then_normalise")
    np.testing.assert_allclose(got_ntm, ntm, rtol=1e-5)
    np.testing.assert_allclose(got_mtn, mtn, rtol=1e-5)
    if clips * crops > 1:  # the rules differ where a view has frames of unequal norms
        assert not np.allclose(got_ntm, got_mtn, atol=1e-4)


def test_a_frame_count_that_is_not_whole_views_is_an_error():
    with pytest.raises(ValueError, match="do not divide into 3 clips x 1 crops"):
        video_embedding(np.ones((8, 4), np.float32), Views(3, 1))


def test_temporal_clips_are_tsn_frames_of_equal_parts():
    """Sampling clips x T TSN frames is T TSN frames of each of the clips equal parts."""
    for length, clips, frames in ((300, 3, 8), (90, 2, 4), (7, 3, 2)):
        together = sample_frame_indices(length, clips * frames)
        for c in range(clips):
            part = together[c * frames : (c + 1) * frames]
            start, end = c * length / clips, (c + 1) * length / clips
            # The frame at the centre of each of the part's T equal segments.
            centres = [start + (2 * t + 1) * (end - start) / (2 * frames) for t in range(frames)]
            assert part == [int(np.floor(ctr + 1e-9)) for ctr in centres]


def test_three_crops_are_squares_of_the_short_side_along_the_long_side():
    wide = Image.fromarray(np.arange(200 * 300 * 3, dtype=np.uint32).astype(np.uint8)
                           .reshape(200, 300, 3))
    crops = SPATIAL_CROPS[3](wide)
    assert [c.size for c in crops] == [(200, 200)] * 3
    arr = np.asarray(wide)
    for crop, x in zip(crops, (0, 50, 100), strict=True):
        assert np.array_equal(np.asarray(crop), arr[:, x : x + 200])
    tall = Image.new("RGB", (120, 180))
    assert [c.size for c in SPATIAL_CROPS[3](tall)] == [(120, 120)] * 3
    assert SPATIAL_CROPS[1](wide) == [wide]


def _jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


@pytest.mark.slow  # runs the embedding stage twice, in spawned loader workers
def test_the_embedding_stage_pools_each_view_then_averages(tmp_path, tiny_resources):
    """Two clips x three crops through the stage's worker path equal the same frames cut,
    transformed, encoded by the tower itself (its raw output) and pooled by each
    checkpoint's upstream formula: mean_then_normalise as ViFi-CLIP's trainers/vificlip.py
    (ViFiCLIP.forward: the image encoder's features viewed [B, T, D], `.mean(dim=1)`, then
    divided by their norm), normalise_then_mean as CLIP's frame-wise protocol (unit frame
    vectors averaged). The two must differ here, or this test could not tell them apart."""
    registry = load_registry(CONFIG / "models.yaml")
    backbone = load_backbone(get_entry(registry, "backbones", "tiny-clip"), tiny_resources)
    rng = np.random.default_rng(0)
    rows = []
    for v in range(3):
        # 2 clips x 2 frames, unlike each other (noise, a flat colour), so that their raw
        # feature norms differ and the two poolings give different videos
        images = [Image.fromarray(rng.integers(0, 255, (48, 80, 3), dtype=np.uint8)),
                  Image.new("RGB", (80, 48), tuple(int(c) for c in rng.integers(0, 255, 3))),
                  Image.new("RGB", (80, 48), tuple(int(c) for c in rng.integers(0, 255, 3))),
                  Image.fromarray(rng.integers(0, 60, (48, 80, 3), dtype=np.uint8))]
        rows.append({"video_id": f"v{v}", "frame_indices": [0, 1, 2, 3],
                     "jpeg": [_jpeg(im) for im in images], "height": 48, "width": 80,
                     "num_source_frames": 4})  # fmt: skip
    shard = tmp_path / "000-of-001.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=FRAMES_SCHEMA), shard)
    views = Views(clips=2, crops=3)
    pooled = {}
    for pooling in ("normalise_then_mean", "mean_then_normalise"):
        got = list(iter_video_embeddings(shard, backbone, batch_frames=5, views=views,
                                         pooling=pooling))
        assert [n for _, _, n in got] == [4, 4, 4]
        for (video_id, vector, _), row in zip(got, rows, strict=True):
            decoded = [Image.open(io.BytesIO(j)).convert("RGB") for j in row["jpeg"]]
            cut = [crop for image in decoded for crop in SPATIAL_CROPS[3](image)]
            pixels = torch.stack([backbone.transform(image) for image in cut])
            with torch.no_grad():  # the tower's raw output: [clip, frame, crop] order
                frames = backbone.encoders.encode_image(pixels).float().numpy()
            per_view = [frames[[(c * 2 + t) * 3 + k for t in range(2)]]
                        for c in range(2) for k in range(3)]
            pool = (lambda f: _unit(f).mean(axis=0)) if pooling == "normalise_then_mean" \
                else (lambda f: f.mean(axis=0) / np.linalg.norm(f.mean(axis=0)))
            want = _unit(np.mean([pool(f) for f in per_view], axis=0))
            np.testing.assert_allclose(vector, want, atol=1e-5, err_msg=video_id)
            pooled.setdefault(video_id, []).append(vector)
    gaps = [np.abs(a - b).max() for a, b in pooled.values()]
    assert min(gaps) > 1e-3, f"the two poolings agree on these frames: {gaps}"  # >> atol


# --- the captioners' context -------------------------------------------------------------------


def _config(num_frames: int, clips: int = 1, max_new_tokens: int = 128) -> dict:
    return {"frames": {"num_frames": num_frames, "views": {"clips": clips, "crops": 1}},
            "captions": {"max_new_tokens": max_new_tokens}}


def test_llava_next_video_default_fits_and_more_frames_stop_with_both_numbers():
    registry = load_registry(CONFIG / "models.yaml")
    llava = get_entry(registry, "captioners", "llava-next-video-7b")
    check_caption_context(llava, _config(32))  # capped at its max_frames: fits
    uncapped = {k: v for k, v in llava.items() if k != "max_frames"}
    with pytest.raises(ConfigError) as err:
        check_caption_context(uncapped, _config(32))
    message = str(err.value)
    assert "\n" not in message and "llava-next-video-7b" in message
    assert "32 frames x 144 tokens" in message and "= 4992 tokens" in message
    assert "context of 4096" in message
    with pytest.raises(ConfigError, match="3 clips|48 frames|6912"):
        check_caption_context({**llava, "max_frames": 48}, _config(16, clips=3))


def test_the_readme_gives_every_backbone_its_protocol_and_published_numbers():
    from zsar.core.references import load_references

    readme = (REPO / "docs" / "protocols.md").read_text()
    section = readme.split("### Each backbone's own protocol", 1)[1].split("\n### ", 1)[0]
    registry = load_registry(CONFIG / "models.yaml")
    for name, entry in registry["backbones"].items():
        if not entry.get("demo"):
            assert f"`{name}`" in section, f"{name} has no protocol row in docs/protocols.md"
    for ref in load_references(CONFIG / "reference_results.yaml"):
        assert ref.published() in section, f"{ref.backbone} {ref.dataset} {ref.published()}"
