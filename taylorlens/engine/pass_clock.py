"""Wall time spent inside model passes, so a benchmark can report how much of its time is model work."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


class PassClock:
    """Accumulates the seconds spent evaluating chunks (forward and backward passes)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def timed(self, evaluate: Callable[..., T], *args: object) -> T:
        start = time.perf_counter()
        try:
            return evaluate(*args)
        finally:
            self.seconds += time.perf_counter() - start


CLOCK = PassClock()


@contextmanager
def pass_seconds() -> Iterator[Callable[[], float]]:
    """``with pass_seconds() as elapsed: ...; elapsed()`` gives the pass time inside the block."""
    start = CLOCK.seconds
    yield lambda: CLOCK.seconds - start
