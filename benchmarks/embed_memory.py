"""Peak memory of the frames and video embedding stages on 100 and on 1000 tiny clips.

Each stage runs as a workflow job would, in a fresh Python process per (stage, size), with
decode / DataLoader workers, on tiny clips (64x64, 16 frames, h264) and the demo's tiny
CLIP. A sampler in this process adds up the memory of the job's process tree every 20 ms
and keeps the peak: the job's resident set (RSS) plus its workers' private memory (USS).
Workers are counted by USS because the DataLoader workers are forked from the job and
share most of its pages, which RSS would count once per worker; PSS would split shared
library pages with every other process on the machine that maps them, so it moves with
the machine's load. The job's own kernel-kept peak RSS (ru_maxrss) is printed next to
it. Memory that grows with the dataset (results held in lists, unbounded queues, a heap
that fragments) shows as a ratio well above 1; the fixed part is mostly the imports
(torch and open_clip alone are about 0.75 GB of RSS).

The last line is machine-readable:

    rss_ratio_1000_vs_100=X

X = peak tree memory on 1000 clips / on 100 clips, the larger of the two stages' ratios.

Usage:
    python benchmarks/embed_memory.py
    python benchmarks/embed_memory.py --sizes 100 1000 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

CLIP_SIZE = 64
CLIP_FRAMES = 16
CLIP_FPS = 16
CLIP_VERSION = "v1"
NUM_FRAMES = 8
STAGES = ("frames", "embed")
SAMPLE_EVERY_S = 0.02


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "zsar" / "bench-tiny-clips"


# ---------------------------------------------------------------- clips


def ensure_tiny_clips(cache: Path, count: int) -> list[Path]:
    """`count` distinct one-second clips, cut by one ffmpeg call from a long test pattern.

    A keyframe every CLIP_FRAMES frames and the segment muxer give one self-contained
    clip per second, in a fraction of the time of `count` ffmpeg runs.
    """
    import imageio_ffmpeg

    folder = cache / f"{CLIP_VERSION}_{CLIP_SIZE}px_{CLIP_FRAMES}f_{count}"
    paths = [folder / f"clip_{i:05d}.mp4" for i in range(count)]
    if all(p.is_file() for p in paths):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    seconds = count * CLIP_FRAMES / CLIP_FPS
    source = f"testsrc2=size={CLIP_SIZE}x{CLIP_SIZE}:rate={CLIP_FPS}:duration={seconds}"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi",
         "-i", source, "-vf", "noise=alls=20:allf=t", "-c:v", "libx264", "-preset", "veryfast",
         "-pix_fmt", "yuv420p", "-g", str(CLIP_FRAMES), "-keyint_min", str(CLIP_FRAMES),
         "-sc_threshold", "0", "-f", "segment", "-segment_time", str(CLIP_FRAMES / CLIP_FPS),
         "-reset_timestamps", "1", str(folder / "clip_%05d.mp4")],
        check=True,
    )  # fmt: skip
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise RuntimeError(f"ffmpeg made {count - len(missing)} of {count} clips in {folder}")
    return paths


# ---------------------------------------------------------------- one job (child process)


def run_job(stage: str, clips_dir: Path, count: int, workdir: Path, workers: int) -> dict:
    """Run one stage on the first `count` clips, as a workflow job would; report its peaks."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    manifest = workdir / "manifest.parquet"
    frames = workdir / "frames.parquet"
    if stage == "frames":
        from zsar.stages.frames import run_frames_stage

        paths = sorted(clips_dir.glob("clip_*.mp4"))[:count]
        ids = [p.name for p in paths]
        pq.write_table(
            pa.table({"video_id": ids, "path": [str(p) for p in paths], "exists": [True] * count}),
            manifest,
        )
        counts = run_frames_stage(
            manifest, frames, workdir / "failures.parquet", "000-of-001",
            NUM_FRAMES, CLIP_SIZE, 90, workers,
        )  # fmt: skip
        done = counts["decoded"]
    else:
        from embed_throughput import load_random_backbone

        from zsar.stages.embed import run_video_embedding_stage

        backbone = load_random_backbone("tiny", "cpu")
        with open(os.devnull, "w") as quiet:
            done = run_video_embedding_stage(
                frames, workdir / "videos.parquet", backbone, workers=workers, progress=quiet
            )
    return {
        "videos": done,
        "self_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "children_maxrss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


# ---------------------------------------------------------------- the harness


def tree_memory_mb(process) -> float:
    """RSS of `process` plus the private memory (USS) of each of its descendants."""
    import psutil

    total = process.memory_info().rss
    for child in process.children(recursive=True):
        try:
            total += child.memory_full_info().uss
        except psutil.Error:  # a worker that just exited
            continue
    return total / 2**20


def run_measured(stage: str, clips_dir: Path, count: int, workdir: Path, workers: int) -> dict:
    """Run one job in a fresh process while sampling its tree's RSS; its report + the peak."""
    import psutil

    command = [
        sys.executable, __file__, "--child", stage, "--clips-dir", str(clips_dir),
        "--count", str(count), "--workdir", str(workdir), "--workers", str(workers),
    ]  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0.0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        process = psutil.Process(proc.pid)
        while not stop.is_set():
            try:
                peak = max(peak, tree_memory_mb(process))
            except psutil.Error:
                return
            time.sleep(SAMPLE_EVERY_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{stage} job on {count} clips failed:\n{err[-3000:]}")
    report = json.loads(out.strip().splitlines()[-1])
    return {**report, "tree_peak_mb": peak, "seconds": time.perf_counter() - started}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[100, 1000])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--cache", type=Path, default=default_cache())
    # Internal: run one job and print its report as JSON.
    parser.add_argument("--child", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--clips-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        report = run_job(args.child, args.clips_dir, args.count, args.workdir, args.workers)
        print(json.dumps(report))
        return 0

    small, large = args.sizes
    clips = ensure_tiny_clips(args.cache, large)
    peaks: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory(prefix="zsar-embed-memory-") as tmp:
        for count in (small, large):
            workdir = Path(tmp) / str(count)
            workdir.mkdir()
            for stage in STAGES:  # the embedding stage reads what the frames stage wrote
                report = run_measured(stage, clips[0].parent, count, workdir, args.workers)
                peaks[stage, count] = report["tree_peak_mb"]
                print(
                    f"{stage} stage, {count} clips ({report['videos']} done, "
                    f"{report['seconds']:.1f} s, {args.workers} workers): peak job RSS + "
                    f"workers' USS {report['tree_peak_mb']:.0f} MB; job ru_maxrss "
                    f"{report['self_maxrss_mb']:.0f} MB, largest worker "
                    f"{report['children_maxrss_mb']:.0f} MB",
                    flush=True,
                )
    ratios = {stage: peaks[stage, large] / peaks[stage, small] for stage in STAGES}
    print(", ".join(f"{stage} stage ratio {ratio:.3f}" for stage, ratio in ratios.items()))
    print(f"rss_ratio_{large}_vs_{small}={max(ratios.values()):.3f}")
    return 0


# Decode workers are spawned and re-import this file: only the parent may run main().
if __name__ == "__main__":
    sys.exit(main())
