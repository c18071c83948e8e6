"""SmoothGrad around any method and SmoothTaylor (Goh et al. 2020, Eq. 4 and Eq. 9-10)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import taylorlens
from taylorlens import AttributionInputError
from taylorlens.engine import Request
from taylorlens.methods.smoothing import gaussian_noise
from tests.slow_references import slow_gradient, slow_noise_average


def noise_of(model, x, target, count, sigma, seed):
    """The noise both methods draw for these inputs, through the shared helper."""
    return gaussian_noise(Request.build(model, x, target), count, sigma, seed)


def test_smooth_taylor_is_smoothgrad_of_minus_noise_times_gradient(make_mlp, make_inputs):
    # The SmoothTaylor theorem: with roots z_r = x + eps_r, (x - z_r) grad f(z_r) = -eps_r grad f(x + eps_r).
    model, x = make_mlp(nn.Softplus), make_inputs(3, 5)
    sigma, count, seed = 0.4, 6, 11
    noise = noise_of(model, x, 1, count, sigma, seed)
    expected = torch.zeros_like(x)
    for b in range(3):
        for r in range(count):
            expected[b] += -noise[b, r] * slow_gradient(model, (x[b] + noise[b, r])[None], [1])[0] / count
    got = taylorlens.attribute(model, x, 1, "smooth_taylor", sigma=sigma, n_roots=count, seed=seed)
    torch.testing.assert_close(got, expected)


def test_smooth_taylor_equals_input_times_smoothgrad_minus_smoothgrad_of_gradient_x_input(make_mlp, make_inputs):
    # mean(-eps grad f(x + eps)) = x mean(grad f(x + eps)) - mean((x + eps) grad f(x + eps)), same noise.
    model, x = make_mlp(nn.Tanh), make_inputs(3, 5)
    options = {"sigma": 0.3, "seed": 4}
    taylor = taylorlens.attribute(model, x, 2, "smooth_taylor", n_roots=20, **options)
    grad = taylorlens.attribute(model, x, 2, "smoothgrad", inner="gradient", n_samples=20, **options)
    gxi = taylorlens.attribute(model, x, 2, "smoothgrad", inner="gradient_x_input", n_samples=20, **options)
    torch.testing.assert_close(taylor, x * grad - gxi)


@pytest.mark.parametrize("inner", ["gradient", "gradient_x_input", "saliency"])
def test_smoothgrad_matches_a_slow_loop_over_noise_samples(make_mlp, make_inputs, inner):
    model, x = make_mlp(nn.ELU), make_inputs(2, 5)
    count, sigma, seed = 7, 0.2, 3
    term = {"gradient": lambda x, point, grad: grad, "gradient_x_input": lambda x, point, grad: point * grad,
            "saliency": lambda x, point, grad: grad.abs()}[inner]
    expected = slow_noise_average(model, x, [0, 0], sigma, count, seed, term)
    got = taylorlens.attribute(model, x, 0, "smoothgrad", inner=inner, sigma=sigma, n_samples=count, seed=seed)
    torch.testing.assert_close(got, expected)


def test_smoothgrad_passes_inner_options_through(make_mlp, make_inputs):
    model, x = make_mlp(nn.Tanh), make_inputs(2, 5)
    count, sigma, seed = 4, 0.2, 8
    noise = noise_of(model, x, 1, count, sigma, seed)
    expected = sum(
        taylorlens.attribute(model, x + noise[:, n], 1, "integrated_gradients", steps=6, baseline=0.5)
        for n in range(count)
    ) / count
    got = taylorlens.attribute(model, x, 1, "smoothgrad", inner="integrated_gradients", sigma=sigma,
                               n_samples=count, seed=seed, steps=6, baseline=0.5)
    torch.testing.assert_close(got, expected)


def test_smoothgrad_of_interior_gradients_keeps_the_alpha_dimension(make_mlp, make_inputs):
    model, x = make_mlp(nn.Tanh), make_inputs(3, 5)
    maps = taylorlens.attribute(model, x, 1, "smoothgrad", inner="interior_gradients", alphas=[0.5, 1.0],
                                n_samples=4, seed=0)
    assert maps.shape == (2, 3, 5)
    grad = taylorlens.attribute(model, x, 1, "smoothgrad", inner="gradient", n_samples=4, seed=0)
    torch.testing.assert_close(maps[1], grad)


def test_smoothgrad_with_zero_noise_is_the_inner_method(make_mlp, make_inputs):
    model, x = make_mlp(nn.Sigmoid), make_inputs(3, 5)
    smooth = taylorlens.attribute(model, x, 0, "smoothgrad", inner="deeplift", sigma=0.0, n_samples=3)
    torch.testing.assert_close(smooth, taylorlens.attribute(model, x, 0, "deeplift"))


def test_smoothgrad_rejects_unknown_inner_methods_and_options(make_mlp, make_inputs):
    model, x = make_mlp(), make_inputs(2, 5)
    with pytest.raises(AttributionInputError, match="unknown method 'nope'"):
        taylorlens.attribute(model, x, 0, "smoothgrad", inner="nope")
    with pytest.raises(AttributionInputError, match=r"unknown option\(s\) 'steps' for method 'gradient'"):
        taylorlens.attribute(model, x, 0, "smoothgrad", inner="gradient", steps=3)


def test_smooth_taylor_rejects_a_bad_root_count_naming_it(make_mlp, make_inputs):
    with pytest.raises(AttributionInputError, match="n_roots must be an integer >= 1, got 0"):
        taylorlens.attribute(make_mlp(), make_inputs(2, 5), 0, "smooth_taylor", n_roots=0)
