"""The built-in demo dataset: short synthetic h264 clips, one kind of motion per class.

Every clip is drawn with numpy and encoded by the ffmpeg binary that ships with
imageio-ffmpeg, so the demo needs no download. Generation is deterministic: each clip's
colours, speed and start position come from a generator seeded by (seed, class, clip),
and ffmpeg runs single-threaded with bit-exact flags and no metadata, so two runs write
byte-identical files.

Layout written by `generate_demo(out_dir)`:
    out_dir/videos/<class>/<class>_<k>.mp4
    out_dir/annotations.txt   lines "<class>/<class>_<k>.mp4 <class_id>"
    out_dir/labels.csv        header "id,name", then one row per class
"""

from __future__ import annotations

import csv
import io
import math
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from zsar.data.io import atomic_path, write_text

WIDTH = 112
HEIGHT = 112
FPS = 16
NUM_FRAMES = 32  # 2 s at 16 fps

Frame = np.ndarray  # HxWx3 uint8
Painter = Callable[[np.random.Generator, int, int, int], Iterator[Frame]]


# ---------------------------------------------------------------- drawing helpers


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (y, x), so shapes are placed with sub-pixel accuracy."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    return yy + 0.5, xx + 0.5


def _colour_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A background and a foreground colour far enough apart to stay visible after h264."""
    background = rng.integers(0, 96, size=3)
    foreground = rng.integers(160, 256, size=3)
    if rng.random() < 0.5:  # sometimes a light background with a dark shape
        background, foreground = 255 - background, 255 - foreground
    return background.astype(np.uint8), foreground.astype(np.uint8)


def _background(height: int, width: int, colour: np.ndarray) -> Frame:
    """A flat colour with a gentle vertical shade, so frames are not perfectly uniform."""
    shade = np.linspace(-12, 12, height, dtype=np.float32)[:, None, None]
    frame = np.clip(colour[None, None, :].astype(np.float32) + shade, 0, 255)
    return np.broadcast_to(frame, (height, width, 3)).astype(np.uint8)


def _paint(base: Frame, mask: np.ndarray, colour: np.ndarray) -> Frame:
    frame = base.copy()
    frame[mask] = colour
    return frame


# ---------------------------------------------------------------- one painter per class


def paint_sliding(rng: np.random.Generator, n: int, h: int, w: int) -> Iterator[Frame]:
    """A square slides from left to right at constant speed, staying in view."""
    bg, fg = _colour_pair(rng)
    base, (yy, xx) = _background(h, w, bg), _grid(h, w)
    side = rng.uniform(0.16, 0.28) * w
    cy = rng.uniform(side, h - side)
    x0 = rng.uniform(side / 2, 0.3 * w)
    x1 = rng.uniform(0.7 * w, w - side / 2)
    for t in np.linspace(0.0, 1.0, n):
        cx = x0 + (x1 - x0) * t
        mask = (np.abs(xx - cx) <= side / 2) & (np.abs(yy - cy) <= side / 2)
        yield _paint(base, mask, fg)


def paint_rotating(rng: np.random.Generator, n: int, h: int, w: int) -> Iterator[Frame]:
    """A bar spins about the centre of the frame."""
    bg, fg = _colour_pair(rng)
    base, (yy, xx) = _background(h, w, bg), _grid(h, w)
    half_length = rng.uniform(0.3, 0.42) * min(h, w)
    half_width = rng.uniform(3.0, 6.0)
    angle0 = rng.uniform(0, math.pi)
    turns = rng.uniform(0.5, 1.25) * rng.choice([-1, 1])
    cy, cx = h / 2 + rng.uniform(-6, 6), w / 2 + rng.uniform(-6, 6)
    for t in np.linspace(0.0, 1.0, n):
        angle = angle0 + 2 * math.pi * turns * t
        along = (xx - cx) * math.cos(angle) + (yy - cy) * math.sin(angle)
        across = -(xx - cx) * math.sin(angle) + (yy - cy) * math.cos(angle)
        mask = (np.abs(along) <= half_length) & (np.abs(across) <= half_width)
        yield _paint(base, mask, fg)


def paint_growing(rng: np.random.Generator, n: int, h: int, w: int) -> Iterator[Frame]:
    """A disc grows from a dot to fill most of the frame."""
    bg, fg = _colour_pair(rng)
    base, (yy, xx) = _background(h, w, bg), _grid(h, w)
    cy, cx = h / 2 + rng.uniform(-10, 10), w / 2 + rng.uniform(-10, 10)
    r0 = rng.uniform(2.0, 6.0)
    r1 = rng.uniform(0.32, 0.45) * min(h, w)
    for t in np.linspace(0.0, 1.0, n):
        radius = r0 + (r1 - r0) * t
        yield _paint(base, (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2, fg)


def paint_flashing(rng: np.random.Generator, n: int, h: int, w: int) -> Iterator[Frame]:
    """The whole screen blinks between two colours at a steady rate."""
    bg, fg = _colour_pair(rng)
    dark, light = _background(h, w, bg), _background(h, w, fg)
    period = int(rng.integers(4, 9))  # frames per on/off cycle
    phase = int(rng.integers(0, period))
    for i in range(n):
        yield light if ((i + phase) % period) < period // 2 else dark


def paint_falling(rng: np.random.Generator, n: int, h: int, w: int) -> Iterator[Frame]:
    """A ball drops from the top under gravity and comes to rest on the floor."""
    bg, fg = _colour_pair(rng)
    base, (yy, xx) = _background(h, w, bg), _grid(h, w)
    radius = rng.uniform(6.0, 10.0)
    cx = rng.uniform(radius + 4, w - radius - 4)
    top, floor = radius + rng.uniform(0, 10), h - radius - 1
    landing = rng.uniform(0.55, 0.85)  # fraction of the clip at which it lands
    for t in np.linspace(0.0, 1.0, n):
        fall = min(t / landing, 1.0) ** 2  # y grows with t^2: constant acceleration
        cy = top + (floor - top) * fall
        yield _paint(base, (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2, fg)


def paint_bouncing(rng: np.random.Generator, n: int, h: int, w: int) -> Iterator[Frame]:
    """A ball bounces on the floor again and again while drifting sideways."""
    bg, fg = _colour_pair(rng)
    base, (yy, xx) = _background(h, w, bg), _grid(h, w)
    radius = rng.uniform(6.0, 10.0)
    floor = h - radius - 1
    height = rng.uniform(0.45, 0.7) * h
    bounces = rng.uniform(2.0, 3.5)
    x0 = rng.uniform(radius + 2, 0.35 * w)
    x1 = rng.uniform(0.65 * w, w - radius - 2)
    for t in np.linspace(0.0, 1.0, n):
        cy = floor - height * abs(math.sin(math.pi * bounces * t))
        cx = x0 + (x1 - x0) * t
        yield _paint(base, (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2, fg)


# Class name -> painter. The order is the class_id order; names are read as actions by
# text encoders and by the curated demo descriptors, so keep them plain English verbs.
CLASSES: dict[str, Painter] = {
    "sliding": paint_sliding,
    "rotating": paint_rotating,
    "growing": paint_growing,
    "flashing": paint_flashing,
    "falling": paint_falling,
    "bouncing": paint_bouncing,
}


# ---------------------------------------------------------------- encoding


def encode_video(
    frames: Iterator[Frame] | list[Frame],
    path: str | Path,
    *,
    width: int,
    height: int,
    fps: int = FPS,
    crf: int = 20,
) -> None:
    """Encode RGB frames to an h264/yuv420p mp4, atomically and reproducibly.

    Frames are piped to ffmpeg as raw video. x264 runs on one thread and every
    bit-exact flag is set, with no metadata, so the bytes depend only on the frames.
    """
    # lazy: ffmpeg is looked up only when the demo writes its videos
    import imageio_ffmpeg

    command = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps),
        "-i", "-",
        "-an", "-c:v", "libx264", "-preset", "medium", "-crf", str(crf),
        "-pix_fmt", "yuv420p", "-threads", "1",
        "-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1",
        "-f", "mp4",
    ]  # fmt: skip
    with atomic_path(path) as tmp:
        process = subprocess.Popen(
            [*command, str(tmp)], stdin=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert process.stdin is not None
        try:
            for frame in frames:
                if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
                    raise ValueError(
                        f"frame of shape {frame.shape} {frame.dtype}, "
                        f"expected ({height}, {width}, 3) uint8"
                    )
                process.stdin.write(np.ascontiguousarray(frame).tobytes())
        finally:
            process.stdin.close()
            stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
            returncode = process.wait()
        if returncode != 0:
            raise RuntimeError(f"ffmpeg failed ({returncode}) writing {path}: {stderr.strip()}")


def clip_rng(seed: int, class_id: int, clip: int) -> np.random.Generator:
    """One independent stream per clip, so adding clips never changes the existing ones."""
    return np.random.default_rng([seed, class_id, clip])


def clip_name(class_name: str, clip: int) -> str:
    return f"{class_name}/{class_name}_{clip}.mp4"


def generate_demo(
    out_dir: str | Path,
    clips_per_class: int = 4,
    seed: int = 0,
    *,
    classes: dict[str, Painter] | None = None,
    num_frames: int = NUM_FRAMES,
) -> Path:
    """Write the demo dataset under `out_dir` (see the module docstring); returns out_dir.

    The annotation and label files are written last, so their presence means every
    video is in place.
    """
    if clips_per_class < 1:
        raise ValueError("clips_per_class must be at least 1")
    classes = CLASSES if classes is None else classes
    out = Path(out_dir)
    videos = out / "videos"
    lines = []
    for class_id, (name, painter) in enumerate(classes.items()):
        for k in range(clips_per_class):
            relative = clip_name(name, k)
            frames = painter(clip_rng(seed, class_id, k), num_frames, HEIGHT, WIDTH)
            encode_video(frames, videos / relative, width=WIDTH, height=HEIGHT)
            lines.append(f"{relative} {class_id}\n")
    write_text("".join(lines), out / "annotations.txt")
    write_text(_labels_csv(list(classes)), out / "labels.csv")
    return out


def _labels_csv(names: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "name"])
    writer.writerows(enumerate(names))
    return buffer.getvalue()
