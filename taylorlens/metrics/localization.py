"""Localization against bounding boxes: bounding-box accuracy and the share of attribution in the box.

* :func:`bbox_accuracy` (Schulz et al. 2020, as the Taylor paper, Deng et al. 2021, uses it): with a box
  of ``n`` pixels, the fraction ``m / n`` of the ``n`` top-ranked pixels that lie inside it.
* :func:`attribution_in_box` (Sundararajan et al., IG paper Sec. 2.7 "Localization"): the share of the
  pixel attribution mass that lies inside the box.

Pixel scores are the attributions summed over channels (samples ``(C, H, W)``; ``(H, W)`` as they are),
absolute values by default. ``boxes``: a bool mask ``(B, H, W)`` (several boxes may be merged into one
mask) or ``(B, 4)`` integer boxes ``(top, left, bottom, right)`` with exclusive ``bottom``/``right``. These
metrics need no model: ``bbox_accuracy(maps, boxes=...)`` (the old ``(model, inputs, attributions, target)``
call still works for one release and warns).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from taylorlens.engine.checks import AttributionInputError
from taylorlens.metrics.common import as_images, attributions_only
from taylorlens.metrics.registry import register


def pixel_scores(attributions: Tensor, absolute: bool = True) -> Tensor:
    """``(B, H, W)``: attributions (absolute by default) summed over channels."""
    values = attributions.abs() if absolute else attributions
    return as_images(values).sum(1)


def scores_and_boxes(attributions: Tensor, boxes: Any, absolute: bool) -> tuple[Tensor, Tensor]:
    """Pixel scores ``(B, H, W)`` and the matching bool box masks ``(B, H, W)``."""
    scores = pixel_scores(attributions, absolute)
    batch, height, width = scores.shape
    return scores, box_masks(boxes, batch, height, width, scores.device)


def box_masks(boxes: Any, batch: int, height: int, width: int, device: torch.device) -> Tensor:
    """``(B, H, W)`` bool masks from masks or ``(top, left, bottom, right)`` boxes."""
    if not isinstance(boxes, Tensor):
        boxes = torch.as_tensor(boxes)
    boxes = boxes.to(device)
    if boxes.dtype == torch.bool and boxes.shape[-2:] == (height, width):
        return torch.broadcast_to(boxes.reshape(-1, height, width), (batch, height, width))
    if boxes.shape in ((batch, 4), (4,)) and not boxes.is_floating_point():
        corners = torch.broadcast_to(boxes.long(), (batch, 4)).view(batch, 4, 1, 1)
        ys = torch.arange(height, device=device).view(1, -1, 1)
        xs = torch.arange(width, device=device).view(1, 1, -1)
        return (ys >= corners[:, 0]) & (ys < corners[:, 2]) & (xs >= corners[:, 1]) & (xs < corners[:, 3])
    raise AttributionInputError(
        f"boxes must be a bool mask (B, {height}, {width}) or integer boxes (B, 4) as (top, left, bottom, right), "
        f"got {tuple(boxes.shape)} of dtype {boxes.dtype}"
    )


@register("bbox_accuracy", higher_is_better=True, needs=("attributions", "boxes"), value="box accuracy m / n")
@attributions_only
def bbox_accuracy(attributions: Tensor, *, boxes: Any, absolute: bool = True) -> Tensor:
    """Bounding-box accuracy ``m / n`` per input (Deng et al. 2021, "Attribution Assessment"; Schulz et
    al. 2020): ``n`` = pixels in the box, ``m`` = how many of the ``n`` highest-scoring pixels are inside.
    Ties are broken by position (stable sort)."""
    scores, masks = scores_and_boxes(attributions, boxes, absolute)
    masks = masks.flatten(1)
    sizes = masks.sum(1)
    order = scores.flatten(1).argsort(dim=1, descending=True, stable=True)
    rank = order.argsort(dim=1)
    inside_top = (masks & (rank < sizes[:, None])).sum(1)
    return inside_top.to(scores.dtype) / sizes.clamp(min=1).to(scores.dtype)


@register("attribution_in_box", higher_is_better=True, needs=("attributions", "boxes"),
          value="share of attribution in the box")
@attributions_only
def attribution_in_box(attributions: Tensor, *, boxes: Any, absolute: bool = True) -> Tensor:
    """Share of the pixel attribution inside the box per input (IG paper, Sec. 2.7): ``sum_box s / sum s``
    with ``s`` the pixel scores (0 when all scores are 0)."""
    scores, masks = scores_and_boxes(attributions, boxes, absolute)
    total = scores.flatten(1).sum(1)
    inside = (scores * masks).flatten(1).sum(1)
    return torch.where(total != 0, inside / torch.where(total != 0, total, 1), 0.0)
