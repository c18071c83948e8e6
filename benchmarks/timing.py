"""Timing helpers shared by the benchmarks (methods, metrics, Taylor): wall-clock medians and ideal pass costs.

The machines are small and shared (2 CPU cores, other jobs running), so every comparison here is made inside
one run: contenders are timed in interleaved rounds (:func:`time_interleaved`, the order alternating between
rounds so load drift hits all of them alike), and the "ideal" is measured in the same run by timing plain
model passes: :func:`best_pass_cost` finds the cheapest batch size, and :func:`plain_pass` at that size joins
every round as one more contender, so the ideal sees the same load as the code it judges. A benchmark then
reports ``median / (points x per-point cost of the plain pass)``.

Typical use::

    from benchmarks.timing import best_pass_cost, machine, markdown_table, plain_pass, time_interleaved

    cost = best_pass_cost(model, x, target, backward=True)            # PassCost: seconds per point, batch size
    probe = plain_pass(model, x, target, cost.batch_size)              # re-measures it in every round
    times = time_interleaved({"ours": run_ours, "captum": run_captum, "plain": probe}, repeats=5, budget=20.0)
    ratio = times["ours"].median / (points * times["plain"].median / cost.batch_size)
    print(markdown_table(["method", "ratio"], [["ig", f"{ratio:.2f}"]]))
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

#: How a call is timed: wall-clock seconds, or CPU seconds of this process. With one torch thread the CPU
#: time is the work done, and the load of other processes on a shared machine inflates it far less than the
#: wall-clock time (a process that gets a quarter of a core takes 4x longer, not 4x more CPU).
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of each timed call (warm-up excluded)."""

    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def best(self) -> float:
        return min(self.seconds)


@dataclass(frozen=True)
class PassCost:
    """Cheapest cost of one point through a plain pass, and the batch size where it was measured."""

    per_point: float
    batch_size: int
    backward: bool
    #: batch size -> median seconds per point, for every size measured.
    by_batch_size: dict[int, float] = field(default_factory=dict)

    def describe(self) -> str:
        kind = "forward+backward" if self.backward else "forward"
        return f"{kind}: {self.per_point * 1e3:.3f} ms/point (best at batch {self.batch_size})"


def time_call(
    fn: Callable[[], object],
    *,
    repeats: int = 5,
    budget: float | None = None,
    warmup: Callable[[], object] | None = None,
    clock: str = "wall",
) -> Timing:
    """Time ``fn()`` up to ``repeats`` times (at least once), stopping early once ``budget`` seconds are spent.

    ``warmup`` (default: ``fn`` itself) runs once untimed first; pass a cheaper call that exercises the same
    code paths (e.g. the same method on a slice of the batch) when one full call is expensive.
    """
    return time_interleaved({"fn": fn}, repeats=repeats, budget=budget, warmups={"fn": warmup}, clock=clock)["fn"]


def time_interleaved(
    fns: dict[str, Callable[[], object]],
    *,
    repeats: int = 5,
    budget: float | None = None,
    warmups: dict[str, Callable[[], object] | None] | None = None,
    clock: str = "wall",
) -> dict[str, Timing]:
    """Time several contenders in rounds: each round calls every ``fn`` once, the order reversed every round.

    Stops after ``repeats`` rounds, or earlier once ``budget`` seconds have been spent on timed rounds (at
    least one round always runs). ``warmups[name]`` (default: the contender itself; ``None`` in the dict
    also means itself) runs once, untimed, before the first round. ``clock`` is a key of :data:`CLOCKS`.
    """
    now = CLOCKS[clock]
    warmups = warmups or {}
    for name, fn in fns.items():
        (warmups.get(name) or fn)()
    seconds: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    spent = 0.0
    for round_index in range(max(1, repeats)):
        for name in names if round_index % 2 == 0 else reversed(names):
            start = now()
            fns[name]()
            elapsed = now() - start
            seconds[name].append(elapsed)
            spent += elapsed
        if budget is not None and spent >= budget:
            break
    return {name: Timing(tuple(values)) for name, values in seconds.items()}


def best_pass_cost(
    model: nn.Module,
    inputs: Tensor,
    target: Tensor | int | None = None,
    *,
    backward: bool = True,
    batch_sizes: Sequence[int] = (1, 8, 16, 32, 64, 128, 256, 512, 1024),
    repeats: int = 3,
    budget_per_size: float = 4.0,
    clock: str = "wall",
) -> PassCost:
    """Cheapest seconds per point of a :func:`plain_pass`: the minimum over ``batch_sizes`` of the median.

    Each size runs ``repeats`` times (after one warm-up) or until ``budget_per_size`` seconds are spent.
    """
    by_size = {}
    for size in batch_sizes:
        run = plain_pass(model, inputs, target, size, backward=backward)
        by_size[size] = time_call(run, repeats=repeats, budget=budget_per_size, clock=clock).median / size
    size = min(by_size, key=by_size.__getitem__)
    return PassCost(by_size[size], size, backward, by_size)


def plain_pass(
    model: nn.Module, inputs: Tensor, target: Tensor | int | None, size: int, *, backward: bool = True
) -> Callable[[], None]:
    """A call running one plain pass over ``size`` points (copies of ``inputs``, a batch, cycled).

    The pass is ``model(x).gather(1, target).sum().backward()`` with only the input requiring a gradient
    (parameters' ``requires_grad`` are switched off during the call and restored), or ``model(x)`` in
    inference mode (``backward=False``): the cheapest way to get input gradients or outputs, which the
    "ideal" time of a benchmark is made of. ``target=None`` explains a model with ``(B,)`` outputs.
    """
    index = torch.arange(size) % inputs.shape[0]
    batch = inputs[index].detach().clone()
    chosen = None if target is None else torch.as_tensor(target).expand(inputs.shape[0])[index][:, None]

    def explained(outputs: Tensor) -> Tensor:
        return (outputs if chosen is None else outputs.gather(1, chosen)).sum()

    def run() -> None:
        if not backward:
            with torch.inference_mode():
                explained(model(batch))
            return
        with parameters_frozen(model):
            point = batch.clone().requires_grad_(True)
            explained(model(point)).backward()

    return run


@contextmanager
def parameters_frozen(model: nn.Module) -> Iterator[None]:
    """Parameters do not require gradients inside the block; their flags are restored afterwards."""
    flags = [parameter.requires_grad for parameter in model.parameters()]
    try:
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        yield
    finally:
        for parameter, flag in zip(model.parameters(), flags, strict=True):
            parameter.requires_grad_(flag)


def machine() -> str:
    """Date, CPU cores, torch and Python versions: the line every benchmark table is stamped with."""
    return (
        f"{datetime.date.today().isoformat()}, {os.cpu_count()} CPU cores ({platform.machine()}, "
        f"{torch.get_num_threads()} torch threads), torch {torch.__version__}, Python {platform.python_version()}"
    )


def load_average() -> str:
    """The 1-minute load average (other jobs on the machine inflate every timing), or "n/a"."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "n/a"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table, columns padded so it also reads well in a terminal."""
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def seconds(value: float | None) -> str:
    """Seconds in a readable unit (ms below one second), or "-" for a missing value."""
    if value is None:
        return "-"
    return f"{value * 1e3:.1f} ms" if value < 1 else f"{value:.2f} s"
