"""What the statistics (intervals, paired tests, per-class gains) add to the scoring step.

On synthetic data of a large benchmark's size (by default 20,000 videos x 400 classes,
512-d unit vectors, 5 variants), it times:

(a) scoring: per variant, what the score rule computes on arrays:
    `zsar.stages.scoring.score_videos` (with a caption fused in, at embedding level, for the
    caption variants), `zsar.core.metrics.accuracy_metrics` and `zsar.core.metrics.rank_classes`
    for the top-5 that the scores Parquet holds. Building the Parquet rows and writing
    the files are left out, which makes the scoring step look cheaper than it is and the
    overhead larger;
(b) statistics, from what the scores Parquet holds (top-5 class ids and true labels),
    through `zsar.core.stats.accuracy_intervals`, `ablation_comparisons` and
    `per_class_gains`: per variant, the intervals of top-1, top-5 and mean-class
    accuracy (per split and for the mean over splits; one split here); the paired
    comparisons of the ablation (each variant against baseline, full against each
    single-component variant) for top-1, top-5 and mean-class, Holm-adjusted; the
    per-class gains of each variant against baseline.

The synthetic structure: each class has a unit vector; a video is its class vector plus
Gaussian noise, normalised; each variant's class vectors are the true ones plus less
noise the more components it has, and a caption is a second noisy view of the class.
So accuracies rise from baseline to full, as in a real ablation.

The last line is machine-readable:

    stats_overhead=F scoring_s=S stats_s=T

F = T / S, each the best of --repeat interleaved repeats.

With --edges it also times the statistics as the workflow runs them, from files: the
score rule's intervals from its scores table (`zsar.core.metrics.counted_hits` and
`zsar.stages.scoring.accuracy_ci`, per variant) plus the compare rule end to end
(`zsar.stages.compare.run_compare_stage`: it reads the 5 scores Parquets and the class list,
compares, computes the per-class gains and writes both files). That is all of (b) and the
I/O around it, so the last line then adds

    edges_s=E edges_overhead=H

H = E / S, again against the scoring step's array work only.

Usage:
    python benchmarks/stats_cost.py                      # 20,000 x 400 x 5, best of 3
    python benchmarks/stats_cost.py --videos 2000 --repeat 1   # quick check
    python benchmarks/stats_cost.py --naive             # also time index resampling
    python benchmarks/stats_cost.py --edges             # also time the rules' I/O edges
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from zsar.core import stats
from zsar.core.metrics import accuracy_metrics, rank_classes
from zsar.stages.scoring import normalize, score_videos

# variant -> (noise on its class vectors, whether a caption is fused in); the noise on a
# video and on a caption, relative to a unit vector's per-dimension scale.
VARIANTS = {
    "baseline": (1.0, False),
    "+descriptors": (0.93, False),
    "+hierarchy": (0.98, False),
    "+caption": (1.0, True),
    "full": (0.93, True),
}
VIDEO_NOISE, CAPTION_NOISE = 5.5, 16.0
VARIANT_LAMBDA = {"+caption": 0.3, "full": 0.3}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=20000)
    parser.add_argument("--classes", type=int, default=400)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--resamples", type=int, default=stats.DEFAULT_RESAMPLES)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--naive", action="store_true", help="also time one top-1 interval by index resampling"
    )
    parser.add_argument(
        "--edges", action="store_true", help="also time the score and compare rules' edges"
    )
    return parser.parse_args(argv)


def synthetic_inputs(videos: int, classes: int, dim: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    truth = normalize(rng.standard_normal((classes, dim)))
    labels = np.arange(videos) % classes  # every class the same size, as in K400's val
    spread = 1.0 / np.sqrt(dim)  # noise per dimension, relative to a unit vector

    def noisy(base: np.ndarray, scale: float) -> np.ndarray:
        noise = rng.standard_normal(base.shape) * spread * scale
        return normalize(base + noise).astype(np.float32)

    video_vectors = noisy(truth[labels], VIDEO_NOISE)
    captions = noisy(truth[labels], CAPTION_NOISE)
    class_vectors = {name: noisy(truth, noise) for name, (noise, _) in VARIANTS.items()}
    return {
        "labels": labels,
        "videos": video_vectors,
        "captions": captions,
        "class_vectors": class_vectors,
    }


def score_variant(inputs: dict, name: str, topk: int = 5) -> tuple[np.ndarray, dict]:
    """The score rule's array work for one variant: scores, metrics, the stored top-k."""
    _, caption = VARIANTS[name]
    captions = inputs["captions"] if caption else None
    has_caption = np.ones(len(inputs["labels"]), bool) if caption else None
    scores = score_videos(
        inputs["videos"],
        inputs["class_vectors"][name],
        captions=captions,
        has_caption=has_caption,
        fusion="embedding",
        lam=VARIANT_LAMBDA.get(name, 0.0),
    )
    metrics = accuracy_metrics(scores, inputs["labels"])  # top-1, top-5 and mean-class
    return rank_classes(scores, topk), metrics


