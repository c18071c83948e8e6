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
from scipy.linalg.lapack import dpbsv
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
#: Images up to this many pixels on their narrower side are imputed by banded Cholesky (band at most that side
#: + 1, at most 64: LAPACK's unblocked path; above 64 it switches to blocked code whose multithreaded OpenBLAS
#: calls took 1.8 s instead of 0.04 s for 12 masks of 64x64 on a shared 2-core machine); wider ones by SuperLU,
#: whose fill-reducing ordering beats a band of a few hundred.
BANDED_UP_TO = 63
#: Masks imputed in one banded solve: as many consecutive ones as keep (band + 1) x unknowns under this many
#: entries (2 MB, which stays in cache between assembly and solve; measured fastest at 2^17-2^19).
BAND_ENTRIES = 2**18
#: Masks assembled together: as many as keep their padded pixels under this many (at least one mask): 8 MB of
#: float64 per channel, and pixel numbers well inside int32.
CELLS = 2**20


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
    fractions form block-diagonal systems solved a run of masks of similar size at a time
    (:func:`noisy_linear_imputation`); all ``B x K`` imputed images go through the model as one chunked
    forward job.
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
    ranked = relevance.argsort(dim=1, descending=order == "morf", stable=True)
    positions = torch.arange(ranked.shape[1], device=x.device).expand_as(ranked)
    ranking = torch.empty_like(ranked).scatter_(1, ranked, positions)  # the rank of each pixel
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
    (weights :data:`NEIGHBOURS`; Rong et al. 2022, Sec. 4.2), with known neighbours on the right-hand side:
    one sparse system over the removed pixels of every mask (the masks as diagonal blocks, the C channels as
    right-hand sides). Its negative is symmetric positive definite (each group of connected removed pixels
    touches a known one, so the rows are irreducibly diagonally dominant), so it is solved without pivoting.
    The unknowns are numbered row by row along the wider side, the masks sorted by their number of removed
    pixels and assembled :data:`CELLS` pixels at a time; for images up to :data:`BANDED_UP_TO` pixels on their
    narrower side, runs of consecutive masks (up to :data:`BAND_ENTRIES` band entries) go to LAPACK's banded
    Cholesky (``dpbsv``) with the band of that run (the largest distance in that numbering between two removed
    neighbours: at most the narrower side + 1, and smaller the fewer pixels a mask removes); wider images go
    to SuperLU with a symmetric ordering, one mask at a time. Returns ``(B, K, C, H, W)``
    images with ``noise * N(0, 1)`` added to the imputed values (drawn in that numbering).
    """
    batch, masks, height, width = removed.shape
    wide = width > height
    rows = (images.transpose(-1, -2) if wide else images).detach()  # (B, C, H', W'), rows along the wider side
    grid = (removed.transpose(-1, -2) if wide else removed).reshape(batch * masks, *rows.shape[-2:]).cpu().numpy()
    sizes = np.count_nonzero(grid.reshape(len(grid), -1), axis=1)
    if bool((sizes == height * width).any()):
        raise AttributionInputError("removed must keep at least one pixel of every mask: with none known, the "
                                    "imputation has no unique solution")
    order = np.argsort(sizes, kind="stable")
    values = rows.cpu().double().numpy()
    banded = min(height, width) <= BANDED_UP_TO
    per_build = max(1, CELLS // ((height + 1) * (width + 1)))
    solutions, cells = [], []
    for first in range(0, len(order), per_build):
        part = order[first : first + per_build]
        system = _ImputationSystem.build(values[part // masks], grid[part])
        solutions.append(system.solve_banded() if banded else system.solve_sparse())
        cells.append(system.cells + first * height * width)
    imputed = torch.from_numpy(np.concatenate(solutions)).to(dtype=images.dtype, device=images.device)
    if noise > 0:
        imputed = imputed + noise * torch.randn(imputed.shape, generator=generator, dtype=imputed.dtype,
                                                device=imputed.device)
    image_of = torch.from_numpy(order // masks).to(images.device)
    out = rows.permute(0, 2, 3, 1)[image_of].contiguous()  # (masks in that order, H', W', C)
    out.view(-1, out.shape[-1])[torch.from_numpy(np.concatenate(cells)).to(images.device)] = imputed
    out = out[torch.from_numpy(np.argsort(order)).to(images.device)].view(batch, masks, *out.shape[1:])
    return out.permute(0, 1, 4, 3, 2).contiguous() if wide else out.permute(0, 1, 4, 2, 3).contiguous()


@dataclass(frozen=True)
class _ImputationSystem:
    """The negated imputation system of M masks over their n removed pixels (the unknowns), numbered in the
    row-major order of the ``(M, H, W)`` masks: ``cells`` (n,), the index of each unknown in those masks
    flattened; ``starts`` (M + 1,), the number of the first unknown of each mask; ``diagonal`` (n,), the summed
    weight of each unknown's neighbours inside the image; ``pairs``, for each neighbour offset that follows in
    that order, the weight, the numbers ``i`` (increasing) of the removed pixels whose neighbour at that offset
    is removed too, and ``gap``, the distance ``j - i > 0`` to that neighbour's number (``-weight`` at
    ``(i, j)`` and ``(j, i)``); ``rhs`` (n, C), the weighted sum of known neighbours."""

    cells: np.ndarray
    starts: np.ndarray
    diagonal: np.ndarray
    pairs: list[tuple[float, np.ndarray, np.ndarray]]
    rhs: np.ndarray

    @classmethod
    def build(cls, values: np.ndarray, removed: np.ndarray) -> _ImputationSystem:
        """From ``values`` ``(M, C, H, W)`` (float64, the image of each mask) and ``removed`` ``(M, H, W)``,
        without a loop over pixels: the masks are laid out flat with a zero cell after each row and a zero row
        after each mask, so that a neighbour is a fixed offset and the neighbours outside the image are zeros."""
        masks, height, width = removed.shape
        row = width + 1
        margin = row + 1  # zero cells before the first mask: the neighbours above its first row
        flat = np.zeros(2 * margin + masks * (height + 1) * row, dtype=bool)
        _pixels(flat, margin, masks, height, width)[:] = removed
        padded = np.flatnonzero(flat)
        known = np.zeros((values.shape[1], flat.size))
        _pixels(known, margin, masks, height, width)[:] = values.transpose(1, 0, 2, 3)
        known[:, padded] = 0.0
        # The weights are (1, 2, 1) x (1, 2, 1) / 12 without the centre, which is zero at the unknowns.
        across = 2 * known[:, 1:-1] + known[:, :-2] + known[:, 2:]  # across[:, q - 1]: cells q - 1, q, q + 1
        rhs = (2 * across[:, row:-row] + across[:, : -2 * row] + across[:, 2 * row :])[:, padded - row - 1] / 12
        cells = np.flatnonzero(removed)
        diagonal = _inside(height, width).ravel()[cells % (height * width)]
        number = np.cumsum(flat, dtype=np.int32) - 1
        pairs = []
        for (dy, dx), weight in NEIGHBOURS.items():
            if (dy, dx) > (0, 0):
                offset = dy * row + dx
                both = np.flatnonzero(flat[:-offset] & flat[offset:])
                own = number[both]
                pairs.append((weight, own, number[both + offset] - own))
        sizes = np.count_nonzero(removed.reshape(masks, -1), axis=1)
        return cls(cells, np.concatenate([[0], np.cumsum(sizes)]), diagonal, pairs, rhs.T)

    def block(self, lo: int, hi: int) -> list[tuple[float, np.ndarray, np.ndarray]]:
        """The pairs ``(weight, i, gap)`` among unknowns ``lo .. hi - 1`` (whole masks), ``i`` counted from ``lo``."""
        out = []
        for weight, i, gap in self.pairs:
            first, last = np.searchsorted(i, np.array((lo, hi), dtype=i.dtype))
            out.append((weight, i[first:last] - lo, gap[first:last]))
        return out

    def runs(self) -> list[tuple[int, int, int]]:
        """Runs of consecutive masks ``(lo, hi, band)`` for :meth:`solve_banded`: unknowns ``lo .. hi - 1``,
        as many masks as keep unknowns x (band + 1) under :data:`BAND_ENTRIES` (at least one), where the band
        of a run is the largest gap of its pairs."""
        bands = np.zeros(self.starts.size - 1, dtype=np.int64)
        for _, i, gap in self.pairs:
            first = np.searchsorted(i, self.starts.astype(i.dtype))  # where each mask's pairs begin
            some = first[1:] > first[:-1]
            bands[some] = np.maximum(bands[some], np.maximum.reduceat(gap, first[:-1][some]))
        runs, lo, band = [], 0, 0
        for start, stop, own in zip(self.starts[:-1].tolist(), self.starts[1:].tolist(), bands.tolist(), strict=True):
            if start > lo and (stop - lo) * (max(band, own) + 1) > BAND_ENTRIES:
                runs.append((lo, start, band))
                lo, band = start, 0
            band = max(band, own)
        return [run for run in [*runs, (lo, int(self.starts[-1]), band)] if run[1] > run[0]]

    def solve_banded(self) -> np.ndarray:
        solution = np.empty_like(self.rhs)
        runs = self.runs()
        # One buffer for every run: a fresh array per run costs its page faults again (measured 13 ms of 90).
        buffer = np.empty(max(((hi - lo) * (band + 1) for lo, hi, band in runs), default=0))
        for lo, hi, band in runs:
            lower = buffer[: (hi - lo) * (band + 1)].reshape(hi - lo, band + 1)  # LAPACK's column-major band storage
            lower[:, 0] = self.diagonal[lo:hi]
            lower[:, 1:] = 0.0
            entries = lower.reshape(-1)
            for weight, i, gap in self.block(lo, hi):
                entries[i * (band + 1) + gap] = -weight
            _, solution[lo:hi], info = dpbsv(lower.T, self.rhs[lo:hi], lower=1, overwrite_ab=1)
            if info != 0:  # cannot happen for a known pixel in every mask (the docstring's argument)
                raise np.linalg.LinAlgError(f"imputation system not positive definite (LAPACK dpbsv info={info})")
        return solution

    def solve_sparse(self) -> np.ndarray:
        solution = np.empty_like(self.rhs)
        for lo, hi in zip(self.starts[:-1].tolist(), self.starts[1:].tolist(), strict=True):
            if hi == lo:
                continue
            pairs, size = self.block(lo, hi), hi - lo
            rows = np.concatenate([i for _, i, _ in pairs] + [i + gap for _, i, gap in pairs] + [np.arange(size)])
            cols = np.concatenate([i + gap for _, i, gap in pairs] + [i for _, i, _ in pairs] + [np.arange(size)])
            data = np.concatenate([np.full(i.size, -weight) for weight, i, _ in pairs] * 2 + [self.diagonal[lo:hi]])
            system = csc_matrix((data, (rows, cols)), (size, size))
            factors = splu(system, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                           options={"SymmetricMode": True})
            solution[lo:hi] = factors.solve(self.rhs[lo:hi])
        return solution


def _pixels(flat: np.ndarray, margin: int, masks: int, height: int, width: int) -> np.ndarray:
    """The ``(..., M, H, W)`` pixels of the flat layout of :meth:`_ImputationSystem.build` (a view)."""
    body = flat[..., margin : margin + masks * (height + 1) * (width + 1)]
    return body.reshape(*flat.shape[:-1], masks, height + 1, width + 1)[..., :height, :width]


def _inside(height: int, width: int) -> np.ndarray:
    """``(H, W)``: the summed weight of each pixel's neighbours inside the image (the system's diagonal)."""
    ones = np.pad(np.ones((height, width)), 1)
    return sum(weight * ones[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]
               for (dy, dx), weight in NEIGHBOURS.items())


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
