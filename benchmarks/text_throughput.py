"""Text embedding throughput: the class-text and caption embedding stages' rate, texts/s.

Runs the stages' own code path (zsar.stages.embed_text.embed_text_records: equal texts encoded once,
batches of 256, the backbone's tokenizer, L2-normalised float32 out) on distinct
descriptor-like sentences, with an open_clip model at random init (the arithmetic of the
pretrained weights without a download): by default ViT-B-16 on CUDA (fp16 weights) and the
demo's tiny CLIP on the CPU. CLIP pads every text to its context length, so the cost per
text does not depend on the wording. The last line is machine-readable:

    texts_per_s=R texts=N batch=B arch=A

Usage:
    python benchmarks/text_throughput.py                          # CPU, tiny CLIP
    python benchmarks/text_throughput.py --device cuda --arch ViT-B-16 --texts 16384
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))

SUBJECTS = ("a person", "two players", "a child", "a woman", "a man", "a group of people")
ACTIONS = ("swings a racket", "kneads dough", "climbs a rope", "dribbles a ball",
           "plays a guitar", "rides a horse", "lifts a barbell", "paints a wall")  # fmt: skip
PLACES = ("on a court", "in a kitchen", "in a gym", "on a street", "in a park", "on a stage")


def sentences(count: int) -> list[str]:
    """`count` distinct descriptor-like sentences, deterministic."""
    combos = itertools.cycle(itertools.product(SUBJECTS, ACTIONS, PLACES))
    return [f"{s} {a} {p}, take {i}" for i, (s, a, p) in zip(range(count), combos, strict=False)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--arch", default=None, help="default: ViT-B-16 on cuda, tiny on cpu")
    parser.add_argument("--texts", type=int, default=None, help="default: 16384 cuda, 512 cpu")
    parser.add_argument("--batch", type=int, default=256, help="the stages' batch size")
    args = parser.parse_args(argv)

    from embed_throughput import load_random_backbone

    from zsar.stages.embed_text import embed_text_records

    gpu = args.device.startswith("cuda")
    args.arch = args.arch or ("ViT-B-16" if gpu else "tiny")
    args.texts = args.texts or (16384 if gpu else 512)
    backbone = load_random_backbone(args.arch, args.device)
    records = [("caption", f"video_{i:06d}", text) for i, text in enumerate(sentences(args.texts))]
    embed_text_records(records[: args.batch], backbone, batch_size=args.batch)  # warm-up
    started = time.perf_counter()
    table = embed_text_records(records, backbone, batch_size=args.batch)
    seconds = time.perf_counter() - started
    if table.num_rows != args.texts:
        raise RuntimeError(f"embedded {table.num_rows} of {args.texts} texts")
    print(f"{args.texts} texts, {args.arch} (random init) on {args.device}: {seconds:.2f} s")
    print(f"texts_per_s={args.texts / seconds:.1f} texts={args.texts} batch={args.batch} "
          f"arch={args.arch}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
