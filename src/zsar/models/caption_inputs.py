"""What a captioner is given: a prompt set and the messages built from it, one video's frames,
and when those frames were shown (the timing a video processor is told).

Pure helpers, below both the captioner backends (zsar.models.captioners) and the captions
stage (zsar.stages.captions), so that imports run one way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from zsar.stages.frames import positive_seconds, sample_frame_indices

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


# --- Prompts (pure) -----------------------------------------------------------------------


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


# --- One video's frames -----------------------------------------------------------------------


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

