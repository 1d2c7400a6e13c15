"""The edits of docs/cache.md's "What re-runs when" table, as data.

Each case is an edit of a finished run: what the edit is, the jobs a dry run must schedule
afterwards (exactly: rule -> job count), and the outputs whose bytes must change once those
jobs have run. tests/test_rerun.py checks every case; this file, run as a script, prints
docs/cache.md's table from the same cases, so the two cannot drift:

    python tests/helpers/rerun_cases.py
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# A second tiny backbone, so that an edit of one backbone can be seen to leave the other be.
SECOND_BACKBONE = """  tiny-clip-b:
    backend: open_clip
    demo: true
    family: CLIP (tiny, random init)
    description: A second tiny CLIP, so that a test can edit one backbone of two.
    build:
      family: open_clip
      seed: 1
      model_cfg:
        embed_dim: 32
        vision_cfg: {image_size: 64, layers: 1, width: 32, head_width: 16, patch_size: 16}
        text_cfg: {context_length: 32, vocab_size: 49408, width: 32, heads: 2, layers: 1}
    preprocess: {interpolation: bicubic}
"""
RUN_ARGS = ["--configfile", "config/config.yaml", "run.yaml"]


def prepare_demo(workdir: Path) -> None:
    """The demo with two backbones and 2 clips per class (12 videos)."""
    models = workdir / "config" / "models.yaml"
    text = models.read_text().replace("backbones:\n", f"backbones:\n{SECOND_BACKBONE}", 1)
    models.write_text(text)
    (workdir / "run.yaml").write_text(
        "backbones: [tiny-clip, tiny-clip-b]\ndemo_clips_per_class: 2\n"
    )


def prepare_benchmark(workdir: Path) -> None:
    """A benchmark-like dataset under a data root inside the workdir (so that a copy of the
    workdir is a copy of the data too): the demo's clips as a class-list split."""
    from zsar.data.demo import generate_demo

    generate_demo(workdir / "data" / "toy", clips_per_class=2, seed=0)
    (workdir / "run.yaml").write_text(
        "datasets: [toy]\n"
        "dataset_specs:\n"
        "  toy:\n"
        "    adapter: ucf101\n"
        '    annotations: "{data_root}/toy/annotations.txt"\n'
        '    labels: "{data_root}/toy/labels.csv"\n'
        '    video_root: "{data_root}/toy/videos"\n'
        "    splits: [1]\n"
        "allow_demo_models: true\n"
        "captions: {captioner: none}\n"
        "data_root: data\n"
    )


def _append(text: str) -> Callable[[Path], list[str]]:
    def edit(workdir: Path) -> list[str]:
        with open(workdir / "run.yaml", "a") as f:
            f.write(text)
        return []

    return edit


def _replace(relative: str, old: str, new: str) -> Callable[[Path], list[str]]:
    def edit(workdir: Path) -> list[str]:
        path = workdir / relative
        text = path.read_text()
        if old not in text:
            raise AssertionError(f"{relative} no longer holds {old!r}: update this case")
        path.write_text(text.replace(old, new))
        return []

    return edit


def _touch_code(workdir: Path) -> list[str]:
    """Rewrite every workflow script and library module with the same bytes, as a `git
    checkout` of another branch and back does: new dates, same content."""
    for path in [*workdir.glob("workflow/scripts/*.py"), *workdir.glob("src/zsar/**/*.py")]:
        path.write_bytes(path.read_bytes())
    return []


def _batch_sizes_and_cores(workdir: Path) -> list[str]:
    _append("captions: {batch_size: 2}\ndescriptors: {batch_size: 1}\n")(workdir)
    return ["--cores", "1"]


def _new_data_root(workdir: Path) -> list[str]:
    import shutil

    shutil.copytree(workdir / "data", workdir / "moved-data")
    return ["--config", "data_root=moved-data"]


