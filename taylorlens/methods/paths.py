"""Path methods: Integrated Gradients, Expected Gradients and interior gradients.

Integrated Gradients (Sundararajan et al. 2017; IG paper Sec. 3; SmoothTaylor paper Eq. 1-2):
``IG_i(x, z) = (x_i - z_i) * integral_0^1 df(z + alpha (x - z))/dx_i d alpha``, computed with a quadrature
rule (default ``riemann_right``, Eq. 2). With random baselines (``baseline="uniform"``) the result is the
average over ``n_baselines`` of them (SmoothTaylor paper, Eq. 3). Completeness:
``sum_i IG_i = f(x) - f(z)`` up to the quadrature error.

``steps="auto"`` chooses the steps per sample from that error: the IG paper (Sec. 3) checks completeness to
pick the number of steps ("20 to 300 steps"); here the steps of a nested rule double, per sample and reusing
every gradient computed so far, until the relative completeness gap
``|sum_i IG_i - (f(x) - f(z))| / |f(x) - f(z)|`` is at most ``tolerance`` or the next level would exceed
``max_steps`` (:func:`adaptive_integrated_gradients`).
"""

from __future__ import annotations

import math
import warnings
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
from taylorlens.methods.quadrature import NESTED_RULES, nested_count, nested_nodes, quadrature
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


#: Intervals of the first level of ``steps="auto"`` (fewer when ``max_steps`` allows fewer nodes).
FIRST_INTERVALS = 4


def adaptive_integrated_gradients(
    request: Request, starts: Tensor, rule: str, tolerance: float, max_steps: int
) -> Tensor:
    """IG with the steps doubled per sample until completeness holds to ``tolerance`` (``steps="auto"``).

    Level ``L`` evaluates the nodes that the nested ``rule`` on ``M = 4 * 2^L`` intervals adds to those of
    ``M / 2`` (:func:`~taylorlens.methods.quadrature.nested_nodes`), for the samples whose relative
    completeness gap (IG paper, Sec. 3, Proposition 1) is still above ``tolerance``; a sample stops when its
    gap is at most ``tolerance`` or when the next level would need more than ``max_steps`` nodes per path.
    ``f(x)`` and ``f(z)`` come from the trapezoid's end nodes, or from forward passes for the Riemann rules
    (one per start for ``riemann_right``, one per sample for ``riemann_left``). With several starts (noise
    baselines) the gap is that of their average. Reports ``steps`` (nodes per path), ``gap`` and
    ``converged`` per sample through :meth:`Request.note`.
    """
    x, batch, n_starts = request.inputs, request.batch, starts.shape[1]
    intervals = FIRST_INTERVALS
    while intervals > 1 and nested_count(rule, intervals) > max_steps:
        intervals //= 2
    total = torch.zeros_like(x)  # sum over evaluated nodes of c_k (x - z) grad f / n_starts
    used = torch.zeros(batch, dtype=torch.long, device=x.device)  # intervals per sample
    gap = torch.full((batch,), math.inf, dtype=x.dtype, device=x.device)
    active, previous, delta, scale = torch.arange(batch, device=x.device), 0, None, None
    while True:
        alphas, factors = nested_nodes(rule, intervals, previous, x.dtype, x.device)
        part = request if active.shape[0] == batch else request.subset(active)
        points = PathPoints(part.inputs, starts[active], alphas)

        def weight(chunk: Any, part: Request = part, points: PathPoints = points, factors: Tensor = factors) -> Tensor:
            start = points.start(chunk.sample, chunk.variant)
            return points.shaped(factors[points.node(chunk.variant)]) * (part.inputs[chunk.sample] - start) / n_starts

        sums, outputs = part.gradient_sum_and_outputs(points, weight)
        total[active] += sums
        used[active] = intervals
        if delta is None:
            delta, scale = _path_delta(request, starts, alphas, outputs)
        sums = total[active].flatten(1).sum(1) / intervals
        gap[active] = (sums - delta[active]).abs() / scale[active]
        active = active[gap[active] > tolerance]
        if active.numel() == 0 or nested_count(rule, 2 * intervals) > max_steps:
            break
        previous, intervals = intervals, 2 * intervals
    converged = gap <= tolerance
    request.note(steps=nested_count(rule, used), gap=gap, converged=converged)
    if not converged.all():
        warnings.warn(
            f"integrated_gradients(steps='auto'): {int((~converged).sum())} of {batch} samples did not reach "
            f"tolerance={tolerance} within max_steps={max_steps} (largest gap {gap.max().item():.3g}); raise "
            "max_steps, or see each sample's gap with return_info=True",
            stacklevel=4,
        )
    return total / used.to(x.dtype).view(-1, *(1,) * (x.dim() - 1))


