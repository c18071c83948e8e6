"""Saturation along the scaling path (IG paper, Sundararajan et al., Sec. 2.1-2.2 and Fig. 2).

The explained output at the scaled inputs ``alpha * x`` (more generally ``b + alpha (x - b)``) for
``alpha`` in [0, 1]: the pre-softmax score and the softmax probability of the target class. A curve that
rises steeply near ``alpha = 0`` and is flat after is the saturation that makes plain gradients at ``x``
uninformative and motivates interior and integrated gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from taylorlens.engine import PathPoints, Request


@dataclass(frozen=True)
class ScalingPath:
    """``alphas`` (A,); ``scores`` and ``probabilities`` (B, A) of the target class along the path."""

    alphas: Tensor
    scores: Tensor
    probabilities: Tensor | None


def scaling_path(
    model: Any,
    inputs: Tensor,
    target: Any = None,
    *,
    alphas: Any = None,
    baseline: Any = 0.0,
    batch_size: int | None = None,
) -> ScalingPath:
    """Target score and (for ``(B, C)`` models) softmax probability at ``b + alpha (x - b)`` for every alpha.

    ``alphas`` defaults to 51 points 0, 0.02, ..., 1. All points of all inputs are one chunked forward job.
    """
    request = Request.build(model, inputs, target, batch_size)
    x = request.inputs
    alphas = torch.linspace(0, 1, 51, dtype=x.dtype, device=x.device) if alphas is None else torch.as_tensor(
        alphas, dtype=x.dtype, device=x.device).reshape(-1)
    points = PathPoints(x, request.broadcast(baseline)[:, None], alphas)
    with request.model_frozen():
        scores = request.forward(points)
        probabilities = None
        if request.targets is not None:
            softmax = Request.build(model, inputs, target, batch_size, output=lambda out: torch.softmax(out, dim=1))
            probabilities = softmax.forward(points)
    return ScalingPath(alphas, scores, probabilities)
