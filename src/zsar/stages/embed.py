"""Embedding stage: video embeddings from frames shards, text embeddings of classes and captions.

Video side: DataLoader worker processes read the frames shard in blocks of a few videos
(worker w of n takes blocks w, w+n, ..., so even a one-row-group shard keeps every worker
busy and blocks come back in shard order). On the CPU they decode the JPEGs and run the PIL
steps of the backbone's transform (resize, crop) and send uint8 frames; on a GPU they send
the JPEG bytes, and the main process decodes and resizes each block on the card
(zsar.models.device_frames, FRAME_PATHS). Either way the main process packs the uint8 frames
into passes of exactly `batch_frames` frames, turns each pass into normalised floats on
the model's device (bit-identical to the transform's ToTensor + Normalize) and encodes
it while the workers prepare the next blocks. On CUDA the workers' blocks arrive in
pinned memory and are copied to the GPU as uint8 as soon as they arrive. Each video's
embedding pools its frames as the backbone's checkpoint does (POOLINGS), per view, and
averages its views (Views: temporal clips x spatial crops; 1x1 by default). Results
stream to Parquet, and the pass buffers are reused, so memory does not grow with the
shard (benchmarks/embed_memory.py). On a CPU the encoding process leaves the workers their
cores unless it is clearly the slower side (encoder_threads), because its threads and busy
workers on the same cores stall each other.
"""

from __future__ import annotations

import collections
import logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from zsar.core.protocol import DEFAULT_POOLING  # also the workflow's, via this module
from zsar.data.io import ParquetStreamWriter, read_provenance
from zsar.models.device_frames import decode_jpegs as decode_on_device
from zsar.models.device_frames import (
    device_preprocess,
    jpeg_buffer,
    normalise_frames,
    resize_frames,
)
from zsar.stages.frames import decode_jpegs

logger = logging.getLogger(__name__)

VIDEO_EMBEDDING_SCHEMA = pa.schema(
    [("video_id", pa.string()), ("vector", pa.list_(pa.float32())), ("num_frames", pa.int32())]
)
# Frames per forward pass, by device type. On a GPU a pass of 512 frames keeps the card
# busy between passes (ViT-B/16: about 50 ms) and fits ViT-L/14-336 in fp16 on a 16 GB
# card. On the CPU, passes of 64 encode fastest: ViT-B/32 on 2 cores gave 21.0 frames/s
# at 64 and 18.7 at 256, whose activations no longer fit in the caches.
BATCH_FRAMES = {"cuda": 512, "cpu": 64}
# Where JPEG frames are decoded and resized, by device type. On a GPU, in batches on the card
# (nvJPEG and tensor resizing): the CPU stays free for the decode pool, and the pixels are
# within a grey level or two of PIL's (zsar.models.device_frames). On the CPU, in the DataLoader
# workers with PIL: the transform's exact pixels.
FRAME_PATHS = {"cuda": "device", "cpu": "workers"}
# On a CPU, the encoding process takes every thread only when its decode workers are at least
# this many times faster than it (ViT-B-32 on 2 cores: 30 to 100 times; the tiny CLIP: slower).
ENCODE_BOUND = 8


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


# How a view's frame embeddings [T, D] become its embedding, as each checkpoint's own
# evaluation pools them. normalise_then_mean: CLIP's frame-wise zero-shot protocol (Open-VCLIP
# and FROSTER average per-frame cosine logits, slowfast/models/clip_video_model.py, which ranks
# classes as the mean of unit frame embeddings does). mean_then_normalise: ViFi-CLIP and
# ActionCLIP average the raw frame features, then normalise (trainers/vificlip.py forward;
# ActionCLIP's meanP fusion).
POOLINGS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "normalise_then_mean": lambda frames: _unit(frames).mean(axis=-2),
    "mean_then_normalise": lambda frames: _unit(frames.mean(axis=-2)),
}


