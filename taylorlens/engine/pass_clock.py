"""What model passes cost: wall time inside them, and how many points went through the model.

The clock accumulates the seconds spent evaluating chunks, so a benchmark can report how much of its time is
model work. A :func:`tally` block also counts the points (model evaluations) by pass kind and by the user's
sample they belong to; ``taylorlens.attribute(..., return_info=True)`` reports them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import torch
from torch import Tensor

T = TypeVar("T")


@dataclass
class Tally:
    """Points evaluated inside one :func:`tally` block.

    ``points`` counts by pass kind ("forward", "gradient", "hvp"); ``measuring_points`` are the copies of a
    first point run while measuring a chunk size (:mod:`taylorlens.engine.chunking`), not needed by the
    result; ``model_calls`` is the number of chunks (one model call each, references included); ``rows``
    holds, per counted chunk, the user's sample of every point (see :meth:`per_sample`).
    """

    points: dict[str, int] = field(default_factory=dict)
    measuring_points: int = 0
    model_calls: int = 0
    seconds: float = 0.0
    rows: list[Tensor] = field(default_factory=list)

    def per_sample(self, batch: int) -> Tensor:
        """Points per user sample ``(batch,)`` (measuring excluded)."""
        if not self.rows:
            return torch.zeros(batch, dtype=torch.long)
        return torch.bincount(torch.cat(self.rows), minlength=batch)[:batch]


class PassClock:
    """Accumulates the seconds spent evaluating chunks (forward and backward passes) and feeds open tallies."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.tallies: list[Tally] = []
        self.measuring_depth = 0
        self.held: list[tuple[str, Tensor]] | None = None

    def timed(self, evaluate: Callable[..., T], *args: object, device: torch.device | None = None) -> T:
        """``evaluate(*args)``, its seconds added to the clock; on a CUDA ``device`` the queued work is
        waited for before and after, so the seconds are those of the pass and not of the launch."""
        cuda = device is not None and device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        try:
            return evaluate(*args)
        finally:
            if cuda:
                torch.cuda.synchronize(device)
            elapsed = time.perf_counter() - start
            self.seconds += elapsed
            for open_tally in self.tallies:
                open_tally.seconds += elapsed

    def count(self, kind: str, rows: Tensor) -> None:
        """``rows.numel()`` points of pass ``kind`` ("forward", "gradient...", "hvp"), of the user's ``rows``."""
        if not self.tallies:
            return
        if self.measuring_depth:
            self.count_measuring(rows.numel())
            return
        if self.held is not None:
            self.held.append((kind, rows))
            return
        kind = "gradient" if kind.startswith("gradient") else kind
        cpu_rows = rows.detach().reshape(-1).cpu()
        for open_tally in self.tallies:
            open_tally.points[kind] = open_tally.points.get(kind, 0) + cpu_rows.numel()
            open_tally.model_calls += 1
        # Per-sample counts belong to the innermost block: an outer one may number its samples differently.
        self.tallies[-1].rows.append(cpu_rows)

    def count_measuring(self, size: int) -> None:
        for open_tally in self.tallies:
            open_tally.measuring_points += size
            open_tally.model_calls += 1

    @contextmanager
    def holding(self) -> Iterator[list[tuple[str, Tensor]]]:
        """Inside the block, points counted are held in the yielded list instead: :meth:`count` them after it
        if the work they belong to is kept (a chunk that ran out of memory is evaluated again)."""
        outer, self.held = self.held, []
        try:
            yield self.held
        finally:
            self.held = outer

    @contextmanager
    def measuring(self) -> Iterator[None]:
        """Inside the block, points counted (a chunk's references, :mod:`~taylorlens.engine.passes`) are
        measuring points."""
        self.measuring_depth += 1
        try:
            yield
        finally:
            self.measuring_depth -= 1


CLOCK = PassClock()


@contextmanager
def pass_seconds() -> Iterator[Callable[[], float]]:
    """``with pass_seconds() as elapsed: ...; elapsed()`` gives the pass time inside the block."""
    start = CLOCK.seconds
    yield lambda: CLOCK.seconds - start


@contextmanager
def tally() -> Iterator[Tally]:
    """``with tally() as spent: ...``: the points evaluated inside the block (blocks may nest)."""
    spent = Tally()
    CLOCK.tallies.append(spent)
    try:
        yield spent
    finally:
        CLOCK.tallies.remove(spent)
