"""Tiny random models for the demo and the tests, built from a registry entry's `build:` spec.

Each is a real family's classes at toy sizes, saved in the layout of a real checkpoint, so
it loads through exactly the loader and the code path a downloaded model takes (nothing in
the stage modules knows it is tiny). The fetch_model rule builds them (zsar.models.fetch.BUILDERS):

- `build_tiny_open_clip`: an open_clip CLIP folder (config + safetensors);
- `build_tiny_vlm`: a captioner (Qwen2.5-VL or LLaVA-NeXT-Video classes), with processor,
  tokenizer and chat template; `make_tiny_vlm` gives one in memory (and, on a GPU, the
  full-size random models of the throughput harnesses);
- `build_tiny_llm`: a Qwen2-shaped causal LM with a chat template.

Their outputs are noise (random weights), which is what the demo's fallback and failure
paths need; the tokenizers are trained on the fly on a few sentences, so prompts tokenize to
words rather than bytes. Everything is seeded: a build is byte-for-byte reproducible.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from zsar.data.io import atomic_path, write_json
from zsar.models.backbones import OPEN_CLIP_CONFIG, OPEN_CLIP_WEIGHTS

CHAT_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def train_tiny_tokenizer(
    corpus: Sequence[str],
    vocab_size: int,
    *,
    extra_special: Sequence[str] = (),
    add_prefix_space: bool = True,
    chat_template: str | None = None,
):
    """A byte-level BPE (every string stays encodable) trained on `corpus`, with ChatML's
    special tokens, wrapped as a transformers fast tokenizer."""
    # lazy: torch loads only where a model runs
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[*CHAT_TOKENS, *extra_special],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(list(corpus), trainer=trainer)
    extra = {"chat_template": chat_template} if chat_template else {}
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", **extra
    )


# --- image-text backbones (open_clip) -------------------------------------------------------


def build_tiny_open_clip(spec: Mapping[str, Any], out_dir: str | Path) -> None:
    """Write a random-init open_clip folder (config + safetensors) from `spec`.

    spec: {"model_cfg": open_clip model config, "preprocess_cfg": {...}, "seed": int}. The
    folder has the layout of a real hub snapshot, so it loads through the same `local-dir:`
    path; with no `hf_tokenizer_name`, open_clip uses its bundled BPE tokenizer.
    """
    # lazy: torch loads only where a model runs
    import open_clip
    import torch
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = copy.deepcopy(dict(spec["model_cfg"]))
    model_class = open_clip.CustomTextCLIP if cfg.pop("custom_text", False) else open_clip.CLIP
    torch.manual_seed(int(spec.get("seed", 0)))
    model = model_class(**cfg)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(out / OPEN_CLIP_WEIGHTS[0]) as tmp:
        save_file(state, str(tmp))
    config = {
        "model_cfg": dict(spec["model_cfg"]),
        "preprocess_cfg": dict(spec.get("preprocess_cfg", {})),
    }
    write_json(config, out / OPEN_CLIP_CONFIG)


# --- captioners ------------------------------------------------------------------------------

# Words the tiny tokenizer learns whole, so a random model's output reads as words, not bytes.
_TINY_WORDS = (
    "a an the one two person man woman child people player group someone hand hands arm leg "
    "head face body ball bat racket bike horse car board rope bar stick guitar drum piano knife "
    "brush cup bowl food water pool field court room kitchen street road park gym stage floor "
    "wall table chair door tree grass snow sand sky is are plays playing rides riding throws "
    "throwing kicks kicking jumps jumping runs running walks walking swims swimming climbs "
    "climbing lifts lifting cuts cutting holds holding moves moving spins spinning dances "
    "dancing falls sits stands pushes pulls hits catches shoots rolls slides grows shrinks "
    "blinks bounces square circle shape red green blue white black small large fast slow left "
    "right up down across around in on at with into over under near while and then of to "
    "from frame video frames sampled order describe sentences who what which objects where"
).split()

_TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ IMAGE }}"
    "{% elif part['type'] == 'video' %}{{ VIDEO }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
def _chat_template(image: str, video: str) -> str:
    return _TINY_CHAT_TEMPLATE.replace("{{ IMAGE }}", image).replace("{{ VIDEO }}", video)


def _vlm_tokenizer(extra_special: Sequence[str], vocab_size: int):
    """Merges that are mostly whole words, so a random model's output reads as words."""
    corpus = [" ".join(_TINY_WORDS[i:] + _TINY_WORDS[:i]) for i in range(0, len(_TINY_WORDS), 7)]
    return train_tiny_tokenizer(corpus, vocab_size, extra_special=extra_special)