@dataclass(frozen=True)
class Views:
    """Test-time views of a video: `clips` temporal clips x `crops` spatial crops.

    The frames stage samples clips x num_frames TSN frames, clip-major: the centres of
    clips x num_frames equal segments, which are exactly num_frames TSN frames of each of
    `clips` consecutive equal parts of the video. The embedding stage cuts each frame into
    `crops` squares (SPATIAL_CROPS), so a video's frame embeddings come as [clip, frame,
    crop]. Each view (clip, crop) is pooled on its own; the video's embedding is the
    normalised mean of its views' embeddings. For normalise_then_mean that is the mean of
    every unit frame embedding; for mean_then_normalise each view is normalised first.
    """

    clips: int = 1
    crops: int = 1

    @classmethod
    def from_config(cls, frames: Mapping[str, Any]) -> Views:
        views = frames.get("views") or {}
        return cls(int(views.get("clips", 1)), int(views.get("crops", 1)))

    @property
    def count(self) -> int:
        return self.clips * self.crops


def video_embedding(
    frame_embeddings: np.ndarray, views: Views = Views(), pooling: str = DEFAULT_POOLING
) -> np.ndarray:
    """A video's embedding from its frame embeddings [clips x frames x crops, D]."""
    frames = np.asarray(frame_embeddings)
    if len(frames) % views.count:
        raise ValueError(
            f"{len(frames)} frame embeddings do not divide into {views.clips} clips x "
            f"{views.crops} crops"
        )
    per_view = frames.reshape(views.clips, -1, views.crops, frames.shape[-1]).swapaxes(1, 2)
    pooled = POOLINGS[pooling](per_view)  # [clips, crops, D]
    return _unit(pooled.reshape(-1, frames.shape[-1]).mean(axis=0))


def mean_frame_embedding(frame_embeddings: np.ndarray) -> np.ndarray:
    """One view, normalise_then_mean: the L2-normalised mean of unit frame embeddings."""
    return video_embedding(frame_embeddings)


def _square_crops(image, crops: int) -> list:
    """`crops` squares of the frame's short side, spread evenly along its long side
    (3: start, centre, end, as the field's three-crop test views)."""
    width, height = image.size
    side = min(width, height)
    offsets = [round(i * (max(width, height) - side) / (crops - 1)) for i in range(crops)]
    if width >= height:
        return [image.crop((x, 0, x + side, side)) for x in offsets]
    return [image.crop((0, y, side, y + side)) for y in offsets]


# crops -> a frame's spatial views, each then given the backbone's own transform (its resize
# and centre crop). One view: the whole frame.
SPATIAL_CROPS: dict[int, Callable[[Any], list]] = {
    1: lambda image: [image],
    3: lambda image: _square_crops(image, 3),
}


# ---------------------------------------------------------------- preprocessing split


@dataclass(frozen=True)
class SplitTransform:
    """A backbone transform cut in two: PIL steps per frame, then ToTensor + Normalize per batch.

    Workers run `pil` (resize, crop) and send uint8 frames; the main process turns a whole
    batch into normalised floats on the model's device. Same arithmetic as the transform
    itself (uint8 -> float32, /255, -mean, /std), so the pixels are bit-identical, but the
    workers skip the float work and send 4x fewer bytes, and on CUDA the copy to the GPU
    is of uint8 from pinned memory.
    """

    pil: Callable
    mean: tuple[float, ...]
    std: tuple[float, ...]


def split_transform(transform) -> SplitTransform | None:
    """The split of a torchvision Compose ending in ToTensor + Normalize; None for others."""
    # lazy: torch loads only where a model runs
    from torchvision import transforms as T

    steps = list(getattr(transform, "transforms", []))
    if len(steps) < 2 or not isinstance(transform, T.Compose):
        return None
    to_tensor, normalize = steps[-2:]
    if not isinstance(to_tensor, T.ToTensor) or not isinstance(normalize, T.Normalize):
        return None
    return SplitTransform(
        T.Compose(steps[:-2]),
        tuple(float(m) for m in normalize.mean),
        tuple(float(s) for s in normalize.std),
    )


def uint8_frames(images: list, pil_steps: Callable):
    """[N, 3, H, W] uint8 tensor of PIL images after the PIL steps of a transform."""
    # lazy: torch loads only where a model runs
    import torch

    arrays = [np.asarray(pil_steps(image)) for image in images]
    # ToTensor makes its CHW copy contiguous; so do we, so the model sees the same layout.
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


# ---------------------------------------------------------------- reading a frames shard


