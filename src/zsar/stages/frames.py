"""Frames: sample N frames per video once, resize them, and store them as JPEG shards.

Every backbone and every captioner reads these shards, so videos are decoded once per
dataset and sampling setting, however many models are evaluated.

Sampling rule (TSN-style, "centre of each segment")
----------------------------------------------------
A video of L decodable frames is cut into N equal segments and the centre frame of each
segment is taken:

    index_i = floor((i + 0.5) * L / N)      for i = 0 .. N-1

(computed in exact integer arithmetic as ((2i + 1) * L) // (2N)). Consequences:

- N = 1 gives the centre frame, floor(L / 2).
- The indices never decrease and always lie in [0, L-1].
- A video with fewer frames than N (L < N) still gives N indices: segments are shorter
  than one frame, so consecutive segments share a frame and indices repeat, e.g. L=3,
  N=8 gives [0, 0, 0, 1, 1, 2, 2, 2]. Every video therefore yields exactly N frames and
  every frame of a short video is used.
- A video with no frames (L = 0) cannot be sampled: the video is recorded as a failure.

With `clips` temporal clips, TSN takes clips x N segments: N per clip, clip after clip.

Sampling rule "stride" (Open-VCLIP's and FROSTER's test loader)
---------------------------------------------------------------
N frames at a fixed stride from each of `clips` temporal offsets, as Open-VCLIP's decoder
samples at test time (wengzejia1/Open-VCLIP, slowfast/datasets/decoder.py:
get_multiple_start_end_idx with USE_OFFSET_SAMPLING, then temporal_sampling; the rate
TARGET_FPS = 30 from slowfast/config/defaults.py). A clip spans
S = max(1, stride * N / 30 * fps) source frames; with D = max(L - S, 0) the k-th of K clips
starts at k * floor(D / (K - 1)) (one clip: floor(D / 2)), and its N indices are
linspace(start, start + S - 1, N) in float32 (torch.linspace's arithmetic), clamped to
[0, L-1] and truncated. A video shorter than a clip repeats frames; one with no stated rate
is taken to run at 30 fps.

Which decoder reads which file (DECODE_IN_ORDER): AVI files (UCF101's XviD, HMDB51's DivX)
are read from the start in presentation order by PyAV on one thread, since AVI has no
presentation timestamps and decord's seek by frame index returns wrong frames there when
the stream has B-frames; L is then the number of frames that decode. Every other container
(MP4, WebM, MKV) is read by decord's seek, with L its frame count; if decoding the sampled
indices fails (corrupt data, a container that promises more frames than it holds, a file
cut short), the frames that actually decode are counted by the same in-order reader (one
thread, so the count is the same every time), L becomes that count, and the indices are
sampled again and read from that prefix. `num_source_frames` records the L that was used.
Both readers turn frames upright as the file's display matrix says.

Timing: each row also records the source's frame rate (`source_fps`, the decoder's average
rate) and the seconds its L frames span (`source_duration_s`: from the start of the first
frame to the end of the last, by the decoder's timestamps), both read from the index the
decoder builds anyway, with no extra decode. So the N sampled frames are N / duration frames
a second, which video captioners that take timing (Qwen2.5-VL) are told. Either is null when
the decoder reports nothing usable; readers then fall back to a stated default. A duration
more than 10% away from L / fps (decord's "no timestamp" value read as a time) is replaced
by L / fps, and the job's log says so. A variable-rate source's frames are sampled by index
like any other; the captioner is told the average rate over the span.

Decoding runs in a pool of worker processes. Frames are resized in the worker (aspect
ratio kept, short side = `short_side`, PIL bilinear), so only small arrays cross the
process boundary. Any error becomes a readable reason, and a worker that crashes or hangs
costs only the video it was decoding.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import io
import logging
import math
import multiprocessing
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image
from tqdm import tqdm

from zsar.core.names import parse_shard_id
from zsar.data.io import ParquetStreamWriter, failures_table, write_parquet
from zsar.data.provenance import provenance

logger = logging.getLogger(__name__)

SAMPLING_RULE = "tsn-centre: floor((i + 0.5) * L / N), i = 0..N-1"
# Each rule in words, as a frames shard's provenance states it.
SAMPLING_RULES = {
    "tsn": SAMPLING_RULE,
    "stride": "open-vclip stride: N frames at a fixed stride from each of K offsets",
}

FRAMES_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("frame_indices", pa.list_(pa.int32())),
        ("jpeg", pa.list_(pa.binary())),
        ("height", pa.int32()),
        ("width", pa.int32()),
        ("num_source_frames", pa.int32()),
        # Added after the first release: shards written before lack them (readers check).
        ("source_fps", pa.float64()),
        ("source_duration_s", pa.float64()),
    ]
)
# The columns that say when each sampled frame was shown (see "Timing" above).
TIMING_COLUMNS = ("frame_indices", "num_source_frames", "source_fps", "source_duration_s")

# Videos per Parquet row group (about 5 MB of JPEG at 8 frames of 340x256): small enough to
# keep memory flat and to let the embedding stage's workers read their own videos without
# reading much of their neighbours', large enough to read fast.
ROW_GROUP_VIDEOS = 16
# A decoder that takes longer than this on one video is assumed stuck and is killed.
DEFAULT_TIMEOUT_S = 600.0

# Raw decoder messages that have a plainer name.
KNOWN_ERRORS: dict[str, str] = {
    "cannot find video stream": "no video stream",
    "No such file or directory": "file not found",
    # decord prints ffmpeg's AVERROR_INVALIDDATA ('INDA') as a bare number.
    "av_read_frame failed with 1094995529": "invalid or cut-short data: no frame decodes",
}
# Containers whose frames are read from the start in presentation order (PyAV, one
# thread), never by decord's seek to a frame index; why, with the reports followed.
DECODE_IN_ORDER: dict[str, str] = {
    "avi": "AVI has no presentation timestamps, only chunks in decode order (a B-frame after "
    "the frame it precedes; XviD's and DivX's packed B-frames two to a chunk), so a seek by "
    "frame index lands on the wrong frame without an error: UCF101's XviD and HMDB51's DivX "
    "files (dmlc/decord#195, dmlc/decord#252, NVIDIA/DALI#1169)",
}
# A decoder's duration further than this from frames / fps is not believed.
DURATION_TOLERANCE = 0.10
# How decord reports a file it cannot open; the cause follows the comma.
_OPEN_ERROR = re.compile(r"ERROR opening: <file>, (.+)")


# ---------------------------------------------------------------- pure core


def sample_frame_indices(num_source_frames: int, num_segments: int) -> list[int]:
    """TSN centre-of-segment indices; see the module docstring for the rule and edge cases."""
    if num_segments < 1:
        raise ValueError(f"num_segments must be at least 1, got {num_segments}")
    if num_source_frames < 1:
        raise ValueError(f"cannot sample frames from a video of {num_source_frames} frames")
    # Integer arithmetic: no float rounding can push an index across a frame boundary.
    return [((2 * i + 1) * num_source_frames) // (2 * num_segments) for i in range(num_segments)]


# Open-VCLIP sizes a stride clip as if the source ran at this rate (DATA.TARGET_FPS).
STRIDE_TARGET_FPS = 30


def _linspace_float32(start: float, end: float, steps: int) -> np.ndarray:
    """torch.linspace(start, end, steps) in float32 as its CPU kernel computes it: the first
    half forward from the start, the rest back from the end, each point one fused
    multiply-add (one rounding), so that truncated indices agree with Open-VCLIP's at every
    boundary (tests/test_frames.py checks it against torch.linspace)."""
    start32, end32 = np.float32(start), np.float32(end)
    if steps == 1:
        return np.array([start32], dtype=np.float32)
    step = np.float64(np.float32((end32 - start32) / np.float32(steps - 1)))
    i = np.arange(steps, dtype=np.float64)
    # float64 holds a float32 product exactly: one rounding, to float32, as an FMA does.
    forward = np.float64(start32) + step * i
    backward = np.float64(end32) - step * (steps - 1 - i)
    return np.where(i < steps // 2, forward, backward).astype(np.float32)


def stride_frame_indices(
    num_source_frames: int, fps: float | None, num_frames: int, stride: int, clips: int,
    target_fps: float = STRIDE_TARGET_FPS,
) -> list[int]:
    """Open-VCLIP's test-time indices (see "Sampling rule stride" above), clip-major."""
    if min(num_frames, stride, clips) < 1:
        raise ValueError(f"num_frames, stride and clips must be at least 1: "
                         f"{num_frames}, {stride}, {clips}")
    if num_source_frames < 1:
        raise ValueError(f"cannot sample frames from a video of {num_source_frames} frames")
    clip_size = max(1.0, stride * num_frames / target_fps * (fps or target_fps))
    room = max(num_source_frames - clip_size, 0)
    indices: list[int] = []
    for k in range(clips):
        start = math.floor(room / 2) if clips == 1 else k * math.floor(room / (clips - 1))
        points = _linspace_float32(start, start + clip_size - 1, num_frames)
        indices += [int(min(max(p, 0), num_source_frames - 1)) for p in points]
    return indices


