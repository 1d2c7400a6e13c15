"""Captions: a short natural-language summary of every video, from the frames shards.

The stage reads one frames shard (JPEG bytes, decoded once by the frames stage) and writes
one captions shard with the contract columns: video_id, caption, captioner, prompt_version,
generation_params (JSON). The captioner is a backend of the registry's `captioners`
section (zsar.models.captioners: a local vision-language model, an OpenAI-compatible
endpoint, or a caption file).

Every caption goes through `clean_caption`; an empty or failed one becomes a failure row
(stage "captions") and the run goes on. Rows are streamed to disk batch by batch into a file
that appears only when complete, so a crash never leaves a partial shard behind and
Snakemake's per-shard outputs give resume for free.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from zsar.data.io import ParquetStreamWriter, failures_table, write_parquet
from zsar.data.provenance import provenance
from zsar.models.batching import Outcome
from zsar.models.caption_inputs import VideoFrames, load_prompt_set
from zsar.models.captioners import BACKENDS, Captioner, make_captioner
from zsar.models.devices import preferred_device
from zsar.stages.frames import TIMING_COLUMNS, iter_shard_batches, shard_columns

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


# --- Rows (pure) ----------------------------------------------------------------------------


def generation_params_json(params: Mapping[str, Any]) -> str:
    """The generation_params column: canonical JSON, so equal settings give equal bytes."""
    return json.dumps(dict(params), sort_keys=True, separators=(",", ":"))


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


# --- The stage ----------------------------------------------------------------------------


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
