"""Areas under sampled curves: Simpson's rule, the trapezoid rule and AOPC.

The SmoothTaylor paper (Goh et al. 2020, Sec. IV-D) integrates its perturbation and multi-scale TV curves
with Simpson's rule; Samek et al. (2017, Eq. 12) define the area over the perturbation curve (AOPC).
Curves run along the last dimension, sampled at unit spacing unless ``dx`` says otherwise.
"""

from __future__ import annotations

import torch
from torch import Tensor


def simpson(y: Tensor, dx: float = 1.0) -> Tensor:
    """Composite Simpson's rule along the last dimension of ``y`` (points at spacing ``dx``).

    With an odd number of points this is the textbook composite rule (exact for cubics). With an even
    number, the first ``n - 1`` points use it and the last interval uses the three-point quadratic
    ``dx * (5 y[-1] + 8 y[-2] - y[-3]) / 12`` (SciPy >= 1.11's choice), so the result is still exact for
    quadratics. Two points give the trapezoid, one point gives 0.
    """
    n = y.shape[-1]
    if n < 3:
        return trapezoid(y, dx)
    odd = y[..., : n if n % 2 else n - 1]
    area = dx / 3 * (odd[..., 0] + odd[..., -1] + 4 * odd[..., 1:-1:2].sum(-1) + 2 * odd[..., 2:-1:2].sum(-1))
    if n % 2 == 0:
        area = area + dx * (5 * y[..., -1] + 8 * y[..., -2] - y[..., -3]) / 12
    return area


def trapezoid(y: Tensor, dx: float = 1.0) -> Tensor:
    """Trapezoid rule along the last dimension (0 for a single point)."""
    if y.shape[-1] < 2:
        return torch.zeros_like(y[..., 0])
    return dx * (y[..., 1:] + y[..., :-1]).sum(-1) / 2


def aopc(curve: Tensor) -> Tensor:
    """Area over the perturbation curve (Samek et al. 2017, Eq. 12) of curves ``(..., L + 1)``.

    ``AOPC = 1 / (L + 1) * sum_{k=0}^{L} (f(x^(0)) - f(x^(k)))`` where ``curve[..., k] = f(x^(k))`` and
    ``curve[..., 0]`` is the unperturbed output.
    """
    return (curve[..., :1] - curve).mean(-1)


def aopc_curve(curve: Tensor) -> Tensor:
    """AOPC after each step: ``aopc_curve[..., k]`` is the mean drop over steps ``0..k`` (IG paper, Fig. 5)."""
    drops = curve[..., :1] - curve
    steps = torch.arange(1, curve.shape[-1] + 1, dtype=curve.dtype, device=curve.device)
    return drops.cumsum(-1) / steps
