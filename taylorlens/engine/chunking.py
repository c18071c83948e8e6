"""How many evaluation points go through the model in one pass.

On a CPU the cheapest chunk per point is not the largest one (for a 28x28 CNN the per-point cost is lowest
near 64 points and 30-70% higher at 1,024), so the size is chosen by measurement: the first time a model
meets a point shape, a few candidate sizes are timed on copies of one point and the fastest per point is
kept for that (model, shape, dtype, device, group, pass kind). Small jobs (few points of few bytes) skip the
measurement and go in one pass. Measuring is bounded by the job it serves (:data:`MEASURE_SHARE`), so a
large model tries few sizes. A job of several targets per input is measured in whole groups (an input with
all its targets: one forward pass, T backward passes), and a pass with several ways of computing the same
values (the T backward passes batched or looped) keeps the way that measures cheaper (:func:`plan`). On one
CPU thread the measurement is CPU time, which the load of other processes does not inflate.

The ladder also bounds memory (:mod:`taylorlens.engine.memory`): the first size it runs is measured (bytes
per point), and no size whose chunk would exceed the memory budget is tried or used. A size that runs out
of memory while measuring ends the ladder (the largest size that fitted is the limit), and a size that runs
out of memory during the job is halved by the passes and remembered (:func:`remember_fit`), so the next job
on that model starts below it.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

from taylorlens.engine.checks import check_positive_int
from taylorlens.engine.memory import attempt, budget_bytes, chunk_bytes, synchronize, warn_batch_size

#: Largest size of the points of one chunk, in bytes: keeps activations of big inputs within memory.
MAX_CHUNK_BYTES = 64 * 2**20
#: Jobs with at most this many points, and at most SMALL_JOB_BYTES of them, go in one pass without measuring.
SMALL_JOB = 64
#: 64 points of 3x224x224 (38 MB) are not a small job: a ResNet-18 forward costs 30% more per point at batch
#: 64 than at batch 4 on one CPU thread (activations fall out of cache), which made occlusion 1.4x its ideal.
SMALL_JOB_BYTES = 4 * 2**20
CANDIDATES = (8, 16, 32, 64, 128, 256, 512)
#: Points of at least this many bytes (a 3x224x224 image, a BERT sequence of 128 x 768) also try 2 and 4.
LARGE_POINT_BYTES = 256 * 2**10
LARGE_POINT_CANDIDATES = (2, 4)
#: Measuring stops once it has taken this share of the job's estimated time (or MIN_MEASURE_SECONDS if more).
MEASURE_SHARE = 0.25
MIN_MEASURE_SECONDS = 0.5
#: Sizes measured within this fraction of the cheapest count as equally cheap; the largest of them is used.
TOLERANCE = 0.1

_measured: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_measured_callables: dict[tuple, dict] = {}


def chunk_size(
    model: Callable,
    example: Tensor,
    n_points: int,
    kind: str,
    run: Callable[[int], object],
    requested: int | None = None,
    group: int = 1,
    copies: int = 1,
) -> int:
    """Points per pass for ``n_points`` points shaped like ``example`` (one point, no batch dimension).

    ``requested`` (the user's ``batch_size``) wins when given, unless a chunk of that size has run out of
    memory on this model before (then the size that fitted is used, with a :class:`BatchSizeWarning`); a
    measured size is evened out over the job. ``run(size)`` evaluates a chunk of ``size`` copies of the first
    point exactly the way the job will (``kind`` names the pass: "forward", "gradient", ...; ``copies``
    points per pair when references share the batch); it is used only for measuring. With ``group > 1`` the
    job is made of groups of ``group`` points (one input's targets) and every size is a multiple of it.
    """
    return plan(model, example, n_points, kind, {"": run}, requested, group, copies)[1]


def plan(
    model: Callable,
    example: Tensor,
    n_points: int,
    kind: str,
    ways: Mapping[str, Callable[[int], object]],
    requested: int | None = None,
    group: int = 1,
    copies: int = 1,
) -> tuple[str, int]:
    """The cheapest way of running a job and its points per pass: ``(name of the way, size)``.

    ``ways`` maps a name to ``run(size)``, one way of evaluating a chunk of ``size`` points (e.g. the T
    backward passes of several targets batched or looped); each is measured over the ladder of sizes and
    the cheapest (way, size) that fits the memory budget is kept per (model, shape, dtype, device, group,
    kind). Without measuring (a requested size, a small job) the first way is used.
    """
    names = list(ways)
    group = max(1, group)
    store = _store_for(model)
    fits = store.get(("fits", *_key(example, kind)))
    if requested is not None:
        size = min(check_positive_int("batch_size", requested), n_points)
        if fits is not None and size > fits:
            warn_batch_size(f"batch_size={requested} ran out of memory on this model before; using {fits} "
                            "points per pass")
            size = fits
        return names[0], whole_groups(size, group)
    point_bytes = max(1, example.numel() * example.element_size())
    cap = max(group, MAX_CHUNK_BYTES // point_bytes)
    if fits is not None:
        cap = min(cap, fits)
    small = n_points <= min(SMALL_JOB, cap) and n_points * point_bytes <= SMALL_JOB_BYTES
    if small or n_points <= group:
        return names[0], n_points
    key = (tuple(example.shape), example.dtype, str(example.device), group, kind)
    if key not in store:
        if group > 1:  # whole groups: 1, 2, 4, 8, ... inputs with all their targets
            ladder = tuple(group * c for c in (1, *LARGE_POINT_CANDIDATES, *CANDIDATES))
        else:
            ladder = (LARGE_POINT_CANDIDATES if point_bytes >= LARGE_POINT_BYTES else ()) + CANDIDATES
        store[key] = Ladder([c for c in ladder if c <= cap] or [whole_groups(cap, group)])
    if not store[key].finished:
        _measure(model, example, kind, ways, store[key], n_points, copies)
    way, measured = store[key].choice(budget_bytes(example.device))
    units, per_chunk = n_points // group, whole_groups(min(measured, cap), group) // group
    chunks = -(-units // per_chunk)
    return way, -(-units // chunks) * group  # equal chunks, no small remainder: 3,200 points at 256 -> 13 x 247


def remember_fit(model: Callable, example: Tensor, kind: str, size: int) -> None:
    """Record that chunks above ``size`` points ran out of memory for this (model, point shape, pass kind)."""
    store = _store_for(model)
    key = ("fits", *_key(example, kind))
    store[key] = min(size, store.get(key, size))


def whole_groups(size: int, group: int) -> int:
    """The largest multiple of ``group`` not above ``size``, at least one group."""
    return max(group, size - size % group)


def _key(example: Tensor, kind: str) -> tuple:
    return (tuple(example.shape), example.dtype, str(example.device), kind)


def _store_for(model: Callable) -> dict:
    try:
        return _measured.setdefault(model, {})
    except TypeError:  # not weak-referenceable: plain functions of builtins
        return _measured_callables.setdefault((id(model),), {})


@dataclass
class Ladder:
    """What has been measured for one (model, point shape, dtype, device, group, pass kind).

    ``costs`` maps (way, size) to seconds per point; ``measured`` sizes of ``sizes`` are done. A job whose
    measuring budget ran out leaves the ladder unfinished and the next job of the same kind resumes it, so
    short jobs (a small language model's few points) still reach their cheapest size over a few calls.
    ``bytes_per_point`` is the largest measured memory per point (0 where the pass is not measured);
    ``stopped`` ends the ladder early (the next size would not fit in memory).
    """

    sizes: list[int]
    costs: dict[tuple[str, int], float] = field(default_factory=dict)
    measured: int = 0
    worse_in_a_row: int = 0
    #: ways left out of larger sizes: beaten by another way at a size where they got dearer per point.
    dropped: set[str] = field(default_factory=set)
    bytes_per_point: float = 0.0
    stopped: bool = False

    @property
    def finished(self) -> bool:
        return self.stopped or self.worse_in_a_row == 2 or self.measured == len(self.sizes)

    def choice(self, budget: float = float("inf")) -> tuple[str, int]:
        """The largest size measured within ``TOLERANCE`` of the cheapest that fits ``budget`` bytes, with
        its cheapest way."""
        fitting = {c: cost for c, cost in self.costs.items() if c[1] * self.bytes_per_point <= budget}
        fitting = fitting or {min(self.costs, key=lambda c: c[1]): 0.0}
        cheapest = min(fitting.values())
        near = [choice for choice, cost in fitting.items() if cost <= (1 + TOLERANCE) * cheapest]
        return max(near, key=lambda choice: (choice[1], -fitting[choice]))


def _measure(
    model: Callable, example: Tensor, kind: str, ways: Mapping[str, Callable[[int], object]], ladder: Ladder,
    n_points: int, copies: int = 1,
) -> None:
    """Time every way at the ladder's next sizes, in increasing order, recording the costs per point.

    Each (way, size) runs twice and keeps its faster run (a way beaten at a size where it got dearer per point
    is not run at larger sizes): the first run at a new size also pays one-off
    costs (allocation, kernel selection), and the faster of two drops most interruptions by other processes.
    The ladder is finished after two sizes in a row that are not cheaper per point than the best so far (or
    at its end). A job measures the next size only if it is no larger than the job and its expected cost
    keeps this job's measuring within ``MEASURE_SHARE`` of the job's estimated time (``n_points`` at the best
    cost so far, at least ``MIN_MEASURE_SECONDS``); the next jobs resume where it stopped.
    The largest size within ``TOLERANCE`` of the cheapest is used (:meth:`Ladder.choice`): on a loaded
    machine small chunks are hurt most (threads wait for each other in every operation), while a slightly
    larger one costs little.

    Memory: the first run of each (way, size) is measured (:func:`~taylorlens.engine.memory.chunk_bytes`); a
    size whose predicted bytes (the largest bytes per point seen so far) exceed the budget is not tried, and
    a size that runs out of memory ends the ladder. When even the first size runs out of memory, halves of it
    are tried down to one group (whose failure is raised: a single group does not fit).
    """
    spent = 0.0
    budget = budget_bytes(example.device)
    while not ladder.finished:
        size = ladder.sizes[ladder.measured]
        running = {way: run for way, run in ways.items() if way not in ladder.dropped}
        if ladder.costs:  # a size is measured only if its expected cost fits this job's budget
            cheapest = min(ladder.costs.values())
            seconds_budget = max(MIN_MEASURE_SECONDS, MEASURE_SHARE * n_points * cheapest)
            if size > n_points or spent + 2 * len(running) * size * cheapest > seconds_budget:
                return
            if size * ladder.bytes_per_point > budget:
                ladder.stopped = True
                return
        for way, run in running.items():
            timed, error = attempt(_timed_and_sized, model, example, kind, run, size, copies)
            if error is not None:
                if ladder.costs:
                    ladder.stopped = True
                    return
                _start_below(model, example, kind, way, run, ladder, size, copies, error)
                return
            first, used = timed
            if used is not None:
                ladder.bytes_per_point = max(ladder.bytes_per_point, used / size)
            second = _timed(example, run, size)
            spent += first + second
            ladder.costs[way, size] = min(first, second) / size
        ladder.measured += 1
        best = min(ladder.costs, key=ladder.costs.__getitem__)
        ladder.worse_in_a_row = 0 if best[1] == size else ladder.worse_in_a_row + 1
        if ladder.measured > 1:
            previous = ladder.sizes[ladder.measured - 2]
            here = min(ladder.costs[way, size] for way in running)
            ladder.dropped |= {way for way in running if here < ladder.costs[way, size]
                               and ladder.costs.get((way, previous), float("inf")) < ladder.costs[way, size]}


def _start_below(
    model: Callable, example: Tensor, kind: str, way: str, run: Callable[[int], object], ladder: Ladder,
    size: int, copies: int, error: BaseException,
) -> None:
    """The first size ran out of memory: the first half of it (halving down to 1) that runs ends the ladder."""
    while size > 1:
        size //= 2
        timed, error = attempt(_timed_and_sized, model, example, kind, run, size, copies)
        if error is None:
            ladder.costs[way, size] = timed[0] / size
            ladder.sizes, ladder.measured, ladder.stopped = [size], 1, True
            return
    raise error


def _timed_and_sized(
    model: Callable, example: Tensor, kind: str, run: Callable[[int], object], size: int, copies: int
) -> tuple[float, int | None]:
    """Seconds and bytes of one chunk of ``size`` points (bytes None where the pass is not measured)."""
    with chunk_bytes(model, example, kind, size * copies) as used:
        seconds = _timed(example, run, size)
    return seconds, used.value


def _timed(example: Tensor, run: Callable[[int], object], size: int) -> float:
    """Seconds of ``run(size)``: CPU time of this process on one CPU thread, where other processes' load
    does not inflate it (wall-clock time did: under load small sizes looked dearer than they are), else
    wall-clock time."""
    clock = time.process_time if example.device.type == "cpu" and torch.get_num_threads() == 1 else time.perf_counter
    synchronize(example.device)
    start = clock()
    run(size)
    synchronize(example.device)
    return clock() - start
