"""Completeness (Summation to Delta; IG paper Sec. 2.6, Ancona et al. 2018 Sec. 4 as Sensitivity-N).

``sum_i a_i = f(x) - f(baseline)``; :func:`completeness_gap` measures how far attributions are from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from taylorlens.engine import broadcast_baseline
from taylorlens.metrics.common import check_attributions, metric_request
from taylorlens.metrics.registry import register


@dataclass(frozen=True)
class CompletenessGap:
    """Per input: ``gap = sum(a) - (f(x) - f(baseline))``; ``absolute = |gap|``;
    ``relative = |gap| / |f(x) - f(baseline)|`` (inf when the delta is 0 and the gap is not, 0 when both are);
    ``attribution_sum`` and ``delta`` are the two sides."""

    gap: Tensor
    absolute: Tensor
    relative: Tensor
    attribution_sum: Tensor
    delta: Tensor

    @property
    def value(self) -> Tensor:
        """``|gap|`` per input, ``(B,)``."""
        return self.absolute


@register("completeness_gap", higher_is_better=False, value="|sum(a) - (f(x) - f(baseline))|")
def completeness_gap(
    model: Any,
    inputs: Tensor,
    attributions: Tensor,
    target: Any = None,
    *,
    baseline: Any = 0.0,
    batch_size: int | None = None,
    **model_options: Any,
) -> CompletenessGap:
    """How far ``sum(a)`` is from ``f(x) - f(baseline)`` (completeness), per input."""
    request = metric_request(model, inputs, target, batch_size, "completeness_gap", model_options)
    x = request.inputs
    a = check_attributions(attributions, x)
    with request.model_frozen():
        delta = request.outputs() - request.outputs(broadcast_baseline(baseline, x))
    total = a.flatten(1).sum(1)
    gap = total - delta
    absolute = gap.abs()
    relative = torch.where(absolute == 0, 0.0, absolute / delta.abs())
    return CompletenessGap(gap, absolute, relative, total, delta)
