"""Quadrature rules for path integrals over ``alpha`` in [0, 1] (Integrated Gradients).

``riemann_right`` is Eq. 2 of the SmoothTaylor paper (Goh et al. 2020): ``alpha_m = m / M``,
``m = 1..M``, weights ``1 / M`` (also the IG paper's Riemann sum, Sundararajan et al. 2017, Sec. 3).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from taylorlens.engine.checks import check_choice, check_positive_int

RULES = ("riemann_right", "riemann_left", "riemann_middle", "trapezoid", "gauss_legendre")


def quadrature(rule: str, steps: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """Nodes ``alpha`` and weights ``w`` with ``sum_m w_m g(alpha_m) ~ integral_0^1 g(alpha) d alpha``."""
    check_choice("rule", rule, RULES)
    steps = check_positive_int("steps", steps, minimum=2 if rule == "trapezoid" else 1)
    m = np.arange(steps, dtype=np.float64)
    if rule == "riemann_right":
        nodes, weights = (m + 1) / steps, np.full(steps, 1 / steps)
    elif rule == "riemann_left":
        nodes, weights = m / steps, np.full(steps, 1 / steps)
    elif rule == "riemann_middle":
        nodes, weights = (m + 0.5) / steps, np.full(steps, 1 / steps)
    elif rule == "trapezoid":
        nodes = m / (steps - 1)
        weights = np.full(steps, 1 / (steps - 1))
        weights[[0, -1]] /= 2
    else:
        x, w = np.polynomial.legendre.leggauss(steps)
        nodes, weights = (x + 1) / 2, w / 2
    return (
        torch.as_tensor(nodes, dtype=dtype, device=device),
        torch.as_tensor(weights, dtype=dtype, device=device),
    )
