"""JPEG frames to model input on the model's device: batched decode, resize, crop, normalise.

On a GPU the embedding stage's CPU work after decoding (a JPEG decode and a PIL resize per
frame, about 1.2 ms at 224 px) would need most of 16 cores to keep up with the encoder, and
those cores belong to the decode pool of the frames stage. This path moves it to the card:
`torchvision.io.decode_jpeg(list, device="cuda")` decodes a whole block of frames with
nvJPEG in one call, and the resize, centre crop and normalisation run as tensor operations
there. The same functions run on the CPU, which is how the tests check them.

The geometry is the backbone transform's own (torchvision's Resize and CenterCrop compute the
same output sizes and crop offsets for tensors as for PIL images), and the resize follows
PIL's order of work: one axis at a time, each pass rounded and clamped to 0..255. What still
differs is the arithmetic inside a pass (PIL's fixed point against float32): on K400-like
frames 0.2 % to 2.5 % of the values differ, by one grey level, rarely two. The video
embeddings then differ by less than fp16 weights make them differ (measured on a tiny CLIP:
7.8e-5 against 2.4e-4 per component of the unit vectors; tests/test_device_frames.py).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from zsar.models.preprocess import canonical_preprocess

# Interpolations PIL and torch both resample with antialiasing; lanczos (allowed in a
# transformers preprocessor config) has no tensor kernel, so such backbones use the CPU path.
INTERPOLATIONS = ("bicubic", "bilinear")


@dataclass(frozen=True)
class DevicePreprocess:
    """The tensor form of a backbone's preprocessing config (zsar.models.preprocess)."""

    size: int  # side of the square model input
    resize_to: int  # "shortest": the short side after resizing, before the centre crop
    resize_mode: str  # "shortest" (resize, centre crop) or "squash" (resize to size x size)
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]


def device_preprocess(pp: Mapping[str, Any]) -> DevicePreprocess | None:
    """The tensor preprocessing of a config; None where only the PIL path does it."""
    pp = canonical_preprocess(pp)
    if pp["interpolation"] not in INTERPOLATIONS or pp["resize_mode"] not in RESIZE_MODES:
        return None
    # build_image_transform: crop_pct < 1 resizes the short side to round(size / crop_pct).
    resize_to = round(pp["size"] / pp["crop_pct"]) if pp["crop_pct"] != 1.0 else pp["size"]
    return DevicePreprocess(
        size=pp["size"],
        resize_to=resize_to,
        resize_mode=pp["resize_mode"],
        interpolation=pp["interpolation"],
        mean=pp["mean"],
        std=pp["std"],
    )


# ---------------------------------------------------------------- decoding


def jpeg_buffer(jpegs: Sequence[bytes]):
    """All JPEGs in one 1-D uint8 tensor, plus their lengths (one copy, one shared block)."""
    # lazy: torch loads only where a model runs
    import torch

    data = bytearray(b"".join(jpegs))
    return torch.frombuffer(data, dtype=torch.uint8), [len(j) for j in jpegs]


def decode_jpegs(buffer, lengths: Sequence[int], device) -> list:
    """Decode the JPEGs of `jpeg_buffer` on `device` (batched nvJPEG on CUDA): [3, H, W] uint8."""
    # lazy: torch loads only where a model runs
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    parts = list(torch.split(buffer, list(lengths)))
    with warnings.catch_warnings():
        # torchvision 0.29 marks its image codecs deprecated in favour of torchcodec, which is
        # not installed on GPU nodes; the call is unchanged and still the batched nvJPEG path.
        warnings.simplefilter("ignore", DeprecationWarning)
        return decode_jpeg(parts, mode=ImageReadMode.RGB, device=device)


# ---------------------------------------------------------------- resizing


def shortest_side_size(height: int, width: int, short: int) -> tuple[int, int]:
    """(height, width) after resizing the short side to `short`, as torchvision's Resize(int).

    The long side is truncated, not rounded: int(short * long / short_side).
    """
    if width <= height:
        return int(short * height / width), short
    return short, int(short * width / height)


