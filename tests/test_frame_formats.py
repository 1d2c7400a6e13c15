"""The frames stage on clips in each benchmark's real container and codec (UCF101's XviD and
HMDB51's DivX AVIs with B-frames, Kinetics' h264 MP4s of many kinds, SSv2's VP9 WebM), each
frame showing its own index (tests/helpers/format_corpus.py): every stored frame must be the
frame its `frame_indices` entry names, read back from the stored JPEG, and the stored timing
must agree with the container."""

from __future__ import annotations

import logging
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.format_corpus import CORPUS, Clip, make_corpus, read_index

from zsar.stages.frames import checked_duration, decode_jpeg, run_frames_stage

CLIPS = {clip.name: clip for clip in CORPUS}
NUM_FRAMES = 16  # more than 8: the samples reach further into each clip's tail
SHORT_SIDE = 96


# Encoding the corpus with ffmpeg and decoding it through the real stage takes about 20 s on
# two busy cores: the tests that read it run in make test only.
DECODES_THE_CORPUS = pytest.mark.slow


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """The real frames stage, once, over the whole corpus: (rows by video, failures, log)."""
    root = tmp_path_factory.mktemp("formats")
    paths = make_corpus(root / "clips")
    names = sorted(paths)
    manifest = pa.table(
        {
            "video_id": names,
            "path": [str(paths[name]) for name in names],
            "exists": [True] * len(names),
        }
    )
    pq.write_table(manifest, root / "manifest.parquet")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("zsar.stages.frames").addHandler(handler)
    try:
        run_frames_stage(
            root / "manifest.parquet",
            root / "frames.parquet",
            root / "failures.parquet",
            "000-of-001",
            sampling=NUM_FRAMES,
            short_side=SHORT_SIDE,
            jpeg_quality=90,
            workers=2,
        )
    finally:
        logging.getLogger("zsar.stages.frames").removeHandler(handler)
    rows = {row["video_id"]: row for row in pq.read_table(root / "frames.parquet").to_pylist()}
    failures = {
        row["video_id"]: row["reason"]
        for row in pq.read_table(root / "failures.parquet").to_pylist()
    }
    return rows, failures, [record.getMessage() for record in records]


def upright_indices(clip: Clip, jpegs: list[bytes]) -> list[int]:
    """The index each stored frame shows, turned back by the clip's display rotation (the
    barcode was drawn on the picture as encoded)."""
    shown = []
    for data in jpegs:
        frame = np.asarray(decode_jpeg(data))
        shown.append(read_index(np.rot90(frame, -(clip.rotation // 90))))
    return shown


DECODED = [clip.name for clip in CORPUS if "fails" not in clip.expect]


@pytest.mark.parametrize("name", DECODED)
@DECODES_THE_CORPUS
def test_each_stored_frame_is_the_frame_its_index_names(stored, name):
    clip = CLIPS[name]
    rows, failures, _ = stored
    assert name in rows, f"{name} was not stored: {failures.get(name)}"
    row = rows[name]
    shown = upright_indices(clip, row["jpeg"])

    assert len(shown) == NUM_FRAMES
    # The real frames are exact; padding frames (which the encoder may drop) only follow.
    real = [(i, s) for i, s in zip(row["frame_indices"], shown, strict=True) if i < clip.frames]
    assert real and all(i == s for i, s in real), f"stored {shown}, named {row['frame_indices']}"
    assert shown == sorted(shown)
    if clip.keep_bytes == 1 and clip.damage_at is None:  # whole files: every frame counted
        assert clip.frames <= row["num_source_frames"] <= clip.frames + clip.padding


@pytest.mark.parametrize("name", DECODED)
@DECODES_THE_CORPUS
def test_stored_frames_are_upright(stored, name):
    clip = CLIPS[name]
    row = stored[0][name]
    width, height = clip.size
    shown_portrait = (height > width) != (clip.rotation % 180 == 90)
    assert (row["height"] > row["width"]) == shown_portrait, (row["height"], row["width"])


@pytest.mark.parametrize("name", DECODED)
@DECODES_THE_CORPUS
def test_the_stored_timing_agrees_with_the_container(stored, name):
    clip = CLIPS[name]
    row = stored[0][name]
    fps, duration, length = row["source_fps"], row["source_duration_s"], row["num_source_frames"]
    assert fps is not None and duration is not None and duration > 0
    assert abs(duration - length / fps) <= 0.1 * length / fps
    if "duration_s" in clip.expect:  # variable rate: the real span, not frames / nominal
        assert duration == pytest.approx(clip.expect["duration_s"], rel=0.03)
    elif clip.vf is None:
        numerator, _, denominator = clip.fps.partition("/")
        assert fps == pytest.approx(int(numerator) / int(denominator or 1), rel=1e-3)


@DECODES_THE_CORPUS
def test_partial_downloads_keep_the_frames_that_decode(stored):
    rows, failures, _ = stored
    cut = rows["k400_faststart_cut.mp4"]
    assert 0 < cut["num_source_frames"] < CLIPS["k400_faststart_cut.mp4"].frames
    assert failures.keys() == {"k400_index_at_end_cut.mp4"}
    assert "moov atom not found" in failures["k400_index_at_end_cut.mp4"]


def test_a_duration_far_from_frames_over_fps_is_replaced_and_said():
    # decord's "no timestamp" value taken as a time (an AVI with B-frames, before)
    duration, note = checked_duration(97, 25.0, 3.69e17)
    assert duration == pytest.approx(3.88) and "3.69e+17" in note and "97 frames / 25 fps" in note
    assert checked_duration(97, 25.0, -2.0)[0] == pytest.approx(3.88)
    assert checked_duration(97, 25.0, 4.1) == (4.1, None)  # within 10 %
    assert checked_duration(97, None, 4.1) == (4.1, None)  # nothing to check it against
    assert checked_duration(97, 25.0, None) == (pytest.approx(3.88), None)


@pytest.mark.slow  # runs the workflow
def test_frames_all_decodes_the_frames_and_nothing_else(tmp_path):
    from helpers.workflow import copy_workflow, snakemake

    workdir = copy_workflow(tmp_path / "wf")
    done = snakemake(workdir, "--workflow-profile", "profiles/default", "frames_all")
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    jobs = set(
        re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):", done.stdout + done.stderr, re.M)
    )
    assert jobs == {"demo_data", "manifest", "frames", "frames_all"}
    shards = list((workdir / "results" / "demo" / "frames").glob("*/000-of-001.parquet"))
    assert len(shards) == 1 and pq.read_table(shards[0]).num_rows == 24
    assert not (workdir / "results" / "demo" / "embeddings").exists()
