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

#: metric name -> (value field, curve field or None); a metric returning a tensor has neither.
FIELDS: dict[str, tuple[str | None, str | None]] = {
    "sensitivity_n": ("mean_correlation", "correlation"),
    "perturbation_curve": ("aopc", "curve"),
    "aupc": ("aupc", "curve"),
    "autvc": ("autvc", "curve"),
    "average_total_variation": (None, None),
    "infidelity": ("infidelity", None),
    "completeness_gap": ("absolute", None),
    "bbox_accuracy": (None, None),
    "attribution_in_box": (None, None),
}
NEEDS_SEED = ("sensitivity_n", "perturbation_curve", "aupc", "infidelity")


def measure(
    metric: Entry, model: Any, inputs: Tensor, attributions: Tensor, targets: Tensor, seed: int
) -> tuple[list[float], list[list[float] | None]]:
    """Run ``metric`` on a batch; return one value and one curve (or None) per sample."""
    if metric.name not in FIELDS:
        raise ConfigError(f"unknown metric {metric.name!r}; known: {', '.join(sorted(FIELDS))}")
    options = dict(metric.options)
    if metric.name in NEEDS_SEED:
        options.setdefault("seed", seed)
    result = getattr(metrics, metric.name)(model, inputs, attributions, targets, **options)
    value_field, curve_field = FIELDS[metric.name]
    values = result if value_field is None else _field(result, value_field)
    curves = None if curve_field is None else _field(result, curve_field)
    values = values.detach().to(torch.float64).cpu().reshape(inputs.shape[0], -1).mean(1).tolist()
    if curves is None:
        return values, [None] * len(values)
    curves = curves.detach().to(torch.float64).cpu().reshape(inputs.shape[0], -1).tolist()
    return values, curves


def _field(result: Any, name: str) -> Tensor:
    if name == "mean_correlation":
        return result.correlation.nanmean(dim=-1)
    return getattr(result, name)
