"""Table 3 machinery (Deng et al. 2021) on small own models: Poly-like rows are exactly 0."""

from __future__ import annotations

import math

import torch
from torch import nn

from taylorlens.taylor.table3 import format_table3, table3

from .conftest import Quadratic


def test_table3_on_quadratic_and_sigmoid_models():
    torch.manual_seed(0)
    sigmoid_cnn = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.Sigmoid(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 3)
    )
    inputs = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    cells = table3({"Poly": Quadratic(64), "C-sg": sigmoid_cnn}, inputs, n_samples=6)
    at = {(c.model, c.method): c for c in cells}
    assert len(cells) == 12
    for method in ("GI", "Occ-1", "Occ-2x2", "Occ-4x4", "DL"):
        assert at["Poly", method].percentage_change < 1e-9, method
    assert 0 < at["Poly", "IG"].percentage_change < 5  # only the Riemann sum's error (50 steps)
    assert at["Poly", "IG"].approximation_error < 1e-12
    assert at["C-sg", "GI"].percentage_change < 1e-9  # Theorem 1 holds for any model
    assert at["C-sg", "Occ-1"].percentage_change > 0
    assert math.isfinite(at["C-sg", "IG"].correlation)
    text = format_table3(cells)
    assert "| Occ-4x4 |" in text and "(40.29%)" in text
