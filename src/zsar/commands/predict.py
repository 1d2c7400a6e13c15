"""`zsar predict`: classify and explain videos with a backbone, outside the workflow.

    zsar predict VIDEO [VIDEO ...] --classes (DATASET | FILE) --backbone NAME
        [--captioner NAME|none] [--descriptors FILE|none] [--explain] [--json]

It runs the workflow's own code on each video: the frames stage's decoder and TSN
sampling (JPEG round trip included, so the video embedding is the one the workflow would
compute), the embedding stage's frame mean and class texts, the captioner backends, the
scoring's class vectors and fusion, and zsar.stages.explain for the justification.

Classes (--classes):
- DATASET: a dataset the workflow has run; its classes are results/DATASET/classes.parquet
  (all splits together, or --split N). Its descriptors default to the dataset's
  results/DATASET/descriptors/<llm>.json: the only one there, or the config's LLM's.
- FILE: a classes.parquet, or a class list in any style zsar.data.adapters reads (one name per
  line, "id,name" CSV, UCF's classInd). No descriptors unless --descriptors names a JSON.
A path that exists is a FILE; anything else must name a dataset under --results.

Settings the workflow takes from the config (descriptor templates, kind weights, fusion,
λ, frame size and JPEG quality, caption prompt set) are read from --config
(config/config.yaml) through the workflow's own loader (zsar.pipeline.config), so every key it
leaves out has the same default as in a workflow run. --frames, --lambda and --fusion
override.

A video that cannot be read gets one line on stderr naming it, the others go on, and the
exit status is 1 if any video failed (2 for a usage or setup error).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from zsar.commands.checkout import find_workdir
from zsar.core.method import FUSIONS, HIERARCHY_SEPARATOR, KINDS, kind_weights
from zsar.core.metrics import rank_classes
from zsar.data.adapters import AnnotationError, read_class_list, words_display_name
from zsar.data.io import concat_tables, read_json
from zsar.models.backbones import (
    MissingCheckpointError,
    fetch_command,
    load_backbone,
    missing_checkpoint_message,
)
from zsar.models.caption_inputs import VideoFrames, load_prompt_set
from zsar.models.captioners import make_captioner
from zsar.models.devices import preferred_device
from zsar.models.registry import RegistryError, get_entry, load_registry
from zsar.pipeline import stage_table
from zsar.pipeline.config import ConfigError, lambdas, load_config
from zsar.pipeline.results_files import find
from zsar.stages.captions import clean_caption
from zsar.stages.embed import DEFAULT_POOLING, SPATIAL_CROPS, Views
from zsar.stages.embed import video_embedding as pool_views
from zsar.stages.embed_text import (
    class_descriptor_records,
    embed_class_names,
    embed_text_records,
    load_name_prompt,
)
from zsar.stages.explain import (
    descriptors_by_class,
    explain_prediction,
    explanation_query,
    hierarchy_paths,
    shown_descriptor_texts,
    similarity_basis,
)
from zsar.stages.frames import Sampling, decode_jpegs, decode_videos
from zsar.stages.scoring import class_vector_sets, score_with_templates

EXIT_VIDEO_FAILED = 1
EXIT_SETUP = 2


class PredictError(Exception):
    """A setup problem (classes, descriptors, model) that stops before any video."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("videos", nargs="+", metavar="VIDEO", help="video files to classify")
    parser.add_argument("--classes", required=True, metavar="DATASET|FILE",
                        help="a dataset under --results, a classes.parquet, or a class list")
    parser.add_argument("--backbone", required=True, help="a backbone of the model registry")
    parser.add_argument("--captioner", default="none",
                        help="a captioner of the registry, or none (default)")
    parser.add_argument("--descriptors", default=None, metavar="FILE|none",
                        help="a descriptors JSON, or none; default: the dataset's, if any")
    parser.add_argument("--explain", action="store_true",
                        help="justify each prediction: descriptors, caption, hierarchy")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--split", type=int, default=None,
                        help="only this split's classes of a dataset (default: all)")
    parser.add_argument("--top", type=int, default=5, help="classes to list (default 5)")
    parser.add_argument("--frames", type=int, default=None, metavar="N",
                        help="frames per video (default: the config's, 8)")
    parser.add_argument("--lambda", dest="lam", type=float, default=None, metavar="LAMBDA",
                        help="caption weight λ (default: the config's first λ)")
    parser.add_argument("--fusion", choices=list(FUSIONS), default=None,
                        help="caption fusion (default: the config's)")
    parser.add_argument("--workdir", default=None, metavar="DIR",
                        help="the workflow's folder, which the paths below are relative to "
                        "(default: this folder if it holds config/models.yaml, else the "
                        "checkout zsar is installed from)")
    parser.add_argument("--config", default="config/config.yaml",
                        help="workflow config for templates, weights and frame settings")
    parser.add_argument("--registry", default="config/models.yaml", help="model registry")
    parser.add_argument("--resources", default="resources", help="folder with models/")
    parser.add_argument("--results", default="results", help="the workflow's results folder")
    parser.add_argument("--device", default="auto", help="cpu, cuda, or auto (default)")
    parser.add_argument("--workers", type=int, default=1,
                        help="decode processes (0 decodes in this process)")


