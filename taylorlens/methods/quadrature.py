"""Quadrature rules for path integrals over ``alpha`` in [0, 1] (Integrated Gradients).

``riemann_right`` is Eq. 2 of the SmoothTaylor paper (Goh et al. 2020): ``alpha_m = m / M``,
``m = 1..M``, weights ``1 / M`` (also the IG paper's Riemann sum, Sundararajan et al. 2017, Sec. 3).

Nested rules (:data:`NESTED_RULES`, for ``steps="auto"``): on ``M`` equal intervals the right and left
Riemann sums and the trapezoid rule are ``(1/M) sum_k c_k g(alpha_k)`` with ``c_k`` = 1 at every node but
the trapezoid's two ends (1/2), and the nodes at ``2M`` intervals contain those at ``M``: doubling ``M``
adds the midpoints ``(2j + 1) / 2M`` only, so every evaluation made so far is reused
(:func:`nested_nodes`). Midpoint and Gauss-Legendre nodes do not nest this way.
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


NESTED_RULES = ("trapezoid", "riemann_right", "riemann_left")


def nested_count(rule: str, intervals: int) -> int:
    """Nodes of a nested rule on ``intervals`` equal intervals (the trapezoid has one more)."""
    return intervals + 1 if rule == "trapezoid" else intervals


def nested_nodes(
    rule: str, intervals: int, previous: int, dtype: torch.dtype, device: torch.device
) -> tuple[Tensor, Tensor]:
    """The nodes a nested rule adds going from ``previous`` to ``intervals = 2 * previous`` intervals (all
    nodes when ``previous`` is 0), and their factors ``c_k``: the rule on ``M`` intervals is
    ``(1/M) sum_k c_k g(alpha_k)`` over every node evaluated up to ``M``."""
    check_choice("rule", rule, NESTED_RULES)
    if previous:
        if intervals != 2 * previous:
            raise ValueError(f"nested levels double the intervals, got {previous} -> {intervals}")
        nodes = (2 * np.arange(previous, dtype=np.float64) + 1) / intervals
        factors = np.ones(previous)
    else:
        m = np.arange(nested_count(rule, intervals), dtype=np.float64)
        nodes = (m + 1) / intervals if rule == "riemann_right" else m / intervals
        factors = np.ones(nodes.shape[0])
        if rule == "trapezoid":
            factors[[0, -1]] = 0.5
    return torch.as_tensor(nodes, dtype=dtype, device=device), torch.as_tensor(factors, dtype=dtype, device=device)
