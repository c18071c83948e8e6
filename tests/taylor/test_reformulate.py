"""Reformulations (Deng et al. 2021, Theorems 1-5 and the EG corollary) against the methods themselves."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import taylorlens
from taylorlens import taylor
from taylorlens.engine import AttributionInputError

TARGETS = torch.tensor([0, 2, 1, 1, 0])
FLOAT_ZERO = 1e-10  # percent: float64 rounding of sums over 12 features


@pytest.mark.parametrize(
    ("method", "options"),
    [
        ("gradient_x_input", {}),
        ("occlusion", {"window": 1}),
        ("occlusion", {"window": 2, "stride": 2}),
        ("occlusion", {"window": (2, 3), "stride": 1, "baseline": -0.5}),
        ("integrated_gradients", {"baseline": 0.2}),
    ],
)
def test_reformulation_is_exact_on_quadratic(quadratic, batch, method, options):
    extra = {"rule": "riemann_middle", "steps": 3} if method == "integrated_gradients" else {}
    original = taylorlens.attribute(quadratic, batch, TARGETS, method, **options, **extra)
    reformulated = taylor.reformulate(method, quadratic, batch, TARGETS, **options)
    assert taylor.percentage_change(original, reformulated) < FLOAT_ZERO


def test_integrated_gradients_reformulation_differs_only_by_quadrature_error(quadratic, batch):
    reformulated = taylor.reformulate("integrated_gradients", quadratic, batch, TARGETS)
    gaps = []
    for steps in (10, 100):
        original = taylorlens.attribute(quadratic, batch, TARGETS, "integrated_gradients", steps=steps)
        assert taylor.percentage_change(original, reformulated) > FLOAT_ZERO
        gaps.append(float((original - reformulated).norm()))
    # the right Riemann sum of an affine integrand errs by exactly (slope) / (2 M): 10x more steps, 10x less
    assert gaps[1] == pytest.approx(gaps[0] / 10, rel=1e-9)


def test_occlusion_reformulation_is_first_plus_independent_terms(make_smooth_mlp, batch):
    # Theorem 2 at second order: -(T^alpha_i + T^beta_d_i) with x~ = x|_{x_i = 0}
    model = make_smooth_mlp(12, 2)
    t = taylor.terms(model, batch, TARGETS, 0.0)
    reformulated = taylor.reformulate("occlusion", model, batch, TARGETS)
    torch.testing.assert_close(reformulated, -(t.first_order + t.second_independent))


def test_deeplift_reformulation_matches_closed_form_one_hidden_layer():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(6, 4), nn.Softplus(), nn.Linear(4, 1)).double().eval()
    x = torch.randn(5, 6, dtype=torch.float64)
    reference = torch.full_like(x, 0.4)
    w1, b1, w2 = model[0].weight.detach(), model[0].bias.detach(), model[2].weight.detach()[0]
    y, y_ref = x @ w1.T + b1, reference @ w1.T + b1
    sig = torch.sigmoid(y)  # softplus' = sigmoid, softplus'' = sigmoid (1 - sigmoid)
    multiplier = sig - 0.5 * sig * (1 - sig) * (y - y_ref)  # Theorem 4 at second order
    expected = (x - reference) * ((w2 * multiplier) @ w1)
    assert taylor.deeplift_layers(model, x, None, 0.4) == 1
    for layer in (0, None):
        got = taylor.reformulate("deeplift", model, x, None, baseline=0.4, nonlinearity=layer)
        torch.testing.assert_close(got, expected)


def test_deeplift_reformulation_error_shrinks_with_smaller_input_change(make_smooth_mlp, batch):
    model = make_smooth_mlp(12, 0)
    layers = taylor.deeplift_layers(model, batch, TARGETS)
    assert layers == 2
    changes = []
    for scale in (1.0, 0.1):
        baseline = batch * (1 - scale)  # Delta = -scale * x
        original = taylorlens.attribute(model, batch, TARGETS, "deeplift", baseline=baseline)
        per_layer = [
            taylor.percentage_change(
                original, taylor.reformulate("deeplift", model, batch, TARGETS, baseline=baseline, nonlinearity=k)
            )
            for k in range(layers)
        ]
        changes.append(sum(per_layer) / layers)
    # the Taylor multiplier errs by O(Delta y^2) per unit against O(1): 10x smaller Delta, ~100x smaller change
    assert changes[1] < changes[0] / 30


def test_expected_gradients_reformulation_is_mean_of_integrated_gradients_reformulations(quadratic, batch):
    references = torch.randn(7, 3, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    got = taylor.reformulate("expected_gradients", quadratic, batch, TARGETS, references=references,
                             n_samples=4, seed=9)
    # the same baselines as the method draws: first draw of the method's generator
    index = torch.randint(7, (5, 4), generator=torch.Generator().manual_seed(9))
    expected = torch.stack([
        torch.stack([
            taylor.reformulate("integrated_gradients", quadratic, batch[b:b + 1], TARGETS[b:b + 1],
                               baseline=references[index[b, k]])[0]
            for k in range(4)
        ]).mean(0)
        for b in range(5)
    ])
    torch.testing.assert_close(got, expected)
    # and it equals Expected Gradients in expectation over alpha: many samples get close
    many = {"references": references, "n_samples": 4000, "seed": 1}
    original = taylorlens.attribute(quadratic, batch, TARGETS, "expected_gradients", **many)
    reformulated = taylor.reformulate("expected_gradients", quadratic, batch, TARGETS, **many)
    assert taylor.percentage_change(original, reformulated) < 5.0


def test_percentage_change_definition():
    original = torch.tensor([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]])
    reformulated = torch.tensor([[3.0, 3.0], [0.0, 0.0], [1.0, 1.0]])
    torch.testing.assert_close(taylor.percentage_changes(original, reformulated), torch.tensor([20.0, 0.0, 100.0]))
    assert taylor.percentage_change(original, reformulated) == pytest.approx(40.0)


def test_reformulate_rejects_unknown_method_and_options(quadratic, batch):
    with pytest.raises(AttributionInputError, match="no Taylor reformulation"):
        taylor.reformulate("saliency", quadratic, batch, TARGETS)
    with pytest.raises(AttributionInputError, match="steps"):
        taylor.reformulate("occlusion", quadratic, batch, TARGETS, steps=3)
    with pytest.raises(AttributionInputError, match="shape"):
        taylor.percentage_changes(torch.zeros(2, 3), torch.zeros(2, 4))
