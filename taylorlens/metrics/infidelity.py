"""Infidelity (Yeh et al., NeurIPS 2019, Def. 2.1), as the Taylor paper (Deng et al. 2021, Fig. 2) uses it.

``INFD(a, f, x) = E_I[(I^T a - (f(x) - f(x - I)))^2]`` for random perturbations ``I``:

* ``"square"`` (square removal, the Taylor paper's choice): a random ``s x s`` square of the last two
  dimensions (all channels) is set to ``baseline``, i.e. ``I = (x - baseline) * 1_square``. As in Yeh et
  al.'s released code (``binary_I``), the attribution term is the sum of the attributions over the square,
  ``1_square^T a``: attributions are read in output units (``x * gradient``-like maps, IG, occlusion), so a
  perfect Sensitivity-n explanation scores 0.
* ``"gaussian"``: ``I ~ N(0, sigma^2)`` on every feature and the term is ``I^T a`` (attributions read as
  gradient-like sensitivities, as in Yeh et al.'s Gaussian setting).

Normalisation (``normalize=True``, the default, as Yeh et al.'s code and Captum's ``normalize=True``): the
attributions are first rescaled by the optimal ``beta = E[t d] / E[t^2]`` (``t = I^T a``,
``d = f(x) - f(x - I)``), so the metric does not depend on the attributions' scale;
``infidelity = E[(beta t - d)^2]``. With ``normalize=False``, ``beta = 1``. Expectations are Monte-Carlo
means over ``n_perturbations`` draws per input; all draws of all inputs go through one chunked job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from taylorlens.engine import Points, broadcast_baseline
from taylorlens.engine.checks import AttributionInputError, check_choice, check_nonnegative, check_positive_int
from taylorlens.metrics import features
from taylorlens.metrics.common import as_images, check_attributions, metric_request
from taylorlens.metrics.registry import register


@dataclass(frozen=True)
class Infidelity:
    """``infidelity`` (B,); ``beta`` (B,) the scale applied to the attributions; ``attribution_terms`` and
    ``output_drops`` (B, n_perturbations): ``t = I^T a`` and ``d = f(x) - f(x - I)`` for every draw."""

    infidelity: Tensor
    beta: Tensor
    attribution_terms: Tensor
    output_drops: Tensor

    @property
    def value(self) -> Tensor:
        """Infidelity per input, ``(B,)``."""
        return self.infidelity


@register("infidelity", higher_is_better=False, value="infidelity (Yeh et al. Def. 2.1)", seeded=True)
def infidelity(
    model: Any,
    inputs: Tensor,
    attributions: Tensor,
    target: Any = None,
    *,
    perturbation: str = "square",
    n_perturbations: int = 200,
    square_size: Any = None,
    sigma: float = 0.1,
    baseline: Any = 0.0,
    normalize: bool = True,
    seed: int | None = None,
    batch_size: int | None = None,
    **model_options: Any,
) -> Infidelity:
    """Infidelity per input (Yeh et al. 2019; see the module docstring for the conventions).

    ``square_size``: an int, or ``(smallest, largest)`` sides drawn uniformly (default ``(1, ceil(min(H,
    W) / 3))``, i.e. 1..10 on 28 x 28 images); positions are uniform among those that fit. ``sigma``: the
    Gaussian perturbation's standard deviation (0.1, in input units).
    """
    check_choice("perturbation", perturbation, ("square", "gaussian"))
    request = metric_request(model, inputs, target, batch_size, "infidelity", model_options)
    x = request.inputs
    a = check_attributions(attributions, x)
    count = check_positive_int("n_perturbations", n_perturbations)
    generator = request.generator(seed)
    if perturbation == "square":
        terms, build = _squares(x, a, count, square_size, broadcast_baseline(baseline, x), generator)
    else:
        terms, build = _gaussian(x, a, count, check_nonnegative("sigma", sigma), generator)
    with request.model_frozen():
        f_x = request.outputs()
        drops = f_x[:, None] - request.forward(Points(x, count, build))
    if normalize:
        beta = (terms * drops).mean(1) / terms.square().mean(1).clamp(min=torch.finfo(x.dtype).tiny)
    else:
        beta = torch.ones_like(f_x)
    return Infidelity((beta[:, None] * terms - drops).square().mean(1), beta, terms, drops)


def _squares(x: Tensor, a: Tensor, count: int, square_size: Any, fill: Tensor, generator: torch.Generator):
    images = as_images(x)
    height, width = images.shape[-2:]
    smallest, largest = _sizes(square_size, min(height, width))
    batch = x.shape[0]
    sides = torch.randint(smallest, largest + 1, (batch, count), generator=generator, device=x.device)
    top = (torch.rand((batch, count), generator=generator, device=x.device) * (height - sides + 1)).long()
    left = (torch.rand((batch, count), generator=generator, device=x.device) * (width - sides + 1)).long()
    # sums of the attributions over every square from a summed-area table of the channel-summed map
    table = torch.nn.functional.pad(as_images(a).sum(1).cumsum(1).cumsum(2), (1, 0, 1, 0))
    rows = torch.arange(batch, device=x.device)[:, None]
    bottom, right = top + sides, left + sides
    terms = table[rows, bottom, right] - table[rows, top, right] - table[rows, bottom, left] + table[rows, top, left]
    ys = torch.arange(height, device=x.device).view(1, -1, 1)
    xs = torch.arange(width, device=x.device).view(1, 1, -1)

    def build(sample: Tensor, variant: Tensor) -> Tensor:
        t, lft = top[sample, variant].view(-1, 1, 1), left[sample, variant].view(-1, 1, 1)
        side = sides[sample, variant].view(-1, 1, 1)
        inside = (ys >= t) & (ys < t + side) & (xs >= lft) & (xs < lft + side)
        points = as_images(x[sample])
        removed = torch.where(inside[:, None], as_images(fill[sample]), points)
        return removed.view(-1, *x.shape[1:])

    return terms, build


def _sizes(square_size: Any, side: int) -> tuple[int, int]:
    if square_size is None:
        return 1, max(1, math.ceil(side / 3))
    sizes = (square_size, square_size) if isinstance(square_size, int) else tuple(square_size)
    if len(sizes) != 2 or not all(isinstance(s, int) and 1 <= s <= side for s in sizes) or sizes[0] > sizes[1]:
        raise AttributionInputError(
            f"square_size must be an int or (smallest, largest) between 1 and {side}, got {square_size!r}"
        )
    return sizes


def _gaussian(x: Tensor, a: Tensor, count: int, sigma: float, generator: torch.Generator):
    def noise(sample_generator: torch.Generator) -> Tensor:
        shape = (count, *x.shape[1:])
        return sigma * torch.randn(shape, generator=sample_generator, dtype=x.dtype, device=x.device)

    draws = features.PerSampleDraws(generator, x.shape[0], noise)
    terms = torch.stack([draws(b).flatten(1) @ a[b].flatten() for b in range(x.shape[0])])

    def build(sample: Tensor, variant: Tensor) -> Tensor:
        return x[sample] - draws.rows(sample, variant)

    return terms, build
