"""The openai descriptors backend against a local OpenAI-compatible server started by the test.

Each class gets a script of answers from the server: valid JSON, JSON in a code fence with
prose around it, invalid JSON that the repair prompt fixes, invalid forever, and the flaky
endpoint cases (429, 500, timeouts, a 400 that echoes the key). Every class ends as expected,
the run goes on, and the API key appears nowhere in the output or the log.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.chat_server import ScriptedChatServer, ok

from zsar.data.io import read_json
from zsar.stages import descriptors as d

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ROOT / "config" / "prompts" / "descriptors-v1.yaml"
SECRET = "sk-zsar-test-5ecret-d0-not-leak"
KEY_ENV = "ZSAR_TEST_DESCRIPTORS_KEY"

VALID = {
    "attributes": ["golf club", "arms swinging", "hips turning", "ball on a tee", "green grass"],
    "descriptions": ["A person swings a club in an arc and strikes a small white ball."],
    "hierarchy": ["sports", "golf", "golf swing"],
}
VALID_TEXT = json.dumps(VALID)
BROKEN_TEXT = '{"attributes": ["golf club", "arms swinging"], "descriptions": [}'

# class name -> what the server does on its 1st, 2nd, ... request for it (the last repeats).
SCRIPTS = {
    "valid answer": [ok(VALID_TEXT)],
    "fenced answer": [ok("Sure! Here it is:\n```json\n" + VALID_TEXT + "\n```\nEnjoy.")],
    "repairable answer": [ok(BROKEN_TEXT), ok(VALID_TEXT)],
    "hopeless answer": [ok("I would rather write a poem about golf.")],
    "rate limited": [{"status": 429, "json": {"error": "slow down"}}],
    "server error": [{"status": 500, "json": {"error": "internal error"}}],
    "flaky server": [{"status": 500, "json": {"error": "try again"}}, ok(VALID_TEXT)],
    "slow server": [{**ok(VALID_TEXT), "delay": 1.0}],
    # A careless server that echoes the credentials back in its error body.
    "bad request": [{"status": 400, "json": {"error": f"echo; you sent Bearer {SECRET}"}}],
}


def asked_class(body: dict) -> str:
    """The class a descriptors request asks about (the real request follows the example)."""
    return re.search(r'Action class: "([^"]+)"', body["messages"][3]["content"]).group(1)


def scripted(scripts):
    def script(body, attempt):
        steps = scripts[asked_class(body)]
        return steps[min(attempt, len(steps) - 1)]

    return script


def requests_for(server: ScriptedChatServer, name: str) -> list[dict]:
    return [body for _, body in server.requests if asked_class(body) == name]


def write_classes(path: Path, names: list[str]) -> Path:
    raw = [n.title().replace(" ", "") for n in names]
    table = pa.table({
        "split": pa.array([1] * len(names), pa.int32()),
        "class_id": pa.array(range(len(names)), pa.int32()),
        "name": raw,
        "display_name": names,
    })
    pq.write_table(table, path)
    return path


@pytest.fixture
def run_stage(tmp_path, monkeypatch, caplog, capsys):
    monkeypatch.setenv(KEY_ENV, SECRET)

    def run(scripts, repair_attempts=2, max_retries=2):
        classes = write_classes(tmp_path / "classes.parquet", list(scripts))
        out = tmp_path / "descriptors" / "openai-test.json"
        entry = {
            "name": "openai-test", "backend": "openai", "model": "test-model",
            "api_key_env": KEY_ENV, "concurrency": 4, "timeout_s": 0.25,
            "max_retries": max_retries, "backoff_s": 0.01,
        }
        server = ScriptedChatServer(scripted(scripts), asked_class, api_key=SECRET)
        with server, caplog.at_level(logging.INFO):
            entry["base_url"] = server.base_url
            d.run_descriptor_stage(classes, out, entry, PROMPTS, max_new_tokens=64, batch_size=2,
                                   repair_attempts=repair_attempts, resources=tmp_path)
        log = caplog.text + capsys.readouterr().err
        return read_json(out), server, log, out.read_text()

    return run


def test_openai_backend_ends_every_class_as_expected(run_stage):
    doc, server, log, raw_output = run_stage(SCRIPTS)
    d.validate_descriptors(doc)
    classes = doc["classes"]
    assert len(classes) == len(SCRIPTS)  # nothing stopped the run

    for name in ("ValidAnswer", "FencedAnswer", "RepairableAnswer", "FlakyServer"):
        assert classes[name]["fallback"] is False, name
        assert classes[name]["attributes"] == VALID["attributes"]
        assert classes[name]["hierarchy"] == VALID["hierarchy"]

    # Valid and fenced answers need one request; the repaired one two, the second of which
    # carries the repair prompt with the validator's message and the rejected answer.
    assert len(requests_for(server, "valid answer")) == 1
    assert len(requests_for(server, "fenced answer")) == 1
    first, second = requests_for(server, "repairable answer")
    assert "was rejected" not in json.dumps(first)
    assert second["messages"][-2] == {"role": "assistant", "content": BROKEN_TEXT}
    repair = second["messages"][-1]["content"]
    assert "was rejected" in repair and "invalid JSON" in repair and BROKEN_TEXT in repair
    assert second["temperature"] == 0.0 and second["max_tokens"] == 64

    hopeless = classes["HopelessAnswer"]
    assert hopeless["fallback"] is True and hopeless["attributes"] == []
    assert hopeless["reason"].startswith("no valid answer after 2 repair attempt(s)")
    assert len(requests_for(server, "hopeless answer")) == 3  # asked once, repaired twice

    # Flaky endpoints: retried with backoff (max_retries=2 -> 3 tries), then recorded.
    assert classes["RateLimited"]["reason"] == "request failed: HTTP 429 after 2 retries"
    assert classes["ServerError"]["reason"] == "request failed: HTTP 500 after 2 retries"
    assert classes["SlowServer"]["reason"].startswith("request failed: timeout")
    for name in ("rate limited", "server error", "slow server"):
        assert len(requests_for(server, name)) == 3, name
    assert len(requests_for(server, "flaky server")) == 2
    assert "retry 1/2" in log

    bad = classes["BadRequest"]["reason"]
    assert bad.startswith("request failed: HTTP 400") and "***" in bad

    fallbacks = {"HopelessAnswer", "RateLimited", "ServerError", "SlowServer", "BadRequest"}
    assert {n for n, r in classes.items() if r["fallback"]} == fallbacks
    assert doc["summary"] == {"classes": len(SCRIPTS), "fallbacks": len(fallbacks)}
    assert doc["prompt_version"] == "descriptors-v1"

    # The key reached the server (it checks it) but no output or log.
    assert SECRET not in raw_output
    assert SECRET not in log
    assert "falls back to its name" in log  # the log is not simply empty


def test_no_repair_attempts_means_first_invalid_answer_falls_back(run_stage):
    scripts = {k: SCRIPTS[k] for k in ("valid answer", "repairable answer")}
    doc, server, _, _ = run_stage(scripts, repair_attempts=0)
    assert doc["classes"]["ValidAnswer"]["fallback"] is False
    repairable = doc["classes"]["RepairableAnswer"]
    assert repairable["fallback"] is True
    assert repairable["reason"].startswith(
        "no valid answer after 0 repair attempt(s): invalid JSON"
    )
    assert len(requests_for(server, "repairable answer")) == 1


def test_unset_key_variable_fails_before_any_request(tmp_path, monkeypatch):
    from zsar.models.chat import ChatConfigError

    monkeypatch.delenv(KEY_ENV, raising=False)
    classes = write_classes(tmp_path / "classes.parquet", ["valid answer"])
    entry = {"name": "openai-test", "backend": "openai", "model": "m",
             "base_url": "http://127.0.0.1:9/v1", "api_key_env": KEY_ENV}
    with pytest.raises(ChatConfigError, match=KEY_ENV):
        d.run_descriptor_stage(classes, tmp_path / "o.json", entry, PROMPTS, 8, 1, 0, tmp_path)
    assert not (tmp_path / "o.json").exists()
