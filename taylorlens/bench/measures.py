"""How the runner reads each metric: per-sample value and, where there is one, the per-sample curve.

Metrics live in :mod:`taylorlens.metrics` and return tensors or small result objects; this table says which
field of each result is the headline value and which the curve, so the store keeps one number per sample
and the report can draw the curves.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from taylorlens import metrics
from taylorlens.bench.config import ConfigError, Entry

#: metric name -> (value field, curve field, curve's x field); None where there is none (x: the step index).
FIELDS: dict[str, tuple[str | None, str | None, str | None]] = {
    "sensitivity_n": ("mean_correlation", "correlation", "n"),
    "perturbation_curve": ("aopc", "curve", "removed"),
    "aupc": ("aupc", "curve", None),
    "autvc": ("autvc", "curve", None),
    "average_total_variation": (None, None, None),
    "infidelity": ("infidelity", None, None),
    "completeness_gap": ("absolute", None, None),
    "bbox_accuracy": (None, None, None),
    "attribution_in_box": (None, None, None),
}
NEEDS_SEED = ("sensitivity_n", "perturbation_curve", "aupc", "infidelity")
NEEDS_BOXES = ("bbox_accuracy", "attribution_in_box")


def measure(
    metric: Entry, model: Any, inputs: Tensor, attributions: Tensor, targets: Tensor, seed: int,
    boxes: Tensor | None = None,
) -> tuple[list[float], list[dict[str, list[float]] | None]]:
    """Run ``metric`` on a batch; return one value and one curve ``{"x": [...], "y": [...]}`` (or None) per
    sample. ``boxes`` (the batch's object masks) go to the localization metrics."""
    if metric.name not in FIELDS:
        raise ConfigError(f"unknown metric {metric.name!r}; known: {', '.join(sorted(FIELDS))}")
    options = dict(metric.options)
    if metric.name in NEEDS_SEED:
        options.setdefault("seed", seed)
    if metric.name in NEEDS_BOXES and "boxes" not in options:
        if boxes is None:
            raise ConfigError(f"metric {metric.name} needs object boxes: use data.dataset = \"boxes\"")
        options["boxes"] = boxes
    result = getattr(metrics, metric.name)(model, inputs, attributions, targets, **options)
    value_field, curve_field, x_field = FIELDS[metric.name]
    batch = inputs.shape[0]
    values = _per_sample(result if value_field is None else _field(result, value_field), batch).mean(1).tolist()
    if curve_field is None:
        return values, [None] * len(values)
    ys = _per_sample(_field(result, curve_field), batch)
    xs = (torch.arange(ys.shape[1], dtype=torch.float64).expand_as(ys) if x_field is None
          else _per_sample(_field(result, x_field), batch, ys.shape[1]))
    return values, [{"x": x, "y": y} for x, y in zip(xs.tolist(), ys.tolist(), strict=True)]


def _per_sample(values: Tensor, batch: int, length: int | None = None) -> Tensor:
    """``(B, L)`` float64 on the CPU; a shared ``(L,)`` x-axis is repeated for every sample."""
    values = torch.as_tensor(values).detach().to(torch.float64).cpu()
    if length is not None and values.dim() == 1 and values.shape[0] == length:
        return values.expand(batch, length)
    return values.reshape(batch, -1)


def _field(result: Any, name: str) -> Tensor:
    if name == "mean_correlation":
        return result.correlation.nanmean(dim=-1)
    return getattr(result, name)