# ---------------------------------------------------------------------------
# Settings, classes and descriptors
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    num_frames: int  # per temporal clip
    clips: int
    sampling: str  # zsar.stages.frames.SAMPLERS
    stride: int
    crops: int
    short_side: int
    jpeg_quality: int
    templates: dict[str, str]
    weights: dict[str, float]
    fusion: str
    lam: float
    prompt_set: Path
    prompts_dir: Path
    max_new_tokens: int
    batch_size: int
    llm: str | None = None


def load_settings(args: argparse.Namespace) -> Settings:
    config_path = Path(args.config)
    config = load_config([config_path] if config_path.is_file() else [], complete=False)
    prompts_dir = config_path.parent / "prompts"
    frames, captions = config["frames"], config["captions"]
    return Settings(
        num_frames=args.frames or int(frames["num_frames"]),
        clips=int(frames["views"]["clips"]),
        sampling=frames["sampling"],
        stride=int(frames["stride"]),
        crops=int(frames["views"]["crops"]),
        short_side=int(frames["short_side"]),
        jpeg_quality=int(frames["jpeg_quality"]),
        templates=dict(config["descriptors"]["templates"]),
        weights={k: float(v) for k, v in config["scoring"]["weights"].items()},
        fusion=args.fusion or config["scoring"]["fusion"],
        lam=lambdas(config["scoring"])[0] if args.lam is None else float(args.lam),
        prompt_set=prompts_dir / f"{captions['prompt_set']}.yaml",
        prompts_dir=prompts_dir,
        max_new_tokens=int(captions["max_new_tokens"]),
        batch_size=int(captions["batch_size"]),
        llm=config["descriptors"].get("llm"),
    )


@dataclass(frozen=True)
class ClassList:
    names: list[str]  # raw names, the order of the scores
    displays: list[str]
    dataset: str | None = None  # set when --classes named a dataset

    def as_table(self):
        return pa.table({"name": self.names, "display_name": self.displays})


def classes_from_parquet(path: Path, split: int | None) -> tuple[list[str], list[str]]:
    rows = sorted(pq.read_table(path).to_pylist(), key=lambda r: (r["split"], r["class_id"]))
    if split is not None:
        rows = [r for r in rows if r["split"] == split]
        if not rows:
            raise PredictError(f"{path} has no classes in split {split}")
    first: dict[str, str] = {}
    for row in rows:  # a class shared by several splits is one class
        first.setdefault(row["name"], row["display_name"])
    return list(first), list(first.values())


def classes_from_list(path: Path) -> tuple[list[str], list[str]]:
    try:
        names = list(dict.fromkeys(read_class_list(path)))
    except AnnotationError as err:
        raise PredictError(str(err)) from None
    return names, [words_display_name(n) for n in names]


def resolve_classes(value: str, results: Path, split: int | None) -> ClassList:
    """--classes: an existing file, else a dataset with results/<value>/classes.parquet."""
    path = Path(value)
    if path.is_file():
        reader = classes_from_parquet if path.suffix == ".parquet" else None
        if reader is not None:
            return ClassList(*reader(path, split))
        return ClassList(*classes_from_list(path))
    dataset_classes = Path(stage_table.path("classes", "classes", str(results), dataset=value))
    if dataset_classes.is_file():
        return ClassList(*classes_from_parquet(dataset_classes, split), dataset=value)
    raise PredictError(
        f"--classes {value}: no such file, and no dataset classes at {dataset_classes} "
        "(run the workflow's manifest rule for that dataset first)"
    )


def llms_of_runs(results: Path, dataset: str) -> list[str]:
    """The descriptor LLMs that the dataset's scored runs used (from their metrics JSONs)."""
    llms = set()
    for path in find("score", "metrics", results, dataset=dataset):
        chain = (json.loads(path.read_text()).get("provenance") or {}).get("chain") or {}
        llm = (chain.get("descriptors") or {}).get("llm") or {}
        if llm.get("name"):
            llms.add(llm["name"])
    return sorted(llms)


