"""Downstream stages at benchmark scale: every job after the embeddings, on a synthetic tree.

    python benchmarks/downstream_scale.py --videos 110000 --classes 700 [--repo PATH]

Writes a results tree for N videos and C classes under a scratch folder (--root, removed at
the end unless --keep), in the schemas of the demo's own files (read from results/demo/,
which `make demo` makes; nothing here restates a column), then runs each downstream job as
the workflow does: the jobs, their inputs, outputs and params come from the workflow's own
DAG for the demo config (Snakemake's API, with the paths moved under --root), and each
job's unmodified workflow/scripts/*.py runs in its own process with a `snakemake` object,
as Snakemake's script preamble runs it. Per job it measures wall seconds and peak RSS
(os.wait4 of that process). --repo points at another checkout (e.g. an older commit's
clone, for a before/after pair): its Snakefile, scripts and src/ are used.

The tree, as a Kinetics-size run would hold it: one split; 1.5% of the listed videos
missing, 0.3% failed (no embedding), 1% of the embedded ones without a caption; D-dim unit
vectors; 28 name templates per class; 8 attributes, 2 descriptions and a 3-level hierarchy
per class; the embeddings in row groups of --row-group rows, in manifest order (as the
gathered shards hold them); one frame per video (the pages show one).

The last line is
    downstream videos=N classes=C score_ms_per_video=… score_peak_mb=… explain_peak_mb=…
    report_peak_mb=…
(score_ms_per_video: the five score jobs' wall time together, per listed video; *_peak_mb:
the largest peak RSS among that stage's jobs; report covers compare, tables and pages).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# numpy, pyarrow and Snakemake are imported inside the functions that build the tree and
# read the DAG, which run in child processes (in_child): the process that starts the jobs
# stays small, since a child's ru_maxrss starts from its parent's resident size at fork.

DEMO = "results/demo"  # inside --repo: read for its schemas; under --root: written
DOWNSTREAM = (
    "score", "explain", "compare", "tables", "report_tables_html", "report_ablation",
    "report_class_plots", "report_explanations", "report_class_gains", "report_summary",
)  # fmt: skip
STAGE_OF = {"score": "score", "explain": "explain"}  # every other rule counts as "report"
TEMPLATES = 28
ATTRIBUTES, DESCRIPTIONS, HIERARCHY = 8, 2, 3
MISSING, FAILED, UNCAPTIONED = 0.015, 0.003, 0.01

# Run in a child: the job spec (JSON) -> the script run as Snakemake's preamble runs it.
CHILD = """
import json, runpy, sys
spec = json.load(open(sys.argv[1]))
sys.path.insert(0, spec["src"])

class Files(list):
    def __init__(self, named):
        super().__init__()
        self._named = named
        for name, value in named.items():
            self.extend(value if isinstance(value, list) else [value])
            if not name.isdigit():
                setattr(self, name, value)

    def items(self):
        return [(k, v) for k, v in self._named.items() if not k.isdigit()]

class Job:
    pass

smk = Job()
for part in ("input", "output", "params", "wildcards", "log"):
    setattr(smk, part, Files(spec[part]))
smk.config = {}
runpy.run_path(spec["script"], init_globals={"snakemake": smk}, run_name="__main__")
"""


# ---------------------------------------------------------------------------
# The jobs, from the workflow's DAG for the demo config.
# ---------------------------------------------------------------------------


def _named(files, paths: bool = True) -> dict:
    """A Snakemake Namedlist as {name: value}, unnamed entries by position."""
    named = dict(files.items())
    spans = [(start, start + 1 if end is None else end) for start, end in files._names.values()]
    taken = {i for start, end in spans for i in range(start, end)}
    named.update({str(i): v for i, v in enumerate(files) if i not in taken})
    if not paths:
        return named
    return {k: [str(x) for x in v] if isinstance(v, list) else str(v) for k, v in named.items()}


def demo_jobs(repo: Path) -> list[dict]:
    """Every downstream job of the demo's DAG: rule, input, output, params, wildcards, log."""
    import snakemake.api  # noqa: F401 - before snakemake.workflow (an import circle)
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import DAGSettings, OutputSettings, ResourceSettings

    here = os.getcwd()
    os.chdir(repo)
    try:
        with SnakemakeApi(OutputSettings()) as api:
            wf = api.workflow(
                resource_settings=ResourceSettings(cores=1),
                snakefile=Path("Snakefile"),
                workdir=Path("."),
            )
            wf.dag(DAGSettings())
            workflow = wf._workflow
            workflow._prepare_dag(
                forceall=True, ignore_incomplete=True, lock_warn_only=True, nolock=True
            )
            workflow._build_dag()
            jobs = []
            for job in workflow.dag.jobs:
                if job.rule.name not in DOWNSTREAM:
                    continue
                jobs.append({
                    "rule": job.rule.name,
                    "script": str(repo / "workflow" / "rules" / job.rule.script),
                    "input": _named(job.input),
                    "output": _named(job.output),
                    "params": json.loads(json.dumps(_named(job.params, paths=False), default=str)),
                    "wildcards": dict(job.wildcards.items()),
                    "log": _named(job.log),
                })  # fmt: skip
    finally:
        os.chdir(here)
    jobs.sort(key=lambda j: (DOWNSTREAM.index(j["rule"]), json.dumps(j["wildcards"])))
    return jobs


