"""Re-run cost: the demo in full, then again after a change of λ only.

In a scratch copy of the workflow (Snakefile, config, workflow, profiles, envs; no results),
it runs the demo at --clips-per-class clips per class (6 classes), so that the full run
takes minutes, then re-runs it with one config overlay, `scoring: {lambda: [0.6]}`, and
reads from Snakemake's log which jobs ran ("rule X:" / "localrule X:" lines). A third,
no-op run (nothing left to do) measures Snakemake's own start-up: imports, parsing the
Snakefile with the run plan, building the DAG and checking the files.

The last line is machine-readable:

    rerun_fraction=F rerun_jobs=J heavy_jobs_rerun=H

F = re-run wall time / full-run wall time; J = jobs the re-run ran (the `all` target
included); H = jobs of the expensive rules (frames, captions, embeddings, descriptors,
model building, demo data) among them, which must be 0.

Usage:
    python benchmarks/rerun_cost.py                         # 24 clips per class
    python benchmarks/rerun_cost.py --clips-per-class 4     # quick check (under a minute)
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from helpers.workflow import copy_workflow  # noqa: E402  (the tests' scratch-copy helper)

# The rules whose jobs cost real time; a change of λ must re-run none of them.
HEAVY_RULES = frozenset(
    {
        "frames",
        "caption_shard",
        "embed_videos",
        "embed_class_texts",
        "embed_captions",
        "descriptors",
        "fetch_model",
        "demo_data",
    }
)
LAMBDA_OVERLAY = "scoring:\n  lambda: [0.6]\n"
JOB_LINE = re.compile(r"^(?:local)?rule (\w+):\s*$", re.MULTILINE)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--clips-per-class",
        type=int,
        default=24,
        help="demo size (6 classes); 24 makes the full run take over 2 minutes on 2 cores",
    )
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a temp dir)")
    return parser.parse_args(argv)


def jobs_run(log: str) -> collections.Counter:
    """Rule -> number of jobs Snakemake started, from its log."""
    return collections.Counter(JOB_LINE.findall(log))


def snakemake(workdir: Path, args: list[str], log_path: Path) -> tuple[float, str]:
    """Run Snakemake in `workdir`; (wall seconds, log text). A failed run is an error."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    log = proc.stdout + proc.stderr
    log_path.write_text(log)
    if proc.returncode != 0:
        raise RuntimeError(f"snakemake {' '.join(args)} failed; log in {log_path}:\n{log[-3000:]}")
    return seconds, log


def describe(jobs: collections.Counter) -> str:
    return ", ".join(f"{rule} {count}" for rule, count in sorted(jobs.items())) or "none"


def measure(workdir: Path, args: argparse.Namespace) -> tuple[float, int, int]:
    copy_workflow(workdir)
    (workdir / "lambda.yaml").write_text(LAMBDA_OVERLAY)
    size = ["--config", f"demo_clips_per_class={args.clips_per_class}"]
    base = ["--cores", str(args.cores)]
    overlay = ["--configfile", "config/config.yaml", "lambda.yaml"]

    print(f"scratch copy: {workdir}", flush=True)
    full_s, full_log = snakemake(workdir, [*base, *size], workdir / "full.log")
    full_jobs = jobs_run(full_log)
    print(f"full run: {full_s:.1f} s, {sum(full_jobs.values())} jobs ({describe(full_jobs)})")

    rerun_s, rerun_log = snakemake(workdir, [*base, *overlay, *size], workdir / "rerun.log")
    rerun_jobs = jobs_run(rerun_log)
    print(f"λ re-run: {rerun_s:.1f} s, {sum(rerun_jobs.values())} jobs ({describe(rerun_jobs)})")

    noop_s, noop_log = snakemake(workdir, [*base, *overlay, *size], workdir / "noop.log")
    noop_jobs = jobs_run(noop_log)
    print(
        f"no-op run (Snakemake start-up, DAG, file checks): {noop_s:.1f} s, "
        f"{sum(noop_jobs.values())} jobs"
    )
    heavy = sum(count for rule, count in rerun_jobs.items() if rule in HEAVY_RULES)
    return rerun_s / full_s, sum(rerun_jobs.values()), heavy


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.workdir:
        fraction, jobs, heavy = measure(args.workdir, args)
    else:
        with tempfile.TemporaryDirectory(prefix="zsar-rerun-") as tmp:
            fraction, jobs, heavy = measure(Path(tmp), args)
    print(f"rerun_fraction={fraction:.4f} rerun_jobs={jobs} heavy_jobs_rerun={heavy}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
