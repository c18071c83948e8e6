"""Input checks shared by every method and metric.

Every public entry point normalises its arguments here, once, so that a bad argument fails early with a
message that names the argument, the value received and what is accepted.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor


class AttributionInputError(ValueError):
    """A user argument that taylorlens cannot accept; the message says what is accepted."""


def check_inputs(inputs: Any, name: str = "inputs") -> Tensor:
    """Check a batch of inputs: a floating-point tensor ``(B, ...)`` with B >= 1 and finite values."""
    if not isinstance(inputs, Tensor):
        raise AttributionInputError(
            f"{name} must be a torch.Tensor of shape (B, ...), got {type(inputs).__name__}"
        )
    if not inputs.is_floating_point():
        raise AttributionInputError(
            f"{name} must be a floating-point tensor, got dtype {inputs.dtype}; gradients of integer "
            "inputs (token ids, class indices) do not exist: attribute at the embedding output instead"
        )
    if inputs.dim() < 1 or inputs.shape[0] < 1:
        raise AttributionInputError(
            f"{name} must be a batch of shape (B, ...) with B >= 1, got shape {tuple(inputs.shape)}"
        )
    check_finite(inputs, name)
    return inputs


def check_finite(tensor: Tensor, name: str) -> None:
    """Reject NaN or infinite values, which would silently propagate into every attribution."""
    if not torch.isfinite(tensor).all():
        bad = int((~torch.isfinite(tensor)).sum())
        raise AttributionInputError(f"{name} contains {bad} NaN or infinite value(s); all values must be finite")


def broadcast_baseline(baseline: Any, inputs: Tensor, name: str = "baseline") -> Tensor:
    """Turn a float or a tensor broadcastable to ``inputs`` (or to one sample) into a ``(B, ...)`` tensor.

    Accepted: a Python number; a tensor broadcastable to ``inputs.shape``; a tensor of one sample's shape
    (it is used for every sample). The result has the dtype and device of ``inputs``.
    """
    if isinstance(baseline, bool) or not isinstance(baseline, int | float | Tensor):
        raise AttributionInputError(
            f"{name} must be a number or a tensor broadcastable to the inputs {tuple(inputs.shape)}, "
            f"got {type(baseline).__name__}"
        )
    value = torch.as_tensor(baseline, dtype=inputs.dtype, device=inputs.device)
    check_finite(value, name)  # before broadcasting, so the count is of the values the user gave
    try:
        full = torch.broadcast_to(value, inputs.shape)
    except RuntimeError:
        raise AttributionInputError(
            f"{name} of shape {tuple(value.shape)} does not broadcast to the inputs of shape "
            f"{tuple(inputs.shape)}; give a number, a tensor of one sample's shape {tuple(inputs.shape[1:])} "
            f"or of the batch's shape {tuple(inputs.shape)}"
        ) from None
    return full


def warn_renamed(owner: str, old: str, new: str, stacklevel: int = 3) -> None:
    """The DeprecationWarning of an old spelling kept for one release: ``"<owner>: <old> is now <new>"``
    (``old`` and ``new`` as the user writes them, e.g. ``"option 'steps'"`` / ``"'n_steps'"``)."""
    warnings.warn(f"{owner}: {old} is now {new}; the old spelling will be removed in the next release",
                  DeprecationWarning, stacklevel=stacklevel)


def check_options(method: str, received: Mapping[str, Any], accepted: Mapping[str, Any]) -> dict[str, Any]:
    """Reject option names a method does not know, listing the ones it accepts."""
    unknown = sorted(set(received) - set(accepted))
    if unknown:
        raise AttributionInputError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for method {method!r}; "
            f"accepted: {', '.join(sorted(accepted)) or 'none'}"
        )
    return dict(received)


def check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> Any:
    """Check that ``value`` is one of ``choices``."""
    if value not in choices:
        raise AttributionInputError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """Check an integer count such as ``steps`` or ``n_samples``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise AttributionInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_nonnegative(name: str, value: Any) -> float:
    """Check a scale such as ``sigma`` or ``epsilon``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0 or value == float("inf"):
        raise AttributionInputError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)
