"""Captions: a short natural-language summary of every video, from the frames shards.

The stage reads one frames shard (JPEG bytes, decoded once by the frames stage) and writes
one captions shard with the contract columns: video_id, caption, captioner, prompt_version,
generation_params (JSON). Captioners are a registry (`BACKENDS`):

- `transformers`: a vision-language model from {resources}/models/{name}/ through
  `AutoProcessor` and the model class the entry names (default `AutoModelForImageTextToText`),
  the prompt rendered by the processor's chat template, batched greedy decoding with left
  padding; a CUDA out-of-memory error halves the batch and retries. Frames given as a video
  come with their real timing (the frames table's source rate and duration), and
  generation_params records the effective generation settings (checkpoint, zsar, entry);
- `openai`: an OpenAI-compatible chat endpoint (vLLM, Ollama, hosted APIs) through
  `zsar.models.chat`, frames sent as base64 JPEG data URLs, requests concurrent up to a limit;
- `file`: captions made elsewhere, read from CSV, JSON or Parquet (video_id -> caption).

Every caption goes through `clean_caption`; an empty or failed one becomes a failure row
(stage "captions") and the run goes on. Rows are streamed to disk batch by batch into a file
that appears only when complete, so a crash never leaves a partial shard behind and
Snakemake's per-shard outputs give resume for free.

The demo's and the tests' tiny random captioners (zsar.models.tiny) load through the very same
loader as real checkpoints.
"""

from __future__ import annotations

import copy
import csv
import gc
import json
import logging
import re
import sys
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from tqdm import tqdm

from zsar.data.adapters import kinetics_clip_key
from zsar.data.io import ParquetStreamWriter, failures_table, write_parquet
from zsar.data.limits import check_file_size
from zsar.data.provenance import provenance
from zsar.models.devices import preferred_device
from zsar.models.registry import Backend, model_dir
from zsar.stages.frames import (
    TIMING_COLUMNS,
    decode_jpegs,
    iter_shard_batches,
    positive_seconds,
    sample_frame_indices,
    shard_columns,
)

logger = logging.getLogger(__name__)

STAGE = "captions"
CAPTION_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("caption", pa.string()),
        ("captioner", pa.string()),
        ("prompt_version", pa.string()),
        ("generation_params", pa.string()),
    ]
)
# A caption is one or two sentences; anything much longer is a model that did not stop.
MAX_CAPTION_CHARS = 300
# How frames reach a transformers model -> the processor argument that carries them: one
# video per sample, or one image per frame (for models without a video path, e.g. SmolVLM2).
VISUAL_INPUTS = {"video": "videos", "images": "images"}
# A video whose frames table gives no usable timing (a table written before zsar recorded it,
# or a decoder that reported none) is taken to be this many frames a second, typical of the
# benchmarks' sources (UCF101 25, HMDB51 and most of Kinetics 30); a warning says so, and
# generation_params records it.
DEFAULT_SOURCE_FPS = 30.0
# What a video captioner is told of when its frames were shown, recorded in generation_params
# so that a caption's provenance says it: the frames table keeps each source's frame count
# and span, not each frame's timestamp, so a variable-rate source is told its average rate.
VIDEO_TIMING = (
    "frames at their source indices, the source taken as evenly spaced over its recorded "
    "span (frames / duration; a variable-rate source gets its average rate)"
)
# Generation settings zsar sets itself; a registry entry's `generation` may not override them.
RESERVED_GENERATION = {"max_new_tokens": "the config's captions.max_new_tokens"}


# --- Cleaning (pure) --------------------------------------------------------------------

# Special tokens of the common chat templates: <|im_end|>, <|eot_id|>, </s>, <end_of_utterance>...
_SPECIAL_TOKEN = re.compile(
    r"<\|[^<>|]{1,40}\|>|</?s>|<(?:end_of_utterance|eos|bos|pad|unk|image|video)>", re.I
)
_ROLE = r"(?:assistant|user|system|human|gpt|model)"
# A role label at the very start ("assistant:", "ASSISTANT\n", "<|im_start|>assistant").
_LEADING_ROLE = re.compile(rf"^\s*(?:{_ROLE})\s*(?::|\n)\s*", re.I)
# A model that goes on to write the next turn: cut at the first "\nUser:" and the like.
_NEXT_TURN = re.compile(rf"\n\s*{_ROLE}\s*:", re.I)


