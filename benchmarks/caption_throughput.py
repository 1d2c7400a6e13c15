"""Caption throughput: one video at a time versus batched greedy generation, same model.

Runs the stage's own code path (zsar.models.captioners.TransformersCaptioner: JPEG decode,
processor, chat template, left-padded batched `generate`, decode) on a random-init Qwen2.5-VL:

- on the CPU (default), a small config, so that it finishes in a minute or two;
- with `--device cuda`, a 7B-shaped config (Qwen2.5-VL-7B's dimensions, bf16, random init:
  the same arithmetic as the real checkpoint, without downloading it).

Every request generates exactly --max-new-tokens tokens (EOS is suppressed until then), so
the two modes do the same work. --batch takes one size or several (16,64); the model is
built once and each size prints one machine-readable line, the largest last:

    batched_vs_single=R captions_per_s=B single_per_s=A batch=K prefill_tokens=P new_tokens=T

R = B / A: captions/s at batch K over captions/s one video at a time.

Usage:
    python benchmarks/caption_throughput.py                        # CPU, small config
    python benchmarks/caption_throughput.py --device cuda --batch 16,64
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# Model shapes: "small" for the CPU, "7b" for a GPU (Qwen2.5-VL-7B-Instruct's config.json).
SHAPES = {
    "small": {
        "text_config": {"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4,
                        "num_attention_heads": 4, "num_key_value_heads": 2},
        "vision_config": {"depth": 2, "hidden_size": 64, "intermediate_size": 128,
                          "num_heads": 2, "window_size": 112},
        "max_pixels": 112 * 112,
    },
    "7b": {
        "text_config": {"hidden_size": 3584, "intermediate_size": 18944,
                        "num_hidden_layers": 28, "num_attention_heads": 28,
                        "num_key_value_heads": 4, "vocab_size": 152064,
                        "max_position_embeddings": 32768},
        "vision_config": {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420,
                          "num_heads": 16, "window_size": 112,
                          "fullatt_block_indexes": [7, 15, 23, 31]},
        # Frames of 256x340 (the frames stage's short side) stay at native resolution.
        "max_pixels": 28 * 28 * 1280,
    },
}


def synthetic_videos(count: int, frames: int, height: int, width: int, seed: int = 0):
    """Videos as the frames stage stores them: lists of JPEG bytes (smooth random images)."""
    import numpy as np
    from PIL import Image

    from zsar.models.caption_inputs import VideoFrames

    rng = np.random.default_rng(seed)
    videos = []
    for v in range(count):
        jpegs = []
        for _ in range(frames):
            small = rng.integers(0, 255, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
            image = Image.fromarray(small).resize((width, height), Image.BILINEAR)
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=90)
            jpegs.append(buffer.getvalue())
        videos.append(VideoFrames(f"video_{v:05d}", jpegs))
    return videos


def build_captioner(args):
    import torch

    from zsar.models.caption_inputs import PromptSet
    from zsar.models.captioners import TransformersCaptioner
    from zsar.models.tiny import make_tiny_vlm

    shape = SHAPES[args.shape]
    spec = {"arch": "qwen2_5_vl", "seed": 0, **shape}
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    started = time.perf_counter()
    processor, model = make_tiny_vlm(spec, device=args.device, dtype=dtype)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    print(f"model built on {args.device} in {time.perf_counter() - started:.1f} s", flush=True)
    # Same work per request in both modes: no early EOS.
    model.generation_config.min_new_tokens = args.max_new_tokens
    prompts = PromptSet(
        version="bench",
        prompt="These frames are sampled in order from one video. In one or two sentences, "
        "describe who does what, with which objects, and where.",
    )

    def captioner(batch_size: int):
        return TransformersCaptioner(processor, model, prompts, max_new_tokens=args.max_new_tokens,
                                     batch_size=batch_size, visual_input=args.visual_input)

    params = sum(p.numel() for p in model.parameters())
    return captioner, processor, params


def videos_per_second(captioner, videos, device: str) -> float:
    import torch

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    sync()
    start = time.perf_counter()
    outcomes = captioner.caption(videos)
    sync()
    elapsed = time.perf_counter() - start
    failed = [e for _, e in outcomes if e is not None]
    if failed:
        raise RuntimeError(f"{len(failed)} videos failed, e.g. {failed[0]}")
    return len(videos) / elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--shape", choices=sorted(SHAPES), default=None,
                        help="model shape (default: small on cpu, 7b on cuda)")
    parser.add_argument(
        "--batch", default=None, help="batch size(s), comma-separated (default: 8 cpu, 64 cuda)"
    )
    parser.add_argument("--single-videos", type=int, default=None,
                        help="videos captioned one at a time (default: 8 cpu, 8 cuda)")
    parser.add_argument("--batched-videos", type=int, default=None,
                        help="videos captioned at each batch size (default: 2 batches)")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=340)
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default: 32 cpu, 64 cuda")
    parser.add_argument("--visual-input", choices=["video", "images"], default="video",
                        help="frames as one video (default) or as one image per frame")
    args = parser.parse_args(argv)

    import torch

    from zsar.models.captioners import VISUAL_INPUTS
    from zsar.stages.frames import decode_jpegs

    gpu = args.device.startswith("cuda")
    args.shape = args.shape or ("7b" if gpu else "small")
    batches = sorted(int(b) for b in str(args.batch or (64 if gpu else 8)).split(","))
    if min(batches) < 2:
        parser.error("--batch sizes must be at least 2 (batch 1 is always measured)")
    args.single_videos = args.single_videos or 8
    batched_videos = {b: args.batched_videos or 2 * b for b in batches}
    args.max_new_tokens = args.max_new_tokens or (64 if gpu else 32)
    torch.manual_seed(0)

    captioner, processor, params = build_captioner(args)
    videos = synthetic_videos(max(args.single_videos, *batched_videos.values()), args.frames,
                              args.height, args.width)
    probe = captioner(1)
    frames = [decode_jpegs(videos[0].jpegs)]
    visual = {VISUAL_INPUTS[args.visual_input]: frames}
    prefill = len(processor(text=[probe._prompt_text(args.frames)], **visual)["input_ids"][0])
    device_name = torch.cuda.get_device_name() if gpu else f"cpu ({os.cpu_count()} cores)"
    print(f"device={device_name} shape={args.shape} params={params / 1e6:.1f}M "
          f"dtype={probe.generation_params['dtype']} prefill_tokens={prefill} "
          f"new_tokens={args.max_new_tokens} frames={args.frames}x{args.height}x{args.width} "
          f"visual_input={args.visual_input}", flush=True)

    videos_per_second(captioner(2), videos[:2], args.device)  # warm-up
    single = videos_per_second(captioner(1), videos[: args.single_videos], args.device)
    print(f"single: {single:.3f} videos/s over {args.single_videos} videos", flush=True)
    lines = []
    for batch in batches:
        count = batched_videos[batch]
        batched = videos_per_second(captioner(batch), videos[:count], args.device)
        print(f"batch {batch}: {batched:.3f} videos/s over {count} videos", flush=True)
        lines.append(f"batched_vs_single={batched / single:.2f} captions_per_s={batched:.3f} "
                     f"single_per_s={single:.3f} batch={batch} prefill_tokens={prefill} "
                     f"new_tokens={args.max_new_tokens}")
    sys.stdout.flush()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
