"""The space an explanation lives in: one tensor, or several tensors packed into one.

Methods and metrics are written for one explained tensor ``(B, ...)``. A model with several inputs
(``inputs=(image, table)``) is explained in a packed space: every part flattened and concatenated into
``(B, N)``, ``N = sum_i numel(part_i) / B``. The model always sees the parts in their own shapes
(:meth:`Layout.unpack`), results go back to a tuple of the parts' shapes, and completeness holds over the
sum of all parts because the packed vector is just their concatenation. A single tensor is not packed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from taylorlens.engine.checks import AttributionInputError, check_finite


@dataclass(frozen=True)
class Layout:
    """How the explained tensor maps to the parts: ``shapes`` holds one sample's shape of each part.

    ``packed`` is False for a single tensor (its own shape is kept) and True for a tuple of parts.
    """

    shapes: tuple[tuple[int, ...], ...]
    packed: bool

    @classmethod
    def single(cls, sample_shape: tuple[int, ...]) -> Layout:
        return cls((tuple(sample_shape),), packed=False)

    @classmethod
    def of(cls, parts: tuple[Tensor, ...]) -> Layout:
        return cls(tuple(tuple(part.shape[1:]) for part in parts), packed=True)

    @property
    def sizes(self) -> list[int]:
        return [int(torch.Size(shape).numel()) for shape in self.shapes]

    def pack(self, parts: tuple[Tensor, ...]) -> Tensor:
        """``(n, ...)`` parts -> the explained tensor ``(n, N)`` (or the one part itself)."""
        if not self.packed:
            return parts[0]
        return torch.cat([part.reshape(part.shape[0], -1) for part in parts], dim=1)

    def unpack(self, points: Tensor) -> tuple[Tensor, ...]:
        """The explained tensor ``(*lead, n, N)`` -> the parts ``(*lead, n, *shape_i)``."""
        if not self.packed:
            return (points,)
        lead = points.shape[:-1]
        pieces = torch.split(points, self.sizes, dim=-1)
        return tuple(piece.reshape(*lead, *shape) for piece, shape in zip(pieces, self.shapes, strict=True))

    def result(self, values: Tensor) -> Tensor | tuple[Tensor, ...]:
        """A method's result in the explained space, back in the user's layout."""
        parts = self.unpack(values)
        return parts if self.packed else parts[0]

    def broadcast(self, value: Any, batch: int, dtype: torch.dtype, device: torch.device, name: str) -> Tensor:
        """A number, a tensor (or, packed, a tuple with one entry per part) -> ``(batch, ...)`` per part packed.

        Each entry may be a number, a tensor of one sample's shape of its part, or of ``(batch, *shape)``.
        """
        if self.packed and isinstance(value, tuple | list):
            if len(value) != len(self.shapes):
                raise AttributionInputError(
                    f"{name} must give one entry per input ({len(self.shapes)} inputs), got {len(value)}"
                )
            parts = tuple(
                _broadcast_part(entry, batch, shape, dtype, device, f"{name}[{index}]")
                for index, (entry, shape) in enumerate(zip(value, self.shapes, strict=True))
            )
            return self.pack(parts)
        if self.packed and isinstance(value, Tensor) and value.dim() > 0:
            raise AttributionInputError(
                f"{name} for a model with {len(self.shapes)} inputs must be a number or a tuple with one "
                f"number/tensor per input, got a tensor of shape {tuple(value.shape)}"
            )
        if self.packed:
            return self.pack(tuple(_broadcast_part(value, batch, s, dtype, device, name) for s in self.shapes))
        return _broadcast_part(value, batch, self.shapes[0], dtype, device, name)


def _broadcast_part(
    value: Any, batch: int, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, name: str
) -> Tensor:
    """A number or a tensor broadcastable to ``(batch, *shape)`` (or to ``shape``) -> ``(batch, *shape)``."""
    if isinstance(value, bool) or not isinstance(value, int | float | Tensor):
        raise AttributionInputError(
            f"{name} must be a number or a tensor broadcastable to the inputs {(batch, *shape)}, "
            f"got {type(value).__name__}"
        )
    tensor = torch.as_tensor(value, dtype=dtype, device=device)
    check_finite(tensor, name)  # before broadcasting, so the count is of the values the user gave
    try:
        return torch.broadcast_to(tensor, (batch, *shape))
    except RuntimeError:
        raise AttributionInputError(
            f"{name} of shape {tuple(tensor.shape)} does not broadcast to the inputs of shape {(batch, *shape)}; "
            f"give a number, a tensor of one sample's shape {tuple(shape)} or of the batch's shape "
            f"{(batch, *shape)}"
        ) from None


def sum_over(attributions: Tensor | tuple[Tensor, ...], dims: int | tuple[int, ...] = -1) -> Any:
    """Sum attributions over ``dims`` (per part for a tuple): one score per token from ``(B, T, D)``.

    Ancona et al. (ICLR 2018), App. C.4: a word's attribution is "the sum of the attributions over the
    embedding vector components"; ``sum_over(maps, -1)`` turns a word-embedding attribution ``(B, T, D)``
    into word scores ``(B, T)``. Sums keep completeness: the total over all scores is unchanged.
    """
    if isinstance(attributions, tuple | list):
        return tuple(sum_over(part, dims) for part in attributions)
    if not isinstance(attributions, Tensor):
        raise AttributionInputError(f"attributions must be a tensor or a tuple of tensors, got {type(attributions)}")
    return attributions.sum(dim=dims)
