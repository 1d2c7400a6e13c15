"""The captions record the generation settings generate() really ran with: the checkpoint's
generation_config.json (here a tiny Qwen2.5-VL that, like Qwen's, adds repetition_penalty
1.05), zsar's greedy settings, and the registry entry's `generation` overrides."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from zsar.data.io import read_provenance
from zsar.models.caption_inputs import VIDEO_TIMING, load_prompt_set
from zsar.models.captioners import TransformersCaptioner, load_vlm, make_captioner
from zsar.models.registry import get_entry, load_registry, model_dir, model_identity
from zsar.models.tiny import build_tiny_vlm
from zsar.stages import captions as C
from zsar.stages.frames import FRAMES_SCHEMA

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = load_registry(ROOT / "config" / "models.yaml")
PROMPTS = ROOT / "config" / "prompts" / "captions-v1.yaml"
NAME = "tiny-vlm-penalised"
# What Qwen2.5-VL-7B-Instruct's generation_config.json adds (one of its published variants).
CHECKPOINT_GENERATION = {"repetition_penalty": 1.05, "do_sample": True, "temperature": 0.1,
                         "top_k": 1, "top_p": 0.001}


def jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def resources(tmp_path_factory):
    """A tiny Qwen2.5-VL whose saved generation_config.json has Qwen's extra settings."""
    root = tmp_path_factory.mktemp("resources")
    spec = {**get_entry(REGISTRY, "captioners", "tiny-vlm")["build"],
            "generation_config": CHECKPOINT_GENERATION}
    build_tiny_vlm(spec, model_dir(root, NAME))
    saved = json.loads((model_dir(root, NAME) / "generation_config.json").read_text())
    assert saved["repetition_penalty"] == 1.05  # the checkpoint really carries it
    return root


@pytest.fixture(scope="module")
def frames_shard(tmp_path_factory):
    rows = [{"video_id": f"v{k}.mp4", "jpeg": [jpeg(10 * k + i) for i in range(4)],
             "frame_indices": [12, 37, 62, 87], "height": 48, "width": 64,
             "num_source_frames": 100, "source_fps": 25.0, "source_duration_s": 4.0}
            for k in range(3)]
    path = tmp_path_factory.mktemp("frames") / "000-of-001.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=FRAMES_SCHEMA), path)
    return path


@pytest.fixture
def penalties(monkeypatch):
    """The repetition penalties generate() really applied (one per logits processor built)."""
    import transformers.generation.utils as generation

    applied: list[float] = []

    class Recorded(generation.RepetitionPenaltyLogitsProcessor):
        def __init__(self, penalty, *args, **kwargs):
            applied.append(penalty)
            super().__init__(penalty, *args, **kwargs)

    monkeypatch.setattr(generation, "RepetitionPenaltyLogitsProcessor", Recorded)
    return applied


def entry(**generation):
    base = {**get_entry(REGISTRY, "captioners", "tiny-vlm"), "name": NAME}
    base.pop("build")
    return {**base, "generation": generation} if generation else base


def run_stage(frames_shard, tmp_path, entry_):
    out = tmp_path / "caps.parquet"
    C.run_caption_stage(frames_shard, out, tmp_path / "caps.failures.parquet", entry_, PROMPTS,
                        max_new_tokens=6, batch_size=2, resources=tmp_path.parent / "res",
                        device="cpu")
    column = pq.read_table(out).column("generation_params").to_pylist()
    assert len(set(column)) == 1 and len(column) == 3
    return json.loads(column[0]), read_provenance(out), column[0]


@pytest.fixture
def stage_dir(tmp_path, resources):
    (tmp_path / "res").symlink_to(resources)
    work = tmp_path / "run"
    work.mkdir()
    return work


def test_the_checkpoints_settings_are_recorded_and_applied(frames_shard, stage_dir, penalties):
    params, block, raw = run_stage(frames_shard, stage_dir, entry())
    settings = params["generation_config"]
    assert settings["repetition_penalty"] == 1.05  # from generation_config.json
    assert settings["temperature"] == 0.1 and settings["top_k"] == 1  # set, unused by greedy
    assert settings["do_sample"] is False and settings["num_beams"] == 1  # zsar's
    assert settings["max_new_tokens"] == 6 == params["max_new_tokens"]
    assert params["decoding"] == "greedy"
    assert "transformers_version" not in settings
    assert block["generation_params"] == params  # the provenance says the same
    assert params["video_timing"] == VIDEO_TIMING  # and how the frames were timed
    assert penalties and set(penalties) == {1.05}  # and generate() really applied it
    # Canonical JSON: sorted keys at every level, so equal settings give equal bytes.
    assert raw == json.dumps(params, sort_keys=True, separators=(",", ":"))


@pytest.mark.parametrize("penalty", [1.3, 1.0])
def test_an_entry_override_wins_and_is_recorded(frames_shard, stage_dir, penalties, penalty):
    params, block, _ = run_stage(frames_shard, stage_dir, entry(repetition_penalty=penalty))
    assert params["generation_config"]["repetition_penalty"] == penalty
    assert block["generation_params"]["generation_config"]["repetition_penalty"] == penalty
    # 1.0 is no penalty: transformers builds no penalty processor at all.
    assert set(penalties) == ({penalty} if penalty != 1.0 else set())


def test_an_entry_can_choose_another_decoding(resources):
    processor, model = load_vlm(entry(), resources, "cpu")
    captioner = TransformersCaptioner(processor, model, load_prompt_set(PROMPTS),
                                      max_new_tokens=4, batch_size=1,
                                      generation={"num_beams": 2}, name=NAME)
    assert captioner.generation_params["decoding"] == "beam search"
    assert captioner.generation_config.num_beams == 2


@pytest.mark.parametrize("generation, words", [
    ({"repetition_penality": 1.1}, ["unknown generation setting", "repetition_penality"]),
    ({"max_new_tokens": 99}, ["may not set", "captions.max_new_tokens"]),
])
def test_bad_generation_settings_are_named(resources, generation, words):
    with pytest.raises(ValueError) as caught:
        make_captioner(entry(**generation), resources, "cpu", load_prompt_set(PROMPTS),
                       4, 1)
    message = str(caught.value)
    assert NAME in message and all(w in message for w in words)


def test_generation_overrides_are_part_of_the_captions_cache_key():
    plain = model_identity("captioners", entry())
    penalised = model_identity("captioners", entry(repetition_penalty=1.0))
    assert penalised["generation"] == {"repetition_penalty": 1.0}
    assert plain != penalised