def _mrope_section(head_dim: int) -> list[int]:
    """Qwen's split of the rotary half-dimension over (time, height, width): 1/4, 3/8, 3/8."""
    half = head_dim // 2
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


def _tiny_qwen2_5_vl(spec: Mapping[str, Any]):
    # lazy: torch loads only where a model runs
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    image, video = "<|image_pad|>", "<|video_pad|>"
    vstart, vend = "<|vision_start|>", "<|vision_end|>"
    tokenizer = _vlm_tokenizer([vstart, vend, image, video], int(spec.get("vocab", 1024)))
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in (image, video, vstart, vend)}
    # Frames are shrunk to at most `max_pixels`: a few visual tokens each keeps it CPU-fast.
    pixels = {"min_pixels": 28 * 28, "max_pixels": int(spec.get("max_pixels", 56 * 56))}
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**pixels),
        # The per-frame pixel cap of Qwen's reference preprocessing (and no warning about it).
        video_processor=Qwen2VLVideoProcessor(**pixels, cap_pixels_per_frame=True),
        tokenizer=tokenizer,
        chat_template=_chat_template(f"{vstart}{image}{vend}", f"{vstart}{video}{vend}"),
    )
    text = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, **(spec.get("text_config") or {})}
    head_dim = text["hidden_size"] // text["num_attention_heads"]
    text.setdefault("vocab_size", len(tokenizer))
    text.setdefault("max_position_embeddings", 8192)
    text.setdefault("rope_parameters", {"rope_type": "default", "rope_theta": 10000.0,
                                        "mrope_section": _mrope_section(head_dim)})
    vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
              "window_size": 56, **(spec.get("vision_config") or {})}
    vision.setdefault("fullatt_block_indexes", [vision["depth"] - 1])
    vision["out_hidden_size"] = text["hidden_size"]
    config = Qwen2_5_VLConfig(
        text_config={**text, "bos_token_id": None, "eos_token_id": tokenizer.eos_token_id,
                     "pad_token_id": tokenizer.pad_token_id},
        vision_config=vision,
        image_token_id=ids[image],
        video_token_id=ids[video],
        vision_start_token_id=ids[vstart],
        vision_end_token_id=ids[vend],
    )
    return processor, Qwen2_5_VLForConditionalGeneration, config


