"""Adaptive noising (SmoothTaylor paper, Algorithm 1) against a scalar transcription of the algorithm."""

from contextlib import nullcontext

import pytest
import torch

import taylorlens
from taylorlens.engine.checks import AttributionInputError
from taylorlens.metrics import autvc


def algorithm_1(compute_auc, sigma, i_max=20, s_max=3, alpha=0.1, gamma=0.9):
    """Algorithm 1, line by line, for one input."""
    auc = compute_auc(sigma)
    i, s, best_sigma, best_auc = 1, 0, sigma, auc
    while i <= i_max:
        auc_s = compute_auc(abs(sigma + alpha))
        if auc_s > auc:
            sigma = abs(sigma - alpha)
            auc_s = compute_auc(sigma)
        else:
            sigma = abs(sigma + alpha)
        if auc_s > auc:
            if s <= s_max:
                alpha, s = alpha * gamma, s + 1
            else:
                break
        else:
            s = 0
            if auc_s < best_auc:
                best_auc, best_sigma = auc_s, sigma
        auc, i = auc_s, i + 1
    return best_sigma


def test_adaptive_noising_follows_algorithm_1(linear_model):
    # on a linear model SmoothTaylor is -sigma * mean(eps) * w: ||map||_1 = sigma * K, so an objective of
    # (||map||_1 - c(x))^2 makes the search a known 1-D problem (the search evaluates sub-batches, so c
    # is read from the inputs)
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)

    def wanted(inputs):
        return 3 * inputs.abs().flatten(1).mean(1) + 0.2

    def objective(model, inputs, maps, target):
        return (maps.abs().flatten(1).sum(1) - wanted(inputs)) ** 2

    unit = taylorlens.attribute(linear_model, x, None, method="smooth_taylor", sigma=1.0, n_roots=8, seed=2)
    scale = unit.abs().flatten(1).sum(1)
    maps = taylorlens.attribute(linear_model, x, None, method="smooth_taylor", sigma=objective, n_roots=8, seed=2)
    sigmas = maps.sigmas
    for b in range(3):
        start = x[b].abs().mean().item()
        c = wanted(x[b : b + 1]).item()
        expected = algorithm_1(lambda s, b=b, c=c: (s * scale[b].item() - c) ** 2, start)
        assert abs(sigmas[b].item() - expected) < 1e-9
    assert torch.allclose(maps, sigmas.view(-1, 1, 1, 1) * unit)


def smooth_taylor(digits, count, **options):
    """SmoothTaylor maps of the first ``count`` digits with 10 roots, seed 0."""
    model, x, y = digits
    return taylorlens.attribute(model, x[:count], y[:count], method="smooth_taylor", n_roots=10, seed=0, **options)


def test_smooth_taylor_method_exposes_the_chosen_sigmas(digits):
    settings = {"i_max": 3, "metric_options": {"min_size": 4}}
    maps = smooth_taylor(digits, 4, adaptive="autvc", adaptive_options=settings)
    assert maps.shape == digits[1][:4].shape and maps.sigmas.shape == (4,) and bool((maps.sigmas > 0).all())

    def objective(model, inputs, maps, target):  # the built-in objective, as a user would write it
        return autvc(maps, min_size=4).autvc

    again = smooth_taylor(digits, 4, adaptive=objective, adaptive_options={"i_max": 3})
    assert torch.allclose(again, maps) and torch.equal(again.sigmas, maps.sigmas)
    aupc_maps = smooth_taylor(digits, 4, adaptive="aupc",
                              adaptive_options={"i_max": 2, "metric_options": {"k": 2, "L": 4, "P": 4}})
    assert aupc_maps.sigmas.shape == (4,)


def test_old_spellings_of_adaptive_noising_warn_and_give_the_same_maps(digits):
    settings = {"i_max": 2, "metric_options": {"min_size": 4}}
    new = smooth_taylor(digits, 3, adaptive="autvc", adaptive_options=settings)
    with pytest.warns(DeprecationWarning, match="adaptive_options") as caught:
        old = smooth_taylor(digits, 3, sigma="adaptive_autvc", adaptive=settings)
    assert any("adaptive='autvc'" in str(w.message) for w in caught)
    assert torch.equal(old, new) and torch.equal(old.sigmas, new.sigmas)


@pytest.mark.parametrize(("options", "message"), [
    ({"adaptive": "adaptive_aupc"}, "adaptive must be None, one of 'aupc', 'autvc'"),
    ({"adaptive_options": {"i_max": 2}}, "without adaptive="),
    ({"adaptive": "aupc", "adaptive_options": [2]}, "adaptive_options must be a dict"),
    ({"adaptive": "aupc", "adaptive_options": {"steps": 2}}, "steps"),
    ({"sigma": "wide"}, "sigma must be a number"),
    ({"sigma": "adaptive_aupc", "adaptive": "autvc"}, "given twice"),
])
def test_adaptive_noising_refuses_bad_options(digits, options, message):
    warns = "adaptive_" in str(options.get("sigma"))
    with pytest.warns(DeprecationWarning) if warns else nullcontext():
        with pytest.raises(AttributionInputError, match=message):
            smooth_taylor(digits, 2, **options)
