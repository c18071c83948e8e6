"""Taylor terms (Deng et al. 2021, first- and second-order Taylor attribution) against closed forms."""

from __future__ import annotations

import pytest
import torch

import taylorlens
from taylorlens import taylor
from taylorlens.engine import AttributionInputError

TARGETS = torch.tensor([0, 2, 1, 1, 0])


def test_quadratic_terms_match_closed_forms_batched(quadratic, batch):
    baseline = torch.linspace(-1, 1, 12, dtype=torch.float64).view(3, 4)
    t = taylor.terms(quadratic, batch, TARGETS, baseline)
    x, delta = batch.flatten(1), (baseline.flatten() - batch.flatten(1))
    q = quadratic.quadratic[TARGETS].detach()
    grad = quadratic.linear[TARGETS].detach() + torch.einsum("bij,bj->bi", q, x)
    diag = torch.diagonal(q, dim1=1, dim2=2)
    h_delta = torch.einsum("bij,bj->bi", q, delta)
    torch.testing.assert_close(t.delta.flatten(1), delta)
    torch.testing.assert_close(t.first_order.flatten(1), grad * delta)
    torch.testing.assert_close(t.hessian_diagonal.flatten(1), diag)
    torch.testing.assert_close(t.second_independent.flatten(1), 0.5 * diag * delta**2)
    torch.testing.assert_close(t.second_interactive.flatten(1), 0.5 * delta * (h_delta - diag * delta))
    assert t.diagonal == "exact"
    # a quadratic is its own second-order expansion: epsilon = 0 up to float error
    assert t.error.abs().max() < 1e-12
    assert t.relative_error.max() < 1e-12
    totals = t.totals()
    torch.testing.assert_close(sum(totals.values()), t.output_change)


def test_equal_split_equals_integrated_gradients_on_quadratic(quadratic, batch):
    # on a quadratic the path gradient is affine in alpha, so the midpoint rule is exact for any step count
    ig = taylorlens.attribute(quadratic, batch, TARGETS, "integrated_gradients", baseline=0.3,
                              rule="riemann_middle", steps=2)
    t = taylor.terms(quadratic, batch, TARGETS, 0.3)
    torch.testing.assert_close(-t.attribution, ig, atol=1e-12, rtol=0)
    method = taylorlens.attribute(quadratic, batch, TARGETS, "taylor", baseline=0.3)
    torch.testing.assert_close(method, ig, atol=1e-12, rtol=0)


def test_interaction_matrix_is_pairwise_terms_and_sums_to_split(quadratic, batch):
    t = taylor.terms(quadratic, batch, TARGETS, 0.0, interactions=True)
    delta = t.delta.flatten(1)
    q = quadratic.quadratic[TARGETS].detach()
    expected = q * delta[:, :, None] * delta[:, None, :]
    expected = expected - torch.diag_embed(torch.diagonal(expected, dim1=1, dim2=2))
    torch.testing.assert_close(t.interactions, expected)
    torch.testing.assert_close(0.5 * t.interactions.sum(2), t.second_interactive.flatten(1))


def test_order_one_is_first_order_terms_and_gradient_x_input(quadratic, batch):
    t = taylor.terms(quadratic, batch, TARGETS, 0.0, order=1)
    assert t.second_independent is None and t.hessian_diagonal is None
    torch.testing.assert_close(t.attribution, t.first_order)
    gi = taylorlens.attribute(quadratic, batch, TARGETS, "gradient_x_input")
    torch.testing.assert_close(-t.attribution, gi)
    torch.testing.assert_close(taylorlens.attribute(quadratic, batch, TARGETS, "taylor", order=1), gi)


def test_hvp_terms_equal_full_hessian_route_on_smooth_mlps(make_smooth_mlp, batch):
    for seed in range(3):
        model = make_smooth_mlp(12, seed)
        t = taylor.terms(model, batch, TARGETS, -0.5)
        for b in range(batch.shape[0]):
            def explained(v, b=b, model=model):
                return model(v.view(1, 3, 4))[0, TARGETS[b]]

            flat = batch[b].flatten()
            hessian = torch.autograd.functional.hessian(explained, flat)
            grad = torch.autograd.functional.jacobian(explained, flat)
            delta = -0.5 - flat
            torch.testing.assert_close(t.hessian_diagonal[b].flatten(), torch.diagonal(hessian))
            expected = grad * delta + 0.5 * delta * (hessian @ delta)
            torch.testing.assert_close(t.attribution[b].flatten(), expected)
            expected_error = explained(torch.full_like(flat, -0.5)) - explained(flat) - expected.sum()
            torch.testing.assert_close(t.error[b], expected_error)


