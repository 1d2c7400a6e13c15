"""The openai captions backend against a real local HTTP server: request bodies with image data
URLs, retries on 500/429/timeouts, failures recorded after the retries run out, the run goes
on, and the API key appears in no log or output file."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.chat_server import ScriptedChatServer, ok
from PIL import Image

from zsar.models.caption_inputs import load_prompt_set, subsample_frames
from zsar.models.chat import ChatConfigError
from zsar.stages import captions as C

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ROOT / "config" / "prompts" / "captions-v1.yaml"
API_KEY = "sk-zsar-caption-key-93b1d7e0c4"
KEY_ENV = "ZSAR_TEST_CAPTIONS_KEY"


def jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG")
    return buffer.getvalue()


# What the server does on each attempt for each video (missing attempts: a good caption).
SCRIPT = {
    "v0_ok.mp4": [],
    "v1_500_then_ok.mp4": [{"status": 500, "text": "internal error"}],
    "v2_429_then_ok.mp4": [{"status": 429, "text": "slow down", "headers": {"Retry-After": "0"}}],
    "v3_always_500.mp4": [{"status": 500, "text": "internal error"}] * 3,
    "v4_slow_then_ok.mp4": [{**ok("late"), "delay": 1.0}],
    "v5_always_slow.mp4": [{**ok("late"), "delay": 1.0}] * 3,
    "v6_empty.mp4": [ok("  <|im_end|> ")] * 3,
    "v7_chatty.mp4": [ok("assistant: A person  waves a flag in a park.<|im_end|>")] * 3,
}
NO_FRAMES = "v8_noframes.mp4"
FRAMES = {vid: [jpeg(10 * n + i) for i in range(3)] for n, vid in enumerate(SCRIPT)}


@pytest.fixture
def frames_shard(tmp_path):
    rows = [{"video_id": vid, "jpeg": FRAMES.get(vid, [])} for vid in [*SCRIPT, NO_FRAMES]]
    path = tmp_path / "frames" / "000-of-001.parquet"
    path.parent.mkdir()
    schema = pa.schema([("video_id", pa.string()), ("jpeg", pa.list_(pa.binary()))])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def video_of(body: dict) -> str:
    """Which video a request is for, from its first image."""
    url = body["messages"][-1]["content"][0]["image_url"]["url"]
    first = base64.b64decode(url.split(",", 1)[1])
    return next(vid for vid, jpegs in FRAMES.items() if jpegs[0] == first)


def script(body: dict, attempt: int) -> dict:
    vid = video_of(body)
    steps = SCRIPT[vid]
    return steps[attempt] if attempt < len(steps) else ok(f"A caption of {vid}.")


def entry(server: ScriptedChatServer) -> dict:
    return {"name": "test-endpoint", "backend": "openai", "base_url": server.base_url,
            "model": "served-vlm", "api_key_env": KEY_ENV, "concurrency": 4,
            "timeout_s": 0.3, "max_retries": 2, "backoff_s": 0.01}


def test_openai_backend_retries_records_failures_and_never_leaks_the_key(
    frames_shard, tmp_path, monkeypatch, debug_log
):
    monkeypatch.setenv(KEY_ENV, API_KEY)
    out = tmp_path / "captions" / "000-of-001.parquet"
    failures_out = tmp_path / "captions" / "000-of-001.failures.parquet"
    with ScriptedChatServer(script, video_of) as server:
        C.run_caption_stage(frames_shard, out, failures_out, entry(server), PROMPTS,
                            max_new_tokens=40, batch_size=3, resources=tmp_path, device="auto")

    # The requests: model, token limit, greedy, the frames as data URLs in order, the prompt.
    prompt = load_prompt_set(PROMPTS).prompt
    for headers, body in server.requests:
        assert headers["Authorization"] == f"Bearer {API_KEY}"  # the key was really used
        assert body["model"] == "served-vlm"
        assert body["max_tokens"] == 40 and body["temperature"] == 0.0
        parts = body["messages"][-1]["content"]
        images = [base64.b64decode(p["image_url"]["url"].removeprefix("data:image/jpeg;base64,"))
                  for p in parts if p["type"] == "image_url"]
        assert images == FRAMES[video_of(body)]
        assert parts[-1] == {"type": "text", "text": prompt}
    assert server.attempts["v1_500_then_ok.mp4"] == 2
    assert server.attempts["v2_429_then_ok.mp4"] == 2
    assert server.attempts["v3_always_500.mp4"] == 3  # 1 + max_retries
    assert server.attempts["v5_always_slow.mp4"] == 3
    assert NO_FRAMES not in server.attempts  # nothing to send

    captions = {r["video_id"]: r["caption"] for r in pq.read_table(out).to_pylist()}
    assert captions == {
        "v0_ok.mp4": "A caption of v0_ok.mp4.",
        "v1_500_then_ok.mp4": "A caption of v1_500_then_ok.mp4.",
        "v2_429_then_ok.mp4": "A caption of v2_429_then_ok.mp4.",
        "v4_slow_then_ok.mp4": "A caption of v4_slow_then_ok.mp4.",
        "v7_chatty.mp4": "A person waves a flag in a park.",
    }
    failures = {f["video_id"]: f for f in pq.read_table(failures_out).to_pylist()}
    assert set(failures) == {"v3_always_500.mp4", "v5_always_slow.mp4", "v6_empty.mp4", NO_FRAMES}
    assert failures["v3_always_500.mp4"]["reason"] == "HTTP 500 after 2 retries"
    assert failures["v5_always_slow.mp4"]["reason"] == "timeout (0.3s) after 2 retries"
    assert failures["v6_empty.mp4"]["reason"] == "empty caption"
    assert failures[NO_FRAMES]["reason"] == "no frames"
    assert {f["stage"] for f in failures.values()} == {"captions"}

    log_text = debug_log.read_text()
    assert "HTTP 500" in log_text and "retry" in log_text  # the log is not empty
    key = API_KEY.encode()
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert debug_log in written and out in written
    for path in written:
        assert key not in path.read_bytes(), f"API key leaked into {path}"


def test_missing_key_variable_fails_before_any_output(frames_shard, tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with ScriptedChatServer(script, video_of) as server:
        with pytest.raises(ChatConfigError, match=KEY_ENV):
            C.run_caption_stage(frames_shard, tmp_path / "o.parquet", tmp_path / "f.parquet",
                                entry(server), PROMPTS, 16, 2, tmp_path, "cpu")
    assert not server.requests
    assert not (tmp_path / "o.parquet").exists()


def test_max_frames_subsamples_evenly():
    assert subsample_frames(list(range(16)), 4) == [2, 6, 10, 14]
    assert subsample_frames([1, 2], 8) == [1, 2]
    assert subsample_frames([1, 2, 3], None) == [1, 2, 3]
