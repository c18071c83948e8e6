"""ROAD: RemOve And Debias (Rong et al., ICML 2022, "A Consistent and Efficient Evaluation Strategy for
Attribution Methods"), the removal curve without retraining and with noisy linear imputation.

Removing pixels by a constant leaves a mask shape that tells the model *where* the removed pixels were,
so a removal curve partly measures that out-of-distribution artefact. ROAD (Sec. 4) imputes every removed
pixel as the weighted mean of its 8 neighbours (weight 1/6 for the 4 direct neighbours, 1/12 for the
diagonals, over the neighbours inside the image), solved jointly for all removed pixels of an image as one
sparse linear system, plus Gaussian noise of standard deviation ``noise`` on the imputed values. The curve
follows the explained output as the most relevant (MoRF) or the least relevant (LeRF) fraction of pixels is
removed; a good attribution drops fast under MoRF and slowly under LeRF (their gap, LeRF area minus MoRF
area, is positive). The imputation is the one of the authors' code (tleemann/road_evaluation) and of
Quantus's ``noisy_linear_imputation``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.linalg import solveh_banded
from scipy.sparse import csc_matrix
from scipy.sparse.linalg import splu
from torch import Tensor, nn

from taylorlens.engine import Points, broadcast_baseline
from taylorlens.engine.checks import AttributionInputError, check_choice, check_nonnegative
from taylorlens.metrics.common import as_images, check_attributions, metric_request
from taylorlens.metrics.registry import register

ORDERS = ("morf", "lerf")
IMPUTATIONS = ("linear", "constant")
READOUTS = ("output", "correct")
#: (row offset, column offset) -> weight of that neighbour in the imputation (Rong et al. 2022, Sec. 4.2).
NEIGHBOURS = {
    (1, 1): 1 / 12, (0, 1): 1 / 6, (-1, 1): 1 / 12, (1, -1): 1 / 12,
    (0, -1): 1 / 6, (-1, -1): 1 / 12, (1, 0): 1 / 6, (-1, 0): 1 / 6,
}
DEFAULT_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: Images up to this many pixels on their narrower side are imputed by banded Cholesky (band = that side + 1);
#: wider ones by SuperLU, whose fill-reducing ordering beats a band of a few hundred.
BANDED_UP_TO = 64
#: Images imputed in one banded solve: as many as keep band x unknowns under this many entries (64 MB).
BAND_ENTRIES = 2**23


@dataclass(frozen=True)
class ROAD:
    """``curve`` (B, K): explained output (or 1.0 / 0.0 for a correct / wrong prediction with
    ``readout="correct"``) after removing ``fractions[k]`` of the pixels in ``order``; ``area`` (B,): its
    trapezoid area over the fractions; ``removed`` (K,): pixels removed at each fraction."""

    fractions: Tensor
    removed: Tensor
    curve: Tensor
    area: Tensor
    order: str

    @property
    def value(self) -> Tensor:
        """The area per input, ``(B,)`` (MoRF: lower is better; LeRF: higher is better)."""
        return self.area

    @property
    def curve_x(self) -> Tensor:
        return self.fractions


@register("road", higher_is_better=False, value="area under the ROAD curve (MoRF lower, LeRF higher is better)",
          seeded=True, curve_axis="fraction of pixels removed", curve_label="explained output")
def road(
    model: Any,
    inputs: Tensor,
    attributions: Tensor,
    target: Any = None,
    *,
    fractions: Any = DEFAULT_FRACTIONS,
    order: str = "morf",
    imputation: str = "linear",
    noise: float = 0.01,
    baseline: Any = 0.0,
    readout: str = "output",
    seed: int | None = None,
    batch_size: int | None = None,
    **model_options: Any,
) -> ROAD:
    """ROAD curve and its area per input (Rong et al. 2022, Sec. 4; see the module docstring).

    Pixels (all channels of a position of ``(C, H, W)`` samples; ``(H, W)`` samples as they are) are ranked
    by their channel-summed signed attribution, largest first for ``order="morf"``, smallest first for
    ``"lerf"`` (ties by position); at fraction ``p`` the first ``floor(p * H * W)`` are removed.
    ``imputation``: ``"linear"`` (noisy linear imputation, noise ``N(0, noise^2)`` on imputed values) or
    ``"constant"`` (removed pixels take ``baseline``, no noise). ``readout``: ``"output"`` (the explained
    output; pass probabilities for Rong et al.'s setting) or ``"correct"`` (1.0 where the model's argmax is
    the target: the accuracy curve of the paper and of Quantus's ``ROAD``). The removed pixels of all inputs and
    fractions form block-diagonal systems solved a group of images at a time (:func:`noisy_linear_imputation`);
    all ``B x K`` imputed images go through the model as one chunked forward job.
    """
    check_choice("order", order, ORDERS)
    check_choice("imputation", imputation, IMPUTATIONS)
    check_choice("readout", readout, READOUTS)
    request = metric_request(model, inputs, target, batch_size, "road", model_options,
                             readout=_correct if readout == "correct" else None)
    x = request.inputs
    a = check_attributions(attributions, x)
    grid = _check_fractions(fractions, x)
    images = as_images(x)
    height, width = images.shape[-2:]
    counts = torch.tensor([math.floor(f * height * width + 1e-9) for f in grid.tolist()], device=x.device)
    relevance = as_images(a).sum(1).flatten(1)
    ranking = relevance.argsort(dim=1, descending=order == "morf", stable=True).argsort(1)
    removed = (ranking[:, None, :] < counts[None, :, None]).view(x.shape[0], len(counts), height, width)
    if imputation == "linear":
        imputed = noisy_linear_imputation(images, removed, check_nonnegative("noise", noise), request.generator(seed))
    else:
        fill = as_images(broadcast_baseline(baseline, x))
        imputed = torch.where(removed[:, :, None], fill[:, None], images[:, None])
    imputed = imputed.view(x.shape[0], len(counts), *x.shape[1:])
    if readout == "correct" and request.targets is None:
        raise AttributionInputError("readout='correct' needs targets: pass target= (class indices)")
    with request.model_frozen():
        curve = request.forward(Points(x, len(counts), lambda sample, variant: imputed[sample, variant]))
    area = torch.trapezoid(curve, grid.to(curve.dtype), dim=1)
    return ROAD(grid, counts, curve, area, order)


def noisy_linear_imputation(
    images: Tensor, removed: Tensor, noise: float = 0.0, generator: torch.Generator | None = None
) -> Tensor:
    """Impute the ``removed`` pixels (bool ``(B, K, H, W)``: K masks per image) of ``images`` ``(B, C, H, W)``.

    Every removed pixel satisfies ``sum_n w_n (v_n - v) = 0`` over its neighbours ``n`` inside the image
    (weights :data:`NEIGHBOURS`), with known neighbours on the right-hand side: one sparse system over the
    removed pixels of every mask (the masks as diagonal blocks, the C channels as right-hand sides). Its
    negative is symmetric positive definite (each group of connected removed pixels touches a known one, so
    the rows are irreducibly diagonally dominant), so it is solved without pivoting: by LAPACK's banded
    Cholesky (``solveh_banded``; the band is the narrower image side + 1, the unknowns numbered row by row
    along the wider side) for images up to :data:`BANDED_UP_TO` pixels on their narrower side, all images of a
    group in one call, and by SuperLU with a symmetric ordering for wider images, one image at a time.
    Returns ``(B, K, C, H, W)`` images with ``noise * N(0, 1)`` added to the imputed values.
    """
    batch, masks, height, width = removed.shape
    if bool(removed.flatten(2).all(2).any()):
        raise AttributionInputError("removed must keep at least one pixel of every mask: with none known, the "
                                    "imputation has no unique solution")
    out = images[:, None].expand(batch, masks, *images.shape[1:]).clone()
    wide = width > height
    values = (images.transpose(-1, -2) if wide else images).detach().cpu().double()
    grid = (removed.transpose(-1, -2) if wide else removed).cpu()
    banded = min(height, width) <= BANDED_UP_TO
    per_group = max(1, BAND_ENTRIES // ((min(height, width) + 2) * grid[0].numel())) if banded else 1
    for start in range(0, batch, per_group):
        part = slice(start, start + per_group)
        system = _ImputationSystem.build(values[part], grid[part])
        solution = torch.from_numpy(system.solve_banded() if banded else system.solve_sparse())
        imputed = solution.to(dtype=images.dtype, device=images.device)  # (unknowns, C)
        if noise > 0:
            imputed = imputed + noise * torch.randn(imputed.shape, generator=generator, dtype=imputed.dtype,
                                                    device=imputed.device)
        view = out[part].permute(0, 1, 4, 3, 2) if wide else out[part].permute(0, 1, 3, 4, 2)
        view[grid[part].to(images.device)] = imputed
    return out


@dataclass(frozen=True)
class _ImputationSystem:
    """The negated imputation system of G images' K masks over their n removed pixels, numbered in the
    row-major order of the ``(G, K, H, W)`` masks: ``diagonal`` (n,), the weight of each neighbour inside
    the image; ``pairs``, for each neighbour offset that follows in that order, the weight and the
    numbers ``(i, j)``, ``i < j``, of removed pixels that are such neighbours (``-weight`` at ``(i, j)`` and
    ``(j, i)``); ``rhs`` (n, C), the weighted sum of known neighbours."""

    diagonal: np.ndarray
    pairs: list[tuple[float, np.ndarray, np.ndarray]]
    rhs: np.ndarray

    @classmethod
    def build(cls, values: Tensor, removed: Tensor) -> _ImputationSystem:
        """From ``values`` ``(G, C, H, W)`` (float64) and ``removed`` ``(G, K, H, W)``, without a loop over
        pixels: the right-hand side and the diagonal are 3 x 3 convolutions of the known pixels and of ones."""
        groups, masks, height, width = removed.shape
        kernel = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
        for (dy, dx), weight in NEIGHBOURS.items():
            kernel[0, 0, 1 + dy, 1 + dx] = weight
        known = values[:, None] * (~removed)[:, :, None]  # (G, K, C, H, W)
        sums = F.conv2d(known.reshape(-1, 1, height, width), kernel, padding=1).view(known.shape)
        rhs = sums.permute(0, 1, 3, 4, 2)[removed]
        inside = F.conv2d(torch.ones(1, 1, height, width, dtype=torch.float64), kernel, padding=1)[0, 0]
        diagonal = inside.expand(removed.shape)[removed]
        ids = torch.full(removed.shape, -1, dtype=torch.long)
        ids[removed] = torch.arange(int(removed.sum()))
        pairs = []
        for (dy, dx), weight in NEIGHBOURS.items():
            if (dy, dx) < (0, 0):
                continue
            own = ids[:, :, : height - dy, max(0, -dx) : width - max(0, dx)]
            neighbour = ids[:, :, dy:, max(0, dx) : width + min(0, dx)]
            both = (own >= 0) & (neighbour >= 0)
            pairs.append((weight, own[both].numpy(), neighbour[both].numpy()))
        return cls(diagonal.numpy(), pairs, rhs.numpy())

    def solve_banded(self) -> np.ndarray:
        band = max((int((j - i).max()) for _, i, j in self.pairs if i.size), default=0)
        lower = np.zeros((band + 1, self.diagonal.size))
        lower[0] = self.diagonal
        for weight, i, j in self.pairs:
            lower[j - i, i] = -weight
        return solveh_banded(lower, self.rhs, lower=True, overwrite_ab=True, check_finite=False)

    def solve_sparse(self) -> np.ndarray:
        size = self.diagonal.size
        rows = np.concatenate([i for _, i, _ in self.pairs] + [j for _, _, j in self.pairs] + [np.arange(size)])
        cols = np.concatenate([j for _, _, j in self.pairs] + [i for _, i, _ in self.pairs] + [np.arange(size)])
        data = np.concatenate([np.full(i.size, -weight) for weight, i, _ in self.pairs] * 2 + [self.diagonal])
        system = csc_matrix((data, (rows, cols)), (size, size))
        factors = splu(system, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
        return factors.solve(self.rhs)


def _check_fractions(fractions: Any, x: Tensor) -> Tensor:
    grid = torch.as_tensor(list(fractions) if not isinstance(fractions, Tensor) else fractions, dtype=torch.float64)
    if grid.dim() != 1 or grid.numel() == 0 or bool(((grid <= 0) | (grid >= 1)).any()):
        raise AttributionInputError(f"fractions must be a non-empty sequence of numbers in (0, 1), got {fractions!r}")
    return grid.to(x.device)


def _correct(outputs: Tensor) -> Tensor:
    """The one-hot of the argmax of ``(B, C)`` outputs: the target's entry is 1.0 exactly when the
    prediction is the target (``readout="correct"``)."""
    if outputs.dim() != 2:
        raise AttributionInputError(f"readout='correct' needs (B, C) outputs, got shape {tuple(outputs.shape)}")
    return nn.functional.one_hot(outputs.argmax(1), outputs.shape[1]).to(outputs.dtype)
