"""Path methods: Integrated Gradients, Expected Gradients and interior gradients.

Integrated Gradients (Sundararajan et al. 2017; IG paper Sec. 3; SmoothTaylor paper Eq. 1-2):
``IG_i(x, z) = (x_i - z_i) * integral_0^1 df(z + alpha (x - z))/dx_i d alpha``, computed with a quadrature
rule (default ``riemann_right``, Eq. 2). With random baselines (``baseline="uniform"``) the result is the
average over ``n_baselines`` of them (SmoothTaylor paper, Eq. 3). Completeness:
``sum_i IG_i = f(x) - f(z)`` up to the quadrature error.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from taylorlens.engine import PathPoints, Request
from taylorlens.engine.checks import (
    AttributionInputError,
    check_finite,
    check_nonnegative,
    check_positive_int,
)
from taylorlens.methods.base import Method
from taylorlens.methods.quadrature import quadrature
from taylorlens.methods.registry import register


def draw_baselines(
    request: Request, baseline: Any, n_baselines: int, low: float, high: float, seed: int | None
) -> Tensor:
    """Baselines ``(B, N, ...)``: one fixed baseline (N = 1) or N uniform-noise baselines in [low, high]."""
    x = request.inputs
    n_baselines = check_positive_int("n_baselines", n_baselines)
    if isinstance(baseline, str):
        if baseline != "uniform":
            raise AttributionInputError(
                f"baseline must be a number, a tensor broadcastable to the inputs or 'uniform', got {baseline!r}"
            )
        if not low < high:
            raise AttributionInputError(f"uniform baselines need low < high, got low={low!r}, high={high!r}")
        shape = (x.shape[0], n_baselines, *x.shape[1:])
        noise = torch.rand(shape, generator=request.generator(seed), dtype=x.dtype, device=x.device)
        return low + (high - low) * noise
    if n_baselines != 1:
        raise AttributionInputError(
            f"n_baselines={n_baselines} averages over random baselines: use baseline='uniform' "
            "(a fixed baseline gives the same result every time)"
        )
    return request.broadcast(baseline)[:, None]


def integrated_gradients(
    request: Request, starts: Tensor, alphas: Tensor, weights: Tensor
) -> Tensor:
    """Average over the starts ``(B, N, ...)`` of ``(x - z) * sum_k w_k grad f(z + alpha_k (x - z))``."""
    x, n_starts = request.inputs, starts.shape[1]
    points = PathPoints(x, starts, alphas)

    def weight(chunk: Any) -> Tensor:
        node_weight = points.shaped(weights[points.node(chunk.variant)])
        return node_weight * (x[chunk.sample] - points.start(chunk.sample, chunk.variant)) / n_starts

    return request.gradient_sum(points, weight)


def expected_baselines(
    x: Tensor, references: Tensor | None, sigma: float | None, n_samples: int, generator: torch.Generator
) -> Tensor:
    """Expected Gradients' baselines ``(B, N, ...)``: drawn uniformly from ``references`` (R, ...) or, when
    ``references`` is None, from ``N(x, sigma^2)``."""
    shape = (x.shape[0], n_samples)
    if references is not None:
        if not isinstance(references, Tensor) or references.shape[1:] != x.shape[1:]:
            got = tuple(references.shape) if isinstance(references, Tensor) else type(references).__name__
            raise AttributionInputError(
                f"references must be a tensor of reference samples (R, {', '.join(map(str, x.shape[1:]))}), "
                f"got {got}"
            )
        refs = references.to(dtype=x.dtype, device=x.device)
        check_finite(refs, "references")
        return refs[torch.randint(refs.shape[0], shape, generator=generator, device=x.device)]
    if sigma is not None:
        noise = torch.randn((*shape, *x.shape[1:]), generator=generator, dtype=x.dtype, device=x.device)
        return x[:, None] + check_nonnegative("sigma", sigma) * noise
    raise AttributionInputError("expected_gradients needs references (a tensor of samples) or sigma")


@register
class IntegratedGradients(Method):
    """Integrated Gradients with a Riemann/trapezoid/Gauss-Legendre rule and optional noise baselines.

    Options: ``baseline`` (number, tensor broadcastable to the inputs, or ``"uniform"`` for noise in
    ``[low, high]``), ``steps`` (50), ``rule`` (``"riemann_right"``), ``n_baselines`` (1), ``low`` (0.0),
    ``high`` (1.0), ``seed``.
    """

    name = "integrated_gradients"
    # Deng et al. 2021, Table 2: all orders, interactive terms split correctly (Theorem 5); fixed baseline.
    principles = {"low_approximation_error": "full", "correct_assignment": "full", "unbiased_baseline": "no"}
    options = {
        "baseline": 0.0, "steps": 50, "rule": "riemann_right", "n_baselines": 1,
        "low": 0.0, "high": 1.0, "seed": None,
    }

    def compute(self, request: Request, baseline: Any, steps: int, rule: str, n_baselines: int,
                low: float, high: float, seed: int | None) -> Tensor:
        x = request.inputs
        alphas, weights = quadrature(rule, steps, x.dtype, x.device)
        starts = draw_baselines(request, baseline, n_baselines, low, high, seed)
        return integrated_gradients(request, starts, alphas, weights)


@register
class ExpectedGradients(Method):
    """Expected Gradients (Erion et al. 2021): ``E_{x'~D, alpha~U(0,1)}[(x - x') grad f(x' + alpha (x - x'))]``.

    Baselines ``x'`` are drawn uniformly from ``references`` (a tensor of reference samples, one sample's
    shape each) or, when ``references`` is None, from ``N(x, sigma^2)``. ``n_samples`` (50) Monte-Carlo
    samples per input; ``seed``. Completeness holds in expectation: ``sum_i EG_i ~ f(x) - E f(x')``.
    """

    name = "expected_gradients"
    # Deng et al. 2021, Table 2 and corollary: Theorem 5 averaged over baselines: all three principles.
    principles = {"low_approximation_error": "full", "correct_assignment": "full", "unbiased_baseline": "full"}
    options = {"references": None, "sigma": None, "n_samples": 50, "seed": None}

    def compute(self, request: Request, references: Tensor | None, sigma: float | None,
                n_samples: int, seed: int | None) -> Tensor:
        x = request.inputs
        n_samples = check_positive_int("n_samples", n_samples)
        generator = request.generator(seed)
        starts = expected_baselines(x, references, sigma, n_samples, generator)
        alphas = torch.rand((x.shape[0], n_samples), generator=generator, dtype=x.dtype, device=x.device)
        points = PathPoints(x, starts, alphas)

        def weight(chunk: Any) -> Tensor:
            return (x[chunk.sample] - points.start(chunk.sample, chunk.variant)) / n_samples

        return request.gradient_sum(points, weight)


@register
class InteriorGradients(Method):
    """Interior gradients (IG paper, Sec. 2.2): ``grad f(z + alpha (x - z))`` for each ``alpha``.

    Returns the gradients stacked along a leading alpha dimension, ``(A, B, ...)``. ``alphas`` defaults to
    ``1/50, 2/50, ..., 1``; ``baseline`` (0.0, the paper's scaled inputs ``alpha * x``).
    """

    name = "interior_gradients"
    # Gradients at scaled inputs, not an attribution of f(x) - f(x~): no principle (Deng et al. 2021).
    principles = {"low_approximation_error": "no", "correct_assignment": "no", "unbiased_baseline": "no"}
    options = {"alphas": None, "baseline": 0.0}

    def compute(self, request: Request, alphas: Any, baseline: Any) -> Tensor:
        x = request.inputs
        if alphas is None:
            alphas = torch.arange(1, 51, dtype=x.dtype, device=x.device) / 50
        alphas = torch.as_tensor(alphas, dtype=x.dtype, device=x.device).reshape(-1)
        if alphas.numel() == 0 or not torch.isfinite(alphas).all():
            raise AttributionInputError(f"alphas must be a non-empty sequence of finite numbers, got {alphas}")
        grads, _ = request.gradients(PathPoints(x, request.broadcast(baseline)[:, None], alphas))
        return grads.transpose(0, 1)