def resolve_descriptors(
    value: str | None, classes: ClassList, results: Path, llm: str | None
) -> Path | None:
    """The descriptors JSON to use, or None (class names only).

    For --classes DATASET: the descriptors of the LLM that DATASET's runs used, found in
    their metrics; where they used several, the config's LLM among them; where no run is
    scored yet, the one descriptors file there is.
    """
    if value is not None:
        if value == "none":
            return None
        if not Path(value).is_file():
            raise PredictError(f"--descriptors {value}: no such file")
        return Path(value)
    if classes.dataset is None:
        return None
    used = llms_of_runs(results, classes.dataset)
    if len(used) > 1:
        used = [name for name in used if name == llm] or used
    if len(used) == 1:
        path = Path(stage_table.path("descriptors", "descriptors", str(results),
                                     dataset=classes.dataset, llm=used[0]))
        if not path.is_file():
            raise PredictError(f"{path}: the descriptors of the run's LLM {used[0]} are gone")
        return path
    found = find("descriptors", "descriptors", results, dataset=classes.dataset)
    if not used and len(found) <= 1:
        return found[0] if found else None
    names = ", ".join(used) if used else ", ".join(p.name for p in found)
    raise PredictError(
        f"{classes.dataset} was scored with several descriptor sets ({names}); "
        "choose one with --descriptors FILE"
    )


# ---------------------------------------------------------------------------
# The model side: class vectors, videos, captions
# ---------------------------------------------------------------------------


@dataclass
class ClassModel:
    """Everything scoring and explaining need about the classes, for one backbone."""

    classes: ClassList
    vector_sets: list[np.ndarray]  # [C, D] class vectors c_k, one set per scored template
    kinds: list[str]
    descriptors: dict[str, Any] = field(repr=False)  # raw name -> explain.ClassDescriptors
    hierarchy: dict[str, list[str]] = field(repr=False)
    combine: str = "embedding_mean"  # how the name templates' scores combine
    scale: float = 100.0

    @property
    def display(self) -> dict[str, str]:
        return dict(zip(self.classes.names, self.classes.displays, strict=True))


def build_class_model(
    classes: ClassList, descriptors_json, backbone, settings, name_prompt
) -> ClassModel:
    """Class vectors exactly as the embedding and scoring stages build them, with the
    backbone's name prompt (zsar.stages.embed_text.NamePrompt)."""
    descriptors_json = descriptors_json or {}
    table = classes.as_table()
    names = embed_class_names(table, backbone, name_prompt)
    texts = embed_text_records(
        class_descriptor_records(table, descriptors_json, settings.templates), backbone
    )
    table = concat_tables([names, texts])
    # Every kind when there are descriptors (the `full` variant's class vectors), else the
    # name alone (`baseline`'s).
    kinds = list(KINDS) if descriptors_json else ["name"]
    weights = kind_weights(kinds, settings.weights)
    display = dict(zip(classes.names, classes.displays, strict=True))
    return ClassModel(
        classes=classes,
        vector_sets=class_vector_sets(table, classes.names, weights, name_prompt.combine),
        kinds=kinds,
        descriptors=descriptors_by_class(
            table.to_pylist(),
            [k for k in kinds if KINDS[k].is_descriptor],
            shown_descriptor_texts(descriptors_json, display, settings.templates),
        ),
        hierarchy=hierarchy_paths(descriptors_json),
        combine=name_prompt.combine,
        scale=name_prompt.scale,
    )


def video_embedding(jpegs: Sequence[bytes], backbone, views, pooling: str) -> np.ndarray:
    """The embedding stage's video embedding from the frames stage's JPEGs: each frame cut
    into its spatial crops, pooled per view by the backbone's rule, views averaged."""
    cut = SPATIAL_CROPS[views.crops]
    pixels = backbone.preprocess([view for image in decode_jpegs(jpegs) for view in cut(image)])
    return pool_views(backbone.image_features(pixels).numpy(), views, pooling)


def caption_videos(decoded, captioner_entry, args, settings, device) -> dict[str, str]:
    """Captions by video path; a failed or empty caption is left out (scored without it)."""
    captioner = make_captioner(
        captioner_entry, args.resources, device, load_prompt_set(settings.prompt_set),
        settings.max_new_tokens, settings.batch_size,
    )
    videos = [VideoFrames(d.video_id, list(d.jpeg), d.frame_indices, d.num_source_frames,
                          d.source_fps, d.source_duration_s) for d in decoded]
    captions = {}
    for video, (text, error) in zip(videos, captioner.caption(videos), strict=True):
        caption = clean_caption(text) if error is None else ""
        if caption:
            captions[video.video_id] = caption
        else:
            print(f"zsar predict: warning: no caption for {video.video_id}: "
                  f"{error or 'empty caption'}; scored without it", file=sys.stderr)
    return captions


