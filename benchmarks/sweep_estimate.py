"""Wall time of a full Kinetics-400 sweep, computed from the stage rates, for N GPUs.

The sweep is config/sweeps/paper.yaml's method on K400's zero-shot test list (ViFi-CLIP's
`k400_splits_val.txt`, 19,877 videos, 400 classes):

- frames: decode every video once (32 frames, short side 256, JPEG shards) with the decode
  pool on the CPU;
- video embeddings with each of the 4 backbones, from the same frames shards;
- captions of every video by a 7B video LLM (Qwen2.5-VL-7B), batched;
- descriptors of the 400 classes by a 7B LLM (Qwen2.5-7B-Instruct), one request per class;
- text embeddings of the class texts and the captions with each backbone.

Rates default to the reference figures measured on an H100 with 16 cores and full-size
models at random init (../shared/ENVIRONMENT.md, and the issue's table); `--rates FILE`
takes those benchmarks/gpu_suite.sh measured (its rates.json), and flags override single
ones. The model, and every assumption in it:

- Decoding: the pool's videos/s was measured at 8 frames per clip. Sampling more frames of a
  10 s clip decodes about the same stretch of the stream (the sampled frames span it), and
  only the JPEG encoding grows with the frame count: 5 % of a decode worker's time at 8
  frames (profile in benchmarks/RESULTS.md), so 15 % more time per video at 32.
- Each GPU comes with 16 CPU cores, as the reference machine had, so N GPUs decode N times
  as fast; frames jobs are per shard (16 shards), and a GPU job of a shard starts once that
  shard's frames exist. The GPU stages take their JPEGs on the GPU (zsar.models.device_frames) and
  leave the CPU to the decode pool, so decoding overlaps the GPU work; only the first
  shard's decoding is paid before any GPU job can start.
- Video embedding: frames / the encoder's frames/s. SigLIP and ViFi-CLIP ViT-B/16 take
  ViT-B/16's rate (same width, depth and tokens per frame). The reference rates are the
  encoder alone; the suite's are the embedding stage's (nvJPEG decode included).
- Captioning: videos / captions/s at the batched rate. The reference (and the suite) give
  the captioner 8 frames (about 1,200 prefill tokens on the reference): set `max_frames: 8`
  on the captioner, else it sees all 32 frames and its prefill is 4 times longer (not
  modelled).
- Descriptors: 400 requests, batched like the captions. A request's cost grows with the
  tokens it generates: captions generate 64, a descriptor answer at most 384
  (paper.yaml), so a batch of descriptors costs 384 / 64 batches of captions. This treats
  the caption's prefill as generation time, so it overestimates.
- Text: (classes x texts per class + one caption per video) per backbone / texts/s.
- GPU jobs (16 shards x (4 backbones + the captioner), one descriptors job, text jobs) are
  spread over the N GPUs: the GPU part takes its total over N, but no less than its longest
  job.

The last lines are machine-readable, one per GPU count (--gpus 1,2,4):

    sweep_minutes=M gpus=N dominant=STAGE
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

# The paper's four backbones (config/sweeps/paper.yaml) -> the architecture whose encode
# rate they run at.
PAPER_BACKBONES = (
    ("openai-vit-b-16", "ViT-B-16"),
    ("laion-vit-l-14", "ViT-L-14"),
    ("siglip-vit-b-16", "ViT-B-16"),
    ("vificlip-vit-b-16-k400", "ViT-B-16"),
)


@dataclass(frozen=True)
class Rates:
    """Stage rates on one GPU with 16 cores (defaults: the H100 reference)."""

    decode_videos_per_s: float = 106.6  # decode pool, 16 processes
    decode_frames: int = 8  # frames per clip the decode rate was measured at
    jpeg_share: float = 0.05  # share of a decode worker's time spent JPEG-encoding, then
    encode_frames_per_s: Mapping[str, float] = field(
        default_factory=lambda: {"ViT-B-16": 10_400.0, "ViT-L-14": 2_500.0}
    )
    caption_per_s: float = 10.8  # 7B decoder, batch 64, ~1,200 prefill + 64 new tokens
    caption_batch: int = 64
    caption_new_tokens: int = 64
    text_per_s: float = 31_000.0  # B models' text towers


@dataclass(frozen=True)
class Sweep:
    """What the sweep computes (defaults: paper.yaml on K400's zero-shot test list)."""

    videos: int = 19_877
    frames: int = 32
    classes: int = 400
    texts_per_class: int = 15  # the name, up to 10 attributes and 3 descriptions, a hierarchy
    descriptor_new_tokens: int = 384
    shards: int = 16
    backbones: Sequence[tuple[str, str]] = PAPER_BACKBONES


@dataclass(frozen=True)
class Estimate:
    stage_seconds: dict[str, float]  # device- or CPU-seconds of each stage, on one GPU
    decode_wall: float  # the frames stage's wall time on N GPUs' cores
    gpu_wall: float  # the GPU stages' wall time on N GPUs
    total: float  # with decoding overlapping the GPU work
    serial: float  # decoding first, then the GPU work: an upper bound
    dominant: str


def decode_rate(rates: Rates, frames: int) -> float:
    """Videos/s of the decode pool at `frames` frames per clip (only JPEG work grows)."""
    extra = rates.jpeg_share * (frames / rates.decode_frames - 1)
    return rates.decode_videos_per_s / (1 + extra)


def stage_seconds(rates: Rates, sweep: Sweep) -> dict[str, float]:
    """Seconds of each stage on one GPU (decode: on its 16 cores), keyed by stage name."""
    missing = sorted({arch for _, arch in sweep.backbones} - set(rates.encode_frames_per_s))
    if missing:
        raise ValueError(f"no encode rate for {missing}; give --encode ARCH=FRAMES_PER_S")
    seconds = {"frames (CPU decode)": sweep.videos / decode_rate(rates, sweep.frames)}
    for name, arch in sweep.backbones:
        seconds[f"embed {name}"] = sweep.videos * sweep.frames / rates.encode_frames_per_s[arch]
    seconds["captions"] = sweep.videos / rates.caption_per_s
    caption_batch_s = rates.caption_batch / rates.caption_per_s
    batches = math.ceil(sweep.classes / rates.caption_batch)
    token_ratio = sweep.descriptor_new_tokens / rates.caption_new_tokens
    seconds["descriptors"] = batches * caption_batch_s * token_ratio
    texts = sweep.classes * sweep.texts_per_class + sweep.videos
    seconds["text embeddings"] = len(sweep.backbones) * texts / rates.text_per_s
    return seconds


def estimate(rates: Rates, sweep: Sweep, gpus: int) -> Estimate:
    if gpus < 1:
        raise ValueError("gpus must be at least 1")
    seconds = stage_seconds(rates, sweep)
    decode = seconds["frames (CPU decode)"]
    gpu_stages = {k: v for k, v in seconds.items() if k != "frames (CPU decode)"}
    sharded = [v for k, v in gpu_stages.items() if k.startswith("embed ") or k == "captions"]
    longest_job = max(seconds["descriptors"], max(sharded) / sweep.shards)
    gpu_wall = max(sum(gpu_stages.values()) / gpus, longest_job)
    # Frames jobs are per shard; each GPU's cores take ceil(shards / gpus) of them.
    first_shard = decode / sweep.shards
    decode_wall = first_shard * math.ceil(sweep.shards / gpus)
    total = first_shard + max(decode_wall - first_shard, gpu_wall)
    # The stage the sweep waits on most: decoding if it outlasts the GPU work, else the GPU
    # stage with the most device time (all backbones' embeddings count as one stage).
    grouped = {
        "embeddings": sum(v for k, v in gpu_stages.items() if k.startswith("embed ")),
        **{k: v for k, v in gpu_stages.items() if not k.startswith("embed ")},
    }
    dominant = "frames" if decode_wall > gpu_wall else max(grouped, key=grouped.get)
    return Estimate(seconds, decode_wall, gpu_wall, total, decode_wall + gpu_wall, dominant)


# ---------------------------------------------------------------- the command line


def rates_from_file(path: Path, base: Rates) -> Rates:
    """Rates measured by gpu_suite.sh (its rates.json); absent keys keep `base`'s."""
    data = json.loads(path.read_text())
    fields = {k: v for k, v in data.items() if k in Rates.__dataclass_fields__}
    if "encode_frames_per_s" in fields:
        measured = fields["encode_frames_per_s"]
        fields["encode_frames_per_s"] = {**base.encode_frames_per_s, **measured}
    return replace(base, **fields)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpus", default="1", help="GPU count(s), comma-separated")
    parser.add_argument("--rates", type=Path, help="rates.json written by gpu_suite.sh")
    parser.add_argument("--videos", type=int, default=Sweep.videos)
    parser.add_argument("--frames", type=int, default=Sweep.frames)
    parser.add_argument("--classes", type=int, default=Sweep.classes)
    parser.add_argument("--descriptor-new-tokens", type=int, default=Sweep.descriptor_new_tokens)
    parser.add_argument("--decode-per-s", type=float, help="decode pool videos/s (16 cores)")
    parser.add_argument("--caption-per-s", type=float, help="captions/s at the batched rate")
    parser.add_argument("--text-per-s", type=float, help="text embeddings/s")
    parser.add_argument(
        "--encode", action="append", default=[], metavar="ARCH=FPS", help="frames/s of an arch"
    )
    return parser.parse_args(argv)


def rates_from_args(args: argparse.Namespace) -> Rates:
    rates = rates_from_file(args.rates, Rates()) if args.rates else Rates()
    flags = {
        "decode_videos_per_s": args.decode_per_s,
        "caption_per_s": args.caption_per_s,
        "text_per_s": args.text_per_s,
    }
    rates = replace(rates, **{k: v for k, v in flags.items() if v is not None})
    if args.encode:
        pairs = dict(item.split("=", 1) for item in args.encode)
        encode = {**rates.encode_frames_per_s, **{k: float(v) for k, v in pairs.items()}}
        rates = replace(rates, encode_frames_per_s=encode)
    return rates


def stage_table(rates: Rates, sweep: Sweep) -> str:
    """The inputs and each stage's minutes on one GPU (and its 16 cores), as Markdown."""
    seconds = stage_seconds(rates, sweep)
    gpu_total = sum(v for k, v in seconds.items() if k != "frames (CPU decode)")
    encode = ", ".join(f"{a} {r:g} frames/s" for a, r in sorted(rates.encode_frames_per_s.items()))
    lines = [
        f"K400 sweep: {sweep.videos} videos x {sweep.frames} frames, {len(sweep.backbones)} "
        f"backbones, captions, descriptors for {sweep.classes} classes",
        f"rates: decode {rates.decode_videos_per_s:g} videos/s at {rates.decode_frames} frames "
        f"({decode_rate(rates, sweep.frames):.1f} at {sweep.frames}); encode {encode}; captions "
        f"{rates.caption_per_s:g}/s at batch {rates.caption_batch}; text {rates.text_per_s:g}/s",
        "",
        "| stage | minutes on 1 GPU | share of GPU time |",
        "|---|---:|---:|",
    ]
    for stage, value in seconds.items():
        share = "(CPU)" if stage.startswith("frames") else f"{100 * value / gpu_total:.1f} %"
        lines.append(f"| {stage} | {value / 60:.1f} | {share} |")
    return "\n".join(lines)


def wall_line(est: Estimate, gpus: int) -> str:
    return (
        f"{gpus} GPU(s): frames stage {est.decode_wall / 60:.1f} min on their cores, GPU "
        f"stages {est.gpu_wall / 60:.1f} min; total {est.total / 60:.1f} min with decoding "
        f"overlapping the GPU work (no overlap: {est.serial / 60:.1f} min); dominant stage: "
        f"{est.dominant}"
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    rates = rates_from_args(args)
    sweep = Sweep(
        videos=args.videos,
        frames=args.frames,
        classes=args.classes,
        descriptor_new_tokens=args.descriptor_new_tokens,
    )
    counts = [int(g) for g in args.gpus.split(",")]
    estimates = [(gpus, estimate(rates, sweep, gpus)) for gpus in counts]
    print(stage_table(rates, sweep) + "\n")
    print("\n".join(wall_line(est, gpus) for gpus, est in estimates) + "\n", flush=True)
    for gpus, est in estimates:
        print(f"sweep_minutes={est.total / 60:.1f} gpus={gpus} dominant={est.dominant}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