def _printable(text: str) -> str:
    """Drop control/format/unassigned characters and U+FFFD; whitespace becomes a space."""
    out = []
    for ch in text:
        if ch.isspace():
            out.append(" " if ch != "\n" else "\n")
        elif ch != "\ufffd" and not unicodedata.category(ch).startswith("C"):
            out.append(ch)
    return "".join(out)


def cap_length(text: str, max_chars: int = MAX_CAPTION_CHARS) -> str:
    """`text` cut to at most `max_chars`, at a word boundary where there is one."""
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars + 1]
    space = cut.rfind(" ")
    cut = cut[:space] if space > max_chars // 2 else text[:max_chars]
    return cut.rstrip(" ,;:-")


def clean_caption(text: str | None, max_chars: int = MAX_CAPTION_CHARS) -> str:
    """A caption stripped of chat-template remnants and stray characters, collapsed, capped."""
    if not text:
        return ""
    text = _SPECIAL_TOKEN.sub(" ", text)
    text = _NEXT_TURN.split(text, maxsplit=1)[0]
    previous = None
    while previous != text:  # "assistant:\nassistant:" and the like
        previous = text
        text = _LEADING_ROLE.sub("", text)
    text = " ".join(_printable(text).split())
    return cap_length(text, max_chars)


# --- Prompts and parameters (pure) --------------------------------------------------------


@dataclass(frozen=True)
class PromptSet:
    version: str
    prompt: str
    system: str | None = None


def load_prompt_set(path: str | Path) -> PromptSet:
    data = yaml.safe_load(Path(path).read_text()) or {}
    missing = [k for k in ("version", "prompt") if not data.get(k)]
    if missing:
        raise ValueError(f"{path}: prompt set needs {missing}")
    return PromptSet(version=str(data["version"]), prompt=str(data["prompt"]).strip(),
                     system=(str(data["system"]).strip() if data.get("system") else None))


def generation_params_json(params: Mapping[str, Any]) -> str:
    """The generation_params column: canonical JSON, so equal settings give equal bytes."""
    return json.dumps(dict(params), sort_keys=True, separators=(",", ":"))


def subsample_frames(frames: Sequence[Any], max_frames: int | None) -> list[Any]:
    """At most `max_frames` frames, evenly spread (servers often limit images per request)."""
    frames = list(frames)
    if not max_frames or len(frames) <= max_frames:
        return frames
    step = len(frames) / max_frames
    return [frames[int(step * i + step / 2)] for i in range(max_frames)]


def transformers_conversation(
    prompts: PromptSet, num_frames: int, visual_input: str
) -> list[dict[str, Any]]:
    """The chat a processor's template renders: the frames (as one video or as images), then the
    prompt. The placeholders are expanded by the processor to the model's visual tokens."""
    if visual_input == "video":
        visual = [{"type": "video"}]
    else:
        visual = [{"type": "image"} for _ in range(num_frames)]
    messages: list[dict[str, Any]] = []
    if prompts.system:
        messages.append({"role": "system", "content": [{"type": "text", "text": prompts.system}]})
    prompt = {"type": "text", "text": prompts.prompt}
    messages.append({"role": "user", "content": [*visual, prompt]})
    return messages


def openai_messages(prompts: PromptSet, jpegs: Sequence[bytes]) -> list[dict[str, Any]]:
    # zsar.models.chat loads httpx, which only the server backends' env (torch.yaml) installs
    from zsar.models.chat import image_part, text_part

    messages: list[dict[str, Any]] = []
    if prompts.system:
        messages.append({"role": "system", "content": prompts.system})
    messages.append(
        {"role": "user", "content": [*(image_part(j) for j in jpegs), text_part(prompts.prompt)]}
    )
    return messages


# --- Frames input -------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoFrames:
    """One video's stored frames and, where its frames table has them, when they were shown
    (zsar.stages.frames, "Timing"): the frames' source indices, the source's frame count, rate and
    duration. Tables written before the timing was recorded leave the last two None."""

    video_id: str
    jpegs: list[bytes]
    frame_indices: list[int] | None = None
    num_source_frames: int | None = None
    source_fps: float | None = None
    source_duration_s: float | None = None


def iter_frame_batches(
    frames_shard: str | Path, batch_size: int, with_frames: bool = True
) -> Iterator[list[VideoFrames]]:
    """Stream a frames shard in batches of videos, without holding the shard in memory."""
    timing = shard_columns(frames_shard, TIMING_COLUMNS) if with_frames else []
    columns = ["video_id", "jpeg", *timing] if with_frames else ["video_id"]
    for batch in iter_shard_batches(frames_shard, columns, batch_size):
        ids = batch["video_id"]
        jpegs = batch.get("jpeg") or [[] for _ in ids]
        times = [batch.get(name) or [None] * len(ids) for name in TIMING_COLUMNS]
        yield [VideoFrames(v, list(j or []), *t)
               for v, j, *t in zip(ids, jpegs, *times, strict=True)]


