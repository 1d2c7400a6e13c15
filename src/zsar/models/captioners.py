"""Captioners: the backends that caption videos from their frames, in a registry (`BACKENDS`).

- `transformers`: a vision-language model from {resources}/models/{name}/ through
  `AutoProcessor` and the model class the entry names (default `AutoModelForImageTextToText`),
  the prompt rendered by the processor's chat template, batched greedy decoding with left
  padding; a CUDA out-of-memory error halves the batch and retries (zsar.models.batching).
  Frames given as a video come with their real timing (the frames table's source rate and
  duration), and generation_params records the effective generation settings (checkpoint,
  zsar, entry);
- `openai`: an OpenAI-compatible chat endpoint (vLLM, Ollama, hosted APIs) through
  `zsar.models.chat`, frames sent as base64 JPEG data URLs, requests concurrent up to a limit;
- `file`: captions made elsewhere, read from CSV, JSON or Parquet (video_id -> caption;
  zsar.data.caption_files).

The demo's and the tests' tiny random captioners (zsar.models.tiny) load through the very same
loader as real checkpoints.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from zsar.data.caption_files import (
    DEFAULT_MIN_MATCH,
    ID_KEYS,
    check_match_share,
    key_captions,
    match_imported_captions,
    read_caption_file,
)
from zsar.models.batching import AdaptiveBatch, Outcome, free_cuda_memory, run_in_batches
from zsar.models.caption_inputs import (
    DEFAULT_SOURCE_FPS,
    VIDEO_TIMING,
    PromptSet,
    VideoFrames,
    openai_messages,
    processor_video_metadata,
    subsample_frames,
    transformers_conversation,
)
from zsar.models.registry import Backend, model_dir
from zsar.stages.frames import decode_jpegs

logger = logging.getLogger(__name__)

# How frames reach a transformers model -> the processor argument that carries them: one
# video per sample, or one image per frame (for models without a video path, e.g. SmolVLM2).
VISUAL_INPUTS = {"video": "videos", "images": "images"}
# Generation settings zsar sets itself; a registry entry's `generation` may not override them.
RESERVED_GENERATION = {"max_new_tokens": "the config's captions.max_new_tokens"}


class Captioner:
    """A backend: captions for a batch of videos, plus what goes into the output columns."""

    needs_frames = True
    prompt_version: str
    generation_params: dict[str, Any]

    def caption(self, videos: Sequence[VideoFrames]) -> list[Outcome]:
        raise NotImplementedError

    def read_batch_size(self, batch_size: int) -> int:
        """How many videos to read from the shard per call of `caption`."""
        return batch_size

    def finish(self) -> None:
        """Called once after the last batch (the file backend reports unused ids here)."""


def _torch_dtype(device: str):
    # lazy: torch loads only where a model runs
    import torch

    # bf16 halves memory on GPUs and keeps fp32's range; CPUs get exact fp32.
    return torch.bfloat16 if str(device).startswith("cuda") else torch.float32


def _model_class(entry: Mapping[str, Any]):
    # lazy: torch loads only where a model runs
    import transformers

    name = entry.get("model_class", "AutoModelForImageTextToText")
    cls = getattr(transformers, name, None)
    if cls is None:
        raise ValueError(f"captioner '{entry.get('name')}': unknown model_class '{name}'")
    return cls


def load_vlm(entry: Mapping[str, Any], resources: str | Path, device: str):
    """Processor and model of a transformers captioner, from {resources}/models/{name}/.

    Tiny built models and downloaded checkpoints live in the same place and load the same way.
    """
    # lazy: torch loads only where a model runs
    from transformers import AutoProcessor

    path = model_dir(resources, entry["name"])
    if not path.is_dir():
        raise FileNotFoundError(f"captioner '{entry['name']}': no model folder {path} (fetch it)")
    # Remote code runs only where a registry entry opts in.
    trust = bool(entry.get("trust_remote_code", False))
    processor = AutoProcessor.from_pretrained(
        path, trust_remote_code=trust, **dict(entry.get("processor_kwargs") or {})
    )
    kwargs: dict[str, Any] = {"dtype": _torch_dtype(device), "trust_remote_code": trust}
    if entry.get("attn_implementation"):
        kwargs["attn_implementation"] = entry["attn_implementation"]
    model = _model_class(entry).from_pretrained(path, **kwargs).to(device).eval()
    return processor, model


# --- Generation settings ----------------------------------------------------------------------

# Fields of a GenerationConfig that say which transformers wrote it, not how it generates.
_NOT_SETTINGS = ("transformers_version", "_from_model_config")
# (do_sample, beam search?) -> how the captions were decoded, for generation_params.
DECODING_NAMES = {(False, False): "greedy", (False, True): "beam search",
                  (True, False): "sampling", (True, True): "beam sampling"}


def effective_generation_config(checkpoint_config, overrides: Mapping[str, Any], name: str):
    """The settings generate() runs with: the checkpoint's generation config (its
    generation_config.json) with `overrides` on top, in transformers' own order (what
    generate() is given wins; what it is not given comes from the checkpoint)."""
    config = copy.deepcopy(checkpoint_config)
    unknown = config.update(**dict(overrides))
    if unknown:
        raise ValueError(f"captioner '{name}': unknown generation setting(s) "
                         f"{sorted(unknown)} (see transformers.GenerationConfig)")
    return config


def generation_settings(config) -> dict[str, Any]:
    """A GenerationConfig's settings that differ from transformers' defaults, sorted: what the
    checkpoint, zsar and the registry entry set, and nothing else."""
    diff = config.to_diff_dict()
    return {key: diff[key] for key in sorted(diff) if key not in _NOT_SETTINGS}


def decoding_name(config) -> str:
    return DECODING_NAMES[(bool(config.do_sample), (config.num_beams or 1) > 1)]


class TransformersCaptioner(Captioner):
    """Batched greedy captions from a local vision-language model.

    generate() runs with the checkpoint's generation config, zsar's greedy settings on top,
    and the registry entry's `generation` on top of those; generation_params records the
    result (e.g. Qwen's repetition_penalty 1.05, which applies to greedy decoding too).
    """

    def __init__(
        self,
        processor,
        model,
        prompts: PromptSet,
        *,
        max_new_tokens: int,
        batch_size: int,
        visual_input: str = "video",
        max_frames: int | None = None,
        generation: Mapping[str, Any] | None = None,
        name: str = "transformers",
    ):
        if visual_input not in VISUAL_INPUTS:
            raise ValueError(f"visual_input must be one of {sorted(VISUAL_INPUTS)}, "
                             f"not '{visual_input}'")
        self.processor = processor
        self.model = model
        self.prompts = prompts
        self.max_new_tokens = int(max_new_tokens)
        self.visual_input = visual_input
        self.max_frames = max_frames
        self.batch = AdaptiveBatch(max(1, int(batch_size)))
        # Generation appends on the right, so prompts of different lengths must be left-padded.
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._texts: dict[int, str] = {}
        self.prompt_version = prompts.version
        self.name = name
        self.untimed = 0  # videos captioned without a known timing (DEFAULT_SOURCE_FPS)
        reserved = sorted(set(generation or {}) & set(RESERVED_GENERATION))
        if reserved:
            raise ValueError(f"captioner '{name}': generation may not set {reserved}; use "
                             f"{', '.join(RESERVED_GENERATION[k] for k in reserved)}")
        zsar_settings = {"max_new_tokens": self.max_new_tokens, "do_sample": False,
                         "num_beams": 1, "pad_token_id": self.tokenizer.pad_token_id}
        self.generation_config = effective_generation_config(
            model.generation_config, {**zsar_settings, **dict(generation or {})}, name
        )
        self.generation_params = {
            "backend": "transformers",
            "decoding": decoding_name(self.generation_config),
            "max_new_tokens": self.max_new_tokens,
            "visual_input": visual_input,
            "max_frames": max_frames,
            "dtype": str(model.dtype).removeprefix("torch."),
            "generation_config": generation_settings(self.generation_config),
        }
        if visual_input == "video":
            self.generation_params["default_source_fps"] = DEFAULT_SOURCE_FPS
            self.generation_params["video_timing"] = VIDEO_TIMING

    def _prompt_text(self, num_frames: int) -> str:
        key = num_frames if self.visual_input == "images" else 0
        if key not in self._texts:
            conversation = transformers_conversation(self.prompts, num_frames, self.visual_input)
            self._texts[key] = self.processor.apply_chat_template(
                conversation, add_generation_prompt=True, tokenize=False
            )
        return self._texts[key]

    def generate(
        self, frames: Sequence[list], metadata: Sequence[Mapping[str, Any]] | None = None
    ) -> list[str]:
        """Captions for videos given as lists of PIL images (one batch, no retries);
        `metadata`: each video's timing for the processor (processor_video_metadata)."""
        # lazy: torch loads only where a model runs
        import torch

        texts = [self._prompt_text(len(f)) for f in frames]
        # One list of PIL frames per video, as a video or as that sample's images.
        visual: dict[str, Any] = {VISUAL_INPUTS[self.visual_input]: list(frames)}
        if self.visual_input == "video" and metadata is not None:
            # The frames are already sampled: the processor must not sample again, only learn
            # when they were shown (without it, Qwen2.5-VL assumes 24 frames a second).
            visual.update(video_metadata=[dict(m) for m in metadata], do_sample_frames=False)
        inputs = self.processor(text=texts, padding=True, return_tensors="pt", **visual)
        seconds = inputs.get("second_per_grid_ts")
        inputs = inputs.to(self.model.device, dtype=self.model.dtype)
        if seconds is not None:  # times stay float32: bf16 would round 0.8333 s to 0.832
            inputs["second_per_grid_ts"] = seconds.to(self.model.device)
        with torch.inference_mode():
            out = self.model.generate(**inputs, generation_config=self.generation_config)
        new_tokens = out[:, inputs["input_ids"].shape[1]:]
        return self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)

    def _timing(self, video: VideoFrames, given: int) -> dict[str, Any]:
        """The processor's metadata for `video`'s `given` frames; warns when it is a guess."""
        indices = video.frame_indices
        if indices is not None and len(indices) == len(video.jpegs):
            indices = subsample_frames(indices, self.max_frames)  # in step with the frames
        metadata, known = processor_video_metadata(video, given, indices)
        if not known:
            self.untimed += 1
            if self.untimed == 1:
                logger.warning(
                    "%s: the frames table gives no source fps or duration (written before "
                    "zsar recorded them?); assuming %g frames a second for its timing, and "
                    "for any other such video (counted at the end)",
                    video.video_id, DEFAULT_SOURCE_FPS,
                )
        return metadata

    def caption(self, videos: Sequence[VideoFrames]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(videos)
        decoded: dict[int, tuple[list, dict[str, Any] | None]] = {}
        for i, video in enumerate(videos):
            if not video.jpegs:
                outcomes[i] = (None, "no frames")
                continue
            try:
                frames = decode_jpegs(subsample_frames(video.jpegs, self.max_frames))
            except Exception as err:  # noqa: BLE001 - a corrupt JPEG fails its video only
                outcomes[i] = (None, f"cannot decode frames: {err}"[:300])
                continue
            timing = self._timing(video, len(frames)) if self.visual_input == "video" else None
            decoded[i] = (frames, timing)
        # The processors stack a batch's videos, so a batch holds videos of one frame count.
        by_count: dict[int, list[int]] = {}
        for i, (frames, _) in decoded.items():
            by_count.setdefault(len(frames), []).append(i)

        def run(chunk):
            frames, timing = zip(*chunk, strict=True)
            metadata = None if None in timing else timing
            return [(text, None) for text in self.generate(frames, metadata)]

        for indices in by_count.values():
            results = run_in_batches(
                [decoded[i] for i in indices],
                run,
                self.batch,
                on_oom=free_cuda_memory,
            )
            for i, outcome in zip(indices, results, strict=True):
                outcomes[i] = outcome
        return [o if o is not None else (None, "no outcome") for o in outcomes]

    def finish(self) -> None:
        if self.untimed:
            logger.warning("%d video(s) had no source timing in the frames table; their frames "
                           "were taken to be from a %g fps source", self.untimed,
                           DEFAULT_SOURCE_FPS)


def make_transformers_captioner(entry, resources, device, prompts, max_new_tokens, batch_size):
    processor, model = load_vlm(entry, resources, device)
    return TransformersCaptioner(
        processor,
        model,
        prompts,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        visual_input=entry.get("visual_input", "video"),
        max_frames=entry.get("max_frames"),
        generation=entry.get("generation"),
        name=entry["name"],
    )


class OpenAICaptioner(Captioner):
    """Captions from an OpenAI-compatible chat endpoint, frames as JPEG data URLs."""

    def __init__(self, entry: Mapping[str, Any], prompts: PromptSet, max_new_tokens: int):
        # zsar.models.chat loads httpx, which only the server backends' env (torch.yaml) installs
        from zsar.models.chat import ChatClient, ChatEndpoint

        self.endpoint = ChatEndpoint.from_entry(entry)
        self.client = ChatClient(self.endpoint)  # reads the key now: a missing one fails early
        self.prompts = prompts
        self.max_new_tokens = int(max_new_tokens)
        self.max_frames = entry.get("max_frames")
        self.prompt_version = prompts.version
        self.generation_params = {
            "backend": "openai",
            "model": self.endpoint.model,
            "decoding": "greedy",
            "temperature": 0.0,
            "max_tokens": self.max_new_tokens,
            "max_frames": self.max_frames,
        }

    def read_batch_size(self, batch_size: int) -> int:
        # A few rounds of requests per call keep every connection busy; a batch of 8 would
        # leave most of a 32-request concurrency limit idle.
        return max(batch_size, 4 * int(self.endpoint.concurrency))

    def caption(self, videos: Sequence[VideoFrames]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(videos)
        requests, slots = [], []
        for i, video in enumerate(videos):
            if not video.jpegs:
                outcomes[i] = (None, "no frames")
                continue
            requests.append(openai_messages(self.prompts, subsample_frames(video.jpegs,
                                                                           self.max_frames)))
            slots.append(i)
        results = self.client.complete_many(
            requests, max_tokens=self.max_new_tokens, temperature=0.0, log=logger
        )
        for i, result in zip(slots, results, strict=True):
            outcomes[i] = (result.text, None) if result.error is None else (None, result.error)
        return [o if o is not None else (None, "no outcome") for o in outcomes]


def make_openai_captioner(entry, resources, device, prompts, max_new_tokens, batch_size):
    return OpenAICaptioner(entry, prompts, max_new_tokens)

class FileCaptioner(Captioner):
    """Captions made elsewhere (e.g. Open-VCLIP's published Kinetics captions, or a user's)."""

    needs_frames = False

    def __init__(self, entry: Mapping[str, Any]):
        if not entry.get("path"):
            raise ValueError(f"captioner '{entry.get('name')}': the file backend needs `path`")
        self.path = Path(entry["path"])
        match = entry.get("match", "video_id")
        if match not in ID_KEYS:
            raise ValueError(f"captioner '{entry.get('name')}': match must be one of "
                             f"{sorted(ID_KEYS)}, not '{match}'")
        self.key = ID_KEYS[match]
        self.match = match
        self.min_match = float(entry.get("min_match", DEFAULT_MIN_MATCH))
        if not 0.0 <= self.min_match <= 1.0:
            raise ValueError(f"captioner '{entry.get('name')}': min_match must be in [0, 1], "
                             f"not {entry.get('min_match')!r}")
        captions = read_caption_file(self.path, entry.get("id_column", "video_id"),
                                     entry.get("caption_column", "caption"))
        self.captions = key_captions(captions, self.key, self.path)
        self.prompt_version = str(entry.get("prompt_version", "external"))
        self.generation_params = {"backend": "file", "source": self.path.name, "match": match}
        self._seen: list[str] = []

    def read_batch_size(self, batch_size: int) -> int:
        return max(batch_size, 1024)  # ids only: cheap

    def caption(self, videos: Sequence[VideoFrames]) -> list[Outcome]:
        ids = [v.video_id for v in videos]
        self._seen += ids
        outcomes, _ = match_imported_captions(ids, self.captions, self.key)
        return outcomes

    def finish(self) -> None:
        _, report = match_imported_captions(self._seen, self.captions, self.key)
        logger.info(
            "caption file %s: %d of %d videos matched; %d missing (recorded as failures); "
            "%d ids in the file matched no video of this shard (other shards, videos that "
            "failed to decode, or ids unknown to the dataset)",
            self.path, report.matched, len(self._seen), len(report.missing), len(report.unused),
        )
        if report.missing:
            logger.warning("missing captions, e.g.: %s", ", ".join(report.missing[:10]))
        if report.unused:
            logger.info("ids in the file not in this shard, e.g.: %s",
                        ", ".join(report.unused[:10]))
        logger.info("videos=%d matched=%d", len(self._seen), report.matched)
        check_match_share(report.matched, len(self._seen), self.min_match, self.path, self.match)


def make_file_captioner(entry, resources, device, prompts, max_new_tokens, batch_size):
    return FileCaptioner(entry)


def _caption_file(entry: Mapping[str, Any]) -> list[str]:
    return [entry["path"]]


# backend -> (entry, resources, device, prompts, max_new_tokens, batch_size) -> Captioner, with
# its traits: only a local model is fetched and runs on a GPU; a file is a rule input.
BACKENDS: dict[str, Backend] = {
    "transformers": Backend(make_transformers_captioner, fetches_weights=True, uses_gpu=True),
    "openai": Backend(make_openai_captioner, fetches_weights=False, uses_gpu=False),
    "file": Backend(make_file_captioner, fetches_weights=False, uses_gpu=False,
                    input_files=_caption_file),
}


def make_captioner(entry, resources, device, prompts, max_new_tokens, batch_size) -> Captioner:
    backend = entry.get("backend")
    if backend not in BACKENDS:
        raise ValueError(f"captioner '{entry.get('name')}': unknown backend '{backend}'; "
                         f"known: {', '.join(sorted(BACKENDS))}")
    return BACKENDS[backend].make(entry, resources, device, prompts, max_new_tokens, batch_size)