# ---------------------------------------------------------------------------
# Scoring and explaining one video (pure, given the embeddings)
# ---------------------------------------------------------------------------


def predict_video(
    video: np.ndarray,
    caption_vector: np.ndarray | None,
    caption: str | None,
    model: ClassModel,
    *,
    fusion: str,
    lam: float,
    top: int,
    explain: bool,
) -> dict[str, Any]:
    lam = lam if caption_vector is not None else 0.0
    scores = score_with_templates(
        video[None], model.vector_sets, combine=model.combine, scale=model.scale,
        captions=None if caption_vector is None else caption_vector[None],
        fusion=fusion, lam=lam,
    )[0]
    ranked = rank_classes(scores[None], top)[0]
    names, displays = model.classes.names, model.classes.displays
    result: dict[str, Any] = {
        "top": [
            {"class": names[i], "display": displays[i], "score": float(scores[i])}
            for i in ranked
        ],
        "caption": caption,
    }
    if explain:
        result["explanation"] = explain_prediction(
            ranked=[(names[i], float(scores[i])) for i in ranked[:2]],
            query=explanation_query(video, caption_vector, fusion=fusion, lam=lam),
            descriptors=model.descriptors,
            hierarchy=model.hierarchy,
            caption=caption,
            display=model.display,
            basis=similarity_basis(caption_vector is not None, fusion, lam),
        )
    return result


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------


def _descriptor_line(items: Sequence[Mapping[str, Any]]) -> str:
    if not items:
        return "none"
    return ", ".join(f'"{d["text"]}" ({d["similarity"]:.3f})' for d in items)


def format_text(video: str, result: Mapping[str, Any]) -> str:
    """A block per video: the ranked classes, then the caption and the justification."""
    width = max(len(c["display"]) for c in result["top"])
    lines = [video]
    for rank, item in enumerate(result["top"], 1):
        lines.append(f"  {rank}. {item['display']:<{width}}  {item['score']:.4f}")
    if result.get("caption"):
        lines.append(f'  caption: "{result["caption"]}"')
    explanation = result.get("explanation")
    if explanation:
        display = {c["class"]: c["display"] for c in result["top"]}
        lines.append(f"  why: {explanation['sentence']}")
        lines.append(f"  similarities to: {explanation['similarity_to']}")
        lines.append(
            f"  top descriptors of {display[explanation['predicted']]}: "
            f"{_descriptor_line(explanation['predicted_descriptors'])}"
        )
        if explanation["runner_up"] is not None:
            lines.append(
                f"  top descriptors of {display[explanation['runner_up']]}: "
                f"{_descriptor_line(explanation['runner_up_descriptors'])}"
            )
        if explanation["hierarchy"]:
            lines.append(f"  hierarchy: {HIERARCHY_SEPARATOR.join(explanation['hierarchy'])}")
    return "\n".join(lines)


def report_failure(video: str, reason: str) -> None:
    # One line per video, naming the file, so a batch run's log is easy to grep.
    reason = " ".join(str(reason).split())
    print(f"zsar predict: error: cannot read {video}: {reason}", file=sys.stderr)


# ---------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------


@dataclass
class Setup:
    settings: Settings
    backbone: Any
    model: ClassModel
    captioner_entry: dict[str, Any] | None
    descriptors_path: Path | None
    device: str
    pooling: str  # the backbone's frame pooling (zsar.stages.embed.POOLINGS)


def prepare(args: argparse.Namespace) -> Setup:
    """Everything before the first video; any problem is a PredictError-like exception."""
    settings = load_settings(args)
    results = Path(args.results)
    classes = resolve_classes(args.classes, results, args.split)
    descriptors_path = resolve_descriptors(args.descriptors, classes, results, settings.llm)
    registry = load_registry(args.registry)
    backbone_entry = get_entry(registry, "backbones", args.backbone)
    captioner_entry = None
    if args.captioner != "none":
        captioner_entry = get_entry(registry, "captioners", args.captioner)
        if not settings.prompt_set.is_file():
            raise PredictError(f"caption prompt set {settings.prompt_set} not found (--config)")
    device = args.device
    if device == "auto":
        device = preferred_device()
    backbone = load_backbone(backbone_entry, args.resources, device)
    descriptors_json = read_json(descriptors_path) if descriptors_path else None
    name_prompt = load_name_prompt(backbone_entry.get("name_prompt"), settings.prompts_dir)
    model = build_class_model(classes, descriptors_json, backbone, settings, name_prompt)
    pooling = backbone_entry.get("pooling", DEFAULT_POOLING)
    return Setup(settings, backbone, model, captioner_entry, descriptors_path, device, pooling)


