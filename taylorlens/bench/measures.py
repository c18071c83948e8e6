"""How the runner stores a metric: one value and, where there is one, one curve per sample.

What a metric returns and which arguments it needs come from the metrics registry
(:func:`taylorlens.metrics.available`); this module only turns the shared :class:`MetricResult` into rows.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from taylorlens import metrics
from taylorlens.bench.config import ConfigError, Entry


def measure(
    metric: Entry,
    model: Any,
    inputs: Tensor,
    attributions: Tensor,
    targets: Tensor,
    seed: int,
    method: str | None = None,
    method_options: dict[str, Any] | None = None,
    boxes: Tensor | None = None,
    model_options: dict[str, Any] | None = None,
) -> tuple[list[float], list[dict[str, list[float]] | None]]:
    """Run ``metric`` on a batch; return one value and one curve ``{"x": [...], "y": [...]}`` (or None) per
    sample, with ``"ticks"`` (the names of the points, e.g. the randomised layers) where the metric names
    them. ``method`` and ``method_options`` reach metrics that attribute themselves (randomization_test,
    data_randomization_test); ``boxes`` (the batch's object masks) the localization metrics;
    ``model_options`` (the config's ``layer=``, ``output=``) every metric that calls the model, so it
    perturbs what the method explained."""
    if metric.name not in metrics.available():
        raise ConfigError(f"unknown metric {metric.name!r}; known: {', '.join(metrics.available())}")
    if "boxes" in metrics.available()[metric.name].needs and boxes is None and "boxes" not in metric.options:
        raise ConfigError(f"metric {metric.name} needs object boxes: use data.dataset = \"boxes\"")
    needs = metrics.available()[metric.name].needs
    explained = dict(model_options or {}) if "model" in needs else {}
    if "method" in needs:
        method_options = {**(method_options or {}), **explained}
        explained = {}
    result = metrics.evaluate(metric.name, model=model, inputs=inputs, attributions=attributions, target=targets,
                              method=method, method_options=method_options, seed=seed, boxes=boxes,
                              **metric.options, **explained)
    batch = inputs.shape[0]
    values = _per_sample(result.value, batch).mean(1).tolist()
    if result.curve is None:
        return values, [None] * len(values)
    ys = _per_sample(result.curve, batch)
    xs = (torch.arange(ys.shape[1], dtype=torch.float64).expand_as(ys) if result.curve_x is None
          else _per_sample(result.curve_x, batch, ys.shape[1]))
    ticks = {} if result.curve_ticks is None else {"ticks": list(result.curve_ticks)}
    return values, [{"x": x, "y": y, **ticks} for x, y in zip(xs.tolist(), ys.tolist(), strict=True)]


def _per_sample(values: Tensor, batch: int, length: int | None = None) -> Tensor:
    """``(B, L)`` float64 on the CPU; a shared ``(L,)`` x-axis is repeated for every sample."""
    values = torch.as_tensor(values).detach().to(torch.float64).cpu()
    if length is not None and values.dim() == 1 and values.shape[0] == length:
        return values.expand(batch, length)
    return values.reshape(batch, -1)
