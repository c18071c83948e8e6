"""Occlusion (Zeiler & Fergus 2014; Ancona et al. 2018, Sec. 2 "Occlusion-1" and "Occlusion-patch").

Each window of the input is set to ``baseline`` and the drop in the explained output,
``f(x) - f(x with the window occluded)``, is given to the features inside it; a feature covered by several
windows gets the mean over them. ``window=1`` is Occlusion-1: ``R_i = f(x) - f(x with x_i = baseline)``.
All windows of all samples go through the model in batched forward passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from taylorlens.engine import Points, Request
from taylorlens.engine.checks import AttributionInputError
from taylorlens.methods.base import Method
from taylorlens.methods.registry import register


def window_shape(name: str, value: Any, sample_shape: tuple[int, ...], leading_default: int) -> tuple[int, ...]:
    """An int or a tuple of one sample's rank, each entry in [1, size] (used for ``window`` and ``stride``).

    An int ``k`` means ``k`` along every dimension, except the leading (channel) dimension of samples with
    three or more dimensions, which gets ``leading_default``.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        shape = (value,) * len(sample_shape)
        if len(sample_shape) >= 3:
            shape = (leading_default, *shape[1:])
    elif isinstance(value, tuple | list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        shape = tuple(value)
    else:
        raise AttributionInputError(f"{name} must be an int or a tuple of ints, got {value!r}")
    if len(shape) != len(sample_shape) or any(not 1 <= w <= n for w, n in zip(shape, sample_shape, strict=True)):
        raise AttributionInputError(
            f"{name} {shape} must have one entry per sample dimension {tuple(sample_shape)}, each between 1 and "
            "that dimension's size"
        )
    return shape


@dataclass(frozen=True)
class Windows:
    """The sliding windows of one sample's shape: per-dimension masks and how to spread per-window values.

    Along each dimension the windows start at 0, stride, ... until every position is covered
    (``ceil((size - window) / stride) + 1`` of them): when the stride does not divide ``size - window`` the
    last window sticks out and is cut at the border (as in Captum), so no feature is left without a window.
    Shared by :class:`Occlusion` and its Taylor reformulation (Deng et al. 2021, Theorems 2-3).
    """

    masks: tuple[Tensor, ...]

    @classmethod
    def of(cls, x: Tensor, window: Any, stride: Any) -> Windows:
        """The windows over the samples of ``x`` (B, ...) for the ``window`` and ``stride`` options."""
        shape = tuple(x.shape[1:])
        windows, strides = window_shape("window", window, shape, 1), window_shape("stride", stride, shape, 1)
        return cls(tuple(
            _dimension_masks(n, w, s, x.dtype, x.device) for n, w, s in zip(shape, windows, strides, strict=True)
        ))

    @property
    def count(self) -> int:
        """The number of windows (the product over dimensions)."""
        return math.prod(mask.shape[0] for mask in self.masks)

    def mask(self, index: Tensor) -> Tensor:
        """Masks ``(n, ...)`` of the windows whose flat index is ``index`` (outer product of per-dim masks)."""
        counts = [m.shape[0] for m in self.masks]
        rank = len(self.masks)
        result = None
        for dim, (mask, sub) in enumerate(zip(self.masks, torch.unravel_index(index, counts), strict=True)):
            part = mask[sub].view(index.shape[0], *(1,) * dim, mask.shape[1], *(1,) * (rank - dim - 1))
            result = part if result is None else result * part
        return result

    def inside(self, index: Tensor) -> Tensor:
        """Boolean masks ``(n, ...)`` of the windows ``index``: :meth:`mask` without its float products."""
        counts = [m.shape[0] for m in self.masks]
        rank = len(self.masks)
        result = None
        for dim, (mask, sub) in enumerate(zip(self.masks, torch.unravel_index(index, counts), strict=True)):
            part = mask[sub].bool().view(index.shape[0], *(1,) * dim, mask.shape[1], *(1,) * (rank - dim - 1))
            result = part if result is None else result & part
        return result

    def average(self, values: Tensor) -> Tensor:
        """Per-window values ``(B, count)`` spread to the features: the mean over the windows covering each."""
        coverage = self._spread(torch.ones_like(values[:1]))
        return self._spread(values) / coverage.clamp(min=1)

    def _spread(self, values: Tensor) -> Tensor:
        """``sum_v values[:, v] * mask_v`` for every sample, contracting one dimension at a time."""
        out = values.view(values.shape[0], *(m.shape[0] for m in self.masks))
        for mask in self.masks:
            out = torch.tensordot(out, mask, dims=([1], [0]))  # the contracted axis moves to the end
        return out


def _dimension_masks(size: int, window: int, stride: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``(K, size)`` masks of the windows along one dimension."""
    starts = torch.arange(0, size - window + stride, stride, device=device)
    positions = torch.arange(size, device=device)
    return ((positions >= starts[:, None]) & (positions < starts[:, None] + window)).to(dtype)


@register
class Occlusion(Method):
    """Occlusion-1 / Occlusion-patch: mean output drop over the windows covering each feature.

    Options: ``window`` (1 = Occlusion-1; an int k is a k x ... x k patch, spanning one channel of samples
    with three or more dimensions; a tuple gives the exact shape, e.g. ``(3, 15, 15)`` for all RGB
    channels), ``stride`` (1; int or tuple like ``window``), ``baseline`` (0.0; number or tensor
    broadcastable to the inputs; the old name ``value`` still works with a DeprecationWarning). Windows
    slide until every feature is covered; a last window that would stick out is cut at the border
    (Captum's convention).
    """

    name = "occlusion"
    # Deng et al. 2021, Table 2: independent (Occ-1) or in-patch terms only (Theorems 2-3): partial 2nd.
    principles = {"low_approximation_error": "no", "correct_assignment": "partial", "unbiased_baseline": "no"}
    options = {"window": 1, "stride": 1, "baseline": 0.0}
    renamed = {"value": "baseline"}

    def compute(self, request: Request, window: Any, stride: Any, baseline: Any) -> Tensor:
        x = request.inputs
        windows = Windows.of(x, window, stride)
        fill = request.broadcast(baseline)
        number = isinstance(baseline, int | float) and not isinstance(baseline, bool)

        def build(sample: Tensor, variant: Tensor) -> Tensor:
            # One select over the chunk (a number needs no per-point copy of the fill): the points are the
            # inputs with each window replaced, as x * (1 - mask) + fill * mask but with one full-size pass.
            return torch.where(windows.inside(variant), float(baseline) if number else fill[sample], x[sample])

        occluded_outputs = request.forward(Points(x, windows.count, build))
        return windows.average(request.outputs()[:, None] - occluded_outputs)
