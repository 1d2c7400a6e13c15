"""The summary of a benchmarks/gpu_suite.sh run: machine, figures against targets, sweep.

Reads OUT/lines.txt (the suite's machine-readable lines, `step=NAME key=value ...`),
writes OUT/rates.json (the measured rates, for benchmarks/sweep_estimate.py) and
OUT/summary.md. Exits non-zero if a line the suite needs is missing.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sweep_estimate  # noqa: E402 - this folder is not a package

# The targets: (step, key, at least, what).
TARGETS = (
    ("embed-vit-b-16", "embed_vs_decode_bound", 0.9, "≥ 0.9 × the decode-bound rate"),
    ("embed-vit-b-16", "videos_per_s", 95.0, "≥ 95 videos/s"),
    ("captions@64", "batched_vs_single", 40.0, "≥ 40 × one video at a time"),
)
SWEEP_TARGET_MIN = 45.0
PACKAGES = ("torch", "torchvision", "transformers", "open_clip_torch", "decord", "pillow",
            "pyarrow", "numpy")  # fmt: skip


def parse_lines(text: str) -> dict[str, dict[str, str]]:
    """`step=NAME k=v ...` lines -> {NAME: {k: v}}; caption lines are keyed NAME@BATCH."""
    steps: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        name = fields.pop("step", None)
        if name is None:
            continue
        if "batch" in fields and "batched_vs_single" in fields:
            name = f"{name}@{fields['batch']}"
        steps[name] = fields
    return steps


def _number(fields: dict[str, str], key: str) -> float | None:
    try:
        value = float(fields[key])
    except (KeyError, ValueError):
        return None
    return None if math.isnan(value) else value


def embed_rate(fields: dict[str, str]) -> float | None:
    """Frames/s of a backbone in the embedding stage: the encoder and, on the device path,
    the JPEG decode + resize on the same device, one after the other."""
    encode = _number(fields, "encode_frames_per_s")
    jpeg = _number(fields, "jpeg_frames_per_s")
    if encode is None:
        return None
    return encode if jpeg is None else 1 / (1 / encode + 1 / jpeg)


def measured_rates(steps: dict[str, dict[str, str]]) -> dict:
    """The sweep estimate's inputs the suite measured (absent ones keep the reference's)."""
    rates: dict = {}
    arches = {"embed-vit-b-16": "ViT-B-16", "embed-vit-l-14": "ViT-L-14",
              "embed-tiny-workers": "tiny", "embed-tiny-device": "tiny-device"}  # fmt: skip
    encode = {}
    for step, arch in arches.items():
        if step in steps and (rate := embed_rate(steps[step])) is not None:
            encode[arch] = rate
            decode = _number(steps[step], "decode_bound_per_s")
            if decode is not None:
                rates["decode_videos_per_s"] = max(decode, rates.get("decode_videos_per_s", 0))
                rates["decode_frames"] = int(steps[step].get("frames", 8))
    if encode:
        rates["encode_frames_per_s"] = encode
    captions = [s for s in steps if s.startswith("captions@")]
    if captions:
        largest = max(captions, key=lambda s: int(s.split("@")[1]))
        rates["caption_per_s"] = float(steps[largest]["captions_per_s"])
        rates["caption_batch"] = int(steps[largest]["batch"])
        rates["caption_new_tokens"] = int(steps[largest].get("new_tokens", 64))
    if "text" in steps and (text := _number(steps["text"], "texts_per_s")) is not None:
        rates["text_per_s"] = text
    return rates


# ---------------------------------------------------------------- the machine


def _run(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine(device: str) -> list[str]:
    lines = []
    if device == "cuda":
        query = "--query-gpu=name,driver_version,memory.total"
        smi = _run(["nvidia-smi", query, "--format=csv,noheader"])
        lines.append(f"- GPU (nvidia-smi): {smi or 'nvidia-smi not available'}")
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            lines.append(
                f"- GPU (torch): {props.name}, {props.total_memory / 2**30:.0f} GiB, "
                f"{props.multi_processor_count} SMs, compute capability "
                f"{props.major}.{props.minor}; CUDA {torch.version.cuda}, cuDNN "
                f"{torch.backends.cudnn.version()}"
            )
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in _run(["lscpu"]).splitlines()
            if line.startswith("Model name")
        ),
        platform.processor() or "?",
    )
    lines.append(f"- CPU: {cpu}, {os.cpu_count()} cores")
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    lines.append(f"- Python {platform.python_version()}; " + ", ".join(versions))
    return lines


# ---------------------------------------------------------------- the summary


def figures_table(steps: dict[str, dict[str, str]], judge: bool) -> list[str]:
    rows = ["| step | figures | target | met |", "|---|---|---|---|"]
    targets = {(step, key): (low, what) for step, key, low, what in TARGETS}
    for name, fields in sorted(steps.items()):
        shown = " ".join(f"{k}={v}" for k, v in fields.items())
        wanted = [(k, *targets[(name, k)]) for k in fields if (name, k) in targets]
        for key, low, what in wanted or [(None, None, "–")]:
            value = _number(fields, key) if key else None
            met = "–" if key is None or not judge else ("yes" if value and value >= low else "NO")
            rows.append(f"| {name} | `{shown}` | {f'{key} {what}' if key else what} | {met} |")
    return rows


def summary(out: Path, device: str, quick: bool) -> tuple[str, bool]:
    steps = parse_lines((out / "lines.txt").read_text())
    failed = sorted(name for name, fields in steps.items() if "failed" in fields)
    rates = measured_rates(steps)
    (out / "rates.json").write_text(json.dumps(rates, indent=2, sort_keys=True) + "\n")
    real = device == "cuda" and not quick
    title = "GPU suite" if real else f"GPU suite ({device}{', quick' if quick else ''})"
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# {title}: {date}", "", "## Machine", "", *machine(device), "", "## Figures", ""]
    lines += figures_table(steps, judge=real)
    if failed:
        lines += ["", f"Failed steps: {', '.join(failed)} (see logs/)."]
    lines += ["", "## K400 sweep estimate from these rates", ""]
    if not real:
        lines += [
            "Toy models on this device: the arithmetic runs, but the figures say nothing about"
            " a GPU. Rates the run did not measure keep the H100 reference values.",
            "",
        ]
    sweep_rates = sweep_estimate.rates_from_file(out / "rates.json", sweep_estimate.Rates())
    sweep = sweep_estimate.Sweep()
    est = sweep_estimate.estimate(sweep_rates, sweep, gpus=1)
    lines += [sweep_estimate.stage_table(sweep_rates, sweep), "", sweep_estimate.wall_line(est, 1)]
    meets = est.total / 60 < SWEEP_TARGET_MIN
    if real:
        lines.append(f"Target: < {SWEEP_TARGET_MIN:g} min on one GPU: {'yes' if meets else 'NO'}.")
    lines.append("")
    ok = not failed and bool(rates.get("caption_per_s")) and "text_per_s" in rates
    return "\n".join(lines), ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", type=int, default=0)
    args = parser.parse_args(argv)
    text, ok = summary(args.out, args.device, bool(args.quick))
    (args.out / "summary.md").write_text(text)
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