def moved(value, root: Path):
    """A job's paths moved under root (results/... -> root/results/...)."""
    if isinstance(value, str) and value.startswith("results/"):
        return str(root / value)
    if isinstance(value, list):
        return [moved(v, root) for v in value]
    if isinstance(value, dict):
        return {k: moved(v, root) for k, v in value.items()}
    return value


# ---------------------------------------------------------------------------
# The synthetic tree, in the demo's schemas.
# ---------------------------------------------------------------------------


def schema_of(path: str):
    import pyarrow.parquet as pq

    return pq.read_schema(path).remove_metadata()


def provenance_of(path: str) -> dict:
    import pyarrow.parquet as pq

    return dict(pq.read_schema(path).metadata or {})


def unit_vectors(rng, n: int, dim: int):
    import numpy as np
    import pyarrow as pa

    flat = rng.standard_normal((n, dim), dtype=np.float32)
    flat /= np.linalg.norm(flat, axis=1, keepdims=True)
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * dim)
    return pa.ListArray.from_arrays(offsets, pa.array(flat.reshape(-1)))


def write(path: Path, columns: dict, like: str, row_group: int | None = None) -> None:
    """Write columns in the schema (and with the provenance metadata) of the demo's file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = schema_of(like).with_metadata(provenance_of(like))
    table = pa.table({f.name: columns[f.name] for f in schema}, schema=schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=row_group)


def build_tree(root: Path, repo: Path, videos: int, classes: int, dim: int, row_group: int,
               seed: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    d = repo / DEMO
    emb = d / "embeddings" / "tiny-clip"
    out = root / DEMO
    names = [f"class {c:04d}" for c in range(classes)]
    ids = [f"video_{i:07d}.mp4" for i in range(videos)]
    labels = rng.integers(0, classes, videos)
    fate = rng.random(videos)
    exists = fate >= MISSING
    embedded = exists & (fate >= MISSING + FAILED)
    emb_ids = [v for v, e in zip(ids, embedded, strict=True) if e]
    n_emb = len(emb_ids)

    write(out / "manifest.parquet", {
        "video_id": ids, "path": [f"videos/{v}" for v in ids],
        "label": [names[c] for c in labels], "class_id": pa.array(labels, pa.int32()),
        "split": pa.array(np.ones(videos, np.int32)), "exists": exists,
    }, str(d / "manifest.parquet"))  # fmt: skip
    write(out / "classes.parquet", {
        "split": pa.array(np.ones(classes, np.int32)),
        "class_id": pa.array(range(classes), pa.int32()), "name": names, "display_name": names,
    }, str(d / "classes.parquet"))  # fmt: skip
    failed = [v for v, e, m in zip(ids, embedded, exists, strict=True) if m and not e]
    write(out / "failures.parquet", {
        "video_id": failed, "stage": ["embed_videos"] * len(failed),
        "reason": ["synthetic failure"] * len(failed),
    }, str(d / "failures.parquet"))  # fmt: skip
    write(out / "embeddings/tiny-clip/videos.parquet", {
        "video_id": emb_ids, "vector": unit_vectors(rng, n_emb, dim),
        "num_frames": pa.array(np.full(n_emb, 8, np.int32)),
    }, str(emb / "videos.parquet"), row_group)  # fmt: skip

    owners = [n for n in names for _ in range(TEMPLATES)]
    write(out / "embeddings/tiny-clip/class-names.parquet", {
        "kind": ["name"] * len(owners), "owner": owners,
        "text": [f"a video of {o}, template {t}" for o in names for t in range(TEMPLATES)],
        "vector": unit_vectors(rng, len(owners), dim),
        "template": pa.array(np.tile(np.arange(TEMPLATES, dtype=np.int32), classes)),
    }, str(emb / "class-names.parquet"))  # fmt: skip

    descriptors = {}
    kinds, owners, texts = [], [], []
    for n in names:
        attrs = [f"attribute {i} of {n}" for i in range(ATTRIBUTES)]
        descs = [f"Description {i}: someone does {n} in a long sentence."
                 for i in range(DESCRIPTIONS)]  # fmt: skip
        path = [f"level {i} of {n}" for i in range(HIERARCHY - 1)] + [n]
        descriptors[n] = {"attributes": attrs, "descriptions": descs, "fallback": False,
                          "hierarchy": path, "reason": None}  # fmt: skip
        for kind, rows in (("attribute", [f"{n}, which involves {a}" for a in attrs]),
                           ("description", [f"{n}: {s}" for s in descs]),
                           ("hierarchy", [" → ".join(path)])):  # fmt: skip
            kinds += [kind] * len(rows)
            owners += [n] * len(rows)
            texts += rows
    write(out / "embeddings/tiny-clip/classes-demo-curated.parquet", {
        "kind": kinds, "owner": owners, "text": texts, "vector": unit_vectors(rng, len(texts), dim),
    }, str(emb / "classes-demo-curated.parquet"))  # fmt: skip
    demo_json = json.loads((d / "descriptors/demo-curated.json").read_text())
    demo_json["classes"] = descriptors
    demo_json["summary"] = {"classes": classes, "fallbacks": 0}
    (out / "descriptors").mkdir(parents=True, exist_ok=True)
    (out / "descriptors/demo-curated.json").write_text(json.dumps(demo_json))

    demo_captions = pq.read_table(d / "captions/tiny-vlm.parquet")
    said = demo_captions.column("caption").to_pylist()
    captioned = [v for v in emb_ids if rng.random() >= UNCAPTIONED]
    caption = [f"{said[i % len(said)]} ({i})" for i in range(len(captioned))]
    write(out / "embeddings/tiny-clip/captions-tiny-vlm.parquet", {
        "kind": ["caption"] * len(captioned), "owner": captioned, "text": caption,
        "vector": unit_vectors(rng, len(captioned), dim),
    }, str(emb / "captions-tiny-vlm.parquet"), row_group)  # fmt: skip
    first = demo_captions.slice(0, 1).to_pylist()[0]
    write(out / "captions/tiny-vlm.parquet", {
        "video_id": captioned, "caption": caption,
        **{k: [first[k]] * len(captioned)
           for k in ("captioner", "prompt_version", "generation_params")},
    }, str(d / "captions/tiny-vlm.parquet"), row_group)  # fmt: skip
    build_frames(d, out, emb_ids, row_group)


def build_frames(d: Path, out: Path, emb_ids: list[str], row_group: int) -> None:
    """One frame per embedded video (the demo's first frame), in each frames shard the demo
    has, so the explanation pages find a thumbnail for any video they show."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for shard in sorted((d / "frames").glob("*/*.parquet")):
        if shard.name.endswith(".failures.parquet"):
            continue
        demo = pq.read_table(shard).slice(0, 1).to_pylist()[0]
        n = len(emb_ids)
        write(out / shard.relative_to(d), {
            "video_id": emb_ids,
            "frame_indices": pa.array([[0]] * n, pa.list_(pa.int32())),
            "jpeg": pa.array([[demo["jpeg"][0]]] * n, pa.list_(pa.binary())),
            **{k: [demo[k]] * n for k in ("height", "width", "num_source_frames",
                                          "source_fps", "source_duration_s")},
        }, str(shard), row_group)  # fmt: skip


# ---------------------------------------------------------------------------
# Running the jobs.
# ---------------------------------------------------------------------------


def input_mb(files: dict) -> dict[str, float]:
    """The size of each of a job's inputs (by name, a list summed), in MB (10^6 bytes)."""
    return {
        name: sum(os.path.getsize(p) for p in (v if isinstance(v, list) else [v])
                  if os.path.isfile(p)) / 1e6
        for name, v in files.items()
    }  # fmt: skip


def run_job(job: dict, root: Path, src: Path, env: dict) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one job run in its own process."""
    spec = {part: moved(job[part], root) for part in ("input", "output", "params", "log")}
    spec.update(wildcards=job["wildcards"], script=job["script"], src=str(src))
    # The tables' records and comparisons on disk: those of the synthetic tree only.
    for key in ("records", "compared"):
        if key in spec["params"]:
            spec["params"][key] = [p for p in spec["params"][key] if Path(p).exists()]
    for path in [*spec["output"].values(), *spec["log"].values()]:
        for p in path if isinstance(path, list) else [path]:
            Path(p).parent.mkdir(parents=True, exist_ok=True)
    spec_path = root / f"job-{os.getpid()}.json"
    spec_path.write_text(json.dumps(spec))
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(spec_path)], env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        log = next(iter(spec["log"].values()))
        tail = Path(log).read_text()[-3000:] if Path(log).exists() else ""
        raise SystemExit(f"{job['rule']} {job['wildcards']} failed ({proc.returncode}):\n{tail}")
    return wall, usage.ru_maxrss / 1024


def in_child(env: dict, *args: str) -> None:
    """Run this file with args in its own process: the DAG (Snakemake) and the tree (numpy)
    must not swell this one, whose peak every job it starts would inherit in ru_maxrss."""
    subprocess.run([sys.executable, __file__, *args], env=env, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=20000)
    parser.add_argument("--classes", type=int, default=400)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--row-group", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repo", type=Path, default=Path.cwd())
    parser.add_argument("--root", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write every job's numbers")
    parser.add_argument("--step", choices=("dag", "tree"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    repo = args.repo.resolve()
    if args.step == "dag":
        (args.root / "jobs.json").write_text(json.dumps(demo_jobs(repo)))
        return
    if args.step == "tree":
        build_tree(args.root, repo, args.videos, args.classes, args.dim, args.row_group,
                   args.seed)  # fmt: skip
        return

    root = Path(tempfile.mkdtemp(prefix="downstream-", dir=args.root))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONPATH": str(repo / "src")}  # fmt: skip
    same = ["--repo", str(repo), "--root", str(root)]
    try:
        in_child(env, "--step", "dag", *same)
        jobs = json.loads((root / "jobs.json").read_text())
        start = time.perf_counter()
        in_child(env, "--step", "tree", *same, "--videos", str(args.videos),
                 "--classes", str(args.classes), "--dim", str(args.dim),
                 "--row-group", str(args.row_group), "--seed", str(args.seed))  # fmt: skip
        print(f"tree written in {time.perf_counter() - start:.1f} s under {root}", flush=True)
        results = []
        for job in jobs:
            size = input_mb(moved(job["input"], root))
            wall, peak = run_job(job, root, repo / "src", env)
            results.append({"rule": job["rule"], "wildcards": job["wildcards"], "wall_s": wall,
                            "peak_mb": peak, "input_mb": size})  # fmt: skip
            print(f"{job['rule']:22s} {json.dumps(job['wildcards'])}: {wall:6.1f} s"
                  f" {peak:7.0f} MB", flush=True)  # fmt: skip
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    def stage(r):
        return STAGE_OF.get(r["rule"], "report")

    peak = {s: max(r["peak_mb"] for r in results if stage(r) == s)
            for s in ("score", "explain", "report")}  # fmt: skip
    score_s = sum(r["wall_s"] for r in results if stage(r) == "score")
    if args.json:  # one entry per size: the runs already there stay, a rerun replaces its own
        runs = json.loads(args.json.read_text()) if args.json.exists() else []
        runs = [r for r in runs if (r["videos"], r["classes"]) != (args.videos, args.classes)]
        runs.append({"videos": args.videos, "classes": args.classes, "load": os.getloadavg()[0],
                     "jobs": results})  # fmt: skip
        runs.sort(key=lambda r: (r["videos"], r["classes"]))
        args.json.write_text(json.dumps(runs, indent=1) + "\n")
    print(
        f"downstream videos={args.videos} classes={args.classes}"
        f" score_ms_per_video={1000 * score_s / args.videos:.3f}"
        f" score_peak_mb={peak['score']:.0f} explain_peak_mb={peak['explain']:.0f}"
        f" report_peak_mb={peak['report']:.0f}"
    )


if __name__ == "__main__":
    main()
