"""Which output is explained: one class index per sample, or the single output of a ``(B,)`` model."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from taylorlens.engine.checks import AttributionInputError


def resolve_targets(target: Any, batch: int, device: torch.device) -> Tensor | None:
    """Normalise ``target`` to a ``(B,)`` or ``(B, T)`` long tensor, or ``None`` for ``(B,)`` outputs.

    Accepted: ``None``; an int (the same class for every sample); a sequence or 1-D tensor of B ints; a
    ``(B, T)`` tensor or nested sequence of T classes per sample (several targets: results get a T axis).
    Ranges are checked against the model's output in :func:`select_outputs`.
    """
    if target is None:
        return None
    if isinstance(target, bool):
        raise AttributionInputError(f"target must be an int, B ints or None, got {target!r}")
    if isinstance(target, int):
        return torch.full((batch,), target, dtype=torch.long, device=device)
    try:
        values = torch.as_tensor(target, device=device)
    except (TypeError, ValueError, RuntimeError):
        raise AttributionInputError(
            f"target must be an int, a sequence/tensor of {batch} ints or None, got {type(target).__name__}"
        ) from None
    if values.is_floating_point() or values.is_complex() or values.dtype == torch.bool:
        raise AttributionInputError(f"target must hold integers, got dtype {values.dtype}")
    if values.dim() == 0:
        return values.long().expand(batch).clone()
    if values.dim() not in (1, 2) or values.shape[0] != batch or values.numel() == 0:
        raise AttributionInputError(
            f"target must give one class per sample: expected {batch} ints, got shape {tuple(values.shape)}; "
            f"for T classes per sample give a ({batch}, T) tensor"
        )
    return values.long()


def select_outputs(outputs: Any, targets: Tensor | None, n: int) -> Tensor:
    """Pick each point's explained output from a model output of shape ``(n, C)`` or ``(n,)``.

    ``targets`` is ``(n,)`` (one output per point) or ``(n, T)`` (T outputs per point, ``(n, T)``).
    """
    if not isinstance(outputs, Tensor):
        raise AttributionInputError(
            f"the model must return a tensor of shape (B, C) or (B,), got {type(outputs).__name__}"
        )
    if outputs.dim() == 2 and outputs.shape[0] == n:
        classes = outputs.shape[1]
        if targets is None:
            if classes == 1:
                return outputs[:, 0]
            raise AttributionInputError(
                f"the model returns {classes} outputs per sample: pass target (an int or one int per sample)"
            )
        if bool(((targets < 0) | (targets >= classes)).any()):
            bad = targets[(targets < 0) | (targets >= classes)][0].item()
            raise AttributionInputError(f"target {bad} is out of range for a model with {classes} outputs")
        picked = outputs.gather(1, targets if targets.dim() == 2 else targets[:, None])
        return picked if targets.dim() == 2 else picked[:, 0]
    if outputs.dim() == 1 and outputs.shape[0] == n:
        if targets is not None and bool((targets != 0).any()):
            raise AttributionInputError("the model returns one output per sample (B,): target must be None or 0")
        return outputs
    raise AttributionInputError(
        f"the model must map a batch of {n} to outputs of shape ({n}, C) or ({n},), got {tuple(outputs.shape)}; "
        "choose the explained tensor with output= (a key or a callable)"
    )
