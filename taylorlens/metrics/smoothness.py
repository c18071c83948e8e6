"""Smoothness of attribution maps: (multi-scale) average total variation and AUTVC.

Goh et al. 2020 (SmoothTaylor paper), Sec. IV-C-2, Eq. 13: the saliency map ``S`` is the absolute
attribution summed over channels, values above the 99th percentile clipped, min-max normalised to [0, 1];
``ATV(S) = 1 / (h w) * sum_{(i, j) in N} |S_i - S_j|`` over horizontally and vertically adjacent pixel pairs
(the l1 norm, each pair once). Multi-scale ATVs follow a Gaussian pyramid (downscale 1.5, a Gaussian blur
before each downscaling, as ``skimage.transform.pyramid_gaussian``) until the map is smaller than 30 x 30;
AUTVC is the area under that curve by Simpson's rule (unit step). Lower is smoother.

These metrics need no model: they take the attributions alone, ``average_total_variation(maps)``; the old
``(model, inputs, attributions, target)`` call still works for one release and warns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from taylorlens.engine.checks import AttributionInputError, check_inputs
from taylorlens.metrics.areas import simpson
from taylorlens.metrics.common import attributions_only
from taylorlens.metrics.registry import register


@dataclass(frozen=True)
class MultiScaleTV:
    """``curve`` (B, levels): ATV at each pyramid level (level 0 = full size); ``autvc`` (B,): its area;
    ``sizes``: the (h, w) of each level."""

    curve: Tensor
    autvc: Tensor
    sizes: list[tuple[int, int]]

    @property
    def value(self) -> Tensor:
        """AUTVC per input, ``(B,)``."""
        return self.autvc


def saliency_map(attributions: Tensor, clip_percentile: float = 99.0) -> Tensor:
    """``(B, H, W)`` maps in [0, 1]: |attribution| summed over channels (samples ``(C, H, W)``; ``(H, W)``
    samples are used as they are), clipped above the ``clip_percentile``-th percentile of each map (linear
    interpolation, as NumPy), min-max normalised (a constant map becomes all zeros)."""
    attributions = check_inputs(attributions, "attributions")
    if attributions.dim() not in (3, 4):
        raise AttributionInputError(
            f"attributions must be image maps (B, C, H, W) or (B, H, W), got shape {tuple(attributions.shape)}"
        )
    maps = attributions.abs()
    if maps.dim() == 4:
        maps = maps.sum(1)
    flat = maps.flatten(1)
    if clip_percentile is not None:
        ceiling = torch.quantile(flat, clip_percentile / 100, dim=1, keepdim=True)
        flat = torch.minimum(flat, ceiling)
    low, high = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    spread = high - low
    normalised = torch.where(spread > 0, (flat - low) / spread.clamp(min=torch.finfo(flat.dtype).tiny), 0.0)
    return normalised.view_as(maps)


def total_variation(maps: Tensor) -> Tensor:
    """Eq. 13 on ``(B, h, w)`` maps: l1 differences of horizontal and vertical neighbours over ``h * w``."""
    horizontal = (maps[..., :, 1:] - maps[..., :, :-1]).abs().flatten(1).sum(1)
    vertical = (maps[..., 1:, :] - maps[..., :-1, :]).abs().flatten(1).sum(1)
    return (horizontal + vertical) / (maps.shape[-1] * maps.shape[-2])


def gaussian_pyramid(maps: Tensor, downscale: float = 1.5, min_size: int = 30) -> list[Tensor]:
    """Levels of a Gaussian pyramid of ``(B, h, w)`` maps, as ``skimage.transform.pyramid_gaussian``: each
    level blurs the previous one (sigma = 2 * downscale / 6, reflected borders, truncated at 4 sigma) and
    resizes it bilinearly to ``ceil(size / downscale)``. Level 0 is ``maps``; levels stop before one
    dimension drops below ``min_size``."""
    if not downscale > 1:
        raise AttributionInputError(f"downscale must be > 1, got {downscale!r}")
    levels = [maps]
    sigma = 2 * downscale / 6
    kernel = _gaussian_kernel(sigma, maps.dtype, maps.device)
    while True:
        previous = levels[-1]
        size = tuple(math.ceil(d / downscale) for d in previous.shape[-2:])
        if min(size) < min_size or size == tuple(previous.shape[-2:]):
            return levels
        blurred = _blur(previous, kernel)
        levels.append(F.interpolate(blurred[:, None], size=size, mode="bilinear", align_corners=False)[:, 0])


@register("average_total_variation", higher_is_better=False, needs=("attributions",), value="ATV (Eq. 13)")
@attributions_only
def average_total_variation(attributions: Tensor, *, clip_percentile: float = 99.0) -> Tensor:
    """ATV (Goh et al. 2020, Eq. 13) of each attribution map's saliency map, ``(B,)``; lower is smoother."""
    return total_variation(saliency_map(attributions, clip_percentile))


@register("autvc", higher_is_better=False, needs=("attributions",), value="AUTVC (Simpson area of the ATV curve)",
          curve_axis="pyramid scale", curve_label="average total variation")
@attributions_only
def autvc(
    attributions: Tensor,
    *,
    downscale: float = 1.5,
    min_size: int = 30,
    clip_percentile: float = 99.0,
) -> MultiScaleTV:
    """Multi-scale ATV curve and its area, AUTVC (Goh et al. 2020, Sec. IV-C-2; Simpson's rule)."""
    maps = saliency_map(attributions, clip_percentile)
    levels = gaussian_pyramid(maps, downscale, min_size)
    curve = torch.stack([total_variation(level) for level in levels], 1)
    return MultiScaleTV(curve, simpson(curve), [tuple(level.shape[-2:]) for level in levels])


def _gaussian_kernel(sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    radius = int(4 * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum()


def _blur(maps: Tensor, kernel: Tensor) -> Tensor:
    """Separable Gaussian blur with mirrored borders (SciPy's ``mode="reflect"``: ``d c b a | a b c d``)."""
    radius = kernel.shape[0] // 2
    out = maps[:, None]
    for dim in (-1, -2):
        out = _mirror_pad(out, radius, dim)
        weights = kernel.view(1, 1, 1, -1) if dim == -1 else kernel.view(1, 1, -1, 1)
        out = F.conv2d(out, weights)
    return out[:, 0]


def _mirror_pad(values: Tensor, radius: int, dim: int) -> Tensor:
    size = values.shape[dim]
    index = torch.arange(-radius, size + radius, device=values.device)
    period = 2 * size
    index = index % period
    index = torch.where(index >= size, period - 1 - index, index)
    return values.index_select(dim, index)
