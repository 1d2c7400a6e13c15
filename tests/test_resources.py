"""Every rule tells the scheduler what it needs, and the downstream requests cover what the
benchmark measured.

The requests are zsar.pipeline.resources' lines in a job's input size; the measured peaks are
benchmarks/downstream_scale.py's, recorded per job (rule, the size of each input, peak RSS,
wall time) in benchmarks/downstream_scale.json at 20,000 and 110,000 videos and 400 and
700 classes. A fit lowered below a measured peak, a rule added without a request, or a
request that no longer grows with its input fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers.envs import rule_bodies

from zsar.pipeline.resources import NEEDS, need

REPO = Path(__file__).resolve().parent.parent
MEASURED = REPO / "benchmarks" / "downstream_scale.json"
# Rules that only name targets: Snakemake runs no job for them.
TARGETS = {"all", "frames_all"}


def job_rules() -> dict[str, str]:
    rules = {}
    for name, smk, _ in rule_bodies((REPO / "workflow" / "rules").glob("*.smk")):
        if name not in TARGETS:
            rules[name] = f"{smk.relative_to(REPO)}, rule {name}"
    return rules


def resources_block(body: str) -> str:
    found = re.search(r"(?m)^    resources:\n((?:        .*\n)+)", body)
    return found.group(1) if found else ""


def test_every_rule_asks_for_memory_and_time_from_its_inputs():
    rule_files = (REPO / "workflow" / "rules").glob("*.smk")
    bodies = {name: body for name, _, body in rule_bodies(rule_files)}
    assert {"score", "explain", "compare", "frames", "embed_videos"} <= set(bodies)
    wrong = []
    for name, where in job_rules().items():
        block = resources_block(bodies[name])
        for key in ("mem_mb", "runtime"):
            if f'{key}={key}("{name}")' not in block:
                wrong.append(f"{where}: resources has no {key}={key}(\"{name}\")")
        if name not in NEEDS:
            wrong.append(f"{where}: zsar.pipeline.resources.NEEDS has no entry")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("rule", sorted(NEEDS))
def test_a_request_grows_with_the_input(rule):
    entry = need(rule)
    assert entry.mem_mb(10_000) > entry.mem_mb(100) > 0
    assert entry.runtime(100_000) > entry.runtime(100) > 0
    assert entry.mem_mb(100, attempt=2) > entry.mem_mb(100)  # a retry asks for more


def test_an_unknown_rule_is_named():
    with pytest.raises(KeyError, match="no_such_rule"):
        need("no_such_rule")


def measured_jobs() -> list[dict]:
    runs = json.loads(MEASURED.read_text())
    return [{**job, "videos": run["videos"], "classes": run["classes"]}
            for run in runs for job in run["jobs"]]  # fmt: skip


def test_the_benchmark_covers_the_four_sizes():
    sizes = {(j["videos"], j["classes"]) for j in measured_jobs()}
    assert sizes == {(20000, 400), (20000, 700), (110000, 400), (110000, 700)}


def test_each_request_covers_the_measured_peak_and_time():
    short = []
    for job in measured_jobs():
        entry = need(job["rule"])
        size = entry.input_mb(job["input_mb"])
        what = f"{job['rule']} {job['wildcards']} at {job['videos']}x{job['classes']}"
        if entry.mem_mb(size) < job["peak_mb"]:
            short.append(f"{what}: asks {entry.mem_mb(size)} MB, peaked at {job['peak_mb']:.0f}")
        if entry.runtime(size) * 60 < job["wall_s"]:
            short.append(f"{what}: asks {entry.runtime(size)} min, ran {job['wall_s']:.0f} s")
    assert not short, "\n".join(short)
