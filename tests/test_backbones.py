"""Backbones: the Backbone interface, per-checkpoint preprocessing, and `zsar models`."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from zsar.models.backbones import (
    MissingCheckpointError,
    build_image_transform,
    hf_preprocess_cfg,
    load_backbone,
)
from zsar.models.fetch import open_clip_folder_config
from zsar.models.preprocess import preprocess_of
from zsar.models.registry import READY_FILE, get_entry, load_registry
from zsar.models.tiny import build_tiny_open_clip

REPO = Path(__file__).resolve().parents[1]
REGISTRY = load_registry(REPO / "config" / "models.yaml")


def backbone_entry(name: str) -> dict:
    return get_entry(REGISTRY, "backbones", name)


@pytest.fixture(scope="module")
def tiny_clip(tiny_resources):
    return load_backbone(backbone_entry("tiny-clip"), tiny_resources)


def _frame(width=96, height=64, colour=(200, 30, 30)):
    return Image.new("RGB", (width, height), colour)


def test_backbone_interface_on_the_tiny_model(tiny_clip):
    pixels = tiny_clip.preprocess([_frame(), _frame(colour=(0, 0, 255)).convert("L")])
    assert pixels.shape == (2, 3, 64, 64) and pixels.dtype == torch.float32
    images = tiny_clip.encode_images(pixels)
    texts = tiny_clip.encode_texts(["a red square", "a blue square", "juggling"], batch_size=2)
    for out in (images, texts):
        assert out.dtype == torch.float32 and out.device.type == "cpu"
        assert torch.allclose(out.norm(dim=-1), torch.ones(len(out)), atol=1e-5)
    assert not torch.allclose(images[0], images[1])
    # Batching does not change an embedding.
    one_by_one = torch.cat([tiny_clip.encode_texts([t]) for t in ["a red square", "juggling"]])
    assert torch.allclose(one_by_one, texts[[0, 2]], atol=1e-6)
    assert tiny_clip.encode_texts([]).shape == (0, 64)
    # Data loader workers receive the transform by pickling.
    restored = pickle.loads(pickle.dumps(tiny_clip.transform))
    assert torch.equal(restored(_frame()), pixels[0])


def test_tiny_build_is_deterministic_and_has_the_hub_layout(tmp_path):
    spec = backbone_entry("tiny-clip")["build"]
    build_tiny_open_clip(spec, tmp_path / "a")
    build_tiny_open_clip(spec, tmp_path / "b")
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["open_clip_config.json", "open_clip_model.safetensors"]
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    build_tiny_open_clip({**spec, "seed": 1}, tmp_path / "c")
    other = (tmp_path / "c" / "open_clip_model.safetensors").read_bytes()
    assert other != (tmp_path / "a" / "open_clip_model.safetensors").read_bytes()


def test_missing_checkpoint_names_the_rule(tmp_path):
    with pytest.raises(MissingCheckpointError) as err:
        load_backbone(backbone_entry("openai-vit-b-16"), tmp_path)
    assert f"snakemake --cores 1 {tmp_path}/models/openai-vit-b-16/{READY_FILE}" in str(err.value)
    with pytest.raises(ValueError, match="backend must be one of"):
        load_backbone({"name": "x", "backend": "nope"}, tmp_path)


# --- preprocessing: each checkpoint its own ---------------------------------------------------

OPEN_CLIP_ENTRIES = ["openai-vit-b-16", "openai-vit-l-14", "laion-vit-l-14", "siglip-vit-b-16"]


@pytest.mark.parametrize("name", OPEN_CLIP_ENTRIES)
def test_registry_preprocessing_is_open_clips_for_the_tag(name):
    """The registry states what open_clip publishes with the weights (no download)."""
    import open_clip

    entry = backbone_entry(name)
    published = open_clip.get_pretrained_cfg(entry["architecture"], entry["pretrained"])
    assert published, f"{entry['architecture']}/{entry['pretrained']} is not an open_clip tag"
    stated = preprocess_of(entry)
    for key in ("interpolation", "resize_mode"):
        assert stated[key] == published[key]
    assert stated["mean"] == pytest.approx(published["mean"])
    assert stated["std"] == pytest.approx(published["std"])
    model_cfg = open_clip.get_model_config(entry["architecture"])
    assert stated["size"] == model_cfg["vision_cfg"]["image_size"]


def test_siglip_and_clip_get_different_correct_preprocessing():
    siglip, clip = (
        preprocess_of(backbone_entry("siglip-vit-b-16")),
        preprocess_of(backbone_entry("openai-vit-b-16")),
    )
    assert siglip["mean"] == siglip["std"] == (0.5, 0.5, 0.5)
    assert clip["mean"] == pytest.approx((0.48145466, 0.4578275, 0.40821073))
    assert clip["std"] == pytest.approx((0.26862954, 0.26130258, 0.27577711))
    assert (siglip["size"], clip["size"]) == (224, 224)
    assert siglip["interpolation"] == clip["interpolation"] == "bicubic"
    assert (siglip["resize_mode"], clip["resize_mode"]) == ("squash", "shortest")

    # A wide frame: red left quarter, grey elsewhere. CLIP crops the centre, SigLIP squashes.
    frame = Image.new("RGB", (448, 224), (128, 128, 128))
    frame.paste((255, 0, 0), (0, 0, 112, 224))
    as_siglip, as_clip = build_image_transform(siglip)(frame), build_image_transform(clip)(frame)
    assert as_siglip.shape == as_clip.shape == (3, 224, 224)
    assert as_siglip[0, 112, 10] == pytest.approx((1.0 - 0.5) / 0.5, abs=1e-3)  # red kept
    grey = 128 / 255
    assert as_clip[0, 112, 10] == pytest.approx((grey - 0.48145466) / 0.26862954, abs=1e-3)
    assert as_siglip[1, 112, 200] == pytest.approx((grey - 0.5) / 0.5, abs=1e-3)


def test_fetched_folder_config_carries_the_tags_preprocessing_and_tokenizer():
    """What fetch_model writes for a tag (built from open_clip's registry; no download)."""
    import open_clip

    siglip = backbone_entry("siglip-vit-b-16")
    cfg = open_clip_folder_config(siglip, open_clip.get_pretrained_cfg("ViT-B-16-SigLIP", "webli"))
    assert cfg["preprocess_cfg"]["resize_mode"] == "squash"
    assert cfg["model_cfg"]["text_cfg"]["hf_tokenizer_name"]  # its own tokenizer, not CLIP's BPE
    assert cfg["model_cfg"]["text_cfg"]["context_length"] == 64
    openai = backbone_entry("openai-vit-b-16")
    cfg = open_clip_folder_config(openai, open_clip.get_pretrained_cfg("ViT-B-16", "openai"))
    assert cfg["model_cfg"]["quick_gelu"] is True  # as OpenAI trained it
    assert "hf_tokenizer_name" not in cfg["model_cfg"]["text_cfg"]


def test_preprocessing_travels_with_an_open_clip_folder(tmp_path):
    """A folder with SigLIP's preprocess_cfg loads with SigLIP's transform (same local-dir path)."""
    spec = dict(backbone_entry("tiny-clip")["build"])
    spec["preprocess_cfg"] = {
        "mean": [0.5] * 3,
        "std": [0.5] * 3,
        "interpolation": "bilinear",
        "resize_mode": "squash",
    }
    folder = tmp_path / "models" / "tiny-squash"
    build_tiny_open_clip(spec, folder)
    (folder / READY_FILE).write_text("{}")
    backbone = load_backbone({"name": "tiny-squash", "backend": "open_clip"}, tmp_path)
    assert (backbone.mean, backbone.std) == ((0.5,) * 3, (0.5,) * 3)
    assert (backbone.interpolation, backbone.resize_mode, backbone.image_size) == (
        "bilinear",
        "squash",
        64,
    )
    wide = Image.new("RGB", (256, 64), (255, 255, 255))
    assert backbone.preprocess([wide]).shape == (1, 3, 64, 64)
    assert torch.allclose(backbone.preprocess([wide]), torch.ones(1, 3, 64, 64))


def test_video_model_preprocessing_resizes_then_crops():
    """ViFi-CLIP and ActionCLIP: short side to 256, centre crop 224; ViFi-CLIP's mmaction
    pipeline resizes bilinear, ActionCLIP's GroupScale bicubic (datasets/transforms_ss.py)."""
    from torchvision import transforms as T

    mode = T.InterpolationMode
    for name, interpolation in (("vificlip-vit-b-16-k400", mode.BILINEAR),
                                ("actionclip-vit-b-16", mode.BICUBIC)):
        transform = build_image_transform(preprocess_of(backbone_entry(name)))
        resize = next(t for t in transform.transforms if isinstance(t, T.Resize))
        assert (resize.size, resize.interpolation) == (256, interpolation)
    assert preprocess_of(backbone_entry("vificlip-vit-b-16-k400"))["mean"] == (0.485, 0.456, 0.406)


def test_transformers_processor_configs():
    """SigLIP's and CLIP's published processor configs (values as on the hub)."""
    siglip = hf_preprocess_cfg(
        {
            "do_resize": True,
            "size": {"height": 224, "width": 224},
            "resample": 3,
            "image_mean": [0.5, 0.5, 0.5],
            "image_std": [0.5, 0.5, 0.5],
        }
    )
    clip = hf_preprocess_cfg(
        {
            "crop_size": 224,
            "do_center_crop": True,
            "size": 224,
            "resample": 3,
            "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_std": [0.26862954, 0.26130258, 0.27577711],
        }
    )
    assert (siglip["resize_mode"], siglip["mean"], siglip["size"]) == ("squash", (0.5,) * 3, 224)
    assert (clip["resize_mode"], clip["interpolation"], clip["crop_pct"]) == (
        "shortest",
        "bicubic",
        1.0,
    )


# --- `zsar models` ---------------------------------------------------------------------------


def test_zsar_models_lists_every_entry_without_torch():
    code = (
        "import sys; from zsar.cli import main; main(['models', '--tsv']);"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[-1] == "NO-TORCH"
    rows = {line.split("\t")[1]: line.split("\t") for line in out[1:-1]}
    expected = {name for section in REGISTRY.values() for name in section}
    assert set(rows) == expected
    assert rows["siglip-vit-b-16"][4].startswith("size=224 bicubic squash mean=(0.5,0.5,0.5)")
    assert rows["openai-vit-b-16"][4].startswith("size=224 bicubic shortest mean=(0.4815,")
    assert rows["openai-vit-b-16"][3] == "open_clip: ViT-B-16 pretrained=openai"
    assert "https://" in rows["vificlip-vit-b-16-k400"][3]
    assert rows["tiny-clip"][2] == "CLIP (tiny, random init)"
