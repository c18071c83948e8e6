"""Models for the metric tests: closed-form models and a trained digit CNN (zoo, or a tiny fallback)."""

from __future__ import annotations

import pytest
import torch
from torch import nn


class Linear(nn.Module):
    """``f(x) = w . x + b`` for (B, ...) inputs; one output per sample."""

    def __init__(self, weight: torch.Tensor, bias: float = 0.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) * self.weight.flatten()).sum(1) + self.bias


@pytest.fixture
def linear_model() -> Linear:
    torch.manual_seed(0)
    return Linear(torch.randn(1, 8, 8, dtype=torch.float64), bias=0.3).eval()


@pytest.fixture(scope="session")
def digits():
    """A trained digit classifier (softmax outputs, as the SmoothTaylor paper scores) and 16 test digits."""
    try:
        from taylorlens import zoo

        model = zoo.load("digits_cnn_relu")
        x, y = zoo.dataset("digits", split="test")
    except Exception:  # the zoo is optional for these tests: train a tiny model on sklearn's digits
        model, x, y = _train_tiny_digits()
    model.eval()
    x, y = x[:16].float(), y[:16]
    probabilities = nn.Sequential(model, nn.Softmax(dim=1)).eval()
    return probabilities, x, y


def _train_tiny_digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images / 8.0 - 1.0, dtype=torch.float32)[:, None]
    y = torch.tensor(data.target)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 64, 10))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(x[:1400]), y[:1400]).backward()
        optimiser.step()
    return model, x[1400:], y[1400:]
