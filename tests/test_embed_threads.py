"""The CPU embedding stage's thread count: the workers' cores stay theirs when decoding is the
limit, and the encoder takes them all when it is the limit."""

from __future__ import annotations

import io
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from zsar.stages.embed import encoder_threads, iter_video_embeddings
from zsar.stages.frames import FRAMES_SCHEMA


def test_the_encoder_leaves_the_workers_their_cores_when_it_keeps_up():
    assert encoder_threads(decode_fps=1000, encode_fps=2500, threads=2, workers=2) == 1
    assert encoder_threads(decode_fps=1000, encode_fps=2500, threads=8, workers=2) == 6
    assert encoder_threads(decode_fps=1000, encode_fps=2500, threads=2, workers=4) == 1
    # Slower than the workers, but not by much: still no competing for their cores.
    assert encoder_threads(decode_fps=1000, encode_fps=400, threads=2, workers=2) == 1


def test_the_encoder_takes_every_thread_when_it_is_the_limit():
    assert encoder_threads(decode_fps=1000, encode_fps=8, threads=2, workers=2) == 2
    assert encoder_threads(decode_fps=1000, encode_fps=8, threads=8, workers=2) == 8


class _Backbone:
    """A fixed random projection; `delay` seconds per pass make it slower than the workers."""

    device = "cpu"

    def __init__(self, delay: float):
        from zsar.models.backbones import build_image_transform

        self.transform = build_image_transform({"size": 16})
        self.projection = torch.randn(3 * 16 * 16, 8, generator=torch.Generator().manual_seed(0))
        self.delay = delay
        self.threads_per_pass: list[int] = []
        self.pass_sizes: list[int] = []

    def image_features(self, pixels):
        self.threads_per_pass.append(torch.get_num_threads())
        self.pass_sizes.append(len(pixels))
        time.sleep(self.delay)
        return pixels.reshape(len(pixels), -1) @ self.projection  # raw, as the real tower


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    """12 videos of 4 frames of 240 x 320: about a millisecond each to decode and resize, far
    slower than the fast projection encodes and far faster than the slow one."""
    rng = np.random.default_rng(0)
    rows = []
    for v in range(12):
        jpegs = []
        for _ in range(4):
            buffer = io.BytesIO()
            pixels = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(buffer, "JPEG")
            jpegs.append(buffer.getvalue())
        rows.append({"video_id": f"v{v:02d}", "frame_indices": [0, 1, 2, 3], "jpeg": jpegs,
                     "height": 240, "width": 320, "num_source_frames": 4})  # fmt: skip
    path = tmp_path_factory.mktemp("shard") / "000-of-001.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=FRAMES_SCHEMA), path, row_group_size=4)
    return path


@pytest.fixture
def two_threads():
    """Two intra-op threads and one worker: the encoder alone gets one or both."""
    before = torch.get_num_threads()
    if before < 2:
        pytest.skip("needs 2 cores")
    torch.set_num_threads(2)  # never more than the machine has: that stalls every operation
    yield 2
    torch.set_num_threads(before)


@pytest.mark.parametrize(("delay", "later_passes"), [(0.0, 1), (0.3, 2)])
def test_the_stage_picks_its_threads_after_the_first_pass_and_restores_them(
    shard, two_threads, delay, later_passes
):
    backbone = _Backbone(delay)
    out = list(iter_video_embeddings(shard, backbone, batch_frames=8, workers=1, block_videos=2))
    assert len(out) == 12
    first, *later = backbone.threads_per_pass
    assert first == 1  # the worker's core left to it, so the encoder is timed fairly
    assert later and set(later) == {later_passes}  # fast encoder: 1 (decode-bound); slow: 2
    assert torch.get_num_threads() == two_threads


def test_a_short_first_pass_then_passes_of_the_full_size():
    from zsar.stages.embed import FrameBatcher

    sizes = []
    batcher = FrameBatcher(4, lambda batch: sizes.append(len(batch)) or batch.numpy(), first=1)
    counts = [3, 5, 2]
    out = list(batcher.feed(["a", "b", "c"], counts, torch.arange(10.0)[:, None]))
    out += batcher.finish()
    assert sizes == [1, 4, 4, 1]
    assert [(v, n) for v, _, n in out] == [("a", 3), ("b", 5), ("c", 2)]


def test_the_passes_do_not_depend_on_the_number_of_workers(shard):
    def run(workers):
        backbone = _Backbone(0.0)
        out = iter_video_embeddings(
            shard, backbone, batch_frames=8, workers=workers, block_videos=2
        )
        vectors = np.stack([vector for _, vector, _ in out])
        return backbone.pass_sizes, vectors

    sizes, vectors = run(0)
    assert sizes == [1, 8, 8, 8, 8, 8, 7]  # 48 frames: a short first pass, then full ones
    sizes_with_workers, vectors_with_workers = run(2)
    assert sizes_with_workers == sizes
    # The thread count may differ, and a matrix product's last bit with it.
    np.testing.assert_allclose(vectors_with_workers, vectors, atol=1e-6)
