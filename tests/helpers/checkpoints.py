"""Tiny checkpoints in the layouts of the published video CLIPs (ViFi-CLIP, ActionCLIP),
written by the tests so the project's loaders read them through their real code path."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import torch

# A scaled-down ViT-B/16 CLIP: 2 heads of 16 in both towers, OpenAI's vocabulary and context.
TINY_CFG = {
    "embed_dim": 16,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 2, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
HEADS, LAYERS, WIDTH, PATCH, EMBED = 2, 2, 32, 8, 16


def _block_shapes(prefix: str, width: int) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for i in range(LAYERS):
        p = f"{prefix}.resblocks.{i}"
        shapes |= {
            f"{p}.attn.in_proj_weight": (3 * width, width),
            f"{p}.attn.in_proj_bias": (3 * width,),
            f"{p}.attn.out_proj.weight": (width, width),
            f"{p}.attn.out_proj.bias": (width,),
            f"{p}.ln_1.weight": (width,),
            f"{p}.ln_1.bias": (width,),
            f"{p}.mlp.c_fc.weight": (4 * width, width),
            f"{p}.mlp.c_fc.bias": (4 * width,),
            f"{p}.mlp.c_proj.weight": (width, 4 * width),
            f"{p}.mlp.c_proj.bias": (width,),
            f"{p}.ln_2.weight": (width,),
            f"{p}.ln_2.bias": (width,),
        }
    return shapes


def openai_clip_shapes() -> dict[str, tuple[int, ...]]:
    """OpenAI CLIP's state-dict names, with TINY_CFG's (scaled-down) shapes."""
    grid = TINY_CFG["vision_cfg"]["image_size"] // PATCH
    return {
        "visual.class_embedding": (WIDTH,),
        "visual.positional_embedding": (grid * grid + 1, WIDTH),
        "visual.proj": (WIDTH, EMBED),
        "visual.conv1.weight": (WIDTH, 3, PATCH, PATCH),
        "visual.ln_pre.weight": (WIDTH,),
        "visual.ln_pre.bias": (WIDTH,),
        **_block_shapes("visual.transformer", WIDTH),
        "visual.ln_post.weight": (WIDTH,),
        "visual.ln_post.bias": (WIDTH,),
        "positional_embedding": (77, WIDTH),
        "text_projection": (WIDTH, EMBED),
        "logit_scale": (),
        "token_embedding.weight": (49408, WIDTH),
        **_block_shapes("transformer", WIDTH),
        "ln_final.weight": (WIDTH,),
        "ln_final.bias": (WIDTH,),
    }


def random_openai_state(seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in openai_clip_shapes().items():
        value = 0.1 * torch.randn(shape, generator=generator)
        if ".ln_" in key or key.startswith("ln_"):
            value = value + (1.0 if key.endswith("weight") else 0.0)
        state[key] = value
    state["logit_scale"] = torch.tensor(4.2)
    return state


def fake_yacs_config():
    """A yacs CfgNode as ViFi-CLIP pickles it (yacs is not installed; a stand-in module)."""
    module, submodule = types.ModuleType("yacs"), types.ModuleType("yacs.config")

    class CfgNode(dict):
        def __init__(self, init):
            super().__init__({k: CfgNode(v) if isinstance(v, dict) else v for k, v in init.items()})
            self.__dict__.update(
                __immutable__=True,
                __deprecated_keys__=set(),
                __renamed_keys__={},
                __new_allowed__=False,
            )

    CfgNode.__module__, CfgNode.__qualname__ = "yacs.config", "CfgNode"
    submodule.CfgNode, module.config = CfgNode, submodule
    return module, submodule, CfgNode


def write_vificlip_checkpoint(path: Path, openai_state: dict, extra: dict | None = None) -> None:
    """ViFi-CLIP's layout (trainers/vificlip.py, utils/tools.py): DDP-wrapped, no token table."""
    model = {}
    for key, value in openai_state.items():
        if key.startswith("visual."):
            model["module.image_encoder." + key[len("visual.") :]] = value
        elif key == "logit_scale":
            model["module.logit_scale"] = value
        elif key != "token_embedding.weight":
            model["module.text_encoder." + key] = value
    # The class prompts' token embeddings (K400's 400 classes in the real file).
    model["module.prompt_learner.complete_text_embeddings"] = torch.randn(5, 77, WIDTH)
    model.update(extra or {})
    module, submodule, cfg_node = fake_yacs_config()
    sys.modules.update({"yacs": module, "yacs.config": submodule})
    try:
        checkpoint = {
            "model": model,
            "optimizer": {
                "state": {0: {"exp_avg": torch.zeros(3)}},
                "param_groups": [{"lr": 1e-5}],
            },
            "lr_scheduler": {"t_initial": 10},
            "max_accuracy": 0.76,
            "epoch": 9,
            "config": cfg_node({"MODEL": {"ARCH": "ViT-B/16"}, "DATA": {"NUM_FRAMES": 32}}),
        }
        torch.save(checkpoint, path)
    finally:
        del sys.modules["yacs"], sys.modules["yacs.config"]


def write_actionclip_checkpoint(path: Path, openai_state: dict) -> None:
    """ActionCLIP's layout (utils/saving.py): plain OpenAI names, fp16, and a fusion model."""
    fusion = {
        "module.frame_position_embeddings.weight": torch.randn(77, EMBED).half(),
        "module.transformer.resblocks.0.attn.in_proj_weight": torch.randn(3 * EMBED, EMBED).half(),
    }
    torch.save(
        {
            "epoch": 49,
            "model_state_dict": {k: v.half() for k, v in openai_state.items()},
            "fusion_model_state_dict": fusion,
            "optimizer_state_dict": {"state": {}, "param_groups": [{"lr": 5e-6}]},
        },
        path,
    )
