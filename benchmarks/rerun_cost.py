"""Re-run cost: the demo in full, then again after edits that must re-run little or nothing.

In a scratch copy of the workflow (Snakefile, config, workflow, profiles, envs, and the
library, so that its files can be touched; no results), it runs the demo at
--clips-per-class clips per class (6 classes), so that the full run takes minutes, then
after each edit runs it again and reads from Snakemake's log which jobs ran ("rule X:" /
"localrule X:" lines):

- lambda: the overlay `scoring: {lambda: [0.6]}` (only the caption variants' scores);
- description: the `description:` of the backbone's registry entry reworded (nothing);
- touch_scripts: every workflow script and library module rewritten with the same bytes,
  as a `git checkout` does (nothing).

A last, no-op run (nothing left to do) measures Snakemake's own start-up. Each edit prints
a machine-readable line

    edit=E rerun_fraction=F rerun_jobs=J heavy_jobs_rerun=H

F = re-run wall time / full-run wall time; J = jobs the re-run ran (the `all` target
included); H = jobs of the expensive rules (frames, captions, embeddings, descriptors,
model building, demo data) among them, which must be 0 for all three.

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
        "embed_class_names",
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


def reword_description(workdir: Path) -> None:
    registry = workdir / "config" / "models.yaml"
    text = registry.read_text()
    old = "A 2-layer ViT/transformer CLIP built from a config; for the demo and tests."
    if old not in text:
        raise RuntimeError(f"{registry}: tiny-clip's description changed; update this harness")
    registry.write_text(text.replace(old, "A tiny random CLIP (description reworded)."))


def touch_scripts(workdir: Path) -> None:
    for path in [*workdir.glob("workflow/scripts/*.py"), *workdir.glob("src/zsar/*.py")]:
        path.write_bytes(path.read_bytes())


# edit name -> (what it does to the scratch copy, the extra arguments of the re-run)
EDITS = {
    "lambda": (lambda workdir: None, ["--configfile", "config/config.yaml", "lambda.yaml"]),
    "description": (reword_description, []),
    "touch_scripts": (touch_scripts, []),
}


def measure(workdir: Path, args: argparse.Namespace) -> list[tuple[str, float, int, int]]:
    copy_workflow(workdir, with_library=True)
    (workdir / "lambda.yaml").write_text(LAMBDA_OVERLAY)
    size = ["--config", f"demo_clips_per_class={args.clips_per_class}"]
    base = ["--cores", str(args.cores)]

    print(f"scratch copy: {workdir}", flush=True)
    full_s, full_log = snakemake(workdir, [*base, *size], workdir / "full.log")
    full_jobs = jobs_run(full_log)
    print(f"full run: {full_s:.1f} s, {sum(full_jobs.values())} jobs ({describe(full_jobs)})")

    results = []
    for name, (edit, extra) in EDITS.items():
        edit(workdir)
        seconds, log = snakemake(workdir, [*base, *extra, *size], workdir / f"{name}.log")
        jobs = jobs_run(log)
        print(f"{name} re-run: {seconds:.1f} s, {sum(jobs.values())} jobs ({describe(jobs)})")
        heavy = sum(count for rule, count in jobs.items() if rule in HEAVY_RULES)
        results.append((name, seconds / full_s, sum(jobs.values()), heavy))
        if name == "lambda":  # back to the full run's config for the next edits
            seconds, _ = snakemake(workdir, [*base, *size], workdir / "lambda-back.log")

    noop_s, noop_log = snakemake(workdir, [*base, *size], workdir / "noop.log")
    noop_jobs = jobs_run(noop_log)
    print(
        f"no-op run (Snakemake start-up, DAG, file checks): {noop_s:.1f} s, "
        f"{sum(noop_jobs.values())} jobs"
    )
    return results


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.workdir:
        results = measure(args.workdir, args)
    else:
        with tempfile.TemporaryDirectory(prefix="zsar-rerun-") as tmp:
            results = measure(Path(tmp), args)
    for name, fraction, jobs, heavy in results:
        print(f"edit={name} rerun_fraction={fraction:.4f} rerun_jobs={jobs} "
              f"heavy_jobs_rerun={heavy}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
