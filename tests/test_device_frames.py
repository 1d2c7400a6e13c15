"""Frames decoded and resized on the model's device against the PIL worker path.

The device path (zsar.models.device_frames) is what the embedding stage uses on a GPU; here it runs
on the CPU with the same code. Its pixels are within a grey level or two of PIL's, and its
video embeddings must agree with the PIL path's within fp16 tolerance.
"""

from __future__ import annotations

import copy
import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from zsar.models.backbones import build_image_transform, load_backbone
from zsar.models.device_frames import (
    device_preprocess,
    jpegs_to_pixels,
    preprocess_jpegs,
    shortest_side_size,
)
from zsar.models.registry import READY_FILE
from zsar.models.tiny import build_tiny_open_clip
from zsar.stages.embed import (
    frame_path,
    iter_video_embeddings,
    normalise_frames,
    split_transform,
    uint8_frames,
)
from zsar.stages.frames import FRAMES_SCHEMA, decode_jpegs

# fp16 has 10 fraction bits: near 1 its numbers are 2**-10 = 9.8e-4 apart, and components of
# a unit vector lie in [-1, 1]. Two embeddings closer than that per component are the same
# embedding as far as an fp16 model can tell.
FP16_TOLERANCE = 2.0**-10
# The CPU always; a GPU too where there is one (nvJPEG's IDCT is not libjpeg's, and the model
# runs with fp16 weights there).
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _jpeg_frame(rng, height: int, width: int) -> bytes:
    """A smooth random picture with sharp-ish detail, JPEG-coded as the frames stage does."""
    small = rng.integers(0, 256, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((width, height), Image.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def jpegs():
    """Frames of two sizes (K400's 340x256 and a narrower clip), interleaved."""
    rng = np.random.default_rng(0)
    return [_jpeg_frame(rng, 256, 340 if i % 3 else 300) for i in range(9)]


def _pil_pixels(jpegs, cfg) -> torch.Tensor:
    split = split_transform(build_image_transform(cfg))
    return uint8_frames(decode_jpegs(jpegs), split.pil)


# ---------------------------------------------------------------- pure pieces


@pytest.mark.parametrize(("height", "width"), [(256, 340), (340, 256), (240, 320), (97, 131)])
@pytest.mark.parametrize("short", [64, 224, 256])
def test_short_side_size_is_torchvisions(height, width, short):
    from torchvision import transforms as T

    resized = T.Resize(short)(Image.new("RGB", (width, height)))
    assert shortest_side_size(height, width, short) == (resized.height, resized.width)


def test_configs_without_a_tensor_form_stay_on_the_cpu_path():
    assert device_preprocess({"interpolation": "lanczos"}) is None
    assert device_preprocess({"resize_mode": "longest"}) is None
    pp = device_preprocess({"size": 224, "crop_pct": 0.875, "interpolation": "bilinear"})
    assert (pp.size, pp.resize_to, pp.resize_mode) == (224, 256, "shortest")


# ---------------------------------------------------------------- pixels

# Grey levels the device path's pixels may differ from PIL's, and the share of values that
# may differ. On the CPU both decode with libjpeg-turbo and only the resize's arithmetic
# differs. nvJPEG has its own IDCT and chroma upsampling; its bound is a first guess, for the
# first GPU run to confirm (the embeddings' bound below is the one that matters).
PIXEL_BOUNDS = {"cpu": (2, 0.05), "cuda": (8, 0.5)}


@pytest.mark.parametrize(
    "cfg",
    [
        {"size": 224},  # OpenAI CLIP: short side 224, bicubic, centre crop
        {"size": 64},  # the tiny CLIP: a 4x reduction
        {"size": 224, "crop_pct": 0.9, "interpolation": "bilinear"},  # video models
        {"size": 256, "resize_mode": "squash", "interpolation": "bilinear"},  # SigLIP
        {"size": 384, "resize_mode": "squash"},  # enlarging
    ],
)
@pytest.mark.parametrize("device", DEVICES)
def test_device_pixels_are_within_a_few_grey_levels_of_pil(jpegs, cfg, device):
    expected = _pil_pixels(jpegs, cfg).int()
    got = jpegs_to_pixels(jpegs, device_preprocess(cfg), device)
    assert got.dtype == torch.uint8 and got.shape == expected.shape
    assert got.device.type == device
    diff = (got.cpu().int() - expected).abs()
    share = (diff > 0).float().mean().item()
    largest, most = PIXEL_BOUNDS[device]
    # Measured on the CPU: at most 2 grey levels, in 0.2 % to 2.5 % of the values.
    assert diff.max() <= largest and share < most, f"max {diff.max()}, {share:.2%} differ"


def test_device_model_input_matches_the_transforms_normalisation(jpegs):
    cfg = {"size": 64, "mean": (0.5, 0.4, 0.3), "std": (0.2, 0.25, 0.3)}
    pp = device_preprocess(cfg)
    pixels = jpegs_to_pixels(jpegs, pp, "cpu")
    expected = normalise_frames(pixels, split_transform(build_image_transform(cfg)), "cpu")
    assert torch.equal(preprocess_jpegs(jpegs, pp, "cpu"), expected)


# ---------------------------------------------------------------- video embeddings


@pytest.fixture(scope="module", params=DEVICES)
def backbone_224(request, tmp_path_factory):
    """A tiny random open_clip at 224 px (the real resize from 256), loaded as fetched ones are
    (fp32 on the CPU, fp16 weights on a GPU)."""
    resources = tmp_path_factory.mktemp("resources")
    spec = {
        "seed": 0,
        "model_cfg": {
            "embed_dim": 64,
            "vision_cfg": {
                "image_size": 224,
                "layers": 2,
                "width": 64,
                "head_width": 32,
                "patch_size": 32,
            },  # fmt: skip
            "text_cfg": {
                "context_length": 32,
                "vocab_size": 49408,
                "width": 64,
                "heads": 2,
                "layers": 2,
            },  # fmt: skip
        },
        "preprocess_cfg": {"interpolation": "bicubic", "resize_mode": "shortest"},
    }
    folder = resources / "models" / "tiny-224"
    build_tiny_open_clip(spec, folder)
    (folder / READY_FILE).write_text("{}")
    return load_backbone({"name": "tiny-224", "backend": "open_clip"}, resources, request.param)


@pytest.fixture(scope="module")
def frames_shard(tmp_path_factory):
    """8 videos of 4 frames (two frame sizes), row groups of 3, as the frames stage writes."""
    rng = np.random.default_rng(1)
    rows = []
    for v in range(8):
        height, width = (256, 340) if v % 3 else (256, 300)
        rows.append({"video_id": f"video_{v}", "frame_indices": [0, 1, 2, 3],
                     "jpeg": [_jpeg_frame(rng, height, width) for _ in range(4)],
                     "height": height, "width": width, "num_source_frames": 4})  # fmt: skip
    path = tmp_path_factory.mktemp("shard") / "000-of-001.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=FRAMES_SCHEMA), path, row_group_size=3)
    return path


def _embeddings(shard, backbone, frames_on: str, workers: int = 0) -> np.ndarray:
    out = iter_video_embeddings(
        shard, backbone, batch_frames=12, workers=workers, block_videos=2, frames_on=frames_on
    )
    return np.stack([vector for _, vector, _ in out])


# Runs a 224 px model over the shard five times, once in spawned loader workers: make test
# only. The pixels themselves are compared fast above.
@pytest.mark.slow
def test_device_path_embeddings_equal_the_pil_paths_within_fp16_tolerance(
    frames_shard, backbone_224
):
    pil = _embeddings(frames_shard, backbone_224, "workers")
    device = _embeddings(frames_shard, backbone_224, "device")
    gap = np.abs(device - pil).max()
    if backbone_224.device != "cpu":
        # fp16 weights on both sides: each carries fp16 rounding, so allow twice that.
        assert gap <= 2 * FP16_TOLERANCE
        return
    assert gap <= FP16_TOLERANCE  # measured: 7.8e-5

    # The same model with fp16 weights on the PIL path's pixels moves the embeddings more
    # than the device path does (measured: 2.4e-4).
    half = copy.copy(backbone_224)
    half.encoders = copy.copy(backbone_224.encoders)
    half.encoders.model = copy.deepcopy(backbone_224.encoders.model).half()
    half.dtype = torch.float16
    assert gap < np.abs(_embeddings(frames_shard, half, "workers") - pil).max()

    # Workers that send JPEG buffers give the very same result as reading in the main process.
    assert np.array_equal(_embeddings(frames_shard, backbone_224, "device", workers=2), device)


@pytest.mark.slow  # runs the 224 px model over the shard twice
def test_the_equivalence_test_catches_a_path_that_skips_normalisation(frames_shard, backbone_224):
    """Only /255 and no mean/std, as a device path that forgot Normalize would compute."""
    broken = copy.copy(backbone_224)
    broken.preprocess_cfg = {**backbone_224.preprocess_cfg, "mean": (0.0,) * 3, "std": (1.0,) * 3}
    pil = _embeddings(frames_shard, backbone_224, "workers")
    assert np.abs(_embeddings(frames_shard, broken, "device") - pil).max() > FP16_TOLERANCE


def test_frame_path_by_device_and_fallback(backbone_224):
    if backbone_224.device != "cpu":
        pytest.skip("the defaults are checked on the CPU backbone")
    assert frame_path(backbone_224) == "workers"  # the CPU default: PIL's exact pixels
    assert frame_path(backbone_224, "device") == "device"
    lanczos = copy.copy(backbone_224)
    lanczos.preprocess_cfg = {**backbone_224.preprocess_cfg, "interpolation": "lanczos"}
    assert frame_path(lanczos, "device") == "workers"
    cuda = copy.copy(backbone_224)
    cuda.device = "cuda:0"
    assert frame_path(cuda) == "device"
    with pytest.raises(ValueError, match="frame path"):
        frame_path(backbone_224, "gpu")