def decode(videos: Sequence[str], settings: Settings, workers: int):
    """The frames stage's decoder on the given files: (decoded, [(video, reason)])."""
    sampling = Sampling(settings.sampling, settings.num_frames, settings.clips, settings.stride)
    decoded, failed = [], []
    for video in decode_videos(
        [(v, v) for v in videos], sampling, settings.short_side, workers,
        jpeg_quality=settings.jpeg_quality,
    ):
        if video.ok:
            decoded.append(video)
        else:
            failed.append((video.video_id, video.error or "unknown error"))
            report_failure(video.video_id, video.error or "unknown error")
    return decoded, failed


def fetch_advice(err: MissingCheckpointError, args: argparse.Namespace) -> str:
    """The missing-checkpoint message with a fetch command that runs from where the user
    runs `zsar predict` (the workflow's own message assumes its folder)."""
    if err.entry is None or err.folder is None:
        return str(err)
    workdir = Path(args.workdir)
    config = {}
    if Path(args.registry) != workdir / "config" / "models.yaml":
        config["models"] = args.registry
    command = fetch_command(err.folder, workdir, config)
    return missing_checkpoint_message(err.entry, err.folder, command)


def in_workdir(args: argparse.Namespace) -> argparse.Namespace:
    """The arguments with the workflow paths taken relative to the workflow folder."""
    workdir = Path(args.workdir).resolve() if args.workdir else find_workdir()
    resolved = vars(args).copy()
    resolved["workdir"] = str(workdir)
    for key in ("config", "registry", "resources", "results"):
        resolved[key] = str(workdir / getattr(args, key))
    return argparse.Namespace(**resolved)


def run(args: argparse.Namespace) -> int:
    if args.top < 1:
        print("zsar predict: error: --top must be at least 1", file=sys.stderr)
        return EXIT_SETUP
    try:
        # Videos, class lists and descriptor files as named, relative to where the command
        # runs; the workflow's config, registry, models and results to its folder.
        args = in_workdir(args)
        setup = prepare(args)
    except MissingCheckpointError as err:
        print(f"zsar predict: error: {fetch_advice(err, args)}", file=sys.stderr)
        return EXIT_SETUP
    except (PredictError, RegistryError, ConfigError, OSError, ValueError) as err:
        print(f"zsar predict: error: {err}", file=sys.stderr)
        return EXIT_SETUP
    if setup.descriptors_path is not None and args.descriptors is None:
        # Chosen for the user: say which, so a result can be traced to its descriptors.
        print(f"zsar predict: {args.classes}: descriptors of the run's LLM, "
              f"{setup.descriptors_path}", file=sys.stderr)
    settings = setup.settings
    decoded, failed = decode(args.videos, settings, args.workers)
    views = Views(settings.clips, settings.crops)
    embeddings = {
        d.video_id: video_embedding(d.jpeg, setup.backbone, views, setup.pooling) for d in decoded
    }
    captions: dict[str, str] = {}
    if setup.captioner_entry is not None and decoded:
        captions = caption_videos(decoded, setup.captioner_entry, args, settings, setup.device)
    caption_ids = sorted(captions)
    caption_vectors = dict(
        zip(caption_ids, setup.backbone.encode_texts([captions[v] for v in caption_ids]).numpy(),
            strict=True)
    )
    results = {}
    for d in decoded:
        results[d.video_id] = predict_video(
            embeddings[d.video_id],
            caption_vectors.get(d.video_id),
            captions.get(d.video_id),
            setup.model,
            fusion=settings.fusion,
            lam=settings.lam if setup.captioner_entry is not None else 0.0,
            top=args.top,
            explain=args.explain,
        )
    if args.json:
        document = {
            "backbone": args.backbone,
            "captioner": None if setup.captioner_entry is None else args.captioner,
            "descriptors": None if setup.descriptors_path is None else str(setup.descriptors_path),
            "classes": len(setup.model.classes.names),
            "kinds": setup.model.kinds,
            "fusion": settings.fusion if setup.captioner_entry is not None else None,
            "lambda": settings.lam if setup.captioner_entry is not None else None,
            "videos": [{"video": v, **results[v]} for v in args.videos if v in results],
            "errors": [{"video": v, "error": reason} for v, reason in failed],
        }
        print(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        blocks = [format_text(v, results[v]) for v in args.videos if v in results]
        if blocks:
            print("\n\n".join(blocks))
    return EXIT_VIDEO_FAILED if failed else 0
