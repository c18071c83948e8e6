"""Saturation along the scaling path (IG paper, Sundararajan et al., Sec. 2.1-2.2 and Fig. 2).

The explained output at the scaled inputs ``alpha * x`` (more generally ``b + alpha (x - b)``) for
``alpha`` in [0, 1]: the pre-softmax score and the softmax probability of the target class. A curve that
rises steeply near ``alpha = 0`` and is flat after is the saturation that makes plain gradients at ``x``
uninformative and motivates interior and integrated gradients. With ``layer=`` the scaled variable is that
layer's output: Sec. 3.2 / Fig. 8 scales the embeddings of a language model's 10 context words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from taylorlens.engine import PathPoints, Request
from taylorlens.metrics.registry import register


@dataclass(frozen=True)
class ScalingPath:
    """``alphas`` (A,); ``scores`` and ``probabilities`` (B, A) of the target class along the path."""

    alphas: Tensor
    scores: Tensor
    probabilities: Tensor | None

    @property
    def curve(self) -> Tensor:
        """Fig. 2 / Fig. 8: the softmax probability along the path, ``(B, A)`` (the scores when there is none)."""
        return self.scores if self.probabilities is None else self.probabilities

    @property
    def curve_x(self) -> Tensor:
        return self.alphas

    @property
    def value(self) -> Tensor:
        """The share of the path's rise (end minus start of :attr:`curve`) already reached at ``alpha = 0.5``,
        ``(B,)``: near 1 when the output saturates early (NaN when the path does not rise or fall)."""
        curve = self.curve
        middle = int(torch.argmin((self.alphas - 0.5).abs()))
        rise = curve[:, -1] - curve[:, 0]
        return torch.where(rise == 0, torch.nan, (curve[:, middle] - curve[:, 0]) / rise)


@register("scaling_path", higher_is_better=None, needs=("model", "inputs", "target"),
          value="share of the output's rise reached at alpha = 0.5", curve_axis="alpha (input scaled)",
          curve_label="target probability (score if none)")
def scaling_path(
    model: Any,
    inputs: Tensor,
    target: Any = None,
    *,
    alphas: Any = None,
    baseline: Any = 0.0,
    batch_size: int | None = None,
    **model_options: Any,
) -> ScalingPath:
    """Target score and (for ``(B, C)`` models) softmax probability at ``b + alpha (x - b)`` for every alpha.

    ``alphas`` defaults to 51 points 0, 0.02, ..., 1. All points of all inputs are one chunked forward job.
    ``model_options`` are the methods' (``layer=``, ``forward_kwargs=``, ``output=``, ...): with ``layer=``
    the layer's output is scaled. When ``output=`` is given the score is that output and no softmax is taken
    on top of it (``probabilities`` is None; e.g. ``output`` already is the softmax).
    """
    request = Request.build(model, inputs, target, batch_size, caller="scaling_path", **model_options)
    x = request.inputs
    alphas = torch.linspace(0, 1, 51, dtype=x.dtype, device=x.device) if alphas is None else torch.as_tensor(
        alphas, dtype=x.dtype, device=x.device).reshape(-1)
    points = PathPoints(x, request.broadcast(baseline)[:, None], alphas)
    with request.model_frozen():
        scores = request.forward(points)
        probabilities = None
        if request.targets is not None and model_options.get("output") is None:
            softmax = Request.build(model, inputs, target, batch_size, caller="scaling_path",
                                    **{**model_options, "output": lambda out: torch.softmax(out, dim=1)})
            probabilities = softmax.forward(points)
    return ScalingPath(alphas, scores, probabilities)
