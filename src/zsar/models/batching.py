"""Running a model over items in batches, with out-of-memory back-off: a CUDA out-of-memory
error halves the batch and retries, and any other error in a batch of several retries its
items one at a time, so one bad item fails alone."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

# A model's answer for one item (a captioner's for one video): text, or None and the reason
# it failed.
Outcome = tuple[str | None, str | None]


def is_out_of_memory(err: BaseException) -> bool:
    # lazy: torch loads only where a model runs
    import torch

    return isinstance(err, torch.OutOfMemoryError) or (
        isinstance(err, RuntimeError) and "out of memory" in str(err).lower()
    )


@dataclass
class AdaptiveBatch:
    """The batch size in force; it only ever shrinks, so one OOM is not paid for again."""

    size: int


def run_in_batches(
    items: Sequence[Any],
    run: Callable[[Sequence[Any]], list[Outcome]],
    batch: AdaptiveBatch,
    *,
    is_oom: Callable[[BaseException], bool] = is_out_of_memory,
    on_oom: Callable[[], None] = lambda: None,
    log: Callable[[str], None] = logger.warning,
) -> list[Outcome]:
    """`run` over `items` in chunks of `batch.size`, one outcome per item, in order.

    Out of memory: the batch size is halved (kept for later calls) and the chunk retried; at
    batch size 1 the video is recorded as failed. Any other error in a chunk of several is
    retried one video at a time, so one bad video fails alone.
    """
    outcomes: list[Outcome] = []
    start = 0
    while start < len(items):
        chunk = items[start : start + batch.size]
        try:
            outcomes.extend(run(chunk))
            start += len(chunk)
        except Exception as err:  # noqa: BLE001 - one bad batch must not stop the run
            if is_oom(err):
                on_oom()
                if len(chunk) == 1:
                    log("out of memory at batch size 1; recording the video as failed")
                    outcomes.append((None, "out of memory at batch size 1"))
                    start += 1
                else:
                    batch.size = max(1, len(chunk) // 2)
                    log(f"out of memory at batch size {len(chunk)}; retrying at {batch.size}")
            elif len(chunk) == 1:
                outcomes.append((None, f"{type(err).__name__}: {err}"[:300]))
                start += 1
            else:
                log(f"batch failed ({type(err).__name__}: {err}); retrying one video at a time")
                for item in chunk:
                    outcomes.extend(
                        run_in_batches([item], run, AdaptiveBatch(1), is_oom=is_oom,
                                       on_oom=on_oom, log=log)
                    )
                start += len(chunk)
    return outcomes


def free_cuda_memory() -> None:
    """What a CUDA out-of-memory error is answered with before the retry (`on_oom`)."""
    # lazy: torch loads only where a model runs
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()