def all_statistics(
    ranked: dict[str, np.ndarray],
    labels: np.ndarray,
    class_names: list[str],
    *,
    resamples: int,
    seed: int,
) -> dict:
    """Everything the issue asks for, from the top-k ids and labels the Parquet holds,
    through the helpers the score and compare rules would call."""
    splits = np.ones(labels.size, np.int64)
    top1 = {name: r[:, 0] == labels for name, r in ranked.items()}
    top5 = {name: (r == labels[:, None]).any(axis=1) for name, r in ranked.items()}
    options = {"resamples": resamples, "seed": seed}
    intervals = {
        name: stats.accuracy_intervals(top1[name], top5[name], labels, splits, **options)
        for name in ranked
    }
    pairs = stats.comparison_pairs({name: (name, None) for name in ranked})
    comparisons = stats.ablation_comparisons(top1, top5, labels, splits, pairs, **options)
    gains = {
        name: stats.per_class_gains(top1["baseline"], top1[name], labels, class_names)
        for name in ranked
        if name != "baseline"
    }
    return {"intervals": intervals, "comparisons": comparisons, "per_class_gains": gains}


def scores_table(ranked: np.ndarray, labels: np.ndarray) -> pa.Table:
    """A scores Parquet's table (zsar.stages.scoring.SCORES_SCHEMA) of one variant, built column by
    column; every video evaluated, in one split."""
    from zsar.stages.scoring import SCORES_SCHEMA

    videos, k = ranked.shape
    offsets = pa.array(np.arange(0, videos * k + 1, k, dtype=np.int32))
    columns = {
        "split": pa.array(np.ones(videos, np.int32)),
        "video_id": pa.array([f"v{i:06d}" for i in range(videos)]),
        "true_class": pa.array(labels.astype(np.int32)),
        "predicted_class": pa.array(ranked[:, 0].astype(np.int32)),
        "predicted_name": pa.array([f"class_{c:03d}" for c in ranked[:, 0].tolist()]),
        "topk_classes": pa.ListArray.from_arrays(offsets, pa.array(ranked.ravel().astype(
            np.int32))),
        "topk_scores": pa.ListArray.from_arrays(offsets, pa.array(np.zeros(videos * k,
                                                                           np.float32))),
        "correct": pa.array(ranked[:, 0] == labels),
        "status": pa.array(["evaluated"] * videos),
    }
    return pa.table(columns, schema=SCORES_SCHEMA)


def time_edges(ranked: dict[str, np.ndarray], labels: np.ndarray, class_names: list[str],
               folder: Path, *, resamples: int, seed: int) -> float:
    """Seconds the workflow's statistics take from files: the score rule's intervals per
    variant, and the compare rule end to end."""
    from zsar.core.metrics import counted_hits
    from zsar.data.io import write_parquet
    from zsar.stages.compare import run_compare_stage
    from zsar.stages.scoring import accuracy_ci

    settings = {"resamples": resamples, "seed": seed}
    tables = {name: scores_table(r, labels) for name, r in ranked.items()}
    paths = []
    for name, table in tables.items():
        paths.append(str(folder / f"{name}.parquet"))
        write_parquet(table, paths[-1], {"config_hash": name})
    pq.write_table(pa.table({"split": [1] * len(class_names),
                             "class_id": list(range(len(class_names))),
                             "name": class_names, "display_name": class_names}),
                   folder / "classes.parquet")
    runs = [[name, name, VARIANT_LAMBDA.get(name)] for name in ranked]
    start = time.perf_counter()
    for table in tables.values():
        hits = counted_hits(table, failure_policy="exclude",
                            classes_per_split={1: len(class_names)})
        accuracy_ci(hits, [1], settings)
    run_compare_stage(paths, str(folder / "classes.parquet"), str(folder / "comparisons.json"),
                      str(folder / "gains.parquet"), dataset="synthetic", backbone="synthetic",
                      runs=runs, failure_policy="exclude", statistics=settings)
    return time.perf_counter() - start


