"""Integrated Gradients, Expected Gradients and interior gradients (IG paper; SmoothTaylor paper Eq. 1-3)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import taylorlens
from taylorlens.methods.quadrature import RULES, quadrature
from taylorlens.zoo.counterexamples import AppendixBF, AppendixBG, ReluProduct, SaturatedReLU
from tests.slow_references import slow_integrated_gradients


def test_ig_completeness_on_softplus_mlp_with_error_shrinking_in_steps(make_mlp, make_inputs):
    model = make_mlp(nn.Softplus)
    x, baseline = make_inputs(4, 5), make_inputs(4, 5, seed=2)
    with torch.no_grad():
        delta = model(x)[:, 1] - model(baseline)[:, 1]
    errors = []
    for steps in (4, 16, 64, 256):
        maps = taylorlens.attribute(model, x, 1, "integrated_gradients", baseline=baseline, steps=steps)
        errors.append((maps.sum(dim=1) - delta).abs().max().item())
    # The right Riemann sum errs by O(1/steps): each 4x more steps cut the completeness error about 4x.
    for earlier, later in zip(errors, errors[1:], strict=False):
        assert 3.5 < earlier / later < 4.5
    # Gauss-Legendre on this smooth path converges far faster than the Riemann sum.
    gauss = taylorlens.attribute(model, x, 1, "integrated_gradients", baseline=baseline, steps=32,
                                 rule="gauss_legendre")
    torch.testing.assert_close(gauss.sum(dim=1), delta, atol=1e-10, rtol=0)


def test_ig_sensitivity_example_gives_one_where_the_gradient_is_zero():
    x = torch.tensor([[2.0]], dtype=torch.float64)
    model = SaturatedReLU().eval()
    assert taylorlens.attribute(model, x, method="gradient").item() == 0.0
    # The kink sits at alpha = 1/2: midpoints avoid putting a node on it.
    ig = taylorlens.attribute(model, x, method="integrated_gradients", steps=100, rule="riemann_middle")
    torch.testing.assert_close(ig, torch.tensor([[1.0]], dtype=torch.float64))


@pytest.mark.parametrize("model", [AppendixBF().eval(), AppendixBG().eval()], ids=["f", "g"])
def test_ig_is_implementation_invariant_on_the_appendix_b_networks(model):
    # Derived from the definitions: on the path a * (3, 1) both networks are ReLU(2a - 1), whose gradient
    # is (1, -1) for a > 1/2, so IG = (3 * 1/2, 1 * -1/2) = (1.5, -0.5). The extracted Fig. 14 text shows
    # IG = (2, -1), which does not match the definition (its rows are garbled); (2, -1) is DeepLIFT on g.
    x = torch.tensor([[3.0, 1.0]], dtype=torch.float64)
    ig = taylorlens.attribute(model, x, method="integrated_gradients", steps=1000, rule="riemann_middle")
    torch.testing.assert_close(ig, torch.tensor([[1.5, -0.5]], dtype=torch.float64))


def test_ig_keeps_completeness_on_the_multiplicative_example():
    # h(a * (3, 1)) = ReLU(3a - 1) * a: IG_1 = 3 * int_{1/3}^1 a da = 4/3, IG_2 = int_{1/3}^1 (3a - 1) da = 2/3.
    x = torch.tensor([[3.0, 1.0]], dtype=torch.float64)
    model = ReluProduct().eval()
    ig = taylorlens.attribute(model, x, method="integrated_gradients", steps=3000, rule="riemann_middle")
    torch.testing.assert_close(ig, torch.tensor([[4 / 3, 2 / 3]], dtype=torch.float64), atol=1e-6, rtol=0)
    assert ig.sum().item() == pytest.approx(2.0, abs=1e-6)


@pytest.mark.parametrize("activation", [nn.Tanh, nn.ReLU, nn.Softplus])
def test_ig_matches_a_slow_loop_over_steps(make_mlp, make_inputs, activation):
    model = make_mlp(activation)
    x, baseline = make_inputs(3, 5), make_inputs(3, 5, seed=3)
    target = torch.tensor([0, 2, 1])
    fast = taylorlens.attribute(model, x, target, "integrated_gradients", baseline=baseline, steps=20)
    torch.testing.assert_close(fast, slow_integrated_gradients(model, x, target, baseline, 20))


def test_ig_equals_input_difference_times_mean_interior_gradient(make_mlp, make_inputs):
    model = make_mlp(nn.Softplus)
    x = make_inputs(3, 5)
    steps = 25
    alphas = [m / steps for m in range(1, steps + 1)]
    interior = taylorlens.attribute(model, x, 2, "interior_gradients", alphas=alphas)
    assert interior.shape == (steps, 3, 5)
    ig = taylorlens.attribute(model, x, 2, "integrated_gradients", steps=steps)
    torch.testing.assert_close(ig, x * interior.mean(dim=0))


def test_interior_gradients_are_gradients_at_scaled_inputs(make_mlp, make_inputs):
    model = make_mlp(nn.Tanh)
    x = make_inputs(2, 5)
    interior = taylorlens.attribute(model, x, 0, "interior_gradients", alphas=[0.25, 1.0], baseline=0.5)
    for index, alpha in enumerate((0.25, 1.0)):
        expected = taylorlens.attribute(model, 0.5 + alpha * (x - 0.5), 0, "gradient")
        torch.testing.assert_close(interior[index], expected)


def test_interior_gradients_default_alphas_are_fifty_steps_up_to_one(make_mlp, make_inputs):
    model = make_mlp(nn.Tanh)
    x = make_inputs(2, 5)
    interior = taylorlens.attribute(model, x, 0, "interior_gradients")
    assert interior.shape == (50, 2, 5)
    torch.testing.assert_close(interior[-1], taylorlens.attribute(model, x, 0, "gradient"))


@pytest.mark.parametrize("rule", RULES)
def test_quadrature_rules_integrate_polynomials(rule):
    alphas, weights = quadrature(rule, 40, torch.float64, torch.device("cpu"))
    assert weights.sum().item() == pytest.approx(1.0)
    exact_enough = {"gauss_legendre": 1e-12, "trapezoid": 1e-3, "riemann_middle": 1e-3}.get(rule, 3e-2)
    assert (weights * alphas**2).sum().item() == pytest.approx(1 / 3, abs=exact_enough)


def test_ig_with_uniform_baselines_averages_ig_over_the_drawn_baselines(make_mlp, make_inputs):
    model = make_mlp(nn.Tanh)
    x = make_inputs(2, 5)
    seed, n = 7, 3
    generator = torch.Generator().manual_seed(seed)
    drawn = -1 + 2 * torch.rand((2, n, 5), generator=generator, dtype=torch.float64)
    expected = sum(
        taylorlens.attribute(model, x, 1, "integrated_gradients", baseline=drawn[:, k], steps=10) for k in range(n)
    ) / n
    got = taylorlens.attribute(model, x, 1, "integrated_gradients", baseline="uniform", n_baselines=n, low=-1.0,
                               high=1.0, seed=seed, steps=10)
    torch.testing.assert_close(got, expected)


def test_expected_gradients_from_references_is_a_slow_monte_carlo_loop(make_mlp, make_inputs):
    model = make_mlp(nn.Softplus)
    x, references = make_inputs(2, 5), make_inputs(6, 5, seed=4)
    n, seed = 5, 3
    got = taylorlens.attribute(model, x, 0, "expected_gradients", references=references, n_samples=n, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    index = torch.randint(6, (2, n), generator=generator)
    alphas = torch.rand((2, n), generator=generator, dtype=torch.float64)
    expected = torch.zeros_like(x)
    for b in range(2):
        for k in range(n):
            start = references[index[b, k]]
            point = (start + alphas[b, k] * (x[b] - start)).requires_grad_(True)
            (grad,) = torch.autograd.grad(model(point[None])[0, 0], point)
            expected[b] += (x[b] - start) * grad / n
    torch.testing.assert_close(got, expected)


def test_expected_gradients_complete_in_expectation(make_mlp, make_inputs):
    model = make_mlp(nn.Softplus)
    x, references = make_inputs(2, 5), make_inputs(4, 5, seed=4)
    maps = taylorlens.attribute(model, x, 0, "expected_gradients", references=references, n_samples=4000, seed=0)
    with torch.no_grad():
        expected = model(x)[:, 0] - model(references)[:, 0].mean()
    torch.testing.assert_close(maps.sum(dim=1), expected, atol=0.05, rtol=0)
