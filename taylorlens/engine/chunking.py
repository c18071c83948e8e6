"""How many evaluation points go through the model in one pass.

On a CPU the cheapest chunk per point is not the largest one (for a 28x28 CNN the per-point cost is lowest
near 64 points and 30-70% higher at 1,024), so the size is chosen by measurement: the first time a model
meets a point shape, a few candidate sizes are timed on copies of one point and the fastest per point is
kept for that (model, shape, dtype, device, pass kind). Small jobs (few points of few bytes) skip the
measurement and go in one pass. Measuring is bounded by the job it serves (:data:`MEASURE_SHARE`), so a
large model tries few sizes.

The ladder also bounds memory (:mod:`taylorlens.engine.memory`): the first size it runs is measured (bytes
per point), and no size whose chunk would exceed the memory budget is tried or used. A size that runs out
of memory while measuring ends the ladder (the largest size that fitted is the limit), and a size that runs
out of memory during the job is halved by the passes and remembered (:func:`remember_fit`), so the next job
on that model starts below it.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable

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
MIN_MEASURE_SECONDS = 0.2
#: Sizes measured within this fraction of the cheapest count as equally cheap; the largest of them is used.
TOLERANCE = 0.1

_measured: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_measured_callables: dict[tuple, int] = {}


def chunk_size(
    model: Callable,
    example: Tensor,
    n_points: int,
    kind: str,
    run: Callable[[int], object],
    requested: int | None = None,
    copies: int = 1,
) -> int:
    """Points per pass for ``n_points`` points shaped like ``example`` (one point, no batch dimension).

    ``requested`` (the user's ``batch_size``) wins when given, unless a chunk of that size has run out of
    memory on this model before (then the size that fitted is used, with a :class:`BatchSizeWarning`); a
    measured size is evened out over the job. ``run(size)`` evaluates a chunk of ``size`` copies of the first
    point exactly the way the job will (``kind`` names the pass: "forward", "gradient", ...; ``copies``
    points per pair when references share the batch); it is used only for measuring.
    """
    key = _key(example, kind)
    store = _store_for(model)
    if requested is not None:
        size = min(check_positive_int("batch_size", requested), n_points)
        fits = store.get(("fits", *key))
        if fits is not None and size > fits:
            warn_batch_size(f"batch_size={requested} ran out of memory on this model before; using {fits} "
                            "points per pass")
            return fits
        return size
    point_bytes = max(1, example.numel() * example.element_size())
    cap = max(1, MAX_CHUNK_BYTES // point_bytes)
    fits = store.get(("fits", *key))
    if fits is not None:
        cap = min(cap, fits)
    if n_points <= min(SMALL_JOB, cap) and n_points * point_bytes <= SMALL_JOB_BYTES:
        return n_points
    if key not in store:
        ladder = (LARGE_POINT_CANDIDATES if point_bytes >= LARGE_POINT_BYTES else ()) + CANDIDATES
        store[key] = _measure(model, example, kind, run, [c for c in ladder if c <= cap] or [cap], n_points,
                              copies)
    chunks = -(-n_points // min(store[key], cap))
    return -(-n_points // chunks)  # equal chunks, no small remainder: 3,200 points at 256 -> 13 x 247


def remember_fit(model: Callable, example: Tensor, kind: str, size: int) -> None:
    """Record that chunks above ``size`` points ran out of memory for this (model, point shape, pass kind)."""
    store = _store_for(model)
    key = _key(example, kind)
    store[("fits", *key)] = min(size, store.get(("fits", *key), size))
    if key in store:
        store[key] = min(store[key], size)


def _key(example: Tensor, kind: str) -> tuple:
    return (tuple(example.shape), example.dtype, str(example.device), kind)


def _store_for(model: Callable) -> dict:
    try:
        return _measured.setdefault(model, {})
    except TypeError:  # not weak-referenceable: plain functions of builtins
        return _measured_callables.setdefault((id(model),), {})


def _measure(
    model: Callable, example: Tensor, kind: str, run: Callable[[int], object], candidates: list[int],
    n_points: int, copies: int = 1,
) -> int:
    """Time candidate sizes in increasing order and return the cheapest per point that fits in memory.

    Each size runs twice and keeps its faster run: the first run at a new size also pays one-off costs
    (allocation, kernel selection), and the faster of two drops most interruptions by other processes. The
    ladder stops after two sizes in a row that are not cheaper per point than the best so far, or once
    measuring has taken ``MEASURE_SHARE`` of the job's estimated time (``n_points`` at the best cost so far).
    The largest size within ``TOLERANCE`` of the cheapest is returned: on a loaded machine small chunks are
    hurt most (threads wait for each other in every operation), while a slightly larger one costs little.

    Memory: the first run of each size is measured (:func:`~taylorlens.engine.memory.chunk_bytes`); a size
    whose predicted bytes (the largest bytes per point seen so far) exceed the budget is not tried, and a
    size that runs out of memory ends the ladder. When even the first candidate runs out of memory, halves
    of it are tried down to one point (whose failure is raised: a single point does not fit).
    """
    costs: dict[int, float] = {}
    spent, worse_in_a_row, per_point = 0.0, 0, 0.0
    budget = budget_bytes(example.device)
    for size in candidates:
        if costs and size * per_point > budget:
            break
        timed, error = attempt(_timed_and_sized, model, example, kind, run, size, copies)
        if error is not None:
            if costs:
                break
            return _largest_fitting(model, example, kind, run, size, copies, error)
        (first, used), second = timed, _timed(example, run, size)
        if used is not None:
            per_point = max(per_point, used / size)
        spent += first + second
        costs[size] = min(first, second) / size
        best = min(costs, key=costs.__getitem__)
        worse_in_a_row = 0 if best == size else worse_in_a_row + 1
        if worse_in_a_row == 2 or spent > max(MIN_MEASURE_SECONDS, MEASURE_SHARE * n_points * costs[best]):
            break
    fitting = [size for size in costs if size * per_point <= budget] or [min(costs)]
    cheapest = min(costs[size] for size in fitting)
    return max(size for size in fitting if costs[size] <= (1 + TOLERANCE) * cheapest)


def _largest_fitting(
    model: Callable, example: Tensor, kind: str, run: Callable[[int], object], size: int, copies: int,
    error: BaseException,
) -> int:
    """The first half of ``size`` (halving down to 1) that runs without running out of memory."""
    while size > 1:
        size //= 2
        _, error = attempt(_timed_and_sized, model, example, kind, run, size, copies)
        if error is None:
            return size
    raise error


def _timed_and_sized(
    model: Callable, example: Tensor, kind: str, run: Callable[[int], object], size: int, copies: int
) -> tuple[float, int | None]:
    """Seconds and bytes of one chunk of ``size`` points (bytes None where the pass is not measured)."""
    with chunk_bytes(model, example, kind, size * copies) as used:
        seconds = _timed(example, run, size)
    return seconds, used.value


def _timed(example: Tensor, run: Callable[[int], object], size: int) -> float:
    synchronize(example.device)
    start = time.perf_counter()
    run(size)
    synchronize(example.device)
    return time.perf_counter() - start