@dataclass(frozen=True)
class Sampling:
    """Which frames of a video are kept: `clips` clips of `num_frames` frames, clip-major,
    by one of SAMPLERS' rules (`stride` is read by the stride rule only)."""

    rule: str = "tsn"
    num_frames: int = 8
    clips: int = 1
    stride: int = 16

    def __post_init__(self) -> None:
        if self.rule not in SAMPLERS:
            raise ValueError(f"unknown frame sampling {self.rule!r}; known: {', '.join(SAMPLERS)}")

    @property
    def total(self) -> int:
        return self.num_frames * self.clips

    def indices(self, num_source_frames: int, fps: float | None) -> list[int]:
        return SAMPLERS[self.rule](self, num_source_frames, fps)

    def record(self) -> dict[str, Any]:
        """What the frames were sampled with, as provenance and records carry it."""
        block = {"sampling": self.rule, "num_frames": self.num_frames, "clips": self.clips}
        if self.rule == "stride":
            block.update(stride=self.stride, target_fps=STRIDE_TARGET_FPS)
        return block


def as_sampling(sampling: Sampling | int) -> Sampling:
    """A bare frame count is that many TSN frames, one clip."""
    return sampling if isinstance(sampling, Sampling) else Sampling(num_frames=int(sampling))


def sampling_of(frames: Mapping[str, Any]) -> Sampling:
    """The sampling a frames config asks for: its `views.clips` (or, as the frames rule's
    params hold it, `clips`), its rule (TSN where it names none) and the stride rule's
    stride."""
    clips = frames.get("clips", (frames.get("views") or {}).get("clips", 1))
    return Sampling(
        rule=frames.get("sampling", "tsn"),
        num_frames=int(frames["num_frames"]),
        clips=int(clips),
        stride=int(frames.get("stride", Sampling.stride)),
    )


