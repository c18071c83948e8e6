"""Sensitivity-n (Ancona et al., ICLR 2018, Sec. 4 and 4.1).

A method satisfies Sensitivity-n when, for every subset ``S`` of ``n`` features,
``sum_{i in S} R_i(x) = f(x) - f(x[x_S = baseline])``. Sec. 4.1 measures how well it holds: for each ``n``,
draw ``n_subsets`` (the paper: 100) subsets uniformly at random and take the Pearson correlation between
the two sides over those subsets, per input, for ``n`` from 1 to about 80% of the features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from taylorlens.engine import Points, broadcast_baseline
from taylorlens.engine.checks import AttributionInputError, check_positive_int
from taylorlens.metrics import features
from taylorlens.metrics.common import check_attributions, metric_request
from taylorlens.metrics.registry import register


@dataclass(frozen=True)
class SensitivityN:
    """``correlation`` (B, K): Pearson correlation per input and per ``n`` (K values in ``n``).

    ``attribution_sums`` and ``output_drops`` (B, K, S) are the two sides for every subset. A correlation
    is NaN when one side is constant over the subsets (e.g. all-zero attributions).
    """

    n: Tensor
    correlation: Tensor
    attribution_sums: Tensor
    output_drops: Tensor

    @property
    def value(self) -> Tensor:
        """The correlation averaged over ``n`` per input, ``(B,)``, ignoring NaNs."""
        return self.correlation.nanmean(-1)

    @property
    def curve(self) -> Tensor:
        """The correlation per input and ``n``, ``(B, K)``; its mean over inputs is the paper's Fig. 4."""
        return self.correlation

    @property
    def curve_x(self) -> Tensor:
        return self.n


def default_n_grid(features: int, points: int = 20, largest: float = 0.8) -> Tensor:
    """Log-spaced distinct subset sizes from 1 to ``largest`` of the features (Sec. 4.1: "from one to about
    80% of the total number of features")."""
    top = max(1, math.floor(largest * features))
    grid = torch.logspace(0, math.log10(top), points, dtype=torch.float64).round().long()
    return torch.unique(grid)


@register("sensitivity_n", higher_is_better=True, value="Pearson correlation averaged over n", seeded=True,
          curve_axis="n (features set to the baseline)", curve_label="Pearson correlation", log_x=True)
def sensitivity_n(
    model: Any,
    inputs: Tensor,
    attributions: Tensor,
    target: Any = None,
    *,
    n: Any = None,
    n_subsets: int = 100,
    baseline: Any = 0.0,
    feature_groups: Any = None,
    seed: int | None = None,
    batch_size: int | None = None,
    **model_options: Any,
) -> SensitivityN:
    """Sensitivity-n correlations (Ancona et al. 2018, Sec. 4.1).

    For every ``n`` in ``n`` (default :func:`default_n_grid`: log-spaced from 1 to 80% of the features) and
    every input, ``n_subsets`` random subsets of ``n`` features (or feature groups; see
    :func:`taylorlens.metrics.features.feature_groups`, e.g. ``"pixel"`` or ``"token"``) are removed by
    setting them to ``baseline``; returns the per-input Pearson correlation between
    ``sum_{i in S} R_i`` (group attributions are the sums over their features) and
    ``f(x) - f(x[x_S = baseline])``.

    Subset ``s`` of size ``n`` is the first ``n`` features of a random permutation ``pi_s`` of the input's
    features, one permutation per subset index serving every ``n``: each subset is uniform among the
    ``n``-subsets, and the estimates for different ``n`` share their randomness. All ``K x S`` removals of
    all inputs go through the model in chunked forward passes.
    """
    request = metric_request(model, inputs, target, batch_size, "sensitivity_n", model_options)
    x = request.inputs
    a = check_attributions(attributions, x)
    groups = features.feature_groups(feature_groups, x)
    sizes = default_n_grid(groups.count) if n is None else _check_sizes(n, groups.count)
    subsets = check_positive_int("n_subsets", n_subsets, minimum=2)
    fill = broadcast_baseline(baseline, x)
    k_count = sizes.shape[0]
    sizes = sizes.to(x.device)

    def ranks(generator: torch.Generator) -> Tensor:
        keys = torch.rand(subsets, groups.count, generator=generator, device=x.device)
        return keys.argsort(-1).argsort(-1)  # rank of every group in permutation s

    draws = features.PerSampleDraws(request.generator(seed), x.shape[0], ranks)
    group_attr = groups.sums(a)
    sums = torch.stack([_subset_sums(group_attr[b], draws(b), sizes) for b in range(x.shape[0])])

    def build(sample: Tensor, variant: Tensor) -> Tensor:
        rank = draws.rows(sample, variant % subsets)
        removed = groups.expand(rank < sizes[variant // subsets, None], tuple(x.shape[1:]))
        return torch.where(removed, fill[sample], x[sample])

    with request.model_frozen():
        f_x = request.outputs()
        removed_outputs = request.forward(Points(x, k_count * subsets, build))
    drops = (f_x[:, None] - removed_outputs).view(x.shape[0], k_count, subsets)
    return SensitivityN(sizes, pearson(sums, drops), sums, drops)


def _subset_sums(group_attr: Tensor, ranks: Tensor, sizes: Tensor) -> Tensor:
    """``(K, S)`` sums of the attributions of the first ``n_k`` groups of each permutation."""
    order = ranks.argsort(-1)
    cumulative = group_attr[order].cumsum(-1)  # (S, G)
    return cumulative[:, sizes - 1].T


def _check_sizes(n: Any, features: int) -> Tensor:
    sizes = torch.as_tensor([n] if isinstance(n, int) else list(n), dtype=torch.long)
    if sizes.dim() != 1 or sizes.numel() == 0 or bool(((sizes < 1) | (sizes > features)).any()):
        raise AttributionInputError(f"n must be an int or a sequence of ints between 1 and {features}, got {n!r}")
    return sizes


def pearson(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation along the last dimension (NaN where either side is constant)."""
    return correlation(Centred.of(a), Centred.of(b))


class Centred(NamedTuple):
    """Rows with their mean removed, their sums of squares, and which rows are constant: one side of a Pearson
    correlation, prepared once when it is compared with many others (:func:`correlation`)."""

    values: Tensor
    squares: Tensor
    flat: Tensor

    @classmethod
    def of(cls, values: Tensor) -> Centred:
        spread = values.amax(-1) - values.amin(-1)
        flat = spread <= 8 * torch.finfo(values.dtype).eps * values.abs().amax(-1)
        centred = values - values.mean(-1, keepdim=True)
        return cls(centred, centred.square().sum(-1), flat)


def correlation(a: Centred, b: Centred) -> Tensor:
    """Pearson correlation of two prepared sides (NaN where either side is constant)."""
    denominator = (a.squares * b.squares).sqrt().clamp(min=torch.finfo(a.values.dtype).tiny)
    return torch.where(a.flat | b.flat, torch.nan, (a.values * b.values).sum(-1) / denominator)