def shard_blocks(row_groups: list[int], block_videos: int) -> list[tuple[int, int, int]]:
    """(row group, first row, end row) slices of at most `block_videos` rows, in shard order.

    Blocks, not row groups, are the unit of work, so a shard of one big row group still
    keeps every worker busy.
    """
    blocks = []
    for group, rows in enumerate(row_groups):
        blocks += [(group, s, min(s + block_videos, rows)) for s in range(0, rows, block_videos)]
    return blocks


def _shard_blocks_dataset(
    shard_path: str, block_videos: int, prepare: Callable, images_per_frame: int = 1
):
    """An IterableDataset of blocks: (video_ids, images per video, prepare(JPEGs per video),
    CPU seconds the block took to read and prepare); `prepare` makes `images_per_frame`
    images of each frame (its spatial crops).

    Worker w of n takes blocks w, w+n, ...; the DataLoader asks the workers in turn, so
    blocks come back in shard order whatever the number of workers.
    """
    # lazy: torch loads only where a model runs
    import torch

    class FramesShard(torch.utils.data.IterableDataset):
        def __iter__(self):
            info = torch.utils.data.get_worker_info()
            worker, workers = (info.id, info.num_workers) if info else (0, 1)
            parquet = pq.ParquetFile(shard_path)
            sizes = [parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)]
            cached: tuple[int, Any] = (-1, None)
            for group, start, end in shard_blocks(sizes, block_videos)[worker::workers]:
                started = time.process_time()
                if cached[0] != group:  # consecutive blocks of one worker often share a group
                    cached = (group, parquet.read_row_group(group, columns=["video_id", "jpeg"]))
                table = cached[1].slice(start, end - start)
                video_ids = table.column("video_id").to_pylist()
                jpegs = table.column("jpeg").to_pylist()
                payload = prepare(jpegs)
                busy = time.process_time() - started
                counts = [len(frames) * images_per_frame for frames in jpegs]
                yield video_ids, counts, payload, busy

    return FramesShard()


def _frames_dataset(shard_path: str, transform, block_videos: int, crops: int = 1):
    """Blocks of pixels: workers decode the JPEGs, cut each frame into its `crops` spatial
    views (SPATIAL_CROPS) and run the transform's PIL steps on each.

    With a split transform the pixels are uint8 (normalised later, per pass); otherwise
    they are the transform's own output.
    """
    # lazy: torch loads only where a model runs
    import torch

    split = split_transform(transform)
    cut = SPATIAL_CROPS[crops]

    def pixels(jpegs: list[list[bytes]]):
        flat = [view for frames in jpegs for image in decode_jpegs(frames) for view in cut(image)]
        if split is not None:
            return uint8_frames(flat, split.pil)
        return torch.stack([transform(image) for image in flat])

    return _shard_blocks_dataset(shard_path, block_videos, pixels, crops), split


def _jpeg_dataset(shard_path: str, block_videos: int):
    """Blocks of JPEG bytes, one buffer per block, for decoding on the model's device."""
    def buffer(jpegs: list[list[bytes]]):
        return jpeg_buffer([jpeg for frames in jpegs for jpeg in frames])

    return _shard_blocks_dataset(shard_path, block_videos, buffer)


