"""Checkpoint conversions: transformers CLIP and the video-adapted CLIPs, into open_clip.

Every model here is tiny and random, built by the test itself with the key names of the
published checkpoints; the project's loaders then load it through their real code path.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers.checkpoints import (
    HEADS,
    LAYERS,
    PATCH,
    TINY_CFG,
    WIDTH,
    random_openai_state,
    write_actionclip_checkpoint,
    write_vificlip_checkpoint,
)
from PIL import Image

from zsar.models.backbones import MissingCheckpointError, load_backbone
from zsar.models.convert import (
    LAYOUTS,
    CheckpointLayoutError,
    hf_clip_model_cfg,
    hf_clip_state_dict,
    remap_state_dict,
    video_clip_state_dict,
)
from zsar.models.registry import READY_FILE
from zsar.models.tiny import build_tiny_open_clip

TEXTS = ["a photo of a cat", "someone is juggling three balls", "brush hair"]


# --- transformers CLIPModel <-> open_clip ----------------------------------------------------


def _clip_tokenizer():
    """transformers' CLIPTokenizer over the BPE vocabulary that open_clip bundles (offline)."""
    from open_clip.tokenizer import SimpleTokenizer
    from transformers import CLIPTokenizer

    simple = SimpleTokenizer()
    merges = [pair for pair, _ in sorted(simple.bpe_ranks.items(), key=lambda kv: kv[1])]
    # open_clip spells the special tokens differently from OpenAI's released tokenizer files.
    special = {"bos_token": "<start_of_text>", "eos_token": "<end_of_text>"}
    return CLIPTokenizer(
        vocab=dict(simple.encoder),
        merges=merges,
        **special,
        pad_token=special["eos_token"],
        unk_token=special["eos_token"],
    )


