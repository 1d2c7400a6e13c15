"""What exact decoding of UCF101's AVIs costs: the frames stage on UCF101-like clips (XviD
in AVI with packed B-frames, 320x240, 25 fps, 7 s: the dataset's average length) against the
same stage on the same frames encoded without B-frames, side by side in one run.

Both sets go through `zsar.stages.frames.run_frames_stage` as a user's run does (AVI is read from
the start in presentation order, DECODE_IN_ORDER). For reference it also times decord's
seek (`get_batch` of the sampled indices, what zsar did before) on the clips without
B-frames, the one set where that seek returns the right frames. Every clip shows its frame
index (tests/helpers/format_corpus.py), and every stored frame is checked against it.

Prints one machine-readable line:

    bench=frames_formats exact_vs_no_b=R b_videos_per_s=X no_b_videos_per_s=Y \
        decord_seek_videos_per_s=Z

R must be at least 0.7. Rates are the best of --repeat interleaved runs.

Usage:
    python benchmarks/frames_formats.py                       # 32 clips a set, 3 repeats
    python benchmarks/frames_formats.py --clips 8 --repeat 1  # quick check
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from helpers.format_corpus import XVID, Clip, make_clip, read_index  # noqa: E402

from zsar.stages.frames import decode_jpeg, run_frames_stage, sample_frame_indices  # noqa: E402

SECONDS, FPS = 7, 25


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=32, help="clips in each set")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--num-frames", type=int, default=8)
    return parser.parse_args(argv)


def clip_sets(folder: Path, count: int) -> dict[str, list[Path]]:
    """The same frames twice: packed B-frames (UCF101's XviD), and no B-frames; `count`
    copies of each (the stage's cost does not depend on which pixels a clip shows)."""
    frames = SECONDS * FPS  # 175, within the barcode's 8 bits with the padding
    folder.mkdir(parents=True)
    sets: dict[str, list[Path]] = {"b": [], "no_b": []}
    one = {
        "b": make_clip(
            Clip("b.avi", "UCF101", frames, (*XVID, "-bf", "2", "-vtag", "XVID"),
                 fps=str(FPS), padding=4),
            folder,
        ),
        "no_b": make_clip(
            Clip("no_b.avi", "UCF101", frames, (*XVID, "-bf", "0", "-vtag", "XVID"),
                 fps=str(FPS)),
            folder,
        ),
    }  # fmt: skip
    for kind, path in one.items():
        data = path.read_bytes()
        for k in range(count):
            copy = folder / kind / f"{kind}_{k:03d}.avi"
            copy.parent.mkdir(exist_ok=True)
            copy.write_bytes(data)
            sets[kind].append(copy)
    return sets


def run_stage(paths: list[Path], folder: Path, args) -> tuple[float, pa.Table]:
    names = [p.name for p in paths]
    manifest = pa.table(
        {"video_id": names, "path": [str(p) for p in paths], "exists": [True] * len(paths)}
    )
    pq.write_table(manifest, folder / "manifest.parquet")
    started = time.perf_counter()
    counts = run_frames_stage(
        folder / "manifest.parquet", folder / "frames.parquet", folder / "failures.parquet",
        "000-of-001", sampling=args.num_frames, short_side=256, jpeg_quality=90,
        workers=args.workers,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if counts["failed"]:
        raise SystemExit(f"frames_formats: {counts['failed']} clips failed: {folder}")
    return seconds, pq.read_table(folder / "frames.parquet")


def check_frames(table: pa.Table) -> None:
    """Every stored frame is the frame its index names (the real frames: all but padding)."""
    for row in table.to_pylist():
        shown = [read_index(np.asarray(decode_jpeg(j))) for j in row["jpeg"]]
        named = zip(row["frame_indices"], shown, strict=True)
        real = [(i, s) for i, s in named if i < SECONDS * FPS]
        if any(i != s for i, s in real):
            raise SystemExit(f"frames_formats: wrong frames in {row['video_id']}: {real}")


def decord_seek_seconds(paths: list[Path], num_frames: int) -> float:
    """decord's seek on the clips without B-frames, one process (the old fast path)."""
    import decord

    started = time.perf_counter()
    for path in paths:
        reader = decord.VideoReader(str(path), num_threads=1)
        reader.get_batch(sample_frame_indices(len(reader), num_frames)).asnumpy()
    return time.perf_counter() - started


def main(argv=None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        sets = clip_sets(root / "clips", args.clips)
        best = {"b": float("inf"), "no_b": float("inf"), "seek": float("inf")}
        for repeat in range(args.repeat):
            for kind in ("b", "no_b"):  # interleaved, so that load hits both alike
                out = root / f"{kind}-{repeat}"
                out.mkdir()
                seconds, table = run_stage(sets[kind], out, args)
                check_frames(table)
                best[kind] = min(best[kind], seconds)
                print(f"repeat={repeat} set={kind} seconds={seconds:.2f}", flush=True)
            best["seek"] = min(best["seek"], decord_seek_seconds(sets["no_b"], args.num_frames))
    rate = {kind: args.clips / seconds for kind, seconds in best.items()}
    print(
        f"workers={args.workers} clips={args.clips} frames_per_clip={SECONDS * FPS} "
        f"size=320x240 num_frames={args.num_frames}"
    )
    print(
        f"bench=frames_formats exact_vs_no_b={rate['b'] / rate['no_b']:.2f} "
        f"b_videos_per_s={rate['b']:.1f} no_b_videos_per_s={rate['no_b']:.1f} "
        f"decord_seek_videos_per_s={rate['seek']:.1f}"
    )


if __name__ == "__main__":
    main()
