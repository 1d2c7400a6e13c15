"""benchmarks/sweep_estimate.py: its arithmetic against sums worked out by hand."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load_script():
    spec = importlib.util.spec_from_file_location(
        "sweep_estimate", REPO / "benchmarks" / "sweep_estimate.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


se = _load_script()

# Round numbers, so every figure below can be checked with pencil and paper.
RATES = se.Rates(
    decode_videos_per_s=100.0,
    decode_frames=10,
    jpeg_share=0.05,
    encode_frames_per_s={"A": 1000.0, "B": 500.0},
    caption_per_s=10.0,
    caption_batch=10,
    caption_new_tokens=10,
    text_per_s=1000.0,
)
SWEEP = se.Sweep(
    videos=1000,
    frames=10,
    classes=25,
    texts_per_class=2,
    descriptor_new_tokens=20,
    shards=10,
    backbones=(("a", "A"), ("b", "B")),
)


def test_stage_seconds_by_hand():
    assert se.stage_seconds(RATES, SWEEP) == pytest.approx(
        {
            "frames (CPU decode)": 1000 / 100,  # 10 s: measured at these 10 frames
            "embed a": 1000 * 10 / 1000,  # 10 s
            "embed b": 1000 * 10 / 500,  # 20 s
            "captions": 1000 / 10,  # 100 s
            # ceil(25 / 10) = 3 batches of 10 / 10 = 1 s each, x 20 / 10 new tokens
            "descriptors": 3 * 1.0 * 2,
            "text embeddings": 2 * (25 * 2 + 1000) / 1000,  # 2.1 s
        }
    )


def test_more_frames_cost_only_their_jpeg_encoding():
    # 40 frames where 10 were measured: 3 x 5 % more time per video.
    assert se.decode_rate(RATES, 40) == pytest.approx(100 / 1.15)
    assert se.decode_rate(RATES, 10) == pytest.approx(100)


def test_one_gpu_overlaps_decoding_with_the_gpu_stages():
    est = se.estimate(RATES, SWEEP, gpus=1)
    gpu = 10 + 20 + 100 + 6 + 2.1  # 138.1 s, more than the 10 s of decoding
    assert est.gpu_wall == pytest.approx(gpu)
    assert est.decode_wall == pytest.approx(10)
    assert est.total == pytest.approx(1 + gpu)  # the first shard's frames (10 s / 10) first
    assert est.serial == pytest.approx(10 + gpu)
    assert est.dominant == "captions"


def test_gpus_share_the_work_but_not_the_longest_job():
    est = se.estimate(RATES, SWEEP, gpus=4)
    assert est.gpu_wall == pytest.approx(138.1 / 4)  # 34.5 s > the 10 s caption shard job
    assert est.decode_wall == pytest.approx(1 * 3)  # ceil(10 shards / 4) frames jobs each
    assert est.total == pytest.approx(1 + 138.1 / 4)
    # 100 GPUs: the single descriptors job (6 s) is the floor.
    assert se.estimate(RATES, SWEEP, gpus=100).gpu_wall == pytest.approx(10.0)  # caption shard
    lone = se.Sweep(**{**SWEEP.__dict__, "descriptor_new_tokens": 200})  # 60 s descriptors
    assert se.estimate(RATES, lone, gpus=100).gpu_wall == pytest.approx(60.0)


def test_a_slow_decoder_makes_decoding_the_dominant_stage():
    slow = se.Rates(**{**RATES.__dict__, "decode_videos_per_s": 1.0})  # 1000 s of decoding
    est = se.estimate(slow, SWEEP, gpus=1)
    assert est.total == pytest.approx(100 + (1000 - 100))  # first shard, then the rest
    assert est.dominant == "frames"


def test_rates_from_the_suite_override_the_reference(tmp_path):
    path = tmp_path / "rates.json"
    path.write_text(json.dumps({"caption_per_s": 5.0, "encode_frames_per_s": {"A": 2000.0}}))
    rates = se.rates_from_file(path, RATES)
    assert rates.caption_per_s == 5.0 and rates.decode_videos_per_s == 100.0
    assert rates.encode_frames_per_s == {"A": 2000.0, "B": 500.0}
    with pytest.raises(ValueError, match="no encode rate"):
        se.stage_seconds(se.Rates(encode_frames_per_s={"A": 1.0}), SWEEP)


def test_the_command_prints_one_machine_readable_line_per_gpu_count(capsys):
    assert se.main(["--gpus", "1,2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2].startswith("sweep_minutes=") and lines[-2].endswith("gpus=1 dominant=captions")
    assert lines[-1].split()[1] == "gpus=2"