def _resample(frames, height: int, width: int, interpolation: str):
    """PIL's two-pass resize in float: horizontal, then vertical, uint8-rounded after each.

    PIL resamples one axis at a time and stores the first pass as uint8, so a bicubic
    overshoot below 0 or above 255 is clipped before the second pass; one float resize of
    both axes keeps it and differs by up to 15 grey levels near black and white. An axis
    whose size does not change is skipped, as PIL skips it.
    """
    # lazy: torch loads only where a model runs
    import torch.nn.functional as F

    def one_pass(x, size):
        x = F.interpolate(x, size=size, mode=interpolation, antialias=True, align_corners=False)
        return x.round_().clamp_(0, 255)

    if frames.shape[-1] != width:
        frames = one_pass(frames, (frames.shape[-2], width))
    if frames.shape[-2] != height:
        frames = one_pass(frames, (height, width))
    return frames


def _shortest(frames, pp: DevicePreprocess):
    # lazy: torch loads only where a model runs
    from torchvision.transforms.v2 import functional as F

    height, width = shortest_side_size(*frames.shape[-2:], pp.resize_to)
    resized = _resample(frames, height, width, pp.interpolation)
    return F.center_crop(resized, [pp.size, pp.size])


def _squash(frames, pp: DevicePreprocess):
    return _resample(frames, pp.size, pp.size, pp.interpolation)


# resize_mode -> (float frames [N, 3, H, W] of one size, config) -> [N, 3, size, size]
RESIZE_MODES: dict[str, Callable[[Any, DevicePreprocess], Any]] = {
    "shortest": _shortest,
    "squash": _squash,
}


def resize_frames(frames: Sequence, pp: DevicePreprocess):
    """Decoded frames ([3, H, W] uint8, any sizes) -> [N, 3, size, size] uint8, in order.

    Frames of one size are resized in one call; a shard's frames share the short side but
    not always the aspect ratio, so there are usually one or a few groups. The float result
    is rounded and clamped back to uint8, as PIL's resize returns it.
    """
    # lazy: torch loads only where a model runs
    import torch

    if not frames:
        raise ValueError("no frames to resize")
    first = frames[0]
    out = torch.empty((len(frames), 3, pp.size, pp.size), dtype=torch.uint8, device=first.device)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, frame in enumerate(frames):
        groups.setdefault(tuple(frame.shape), []).append(i)
    for indices in groups.values():
        batch = torch.stack([frames[i] for i in indices]).float()
        resized = RESIZE_MODES[pp.resize_mode](batch, pp)
        index = torch.as_tensor(indices, device=first.device)
        out.index_copy_(0, index, resized.to(torch.uint8))
    return out


def jpegs_to_pixels(jpegs: Sequence[bytes], pp: DevicePreprocess, device):
    """JPEG byte strings -> [N, 3, size, size] uint8 on `device`: decoded, resized, cropped."""
    buffer, lengths = jpeg_buffer(jpegs)
    return resize_frames(decode_jpegs(buffer, lengths, device), pp)


def preprocess_jpegs(jpegs: Sequence[bytes], pp: DevicePreprocess, device):
    """The model input for a batch of JPEG frames, computed on `device`: decoded, resized,
    cropped and normalised as the backbone's ToTensor + Normalize would (normalise_frames,
    which the workers' path runs too)."""
    return normalise_frames(jpegs_to_pixels(jpegs, pp, device), pp, device)


def normalise_frames(pixels, split: Any, device: str, out=None):
    """uint8 [N, 3, H, W] -> the float32 tensor ToTensor + Normalize would give, on `device`.

    `split` is anything with the Normalize's `mean` and `std` (a DevicePreprocess, or
    zsar.stages.embed.SplitTransform). `out`, a float32 tensor on `device` with at least
    N rows, is reused instead of a new one.
    """
    # lazy: torch loads only where a model runs
    import torch

    pixels = pixels.to(device, non_blocking=True)
    if out is None:
        out = torch.empty(pixels.shape, dtype=torch.float32, device=pixels.device)
    out = out[: len(pixels)]
    out.copy_(pixels).div_(255)  # the uint8 -> float32 -> /255 of ToTensor
    mean = torch.as_tensor(split.mean, dtype=torch.float32, device=out.device)
    std = torch.as_tensor(split.std, dtype=torch.float32, device=out.device)
    return out.sub_(mean.view(-1, 1, 1)).div_(std.view(-1, 1, 1))