# --- Video timing (pure) --------------------------------------------------------------------


def clip_seconds(video: VideoFrames) -> float | None:
    """Seconds the video's source frames span: the recorded duration, else frames / rate."""
    duration = positive_seconds(video.source_duration_s)
    fps = positive_seconds(video.source_fps)
    if duration is None and fps is not None and (video.num_source_frames or 0) > 0:
        duration = video.num_source_frames / fps
    return duration


def processor_video_metadata(
    video: VideoFrames, given: int, indices: Sequence[int] | None,
    default_fps: float = DEFAULT_SOURCE_FPS,
) -> tuple[dict[str, Any], bool]:
    """What a transformers video processor is told about `given` pre-sampled frames (the
    fields of its VideoMetadata), and whether the video's timing was known.

    The frames are described as part of the source video: its frame count, the rate at
    which those frames span its duration, and the source indices of the frames given. The
    processor's sampled rate, len(frames_indices) / total_num_frames * fps, is then `given`
    / duration, so Qwen2.5-VL's second_per_grid_ts (temporal_patch_size / sampled rate)
    follows the clip's duration, and processors that write timestamps (SmolVLM2) give each
    frame its time in the source. Without a timing, the source is taken to run at
    `default_fps`; without a source frame count, the frames given are the whole source.
    """
    total = video.num_source_frames if (video.num_source_frames or 0) > 0 else None
    if total is None:
        total, indices = given, None
    if indices is None or len(indices) != given:
        indices = sample_frame_indices(total, given)  # the frames stage's rule
    seconds = clip_seconds(video)
    known = seconds is not None
    if seconds is None:
        seconds = total / default_fps
    metadata = {"total_num_frames": total, "fps": total / seconds, "duration": seconds,
                "frames_indices": [int(i) for i in indices]}
    return metadata, known


# --- Batching with out-of-memory back-off ---------------------------------------------------


# A captioner's answer for one video: text, or None and the reason it failed.
Outcome = tuple[str | None, str | None]


def is_out_of_memory(err: BaseException) -> bool:
    # lazy: torch loads only where a model runs
    import torch

    return isinstance(err, torch.OutOfMemoryError) or (
        isinstance(err, RuntimeError) and "out of memory" in str(err).lower()
    )


@dataclass
class AdaptiveBatch:
    """The batch size in force; it only ever shrinks, so one OOM is not paid for again."""

    size: int


def run_in_batches(
    items: Sequence[Any],
    run: Callable[[Sequence[Any]], list[Outcome]],
    batch: AdaptiveBatch,
    *,
    is_oom: Callable[[BaseException], bool] = is_out_of_memory,
    on_oom: Callable[[], None] = lambda: None,
    log: Callable[[str], None] = logger.warning,
) -> list[Outcome]:
    """`run` over `items` in chunks of `batch.size`, one outcome per item, in order.

    Out of memory: the batch size is halved (kept for later calls) and the chunk retried; at
    batch size 1 the video is recorded as failed. Any other error in a chunk of several is
    retried one video at a time, so one bad video fails alone.
    """
    outcomes: list[Outcome] = []
    start = 0
    while start < len(items):
        chunk = items[start : start + batch.size]
        try:
            outcomes.extend(run(chunk))
            start += len(chunk)
        except Exception as err:  # noqa: BLE001 - one bad batch must not stop the run
            if is_oom(err):
                on_oom()
                if len(chunk) == 1:
                    log("out of memory at batch size 1; recording the video as failed")
                    outcomes.append((None, "out of memory at batch size 1"))
                    start += 1
                else:
                    batch.size = max(1, len(chunk) // 2)
                    log(f"out of memory at batch size {len(chunk)}; retrying at {batch.size}")
            elif len(chunk) == 1:
                outcomes.append((None, f"{type(err).__name__}: {err}"[:300]))
                start += 1
            else:
                log(f"batch failed ({type(err).__name__}: {err}); retrying one video at a time")
                for item in chunk:
                    outcomes.extend(
                        run_in_batches([item], run, AdaptiveBatch(1), is_oom=is_oom,
                                       on_oom=on_oom, log=log)
                    )
                start += len(chunk)
    return outcomes


# --- Backends -----------------------------------------------------------------------------


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
                on_oom=_free_cuda_memory,
            )
            for i, outcome in zip(indices, results, strict=True):
                outcomes[i] = outcome
        return [o if o is not None else (None, "no outcome") for o in outcomes]

    def finish(self) -> None:
        if self.untimed:
            logger.warning("%d video(s) had no source timing in the frames table; their frames "
                           "were taken to be from a %g fps source", self.untimed,
                           DEFAULT_SOURCE_FPS)