class FrameBatcher:
    """Packs the frames of consecutive videos into forward passes of exactly `size` frames.

    Frames are copied into one staging buffer that is reused for every pass, so the
    encoding process allocates the same sizes pass after pass and its memory stays flat:
    passes of varying size, or buffers of varying size kept alive between passes, leave
    glibc's heap (and CUDA's cache) holding a growing spread of block sizes. A video's
    frames may straddle two passes; its embedding is emitted once all of them are
    encoded, in input order. `first`, if given, is the size of the first pass only (a
    short one to time the encoder by).
    """

    def __init__(
        self,
        size: int,
        encode: Callable[[Any], np.ndarray],
        first: int | None = None,
        pool: Callable[[np.ndarray], np.ndarray] = mean_frame_embedding,
    ):
        self.size = size
        self.pool = pool  # a video's frame embeddings -> its embedding
        self._pass = min(first or size, size)  # frames of the next pass
        self.encode = encode  # pixels [N, ...] -> frame embeddings [N, D]
        self._staging: Any = None  # [size, ...] tensor, made at the first frames
        self._filled = 0
        self._videos: collections.deque[tuple[str, int]] = collections.deque()
        self._encoded: list[np.ndarray] = []  # frame embeddings not yet given to a video
        self._ready = 0  # rows in _encoded

    def feed(
        self, video_ids: list[str], counts: list[int], pixels
    ) -> Iterator[tuple[str, np.ndarray, int]]:
        """Queue one block's frames; encode each pass they fill; yield finished videos."""

        if sum(counts) != len(pixels) or min(counts, default=1) < 1:
            raise ValueError(f"frame counts {counts} do not fit {len(pixels)} frames")
        self._videos.extend(zip(video_ids, counts, strict=True))
        self._reserve(self._filled + len(pixels), pixels)
        start = 0
        while start < len(pixels):
            take = min(self._pass - self._filled, len(pixels) - start)
            stop = self._filled + take
            self._staging[self._filled : stop].copy_(pixels[start : start + take], True)
            self._filled, start = stop, start + take
            if self._filled == self._pass:
                yield from self._encode_staged()

    def _reserve(self, frames: int, like) -> None:
        """Grow the staging buffer to `frames` frames (at most one pass), keeping its content."""
        # lazy: torch loads only where a model runs
        import torch

        capacity = 0 if self._staging is None else len(self._staging)
        if frames <= capacity:
            return
        capacity = min(self.size, max(frames, 2 * capacity))
        staging = torch.empty((capacity, *like.shape[1:]), dtype=like.dtype, device=like.device)
        if self._filled:
            staging[: self._filled].copy_(self._staging[: self._filled])
        self._staging = staging

    def finish(self) -> Iterator[tuple[str, np.ndarray, int]]:
        """Encode the last, partial pass and yield the videos still waiting."""
        if self._filled:
            yield from self._encode_staged()
        if self._videos:
            raise RuntimeError(f"{len(self._videos)} videos were left without frames")

    def _encode_staged(self) -> Iterator[tuple[str, np.ndarray, int]]:
        self._encoded.append(self.encode(self._staging[: self._filled]))
        self._ready += self._filled
        self._filled, self._pass = 0, self.size
        frames = np.concatenate(self._encoded) if len(self._encoded) > 1 else self._encoded[0]
        start = 0
        while self._videos and self._videos[0][1] <= self._ready - start:
            video_id, count = self._videos.popleft()
            yield video_id, self.pool(frames[start : start + count]), count
            start += count
        self._encoded = [frames[start:]] if start < len(frames) else []
        self._ready -= start


def default_batch_frames(device) -> int:
    kind = str(device).split(":")[0]
    return BATCH_FRAMES.get(kind, BATCH_FRAMES["cpu"])


def frame_path(backbone, requested: str | None = None) -> str:
    """Where JPEG frames become model input: FRAME_PATHS by device unless `requested`.

    A backbone whose preprocessing has no tensor form (e.g. lanczos) stays on the workers.
    """
    kind = str(backbone.device).split(":")[0]
    path = requested or FRAME_PATHS.get(kind, "workers")
    if path not in ("workers", "device"):
        raise ValueError(f"frame path must be 'workers' or 'device', not '{path}'")
    if path == "device" and device_preprocess(backbone.preprocess_cfg) is None:
        logger.info("%s: preprocessing %s has no tensor form; decoding in workers",
                 backbone.name, backbone.preprocess_cfg)  # fmt: skip
        return "workers"
    return path


def encoder_threads(decode_fps: float, encode_fps: float, threads: int, workers: int) -> int:
    """Intra-op threads for the encoding process when its decode workers share the CPU.

    `encode_fps` is the encoder's rate with the workers' cores left to them (threads -
    workers threads, at least one), `decode_fps` what the workers decode together. Only an
    encoder several times slower than the workers (ENCODE_BOUND) gets all `threads`: the
    workers then sit idle most of the time. Otherwise it stays clear of the workers' cores:
    its threads would compete with busy workers, stall at every operation's barrier and spin
    in between, which slowed the stage 2-4 times with the tiny CLIP on 2 cores
    (benchmarks/RESULTS.md), and such an encoder, slowed down, never waits for blocks, so
    nothing would show the mistake.
    """
    if decode_fps >= ENCODE_BOUND * encode_fps:
        return threads
    return max(1, threads - workers)


