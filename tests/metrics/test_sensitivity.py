import pytest
import torch

import taylorlens
from taylorlens.metrics import default_n_grid, sensitivity_n


@pytest.mark.parametrize("method", ["gradient_x_input", "integrated_gradients", "deeplift", "occlusion"])
def test_sensitivity_n_is_one_for_every_n_on_a_linear_model(linear_model, method):
    # Ancona et al. 2018, Prop. 4: on a linear model every method satisfies Sensitivity-n for all n.
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    a = taylorlens.attribute(linear_model, x, None, method=method)
    result = sensitivity_n(linear_model, x, a, None, n_subsets=20, seed=0)
    assert torch.equal(result.n, default_n_grid(64))
    assert torch.allclose(result.correlation, torch.ones_like(result.correlation), atol=1e-9)
    assert torch.allclose(result.attribution_sums, result.output_drops, atol=1e-9)


def test_default_grid_runs_log_spaced_from_one_to_eighty_percent():
    grid = default_n_grid(784)
    assert grid[0] == 1 and grid[-1] == 627 and bool((grid[1:] > grid[:-1]).all())


def test_occlusion_1_satisfies_sensitivity_1_on_a_nonlinear_model(relu_cnn):
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    a = taylorlens.attribute(relu_cnn, x, 1, method="occlusion")
    result = sensitivity_n(relu_cnn, x, a, 1, n=[1, 10], n_subsets=30, seed=0)
    assert torch.allclose(result.correlation[:, 0], torch.ones(3, dtype=torch.float64), atol=1e-9)
    assert bool((result.correlation[:, 1] < 1 - 1e-6).all())


@pytest.mark.parametrize("method", ["integrated_gradients", "deeplift"])
def test_ig_and_deeplift_satisfy_sensitivity_N_without_multiplicative_units(relu_cnn, method):
    # at n = N every subset is the whole input: the two sides must agree (completeness); the per-input
    # correlation over identical subsets is undefined (NaN)
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    a = taylorlens.attribute(relu_cnn, x, 2, method=method, **({"steps": 2000} if method != "deeplift" else {}))
    result = sensitivity_n(relu_cnn, x, a, 2, n=[64], n_subsets=5, seed=0)
    assert torch.allclose(result.attribution_sums, result.output_drops, atol=1e-3)
    assert bool(result.correlation.isnan().all())


def test_pixel_groups_remove_all_colour_channels_together():
    torch.manual_seed(0)
    weight = torch.randn(3, 5, 5, dtype=torch.float64)
    model = lambda x: (x * weight).flatten(1).sum(1)  # noqa: E731
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    a = x * weight
    result = sensitivity_n(model, x, a, None, n=[1, 3, 20], n_subsets=10, feature_groups="pixel", seed=0)
    assert torch.allclose(result.attribution_sums, result.output_drops, atol=1e-9)
    # a per-channel map summed per pixel, used with per-channel removal, does not add up: the grouping matters
    single = sensitivity_n(model, x, a, None, n=[3], n_subsets=10, seed=0)
    assert not torch.allclose(single.attribution_sums[:, 0], result.attribution_sums[:, 1])


def test_token_groups_and_mask_groups_count_groups():
    x = torch.randn(2, 7, 4)
    model = lambda v: v.flatten(1).sum(1)  # noqa: E731
    result = sensitivity_n(model, x, x, None, feature_groups="token", n_subsets=4, seed=0)
    assert int(result.n[-1]) == 5  # 80% of 7 words
    mask = torch.arange(28).view(7, 4) // 14  # two halves
    result = sensitivity_n(model, x, x, None, feature_groups=mask, n=[1], n_subsets=4, seed=0)
    assert torch.allclose(result.attribution_sums, result.output_drops, atol=1e-5)


def test_sampled_subsets_do_not_depend_on_chunking_and_follow_the_seed(relu_cnn):
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    a = taylorlens.attribute(relu_cnn, x, 0, method="gradient_x_input")
    first = sensitivity_n(relu_cnn, x, a, 0, n_subsets=10, seed=3)
    chunked = sensitivity_n(relu_cnn, x, a, 0, n_subsets=10, seed=3, batch_size=7)
    other = sensitivity_n(relu_cnn, x, a, 0, n_subsets=10, seed=4)
    assert torch.allclose(first.output_drops, chunked.output_drops)
    assert not torch.allclose(first.attribution_sums, other.attribution_sums)


def test_sensitivity_n_matches_a_slow_loop_over_subsets(relu_cnn):
    # straight from Sec. 4.1: remove each subset, one forward each, and correlate. The subsets are
    # recovered from the attribution sums of binary codes (feature i gets weight 2**i, in two exact halves).
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    a = taylorlens.attribute(relu_cnn, x, 1, method="gradient_x_input")
    fast = sensitivity_n(relu_cnn, x, a, 1, n=[1, 4], n_subsets=6, seed=9)
    powers = 2.0 ** (torch.arange(64, dtype=torch.float64) % 32)
    halves = [torch.where(torch.arange(64) // 32 == h, powers, 0.0).view(1, 1, 8, 8).expand_as(x) for h in (0, 1)]
    low, high = (sensitivity_n(relu_cnn, x, c, 1, n=[1, 4], n_subsets=6, seed=9).attribution_sums for c in halves)
    for b in range(2):
        for k in range(2):
            for s in range(6):
                code = int(low[b, k, s].item()) + (int(high[b, k, s].item()) << 32)
                mask = torch.tensor([(code >> i) & 1 for i in range(64)], dtype=torch.bool).view(1, 8, 8)
                removed = torch.where(mask, 0.0, x[b])
                drop = relu_cnn(x[b : b + 1])[0, 1] - relu_cnn(removed[None])[0, 1]
                assert fast.output_drops[b, k, s].item() == pytest.approx(drop.item(), abs=1e-9)
                assert fast.attribution_sums[b, k, s].item() == pytest.approx(a[b][mask].sum().item(), abs=1e-9)