def _demo_lists_moved(swap: bool) -> Callable[[Path], list[str]]:
    """The demo's annotation and label files in another folder: the same bytes, or with the
    first two classes' names swapped in the label file (another class list)."""

    def edit(workdir: Path) -> list[str]:
        import shutil

        moved = workdir / "moved-lists"
        moved.mkdir()
        shutil.copy2(workdir / "resources/demo/annotations.txt", moved / "annotations.txt")
        labels = (workdir / "resources/demo/labels.csv").read_text()
        if swap:
            labels = labels.replace("0,sliding", "0,@").replace("1,rotating", "1,sliding")
            labels = labels.replace("0,@", "0,rotating")
        (moved / "labels.csv").write_text(labels)
        return _append(
            "dataset_specs:\n"
            "  demo:\n"
            "    adapter: demo\n"
            "    annotations: moved-lists/annotations.txt\n"
            "    labels: moved-lists/labels.csv\n"
            "    video_root: resources/demo/videos\n"
            "    splits: [1]\n"
        )(workdir)

    return edit


def _video_removed(workdir: Path) -> list[str]:
    (workdir / "data" / "toy" / "videos" / "sliding" / "sliding_1.mp4").unlink()
    return []


# Jobs that every edit which changes a score also re-runs: tables and report pages.
REPORT = {"report_ablation": 1, "report_summary": 1, "report_tables_html": 1, "report_runs": 1,
          "tables": 1}


def compared(backbones: int) -> dict[str, int]:
    """The paired comparisons and per-class gains pages of the backbones whose scores
    changed: one compare job and one page each."""
    return {"compare": backbones, "report_class_gains": backbones}

# What an edit that decodes other frames re-runs: everything after the manifest.
REDECODED = {"frames": 1, "caption_shard": 1, "gather_captions": 1, "embed_videos": 2,
             "gather_video_embeddings": 2, "embed_captions": 2, "failures": 1, "score": 10,
             "explain": 10, "report_class_plots": 2, "report_explanations": 2, **compared(2),
             **REPORT}

FRAMES = "results/demo/frames/tsn8_s256_q90/000-of-001.parquet"


@dataclass(frozen=True)
class Case:
    key: str
    edit: str  # the edit, as the README names it
    apply: Callable[[Path], list[str]]  # edits a copy of the finished run; extra CLI args
    schedules: dict[str, int]  # exactly what a dry run schedules then ("all" left out)
    # (target to run, output whose bytes must differ from the finished run's): the re-run
    # computes something new where it should.
    changes: tuple[str, str] | None = None
    fixture: str = "demo"  # "demo" (two backbones) or "benchmark" (a data root)
    # Rules that run for real, for a case where a dry run cannot know (the checkpoint).
    executes: frozenset[str] | None = None
    not_executes: frozenset[str] = field(default_factory=frozenset)
    # What the edit changes, in the stage table's words (`zsar explain-cache`): "config:KEY",
    # "registry:SECTION.FIELD", "module:zsar.X", or "stage:NAME" for a file only that stage
    # is keyed on. tests/test_rerun.py checks that the dry run schedules exactly the rules
    # the table says these re-run (of the rules the run has).
    edits: tuple[str, ...] = ()


