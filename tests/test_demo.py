"""The demo dataset generator: deterministic bytes, the promised layout, real motion."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from zsar.data import demo

EXPECTED_CLASSES = ["sliding", "rotating", "growing", "flashing", "falling", "bouncing"]


def _all_files(root: Path) -> dict[str, bytes]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def _decode_all(path: Path) -> np.ndarray:
    import decord

    reader = decord.VideoReader(str(path), num_threads=1)
    return reader.get_batch(list(range(len(reader)))).asnumpy()


def _foreground(frame: np.ndarray) -> np.ndarray:
    """Pixels far from the frame's dominant colour: the moving shape."""
    pixels = frame.reshape(-1, 3).astype(np.int16)
    background = np.median(pixels, axis=0)
    return (np.abs(pixels - background).sum(axis=1) > 120).reshape(frame.shape[:2])


def _centroid(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    return float(ys.mean()), float(xs.mean())


def test_generation_is_byte_identical(demo_videos, tmp_path):
    again = demo.generate_demo(tmp_path / "again", clips_per_class=2, seed=0)
    first, second = _all_files(demo_videos), _all_files(again)
    assert len(first) == 2 + 2 * len(EXPECTED_CLASSES)
    assert first == second


def test_seed_changes_the_clips(demo_videos, tmp_path):
    other = demo.generate_demo(tmp_path / "other", clips_per_class=2, seed=1)
    name = "videos/sliding/sliding_0.mp4"
    assert (other / name).read_bytes() != (demo_videos / name).read_bytes()
    # labels and annotations do not depend on the seed
    assert (other / "labels.csv").read_text() == (demo_videos / "labels.csv").read_text()


def test_layout_classes_and_annotations(demo_videos):
    with open(demo_videos / "labels.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["id", "name"]
    assert rows[1:] == [[str(i), name] for i, name in enumerate(EXPECTED_CLASSES)]

    lines = (demo_videos / "annotations.txt").read_text().splitlines()
    assert len(lines) == 2 * len(EXPECTED_CLASSES)
    for line in lines:
        relative, class_id = line.split(" ")
        name = EXPECTED_CLASSES[int(class_id)]
        assert relative in (f"{name}/{name}_0.mp4", f"{name}/{name}_1.mp4")
        assert (demo_videos / "videos" / relative).stat().st_size > 500


def test_every_clip_decodes_with_decord(demo_videos):
    import decord

    clips = sorted((demo_videos / "videos").rglob("*.mp4"))
    assert len(clips) == 2 * len(EXPECTED_CLASSES)
    for clip in clips:
        reader = decord.VideoReader(str(clip), num_threads=1)
        assert len(reader) == demo.NUM_FRAMES
        assert reader[0].shape == (demo.HEIGHT, demo.WIDTH, 3)
        assert reader.get_avg_fps() == pytest.approx(demo.FPS)


def test_each_class_moves_as_its_name_says(demo_videos):
    videos = demo_videos / "videos"
    first, last = 1, demo.NUM_FRAMES - 2  # away from the very first/last frame

    sliding = [_foreground(f) for f in _decode_all(videos / "sliding/sliding_0.mp4")]
    assert _centroid(sliding[last])[1] - _centroid(sliding[first])[1] > 30  # moves right

    growing = [_foreground(f).sum() for f in _decode_all(videos / "growing/growing_0.mp4")]
    assert growing[last] > 20 * growing[first]

    falling = [_foreground(f) for f in _decode_all(videos / "falling/falling_0.mp4")]
    assert _centroid(falling[last])[0] - _centroid(falling[first])[0] > 40  # moves down

    # flashing: the mean brightness switches back and forth many times
    brightness = _decode_all(videos / "flashing/flashing_0.mp4").mean(axis=(1, 2, 3))
    bright = brightness > brightness.mean()
    assert np.count_nonzero(bright[1:] != bright[:-1]) >= 4

    # rotating: the bar's shape changes but its centre stays put
    rotating = [_foreground(f) for f in _decode_all(videos / "rotating/rotating_0.mp4")]
    centres = np.array([_centroid(m) for m in rotating])
    assert np.ptp(centres, axis=0).max() < 6
    assert (rotating[first] != rotating[first + 8]).mean() > 0.02

    # bouncing: the ball goes up and down more than once
    bouncing = _decode_all(videos / "bouncing/bouncing_0.mp4")
    heights = [_centroid(_foreground(f))[0] for f in bouncing]
    direction = np.sign(np.diff(heights))
    direction = direction[direction != 0]
    assert np.count_nonzero(direction[1:] != direction[:-1]) >= 3


def test_encode_video_rejects_a_wrong_frame_size(tmp_path):
    frames = [np.zeros((10, 12, 3), np.uint8)]
    with pytest.raises(ValueError, match="expected"):
        demo.encode_video(frames, tmp_path / "x.mp4", width=16, height=16)
    assert not (tmp_path / "x.mp4").exists()  # nothing half-written