class _ThreadBalance:
    """Chooses the encoding process's threads once, after its first (short) pass.

    The first pass runs with the workers' cores left to them, which makes its timing a fair
    measure of the encoder at that count; the workers report the CPU seconds each block
    took, a measure of their rate that waiting does not distort. `start` leaves the workers
    their cores, `restore` puts the process's thread count back.
    """

    def __init__(self, workers: int):
        # lazy: torch loads only where a model runs
        import torch

        self.threads = torch.get_num_threads()
        self.workers = workers
        self.block_frames = 0
        self.block_seconds = 0.0
        self.decided = False

    def start(self) -> None:
        # lazy: torch loads only where a model runs
        import torch

        torch.set_num_threads(max(1, self.threads - self.workers))

    def block_done(self, frames: int, cpu_seconds: float) -> None:
        self.block_frames += frames
        self.block_seconds += cpu_seconds

    def pass_done(self, frames: int, seconds: float) -> None:
        # lazy: torch loads only where a model runs
        import torch

        if self.decided or not self.block_seconds or not seconds:
            return
        self.decided = True
        decode_fps = min(self.workers, self.threads) * self.block_frames / self.block_seconds
        threads = encoder_threads(decode_fps, frames / seconds, self.threads, self.workers)
        logger.info("workers decode %.0f frames/s, the encoder runs %.0f: %d encoding thread(s)",
                 decode_fps, frames / seconds, threads)  # fmt: skip
        torch.set_num_threads(threads)

    def restore(self) -> None:
        # lazy: torch loads only where a model runs
        import torch

        torch.set_num_threads(self.threads)


