"""The whole workflow with the openai caption and descriptor backends facing a flaky server.

A local chat-completions server (started here, on 127.0.0.1) answers every conversation
first with 429, then not at all (the client times out), then with 500; only then does it
answer properly. A few conversations never get an answer. The registry entries `openai-vlm`
and `openai-chat` are pointed at it through a temporary models.yaml, with small timeouts
and backoff. The run must retry, record what still failed (caption failures in
failures.parquet, descriptor fallbacks in the descriptors JSON), and finish.

The server is careless with the API key, as issue #27 found servers can be: every answer
echoes it in a header and in its status line, every caption and descriptor it gives quotes
it, and the doomed classes' last answer is a 401 whose body echoes it across the 200th
character. The key is set in the environment variable the entries name; afterwards no
8-character piece of it may appear in any file the run (or `snakemake --report`) wrote,
read the way a user would share them (helpers.secret_scan: Parquet columns and metadata
decoded, the report's base64 pages decoded), nor in Snakemake's own output.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from helpers.chat_server import ScriptedChatServer, last_text, ok
from helpers.secret_scan import leaks, readable_texts, text_leaks
from helpers.workflow import copy_workflow, snakemake

from zsar.core.method import VARIANTS

# Runs the Snakemake workflow: the full suite (make test), not the fast tier (make check).
pytestmark = pytest.mark.slow

API_KEY = "sk-zsar-flaky-7f3c9a1e5d2b48c6a0e4"
ECHO = {"headers": {"X-Echo-Authorization": f"Bearer {API_KEY}"}, "reason": f"Echo {API_KEY}"}
MAX_RETRIES = 3
# Generous, so that on a busy machine only the deliberately slow answers time out.
TIMEOUT_S = 1.5
CAPTION = "A bright shape moves across a dark background"
# What the server answers, quoting the key, and what the run keeps of it.
ANSWERED_CAPTION = f"{CAPTION} (you sent Bearer {API_KEY})."
KEPT_CAPTION = f"{CAPTION} (you sent Bearer ***)."
DOOMED_CAPTIONS = 3  # the first conversations to arrive never get an answer
# The doomed classes' last answer: a 401 whose body has the key at this character.
DOOMED_CLASSES = {"rotating": 150, "falling": 175}
CLIPS_PER_CLASS = 2
NUM_VIDEOS = 6 * CLIPS_PER_CLASS
RUNS = ("baseline", "full")

RATE_LIMITED = {"status": 429, "text": "rate limited", "reason": ECHO["reason"],
                "headers": {"Retry-After": "0", **ECHO["headers"]}}
TOO_SLOW = {**ok("too late"), "delay": 2 * TIMEOUT_S}
SERVER_ERROR = {"status": 500, "text": f"internal error for Bearer {API_KEY}", **ECHO}
# Attempt k of every conversation; the attempt after these is answered (unless doomed).
TROUBLE = [RATE_LIMITED, TOO_SLOW, SERVER_ERROR]


def conversation_key(body: dict) -> str:
    return hashlib.sha256(json.dumps(body["messages"], sort_keys=True).encode()).hexdigest()


def class_of(body: dict) -> str:
    match = re.search(r'Action class: "([^"]+)"', last_text(body))
    assert match, last_text(body)[:200]
    return match.group(1)


def unauthorized(offset: int) -> dict:
    return {"status": 401, "text": "x" * offset + f"Bearer {API_KEY} is not valid", **ECHO}


def descriptor_answer(cls: str) -> str:
    return json.dumps({
        "attributes": [f"{cls} shape", "plain background", "one moving object",
                       "smooth motion", "flat colours"],
        "descriptions": [f"A coloured shape is {cls} on a plain background ({API_KEY})."],
        "hierarchy": ["motion", "shape motion", cls],
    })


class FlakyScript:
    """What the server does: trouble first, then an answer, except for doomed conversations."""

    def __init__(self):
        self._lock = threading.Lock()
        self.doomed_captions: set[str] = set()

    def doomed(self, body: dict) -> bool:
        if body["model"] == "flaky-llm":
            return class_of(body) in DOOMED_CLASSES
        key = conversation_key(body)
        with self._lock:
            if key not in self.doomed_captions and len(self.doomed_captions) < DOOMED_CAPTIONS:
                self.doomed_captions.add(key)
            return key in self.doomed_captions

    def __call__(self, body: dict, attempt: int) -> dict:
        doomed = self.doomed(body)
        if attempt < len(TROUBLE):
            return TROUBLE[attempt]
        if doomed and body["model"] == "flaky-llm":
            return unauthorized(DOOMED_CLASSES[class_of(body)])
        if doomed:
            return SERVER_ERROR
        if body["model"] == "flaky-llm":
            return {**ok(descriptor_answer(class_of(body))), **ECHO}
        return {**ok(ANSWERED_CAPTION), **ECHO}


def flaky_registry(workdir: Path, base_url: str) -> Path:
    """config/models.yaml with the two openai entries pointed at the local server."""
    registry = yaml.safe_load((workdir / "config/models.yaml").read_text())
    fast = {"base_url": base_url, "timeout_s": TIMEOUT_S, "max_retries": MAX_RETRIES,
            "backoff_s": 0.02, "concurrency": 4}
    registry["captioners"]["openai-vlm"].update(fast, model="flaky-vlm")
    registry["llms"]["openai-chat"].update(fast, model="flaky-llm")
    assert registry["captioners"]["openai-vlm"]["api_key_env"] == "OPENAI_API_KEY"
    assert registry["llms"]["openai-chat"]["api_key_env"] == "OPENAI_API_KEY"
    path = workdir / "flaky-models.yaml"
    path.write_text(yaml.safe_dump(registry, sort_keys=False))
    return path


@dataclass
class FlakyRun:
    workdir: Path
    server: ScriptedChatServer
    script: FlakyScript
    console: str  # what Snakemake printed, for the run and the report


@pytest.fixture(scope="module")
def flaky_run(tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("flaky"))
    script = FlakyScript()
    with ScriptedChatServer(script, conversation_key) as server, pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPENAI_API_KEY", API_KEY)
        registry = flaky_registry(workdir, server.base_url)
        overlay = workdir / "flaky.yaml"
        overlay.write_text(
            f"models: {registry}\n"
            f"demo_clips_per_class: {CLIPS_PER_CLASS}\n"
            "captions:\n  captioner: openai-vlm\n"
            "descriptors:\n  llm: openai-chat\n"
            f"scoring:\n  variants: [{', '.join(RUNS)}]\n"
        )
        config = ["--configfile", "config/config.yaml", str(overlay)]
        run = snakemake(workdir, "--cores", "2", *config)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        report = snakemake(workdir, *config, "--report", "results/report.html", timeout=300)
        assert report.returncode == 0, report.stdout[-3000:] + report.stderr[-3000:]
    console = run.stdout + run.stderr + report.stdout + report.stderr
    return FlakyRun(workdir, server, script, console)


def read(workdir: Path, rel: str):
    path = workdir / "results/demo" / rel
    return json.loads(path.read_text()) if path.suffix == ".json" else pq.read_table(path)


# ---------------------------------------------------------------- retries, then failures


def test_every_request_met_429_a_timeout_and_500_before_its_outcome(flaky_run):
    attempts = flaky_run.server.attempts
    models = {body["model"] for _, body in flaky_run.server.requests}
    assert models == {"flaky-vlm", "flaky-llm"}
    assert len(attempts) == NUM_VIDEOS + 6  # one conversation per video and per class
    # 1 try + MAX_RETRIES: the answered ones needed all of them, the doomed used them up.
    assert set(attempts.values()) == {1 + MAX_RETRIES}
    auth = {headers.get("Authorization") for headers, _ in flaky_run.server.requests}
    assert auth == {f"Bearer {API_KEY}"}, "the key from OPENAI_API_KEY was sent"


def test_the_logs_show_the_backoff(flaky_run):
    log = (flaky_run.workdir / "results/logs/demo/captions/openai-vlm/000-of-001.log").read_text()
    for trouble in ("HTTP 429; retry 1/3 in", f"timeout ({TIMEOUT_S:g}s); retry 2/3 in",
                    "HTTP 500; retry 3/3 in", "giving up: HTTP 500 after 3 retries"):
        assert trouble in log, trouble


def test_caption_failures_are_recorded_and_the_rest_captioned(flaky_run):
    captions = read(flaky_run.workdir, "captions/openai-vlm.parquet").to_pylist()
    assert len(captions) == NUM_VIDEOS - DOOMED_CAPTIONS
    assert {c["caption"] for c in captions} == {KEPT_CAPTION}
    failures = [f for f in read(flaky_run.workdir, "failures.parquet").to_pylist()
                if f["stage"] == "captions"]
    assert len(failures) == DOOMED_CAPTIONS
    assert {f["reason"] for f in failures} == {f"HTTP 500 after {MAX_RETRIES} retries"}
    assert not {f["video_id"] for f in failures} & {c["video_id"] for c in captions}


def test_descriptor_requests_that_never_succeed_fall_back_to_the_name(flaky_run):
    document = read(flaky_run.workdir, "descriptors/openai-chat.json")
    classes = document["classes"]
    assert len(classes) == 6
    for name, record in classes.items():
        if name in DOOMED_CLASSES:
            assert record["fallback"] is True and record["attributes"] == []
            # The 401 is not retried; its body is masked, then cut to 200 characters.
            body = "x" * DOOMED_CLASSES[name] + "Bearer *** is not valid"
            assert record["reason"] == f"request failed: HTTP 401: {body[:200]}"
        else:
            assert record["fallback"] is False and record["hierarchy"][-1] == name
            assert record["descriptions"][0].endswith("background (***).")
    assert document["summary"]["fallbacks"] == len(DOOMED_CLASSES)


def test_the_run_scores_every_video_and_counts_what_was_degraded(flaky_run):
    for run in RUNS:
        metrics = read(flaky_run.workdir, f"metrics/tiny-clip/{run}.json")
        assert metrics["counts"]["evaluated"] == metrics["counts"]["videos"] == NUM_VIDEOS
        # Only a variant that scores with descriptors counts their fallbacks.
        uses_descriptors = VARIANTS[metrics["variant"]].uses_descriptors
        expected = len(DOOMED_CLASSES) if uses_descriptors else None
        assert metrics["descriptor_fallbacks"] == expected
    full = read(flaky_run.workdir, "metrics/tiny-clip/full.json")
    assert full["counts"]["without_caption"] == DOOMED_CAPTIONS
    assert (flaky_run.workdir / "results/tables/results.md").is_file()


# ---------------------------------------------------------------- the key stays secret


def test_the_api_key_is_in_no_log_output_or_report(flaky_run):
    results, snakemake_dir = flaky_run.workdir / "results", flaky_run.workdir / ".snakemake"
    # The scan covers what matters: the logs that saw the retries, outputs, and the report.
    assert (results / "report.html").stat().st_size > 10_000
    assert list((snakemake_dir / "log").glob("*.snakemake.log"))
    assert (results / "logs/demo/descriptors/openai-chat.log").read_text()
    # The report's pages are base64 inside report.html, and they carry the server's words.
    pages = [text for where, text in readable_texts(results / "report.html") if "URI" in where]
    assert any("Bearer ***" in page for page in pages)
    assert leaks(results, API_KEY) == []
    assert leaks(snakemake_dir, API_KEY) == []
    assert text_leaks(flaky_run.console, API_KEY) == []
