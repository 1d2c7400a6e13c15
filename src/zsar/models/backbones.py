"""Image-text backbones behind one interface, loaded offline from `{resources}/models/<name>/`.

A registry entry (config/models.yaml, section `backbones`) names a `backend` from BACKENDS
and where its weights come from. The fetch_model rule puts them in the model's folder
beforehand (zsar.models.fetch), so loading never reaches the network; a folder that is not ready
is an error that says which rule, or which URL, provides it.

- `open_clip`: an open_clip folder (open_clip_config.json + weights), loaded with the
  `local-dir:` schema. Fetching writes one for an architecture + pretrained tag or an
  `hf-hub:` repo; `build:` entries are tiny random models written by
  `zsar.models.tiny.build_tiny_open_clip` and loaded through exactly the same path.
  `source: local-dir:PATH` uses a folder in place.
- `hf_clip`: a transformers `CLIPModel` or `SiglipModel` folder (`hf_repo:` fetched, or
  `path:`), with its own tokenizer and image processor; `runtime: open_clip` converts a
  CLIP checkpoint into open_clip instead (zsar.models.convert).
- `vificlip`, `actionclip`: a checkpoint file the user downloaded from the authors,
  re-keyed into the matching open_clip architecture (zsar.models.convert.LAYOUTS).

Every backbone preprocesses with its checkpoint's own settings (mean, std, size,
interpolation, resize mode), runs fp16 weights on CUDA and fp32 on the CPU, and returns
L2-normalised float32 embeddings on the CPU.
"""

from __future__ import annotations

import copy
import json
import logging
import shlex
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from zsar.models.convert import (
    LAYOUTS,
    CheckpointLayoutError,
    hf_clip_model_cfg,
    hf_clip_state_dict,
    load_training_checkpoint,
    video_clip_state_dict,
)
from zsar.models.preprocess import DEFAULT_PREPROCESS, canonical_preprocess
from zsar.models.registry import READY_FILE, Backend, model_dir

logger = logging.getLogger(__name__)

OPEN_CLIP_CONFIG = "open_clip_config.json"
# Weight files of an open_clip folder, in the order open_clip itself prefers them.
OPEN_CLIP_WEIGHTS = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
)
# PIL resampling codes found in transformers' preprocessor_config.json.
PIL_RESAMPLING = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic"}


class MissingCheckpointError(FileNotFoundError):
    """A backbone whose weights are not in place; the message says how to get them.

    `entry` and `folder` (when known) let a command that runs outside the workflow folder,
    such as `zsar predict`, say it again with a fetch command that runs from anywhere
    (`missing_checkpoint_message` with its workdir)."""

    def __init__(self, message: str, entry: Mapping[str, Any] | None = None,
                 folder: Path | None = None) -> None:
        super().__init__(message)
        self.entry = entry
        self.folder = folder


# --- where the weights are ------------------------------------------------------------------


def fetch_command(folder: Path, workdir: Path | None = None,
                  config: Mapping[str, str] | None = None) -> str:
    """The command that runs fetch_model for a model folder, to be run as printed: in the
    workflow folder (where a workflow job runs) or, given `workdir`, from anywhere. The
    target must be spelt as the rule's output is, so a folder outside the default
    resources/ goes with `--config resources=`, its parent's parent."""
    ready = folder / READY_FILE
    if workdir is None:
        return f"snakemake --cores 1 {shlex.quote(str(ready))}"
    values = {"resources": str(folder.parent.parent), **(config or {})}
    pairs = " ".join(f"{key}={shlex.quote(value)}" for key, value in values.items())
    return (f"cd {shlex.quote(str(workdir))} && snakemake --cores 1 --config {pairs} -- "
            f"{shlex.quote(str(ready))}")


def missing_checkpoint_message(entry: Mapping[str, Any], folder: Path,
                               command: str | None = None) -> str:
    name = entry["name"]
    text = f"model '{name}': no usable checkpoint in {folder}/."
    if "local_file" in entry:
        text += (
            f" Download it by hand from {entry.get('download_url', 'the authors page')} and save"
            f" it as {folder / entry['local_file']}; then"
        )
    else:
        text += " Fetch it:"
    return (
        f"{text} run `{command or fetch_command(folder)}` (rule fetch_model; it downloads, so"
        " run it where there is internet, e.g. a login node)."
    )


def fetched_folder(entry: Mapping[str, Any], resources: str | Path) -> Path:
    """The model's folder under resources/, once fetch_model has finished it."""
    folder = model_dir(resources, entry["name"])
    if not (folder / READY_FILE).is_file():
        raise MissingCheckpointError(missing_checkpoint_message(entry, folder), entry, folder)
    return folder


