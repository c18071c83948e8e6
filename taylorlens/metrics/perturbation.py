"""Perturbation curves: region perturbation / AOPC (Samek et al. 2017) and AUPC (Goh et al. 2020).

Remove the features an attribution ranks most relevant first (or least relevant first) and follow the
explained output. Ancona et al. (2018, Sec. 4, Fig. 3c) remove one pixel at a time (set to 0), both orders;
the IG paper (Sundararajan et al., Sec. 2.7) removes the top 5000 pixels, 100 per step, 50 steps, to zero
and reports AOPC; the SmoothTaylor paper (Goh et al. 2020, Sec. IV-C-1, Eqs. 11-12) perturbs the top-L
``k x k`` regions with uniform noise, P samples per step, and reports the area under the normalised curve
(AUPC, Simpson's rule). Images are ``(C, H, W)`` or ``(H, W)`` samples; regions span all channels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from taylorlens.engine import Points, Request, broadcast_baseline
from taylorlens.engine.checks import AttributionInputError, check_choice, check_positive_int, warn_renamed
from taylorlens.metrics import features
from taylorlens.metrics.areas import aopc, aopc_curve, simpson
from taylorlens.metrics.common import as_images, check_attributions, metric_request, value_range
from taylorlens.metrics.registry import register

#: Removal orders, named as in ROAD (:mod:`taylorlens.metrics.road`): most / least relevant first.
ORDERS = ("morf", "lerf")
#: The old spellings, accepted for one release with a DeprecationWarning.
_OLD_ORDERS = {"most_relevant_first": "morf", "least_relevant_first": "lerf"}
#: Settings that reproduce the papers' curves (``perturbation_curve(..., preset=name)``).
PRESETS: dict[str, dict[str, Any]] = {
    # Ancona et al. 2018, Fig. 3c: one pixel at a time to 0 (run once per order).
    "ancona_fig3c": {"region": 1, "step": 1, "n_steps": None, "baseline": 0.0, "feature_groups": "pixel"},
    # Sundararajan et al., Sec. 2.7: the top 5000 pixels, 100 per step, 50 steps, zeros (all channels).
    "ig_pixel_ablation": {"region": 1, "step": 100, "n_steps": 50, "baseline": 0.0, "feature_groups": "pixel"},
}
_DEFAULTS: dict[str, Any] = {"region": 1, "step": 1, "n_steps": None, "baseline": 0.0, "feature_groups": None}
_UNSET: Any = object()


@dataclass(frozen=True)
class PerturbationCurve:
    """``curve`` (B, T + 1): explained output after removing ``removed[t]`` units (``curve[:, 0] = f(x)``);
    ``aopc`` (B,) per Samek et al. 2017, Eq. 12; ``aopc_curve`` (B, T + 1) AOPC up to each step."""

    curve: Tensor
    removed: Tensor
    aopc: Tensor
    aopc_curve: Tensor

    @property
    def value(self) -> Tensor:
        """AOPC per input, ``(B,)``."""
        return self.aopc

    @property
    def curve_x(self) -> Tensor:
        return self.removed


@dataclass(frozen=True)
class AUPC:
    """``curve`` (B, L + 1): mean score per step over the P samples, divided by ``f(x)`` (``curve[:, 0] = 1``);
    ``aupc`` (B,): its area by Simpson's rule (unit step; a model that ignores its input scores L);
    ``regions`` (B, L, 2): the top-left corner of each perturbed region (-1 when none was left)."""

    curve: Tensor
    aupc: Tensor
    regions: Tensor

    @property
    def value(self) -> Tensor:
        """AUPC per input, ``(B,)``."""
        return self.aupc


@register("perturbation_curve", higher_is_better=True, value="AOPC (most relevant first: higher is better)",
          seeded=True, curve_axis="features removed", curve_label="explained output")
def perturbation_curve(
    model: Any,
    inputs: Tensor,
    attributions: Tensor,
    target: Any = None,
    *,
    order: str = "morf",
    region: int = _UNSET,
    step: int = _UNSET,
    n_steps: int | None = _UNSET,
    baseline: Any = _UNSET,
    feature_groups: Any = _UNSET,
    valid_range: Any = None,
    preset: str | None = None,
    seed: int | None = None,
    batch_size: int | None = None,
    **model_options: Any,
) -> PerturbationCurve:
    """Region perturbation curve and AOPC (Samek et al. 2017; Ancona et al. 2018 Fig. 3c; IG paper Sec. 2.7).

    Units are features (``region=1``; grouped by ``feature_groups``, e.g. ``"pixel"`` = all channels,
    ranked by their summed attribution) or non-overlapping ``region x region`` squares of the last two
    dimensions (ranked by mean channel-summed attribution, chosen greedily among all window positions).
    ``order``: ``"morf"`` (most relevant first: largest attribution first) or ``"lerf"`` (least relevant
    first). Step t removes ``step`` more units; ``n_steps`` steps (default: until all are removed). Removed
    features take ``baseline``: a number or tensor
    broadcastable to the inputs (default 0.0), ``"uniform"`` (noise in
    ``valid_range``, default the batch's min and max, drawn once per input), or a callable
    ``(points, mask) -> values`` for a chunk of points ``(n, ...)`` and their bool mask of removed features.
    ``preset``: ``"ancona_fig3c"`` or ``"ig_pixel_ablation"`` (see :data:`PRESETS`); explicit arguments win.
    All steps of all inputs go through the model as one chunked forward job. Old spellings still work for
    one release with a DeprecationWarning: ``replacement`` (now ``baseline``), ``steps`` (now ``n_steps``),
    ``order="most_relevant_first"`` / ``"least_relevant_first"`` (now ``"morf"`` / ``"lerf"``).
    """
    baseline = _renamed(model_options, "replacement", "baseline", baseline)
    n_steps = _renamed(model_options, "steps", "n_steps", n_steps)
    if order in _OLD_ORDERS:
        warn_renamed("perturbation_curve", f"order={order!r}", repr(_OLD_ORDERS[order]))
        order = _OLD_ORDERS[order]
    settings = dict(_DEFAULTS)
    if preset is not None:
        settings.update(PRESETS[check_choice("preset", preset, tuple(PRESETS))])
    given = {"region": region, "step": step, "n_steps": n_steps, "baseline": baseline,
             "feature_groups": feature_groups}
    settings.update({k: v for k, v in given.items() if v is not _UNSET})
    check_choice("order", order, ORDERS)
    request = metric_request(model, inputs, target, batch_size, "perturbation_curve", model_options)
    x = request.inputs
    a = check_attributions(attributions, x)
    size = check_positive_int("region", settings["region"])
    per_step = check_positive_int("step", settings["step"])
    if size == 1:
        position, units = _feature_positions(a, settings["feature_groups"], order)
    else:
        position, units = _region_positions(a, size, order)
    count = settings["n_steps"]
    count = math.ceil(units / per_step) if count is None else check_positive_int("n_steps", count)
    fill = _baseline(settings["baseline"], request, valid_range, seed)

    def build(sample: Tensor, variant: Tensor) -> Tensor:
        removed = position[sample] < (variant * per_step).view(-1, *(1,) * (x.dim() - 1))
        points = x[sample]
        values = fill(points, removed) if callable(fill) else fill[sample]
        return torch.where(removed, values, points)

    with request.model_frozen():
        curve = request.forward(Points(x, count + 1, build))
    removed = (torch.arange(count + 1, device=x.device) * per_step).clamp(max=units)
    return PerturbationCurve(curve, removed, aopc(curve), aopc_curve(curve))


def _renamed(options: dict[str, Any], old: str, new: str, value: Any) -> Any:
    """``value`` of option ``new``, taken from the old name ``old`` in ``options`` (popped, with a warning)."""
    if old not in options:
        return value
    warn_renamed("perturbation_curve", f"option {old!r}", repr(new), stacklevel=4)
    given = options.pop(old)
    if value is not _UNSET:
        raise AttributionInputError(f"perturbation_curve: {new!r} is given twice, also under its old name {old!r}")
    return given


@register("aupc", higher_is_better=False, value="AUPC (Simpson area, Eq. 12)", seeded=True,
          curve_axis="perturbation step (regions)", curve_label="score / f(x)")
def aupc(
    model: Any,
    inputs: Tensor,
    attributions: Tensor,
    target: Any = None,
    *,
    k: int = 15,
    L: int = 30,
    P: int = 50,
    valid_range: Any = None,
    normalize: bool = True,
    seed: int | None = None,
    batch_size: int | None = None,
    **model_options: Any,
) -> AUPC:
    """Area under the perturbation curve (Goh et al. 2020, Sec. IV-C-1, Eqs. 11-12; lower is better).

    The top-``L`` non-overlapping ``k x k`` regions, ranked by mean absolute attribution (over the window
    and the channels), are perturbed in turn: at step ``l`` the current image ``x^(l-1)`` gets ``P`` copies
    with region ``r_l`` replaced by uniform noise in ``valid_range`` (default: the batch's min and max),
    ``y^(l)`` is their mean score divided by ``f(x)`` (``normalize``; pass probabilities, as the paper does,
    for the ratio to be meaningful), and the copy with the median score (the lower median when ``P`` is
    even) becomes ``x^(l)``. ``AUPC = simpson(y^(0..L))`` with ``y^(0) = 1``. Defaults k=15, L=30, P=50 are
    the paper's. The L steps are sequential; each step's ``B x P`` copies go through one chunked job.
    """
    request = metric_request(model, inputs, target, batch_size, "aupc", model_options)
    x = request.inputs
    a = check_attributions(attributions, x)
    k = check_positive_int("k", k)
    L = check_positive_int("L", L)
    P = check_positive_int("P", P)
    images = as_images(x)
    batch, channels, height, width = images.shape
    if k > min(height, width):
        raise AttributionInputError(f"k={k} is larger than the images ({height} x {width})")
    low, high = value_range(valid_range, x)
    low, high = (as_images(torch.broadcast_to(v, x.shape))[..., :k, :k] for v in (low, high))
    corners = top_regions(as_images(a).abs().mean(1), k, L, largest=True)
    generator = request.generator(seed)
    offsets = torch.arange(k, device=x.device)
    rows = torch.arange(batch, device=x.device)
    current = images.clone()
    scores = []
    with request.model_frozen():
        f_x = request.outputs()
        for step in range(L):
            ys, xs = corners[:, step, 0], corners[:, step, 1]
            valid = (ys >= 0)[:, None, None, None]
            ys, xs = ys.clamp(min=0)[:, None] + offsets, xs.clamp(min=0)[:, None] + offsets  # (B, k)
            uniform = torch.rand((batch, P, channels, k, k), generator=generator, dtype=x.dtype, device=x.device)
            noise = low[:, None] + (high - low)[:, None] * uniform

            step_job = partial(_noisy_region, current, ys, xs, noise, valid)
            outputs = request.forward(Points(x, P, lambda s, v, job=step_job: job(s, v).view(-1, *x.shape[1:])))
            scores.append(outputs.mean(1))
            chosen = outputs.median(1).indices
            current = step_job(rows, chosen)
    curve = torch.cat([f_x[:, None], torch.stack(scores, 1)], 1)
    if normalize:
        curve = curve / f_x[:, None]
    return AUPC(curve, simpson(curve), corners)


def top_regions(scores: Tensor, k: int, count: int, largest: bool = True) -> Tensor:
    """Top-left corners ``(B, count, 2)`` of ``count`` non-overlapping ``k x k`` windows of ``scores``
    (B, H, W), chosen greedily by their mean score (highest first, or lowest with ``largest=False``) among
    all window positions; ``-1`` once no window fits."""
    windows = F.avg_pool2d(scores[:, None], k, stride=1)[:, 0]
    windows = windows if largest else -windows
    batch, rows, cols = windows.shape
    ys = torch.arange(rows, device=scores.device).view(1, rows, 1)
    xs = torch.arange(cols, device=scores.device).view(1, 1, cols)
    free = torch.ones_like(windows, dtype=torch.bool)
    corners = []
    for _ in range(count):
        best = windows.masked_fill(~free, -torch.inf).flatten(1).max(1)
        found = torch.isfinite(best.values)
        y, x = best.indices // cols, best.indices % cols
        corners.append(torch.stack([torch.where(found, y, -1), torch.where(found, x, -1)], 1))
        overlap = ((ys - y.view(-1, 1, 1)).abs() < k) & ((xs - x.view(-1, 1, 1)).abs() < k)
        free &= ~(overlap & found.view(-1, 1, 1))
    return torch.stack(corners, 1)


def _noisy_region(
    images: Tensor, ys: Tensor, xs: Tensor, noise: Tensor, valid: Tensor, sample: Tensor, variant: Tensor
) -> Tensor:
    """Copies of ``images[sample]`` whose region (rows ``ys``, columns ``xs``) holds ``noise[sample, variant]``."""
    points = images[sample].clone()
    kept = _patch(points, ys[sample], xs[sample])
    _patch_set(points, ys[sample], xs[sample], torch.where(valid[sample], noise[sample, variant], kept))
    return points


def _patch(images: Tensor, ys: Tensor, xs: Tensor) -> Tensor:
    """The ``(n, C, k, k)`` patches at rows ``ys`` (n, k) and columns ``xs`` (n, k)."""
    n = torch.arange(images.shape[0], device=images.device).view(-1, 1, 1)
    return images[n, :, ys[:, :, None], xs[:, None, :]].permute(0, 3, 1, 2)


def _patch_set(images: Tensor, ys: Tensor, xs: Tensor, patch: Tensor) -> None:
    n = torch.arange(images.shape[0], device=images.device).view(-1, 1, 1)
    images[n, :, ys[:, :, None], xs[:, None, :]] = patch.permute(0, 2, 3, 1)


def _feature_positions(attributions: Tensor, groups: Any, order: str) -> tuple[Tensor, int]:
    """Removal position of every feature's group ``(B, ...)`` and the number of groups."""
    grouping = features.feature_groups(groups, attributions)
    relevance = grouping.sums(attributions)
    ranking = relevance.argsort(dim=1, descending=order == ORDERS[0], stable=True)
    position = ranking.argsort(1)
    return position[:, grouping.ids].view_as(attributions), grouping.count


def _region_positions(attributions: Tensor, size: int, order: str) -> tuple[Tensor, int]:
    """Removal position of every feature's region ``(B, ...)`` (huge where no region covers it)."""
    images = as_images(attributions)
    batch, _, height, width = images.shape
    if size > min(height, width):
        raise AttributionInputError(f"region={size} is larger than the images ({height} x {width})")
    count = (height // size) * (width // size)
    corners = top_regions(images.sum(1), size, count, largest=order == ORDERS[0])
    never = torch.iinfo(torch.long).max
    position = torch.full((batch, height, width), never, dtype=torch.long, device=attributions.device)
    ys = torch.arange(height, device=attributions.device).view(1, -1, 1)
    xs = torch.arange(width, device=attributions.device).view(1, 1, -1)
    for index in range(count):
        y, x = corners[:, index, 0].view(-1, 1, 1), corners[:, index, 1].view(-1, 1, 1)
        inside = (y >= 0) & (ys >= y) & (ys < y + size) & (xs >= x) & (xs < x + size)
        position = torch.where(inside, index, position)
    expanded = position[:, None].expand(images.shape).reshape(attributions.shape)
    return expanded, count


def _baseline(baseline: Any, request: Request, valid_range: Any, seed: int | None) -> Tensor | Callable:
    x = request.inputs
    if callable(baseline):
        return baseline
    if isinstance(baseline, str):
        check_choice("baseline", baseline, ("uniform",))
        low, high = value_range(valid_range, x)
        uniform = torch.rand(x.shape, generator=request.generator(seed), dtype=x.dtype, device=x.device)
        return low + (high - low) * uniform
    return broadcast_baseline(baseline, x)
