"""Small models shared by the engine and method tests (float64 unless a test says otherwise).

Factories are handed out as fixtures (``make_mlp``, ``make_cnn``) so the test modules never import this file.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn


class MLP(nn.Sequential):
    """Linear -> activation -> ... -> Linear, with a fresh activation module after each hidden layer."""

    def __init__(self, activation: Callable[[], nn.Module], sizes: tuple[int, ...], bias: bool = True) -> None:
        layers: list[nn.Module] = []
        for n_in, n_out in zip(sizes[:-2], sizes[1:-1], strict=True):
            layers += [nn.Linear(n_in, n_out, bias=bias), activation()]
        layers.append(nn.Linear(sizes[-2], sizes[-1], bias=bias))
        super().__init__(*layers)


class CNN(nn.Module):
    """Conv -> activation -> (pool) -> Conv -> activation -> flatten -> Linear, for (B, 2, 6, 6) inputs.

    Flattening is functional so that Captum's LRP (which needs a rule for every leaf module) accepts it.
    """

    def __init__(self, activation: Callable[[], nn.Module], pool: str | None = None, classes: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.act1 = activation()
        # No nn.Identity without pooling: Captum's LRP has no rule for it.
        self.pool = {None: None, "max": nn.MaxPool2d(2), "avg": nn.AvgPool2d(2)}[pool]
        self.conv2 = nn.Conv2d(4, 3, 3, padding=1)
        self.act2 = activation()
        side = 3 if pool else 6
        self.fc = nn.Linear(3 * side * side, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act1(self.conv1(x))
        h = self.act2(self.conv2(h if self.pool is None else self.pool(h)))
        return self.fc(h.flatten(1))


def _seeded(module: nn.Module, seed: int, dtype: torch.dtype) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.6)
    return module.to(dtype).eval()


@pytest.fixture
def make_mlp() -> Callable[..., nn.Module]:
    """``make_mlp(activation=nn.Tanh, sizes=(5, 8, 6, 3), bias=True, seed=0, dtype=float64)``, in eval mode."""

    def make(
        activation: Callable[[], nn.Module] = nn.Tanh,
        sizes: tuple[int, ...] = (5, 8, 6, 3),
        bias: bool = True,
        seed: int = 0,
        dtype: torch.dtype = torch.float64,
    ) -> nn.Module:
        torch.manual_seed(seed)
        return _seeded(MLP(activation, sizes, bias), seed, dtype)

    return make


@pytest.fixture
def make_cnn() -> Callable[..., nn.Module]:
    """``make_cnn(activation=nn.ReLU, pool=None | "max" | "avg", seed=0, dtype=float64)`` for (B, 2, 6, 6)."""

    def make(
        activation: Callable[[], nn.Module] = nn.ReLU,
        pool: str | None = None,
        seed: int = 0,
        dtype: torch.dtype = torch.float64,
    ) -> nn.Module:
        torch.manual_seed(seed)
        return _seeded(CNN(activation, pool), seed, dtype)

    return make


@pytest.fixture
def relu_cnn() -> nn.Module:
    """A ReLU CNN for (B, 1, 8, 8) inputs (seeded by torch.manual_seed(1)), float64, in eval mode."""
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
        nn.Linear(4 * 64, 3),
    ).double().eval()


def random_inputs(*shape: int, seed: int = 1, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.fixture
def make_inputs() -> Callable[..., torch.Tensor]:
    """``make_inputs(*shape, seed=1, dtype=float64)``: standard-normal inputs from a private generator."""
    return random_inputs
