"""Checkpoint conversions into open_clip's CLIP layout: key mappings as data.

open_clip's `CLIP` keeps OpenAI's parameter names (`visual.conv1.weight`,
`transformer.resblocks.N.attn.in_proj_weight`, `text_projection`, ...). The video-adapted
checkpoints were trained from OpenAI's CLIP code, so they hold the same tensors under a
wrapper's prefixes; transformers' `CLIPModel` holds the same arithmetic under its own names,
with q/k/v split and the projections stored as `nn.Linear` weights (transposed).

Everything here is pure: dicts of tensors in, dicts of tensors out. Layouts read from the
public training code of each project:

- ViFi-CLIP (`trainers/vificlip.py`, `utils/tools.py`): `torch.save({"model": ...})` of a
  DDP-wrapped `ViFiCLIP`, so keys are `module.image_encoder.*` (the visual tower),
  `module.text_encoder.{transformer,positional_embedding,ln_final,text_projection}`,
  `module.logit_scale` and class-specific prompt buffers `module.prompt_learner.*`. The token
  embedding is not in it: ViFi-CLIP embeds class prompts once with the frozen OpenAI token
  table, so it comes from the base checkpoint (OpenAI ViT-B/16).
- ActionCLIP (`utils/saving.py`): `{"model_state_dict": clip.state_dict(),
  "fusion_model_state_dict": ...}`: plain OpenAI names, fp16. The fusion model (a temporal
  transformer over frame features) is not used: zsar averages frame embeddings.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class CheckpointLayoutError(ValueError):
    """A checkpoint whose keys do not fit the layout it was declared to have."""


@dataclass(frozen=True)
class CheckpointLayout:
    """Where a project's checkpoint keeps the CLIP weights, and under which names."""

    state_key: str | None  # the entry of the saved dict holding the state dict (None: top level)
    rename: tuple[tuple[str, str], ...]  # (prefix in the checkpoint, prefix in open_clip)
    drop: tuple[str, ...] = ()  # prefixes of tensors that zsar does not use
    from_base: tuple[str, ...] = ()  # open_clip keys the checkpoint lacks; taken from the base
    unsupported: tuple[str, ...] = ()  # substrings of keys zsar cannot run (e.g. prompt tokens)


LAYOUTS: dict[str, CheckpointLayout] = {
    "vificlip": CheckpointLayout(
        state_key="model",
        rename=(
            ("image_encoder.", "visual."),
            ("text_encoder.", ""),
            ("logit_scale", "logit_scale"),
        ),
        drop=("prompt_learner.",),
        from_base=("token_embedding.weight",),
        # Prompt-tuned ViFi-CLIP variants add learnable tokens inside the towers.
        unsupported=("VPT",),
    ),
    "actionclip": CheckpointLayout(
        state_key="model_state_dict",
        rename=(("", ""),),
        # `joint` adds a time embedding and `tsm` wraps blocks in `.net`: both change the
        # per-frame computation, which zsar's frame averaging cannot reproduce.
        unsupported=("visual.time_embedding", ".net."),
    ),
}


def strip_wrapper_prefix(state_dict: Mapping[str, Any], prefix: str = "module.") -> dict[str, Any]:
    """Drop a (Distributed)DataParallel prefix when every key carries it."""
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix) :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def checkpoint_state_dict(checkpoint: Mapping[str, Any], layout: CheckpointLayout) -> dict:
    """The CLIP state dict inside a saved training checkpoint."""
    if layout.state_key is None:
        return strip_wrapper_prefix(checkpoint)
    if layout.state_key not in checkpoint:
        raise CheckpointLayoutError(
            f"expected the weights under '{layout.state_key}'; the file holds {sorted(checkpoint)}"
        )
    return strip_wrapper_prefix(checkpoint[layout.state_key])