# The frame samplers by name (config `frames.sampling`): (sampling, L, fps) -> indices.
SAMPLERS: dict[str, Callable[[Sampling, int, float | None], list[int]]] = {
    "tsn": lambda s, length, fps: sample_frame_indices(length, s.total),
    "stride": lambda s, length, fps: stride_frame_indices(
        length, fps, s.num_frames, s.stride, s.clips
    ),
}


def videos_for_shard(manifest: pa.Table, index: int, total: int) -> list[tuple[str, str]]:
    """(video_id, path) of shard `index` of `total`: sorted unique existing ids, dealt round-robin.

    A video that belongs to several splits appears once, so it is decoded once.
    """
    if not 0 <= index < total:
        raise ValueError(f"shard index {index} out of range for {total} shards")
    ids = manifest.column("video_id").to_pylist()
    paths = manifest.column("path").to_pylist()
    exists = manifest.column("exists").to_pylist()
    unique = {vid: path for vid, path, ok in zip(ids, paths, exists, strict=True) if ok}
    ordered = sorted(unique)
    return [(vid, unique[vid]) for vid in ordered[index::total]]


def positive_seconds(value: float | None) -> float | None:
    """`value` as a float when it is a usable rate or duration (finite, > 0), else None;
    rounded to the microsecond so that decoder float noise never changes a shard's bytes."""
    if value is None:
        return None
    value = float(value)
    return round(value, 6) if math.isfinite(value) and value > 0 else None