def _free_cuda_memory() -> None:
    # lazy: torch loads only where a model runs
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


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


# How ids of an imported file are matched to video_ids: exactly, or by file stem, for caption
# files keyed by e.g. "abc_000001_000011" where the manifest says "val/abc_000001_000011.mp4",
# or as Kinetics clips, whose published caption files also drop the zero padding ("abc_1_11").
# The key is applied to the file's ids and to the video ids alike.
ID_KEYS: dict[str, Callable[[str], str]] = {
    "video_id": lambda vid: vid,
    "stem": lambda vid: PurePosixPath(vid).stem,
    "kinetics": kinetics_clip_key,
}
# A caption file that matches less than this share of a shard's videos is the wrong file.
DEFAULT_MIN_MATCH = 0.5


def _read_csv(path: Path, id_col: str, caption_col: str) -> list[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:  # -sig: a BOM is dropped
        reader = csv.DictReader(handle)
        missing = {id_col, caption_col} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}; "
                             f"found {reader.fieldnames}")
        return [(row[id_col], row[caption_col]) for row in reader]


def _read_json(path: Path, id_col: str, caption_col: str) -> list[tuple[str, str]]:
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix == ".jsonl":
        data: Any = [json.loads(line) for line in text.splitlines() if line.strip()]
    else:
        data = json.loads(text)
    if isinstance(data, dict):  # {video_id: caption}
        return [(str(k), v) for k, v in data.items()]
    if isinstance(data, list):  # [{video_id: ..., caption: ...}, ...]
        try:
            return [(str(r[id_col]), r[caption_col]) for r in data]
        except (KeyError, TypeError) as err:
            raise ValueError(f"{path}: records need '{id_col}' and '{caption_col}'") from err
    raise ValueError(f"{path}: expected an object or a list of records")


def _read_parquet(path: Path, id_col: str, caption_col: str) -> list[tuple[str, str]]:
    table = pq.read_table(path, columns=[id_col, caption_col])
    return list(zip(table.column(id_col).to_pylist(), table.column(caption_col).to_pylist(),
                    strict=True))


CAPTION_FILE_READERS: dict[str, Callable[[Path, str, str], list[tuple[str, str]]]] = {
    ".csv": _read_csv,
    ".json": _read_json,
    ".jsonl": _read_json,
    ".parquet": _read_parquet,
}


def read_caption_file(path: str | Path, id_column: str = "video_id",
                      caption_column: str = "caption") -> dict[str, str]:
    """video_id -> caption from a CSV, JSON(L) or Parquet file; a repeated id is an error."""
    path = Path(path)
    reader = CAPTION_FILE_READERS.get(path.suffix.lower())
    if reader is None:
        known = ", ".join(sorted(CAPTION_FILE_READERS))
        raise ValueError(f"{path}: unsupported caption file type; use one of {known}")
    check_file_size(path, "caption")  # a FileTooLarge is a ValueError naming the file
    mapping: dict[str, str] = {}
    for vid, caption in reader(path, id_column, caption_column):
        if vid in mapping:
            raise ValueError(f"{path}: video id '{vid}' appears more than once")
        mapping[vid] = "" if caption is None else str(caption)
    return mapping


def key_captions(captions: Mapping[str, str], key: Callable[[str], str],
                 source: str | Path) -> dict[str, str]:
    """The file's captions under the match key; two ids with one key are an error."""
    keyed: dict[str, str] = {}
    first: dict[str, str] = {}
    for vid, caption in captions.items():
        k = key(vid)
        if k in keyed:
            raise ValueError(f"{source}: ids '{first[k]}' and '{vid}' are the same video "
                             f"('{k}') under this match rule")
        keyed[k], first[k] = caption, vid
    return keyed


def check_match_share(matched: int, videos: int, min_match: float, source: str | Path,
                      match: str) -> None:
    """Stop when a caption file matches too few videos: it is almost certainly the wrong file."""
    if videos and matched < min_match * videos:
        raise ValueError(
            f"caption file {source} matches {matched} of {videos} videos "
            f"({matched / videos:.0%}), less than min_match {min_match:.0%}: it is almost "
            f"certainly the wrong file for this dataset (ids matched by '{match}'; try "
            f"match: kinetics or stem, or lower min_match)"
        )