def _tiny_hf_clip(folder: Path, eos_token_id: int):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    config = CLIPConfig(
        text_config={
            "vocab_size": 49408,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
            "bos_token_id": 49406,
            "eos_token_id": eos_token_id,
            "pad_token_id": 49407,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 48,  # an MLP ratio of 1.5, so that it must be carried over
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=24,
    )
    torch.manual_seed(0)
    model = CLIPModel(config).eval()
    with torch.no_grad():  # no parameter keeps its init value (LayerNorms start at 1 and 0)
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    model.save_pretrained(folder)
    _clip_tokenizer().save_pretrained(folder)
    CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(folder)
    return model


# Builds, saves and loads a transformers CLIP through both runtimes (about 15 s on two busy
# cores, most of it transformers' image stack): make test only. The tensor mapping itself is
# checked fast below (test_hf_clip_conversion_maps_every_tensor).
@pytest.mark.slow
@pytest.mark.parametrize("eos_token_id", [49407, 2])  # current configs, and legacy ones
def test_transformers_clip_matches_open_clip_conversion(tmp_path, eos_token_id):
    reference = _tiny_hf_clip(tmp_path, eos_token_id)
    entry = {"name": "tiny-hf-clip", "backend": "hf_clip", "path": str(tmp_path)}
    in_transformers = load_backbone(entry, tmp_path / "resources")
    in_open_clip = load_backbone({**entry, "runtime": "open_clip"}, tmp_path / "resources")

    pixels = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = F.normalize(reference.get_image_features(pixel_values=pixels).pooler_output)
    converted = in_open_clip.encode_images(pixels)
    assert converted.dtype == torch.float32 and converted.device.type == "cpu"
    assert torch.allclose(converted, expected, atol=1e-5)
    assert torch.allclose(in_transformers.encode_images(pixels), expected, atol=1e-5)

    # Both runtimes tokenize with the folder's own tokenizer: the same ids reach both models.
    hf_ids = in_transformers.encoders.tokenize(TEXTS)["input_ids"]
    assert torch.equal(in_open_clip.encoders.tokenize(TEXTS), hf_ids)
    with torch.no_grad():
        expected = F.normalize(reference.get_text_features(input_ids=hf_ids).pooler_output)
    assert torch.allclose(in_open_clip.encode_texts(TEXTS), expected, atol=1e-5)
    assert torch.allclose(in_transformers.encode_texts(TEXTS), expected, atol=1e-5)

    # Each runtime preprocesses with the checkpoint's own processor settings; the
    # transformers one runs the processor itself, pickled into data loader workers.
    frame = Image.new("RGB", (48, 40), (250, 120, 10))
    transform = pickle.loads(pickle.dumps(in_transformers.transform))
    assert transform(frame).shape == (3, 32, 32)
    assert torch.allclose(transform(frame), in_open_clip.transform(frame), atol=0.05)
    assert in_open_clip.preprocess_cfg == in_transformers.preprocess_cfg
    assert (in_open_clip.image_size, in_open_clip.interpolation) == (32, "bicubic")


def test_hf_clip_conversion_maps_every_tensor(tmp_path):
    import open_clip

    model = _tiny_hf_clip(tmp_path, 49407)
    converted = hf_clip_state_dict(model.state_dict())
    cfg = hf_clip_model_cfg(model.config.to_dict())
    target = open_clip.CLIP(**cfg).state_dict()
    assert set(converted) == set(target)
    assert all(converted[k].shape == target[k].shape for k in target)
    # Projections are nn.Linear weights in transformers, [in, out] matrices in open_clip.
    assert torch.equal(converted["visual.proj"], model.visual_projection.weight.T)
    assert cfg["vision_cfg"]["mlp_ratio"] == 1.5 and cfg["vision_cfg"]["head_width"] == 8
    layer = model.text_model.encoder.layers[1].self_attn
    packed = converted["transformer.resblocks.1.attn.in_proj_weight"]
    assert torch.equal(packed[32:64], layer.k_proj.weight)


# --- ViFi-CLIP and ActionCLIP ----------------------------------------------------------------

def _layer_norm(x, state, prefix):
    return F.layer_norm(x, x.shape[-1:], state[f"{prefix}.weight"], state[f"{prefix}.bias"])


def _residual_block(x, state, prefix, mask=None):
    """One block of OpenAI's CLIP, written out: pre-LN attention and QuickGELU MLP."""
    batch, length, width = x.shape
    h = _layer_norm(x, state, f"{prefix}.ln_1")
    q, k, v = (
        h @ state[f"{prefix}.attn.in_proj_weight"].T + state[f"{prefix}.attn.in_proj_bias"]
    ).chunk(3, -1)

    def heads(t):
        return t.reshape(batch, length, HEADS, width // HEADS).transpose(1, 2)

    scores = heads(q) @ heads(k).transpose(-1, -2) / (width // HEADS) ** 0.5
    if mask is not None:
        scores = scores + mask
    attended = (scores.softmax(-1) @ heads(v)).transpose(1, 2).reshape(batch, length, width)
    x = (
        x
        + attended @ state[f"{prefix}.attn.out_proj.weight"].T
        + state[f"{prefix}.attn.out_proj.bias"]
    )
    h = _layer_norm(x, state, f"{prefix}.ln_2")
    h = h @ state[f"{prefix}.mlp.c_fc.weight"].T + state[f"{prefix}.mlp.c_fc.bias"]
    h = h * torch.sigmoid(1.702 * h)
    return x + h @ state[f"{prefix}.mlp.c_proj.weight"].T + state[f"{prefix}.mlp.c_proj.bias"]


def image_embedding_by_hand(state, pixels):
    x = F.conv2d(pixels, state["visual.conv1.weight"], stride=PATCH).flatten(2).transpose(1, 2)
    cls = state["visual.class_embedding"].expand(x.shape[0], 1, WIDTH)
    x = torch.cat([cls, x], dim=1) + state["visual.positional_embedding"]
    x = _layer_norm(x, state, "visual.ln_pre")
    for i in range(LAYERS):
        x = _residual_block(x, state, f"visual.transformer.resblocks.{i}")
    return F.normalize(_layer_norm(x[:, 0], state, "visual.ln_post") @ state["visual.proj"])


def text_embedding_by_hand(state, tokens):
    x = state["token_embedding.weight"][tokens] + state["positional_embedding"]
    mask = torch.full((tokens.shape[1],) * 2, float("-inf")).triu(1)
    for i in range(LAYERS):
        x = _residual_block(x, state, f"transformer.resblocks.{i}", mask)
    x = _layer_norm(x, state, "ln_final")
    pooled = x[torch.arange(len(tokens)), tokens.argmax(-1)]  # the end-of-text token
    return F.normalize(pooled @ state["text_projection"])


def _ready_base(resources: Path, name: str) -> dict[str, torch.Tensor]:
    """A fetched open_clip base model (the source of ViFi-CLIP's token table)."""
    from safetensors.torch import load_file

    folder = resources / "models" / name
    build_tiny_open_clip({"model_cfg": TINY_CFG, "seed": 3}, folder)
    (folder / READY_FILE).write_text("{}")
    return load_file(folder / "open_clip_model.safetensors")


PREPROCESS = {"size": 32, "mean": [0.5] * 3, "std": [0.25] * 3, "interpolation": "bilinear"}


def test_vificlip_checkpoint_loads_into_open_clip(tmp_path):
    resources = tmp_path / "resources"
    base = _ready_base(resources, "tiny-base")
    openai_state = random_openai_state(seed=1)
    folder = resources / "models" / "tiny-vificlip"
    folder.mkdir(parents=True)
    write_vificlip_checkpoint(folder / "vifi.pth", openai_state)

    from zsar.models.convert import load_training_checkpoint

    checkpoint = load_training_checkpoint(folder / "vifi.pth")
    assert checkpoint["config"]["MODEL"]["ARCH"] == "ViT-B/16"  # read as inert data
    state, dropped = video_clip_state_dict(checkpoint, LAYOUTS["vificlip"], base)
    import open_clip

    assert set(state) == set(open_clip.CLIP(**TINY_CFG).state_dict())  # nothing missing or extra
    assert dropped == ["prompt_learner.complete_text_embeddings"]

    entry = {
        "name": "tiny-vificlip",
        "backend": "vificlip",
        "model_cfg": TINY_CFG,
        "base": "tiny-base",
        "local_file": "vifi.pth",
        "preprocess": PREPROCESS,
    }
    backbone = load_backbone(entry, resources)
    pixels = torch.randn(2, 3, 32, 32)
    assert torch.allclose(
        backbone.encode_images(pixels), image_embedding_by_hand(openai_state, pixels), atol=1e-5
    )
    tokens = backbone.encoders.tokenize(TEXTS)
    # The text tower is ViFi-CLIP's; its token table is the base model's.
    by_hand = text_embedding_by_hand(
        {**openai_state, "token_embedding.weight": base["token_embedding.weight"]}, tokens
    )
    assert torch.allclose(backbone.encode_texts(TEXTS), by_hand, atol=1e-5)
    assert backbone.encoders.model.logit_scale.detach().item() == pytest.approx(4.2)
    assert backbone.interpolation == "bilinear" and backbone.mean == (0.5, 0.5, 0.5)


def test_actionclip_checkpoint_loads_into_open_clip(tmp_path):
    resources = tmp_path / "resources"
    openai_state = {k: v.half().float() for k, v in random_openai_state(seed=2).items()}
    folder = resources / "models" / "tiny-actionclip"
    folder.mkdir(parents=True)
    write_actionclip_checkpoint(folder / "action.pt", openai_state)
    entry = {
        "name": "tiny-actionclip",
        "backend": "actionclip",
        "model_cfg": TINY_CFG,
        "local_file": "action.pt",
        "preprocess": PREPROCESS,
    }
    backbone = load_backbone(entry, resources)
    pixels = torch.randn(2, 3, 32, 32)
    assert torch.allclose(
        backbone.encode_images(pixels), image_embedding_by_hand(openai_state, pixels), atol=1e-5
    )
    tokens = backbone.encoders.tokenize(TEXTS)
    assert torch.allclose(
        backbone.encode_texts(TEXTS), text_embedding_by_hand(openai_state, tokens), atol=1e-5
    )


def test_video_checkpoint_layout_errors():
    state = {
        "module.image_encoder.conv1.weight": torch.zeros(1),
        "module.logit_scale": torch.zeros(()),
    }
    with pytest.raises(CheckpointLayoutError, match="unsupported"):
        remap_state_dict(
            {"image_encoder.transformer.resblocks.1.VPT_shallow": 0}, LAYOUTS["vificlip"]
        )
    with pytest.raises(CheckpointLayoutError, match="outside the layout"):
        remap_state_dict({"temporal_head.weight": 0}, LAYOUTS["vificlip"])
    with pytest.raises(CheckpointLayoutError, match="base checkpoint"):
        video_clip_state_dict({"model": state}, LAYOUTS["vificlip"], base_state={})
    with pytest.raises(CheckpointLayoutError, match="model_state_dict"):
        video_clip_state_dict({"model": state}, LAYOUTS["actionclip"])


def test_missing_video_checkpoint_names_its_url_and_rule(tmp_path):
    entry = {
        "name": "vifi",
        "backend": "vificlip",
        "architecture": "ViT-B-16",
        "base": "openai-vit-b-16",
        "local_file": "vifi.pth",
        "download_url": "https://example.org/vifi",
        "preprocess": PREPROCESS,
    }
    with pytest.raises(MissingCheckpointError) as err:
        load_backbone(entry, tmp_path)
    assert "https://example.org/vifi" in str(err.value)
    assert f"snakemake --cores 1 {tmp_path}/models/vifi/{READY_FILE}" in str(err.value)
    # The checkpoint is there but its base model was never fetched.
    (tmp_path / "models" / "vifi").mkdir(parents=True)
    (tmp_path / "models" / "vifi" / "vifi.pth").write_bytes(b"")
    with pytest.raises(MissingCheckpointError, match=f"models/openai-vit-b-16/{READY_FILE}"):
        load_backbone(entry, tmp_path)