def resized_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(height, width) with the short side = `short_side` and the aspect ratio kept."""
    scale = short_side / min(height, width)
    if height <= width:
        return short_side, max(1, round(width * scale))
    return max(1, round(height * scale)), short_side


def clean_decoder_message(text: str, path: str | None = None) -> str:
    """A decoder message without the parts that change from run to run.

    decord prefixes messages with a wall-clock time and a source location, and ffmpeg
    with an object address; leaving them in would make failures.parquet differ between
    identical runs.
    """
    text = text.split("Stack trace", 1)[0]
    text = re.sub(r"\[\d{2}:\d{2}:\d{2}\]\s*", "", text)
    text = re.sub(r"\S+\.(?:cc|cpp|h):\d+:\s*", "", text)
    text = re.sub(r" @ 0x[0-9a-fA-F]+", "", text)
    if path:
        text = text.replace(str(path), "<file>")
    return " ".join(text.split())


def checked_duration(
    length: int, fps: float | None, duration: float | None
) -> tuple[float | None, str | None]:
    """The seconds L frames span, and a note when the decoder's figure was not used.

    A duration that is missing, negative or more than DURATION_TOLERANCE away from L / fps
    (decord reports its "no timestamp" value, about -3.7e17 s, for the first frame of an AVI
    with B-frames) is replaced by L / fps when the rate is known, else dropped.
    """
    expected = positive_seconds(length / fps) if fps else None
    if duration is not None and (
        expected is None or abs(duration - expected) <= DURATION_TOLERANCE * expected
    ):
        return duration, None
    if duration is None:
        return expected, None
    used = f"{expected:g} s = {length} frames / {fps:g} fps" if expected else "none"
    return expected, f"the decoder's duration {duration:g} s is not believed; used: {used}"


def describe_error(exc: BaseException, decoder_log: str, path: str) -> str:
    """One readable line for a failed decode: what failed, then ffmpeg's last words."""
    message = clean_decoder_message(str(exc), path) or type(exc).__name__
    lines = [clean_decoder_message(line, path) for line in decoder_log.splitlines()]
    lines = [line for line in dict.fromkeys(lines) if line]  # unique, in order
    opening = [m.group(1) for m in map(_OPEN_ERROR.search, lines) if m]
    if opening:
        # decord's exception only says "Error reading <file>"; the log says why.
        message = f"cannot open: {opening[-1]}"
        lines = [line for line in lines if not _OPEN_ERROR.search(line)]
    detail = "; ".join(lines[-2:])
    combined = f"{message} ({detail})" if detail else message
    for pattern, plain in KNOWN_ERRORS.items():
        if pattern in combined:
            return plain
    return combined[:300]


# ---------------------------------------------------------------- one video (runs in a worker)


@dataclass
class DecodedVideo:
    """One video's sampled frames, or the reason it could not be decoded.

    `frames` are HxWx3 uint8 RGB arrays, already resized; `jpeg` holds the same frames
    JPEG-encoded when the caller asked for it (the frames stage does, so the encoding
    also runs in the workers). `size` is the (height, width) of the frames; it stays
    when `frames` is dropped (decode_video_jpeg_only). `source_fps` and
    `source_duration_s` are the source's timing (module docstring), None when unknown.
    `error` is None exactly when decoding succeeded.
    """

    video_id: str
    frames: list[np.ndarray] | None
    frame_indices: list[int]
    num_source_frames: int
    error: str | None = None
    jpeg: list[bytes] | None = None
    size: tuple[int, int] | None = None
    source_fps: float | None = None
    source_duration_s: float | None = None
    note: str | None = None  # what the stage should log about this video (timing replaced)

    @property
    def ok(self) -> bool:
        return self.error is None


def failed(video_id: str, reason: str, num_source_frames: int = 0) -> DecodedVideo:
    return DecodedVideo(video_id, None, [], num_source_frames, error=reason)


@contextlib.contextmanager
def _captured_fd2() -> Iterator[Callable[[], str]]:
    """Capture what C libraries (decord, ffmpeg) print on file descriptor 2.

    Their messages carry the actual cause ("moov atom not found") that decord's Python
    exception leaves out, and without capture they would flood the job log.
    """
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield lambda: _read_sink(sink)
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _read_sink(sink) -> str:
    sink.flush()
    sink.seek(0)
    return sink.read().decode(errors="replace")


def _readable_prefix(path: str) -> Iterator:
    """The frames (PyAV VideoFrames) that decode from the start, up to the first error.

    Read with PyAV on this thread: decord reports a decode error from a background thread,
    so where its count of readable frames stops varies from call to call, and a partly
    corrupt video would give different frames (or fail) from one run to the next.
    """
    # lazy: a video decoder loads only where videos are read
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1  # one decoding order, hence one result
        try:
            yield from container.decode(stream)
        except av.FFmpegError:  # the first undecodable packet ends the readable prefix
            return


@dataclass(frozen=True)
class _Header:
    """What a file's header says, read once: the container's format as PyAV names it (its
    first name: "avi", "mov", "matroska"), the frame count it promises (0 when it states
    none: WebM) and the video stream's average rate."""

    container: str
    promised_frames: int
    fps: float | None


def _read_header(path: str) -> _Header:
    # lazy: a video decoder loads only where videos are read
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        return _Header(
            container.format.name.split(",")[0],
            max(0, stream.frames or 0),
            positive_seconds(stream.average_rate),
        )