CASES: tuple[Case, ...] = (
    Case(
        "description",
        "reword the `description:` of a backbone's registry entry",
        _replace("config/models.yaml", "so that a test can edit one backbone of two.",
                 "reworded."),
        {},
        edits=("registry:backbones.description",),
    ),
    Case(
        "touch",
        "`touch` every workflow script and library module, or a `git checkout` that "
        "rewrites them with the same bytes",
        _touch_code,
        {},
        edits=(),
    ),
    Case(
        "batch",
        "change the captions' and descriptors' `batch_size`, or `--cores`",
        _batch_sizes_and_cores,
        {},
        edits=("config:captions.batch_size", "config:descriptors.batch_size"),
    ),
    Case(
        "hierarchy_weight",
        "change `scoring.weights.hierarchy`",
        _append("scoring: {weights: {hierarchy: 0.9}}\n"),
        {"score": 4, "explain": 4, "report_class_plots": 2, "report_explanations": 2,
         **compared(2), **REPORT},
        ("results/demo/metrics/tiny-clip/+hierarchy.json",
         "results/demo/scores/tiny-clip/+hierarchy.parquet"),
        edits=("config:scoring.weights.hierarchy",),
    ),
    Case(
        "fusion",
        "change `scoring.fusion`",
        _append("scoring: {fusion: score}\n"),
        {"score": 4, "explain": 4, "report_class_plots": 2, "report_explanations": 2,
         **compared(2), **REPORT},
        ("results/demo/metrics/tiny-clip/+caption.json",
         "results/demo/scores/tiny-clip/+caption.parquet"),
        edits=("config:scoring.fusion",),
    ),
    Case(
        "statistics_resamples",
        "change `statistics.resamples` (or `seed`, `level`): the intervals",
        _append("statistics: {resamples: 500}\n"),
        # Every score is re-written (its intervals), so what reads the scores runs again.
        {"score": 10, "explain": 10, "report_class_plots": 2, "report_explanations": 2,
         **compared(2), **REPORT},
        ("results/demo/metrics/tiny-clip/baseline.json",
         "results/demo/metrics/tiny-clip/baseline.json"),
        edits=("config:statistics.resamples",),
    ),
    Case(
        "statistics_alpha",
        "change `statistics.alpha`: what is marked significant",
        _append("statistics: {alpha: 0.01}\n"),
        {**compared(2), "tables": 1, "report_tables_html": 1},
        ("results/demo/comparisons/tiny-clip.json", "results/demo/comparisons/tiny-clip.json"),
        edits=("config:statistics.alpha",),
    ),
    Case(
        "caption_tokens",
        "change the captioner's `max_new_tokens`",
        _append("captions: {max_new_tokens: 12}\n"),
        {"caption_shard": 1, "gather_captions": 1, "embed_captions": 2, "failures": 1,
         "score": 4, "explain": 4, "report_class_plots": 2, "report_explanations": 2,
         **compared(2), **REPORT},
        ("results/demo/captions/tiny-vlm.parquet", "results/demo/captions/tiny-vlm.parquet"),
        edits=("config:captions.max_new_tokens",),
    ),
    Case(
        "templates",
        "change a descriptor template (`descriptors.templates.attribute`)",
        _append('descriptors: {templates: {attribute: "{class} with {text}"}}\n'),
        {"embed_class_texts": 2, "score": 6, "explain": 6, "report_class_plots": 2,
         "report_explanations": 2, **compared(2), **REPORT},
        ("results/demo/embeddings/tiny-clip/classes-demo-curated.parquet",
         "results/demo/embeddings/tiny-clip/classes-demo-curated.parquet"),
        edits=("config:descriptors.templates.attribute",),
    ),
    Case(
        "preprocessing",
        "change one backbone's `preprocess:` (tiny-clip-b's interpolation)",
        _replace("config/models.yaml", "preprocess: {interpolation: bicubic}",
                 "preprocess: {interpolation: bilinear}"),
        {"embed_videos": 1, "gather_video_embeddings": 1, "score": 5, "explain": 5,
         "report_class_plots": 1, "report_explanations": 1, **compared(1), **REPORT},
        ("results/demo/embeddings/tiny-clip-b/videos.parquet",
         "results/demo/embeddings/tiny-clip-b/videos.parquet"),
        edits=("registry:backbones.preprocess",),
    ),
    Case(
        "name_prompt",
        "change one backbone's class-name protocol (tiny-clip-b's `name_prompt`)",
        _replace("config/models.yaml", "preprocess: {interpolation: bicubic}",
                 'preprocess: {interpolation: bicubic}\n    name_prompt: "a video of {}."'),
        {"embed_class_names": 1, "score": 5, "explain": 5, "report_class_plots": 1,
         "report_explanations": 1, **compared(1), **REPORT},
        ("results/demo/embeddings/tiny-clip-b/class-names.parquet",
         "results/demo/embeddings/tiny-clip-b/class-names.parquet"),
        edits=("registry:backbones.name_prompt",),
    ),
    Case(
        "pooling",
        "change one backbone's frame `pooling` (tiny-clip-b's)",
        _replace("config/models.yaml", "preprocess: {interpolation: bicubic}",
                 "preprocess: {interpolation: bicubic}\n    pooling: mean_then_normalise"),
        {"embed_videos": 1, "gather_video_embeddings": 1, "score": 5, "explain": 5,
         "report_class_plots": 1, "report_explanations": 1, **compared(1), **REPORT},
        ("results/demo/embeddings/tiny-clip-b/videos.parquet",
         "results/demo/embeddings/tiny-clip-b/videos.parquet"),
        edits=("registry:backbones.pooling",),
    ),
    Case(
        "crops",
        "change the spatial views (`frames.views.crops`)",
        _append("frames: {views: {crops: 3}}\n"),
        {"embed_videos": 2, "gather_video_embeddings": 2, "score": 10, "explain": 10,
         "report_class_plots": 2, "report_explanations": 2, **compared(2), **REPORT},
        ("results/demo/embeddings/tiny-clip/videos.parquet",
         "results/demo/embeddings/tiny-clip/videos.parquet"),
        edits=("config:frames.views.crops",),
    ),
    Case(
        "embedding_code",
        "change what the video-embedding code computes (zsar/stages/embed.py)",
        _replace("src/zsar/stages/embed.py",
                 '"normalise_then_mean": lambda frames: _unit(frames).mean(axis=-2),',
                 '"normalise_then_mean": lambda frames: _unit(frames[..., :1, :]).mean(axis=-2),'),
        {"embed_videos": 2, "gather_video_embeddings": 2, "score": 10, "explain": 10,
         "report_class_plots": 2, "report_explanations": 2, **compared(2), **REPORT},
        ("results/demo/embeddings/tiny-clip/videos.parquet",
         "results/demo/embeddings/tiny-clip/videos.parquet"),
        edits=("module:zsar.stages.embed",),
    ),
    Case(
        "frames_per_video",
        "change `frames.num_frames`",
        _append("frames: {num_frames: 4}\n"),
        REDECODED,
        ("results/demo/embeddings/tiny-clip/videos.parquet",
         "results/demo/embeddings/tiny-clip/videos.parquet"),
        edits=("config:frames.num_frames",),
    ),
    Case(
        "temporal_clips",
        "change the temporal views (`frames.views.clips`)",
        _append("frames: {views: {clips: 3}}\n"),
        # What the re-run computes: tests/test_protocol_records.py runs 3 clips at a stride.
        REDECODED,
        edits=("config:frames.views.clips",),
    ),
    Case(
        "frame_sampler",
        "sample frames at a stride (`frames.sampling: stride`)",
        _append("frames: {sampling: stride, stride: 2}\n"),
        # What the re-run computes: tests/test_protocol_records.py runs 3 clips at a stride.
        REDECODED,
        edits=("config:frames.sampling", "config:frames.stride"),
    ),
    Case(
        "stride_under_tsn",
        "change `frames.stride` while sampling TSN (which reads no stride)",
        _append("frames: {stride: 4}\n"),
        {},
        edits=("config:frames.stride",),
    ),
    Case(
        "class_name_rule",
        "change one backbone's class-name spelling (tiny-clip-b's `class_names`)",
        _replace("config/models.yaml", "preprocess: {interpolation: bicubic}",
                 "preprocess: {interpolation: bicubic}\n    class_names: spaced"),
        {"embed_class_names": 1, "score": 5, "explain": 5, "report_class_plots": 1,
         "report_explanations": 1, **compared(1), **REPORT},
        edits=("registry:backbones.class_names",),
    ),
    Case(
        "new_data_root",
        "move a benchmark's videos and lists to another data root",
        _new_data_root,
        # A dry run cannot know yet that the moved videos are the same ones: it lists what
        # hangs on the manifest; once the manifest has run, those jobs are planned again.
        {"manifest": 1, "frames": 1, "embed_videos": 1, "gather_video_embeddings": 1,
         "failures": 1, "score": 3, "explain": 3, "report_class_plots": 1,
         "report_explanations": 1, **compared(1), **REPORT},
        fixture="benchmark",
        executes=frozenset({"manifest", "failures", "score", "explain", "report_class_plots",
                            "report_explanations", *compared(1), *REPORT}),
        not_executes=frozenset({"classes", "descriptors", "frames", "embed_videos",
                                "gather_video_embeddings", "embed_class_names",
                                "embed_class_texts", "fetch_model"}),
        edits=("config:data_root",),
    ),
    Case(
        "video_removed",
        "delete a video from a benchmark's folder",
        _video_removed,
        {"manifest": 1, "frames": 1, "embed_videos": 1, "gather_video_embeddings": 1,
         "failures": 1, "score": 3, "explain": 3, "report_class_plots": 1,
         "report_explanations": 1, **compared(1), **REPORT},
        ("results/toy/frames/tsn8_s256_q90/000-of-001.parquet",
         "results/toy/frames/tsn8_s256_q90/000-of-001.parquet"),
        fixture="benchmark",
        edits=("stage:manifest",),
    ),
)

