"""Every metric by name, with what a caller needs to know to run, store and draw it: ``available()``.

Each metric function is registered with :func:`register` next to its definition. The metadata follows
torchmetrics (``higher_is_better``) and adds what the bench and the report need: which arguments the
metric takes (``needs``), whether it draws random numbers (``seeded``), and the axes of its curve.
:func:`evaluate` runs a metric by name and returns the one result shape every metric shares,
:class:`MetricResult`: ``value`` (B,), ``curve`` (B, K) or None, ``curve_x`` (K,) or (B, K) or None, the
names of the curve's points where they are not numbers (``curve_ticks``, e.g. the randomised layers) and the
metric's own result as ``extras``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from taylorlens.engine.checks import AttributionInputError

#: Arguments a metric can need; ``method`` means a method name plus its options (the metric attributes itself);
#: ``boxes`` (object masks or boxes, passed by keyword) the localization metrics' ground truth.
ARGUMENTS = ("model", "inputs", "attributions", "target", "method", "boxes")
MODEL_ARGUMENTS = ("model", "inputs", "attributions", "target")


@dataclass(frozen=True)
class MetricInfo:
    """What ``taylorlens.metrics.available()`` lists for one metric.

    ``higher_is_better``: True, False, or None where neither (e.g. a raw curve). ``needs``: the arguments
    it takes, in order (see :data:`ARGUMENTS`). ``value``: what the per-input value is. ``curve_axis`` and
    ``curve_label``: the x- and y-axis of its curve (None when it has none); ``log_x``: draw x on a log scale.
    """

    name: str
    function: Callable[..., Any] = field(repr=False)
    higher_is_better: bool | None
    needs: tuple[str, ...]
    value: str
    seeded: bool = False
    curve_axis: str | None = None
    curve_label: str | None = None
    log_x: bool = False
    summary: str = ""

    @property
    def has_curve(self) -> bool:
        return self.curve_axis is not None


@dataclass(frozen=True)
class MetricResult:
    """One shape for every metric: ``value`` (B,); ``curve`` (B, K) and its x values ``curve_x`` ((K,) or
    (B, K)) where there is one; ``curve_ticks`` (K names) where the points are named rather than numbered;
    ``extras`` the metric's own result object (or tensor)."""

    value: Tensor
    curve: Tensor | None = None
    curve_x: Tensor | None = None
    extras: Any = None
    curve_ticks: list[str] | None = None


_REGISTRY: dict[str, MetricInfo] = {}


def register(
    name: str,
    *,
    higher_is_better: bool | None,
    needs: tuple[str, ...] = MODEL_ARGUMENTS,
    value: str,
    seeded: bool = False,
    curve_axis: str | None = None,
    curve_label: str | None = None,
    log_x: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator adding a metric function to the registry under ``name`` (the function is returned as is)."""
    unknown = set(needs) - set(ARGUMENTS)
    if unknown:
        raise ValueError(f"metric {name!r} needs unknown arguments {sorted(unknown)}; known: {ARGUMENTS}")

    def add(function: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY:
            raise ValueError(f"metric {name!r} is registered twice")
        summary = (function.__doc__ or "").strip().splitlines()[0] if function.__doc__ else ""
        _REGISTRY[name] = MetricInfo(name, function, higher_is_better, needs, value, seeded, curve_axis,
                                     curve_label, log_x, summary)
        return function

    return add


def available() -> dict[str, MetricInfo]:
    """Every registered metric name with its metadata, sorted by name."""
    return dict(sorted(_REGISTRY.items()))


def metric_info(name: Any) -> MetricInfo:
    """The metadata of ``name``; the error lists the known metrics."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise AttributionInputError(f"unknown metric {name!r}; known metrics: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def evaluate(
    name: str,
    *,
    model: Any = None,
    inputs: Tensor | None = None,
    attributions: Tensor | None = None,
    target: Any = None,
    method: str | None = None,
    method_options: dict[str, Any] | None = None,
    seed: int | None = None,
    boxes: Any = None,
    **options: Any,
) -> MetricResult:
    """Run metric ``name`` with the arguments it needs (others are ignored) and return a :class:`MetricResult`.

    ``seed`` is passed to seeded metrics unless ``options`` holds one; ``method_options`` go to metrics that
    attribute themselves (``needs`` holds ``"method"``); ``boxes`` to the localization metrics.
    """
    info = metric_info(name)
    given = {"model": model, "inputs": inputs, "attributions": attributions, "target": target, "method": method,
             "boxes": options.pop("boxes", boxes)}
    missing = [arg for arg in info.needs if arg != "target" and given[arg] is None]
    if missing:
        raise AttributionInputError(f"metric {name!r} needs {', '.join(missing)}")
    options = dict(options)
    if info.seeded and seed is not None:
        options.setdefault("seed", seed)
    if "method" in info.needs:
        options = {**(method_options or {}), **options}
    if "boxes" in info.needs:
        options["boxes"] = given["boxes"]
    result = info.function(*(given[arg] for arg in info.needs if arg != "boxes"), **options)
    return as_result(result)


def as_result(result: Any) -> MetricResult:
    """A metric's return value in the shared shape (a tensor is its own value)."""
    if isinstance(result, Tensor):
        return MetricResult(_per_input(result), extras=result)
    curve = getattr(result, "curve", None)
    return MetricResult(_per_input(result.value), curve, getattr(result, "curve_x", None), result,
                        getattr(result, "curve_ticks", None))


def _per_input(value: Tensor) -> Tensor:
    value = torch.as_tensor(value)
    return value if value.dim() == 1 else value.reshape(value.shape[0], -1).mean(1)