def open_clip_folder(entry: Mapping[str, Any], resources: str | Path) -> Path:
    source = str(entry.get("source", ""))
    if source.startswith("local-dir:"):
        folder = Path(source[len("local-dir:") :])
        if not (folder / OPEN_CLIP_CONFIG).is_file():
            raise MissingCheckpointError(
                f"model '{entry['name']}': {folder} has no {OPEN_CLIP_CONFIG} (source: {source})"
            )
        return folder
    return fetched_folder(entry, resources)


def open_clip_weights_file(folder: Path) -> Path:
    for name in OPEN_CLIP_WEIGHTS:
        if (folder / name).is_file():
            return folder / name
    raise MissingCheckpointError(f"{folder} has none of the weight files {OPEN_CLIP_WEIGHTS}")


# --- preprocessing ---------------------------------------------------------------------------


def build_image_transform(pp: Mapping[str, Any]) -> Callable:
    """The eval transform of a preprocessing config: one RGB PIL image -> [3, H, W] tensor.

    crop_pct < 1 is the video-model convention (resize the short side to size/crop_pct,
    e.g. 256, then centre-crop size), which open_clip's own transform does not offer.
    """
    pp = canonical_preprocess(pp)
    if pp["crop_pct"] == 1.0:
        # lazy: torch loads only where a model runs
        from open_clip.transform import image_transform

        return image_transform(
            pp["size"],
            is_train=False,
            mean=pp["mean"],
            std=pp["std"],
            resize_mode=pp["resize_mode"],
            interpolation=pp["interpolation"],
        )
    if pp["resize_mode"] != "shortest":
        raise ValueError("crop_pct < 1 needs resize_mode 'shortest'")
    # lazy: torch loads only where a model runs
    from torchvision import transforms as T

    mode = {"bicubic": T.InterpolationMode.BICUBIC, "bilinear": T.InterpolationMode.BILINEAR}
    return T.Compose(
        [
            T.Resize(round(pp["size"] / pp["crop_pct"]), interpolation=mode[pp["interpolation"]]),
            T.CenterCrop(pp["size"]),
            T.ToTensor(),
            T.Normalize(pp["mean"], pp["std"]),
        ]
    )


def hf_preprocess_cfg(processor_config: Mapping[str, Any]) -> dict[str, Any]:
    """The preprocessing a transformers image processor config describes, in zsar's terms."""
    size = processor_config.get("size") or {}
    crop = processor_config.get("crop_size") or {}
    # Older configs (e.g. openai/clip-vit-base-patch16) give plain ints.
    if isinstance(size, int):
        size = {"shortest_edge": size}
    if isinstance(crop, int):
        crop = {"height": crop, "width": crop}
    centre_crop = bool(processor_config.get("do_center_crop", False)) and bool(crop)
    if "shortest_edge" in size:
        resize_to = size["shortest_edge"]
        out_size = crop.get("height", resize_to) if centre_crop else resize_to
        mode = "shortest"
    else:
        out_size = size.get("height")
        resize_to, mode = out_size, "squash"
    resample = processor_config.get("resample", 3)
    return canonical_preprocess(
        {
            "size": out_size,
            "mean": processor_config.get("image_mean", DEFAULT_PREPROCESS["mean"]),
            "std": processor_config.get("image_std", DEFAULT_PREPROCESS["std"]),
            "interpolation": PIL_RESAMPLING.get(int(resample), str(resample)),
            "resize_mode": mode,
            "crop_pct": out_size / resize_to if mode == "shortest" else 1.0,
        }
    )


class HFImageTransform:
    """A transformers image processor applied to one image (picklable for DataLoader workers)."""

    def __init__(self, processor):
        self.processor = processor

    def __call__(self, image):
        return self.processor(images=image, return_tensors="pt")["pixel_values"][0]


# --- the Backbone interface ------------------------------------------------------------------


class OpenClipEncoders:
    def __init__(self, model, tokenizer, device: str):
        self.model, self.tokenizer, self.device = model, tokenizer, device

    def encode_image(self, pixels):
        return self.model.encode_image(pixels)

    def tokenize(self, texts: list[str]):
        return self.tokenizer(texts).to(self.device)

    def encode_text(self, tokens):
        return self.model.encode_text(tokens)