def iter_video_embeddings(
    shard_path: str | Path,
    backbone,
    *,
    batch_frames: int | None = None,
    workers: int = 0,
    block_videos: int = 8,
    frames_on: str | None = None,
    views: Views = Views(),
    pooling: str = DEFAULT_POOLING,
) -> Iterator[tuple[str, np.ndarray, int]]:
    """Yield (video_id, embedding, num_frames) for every video of a frames shard, in order.

    Each video's frames are pooled by `pooling` (POOLINGS) per view and its `views` averaged.

    Workers read blocks of `block_videos` videos while the model encodes passes of exactly
    `batch_frames` frames (the last one may be smaller; default: by device, BATCH_FRAMES).
    `frames_on` says where the JPEGs are decoded and resized (default by device,
    FRAME_PATHS): "workers", in the worker processes with PIL (the transform's exact
    pixels), or "device", in batches on the model's device (zsar.models.device_frames).
    """
    # lazy: torch loads only where a model runs
    import torch

    if pooling not in POOLINGS or views.crops not in SPATIAL_CROPS:
        raise ValueError(f"pooling must be one of {sorted(POOLINGS)} and crops one of "
                         f"{sorted(SPATIAL_CROPS)}; got {pooling!r}, {views.crops}")
    on_cuda = str(backbone.device).startswith("cuda")
    # The device path decodes whole frames; spatial crops are cut in the workers.
    path = frame_path(backbone, frames_on) if views.crops == 1 else "workers"
    if path == "device":
        pp = device_preprocess(backbone.preprocess_cfg)
        dataset = _jpeg_dataset(str(shard_path), block_videos)
        norm: Any = pp

        def to_pixels(block):
            return resize_frames(decode_on_device(*block, backbone.device), pp)
    else:
        dataset, norm = _frames_dataset(
            str(shard_path), backbone.transform, block_videos, views.crops
        )

        def to_pixels(block):
            # On CUDA, copy each block as it arrives (uint8, from pinned memory), overlapping
            # the wait for the next one; the pass then runs on frames already on the GPU.
            return block.to(backbone.device, non_blocking=True) if on_cuda else block

    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=None,
        num_workers=workers,
        pin_memory=on_cuda,
        # Bounded: at most workers x 2 blocks wait in memory, however large the shard.
        prefetch_factor=2 if workers else None,
        persistent_workers=False,
    )

    reused: list[Any] = []  # the float32 pass, allocated once, like the batcher's staging
    # On a CPU shared with decode workers, the thread count follows which side is the limit.
    # (On the device path the workers only read the shard.)
    on_cpu = str(backbone.device) == "cpu"
    balance = _ThreadBalance(workers) if workers and on_cpu and path == "workers" else None

    def encode(pixels) -> np.ndarray:
        started = time.perf_counter()
        if norm is not None:
            out = reused[0] if reused and len(reused[0]) >= len(pixels) else None
            pixels = normalise_frames(pixels, norm, backbone.device, out=out)
            if out is None:
                reused[:] = [pixels]
        embeddings = backbone.image_features(pixels).numpy()  # raw: pooled by its rule
        if balance is not None:
            balance.pass_done(len(pixels), time.perf_counter() - started)
        return embeddings

    size = batch_frames or default_batch_frames(backbone.device)
    # On a CPU a short first pass times the encoder at little cost. It is short with or
    # without workers, so the passes do not depend on the number of workers.
    batcher = FrameBatcher(
        size, encode, first=max(1, size // 8) if on_cpu else None,
        pool=lambda frames: video_embedding(frames, views, pooling),
    )
    try:
        if balance is not None:
            balance.start()
        for video_ids, counts, block, cpu_seconds in loader:
            if balance is not None:
                balance.block_done(sum(counts), cpu_seconds)
            yield from _frames_not_crops(batcher.feed(video_ids, counts, to_pixels(block)), views)
        yield from _frames_not_crops(batcher.finish(), views)
    finally:
        if balance is not None:
            balance.restore()


def _frames_not_crops(videos: Iterator[tuple[str, np.ndarray, int]], views: Views):
    """The batcher counts images; a video's num_frames counts its frames."""
    for video_id, vector, images in videos:
        yield video_id, vector, images // views.crops


def video_protocol(
    frames_provenance: Mapping[str, Any], views: Views, pooling: str, where: Any = "frames"
) -> dict[str, Any]:
    """The protocol of video embeddings made from a frames shard with these views and this
    pooling. A shard written without a `protocol` (by hand, or before zsar recorded one)
    leaves the frames' fields unknown (None), which a score job then refuses."""
    frames = dict(frames_provenance.get("protocol") or {"sampling": None, "num_frames": None,
                                                           "clips": None})
    if frames["clips"] is not None and frames["clips"] != views.clips:
        raise ValueError(
            f"{where}: its frames were sampled as {frames['clips']} clip(s), but the views "
            f"ask for {views.clips}: decode the frames again with frames.views.clips = "
            f"{views.clips}"
        )
    return {"frames": frames, "views": {"clips": views.clips, "crops": views.crops},
            "pooling": pooling}


def run_video_embedding_stage(
    frames_shard: str | Path,
    out_path: str | Path,
    backbone,
    *,
    batch_frames: int | None = None,
    workers: int = 0,
    provenance: Mapping[str, Any] | None = None,
    progress=None,
    frames_on: str | None = None,
    views: Views = Views(),
    pooling: str = DEFAULT_POOLING,
) -> int:
    """Embed every video of a frames shard and stream the rows to `out_path`.

    The output's provenance carries a `protocol` block read from what was done, not from a
    config: the frames' sampling as the shard's own provenance states it, the views and the
    pooling; a shard sampled with another number of clips than `views` asks for is refused.
    """
    protocol = video_protocol(read_provenance(frames_shard), views, pooling, frames_shard)
    total = pq.ParquetFile(str(frames_shard)).metadata.num_rows
    bar = tqdm(total=total, unit="video", file=progress or sys.stderr, mininterval=5)
    rows: list[dict[str, Any]] = []
    provenance = {**(provenance or {}), "protocol": protocol}
    with ParquetStreamWriter(out_path, VIDEO_EMBEDDING_SCHEMA, provenance) as writer:
        for video_id, vector, count in iter_video_embeddings(
            frames_shard,
            backbone,
            batch_frames=batch_frames,
            workers=workers,
            frames_on=frames_on,
            views=views,
            pooling=pooling,
        ):
            rows.append(
                {"video_id": video_id, "vector": vector.astype(np.float32), "num_frames": count}
            )
            bar.update(1)
            if len(rows) >= 512:
                writer.write_rows(rows)
                rows = []
        writer.write_rows(rows)
        written = writer.rows
    bar.close()
    logger.info("embedded %d videos from %s", written, frames_shard)
    return written