def remap_state_dict(
    state_dict: Mapping[str, Any], layout: CheckpointLayout
) -> tuple[dict[str, Any], list[str]]:
    """(open_clip state dict, dropped keys). Unknown or unsupported keys are an error."""
    bad = sorted(k for k in state_dict if any(marker in k for marker in layout.unsupported))
    if bad:
        raise CheckpointLayoutError(f"keys of an unsupported variant: {bad[:5]}")
    mapped: dict[str, Any] = {}
    dropped: list[str] = []
    unknown: list[str] = []
    for key, value in state_dict.items():
        if key.startswith(layout.drop):
            dropped.append(key)
            continue
        target = _renamed(key, layout.rename)
        if target is None:
            unknown.append(key)
        else:
            mapped[target] = value
    if unknown:
        raise CheckpointLayoutError(f"keys outside the layout: {sorted(unknown)[:5]}")
    return mapped, sorted(dropped)


def _renamed(key: str, rules: tuple[tuple[str, str], ...]) -> str | None:
    for source, target in rules:
        if key.startswith(source):
            return target + key[len(source) :]
    return None


# --- transformers CLIPModel -> open_clip CLIP ---------------------------------------------

# Per-layer and per-tower renames, applied in order to keys that start with a tower prefix.
# Why regexes: the same block layout repeats N times under two towers.
_HF_TOWERS = (("text_model.", ""), ("vision_model.", "visual."))
_HF_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^embeddings\.token_embedding\.weight$", "token_embedding.weight"),
    (r"^embeddings\.position_embedding\.weight$", "positional_embedding"),
    (r"^embeddings\.class_embedding$", "class_embedding"),
    (r"^embeddings\.patch_embedding\.weight$", "conv1.weight"),
    (r"^pre_layrnorm\.", "ln_pre."),  # sic: transformers' own spelling
    (r"^post_layernorm\.", "ln_post."),
    (r"^final_layer_norm\.", "ln_final."),
    (r"^encoder\.layers\.(\d+)\.self_attn\.out_proj\.", r"transformer.resblocks.\1.attn.out_proj."),
    (r"^encoder\.layers\.(\d+)\.layer_norm1\.", r"transformer.resblocks.\1.ln_1."),
    (r"^encoder\.layers\.(\d+)\.layer_norm2\.", r"transformer.resblocks.\1.ln_2."),
    (r"^encoder\.layers\.(\d+)\.mlp\.fc1\.", r"transformer.resblocks.\1.mlp.c_fc."),
    (r"^encoder\.layers\.(\d+)\.mlp\.fc2\.", r"transformer.resblocks.\1.mlp.c_proj."),
)
_HF_QKV = re.compile(r"^encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)$")
# nn.Linear stores [out, in]; open_clip keeps the projections as [in, out] matrices.
_HF_PROJECTIONS = {
    "text_projection.weight": "text_projection",
    "visual_projection.weight": "visual.proj",
}
_HF_IGNORED = re.compile(r"(^|\.)position_ids$")


