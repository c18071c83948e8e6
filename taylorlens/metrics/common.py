"""Argument checks shared by the metrics: attributions matching the inputs, a value range."""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from taylorlens.engine import MODEL_OPTIONS, Request
from taylorlens.engine.checks import AttributionInputError, check_finite
from taylorlens.engine.model_call import check_output, read_output
from taylorlens.metrics.registry import metric_info


def metric_request(
    model: Any,
    inputs: Any,
    target: Any,
    batch_size: int | None,
    caller: str,
    model_options: dict[str, Any],
    readout: Callable[[Tensor], Tensor] | None = None,
) -> Request:
    """The :class:`~taylorlens.engine.Request` of a metric that calls the model.

    ``model_options`` are the methods' (``layer=``, ``layer_side=``, ``forward_kwargs=``, ``output=``, ...):
    a metric evaluated with the options its attributions were computed with perturbs the same explained
    variable (e.g. the embedding output of token ids). ``readout`` maps the model's output tensor (read as
    ``output=`` says) to the values the metric explains. Metrics explain one class per sample.
    """
    unknown = sorted(set(model_options) - set(MODEL_OPTIONS))
    if unknown:
        own = [name for name, parameter in inspect.signature(metric_info(caller).function).parameters.items()
               if parameter.kind is inspect.Parameter.KEYWORD_ONLY]
        raise AttributionInputError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for metric {caller!r}; accepted: "
            f"{', '.join(own)} and the model options {', '.join(MODEL_OPTIONS)}"
        )
    if readout is not None:
        user_output = check_output(model_options.get("output"))
        model_options = {**model_options, "output": lambda out: readout(read_output(out, user_output))}
    request = Request.build(model, inputs, target, batch_size, caller=caller, **model_options)
    if request.group > 1:
        raise AttributionInputError(
            f"{caller} explains one class per sample: give target as B ints (one call per class), "
            f"got {request.group} classes per sample"
        )
    return request


def check_attributions(attributions: Any, inputs: Tensor) -> Tensor:
    """Attributions of the inputs' shape, in the inputs' dtype and device."""
    if not isinstance(attributions, Tensor) or tuple(attributions.shape) != tuple(inputs.shape):
        got = tuple(attributions.shape) if isinstance(attributions, Tensor) else type(attributions).__name__
        raise AttributionInputError(
            f"attributions must be a tensor of the inputs' shape {tuple(inputs.shape)}, got {got}"
        )
    attributions = attributions.detach().to(dtype=inputs.dtype, device=inputs.device)
    check_finite(attributions, "attributions")
    return attributions


def value_range(valid_range: Any, inputs: Tensor) -> tuple[Tensor, Tensor]:
    """``(low, high)`` broadcastable to one sample; ``None`` means the batch's min and max."""
    if valid_range is None:
        return inputs.min(), inputs.max()
    try:
        low, high = (torch.as_tensor(v, dtype=inputs.dtype, device=inputs.device) for v in valid_range)
    except (TypeError, ValueError):
        raise AttributionInputError(f"valid_range must be (low, high), got {valid_range!r}") from None
    if not bool((low < high).all()):
        raise AttributionInputError(f"valid_range needs low < high, got {valid_range!r}")
    return low, high


def as_images(values: Tensor) -> Tensor:
    """A ``(B, C, H, W)`` view of samples ``(..., H, W)`` (at least two dimensions)."""
    if values.dim() < 3:
        raise AttributionInputError(
            f"region perturbation needs image samples (C, H, W) or (H, W), got shape {tuple(values.shape[1:])}"
        )
    return values.reshape(values.shape[0], -1, *values.shape[-2:])


def attributions_only(function: Callable[..., Any]) -> Callable[..., Any]:
    """Let a model-free metric ``metric(attributions, **options)`` keep its old call style
    ``metric(model, inputs, attributions, target, ...)`` (or ``model=``/``inputs=``/``target=`` keywords) for
    one release, with a :class:`DeprecationWarning`."""

    @functools.wraps(function)
    def metric(*args: Any, **options: Any) -> Any:
        legacy = {name: options.pop(name) for name in LEGACY_ARGUMENTS if name in options}
        if len(args) <= 1 and not legacy:
            return function(*args, **options)
        warnings.warn(
            f"{function.__name__}(model, inputs, attributions, target) is deprecated: the metric needs no model; "
            f"call {function.__name__}(attributions, ...)",
            DeprecationWarning,
            stacklevel=2,
        )
        legacy.update(zip(("model", "inputs", "attributions", "target"), args, strict=False))
        attributions = options.pop("attributions", legacy.get("attributions"))
        if attributions is None:
            raise AttributionInputError(f"pass the attributions: {function.__name__}(attributions, ...)")
        return function(attributions, **options)

    return metric


LEGACY_ARGUMENTS = ("model", "inputs", "target")
