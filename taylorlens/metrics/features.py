"""Which input features a metric treats as one unit, and random draws that do not depend on chunking.

Ancona et al. (2018, Appendix C) treat a pixel as all its colour channels (CIFAR-10, ImageNet) and a word as
all its embedding dimensions (IMDB); :func:`feature_groups` turns such a choice into group ids.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from taylorlens.engine.checks import AttributionInputError


@dataclass(frozen=True)
class FeatureGroups:
    """``ids`` (D,): the group of every feature of one flattened sample; ``count`` groups in all."""

    ids: Tensor
    count: int

    def sums(self, values: Tensor) -> Tensor:
        """Per-group sums of ``values`` (B, ...) -> (B, count)."""
        flat = values.flatten(1)
        out = flat.new_zeros(flat.shape[0], self.count)
        return out.index_add_(1, self.ids, flat)

    def expand(self, group_mask: Tensor, sample_shape: tuple[int, ...]) -> Tensor:
        """Feature mask ``(n, *sample_shape)`` from a group mask ``(n, count)``."""
        return group_mask[:, self.ids].view(group_mask.shape[0], *sample_shape)


def feature_groups(groups: Any, inputs: Tensor) -> FeatureGroups:
    """Group ids for one sample of ``inputs`` (B, ...).

    ``groups``: ``None`` (every feature alone); ``"pixel"`` (all channels of a pixel: samples ``(C, H, W)``;
    the same as ``None`` for ``(H, W)``); ``"token"`` (all embedding dimensions of a position: samples
    ``(..., T, D)`` group over the last dimension); or an integer tensor broadcastable to one sample's shape
    holding ids ``0 .. G - 1`` (a mask: e.g. ``(1, H, W)`` superpixel ids shared by all channels).
    """
    shape = tuple(inputs.shape[1:])
    numel = inputs[0].numel()
    device = inputs.device
    if groups is None:
        return FeatureGroups(torch.arange(numel, device=device), numel)
    if isinstance(groups, str):
        if groups == "pixel" and len(shape) in (2, 3):
            spatial = shape[-2] * shape[-1]
            ids = torch.arange(spatial, device=device).expand(*shape[:-2] or (1,), spatial).reshape(-1)
            return FeatureGroups(ids, spatial)
        if groups == "token" and len(shape) >= 2:
            tokens = numel // shape[-1]
            ids = torch.arange(tokens, device=device).repeat_interleave(shape[-1])
            return FeatureGroups(ids, tokens)
        raise AttributionInputError(
            f"feature_groups={groups!r} does not fit samples of shape {shape}: 'pixel' needs (C, H, W) or (H, W), "
            "'token' needs (..., T, D)"
        )
    if isinstance(groups, Tensor) and not groups.is_floating_point() and groups.dtype != torch.bool:
        try:
            ids = torch.broadcast_to(groups.to(device=device, dtype=torch.long), shape).reshape(-1)
        except RuntimeError:
            raise AttributionInputError(
                f"feature_groups of shape {tuple(groups.shape)} does not broadcast to one sample's shape {shape}"
            ) from None
        if bool((ids < 0).any()):
            raise AttributionInputError("feature_groups ids must be >= 0")
        return FeatureGroups(ids, int(ids.max()) + 1)
    raise AttributionInputError(
        f"feature_groups must be None, 'pixel', 'token' or an integer tensor of group ids, got {groups!r}"
    )


class PerSampleDraws:
    """Random draws made per sample from per-sample seeds, so that they do not depend on the chunk size.

    ``draw(generator)`` makes all of one sample's random values (e.g. ``(variants, ...)``); ``rows(sample,
    variant)`` returns the rows a chunk needs. The last sample's draw is cached (chunks are sample-major).
    """

    def __init__(self, generator: torch.Generator, batch: int, draw: Callable[[torch.Generator], Tensor]) -> None:
        self.device = generator.device
        self.seeds = torch.randint(2**62, (batch,), generator=generator, device=self.device).tolist()
        self.draw = draw
        self._cached: tuple[int, Tensor] | None = None

    def __call__(self, sample: int) -> Tensor:
        if self._cached is None or self._cached[0] != sample:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(self.seeds[sample])
            self._cached = (sample, self.draw(generator))
        return self._cached[1]

    def rows(self, sample: Tensor, variant: Tensor) -> Tensor:
        """The draws of the (sample, variant) pairs of one chunk, ``(n, ...)``."""
        samples, counts = torch.unique_consecutive(sample, return_counts=True)
        parts, start = [], 0
        for b, count in zip(samples.tolist(), counts.tolist(), strict=True):
            parts.append(self(b)[variant[start : start + count]])
            start += count
        return torch.cat(parts)