# Two cases that tests/test_rerun.py executes, not only dry-runs (they follow the classes
# checkpoint); docs/cache.md's table lists them after CASES.
# What hangs on the demo's manifest and class list, short of the jobs keyed by the class
# list's rows (class_list_content), which a dry run cannot know about yet.
_AFTER_LISTS = {"manifest": 1, "classes": 1, "frames": 1, "caption_shard": 1,
                "gather_captions": 1, "embed_videos": 2, "gather_video_embeddings": 2,
                "embed_captions": 2, "failures": 1, "score": 10, "explain": 10,
                "report_class_plots": 2, "report_explanations": 2, **compared(2), **REPORT}
_DECODING = frozenset({"frames", "caption_shard", "gather_captions", "embed_videos",
                       "gather_video_embeddings", "embed_captions", "fetch_model"})
_WITH_THE_CLASS_LIST = frozenset({"descriptors", "embed_class_names", "embed_class_texts"})
LISTS_MOVED = Case(
    "lists_moved",
    "move the demo's annotation and label files to another folder (same bytes)",
    _demo_lists_moved(swap=False),
    _AFTER_LISTS,
    executes=frozenset({"manifest", "classes", "failures", "score", "explain",
                        "report_class_plots", "report_explanations", *compared(2), *REPORT}),
    not_executes=_DECODING | _WITH_THE_CLASS_LIST,
    # The demo's lists are rule outputs, so its classes job takes them by path.
    edits=("config:dataset_specs", "stage:classes"),
)
# The counterpart, so that the case above can fail: another class list re-runs the jobs
# that read it with a model (and still decodes nothing).
LISTS_EDITED = Case(
    "lists_edited",
    "move the demo's lists to another folder and swap two class names in the label file",
    _demo_lists_moved(swap=True),
    _AFTER_LISTS,
    executes=LISTS_MOVED.executes | _WITH_THE_CLASS_LIST,
    not_executes=_DECODING,
    edits=LISTS_MOVED.edits,
)

