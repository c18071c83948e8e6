"""How much memory a chunk takes, how much there is, and what running out of it looks like.

The chunk ladder (:mod:`taylorlens.engine.chunking`) keeps every chunk within a memory budget, and the passes
(:mod:`taylorlens.engine.passes`) retry a chunk that runs out of memory with half as many points. This module
holds the pieces both use:

* :func:`is_out_of_memory`: ``torch.OutOfMemoryError`` (CUDA), a ``RuntimeError`` saying "out of memory"
  or the CPU allocator's "can't allocate memory", and Python's ``MemoryError``.
* :func:`chunk_bytes`: the bytes one chunk takes, measured while it runs. On CUDA, the rise of
  ``torch.cuda.max_memory_allocated`` over what was allocated before (exact). On a CPU, where the allocator
  keeps no statistics, the bytes of the tensors autograd saves for the backward pass (counted with
  ``torch.autograd.graph.saved_tensors_hooks``, each storage once, the model's parameters and buffers left
  out: they do not grow with the chunk) plus the points and their gradients, times
  :data:`BACKWARD_OVERHEAD` for the gradients of the activations that live during the backward pass.
  Forward-only and second-order passes on a CPU are not measured (their chunks are bounded by the bytes of
  their points and by the retry).
* :func:`budget_bytes`: :data:`MEMORY_SHARE` of the memory available on the device when a ladder starts
  (CPU: ``MemAvailable`` of ``/proc/meminfo`` and the cgroup's limit; CUDA: free device memory plus what
  torch's cache holds unused), or :data:`MEMORY_BUDGET` when set.
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import torch
from torch import Tensor

T = TypeVar("T")

#: A fixed budget in bytes for one chunk (None: MEMORY_SHARE of the memory available when measuring).
MEMORY_BUDGET: int | None = None
#: Share of the available memory one chunk may take.
MEMORY_SHARE = 0.5
#: Peak bytes of a forward+backward chunk on a CPU per byte of saved tensors, points and their gradients.
#: Measured on the ResNet-18 benchmark model at 224x224 (peak RSS rise / counted bytes: 1.3-1.5 for chunks
#: of 2-16 points); rounded up.
BACKWARD_OVERHEAD = 1.6

_OUT_OF_MEMORY = ("out of memory", "can't allocate memory", "not enough memory")


class BatchSizeWarning(UserWarning):
    """A chunk of points (the user's ``batch_size``, or a measured size) ran out of memory and was retried
    with half as many points."""


def warn_batch_size(message: str) -> None:
    """Emit a :class:`BatchSizeWarning` pointing at the first caller outside taylorlens."""
    level, frame = 1, inspect.currentframe()
    while frame is not None and frame.f_globals.get("__name__", "").startswith("taylorlens"):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, BatchSizeWarning, stacklevel=level)


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` says the device ran out of memory (CUDA, the CPU allocator or Python)."""
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(error, RuntimeError) and any(text in str(error).lower() for text in _OUT_OF_MEMORY)


def attempt(run: Callable[..., T], *args: object) -> tuple[T | None, BaseException | None]:
    """``(run(*args), None)``, or ``(None, error)`` when it runs out of memory (other errors propagate).

    The error comes back without its traceback, so the frames of the failed attempt (and the tensors they
    hold) are freed before a retry; cached device memory is released too.
    """
    try:
        return run(*args), None
    except Exception as error:  # noqa: BLE001 - filtered right below
        if not is_out_of_memory(error):
            raise
        failed = error.with_traceback(None)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return None, failed


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA), so a clock or a memory reading covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def budget_bytes(device: torch.device) -> int:
    """Bytes one chunk may take on ``device``: :data:`MEMORY_BUDGET`, or a share of what is available."""
    if MEMORY_BUDGET is not None:
        return int(MEMORY_BUDGET)
    return int(MEMORY_SHARE * available_bytes(device))


def available_bytes(device: torch.device) -> int:
    """Memory the process can still take on ``device``, in bytes."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    limits = [_meminfo_available(), _cgroup_available()]
    known = [limit for limit in limits if limit is not None]
    return min(known) if known else 2**62


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_available() -> int | None:
    root = Path("/sys/fs/cgroup")
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int((root / "memory.current").read_text())
    except (OSError, ValueError):
        return None


class ChunkBytes:
    """The bytes of one measured chunk (``value``; None where the pass is not measured)."""

    value: int | None = None


@contextmanager
def chunk_bytes(model: object, example: Tensor, kind: str, points: int) -> Iterator[ChunkBytes]:
    """``with chunk_bytes(model, example, kind, points) as used: run the chunk``; then ``used.value``.

    ``points`` is the number of points the chunk evaluates (references included), shaped like ``example``.
    """
    used = ChunkBytes()
    device = example.device
    if device.type == "cuda":
        synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        yield used
        synchronize(device)
        used.value = torch.cuda.max_memory_allocated(device) - before
        return
    if not kind.startswith("gradient"):
        yield used
        return
    fixed = _storages(model)
    seen: set[int] = set()
    saved = [0]

    def pack(tensor: Tensor) -> Tensor:
        try:
            storage = tensor.untyped_storage()
        except (RuntimeError, NotImplementedError):  # tensors without one storage (sparse, nested, subclasses)
            saved[0] += tensor.numel() * tensor.element_size()
            return tensor
        pointer = storage.data_ptr()
        if pointer and pointer not in fixed and pointer not in seen:
            seen.add(pointer)
            saved[0] += storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        yield used
    points_and_grads = 2 * points * example.numel() * example.element_size()
    used.value = int(BACKWARD_OVERHEAD * (saved[0] + points_and_grads))


def _storages(model: object) -> set[int]:
    """Data pointers of the model's parameters and buffers (saved by layers, but not grown by a chunk)."""
    if not isinstance(model, torch.nn.Module):
        return set()
    tensors = [*model.parameters(), *model.buffers()]
    return {tensor.untyped_storage().data_ptr() for tensor in tensors}