def test_double_backward_fallback_matches_forward_over_reverse(make_smooth_mlp, batch, monkeypatch):
    from taylorlens.engine import hessian

    model = make_smooth_mlp(12, 0)
    fast = taylor.terms(model, batch, TARGETS, 0.2)

    def no_forward_mode(*args, **kwargs):
        raise NotImplementedError("no forward-mode derivative")

    monkeypatch.setattr(hessian, "jvp", no_forward_mode)
    slow = taylor.terms(model, batch, TARGETS, 0.2)
    torch.testing.assert_close(slow.attribution, fast.attribution)
    torch.testing.assert_close(slow.hessian_diagonal, fast.hessian_diagonal)


def test_hutchinson_diagonal_converges_to_exact(quadratic, batch):
    exact = taylor.terms(quadratic, batch, TARGETS, 0.0).hessian_diagonal.flatten(1)
    q = quadratic.quadratic[TARGETS].detach()
    # Rademacher probes: the estimate of H_ii is unbiased with variance sum_{j != i} H_ij^2 / P per entry
    off_diagonal = (q**2).sum(2) - torch.diagonal(q, dim1=1, dim2=2) ** 2
    errors = []
    for probes in (16, 256, 4096):
        t = taylor.terms(quadratic, batch, TARGETS, 0.0, diagonal="hutchinson", n_probes=probes, seed=0)
        assert t.diagonal == "hutchinson"
        error = (t.hessian_diagonal.flatten(1) - exact).abs()
        # 5 standard errors: a miss on any of the 60 entries has probability < 60 * 6e-7 (CLT, 16+ probes)
        assert bool((error <= 5 * (off_diagonal / probes).sqrt()).all())
        errors.append(error.pow(2).mean().sqrt())
    # the RMS error shrinks like 1/sqrt(P): 16x more probes, ~4x smaller (allow 2x for the fixed seed)
    assert errors[1] < errors[0] / 2 and errors[2] < errors[1] / 2


def test_auto_diagonal_switches_to_hutchinson_above_threshold(quadratic, batch):
    t = taylor.terms(quadratic, batch, TARGETS, 0.0, max_exact_features=8, n_probes=4, seed=0)
    assert t.diagonal == "hutchinson"
    # the split attribution does not depend on the diagonal (it cancels): still exact
    exact = taylor.terms(quadratic, batch, TARGETS, 0.0)
    torch.testing.assert_close(t.attribution, exact.attribution)


def test_chunking_does_not_change_terms(make_smooth_mlp, batch):
    model = make_smooth_mlp(12, 1)
    whole = taylor.terms(model, batch, TARGETS, 0.1)
    chunked = taylor.terms(model, batch, TARGETS, 0.1, batch_size=5)
    torch.testing.assert_close(chunked.hessian_diagonal, whole.hessian_diagonal)
    torch.testing.assert_close(chunked.attribution, whole.attribution)


def test_bad_arguments_are_named(quadratic, batch):
    with pytest.raises(AttributionInputError, match="order"):
        taylor.terms(quadratic, batch, TARGETS, order=3)
    with pytest.raises(AttributionInputError, match="diagonal"):
        taylor.terms(quadratic, batch, TARGETS, diagonal="random")
    with pytest.raises(AttributionInputError, match="full Hessian"):
        taylor.terms(quadratic, batch, TARGETS, interactions=True, max_exact_features=4)
    with pytest.raises(AttributionInputError, match="n_probes"):
        taylor.terms(quadratic, batch, TARGETS, diagonal="hutchinson", n_probes=0)
    with pytest.raises(AttributionInputError, match="order"):
        taylorlens.attribute(quadratic, batch, TARGETS, "taylor", order=0)


def test_relative_error_handles_zero_output_change():
    error = torch.tensor([0.0, 1.0, 1.0])
    change = torch.tensor([0.0, 0.0, -4.0])
    torch.testing.assert_close(taylor.relative_error(error, change), torch.tensor([0.0, float("inf"), 0.25]))


def test_diagonal_none_keeps_attribution_and_error(make_smooth_mlp, batch):
    model = make_smooth_mlp(12, 0)
    full = taylor.terms(model, batch, TARGETS, 0.3)
    light = taylor.terms(model, batch, TARGETS, 0.3, diagonal="none")
    assert light.hessian_diagonal is None and light.second_interactive is None and light.diagonal is None
    torch.testing.assert_close(light.attribution, full.attribution)
    torch.testing.assert_close(light.error, full.error)
