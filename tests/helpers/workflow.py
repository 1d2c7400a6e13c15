"""Helpers for tests that run the Snakemake workflow in a scratch copy of the repository."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCHMARK_LISTS = REPO.parent / "shared" / "benchmark-lists"
WORKFLOW_PARTS = ("Snakefile", "config", "workflow", "profiles", "envs")


def copy_workflow(dest: Path, *, with_library: bool = False) -> Path:
    """Copy what the workflow needs (not results/ or resources/) into `dest`.

    with_library also copies src/, which `snakemake()` then puts first on PYTHONPATH, so
    a test may edit the library code that the copy's jobs run.
    """
    dest.mkdir(parents=True, exist_ok=True)
    parts = (*WORKFLOW_PARTS, "src") if with_library else WORKFLOW_PARTS
    for part in parts:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(
                src, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        else:
            shutil.copy2(src, dest / part)
    return dest


def snakemake(workdir: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run snakemake in `workdir` with the venv's interpreter; output captured as text."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    if (workdir / "src" / "zsar").is_dir():  # a copy with its own library (with_library)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(workdir / "src"), env.get("PYTHONPATH")) if p
        )
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def scheduled_jobs(output: str) -> dict[str, int]:
    """Rule -> job count from the 'Job stats' table of a dry run."""
    jobs: dict[str, int] = {}
    lines = output.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Job stats:")
    except StopIteration:
        return jobs
    for line in lines[start + 3 :]:
        match = re.fullmatch(r"\s*(\S+)\s+(\d+)\s*", line)
        if not match or match.group(1) == "total":
            break
        jobs[match.group(1)] = int(match.group(2))
    return jobs