def _path_delta(request: Request, starts: Tensor, alphas: Tensor, outputs: Tensor) -> tuple[Tensor, Tensor]:
    """``f(x) - mean_n f(z_n)`` per sample and the scale that makes the gap relative (``|delta|``, floored
    at float resolution so that ``f(x) = f(z)`` does not divide by zero). ``outputs`` (B, N * K) are the
    first level's outputs at ``alphas`` (K,); end points that are not nodes get forward passes."""
    values = outputs.view(request.batch, starts.shape[1], alphas.shape[0])
    ends = []
    for end in (0.0, 1.0):
        hit = torch.nonzero(alphas == end).flatten()
        if hit.numel():
            ends.append(values[:, :, hit[0]])
        elif end == 1.0:
            ends.append(request.outputs()[:, None])
        else:
            ends.append(request.forward(PathPoints(request.inputs, starts, alphas.new_zeros(1))))
    at_start, at_input = ends
    delta = at_input.mean(1) - at_start.mean(1)
    resolution = 16 * torch.finfo(delta.dtype).eps * (at_input.abs().mean(1) + at_start.abs().mean(1))
    return delta, torch.maximum(delta.abs(), resolution).clamp(min=torch.finfo(delta.dtype).tiny)


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
    ``[low, high]``), ``steps`` (50, or ``"auto"``), ``rule`` (``"riemann_right"``), ``n_baselines`` (1),
    ``low`` (0.0), ``high`` (1.0), ``seed``.

    ``steps="auto"`` (:func:`adaptive_integrated_gradients`) doubles the steps of a nested ``rule`` per
    sample until the relative completeness gap is at most ``tolerance`` (1e-2), with at most ``max_steps``
    (1025) nodes per path; ``tolerance`` and ``max_steps`` are ignored for a fixed ``steps``. Its rule is
    ``"trapezoid"`` unless ``rule`` is given (error O(1/M^2) on smooth paths, exact on quadratic models;
    ``"riemann_right"`` and ``"riemann_left"`` also nest, with error O(1/M)).
    ``attribute(..., return_info=True)`` reports ``steps``, ``gap`` and ``converged`` per sample.
    """

    name = "integrated_gradients"
    # Deng et al. 2021, Table 2: all orders, interactive terms split correctly (Theorem 5); fixed baseline.
    principles = {"low_approximation_error": "full", "correct_assignment": "full", "unbiased_baseline": "no"}
    options = {
        "baseline": 0.0, "steps": 50, "rule": "riemann_right", "n_baselines": 1,
        "low": 0.0, "high": 1.0, "seed": None, "tolerance": 1e-2, "max_steps": 1025,
    }

    def resolve(self, options: dict[str, Any]) -> dict[str, Any]:
        """The documented defaults, except that ``steps="auto"`` uses the trapezoid unless ``rule`` is given."""
        chosen = super().resolve(options)
        if chosen["steps"] == "auto" and "rule" not in options:
            chosen["rule"] = "trapezoid"
        return chosen

    def compute(self, request: Request, baseline: Any, steps: int | str, rule: str, n_baselines: int,
                low: float, high: float, seed: int | None, tolerance: float, max_steps: int) -> Tensor:
        x = request.inputs
        if steps == "auto":
            _check_auto(rule, tolerance, max_steps)
            starts = draw_baselines(request, baseline, n_baselines, low, high, seed)
            return adaptive_integrated_gradients(request, starts, rule, float(tolerance), max_steps)
        if isinstance(steps, str):
            raise AttributionInputError(f"steps must be a positive integer or 'auto', got {steps!r}")
        alphas, weights = quadrature(rule, steps, x.dtype, x.device)
        starts = draw_baselines(request, baseline, n_baselines, low, high, seed)
        request.note(steps=torch.full((request.batch,), steps, dtype=torch.long))
        return integrated_gradients(request, starts, alphas, weights)


def _check_auto(rule: str, tolerance: Any, max_steps: Any) -> None:
    """The options of ``steps="auto"``: a nested rule, ``tolerance`` > 0, ``max_steps`` >= 2."""
    if rule not in NESTED_RULES:
        raise AttributionInputError(
            f"steps='auto' needs a nested rule (one whose nodes at 2M intervals contain those at M, so that "
            f"earlier gradients are reused): {', '.join(map(repr, NESTED_RULES))}; got rule={rule!r}"
        )
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or not 0 < tolerance < math.inf:
        raise AttributionInputError(
            f"tolerance must be a finite number > 0 (the relative completeness gap to reach), got {tolerance!r}"
        )
    check_positive_int("max_steps", max_steps, minimum=2)


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