def _header_or_none(path: str) -> _Header | None:
    """The header, or None when PyAV cannot open the file (decord then says why)."""
    try:
        return _read_header(path)
    except Exception:  # noqa: BLE001 - the decode below reports the file's problem
        return None


def _upright_rgb(frame) -> np.ndarray:
    """A PyAV frame as an RGB array turned as the file says it is shown (its display matrix),
    as decord returns it: a phone's portrait clip is stored landscape with a rotation tag."""
    rgb = frame.to_ndarray(format="rgb24")
    turns = round((frame.rotation or 0) / 90) % 4
    # PyAV's rotation is counter-clockwise degrees, as np.rot90 turns.
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


# The source's timing: (frames per second, seconds its frames span); None where unknown.
Timing = tuple[float | None, float | None]


def _prefix_timing(
    fps: float | None, frames: Iterable, keep: Callable[[int, object], None]
) -> tuple[int, Timing]:
    """Count the readable prefix's frames and time them (PyAV frames carry their
    timestamps); `keep` sees each frame with its index on the way."""
    length, start, end = 0, None, None
    for frame in frames:
        keep(length, frame)
        length += 1
        if frame.time is None:
            continue
        # min and max: AVI's frames carry chunk numbers, out of order around B-frames.
        start = frame.time if start is None else min(start, frame.time)
        shown = float(frame.duration * frame.time_base) if frame.duration else None
        last = frame.time + (shown or (1 / fps if fps else 0.0))
        end = last if end is None else max(end, last)
    duration = positive_seconds(end - start) if start is not None else None
    return length, (fps, duration)


# How many frames fewer than its header promises a file may decode and still be read in
# one pass (XviD and DivX drop the last packed B-frames of a stream).
PROMISE_SLACK = 8


def _read_readable_prefix(
    path: str, sampling: Sampling, header: _Header | None = None
) -> tuple[np.ndarray, list[int], int, Timing]:
    """Sampled frames of the readable prefix, in presentation order.

    The count of frames that decode decides the indices, so the frames are only known at
    the end of the file. One pass keeps the frames that any count within PROMISE_SLACK
    below the header's promise would sample (a few times N frames, decoded but not
    converted); a file that decodes fewer (cut short, damaged) or states no count is read
    a second time for its N frames.
    """
    header = header or _read_header(path)
    promised = header.promised_frames
    candidates = {
        i
        for length in range(max(1, promised - PROMISE_SLACK), promised + 1)
        for i in sampling.indices(length, header.fps)
    } if promised else set()  # fmt: skip
    held: dict[int, object] = {}

    def keep(i: int, frame) -> None:
        if i in candidates:
            held[i] = frame

    length, timing = _prefix_timing(header.fps, _readable_prefix(path), keep)
    indices = sampling.indices(length, header.fps)  # ValueError for 0 frames
    if not all(i in held for i in indices):
        held.clear()
        wanted = set(indices)
        last = max(wanted)  # stride clips overlap: indices need not rise clip to clip
        for i, frame in enumerate(_readable_prefix(path)):
            if i in wanted:
                held[i] = frame
            if i == last:
                break
    return np.stack([_upright_rgb(held[i]) for i in indices]), indices, length, timing


def _decord_timing(reader, length: int) -> Timing:
    """decord's average rate and the span of its frame index (no decoding); never raises:
    a video without usable timestamps still gives its frames."""
    try:
        fps = positive_seconds(reader.get_avg_fps())
        (start, _), (_, end) = reader.get_frame_timestamp([0, length - 1]).tolist()
        return fps, positive_seconds(end - start)
    except Exception:  # noqa: BLE001 - timing is optional; the frames are what matter
        return None, None


def _read_frames(path: str, sampling: Sampling) -> tuple[np.ndarray, list[int], int, Timing]:
    """Sampled frames as one uint8 array [N,H,W,3], their indices, the frame count used,
    and the source's timing.

    decord's seek where it is exact; the containers of DECODE_IN_ORDER from the start, in
    presentation order (the readable-prefix reader, which also counts what decodes).
    """
    header = _header_or_none(path)
    if header is not None and header.container in DECODE_IN_ORDER:
        return _read_readable_prefix(path, sampling, header)
    # lazy: a video decoder loads only where videos are read
    import decord

    reader = None
    try:
        # Inside the try: a file cut short fails here already (an MP4 with its index at the
        # front), and its readable prefix is still worth reading.
        reader = decord.VideoReader(path, num_threads=1)  # the pool is the parallelism
        length = len(reader)
        if length < 1:
            raise ValueError("0 frames")
        timing = _decord_timing(reader, length)
        indices = sampling.indices(length, timing[0])
        frames = reader.get_batch(indices).asnumpy()
        return frames, indices, length, timing
    except Exception as first_error:
        # The container's frame count is a promise, not a fact: fall back to the frames
        # that really decode, and sample those.
        reader = None
        try:
            return _read_readable_prefix(path, sampling, header)
        except Exception:
            raise first_error from None