TABLE_CASES = (*CASES, LISTS_MOVED, LISTS_EDITED)

# Stages a reader scans the table for; the rest are grouped as "scores and report".
HEAVY = ("manifest", "frames", "caption_shard", "descriptors", "embed_videos",
         "embed_class_names", "embed_class_texts", "embed_captions", "fetch_model")
SCORING = ("score", "explain")


def describe(case: Case) -> str:
    """What a case re-runs, in the words of docs/cache.md's table."""
    jobs = case.executes if case.executes is not None else set(case.schedules)
    if not jobs:
        return "nothing"
    counts = case.schedules
    # A job planned only once an upstream checkpoint has run (a dry run cannot count it)
    # is named without a count.
    parts = [f"{rule} ({counts[rule]})" if rule in counts else rule
             for rule in HEAVY if rule in jobs]
    if "score" in jobs:
        parts.append(f"{counts['score']} of the 10 scores and their explanations, "
                     f"{counts['compare']} of the 2 backbones' comparisons, tables, report"
                     if case.fixture == "demo" else "the scores, comparisons, tables, report")
    elif "compare" in jobs:
        parts.append(f"{counts['compare']} of the 2 backbones' comparisons, tables, report")
    return ", ".join(parts)


def markdown_table() -> str:
    lines = ["| edit | re-runs |", "|---|---|"]
    lines += [f"| {case.edit} | {describe(case)} |" for case in TABLE_CASES]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown_table())