def _tiny_llava_next_video(spec: Mapping[str, Any]):
    # lazy: torch loads only where a model runs
    from transformers import (
        LlavaNextImageProcessor,
        LlavaNextVideoConfig,
        LlavaNextVideoForConditionalGeneration,
        LlavaNextVideoProcessor,
        LlavaNextVideoVideoProcessor,
    )

    image, video = "<image>", "<video>"
    tokenizer = _vlm_tokenizer([image, video], int(spec.get("vocab", 1024)))
    size = int(spec.get("image_size", 56))
    patch = 14
    processor = LlavaNextVideoProcessor(
        video_processor=LlavaNextVideoVideoProcessor(
            size={"shortest_edge": size}, crop_size={"height": size, "width": size}
        ),
        image_processor=LlavaNextImageProcessor(
            size={"shortest_edge": size}, crop_size={"height": size, "width": size},
            image_grid_pinpoints=[[size, size]],
        ),
        tokenizer=tokenizer,
        chat_template=_chat_template(image, video),
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS token
    )
    text = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "max_position_embeddings": 8192, **(spec.get("text_config") or {})}
    text.setdefault("vocab_size", len(tokenizer))
    vision = {"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64,
              "num_hidden_layers": 2, "num_attention_heads": 2, "projection_dim": 32,
              **(spec.get("vision_config") or {}), "image_size": size, "patch_size": patch}
    patches = (size // patch) ** 2
    config = LlavaNextVideoConfig(
        text_config={**text, "bos_token_id": None, "eos_token_id": tokenizer.eos_token_id,
                     "pad_token_id": tokenizer.pad_token_id},
        vision_config=vision,
        image_token_index=tokenizer.convert_tokens_to_ids(image),
        video_token_index=tokenizer.convert_tokens_to_ids(video),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        image_grid_pinpoints=[[size, size]],
        image_seq_length=patches,
        video_seq_length=patches // 4 * 8,
    )
    return processor, LlavaNextVideoForConditionalGeneration, config


# arch -> function(spec) -> (processor, model class, config). Each is a real family's classes
# at toy sizes, so the tiny models exercise exactly the processor and generate code of real ones.
TINY_VLM_ARCHS: dict[str, Callable[[Mapping[str, Any]], tuple[Any, Any, Any]]] = {
    "qwen2_5_vl": _tiny_qwen2_5_vl,
    "llava_next_video": _tiny_llava_next_video,
}


def make_tiny_vlm(spec: Mapping[str, Any], device: str = "cpu", dtype=None):
    """(processor, model) of a random vision-language model of family spec["arch"], in memory."""
    # lazy: torch loads only where a model runs
    import torch
    from transformers import GenerationConfig

    arch = spec.get("arch", "qwen2_5_vl")
    if arch not in TINY_VLM_ARCHS:
        raise ValueError(f"unknown tiny VLM arch '{arch}'; known: {', '.join(TINY_VLM_ARCHS)}")
    processor, model_class, config = TINY_VLM_ARCHS[arch](spec)
    torch.manual_seed(int(spec.get("seed", 0)))
    # Built directly on the device in the target dtype: a 7B-shaped benchmark model never
    # exists in fp32 or on the CPU.
    with torch.device(device):
        model = model_class._from_config(config, dtype=dtype or torch.float32)
    model.eval()
    tokenizer = processor.tokenizer
    # spec["generation_config"]: what a checkpoint's generation_config.json adds (e.g. Qwen's
    # repetition_penalty), so that the captioners' handling of it can be tested.
    settings = {"eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id,
                "do_sample": False, **dict(spec.get("generation_config") or {})}
    model.generation_config = GenerationConfig(**settings)
    return processor, model


def build_tiny_vlm(spec: Mapping[str, Any], out_dir: str | Path) -> None:
    """Save a tiny random captioner (model, processor, tokenizer, chat template) to out_dir.

    The folder loads through `load_vlm` exactly as a downloaded checkpoint does. Its captions
    are noise, but every line of the real code path runs.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    processor, model = make_tiny_vlm(spec)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)


# --- LLMs ------------------------------------------------------------------------------------

# Text the tiny tokenizer is trained on: English about actions and the JSON it is asked for,
# so that prompts tokenize into a few hundred tokens rather than one per byte.
_TINY_CORPUS = [
    "You describe human actions for a video recognition system that matches video frames.",
    "Describe only what a camera would see: objects, body parts, poses, motion and the scene.",
    "Answer with one JSON object and nothing else, no prose, no markdown.",
    "Action class: return a JSON object with exactly these keys: attributes, descriptions, "
    "hierarchy. Short visual cues, sentences, category names from general to specific.",
    'A player bounces an orange basketball repeatedly against the court floor with one hand.',
    '{"attributes": ["hand", "ball"], "descriptions": ["A person moves."], '
    '"hierarchy": ["sports", "ball sports", "basketball"]}',
    "Your previous answer was rejected. Reply with the corrected JSON object only.",
]
_CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_llm(spec: Mapping[str, Any], out_dir: str | Path) -> None:
    """Save a tiny randomly initialised Qwen2-shaped causal LM and its tokenizer to out_dir.

    It loads through the same AutoTokenizer/AutoModelForCausalLM path as a real checkpoint.
    Its answers are noise, which exercises the repair and fallback path end to end.
    """
    # lazy: torch loads only where a model runs
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tiny_tokenizer(
        _TINY_CORPUS * 4, int(spec.get("vocab_size", 512)), add_prefix_space=False,
        chat_template=_CHATML_TEMPLATE,
    )
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=int(spec.get("hidden_size", 32)),
        intermediate_size=int(spec.get("intermediate_size", 64)),
        num_hidden_layers=int(spec.get("layers", 2)),
        num_attention_heads=int(spec.get("heads", 2)),
        num_key_value_heads=1,
        max_position_embeddings=int(spec.get("max_positions", 8192)),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    torch.manual_seed(int(spec.get("seed", 0)))
    model = Qwen2ForCausalLM(config).eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
