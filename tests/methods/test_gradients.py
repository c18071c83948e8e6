"""Gradient, saliency and Gradient*Input against per-sample autograd."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import taylorlens
from tests.slow_references import slow_gradient


@pytest.mark.parametrize("activation", [nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.ELU])
def test_gradient_family_matches_per_sample_autograd(make_mlp, make_inputs, activation):
    model, x, target = make_mlp(activation), make_inputs(4, 5), torch.tensor([0, 1, 2, 0])
    grad = slow_gradient(model, x, target)
    torch.testing.assert_close(taylorlens.attribute(model, x, target, "gradient"), grad)
    torch.testing.assert_close(taylorlens.attribute(model, x, target, "saliency"), grad.abs())
    torch.testing.assert_close(taylorlens.attribute(model, x, target, "gradient_x_input"), x * grad)


def test_gradient_of_a_scalar_output_model_needs_no_target(make_inputs):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 1), nn.Flatten(0)).double().eval()
    x = make_inputs(3, 4)
    expected = model[0].weight[0].detach().expand(3, 4)
    torch.testing.assert_close(taylorlens.attribute(model, x, None, "gradient"), expected)
    torch.testing.assert_close(taylorlens.attribute(model, x, 0, "gradient"), expected)


def test_gradient_is_zero_for_an_output_that_ignores_the_input(make_inputs):
    x = make_inputs(2, 3)
    maps = taylorlens.attribute(lambda t: torch.ones(t.shape[0], 2, dtype=t.dtype), x, 1, "gradient")
    torch.testing.assert_close(maps, torch.zeros_like(x))