class HFEncoders:
    def __init__(self, model, tokenizer, max_length: int, device: str):
        self.model, self.tokenizer, self.device = model, tokenizer, device
        self.max_length = max_length

    def encode_image(self, pixels):
        return _pooled(self.model.get_image_features(pixel_values=pixels))

    def tokenize(self, texts: list[str]):
        # SigLIP was trained on texts padded to the full length, so pad every model that way.
        batch = self.tokenizer(
            texts,
            padding="max_length",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        wanted = ("input_ids", "attention_mask")
        return {k: v.to(self.device) for k, v in batch.items() if k in wanted}

    def encode_text(self, tokens):
        return _pooled(self.model.get_text_features(**tokens))


def _pooled(output):
    """transformers 5 returns a model output whose pooler_output holds the projected features."""
    return getattr(output, "pooler_output", output)


class Backbone:
    """An image-text model with its own preprocessing and tokenizer.

    `transform` maps one PIL image to a [3, H, W] tensor and is picklable, so data loader
    workers can run it; `encode_images` and `encode_texts` return L2-normalised float32
    tensors on the CPU, `image_features` the image tower's raw output (float32, on the CPU),
    which the embedding stage pools by the checkpoint's own rule (zsar.stages.embed.POOLINGS).
    """

    def __init__(
        self,
        name: str,
        encoders,
        preprocess_cfg: Mapping[str, Any],
        *,
        device: str,
        dtype,
        transform: Callable | None = None,
    ):
        pp = canonical_preprocess(preprocess_cfg)
        self.name = name
        self.preprocess_cfg = pp
        self.image_size: int = pp["size"]
        self.mean: tuple[float, ...] = pp["mean"]
        self.std: tuple[float, ...] = pp["std"]
        self.interpolation: str = pp["interpolation"]
        self.resize_mode: str = pp["resize_mode"]
        self.device = device
        self.dtype = dtype
        self.transform = transform or build_image_transform(pp)
        self.encoders = encoders
        self._embed_dim: int | None = None

    def preprocess(self, images: Sequence) -> Any:
        # lazy: torch loads only where a model runs
        import torch

        return torch.stack([self.transform(image.convert("RGB")) for image in images])

    def image_features(self, pixels) -> Any:
        """Each frame's image embedding as the tower outputs it, not normalised: whether a
        video averages unit frame vectors or raw ones is the pooling's choice, and the two
        differ (ViFi-CLIP's trainers/vificlip.py averages the raw features, then normalises)."""
        # lazy: torch loads only where a model runs
        import torch

        with torch.inference_mode():
            pixels = pixels.to(self.device, self.dtype, non_blocking=True)
            return self.encoders.encode_image(pixels).float().cpu()

    def encode_images(self, pixels) -> Any:
        # lazy: torch loads only where a model runs
        import torch

        return torch.nn.functional.normalize(self.image_features(pixels), dim=-1)

    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> Any:
        # lazy: torch loads only where a model runs
        import torch

        texts = list(texts)
        if not texts:
            return torch.empty((0, self.embed_dim), dtype=torch.float32)
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                tokens = self.encoders.tokenize(texts[start : start + batch_size])
                chunks.append(_normalised_on_cpu(self.encoders.encode_text(tokens)))
        return torch.cat(chunks)

    @property
    def embed_dim(self) -> int:
        if self._embed_dim is None:
            self._embed_dim = int(self.encode_texts([""]).shape[1])
        return self._embed_dim


def _normalised_on_cpu(features):
    # lazy: torch loads only where a model runs
    import torch

    features = features.float()
    return torch.nn.functional.normalize(features, dim=-1).cpu()


def _precision(device: str) -> tuple[str, Any]:
    """(open_clip precision, torch dtype): fp16 weights on CUDA, fp32 elsewhere."""
    # lazy: torch loads only where a model runs
    import torch

    return ("fp16", torch.float16) if str(device).startswith("cuda") else ("fp32", torch.float32)


# --- loaders ---------------------------------------------------------------------------------


def load_open_clip(entry: Mapping[str, Any], resources: str | Path, device: str) -> Backbone:
    """An open_clip folder through open_clip's own `local-dir:` path (config + weights)."""
    # lazy: torch loads only where a model runs
    import open_clip

    folder = open_clip_folder(entry, resources)
    precision, dtype = _precision(device)
    model = open_clip.create_model(f"local-dir:{folder}", precision=precision, device=device)
    model.eval()
    tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    written = json.loads((folder / OPEN_CLIP_CONFIG).read_text()).get("preprocess_cfg", {})
    # open_clip keeps the fields it knows; crop_pct is zsar's and read from the file itself.
    # The entry's own `preprocess` is applied here, at load time, so editing it re-runs the
    # jobs that use the model but not its download (zsar.models.registry.fetch_identity).
    pp = {
        **model.visual.preprocess_cfg,
        "crop_pct": written.get("crop_pct", 1.0),
        **(entry.get("preprocess") or {}),
    }
    encoders = OpenClipEncoders(model, tokenizer, device)
    return Backbone(entry["name"], encoders, pp, device=device, dtype=dtype)


def build_open_clip_model(model_cfg: Mapping[str, Any], state_dict: Mapping[str, Any], device: str):
    """An open_clip CLIP from a config and a complete state dict; a key mismatch is an error."""
    # lazy: torch loads only where a model runs
    import open_clip
    import torch
    from open_clip.model import convert_weights_to_lp

    cfg = copy.deepcopy(dict(model_cfg))
    model_class = open_clip.CustomTextCLIP if cfg.pop("custom_text", False) else open_clip.CLIP
    precision, dtype = _precision(device)
    cast_dtype = dtype if precision == "fp16" else None
    model = model_class(**cfg, cast_dtype=cast_dtype)
    result = model.load_state_dict(dict(state_dict), strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointLayoutError(
            f"checkpoint does not fit the architecture: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )
    model.to(device)
    if precision == "fp16":
        # As open_clip does for its own models: linear/attention weights in fp16, norms fp32.
        convert_weights_to_lp(model, dtype=torch.float16)
    return model.eval()


def architecture_cfg(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The open_clip model config an entry names (`architecture`) or spells out (`model_cfg`)."""
    if "model_cfg" in entry:
        cfg = copy.deepcopy(dict(entry["model_cfg"]))
    else:
        # lazy: torch loads only where a model runs
        import open_clip

        cfg = open_clip.get_model_config(entry["architecture"])
        if cfg is None:
            raise ValueError(f"model '{entry['name']}': no architecture {entry['architecture']}")
    if "quick_gelu" in entry:
        cfg["quick_gelu"] = bool(entry["quick_gelu"])
    return cfg


def _hf_folder(entry: Mapping[str, Any], resources: str | Path) -> Path:
    if "path" in entry:
        folder = Path(entry["path"])
        if not (folder / "config.json").is_file():
            raise MissingCheckpointError(f"model '{entry['name']}': {folder} has no config.json")
        return folder
    return fetched_folder(entry, resources)


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def read_hf_weights(folder: Path) -> dict[str, Any]:
    """A transformers checkpoint's state dict (safetensors shards, else .bin shards)."""
    # lazy: torch loads only where a model runs
    import torch

    safetensors = sorted(
        p for p in folder.glob("*.safetensors") if not p.name.startswith("open_clip")
    )
    state: dict[str, Any] = {}
    if safetensors:
        # lazy: torch loads only where a model runs
        from safetensors.torch import load_file

        for path in safetensors:
            state.update(load_file(path))
        return state
    for path in sorted(folder.glob("pytorch_model*.bin")):
        state.update(torch.load(path, map_location="cpu", weights_only=True))
    if not state:
        raise MissingCheckpointError(f"{folder} holds no transformers weights")
    return state


HF_MODEL_CLASSES = {"clip": "CLIPModel", "siglip": "SiglipModel"}


def _hf_in_transformers(entry, folder: Path, device: str) -> Backbone:
    # lazy: torch loads only where a model runs
    import transformers

    config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
    if config.model_type not in HF_MODEL_CLASSES:
        raise ValueError(
            f"model '{entry['name']}': model_type '{config.model_type}' is not one of "
            f"{sorted(HF_MODEL_CLASSES)}"
        )
    model_class = getattr(transformers, HF_MODEL_CLASSES[config.model_type])
    _, dtype = _precision(device)
    model = model_class.from_pretrained(
        folder,
        dtype=dtype,
        local_files_only=True,
        trust_remote_code=bool(entry.get("trust_remote_code", False)),
    )
    model.to(device).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    processor = transformers.AutoImageProcessor.from_pretrained(folder, local_files_only=True)
    encoders = HFEncoders(model, tokenizer, config.text_config.max_position_embeddings, device)
    pp = hf_preprocess_cfg(_read_json(folder / "preprocessor_config.json"))
    transform = HFImageTransform(processor)
    return Backbone(entry["name"], encoders, pp, device=device, dtype=dtype, transform=transform)


def _hf_in_open_clip(entry, folder: Path, device: str) -> Backbone:
    """A transformers CLIP checkpoint converted into open_clip's CLIP (same arithmetic)."""
    # lazy: torch loads only where a model runs
    import transformers
    from open_clip.tokenizer import HFTokenizer, SimpleTokenizer

    config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
    if config.model_type != "clip":
        raise ValueError(f"model '{entry['name']}': runtime open_clip converts CLIP models only")
    model_cfg = hf_clip_model_cfg(config.to_dict())
    model = build_open_clip_model(model_cfg, hf_clip_state_dict(read_hf_weights(folder)), device)
    context = model_cfg["text_cfg"]["context_length"]
    has_tokenizer = (folder / "tokenizer.json").is_file() or (folder / "vocab.json").is_file()
    tokenizer = (
        HFTokenizer(str(folder), context_length=context)
        if has_tokenizer
        else SimpleTokenizer(context_length=context)
    )
    pp = hf_preprocess_cfg(_read_json(folder / "preprocessor_config.json"))
    _, dtype = _precision(device)
    encoders = OpenClipEncoders(model, tokenizer, device)
    return Backbone(entry["name"], encoders, pp, device=device, dtype=dtype)


HF_RUNTIMES = {"transformers": _hf_in_transformers, "open_clip": _hf_in_open_clip}


def load_hf_clip(entry: Mapping[str, Any], resources: str | Path, device: str) -> Backbone:
    runtime = entry.get("runtime", "transformers")
    if runtime not in HF_RUNTIMES:
        raise ValueError(f"model '{entry['name']}': runtime must be one of {sorted(HF_RUNTIMES)}")
    return HF_RUNTIMES[runtime](entry, _hf_folder(entry, resources), device)


def base_state_dict(entry: Mapping[str, Any], resources: str | Path) -> dict[str, Any]:
    """The open_clip state dict of the entry's `base` model (fetched like any other)."""
    # lazy: torch loads only where a model runs
    import torch

    base = {"name": entry["base"]}
    weights = open_clip_weights_file(fetched_folder(base, resources))
    if weights.suffix == ".safetensors":
        # lazy: torch loads only where a model runs
        from safetensors.torch import load_file

        return load_file(weights)
    return torch.load(weights, map_location="cpu", weights_only=True)


def load_video_checkpoint(
    entry: Mapping[str, Any], resources: str | Path, device: str, *, layout: str
) -> Backbone:
    """A video-adapted CLIP checkpoint file, re-keyed into its open_clip architecture."""
    # lazy: torch loads only where a model runs
    from open_clip.tokenizer import SimpleTokenizer

    folder = model_dir(resources, entry["name"])
    path = folder / entry["local_file"]
    if not path.is_file():
        raise MissingCheckpointError(missing_checkpoint_message(entry, folder), entry, folder)
    spec = LAYOUTS[layout]
    base = base_state_dict(entry, resources) if spec.from_base else None
    state, dropped = video_clip_state_dict(load_training_checkpoint(path), spec, base)
    logger.info("%s: %d tensors loaded, %d unused %s", path, len(state), len(dropped), dropped[:2])
    model_cfg = architecture_cfg(entry)
    model = build_open_clip_model(model_cfg, state, device)
    # Both projects tokenize with OpenAI's BPE, which open_clip bundles.
    tokenizer = SimpleTokenizer(context_length=model_cfg["text_cfg"].get("context_length", 77))
    _, dtype = _precision(device)
    encoders = OpenClipEncoders(model, tokenizer, device)
    return Backbone(entry["name"], encoders, entry["preprocess"], device=device, dtype=dtype)


# backend -> its loader, (entry, resources, device) -> Backbone. Every backbone is fetched
# into resources/models/NAME/ first, and its embedding jobs take a GPU where there is one.
BACKENDS: dict[str, Backend] = {
    name: Backend(make=loader, fetches_weights=True, uses_gpu=True)
    for name, loader in (
        ("open_clip", load_open_clip),
        ("hf_clip", load_hf_clip),
        ("vificlip", partial(load_video_checkpoint, layout="vificlip")),
        ("actionclip", partial(load_video_checkpoint, layout="actionclip")),
    )
}


def load_backbone(entry: Mapping[str, Any], resources: str | Path, device: str = "cpu") -> Backbone:
    """The backbone of a registry entry (with its `name`), from its folder under resources/."""
    backend = entry.get("backend")
    if backend not in BACKENDS:
        raise ValueError(
            f"backbone '{entry.get('name')}': backend must be one of {sorted(BACKENDS)}"
        )
    logger.info("loading backbone %s (%s) on %s", entry["name"], backend, device)
    return BACKENDS[backend].make(entry, resources, str(device))
