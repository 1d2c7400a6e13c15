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
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from zsar import descriptors as d
from zsar.io import read_json

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
    "valid answer": [("text", VALID_TEXT)],
    "fenced answer": [("text", "Sure! Here it is:\n```json\n" + VALID_TEXT + "\n```\nEnjoy.")],
    "repairable answer": [("text", BROKEN_TEXT), ("text", VALID_TEXT)],
    "hopeless answer": [("text", "I would rather write a poem about golf.")],
    "rate limited": [("status", 429, "slow down")],
    "server error": [("status", 500, "internal error")],
    "flaky server": [("status", 500, "try again"), ("text", VALID_TEXT)],
    "slow server": [("sleep", 1.0)],
    "bad request": [("status", 400, "echo")],
}


class FakeChatServer:
    """An OpenAI-style /chat/completions endpoint that plays SCRIPTS, keyed by class name."""

    def __init__(self, scripts):
        self.scripts = scripts
        self.requests: dict[str, list[dict]] = {name: [] for name in scripts}
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def _next_action(self, body):
        asked = body["messages"][3]["content"]  # the real request follows the worked example
        name = re.search(r'Action class: "([^"]+)"', asked).group(1)
        with self.lock:
            self.requests[name].append(body)
            script = self.scripts[name]
            return script[min(len(self.requests[name]), len(script)) - 1]

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output quiet
                pass

            def _send(self, status, payload):
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting: that is the point of the slow case

            def do_POST(self):
                assert self.path == "/v1/chat/completions"
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                auth = self.headers.get("Authorization", "")
                if auth != f"Bearer {SECRET}":
                    return self._send(401, {"error": "bad key"})
                action = server._next_action(body)
                if action[0] == "sleep":
                    time.sleep(action[1])
                    return self._send(200, _completion(VALID_TEXT))
                if action[0] == "status":
                    # A careless server that echoes the credentials back in its error body.
                    text = f"{action[2]}; you sent {auth}" if action[2] == "echo" else action[2]
                    return self._send(action[1], {"error": text})
                return self._send(200, _completion(action[1]))

        return Handler

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _completion(text):
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}


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
        with FakeChatServer(scripts) as server, caplog.at_level(logging.INFO):
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
    assert len(server.requests["valid answer"]) == 1
    assert len(server.requests["fenced answer"]) == 1
    first, second = server.requests["repairable answer"]
    assert "was rejected" not in json.dumps(first)
    assert second["messages"][-2] == {"role": "assistant", "content": BROKEN_TEXT}
    repair = second["messages"][-1]["content"]
    assert "was rejected" in repair and "invalid JSON" in repair and BROKEN_TEXT in repair
    assert second["temperature"] == 0.0 and second["max_tokens"] == 64

    hopeless = classes["HopelessAnswer"]
    assert hopeless["fallback"] is True and hopeless["attributes"] == []
    assert hopeless["reason"].startswith("no valid answer after 2 repair attempt(s)")
    assert len(server.requests["hopeless answer"]) == 3  # asked once, repaired twice

    # Flaky endpoints: retried with backoff (max_retries=2 -> 3 tries), then recorded.
    assert classes["RateLimited"]["reason"] == "request failed: HTTP 429 after 2 retries"
    assert classes["ServerError"]["reason"] == "request failed: HTTP 500 after 2 retries"
    assert classes["SlowServer"]["reason"].startswith("request failed: timeout")
    for name in ("rate limited", "server error", "slow server"):
        assert len(server.requests[name]) == 3, name
    assert len(server.requests["flaky server"]) == 2
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
    assert len(server.requests["repairable answer"]) == 1


def test_unset_key_variable_fails_before_any_request(tmp_path, monkeypatch):
    from zsar.chat import ChatConfigError

    monkeypatch.delenv(KEY_ENV, raising=False)
    classes = write_classes(tmp_path / "classes.parquet", ["valid answer"])
    entry = {"name": "openai-test", "backend": "openai", "model": "m",
             "base_url": "http://127.0.0.1:9/v1", "api_key_env": KEY_ENV}
    with pytest.raises(ChatConfigError, match=KEY_ENV):
        d.run_descriptor_stage(classes, tmp_path / "o.json", entry, PROMPTS, 8, 1, 0, tmp_path)
    assert not (tmp_path / "o.json").exists()