def naive_top1_interval(correct: np.ndarray, resamples: int, seed: int, chunk: int = 100):
    """One interval by drawing video indices (chunked to bound memory), for comparison."""
    rng = np.random.default_rng(seed)
    draws = []
    for start in range(0, resamples, chunk):
        rows = min(chunk, resamples - start)
        index = rng.integers(0, correct.size, size=(rows, correct.size))
        draws.append(correct[index].mean(axis=1))
    return stats.percentile_interval(np.concatenate(draws))


def main(argv=None) -> None:
    args = parse_args(argv)
    inputs = synthetic_inputs(args.videos, args.classes, args.dim, args.seed)
    labels = inputs["labels"]
    class_names = [f"class_{c:03d}" for c in range(args.classes)]
    scoring_times, stats_times, edge_times = [], [], []
    folder = Path(tempfile.mkdtemp(prefix="stats-cost-"))
    for repeat in range(args.repeat):
        start = time.perf_counter()
        results = {name: score_variant(inputs, name) for name in VARIANTS}
        scoring_times.append(time.perf_counter() - start)
        ranked = {name: r for name, (r, _) in results.items()}
        start = time.perf_counter()
        out = all_statistics(ranked, labels, class_names, resamples=args.resamples, seed=args.seed)
        stats_times.append(time.perf_counter() - start)
        if args.edges:
            edge_times.append(time_edges(ranked, labels, class_names, folder,
                                         resamples=args.resamples, seed=args.seed))
        print(
            f"repeat {repeat + 1}: scoring {scoring_times[-1]:.3f} s, "
            f"statistics {stats_times[-1]:.3f} s"
            + (f", from files {edge_times[-1]:.3f} s" if edge_times else ""),
            flush=True,
        )
    shutil.rmtree(folder)
    for name, (_, metrics) in results.items():
        low, high = out["intervals"][name]["mean"]["top1"]
        print(
            f"{name:>13}: top1 {100 * metrics['top1']:.1f} [{100 * low:.1f}, {100 * high:.1f}]"
            f" top5 {100 * metrics['top5']:.1f} mean_class {100 * metrics['mean_class']:.1f}"
        )
    for record in out["comparisons"]["top1"]:
        print(
            f"  top1 {record['b']} - {record['a']}: {100 * record['difference']:+.2f} "
            f"[{100 * record['ci_low']:+.2f}, {100 * record['ci_high']:+.2f}] "
            f"p_holm={record['mcnemar_p_holm']:.2g} significant={record['significant']}"
        )
    if args.naive:
        correct = ranked["baseline"][:, 0] == labels
        start = time.perf_counter()
        naive_top1_interval(correct, args.resamples, args.seed)
        naive = time.perf_counter() - start
        start = time.perf_counter()
        stats.bootstrap_accuracy_ci(correct, resamples=args.resamples, seed=args.seed)
        fast = time.perf_counter() - start
        print(f"one top-1 interval: index resampling {naive:.3f} s, count draws {fast:.5f} s")
    scoring, statistics = min(scoring_times), min(stats_times)
    edges = (f" edges_s={min(edge_times):.3f} edges_overhead={min(edge_times) / scoring:.4f}"
             if edge_times else "")
    print(
        f"stats_overhead={statistics / scoring:.4f} scoring_s={scoring:.3f} "
        f"stats_s={statistics:.3f}" + edges
    )


if __name__ == "__main__":
    main()
