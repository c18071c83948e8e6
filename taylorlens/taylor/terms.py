"""Taylor terms of the output change ``f(x~) - f(x)`` (Deng et al., AAAI 2021, Sec. "A General Taylor
Attribution Framework": first-order and second-order Taylor attribution, Eq. for ``g_1`` and ``g_2``).

Sign convention (the paper's): the expansion point is the input ``x``, the baseline is ``x~`` and
``Delta = x~ - x``, so

    f(x~) - f(x) = g_K(x, Delta) + epsilon(x~, K),
    g_2(x, Delta) = f_x^T Delta + 1/2 Delta^T H_x^d Delta + 1/2 Delta^T H_x^t Delta
                  =      T^alpha +            T^beta_d  +            T^beta_t.

Per feature ``i``: ``T^alpha_i = f_xi Delta_i``, ``T^beta_d_i = 1/2 f_xixi Delta_i^2`` and, with the
interactive terms ``T^beta_t_{i,j} = f_xixj Delta_i Delta_j`` split equally between ``i`` and ``j``
(``w = 1/2``, the assignment of Integrated Gradients, Theorem 5), ``a^beta_t_i = 1/2 sum_{j != i}
f_xixj Delta_i Delta_j``.

Attribution *methods* explain ``f(x) - f(x~)``, the opposite sign: the ``taylor`` method and
:mod:`taylorlens.taylor.reformulate` return ``-(assigned terms)`` so that they compare directly with
``integrated_gradients``, ``occlusion``, ...

Cost: the equal-split attribution ``a_i = Delta_i (f_xi + 1/2 (H_x Delta)_i)`` needs the gradient and one
Hessian-vector product per sample (the diagonal cancels). Separating independent from interactive terms
needs ``diag(H_x)``: exact (one product per feature) up to ``max_exact_features`` features, a Hutchinson
estimate with ``n_probes`` probes above.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from taylorlens.engine import Points, Request, inputs_points
from taylorlens.engine.checks import check_choice, check_positive_int

#: Inputs with at most this many features get the exact Hessian diagonal by default.
MAX_EXACT_FEATURES = 1024


@dataclass(frozen=True)
class TaylorTerms:
    """The Taylor terms of ``f(x~) - f(x)`` per sample and feature (paper's signs, ``Delta = x~ - x``).

    Per feature, shaped like the inputs ``(B, ...)``: ``delta``, ``gradient`` (``f_x``), ``first_order``
    (``T^alpha``), ``hessian_diagonal`` (``f_xixi``), ``second_independent`` (``T^beta_d``),
    ``second_interactive`` (``a^beta_t``, equal split) and ``attribution`` (their sum, ``a_i``). The
    second-order fields are None for ``order=1``. ``interactions`` (on request, small inputs only) is
    ``(B, n, n)`` over the flattened features: ``T^beta_t_{i,j} = f_xixj Delta_i Delta_j`` for ``i != j``,
    zero on the diagonal. Per sample ``(B,)``: ``expansion`` (``g_K``), ``output_change``
    (``f(x~) - f(x)``), ``error`` (``epsilon = output_change - expansion``) and ``relative_error``
    (``|epsilon| / |f(x~) - f(x)|``, the normalised error of the paper's Table 3 discussion; 0 when both
    are 0). ``diagonal``: "exact", "hutchinson" or None (``order=1``, ``diagonal="none"``).
    """

    order: int
    delta: Tensor
    gradient: Tensor
    first_order: Tensor
    hessian_diagonal: Tensor | None
    second_independent: Tensor | None
    second_interactive: Tensor | None
    attribution: Tensor
    expansion: Tensor
    output_change: Tensor
    error: Tensor
    relative_error: Tensor
    diagonal: str | None = None
    interactions: Tensor | None = None

    def totals(self) -> dict[str, Tensor]:
        """Per-sample totals ``(B,)`` of each kind of term: ``T^alpha``, ``T^beta_d``, ``T^beta_t``."""
        out = {"first_order": self.first_order.flatten(1).sum(1)}
        if self.order == 2:
            out["second_independent"] = self.second_independent.flatten(1).sum(1)
            out["second_interactive"] = self.second_interactive.flatten(1).sum(1)
        return out


def terms(
    model: Callable,
    inputs: Tensor,
    target: Any = None,
    baseline: Any = 0.0,
    order: int = 2,
    *,
    diagonal: str = "auto",
    n_probes: int = 64,
    seed: int | None = None,
    interactions: bool = False,
    max_exact_features: int = MAX_EXACT_FEATURES,
    batch_size: int | None = None,
    **model_options: Any,
) -> TaylorTerms:
    """The K-order Taylor terms (K = ``order``, 1 or 2) of ``f(x~) - f(x)`` expanded at the inputs.

    Deng et al. (AAAI 2021), Sec. "First-order Taylor Attribution" and "Second-order Taylor Attribution".
    ``baseline`` is ``x~`` (a number or a tensor broadcastable to the inputs; default 0.0); ``Delta = x~ - x``.
    ``diagonal``: "auto" (exact up to ``max_exact_features`` features, else Hutchinson), "exact",
    "hutchinson" (``n_probes`` Rademacher probes per sample, ``seed``) or "none" (no diagonal: the split
    fields stay None, the attribution and the error still need only one Hessian-vector product).
    ``interactions=True`` also returns the pairwise interaction matrix (exact Hessian, at most
    ``max_exact_features`` features). ``model_options`` say how the model is called, as for every method
    (``layer=``, ``forward_kwargs=``, ``output=``, ...); the terms then live in the explained layer's space.
    """
    order = check_choice("order", order, (1, 2))
    check_choice("diagonal", diagonal, ("auto", "exact", "hutchinson", "none"))
    request = Request.build(model, inputs, target, batch_size, caller="taylor.terms", **model_options)
    x = request.inputs
    with request.model_frozen():
        delta = request.broadcast(baseline) - x
        values = request.forward(Points(x, 2, lambda s, v: x[s] + (v == 1).view(-1, *(1,) * (x.dim() - 1)) * delta[s]))
        output_change = values[:, 1] - values[:, 0]
        matrix = diag = independent = interactive = None
        if order == 1:
            grads, _ = request.gradients(inputs_points(x))
            gradient = grads[:, 0]
            method = None
        else:
            _, gradient, h_delta = request.gradient_and_hvp(delta)
            method = _diagonal_method(diagonal, x[0].numel(), max_exact_features, interactions)
            if interactions:
                matrix = request.hessian_matrix(max_exact_features)
                diag = torch.diagonal(matrix, dim1=1, dim2=2).reshape(x.shape)
            elif method is not None:
                probes = None if method == "exact" else check_positive_int("n_probes", n_probes)
                diag = request.hessian_diagonal(n_probes=probes, seed=seed)
            if diag is not None:
                independent = 0.5 * diag * delta**2
                interactive = 0.5 * delta * h_delta - independent
    first = gradient * delta
    attribution = first if order == 1 else first + 0.5 * delta * h_delta
    expansion = attribution.flatten(1).sum(1)
    error = output_change - expansion
    return TaylorTerms(
        order=order,
        delta=delta,
        gradient=gradient,
        first_order=first,
        hessian_diagonal=diag,
        second_independent=independent,
        second_interactive=interactive,
        attribution=attribution,
        expansion=expansion,
        output_change=output_change,
        error=error,
        relative_error=relative_error(error, output_change),
        diagonal=method,
        interactions=None if matrix is None else _pairwise(matrix, delta),
    )


def taylor_attribution(request: Request, order: int, baseline: Any) -> Tensor:
    """Taylor attribution of ``f(x) - f(x~)`` (method sign): ``-(T^alpha + T^beta_d + a^beta_t)``.

    Order 1: ``(x - x~) * f_x``. Order 2: ``(x - x~) * (f_x - 1/2 H_x (x - x~))``, one Hessian-vector
    product per sample (Theorem 5's second-order assignment, which equals IG on quadratic models).
    """
    order = check_choice("order", order, (1, 2))
    x = request.inputs
    delta = request.broadcast(baseline) - x
    if order == 1:
        grads, _ = request.gradients(inputs_points(x))
        return -delta * grads[:, 0]
    _, gradient, h_delta = request.gradient_and_hvp(delta)
    return -delta * (gradient + 0.5 * h_delta)


def relative_error(error: Tensor, output_change: Tensor) -> Tensor:
    """``|epsilon| / |Delta f|`` per sample; 0 where both vanish, inf where only ``Delta f`` does."""
    size = output_change.abs()
    ratio = error.abs() / torch.where(size == 0, torch.ones_like(size), size)
    return torch.where(size == 0, torch.where(error == 0, 0.0, float("inf")).to(ratio), ratio)


def _diagonal_method(diagonal: str, n: int, max_exact: int, interactions: bool) -> str | None:
    if diagonal == "none" and not interactions:
        return None
    if interactions or diagonal == "exact" or (diagonal == "auto" and n <= max_exact):
        return "exact"
    return "hutchinson"


def _pairwise(matrix: Tensor, delta: Tensor) -> Tensor:
    """``f_xixj Delta_i Delta_j`` for ``i != j`` (zero diagonal), ``(B, n, n)``."""
    flat = delta.flatten(1)
    pairs = matrix * flat[:, :, None] * flat[:, None, :]
    return pairs - torch.diag_embed(torch.diagonal(pairs, dim1=1, dim2=2))
