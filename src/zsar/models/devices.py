"""Device choice: CUDA when present, the CPU otherwise. Nothing in zsar requires a GPU."""

from __future__ import annotations


def preferred_device() -> str:
    # lazy: torch loads only where a model runs
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
