"""Video embedding stage: blocks, fixed-size passes, the split transform, order and flat buffers."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from zsar.stages.embed import (
    FrameBatcher,
    iter_video_embeddings,
    mean_frame_embedding,
    normalise_frames,
    shard_blocks,
    split_transform,
    uint8_frames,
)
from zsar.stages.frames import FRAMES_SCHEMA, decode_video, decode_video_jpeg_only, frames_row

# ---------------------------------------------------------------- blocks of a shard


def test_blocks_cover_every_row_once_in_order():
    blocks = shard_blocks([16, 5, 0, 9], block_videos=8)
    assert blocks == [(0, 0, 8), (0, 8, 16), (1, 0, 5), (3, 0, 8), (3, 8, 9)]


# ---------------------------------------------------------------- fixed-size passes


def _video_frames(counts: list[int]) -> tuple[list[str], torch.Tensor]:
    """Videos whose frame k of video v is the value 100 * v + k, so passes can be traced."""
    ids = [f"v{v}" for v in range(len(counts))]
    values = [100 * v + k for v, n in enumerate(counts) for k in range(n)]
    return ids, torch.tensor(values, dtype=torch.float32)[:, None]


def test_passes_have_exactly_the_batch_size_and_videos_keep_their_order():
    counts = [3, 5, 2, 7, 1, 4]  # 22 frames, passes of 4: straddling videos
    ids, pixels = _video_frames(counts)
    passes = []

    def encode(batch):
        passes.append(batch.clone())
        return np.concatenate([batch.numpy(), np.ones_like(batch.numpy())], axis=1)

    batcher = FrameBatcher(4, encode)
    out = []
    # Two blocks of uneven size, as DataLoader workers deliver them.
    out += batcher.feed(ids[:2], counts[:2], pixels[:8])
    out += batcher.feed(ids[2:], counts[2:], pixels[8:])
    out += batcher.finish()

    assert [len(p) for p in passes] == [4, 4, 4, 4, 4, 2]
    assert torch.equal(torch.cat(passes), pixels)  # every frame once, in order
    assert [v for v, _, _ in out] == ids
    assert [n for _, _, n in out] == counts
    start = 0
    for (_, vector, n), count in zip(out, counts, strict=True):
        frames = np.concatenate(
            [pixels[start : start + n].numpy(), np.ones((n, 1), np.float32)], axis=1
        )
        np.testing.assert_allclose(vector, mean_frame_embedding(frames), rtol=1e-6)
        start += count


def test_a_block_whose_counts_do_not_match_its_frames_is_an_error():
    batcher = FrameBatcher(4, lambda batch: batch.numpy())
    with pytest.raises(ValueError, match="do not fit"):
        list(batcher.feed(["a", "b"], [3, 3], torch.zeros(5, 1)))


# ---------------------------------------------------------------- the split transform


def _frames(count: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)) for _ in range(count)
    ]


@pytest.mark.parametrize("crop_pct", [1.0, 0.875])
def test_split_transform_gives_the_transforms_exact_pixels(crop_pct):
    from zsar.models.backbones import build_image_transform

    transform = build_image_transform({"size": 32, "crop_pct": crop_pct})
    split = split_transform(transform)
    assert split is not None
    images = _frames(3)
    expected = torch.stack([transform(image) for image in images])
    got = normalise_frames(uint8_frames(images, split.pil), split, "cpu")
    assert torch.equal(got, expected)
    # Into a reused buffer, as the stage does for every pass after the first.
    buffer = torch.full((5, *expected.shape[1:]), float("nan"))
    assert torch.equal(normalise_frames(uint8_frames(images, split.pil), split, "cpu", buffer),
                       expected)  # fmt: skip


def test_a_transform_that_is_not_a_compose_is_not_split():
    assert split_transform(lambda image: image) is None


# ---------------------------------------------------------------- the stage's order and values


class _TinyBackbone:
    """The interface the stage uses, around a fixed random projection (fast, deterministic)."""

    device = "cpu"

    def __init__(self):
        from zsar.models.backbones import build_image_transform

        self.transform = build_image_transform({"size": 16})
        self.projection = torch.randn(3 * 16 * 16, 8, generator=torch.Generator().manual_seed(0))

    def image_features(self, pixels):
        return pixels.reshape(len(pixels), -1) @ self.projection  # raw, as the real tower


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def frames_shard(tmp_path_factory):
    """21 videos of 1 to 4 frames in row groups of 8, as the frames stage writes them."""
    rng = np.random.default_rng(1)
    rows = []
    for v in range(21):
        count = int(rng.integers(1, 5))
        images = _frames(count, seed=v)
        rows.append({"video_id": f"video_{v:02d}", "frame_indices": list(range(count)),
                     "jpeg": [_jpeg(im) for im in images], "height": 48, "width": 64,
                     "num_source_frames": count})  # fmt: skip
    path = tmp_path_factory.mktemp("shard") / "000-of-001.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=FRAMES_SCHEMA), path, row_group_size=8)
    return path, rows


def _reference(rows, backbone) -> dict[str, np.ndarray]:
    """One video at a time through the full transform, as zsar predict does."""
    out = {}
    for row in rows:
        images = [Image.open(io.BytesIO(j)).convert("RGB") for j in row["jpeg"]]
        pixels = torch.stack([backbone.transform(image) for image in images])
        out[row["video_id"]] = mean_frame_embedding(backbone.image_features(pixels).numpy())
    return out


@pytest.mark.parametrize(("workers", "batch_frames", "block_videos"), [(0, 5, 3), (2, 8, 2)])
def test_stage_yields_shard_order_and_the_per_video_embedding(
    frames_shard, workers, batch_frames, block_videos
):
    path, rows = frames_shard
    backbone = _TinyBackbone()
    got = list(
        iter_video_embeddings(
            path, backbone, batch_frames=batch_frames, workers=workers, block_videos=block_videos
        )
    )
    assert [v for v, _, _ in got] == [row["video_id"] for row in rows]
    assert [n for _, _, n in got] == [len(row["jpeg"]) for row in rows]
    want = _reference(rows, backbone)
    for video_id, vector, _ in got:
        np.testing.assert_allclose(vector, want[video_id], atol=1e-5)


# ---------------------------------------------------------------- the frames stage's decoder


def test_jpeg_only_decoding_keeps_the_jpegs_and_the_size(demo_videos):
    path = str(demo_videos / "videos/sliding/sliding_0.mp4")
    full = decode_video("v", path, 4, 32, jpeg_quality=90)
    light = decode_video_jpeg_only("v", path, 4, 32, jpeg_quality=90)
    assert light.ok and light.frames is None
    assert light.jpeg == full.jpeg and light.size == full.frames[0].shape[:2]
    assert frames_row(light) == frames_row(full)
