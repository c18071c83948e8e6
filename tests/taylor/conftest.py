"""Closed-form and small smooth models for the Taylor framework tests (float64)."""

from __future__ import annotations

import pytest
import torch
from torch import nn


class Quadratic(nn.Module):
    """``f_c(x) = b_c + a_c^T x + 1/2 x^T Q_c x`` over the flattened input: gradient ``a_c + Q_c x``,
    Hessian ``Q_c`` everywhere, so every second-order Taylor quantity is exact."""

    def __init__(self, n_features: int, n_classes: int = 3, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.bias = nn.Parameter(torch.randn(n_classes, generator=g, dtype=torch.float64))
        self.linear = nn.Parameter(torch.randn(n_classes, n_features, generator=g, dtype=torch.float64))
        root = torch.randn(n_classes, n_features, n_features, generator=g, dtype=torch.float64)
        self.quadratic = nn.Parameter((root + root.transpose(1, 2)) / 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        return self.bias + flat @ self.linear.T + 0.5 * torch.einsum("bi,cij,bj->bc", flat, self.quadratic, flat)


def smooth_mlp(n_in: int, seed: int, activation: type[nn.Module] = nn.Softplus) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(n_in, 7), activation(), nn.Linear(7, 5), nn.Tanh(), nn.Linear(5, 3)
    ).double().eval()


@pytest.fixture
def quadratic() -> Quadratic:
    return Quadratic(12).eval()


@pytest.fixture
def batch() -> torch.Tensor:
    return torch.randn(5, 3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


@pytest.fixture
def make_smooth_mlp():
    return smooth_mlp
