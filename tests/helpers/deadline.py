"""Run a call that might hang in a forked process, and fail fast when it runs too long.

A timer in the test's own process cannot stop a regular expression that backtracks (it holds
the interpreter until it returns) nor a walk that never ends, so the call runs in a child
that is killed at the deadline. What the call returns (or the error it raises) comes back
through a pipe, so it must be picklable.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Outcome:
    value: Any  # what the call returned, or None
    error: str | None  # "ErrorType: message" if it raised
    seconds: float


def within(seconds: float, call: Callable[..., Any], *args: Any) -> Outcome:
    """call(*args) in a child process; AssertionError if it has not ended after `seconds`."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)

    def child() -> None:
        try:
            sender.send((call(*args), None))
        except BaseException as err:  # noqa: BLE001 - everything goes back to the test
            sender.send((None, f"{type(err).__name__}: {err}"))

    start = time.monotonic()
    process = context.Process(target=child, daemon=True)
    process.start()
    ended = receiver.poll(seconds)
    elapsed = time.monotonic() - start
    if not ended:
        process.kill()
        process.join()
        raise AssertionError(f"{getattr(call, '__name__', call)} did not end within {seconds} s")
    value, error = receiver.recv()
    process.join()
    return Outcome(value, error, elapsed)