def hf_clip_state_dict(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """A transformers `CLIPModel` state dict under open_clip `CLIP` names."""
    # lazy: torch loads only where a model runs
    import torch

    out: dict[str, Any] = {}
    qkv: dict[tuple[str, str, str], dict[str, Any]] = {}
    unknown = []
    for key, value in state_dict.items():
        if _HF_IGNORED.search(key):
            continue
        if key in _HF_PROJECTIONS:
            out[_HF_PROJECTIONS[key]] = value.t().contiguous()
            continue
        if key == "logit_scale":
            out[key] = value
            continue
        tower = next(((src, dst) for src, dst in _HF_TOWERS if key.startswith(src)), None)
        if tower is None:
            unknown.append(key)
            continue
        rest = key[len(tower[0]) :]
        match = _HF_QKV.match(rest)
        if match:
            layer, which, kind = match.groups()
            qkv.setdefault((tower[1], layer, kind), {})[which] = value
            continue
        renamed = _hf_rename(rest)
        if renamed is None:
            unknown.append(key)
        else:
            out[tower[1] + renamed] = value
    if unknown:
        raise CheckpointLayoutError(f"transformers CLIP keys with no open_clip name: {unknown[:5]}")
    for (prefix, layer, kind), parts in qkv.items():
        # nn.MultiheadAttention packs q, k and v into one in_proj, in that order.
        out[f"{prefix}transformer.resblocks.{layer}.attn.in_proj_{kind}"] = torch.cat(
            [parts["q"], parts["k"], parts["v"]]
        )
    return out


def _hf_rename(rest: str) -> str | None:
    for pattern, replacement in _HF_RENAMES:
        if re.match(pattern, rest):
            return re.sub(pattern, replacement, rest)
    return None


def hf_clip_model_cfg(config: Mapping[str, Any]) -> dict[str, Any]:
    """open_clip's model config for a transformers `CLIPConfig` (as its config.json dict)."""
    text, vision = config["text_config"], config["vision_config"]
    acts = {text.get("hidden_act", "quick_gelu"), vision.get("hidden_act", "quick_gelu")}
    if len(acts) != 1 or not acts <= {"quick_gelu", "gelu"}:
        raise CheckpointLayoutError(f"unsupported activations for open_clip: {sorted(acts)}")
    eos = text.get("eos_token_id", 2)
    return {
        "embed_dim": config.get("projection_dim", 512),
        "quick_gelu": acts == {"quick_gelu"},
        "vision_cfg": {
            "image_size": vision["image_size"],
            "patch_size": vision["patch_size"],
            "width": vision["hidden_size"],
            "layers": vision["num_hidden_layers"],
            "head_width": vision["hidden_size"] // vision["num_attention_heads"],
            "mlp_ratio": vision["intermediate_size"] / vision["hidden_size"],
            "norm_kwargs": {"eps": vision.get("layer_norm_eps", 1e-5)},
        },
        "text_cfg": {
            "context_length": text["max_position_embeddings"],
            "vocab_size": text["vocab_size"],
            "width": text["hidden_size"],
            "heads": text["num_attention_heads"],
            "layers": text["num_hidden_layers"],
            "mlp_ratio": text["intermediate_size"] / text["hidden_size"],
            "norm_kwargs": {"eps": text.get("layer_norm_eps", 1e-5)},
            # transformers pools at the first EOS token, except for old configs with
            # eos_token_id == 2, which take the arg-max token id as OpenAI's code does.
            **({"pool_type": "argmax"} if eos == 2 else {"pool_type": "eos", "eos_id": eos}),
        },
    }


def video_clip_state_dict(
    checkpoint: Mapping[str, Any],
    layout: CheckpointLayout,
    base_state: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """(open_clip state dict in float32, dropped keys) of a video-adapted CLIP checkpoint.

    Tensors the checkpoint does not carry (`layout.from_base`) are taken from `base_state`,
    the open_clip state dict of the CLIP it was fine-tuned from.
    """
    state, dropped = remap_state_dict(checkpoint_state_dict(checkpoint, layout), layout)
    for key in layout.from_base:
        if base_state is None or key not in base_state:
            raise CheckpointLayoutError(f"'{key}' must come from the base checkpoint; it lacks it")
        state[key] = base_state[key]
    # Released checkpoints were saved in fp16 on the GPU; zsar casts at load time instead.
    return {k: v.float() for k, v in state.items()}, dropped


class _InertConfigNode:
    """Stand-in for `yacs.config.CfgNode` inside a checkpoint: becomes an inert Counter.

    ViFi-CLIP pickles its yacs run config next to the weights. torch's weights_only
    unpickler refuses unknown classes, and may fill only plain dicts and Counters, so the
    node is rebuilt as a Counter (a dict): the file's config stays readable and no code
    from the file runs.
    """

    def __new__(cls, *args):
        return Counter()


CHECKPOINT_STAND_INS = [(_InertConfigNode, "yacs.config.CfgNode")]


def load_training_checkpoint(path) -> dict[str, Any]:
    """A training checkpoint (weights plus optimizer and run config), read with weights_only."""
    # lazy: torch loads only where a model runs
    import torch

    with torch.serialization.safe_globals(CHECKPOINT_STAND_INS):
        return torch.load(path, map_location="cpu", weights_only=True)
