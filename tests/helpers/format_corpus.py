"""Small clips in each benchmark's real container and codec, every frame showing its own
index, so that a stored frame can be checked without trusting any decoder.

The index is drawn as an 8-bit barcode: the top half of the picture is cut into 8 columns,
white for a 1 bit, black for a 0, most significant bit first; the bottom half holds moving
texture so that the encoders make real P- and B-frames. A column's mean survives scaling
and JPEG, so `read_index` reads it back from a stored frame.

The packed-B-frame clips carry `padding` frames after their `frames` real ones (indices
continue): FFmpeg's libxvid wrapper drops the last B-frames of a packed stream when it
flushes, so the real frames are all in the file and the padding absorbs the loss.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Clip:
    name: str  # file name, with the container's extension
    benchmark: str  # whose files it stands for
    frames: int  # real frames, each showing its index
    codec_args: tuple[str, ...]
    size: tuple[int, int] = (320, 240)  # width, height as encoded
    fps: str = "25"
    vf: str | None = None  # an ffmpeg filter (timestamps for the VFR clip)
    rotation: int = 0  # display rotation written into the container, degrees
    keep_bytes: float = 1.0  # a cut-short download keeps this share of the file
    damage_at: float | None = None  # overwrite a stretch of bytes here (share of the file)
    padding: int = 0  # frames after the real ones that the encoder may drop
    expect: dict = field(default_factory=dict)  # what the test should see, beyond the frames


XVID = ("-c:v", "libxvid", "-q:v", "4")
H264 = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p")

CORPUS = (
    # UCF101: XviD in AVI with packed B-frames (libxvid packs them in AVI), and without.
    Clip("ucf101_xvid_packed_b.avi", "UCF101", 96, (*XVID, "-bf", "2", "-vtag", "XVID"),
         padding=4),
    Clip("ucf101_xvid_no_b.avi", "UCF101", 96, (*XVID, "-bf", "0", "-vtag", "XVID")),
    # HMDB51: DivX in AVI, B-frames unpacked (ffmpeg's own MPEG-4 encoder) and packed.
    Clip("hmdb51_divx_b.avi", "HMDB51", 120, ("-c:v", "mpeg4", "-q:v", "4", "-bf", "2",
                                              "-vtag", "DIVX")),
    Clip("hmdb51_dx50_packed_b.avi", "HMDB51", 120, (*XVID, "-bf", "2", "-vtag", "DX50"),
         padding=4),
    # Kinetics: h264 MP4 with B-frames, at 29.97 fps, portrait, rotated, cut short.
    Clip("k400_h264_b.mp4", "Kinetics", 90, (*H264, "-bf", "3"), size=(340, 256), fps="30"),
    Clip("k400_2997.mp4", "Kinetics", 60, H264, size=(340, 256), fps="30000/1001"),
    Clip("k400_portrait.mp4", "Kinetics", 40, H264, size=(240, 320)),
    Clip("k400_rotated.mp4", "Kinetics", 40, H264, rotation=90),
    # Damaged in the middle: the readable-prefix reader (PyAV) must turn it upright too.
    Clip("k400_rotated_damaged.mp4", "Kinetics", 120, (*H264, "-g", "10"), rotation=90,
         damage_at=0.55),
    # YouTube downloads keep their index at the front; a partial download loses the end.
    Clip("k400_faststart_cut.mp4", "Kinetics", 120, (*H264, "-g", "10", "-movflags",
                                                     "+faststart"), keep_bytes=0.7),
    # The index at the end, cut short: nothing to read, a reason that says so.
    Clip("k400_index_at_end_cut.mp4", "Kinetics", 60, H264, keep_bytes=0.7,
         expect={"fails": "moov atom not found"}),
    # 60 frames at 30 fps, then 60 at 10 fps: 8 s.
    Clip("k400_vfr.mp4", "Kinetics", 120, (*H264, "-fps_mode", "vfr"), fps="30",
         vf="setpts='if(lt(N,60),N/30,2+(N-60)/10)/TB'", expect={"duration_s": 8.0}),
    Clip("k400_one_frame.mp4", "Kinetics", 1, H264),
    Clip("k400_0.3s.mp4", "Kinetics", 5, H264, fps="30"),
    # Something-Something v2: VP9 in WebM, no frame count in its header.
    Clip("ssv2_vp9.webm", "SSv2", 48, ("-c:v", "libvpx-vp9", "-b:v", "200k", "-deadline",
                                       "realtime", "-cpu-used", "8"), size=(427, 240),
         fps="12"),
)  # fmt: skip


def ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def barcode_frame(index: int, width: int, height: int) -> np.ndarray:
    frame = np.zeros((height, width, 3), np.uint8)
    for bit in range(8):
        if (index >> (7 - bit)) & 1:
            frame[: height // 2, bit * width // 8 : (bit + 1) * width // 8] = 255
    rows, cols = np.mgrid[0 : height - height // 2, 0:width]
    wave = 127 + 100 * np.sin((cols + 5 * index) / 7.0) * np.cos((rows + 2 * index) / 9.0)
    frame[height // 2 :, :, 1] = wave.astype(np.uint8)
    frame[height // 2 :, :, 2] = ((cols * 3 + index * 11) % 200).astype(np.uint8)
    return frame


def read_index(frame: np.ndarray) -> int:
    """The index a frame shows (HxWx3, upright): each column's middle, thresholded."""
    height, width = frame.shape[:2]
    bits = []
    for bit in range(8):
        left, right = bit * width // 8, (bit + 1) * width // 8
        margin = (right - left) // 4
        bits.append(frame[: height // 2 - 2, left + margin : right - margin].mean() > 127)
    return int("".join("1" if b else "0" for b in bits), 2)


def make_clip(clip: Clip, folder: Path) -> Path:
    """Encode `clip` into `folder` (raw RGB frames piped to ffmpeg, then the damage)."""
    width, height = clip.size
    path = folder / clip.name
    encoded = path if not clip.rotation else folder / f"unrotated-{clip.name}"
    command = [
        ffmpeg(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
        "-s", f"{width}x{height}", "-r", clip.fps, "-i", "-",
        *(["-vf", clip.vf] if clip.vf else []), *clip.codec_args, str(encoded),
    ]  # fmt: skip
    frames = b"".join(
        barcode_frame(i, width, height).tobytes() for i in range(clip.frames + clip.padding)
    )
    subprocess.run(command, input=frames, check=True, capture_output=True)
    if clip.rotation:
        subprocess.run(
            [ffmpeg(), "-y", "-loglevel", "error", "-display_rotation", str(clip.rotation),
             "-i", str(encoded), "-c", "copy", str(path)],
            check=True, capture_output=True,
        )  # fmt: skip
        encoded.unlink()
    data = bytearray(path.read_bytes())
    if clip.damage_at is not None:
        start = int(len(data) * clip.damage_at)
        data[start : start + 4000] = bytes(range(256)) * 15 + bytes(160)
    path.write_bytes(bytes(data[: int(len(data) * clip.keep_bytes)]))
    return path


def make_corpus(folder: Path, clips=CORPUS) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return {clip.name: make_clip(clip, folder) for clip in clips}