@dataclass
class ImportReport:
    matched: int
    missing: list[str]  # videos of the shard with no caption in the file
    unused: list[str]  # ids in the file that matched no video of the shard


def match_imported_captions(
    video_ids: Sequence[str], captions: Mapping[str, str], key: Callable[[str], str]
) -> tuple[list[Outcome], ImportReport]:
    """Pure core of the file backend: one outcome per video, and the counts to report."""
    outcomes: list[Outcome] = []
    missing, used = [], set()
    for vid in video_ids:
        k = key(vid)
        if k in captions:
            outcomes.append((captions[k], None))
            used.add(k)
        else:
            outcomes.append((None, "no caption for this video in the caption file"))
            missing.append(vid)
    unused = sorted(set(captions) - used)
    return outcomes, ImportReport(matched=len(used), missing=missing, unused=unused)


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


# backend name -> factory(entry, resources, device, prompts, max_new_tokens, batch_size)
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


# --- The stage ----------------------------------------------------------------------------


def caption_rows(
    videos: Sequence[VideoFrames], outcomes: Sequence[Outcome], captioner: Captioner, name: str
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Pure: outcomes -> (caption rows, failure rows); cleaning decides what is empty."""
    params = generation_params_json(captioner.generation_params)
    rows, failures = [], []
    for video, (text, error) in zip(videos, outcomes, strict=True):
        if error is not None:
            failures.append({"video_id": video.video_id, "stage": STAGE, "reason": error})
            continue
        caption = clean_caption(text)
        if not caption:
            failures.append({"video_id": video.video_id, "stage": STAGE, "reason": "empty caption"})
            continue
        rows.append({"video_id": video.video_id, "caption": caption, "captioner": name,
                     "prompt_version": captioner.prompt_version, "generation_params": params})
    return rows, failures


def _progress(total: int):
    return tqdm(total=total, unit="video", file=sys.stderr, mininterval=5, desc="captions")


def caption_shard(
    frames_shard: str | Path,
    out: str | Path,
    failures_out: str | Path,
    captioner: Captioner,
    name: str,
    batch_size: int,
    provenance_block: Mapping[str, Any],
) -> tuple[int, int]:
    """Caption every video of a frames shard with `captioner`; (captioned, failed)."""
    total = pq.ParquetFile(frames_shard).metadata.num_rows
    failures: list[dict[str, str]] = []
    with ParquetStreamWriter(out, CAPTION_SCHEMA, provenance_block) as writer, \
            _progress(total) as bar:
        read_size = captioner.read_batch_size(batch_size)
        for videos in iter_frame_batches(frames_shard, read_size, captioner.needs_frames):
            rows, failed = caption_rows(videos, captioner.caption(videos), captioner, name)
            writer.write_rows(rows)  # one row group per batch: memory stays flat
            failures += failed
            for failure in failed:
                logger.warning("caption failed for %s: %s", failure["video_id"], failure["reason"])
            bar.update(len(videos))
        captioner.finish()
        # Written before the captions file is renamed into place: a finished captions shard
        # always has its failures next to it.
        write_parquet(failures_table(failures), failures_out, provenance_block)
        captioned = writer.rows
    logger.info("captioned %d of %d videos; %d failed", captioned, total, len(failures))
    return captioned, len(failures)


def run_caption_stage(
    frames_shard: str | Path,
    out: str | Path,
    failures_out: str | Path,
    entry: Mapping[str, Any],
    prompt_set_path: str | Path,
    max_new_tokens: int,
    batch_size: int,
    resources: str | Path,
    device: str | None = None,
) -> None:
    """The captions stage for one shard: frames shard in, captions + failures shards out."""
    if device in (None, "auto"):
        device = preferred_device() if BACKENDS[entry["backend"]].uses_gpu else "cpu"
    prompts = load_prompt_set(prompt_set_path)
    captioner = make_captioner(entry, resources, device, prompts, max_new_tokens, batch_size)
    block = provenance(
        {"captioner": dict(entry), "prompts": prompts.__dict__, "max_new_tokens": max_new_tokens},
        model=entry["name"],
        prompt_version=captioner.prompt_version,
        extra={"revision": entry.get("revision") or entry.get("hf_repo") or "local",
               "generation_params": captioner.generation_params},
    )
    logger.info("captioner %s (%s) on %s, batch size %d", entry["name"], entry.get("backend"),
                device, batch_size)
    caption_shard(frames_shard, out, failures_out, captioner, entry["name"], batch_size, block)
