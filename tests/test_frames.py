"""Frames stage: TSN sampling, sharding, pooled decoding, bad videos, the shard round trip."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from zsar.data import demo
from zsar.stages.frames import (
    FRAMES_SCHEMA,
    clean_decoder_message,
    decode_video,
    decode_video_jpeg_only,
    decode_videos,
    read_frames,
    run_frames_stage,
    sample_frame_indices,
    videos_for_shard,
)

# ---------------------------------------------------------------- sampling indices

# Worked out by hand from "the centre frame of each of N equal segments":
# segment i covers [i*L/N, (i+1)*L/N) and its centre (i+0.5)*L/N is rounded down.
HAND_COMPUTED = [
    # N = 1: the centre frame
    (1, 1, [0]),
    (2, 1, [1]),
    (7, 1, [3]),
    (32, 1, [16]),
    (300, 1, [150]),
    # N = 8
    (8, 8, [0, 1, 2, 3, 4, 5, 6, 7]),  # one frame per segment
    (32, 8, [2, 6, 10, 14, 18, 22, 26, 30]),  # segments of 4, centres at 4i+2
    (100, 8, [6, 18, 31, 43, 56, 68, 81, 93]),  # centres 6.25, 18.75, 31.25, ...
    # shorter than N: segments of 3/8 frame, so frames repeat
    (3, 8, [0, 0, 0, 1, 1, 2, 2, 2]),  # centres 0.19 0.56 0.94 1.31 1.69 2.06 2.44 2.81
    (1, 8, [0, 0, 0, 0, 0, 0, 0, 0]),  # a one-frame video is that frame, 8 times
    # N = 32
    (32, 32, list(range(32))),
    (64, 32, list(range(1, 64, 2))),  # segments of 2 frames, centre at 2i+1
    # shorter than N: segments of 10/32 frame; frames 2 and 7 cover 4 segments, the rest 3
    (10, 32, [0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 4, 4, 4,
              5, 5, 5, 6, 6, 6, 7, 7, 7, 7, 8, 8, 8, 9, 9, 9]),
]  # fmt: skip


@pytest.mark.parametrize(("length", "n", "expected"), HAND_COMPUTED)
def test_sample_frame_indices_by_hand(length, n, expected):
    assert sample_frame_indices(length, n) == expected


@pytest.mark.parametrize("n", [1, 8, 32])
@pytest.mark.parametrize("length", [1, 2, 5, 8, 31, 32, 33, 250, 1001])
def test_sample_frame_indices_properties(length, n):
    indices = sample_frame_indices(length, n)
    assert len(indices) == n
    assert all(0 <= i <= length - 1 for i in indices)
    assert indices == sorted(indices)
    if length >= n:
        assert len(set(indices)) == n  # no repeats once every segment holds a frame
    else:
        assert set(indices) == set(range(length))  # a short video uses all its frames


def test_sample_frame_indices_rejects_empty_videos():
    with pytest.raises(ValueError, match="0 frames"):
        sample_frame_indices(0, 8)
    with pytest.raises(ValueError):
        sample_frame_indices(10, 0)


# ---------------------------------------------------------------- shards


def _manifest(rows: list[tuple[str, str, bool]]) -> pa.Table:
    ids, paths, exists = zip(*rows, strict=True)
    return pa.table(
        {
            "video_id": list(ids),
            "path": list(paths),
            "label": ["x"] * len(ids),
            "class_id": pa.array([0] * len(ids), pa.int32()),
            "split": pa.array([1] * len(ids), pa.int32()),
            "exists": list(exists),
        }
    )


def test_shards_cover_each_existing_video_once():
    names = [f"v{i:02d}.mp4" for i in range(20)]
    rows = [(n, f"/data/{n}", True) for n in reversed(names)]
    rows += [("v03.mp4", "/data/v03.mp4", True), ("v07.mp4", "/data/v07.mp4", True)]  # 2nd split
    rows += [("gone.mp4", "/data/gone.mp4", False)]
    manifest = _manifest(rows)
    for total in (1, 3, 7):
        shards = [videos_for_shard(manifest, i, total) for i in range(total)]
        dealt = [vid for shard in shards for vid, _ in shard]
        assert sorted(dealt) == names  # every existing video exactly once, missing ones never
        for shard in shards:
            assert [vid for vid, _ in shard] == sorted(vid for vid, _ in shard)
            assert all(path == f"/data/{vid}" for vid, path in shard)
    # round-robin over the sorted ids, written out for 3 shards
    assert [v for v, _ in videos_for_shard(manifest, 1, 3)] == [
        "v01.mp4", "v04.mp4", "v07.mp4", "v10.mp4", "v13.mp4", "v16.mp4", "v19.mp4"
    ]  # fmt: skip
    with pytest.raises(ValueError):
        videos_for_shard(manifest, 3, 3)


# ---------------------------------------------------------------- decoding


def _demo_items(root: Path) -> list[tuple[str, str]]:
    clips = sorted((root / "videos").rglob("*.mp4"))
    return [(str(c.relative_to(root / "videos")), str(c)) for c in clips]


def test_decode_demo_clips_in_a_pool(demo_videos):
    items = _demo_items(demo_videos)
    results = list(decode_videos(items, 8, short_side=64, workers=2))
    assert [r.video_id for r in results] == [vid for vid, _ in items]  # input order
    for result in results:
        assert result.ok, result.error
        assert result.num_source_frames == demo.NUM_FRAMES
        assert result.frame_indices == [2, 6, 10, 14, 18, 22, 26, 30]
        assert len(result.frames) == 8
        assert all(f.shape == (64, 64, 3) and f.dtype == np.uint8 for f in result.frames)
        assert result.jpeg is None  # only made on request
    # the frames are different moments of the clip, not one frame repeated
    sliding = next(r for r in results if r.video_id.startswith("sliding/"))
    assert np.abs(sliding.frames[0].astype(int) - sliding.frames[-1].astype(int)).max() > 100


def test_decode_keeps_aspect_ratio_and_handles_short_clips(tmp_path):
    wide = tmp_path / "wide.mp4"
    frames = [np.full((96, 160, 3), 10 * i, np.uint8) for i in range(5)]  # 5 frames < N=8
    demo.encode_video(frames, wide, width=160, height=96)
    result = decode_video("wide", str(wide), 8, short_side=48, jpeg_quality=90)
    assert result.ok, result.error
    assert result.num_source_frames == 5
    assert result.frame_indices == [0, 0, 1, 2, 2, 3, 4, 4]  # centres 0.31 0.94 1.56 2.19 ...
    assert {f.shape for f in result.frames} == {(48, 80, 3)}
    assert len(result.jpeg) == 8 and all(j[:2] == b"\xff\xd8" for j in result.jpeg)
    # frame 4 is brighter than frame 0: the indices point at the frames they name
    assert result.frames[-1].mean() > result.frames[0].mean() + 20


def _bad_corpus(tmp_path: Path, demo_videos: Path) -> dict[str, str]:
    """Broken files next to good ones; returns video_id -> expected words of the reason."""
    import subprocess

    import imageio_ffmpeg

    good = (demo_videos / "videos/sliding/sliding_0.mp4").read_bytes()
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("this is not a video\n")
    (tmp_path / "truncated.mp4").write_bytes(good[: len(good) // 2])
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", "sine=duration=0.5", "-c:a", "aac", str(tmp_path / "audio.mp4")],
        check=True,
    )  # fmt: skip
    return {
        "empty.mp4": "empty file",
        "text.mp4": "cannot open",
        "truncated.mp4": "cannot open",
        "audio.mp4": "no video stream",
        "missing.mp4": "file not found",
    }


def test_bad_files_become_failures_and_the_rest_decodes(tmp_path, demo_videos):
    expected = _bad_corpus(tmp_path, demo_videos)
    good = _demo_items(demo_videos)[:3]
    bad = [(name, str(tmp_path / name)) for name in expected]
    items = [good[0], *bad[:2], good[1], *bad[2:], good[2]]
    results = {r.video_id: r for r in decode_videos(items, 8, 32, workers=2)}
    assert list(results) == [vid for vid, _ in items]
    for vid, _ in good:
        assert results[vid].ok and len(results[vid].frames) == 8
    for name, words in expected.items():
        result = results[name]
        assert not result.ok and result.frames is None
        assert words in result.error, (name, result.error)
        assert "0x" not in result.error and str(tmp_path) not in result.error


def test_decoder_messages_lose_times_addresses_and_paths():
    raw = (
        "[22:48:52] /github/workspace/src/video/video_reader.cc:83: ERROR opening: "
        "/data/x.mp4, Invalid data found when processing input\n"
        "Stack trace returned 10 entries:\n[bt] (0) /lib/libdecord.so(+0x1a2b) [0x7f00]"
    )
    assert clean_decoder_message(raw, "/data/x.mp4") == (
        "ERROR opening: <file>, Invalid data found when processing input"
    )
    assert clean_decoder_message("[h264 @ 0x55d8edd96fc0] Invalid NAL unit size") == (
        "[h264] Invalid NAL unit size"
    )


# Top-level, so that spawned workers can import them by name.
def crashing_decode(video_id, path, *args):
    if "crash" in video_id:
        os.kill(os.getpid(), signal.SIGSEGV)  # what a decoder bug looks like
    return decode_video(video_id, path, *args)


def hanging_decode(video_id, path, *args):
    if "hang" in video_id:
        time.sleep(120)
    return decode_video(video_id, path, *args)


def native_hanging_decode(video_id, path, *args):
    """A decoder stuck in native code holding the GIL (dmlc/decord#373): a regular
    expression that backtracks for ever, inside the C matcher, interrupted by nothing."""
    if "hang" in video_id:
        re.match(r"(a|aa)+$", "a" * 200 + "b")
    return decode_video_jpeg_only(video_id, path, *args)


def raising_decode(video_id, path, *args):
    if "raise" in video_id:
        raise MemoryError("out of memory")
    return decode_video(video_id, path, *args)


# The timeout also covers starting a worker, so it is generous where nothing hangs, and
# long enough to survive a loaded machine where something does.
@pytest.mark.parametrize(
    ("decode_fn", "culprit", "timeout_s", "reason"),
    [
        (crashing_decode, "crash.mp4", 120, "decoder crashed"),
        # Waits out its timeout: the full suite only.
        pytest.param(hanging_decode, "hang.mp4", 8, "decoder timed out after 8 s",
                     marks=pytest.mark.slow),
        (raising_decode, "raise.mp4", 120, "decode error: MemoryError: out of memory"),
    ],
)
def test_a_dying_worker_costs_only_its_video(demo_videos, decode_fn, culprit, timeout_s, reason):
    good = _demo_items(demo_videos)[:5]
    bad_path = good[0][1]  # a fine file: the failure comes from the worker itself
    items = [good[0], good[1], (culprit, bad_path), good[2], good[3], good[4]]
    results = list(decode_videos(items, 4, 32, workers=2, timeout_s=timeout_s, decode_fn=decode_fn))
    assert [r.video_id for r in results] == [vid for vid, _ in items]
    by_id = {r.video_id: r for r in results}
    assert by_id[culprit].error == reason
    assert all(by_id[vid].ok for vid, _ in good), [r.error for r in results]


@pytest.mark.slow  # waits 3 s on purpose, then restarts the pool; the crash above stays fast
def test_a_crash_between_two_results_costs_only_its_video(demo_videos):
    """A worker can die while the consumer holds a result: the executor then refuses the
    next submission at once (seen as a flaky failure of the test above), and that too must
    end in the retry-one-by-one path, not in an exception out of the stream."""
    good = _demo_items(demo_videos)[:5]
    items = [good[0], good[1], ("crash.mp4", good[0][1]), good[2], good[3], good[4]]
    stream = decode_videos(items, 4, 32, workers=2, timeout_s=120, decode_fn=crashing_decode)
    first = next(stream)
    time.sleep(3)  # the crashing worker dies meanwhile; the next top-up meets a broken pool
    results = [first, *stream]
    assert [r.video_id for r in results] == [vid for vid, _ in items]
    by_id = {r.video_id: r for r in results}
    assert by_id["crash.mp4"].error == "decoder crashed"
    assert all(by_id[vid].ok for vid, _ in good), [r.error for r in results]


def test_in_process_decoding_matches_the_pool(demo_videos):
    items = _demo_items(demo_videos)[:4]
    pooled = list(decode_videos(items, 8, 64, workers=2))
    inline = list(decode_videos(items, 8, 64, workers=0))
    for a, b in zip(pooled, inline, strict=True):
        assert a.video_id == b.video_id and a.frame_indices == b.frame_indices
        assert all(np.array_equal(x, y) for x, y in zip(a.frames, b.frames, strict=True))


# ---------------------------------------------------------------- the stage, end to end


def test_run_frames_stage_round_trip(tmp_path, demo_videos):
    items = _demo_items(demo_videos)
    rows = [(vid, path, True) for vid, path in items]
    rows += [("broken.mp4", str(tmp_path / "broken.mp4"), True)]
    rows += [("absent.mp4", str(tmp_path / "absent.mp4"), False)]  # the manifest's business
    (tmp_path / "broken.mp4").write_text("not a video")
    manifest_path = tmp_path / "manifest.parquet"
    pq.write_table(_manifest(rows), manifest_path)

    outputs = {}
    for name in ("a", "b"):  # twice, to check the frames are reproducible
        out, fails = tmp_path / name / "000-of-001.parquet", tmp_path / name / "f.parquet"
        counts = run_frames_stage(
            manifest_path,
            out,
            fails,
            "000-of-001",
            sampling=8,
            short_side=48,
            jpeg_quality=85,
            workers=2,
        )
        outputs[name] = (out, fails)
    assert counts == {"videos": len(items) + 1, "decoded": len(items), "failed": 1}

    out, fails = outputs["a"]
    table = pq.read_table(out)
    assert table.schema.remove_metadata() == FRAMES_SCHEMA
    assert table.column("video_id").to_pylist() == sorted(vid for vid, _ in items)
    assert set(table.column("num_source_frames").to_pylist()) == {demo.NUM_FRAMES}
    assert set(table.column("height").to_pylist()) == {48}
    assert table.column("jpeg").equals(pq.read_table(outputs["b"][0]).column("jpeg"))
    failures = pq.read_table(fails).to_pylist()
    assert [(f["video_id"], f["stage"]) for f in failures] == [("broken.mp4", "frames")]
    assert failures[0]["reason"].startswith("cannot open")

    reference = {r.video_id: r for r in decode_videos(items, 8, 48, workers=0)}
    seen = []
    for video_id, images in read_frames(out):
        seen.append(video_id)
        assert len(images) == 8 and {im.size for im in images} == {(48, 48)}
        assert {im.mode for im in images} == {"RGB"}
        pixels = np.stack([np.asarray(im) for im in images]).astype(int)
        exact = np.stack(reference[video_id].frames).astype(int)
        assert np.abs(pixels - exact).mean() < 4  # JPEG is lossy, but only slightly
    assert seen == sorted(vid for vid, _ in items)


@pytest.mark.slow  # waits out the deadline
def test_a_decode_that_hangs_in_native_code_costs_its_video_not_the_job(tmp_path, demo_videos):
    items = _demo_items(demo_videos)[:4]
    rows = [(vid, path, True) for vid, path in items] + [("hang.mp4", items[0][1], True)]
    pq.write_table(_manifest(rows), tmp_path / "manifest.parquet")
    out, fails = tmp_path / "000-of-001.parquet", tmp_path / "f.parquet"

    started = time.monotonic()
    counts = run_frames_stage(
        tmp_path / "manifest.parquet", out, fails, "000-of-001", sampling=4, short_side=32,
        jpeg_quality=85, workers=2, timeout_s=8, decode_fn=native_hanging_decode,
    )  # fmt: skip

    assert time.monotonic() - started < 60  # the job ends
    assert counts == {"videos": 5, "decoded": 4, "failed": 1}
    assert pq.read_table(out).column("video_id").to_pylist() == sorted(v for v, _ in items)
    assert pq.read_table(fails).to_pylist() == [
        {"video_id": "hang.mp4", "stage": "frames", "reason": "decoder timed out after 8 s"}
    ]


def test_more_shards_than_videos_gives_valid_empty_outputs(tmp_path, demo_videos):
    items = _demo_items(demo_videos)[:2]
    manifest_path = tmp_path / "manifest.parquet"
    pq.write_table(_manifest([(v, p, True) for v, p in items]), manifest_path)
    out, fails = tmp_path / "004-of-005.parquet", tmp_path / "004-of-005.failures.parquet"
    counts = run_frames_stage(manifest_path, out, fails, "004-of-005", 8, 32, 90, workers=1)
    assert counts == {"videos": 0, "decoded": 0, "failed": 0}
    assert pq.read_table(out).num_rows == 0 and pq.read_table(fails).num_rows == 0
    assert list(read_frames(out)) == []