def _resize(frames: np.ndarray, short_side: int) -> list[np.ndarray]:
    height, width = frames.shape[1:3]
    size = resized_size(height, width, short_side)
    if size == (height, width):
        return [np.ascontiguousarray(f) for f in frames]
    return [
        np.asarray(Image.fromarray(f).resize((size[1], size[0]), Image.Resampling.BILINEAR))
        for f in frames
    ]


def encode_jpeg(frame: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def decode_video(
    video_id: str,
    path: str,
    sampling: Sampling | int,
    short_side: int,
    jpeg_quality: int | None = None,
    keep_arrays: bool = True,
) -> DecodedVideo:
    """Decode, sample and resize one video; never raises for a bad video.

    keep_arrays=False returns the JPEG frames without the raw arrays: the frames stage
    stores only the JPEGs, the raw frames are about 6x their bytes, and pickling them back
    through the pool's pipe took about a tenth of a worker's time.
    """
    file = Path(path)
    if not file.is_file():
        return failed(video_id, "file not found")
    if file.stat().st_size == 0:
        return failed(video_id, "empty file (0 bytes)")
    with _captured_fd2() as decoder_log:
        try:
            raw, indices, length, (fps, duration) = _read_frames(str(file), as_sampling(sampling))
        except Exception as err:
            return failed(video_id, describe_error(err, decoder_log(), str(file)))
    duration, note = checked_duration(length, fps, duration)
    frames = _resize(raw, short_side)
    jpeg = None if jpeg_quality is None else [encode_jpeg(f, jpeg_quality) for f in frames]
    size = (int(frames[0].shape[0]), int(frames[0].shape[1]))
    if jpeg is not None and not keep_arrays:
        frames = None
    return DecodedVideo(video_id, frames, indices, length, error=None, jpeg=jpeg, size=size,
                        source_fps=fps, source_duration_s=duration, note=note)


# The frames stage's decoder: JPEGs only (a partial of a top-level function still pickles).
decode_video_jpeg_only = functools.partial(decode_video, keep_arrays=False)


# ---------------------------------------------------------------- the worker pool


class _WorkerPool:
    """A process pool that can be thrown away and rebuilt after a crash or a hang."""

    def __init__(self, workers: int):
        self.workers = workers
        self._executor: ProcessPoolExecutor | None = None

    def submit(self, fn, *args) -> Future:
        if self._executor is None:
            # spawn, not fork: the parent may hold torch/CUDA or threads that fork would copy.
            context = multiprocessing.get_context("spawn")
            self._executor = ProcessPoolExecutor(self.workers, mp_context=context)
        return self._executor.submit(fn, *args)

    def kill(self) -> None:
        """Stop every worker now, including one stuck inside a decoder."""
        if self._executor is None:
            return
        # ProcessPoolExecutor has no public way to kill a busy worker before Python 3.14.
        for process in list((self._executor._processes or {}).values()):
            with contextlib.suppress(Exception):
                process.kill()
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._executor = None

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


def decode_videos(
    items: Iterable[tuple[str, str]],
    sampling: Sampling | int,
    short_side: int,
    workers: int,
    *,
    jpeg_quality: int | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_in_flight: int | None = None,
    decode_fn: Callable[..., DecodedVideo] = decode_video,
) -> Iterator[DecodedVideo]:
    """Decode (video_id, path) items in worker processes; yield results in input order.

    At most `max_in_flight` (default 2 x workers) videos are queued or decoding at any
    time, so memory does not grow with the dataset. A worker that dies (a segfault in
    the decoder) breaks the pool: the pool is rebuilt and the videos that were in flight
    are retried one at a time, so only the culprit is recorded, as "decoder crashed". A
    video that takes longer than `timeout_s` is recorded as timed out and its worker killed.

    `workers=0` decodes in this process, without that protection (for profiling).
    `decode_fn` must be a picklable top-level function with `decode_video`'s signature.

    Workers are spawned, so they re-import the caller's main module: a script that calls
    this must keep its work under `if __name__ == "__main__":`.
    """
    args = (as_sampling(sampling), short_side, jpeg_quality)
    if workers <= 0:
        for video_id, path in items:
            yield _guarded_call(decode_fn, video_id, path, *args)
        return

    limit = max_in_flight or 2 * workers
    pool = _WorkerPool(workers)
    pending: collections.deque[tuple[tuple[str, str], Future]] = collections.deque()
    source = iter(items)

    def submit(item: tuple[str, str]) -> Future:
        try:
            return pool.submit(decode_fn, *item, *args)
        except BrokenProcessPool as err:
            # A worker died since the last result: the executor refuses new work at once.
            # A future that fails the same way puts this video among the suspects that the
            # loop below retries one by one, instead of raising out of the stream.
            refused: Future = Future()
            refused.set_exception(err)
            return refused

    def top_up() -> None:
        while len(pending) < limit:
            item = next(source, None)
            if item is None:
                return
            pending.append((item, submit(item)))

    def outcome(item: tuple[str, str], future: Future) -> DecodedVideo:
        """The result of a finished future; a decode_fn that raised still gives a row."""
        try:
            return future.result(timeout=timeout_s)
        except (BrokenProcessPool, FutureTimeout):
            raise
        except Exception as err:
            return failed(item[0], f"decode error: {type(err).__name__}: {err}"[:300])

    def run_alone(item: tuple[str, str]) -> DecodedVideo:
        """Decode one suspect with nothing else in flight, so a crash names it."""
        try:
            return outcome(item, submit(item))
        except BrokenProcessPool:
            pool.kill()
            return failed(item[0], "decoder crashed")
        except FutureTimeout:
            pool.kill()
            return failed(item[0], f"decoder timed out after {timeout_s:g} s")

    try:
        top_up()
        while pending:
            item, future = pending.popleft()
            try:
                # The pool runs work first-in first-out, so the head has been running
                # (or is about to) for the whole of this wait.
                result = outcome(item, future)
            except FutureTimeout:
                logger.warning("decoder timed out on %s; restarting the worker pool", item[0])
                survivors = list(pending)
                pending.clear()
                pool.kill()
                yield failed(item[0], f"decoder timed out after {timeout_s:g} s")
                # The others were not at fault: keep their results, redo the rest together.
                for other, other_future in survivors:
                    pending.append(
                        (other, other_future if _succeeded(other_future) else submit(other))
                    )
                continue
            except BrokenProcessPool:
                logger.warning("a decode worker died; retrying the videos in flight one by one")
                suspects = [(item, future), *pending]
                pending.clear()
                pool.kill()
                for suspect, suspect_future in suspects:
                    yield (
                        suspect_future.result()
                        if _succeeded(suspect_future)
                        else run_alone(suspect)
                    )
                top_up()
                continue
            yield result
            top_up()
    finally:
        # Also reached when the consumer stops early: do not wait for queued work.
        if pending:
            pool.kill()
        else:
            pool.close()


def _succeeded(future: Future) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


def _guarded_call(decode_fn, video_id: str, *args) -> DecodedVideo:
    try:
        return decode_fn(video_id, *args)
    except Exception as err:
        return failed(video_id, f"decode error: {type(err).__name__}: {err}"[:300])


# ---------------------------------------------------------------- the I/O edge


def frames_row(video: DecodedVideo) -> dict:
    """A decoded video as a row of the frames shard contract."""
    size = video.size or (video.frames[0].shape[:2] if video.frames else None)
    if video.jpeg is None or size is None:
        raise ValueError(f"{video.video_id}: no JPEG frames to store")
    height, width = size
    return {
        "video_id": video.video_id,
        "frame_indices": video.frame_indices,
        "jpeg": video.jpeg,
        "height": height,
        "width": width,
        "num_source_frames": video.num_source_frames,
        "source_fps": video.source_fps,
        "source_duration_s": video.source_duration_s,
    }


def run_frames_stage(
    manifest_path: str | os.PathLike,
    out_path: str | os.PathLike,
    failures_path: str | os.PathLike,
    shard: str,
    sampling: Sampling | int,
    short_side: int,
    jpeg_quality: int,
    workers: int,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    row_group_videos: int = ROW_GROUP_VIDEOS,
    decode_fn: Callable[..., DecodedVideo] = decode_video_jpeg_only,
) -> dict[str, int]:
    """Decode one shard of a manifest into a frames Parquet and a failures Parquet.

    Each video has `timeout_s` to decode: past it its worker is killed (a decoder can spin
    in native code holding the GIL, dmlc/decord#373) and the video is recorded as failed.
    `decode_fn` is decode_videos' (a picklable function with decode_video's signature).
    Returns the counts it logs: videos, decoded, failed.
    """
    index, total = parse_shard_id(shard)
    manifest = pq.read_table(manifest_path, columns=["video_id", "path", "exists"])
    items = videos_for_shard(manifest, index, total)
    sampling = as_sampling(sampling)
    # `protocol` is what a record downstream reports as the frames it was computed from.
    settings = {
        "num_frames": sampling.total,
        "short_side": short_side,
        "jpeg_quality": jpeg_quality,
        "sampling": SAMPLING_RULES[sampling.rule],
        "protocol": sampling.record(),
    }
    prov = provenance(settings, extra={"stage": "frames", "shard": shard, **settings})

    started = time.monotonic()
    failures: list[dict[str, str]] = []
    rows: list[dict] = []
    decoded = decode_videos(
        items,
        sampling,
        short_side,
        workers,
        jpeg_quality=jpeg_quality,
        timeout_s=timeout_s,
        decode_fn=decode_fn,
    )
    with (
        contextlib.closing(decoded),
        ParquetStreamWriter(out_path, FRAMES_SCHEMA, provenance=prov) as writer,
        tqdm(total=len(items), desc=f"frames {shard}", unit="video", mininterval=2) as bar,
    ):
        for video in decoded:
            if video.note:  # logged here: a worker's stderr is captured while it decodes
                logger.warning("%s: %s", video.video_id, video.note)
            if video.ok:
                rows.append(frames_row(video))
            else:
                failures.append(
                    {
                        "video_id": video.video_id,
                        "stage": "frames",
                        "reason": video.error or "unknown error",
                    }
                )
            if len(rows) >= row_group_videos:
                writer.write_rows(rows)
                rows = []
            bar.update()
        writer.write_rows(rows)
    write_parquet(failures_table(failures), failures_path, provenance=prov)

    seconds = time.monotonic() - started
    counts = {"videos": len(items), "decoded": len(items) - len(failures), "failed": len(failures)}
    logger.info(
        "frames shard=%s videos=%d decoded=%d failed=%d workers=%d seconds=%.1f (%.1f videos/s)",
        shard,
        counts["videos"],
        counts["decoded"],
        counts["failed"],
        workers,
        seconds,
        counts["videos"] / seconds if seconds > 0 else 0.0,
    )
    for failure in failures:
        logger.info("failed %s: %s", failure["video_id"], failure["reason"])
    return counts


# ---------------------------------------------------------------- reading a frames shard
# The one place that reads the frames contract: captions, the embedding stage, zsar predict
# and the report all decode shards through these.


def shard_columns(shard_path: str | os.PathLike, wanted: Iterable[str]) -> list[str]:
    """The columns of `wanted` that a frames shard has: shards written before a column was
    added to the contract lack it, and their readers fall back to a default."""
    names = set(pq.ParquetFile(shard_path).schema_arrow.names)
    return [name for name in wanted if name in names]


def decode_jpeg(data: bytes):
    """One stored frame as an RGB PIL image."""
    image = Image.open(io.BytesIO(data))
    # convert("RGB") copies even an RGB image; this stage writes RGB, so skip the copy.
    if image.mode == "RGB":
        image.load()
        return image
    return image.convert("RGB")


def decode_jpegs(jpegs: Iterable[bytes]) -> list:
    return [decode_jpeg(data) for data in jpegs]


def iter_shard_batches(
    shard_path: str | os.PathLike, columns: Iterable[str], batch_videos: int = ROW_GROUP_VIDEOS
) -> Iterator[dict[str, list]]:
    """A frames shard's `columns` as lists, `batch_videos` videos at a time, in shard order;
    memory holds one batch, however large the shard."""
    columns = list(columns)
    shard = pq.ParquetFile(shard_path)
    for batch in shard.iter_batches(batch_size=max(1, batch_videos), columns=columns):
        yield {name: batch.column(name).to_pylist() for name in columns}


def read_frames(shard_path: str | os.PathLike) -> Iterator[tuple[str, list]]:
    """(video_id, [PIL RGB images]) for each video of a frames shard, one batch at a time."""
    for batch in iter_shard_batches(shard_path, ["video_id", "jpeg"]):
        for video_id, jpegs in zip(batch["video_id"], batch["jpeg"], strict=True):
            yield video_id, decode_jpegs(jpegs)
