"""Model-parameter randomization test (Adebayo et al. 2018) and its similarity measures."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
from skimage.feature import hog
from skimage.metrics import structural_similarity
from torch import nn

import taylorlens
from taylorlens.metrics import data_randomization_test, map_similarity, randomization_test, saliency_map
from taylorlens.metrics.randomization import average_ranks, spearman, ssim


def test_gradient_of_a_linear_model_is_uncorrelated_after_randomising_its_only_layer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 1), nn.Flatten(0)).double().eval()
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    correlations = [randomization_test(model, x, None, "gradient", seed=seed).similarity["spearman"][0, 0]
                    for seed in range(25)]
    # the gradient is the weight vector; a fresh uniform draw is independent of it: E[Spearman] = 0, sd ~ 0.13
    assert abs(float(torch.stack(correlations).mean())) < 0.1


def test_guided_backprop_survives_randomising_the_top_layer_and_gradient_does_not(relu_cnn):
    x = torch.randn(8, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    options = {"seed": 0, "similarity": ("spearman", "ssim")}
    guided = randomization_test(relu_cnn, x, 0, "guided_backprop", **options)
    gradient = randomization_test(relu_cnn, x, 0, "gradient", **options)
    assert guided.layers == gradient.layers == ["5", "2", "0"]  # from the output down
    assert float(guided.similarity["spearman"][:, 0].mean()) > 0.5  # Adebayo et al.'s failing example
    assert float(gradient.similarity["spearman"][:, 0].mean()) < 0.3


def test_the_model_is_copied_and_independent_mode_randomises_one_layer_at_a_time(relu_cnn):
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    before = {k: v.clone() for k, v in relu_cnn.state_dict().items()}
    cascading = randomization_test(relu_cnn, x, 1, "gradient", seed=5)
    independent = randomization_test(relu_cnn, x, 1, "gradient", seed=5, mode="independent")
    assert all(torch.equal(before[k], v) for k, v in relu_cnn.state_dict().items())
    assert cascading.curve.shape == (3, 3) and set(cascading.similarity) == {"spearman_abs", "spearman", "ssim"}
    torch.testing.assert_close(cascading.curve[:, 0], independent.curve[:, 0])  # the same first layer
    assert not torch.allclose(cascading.curve[:, 1:], independent.curve[:, 1:])
    torch.testing.assert_close(cascading.original, taylorlens.attribute(relu_cnn, x, 1, "gradient"))
    torch.testing.assert_close(cascading.value, cascading.curve.mean(1))


def test_data_randomization_of_linear_models_is_the_rank_correlation_of_their_weights():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 1), nn.Flatten(0)).double().eval()
    other = nn.Sequential(nn.Flatten(), nn.Linear(64, 1), nn.Flatten(0)).double().eval()
    negated = nn.Sequential(nn.Flatten(), nn.Linear(64, 1), nn.Flatten(0)).double().eval()
    negated.load_state_dict({k: -v for k, v in model.state_dict().items()})
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    weights, others = model[1].weight.detach().flatten().numpy(), other[1].weight.detach().flatten().numpy()
    # the gradient of a linear model is its weight vector, whatever the input
    result = data_randomization_test(model, x, None, "gradient", shuffled_model=other)
    assert result.similarity["spearman"].tolist() == pytest.approx([scipy.stats.spearmanr(weights, others)[0]] * 2)
    abs_rho = scipy.stats.spearmanr(np.abs(weights), np.abs(others))[0]
    assert result.similarity["spearman_abs"].tolist() == pytest.approx([abs_rho] * 2)
    torch.testing.assert_close(result.value, result.similarity["spearman_abs"])
    flipped = data_randomization_test(model, x, None, "gradient", shuffled_model=negated, similarity=("spearman",
                                                                                                     "spearman_abs"))
    assert flipped.similarity["spearman"].tolist() == pytest.approx([-1.0, -1.0])
    assert flipped.similarity["spearman_abs"].tolist() == pytest.approx([1.0, 1.0])
    torch.testing.assert_close(flipped.shuffled, -flipped.original)


def test_guided_backprop_survives_the_data_randomization_test_on_the_digit_cnn_and_gradient_does_not():
    from taylorlens import zoo

    x, y = zoo.dataset("digits", split="test")
    model, shuffled = zoo.load("digits_cnn_relu"), "digits_cnn_relu_shuffled_labels"
    guided = data_randomization_test(model, x[:16], y[:16], "guided_backprop", shuffled_model=shuffled)
    gradient = data_randomization_test(model, x[:16], y[:16], "gradient", shuffled_model=shuffled)
    # measured on 32 digits: signed Spearman 0.69 (guided backprop) against 0.02 (gradient)
    assert float(guided.similarity["spearman"].mean()) > 0.5
    assert abs(float(gradient.similarity["spearman"].mean())) < 0.2


def test_randomization_test_matches_quantus_mprt(relu_cnn):
    import quantus

    x = torch.randn(4, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    y = relu_cnn(x).argmax(1)
    model = relu_cnn.float()

    def explain(model, inputs, targets, **_):
        return taylorlens.attribute(model, torch.as_tensor(inputs), torch.as_tensor(targets), "gradient").numpy()

    a = explain(model, x.float().numpy(), y.numpy())
    for mode, order in (("cascading", "top_down"), ("independent", "independent")):
        reference = quantus.MPRT(layer_order=order, seed=7, disable_warnings=True, display_progressbar=False)
        expected = reference(model=model, x_batch=x.float().numpy(), y_batch=y.numpy(), a_batch=a.copy(),
                             explain_func=explain, device="cpu")
        ours = randomization_test(model, x.float(), y, "gradient", mode=mode, seed=7, similarity=("spearman_abs",))
        layers = [name for name in expected if name != "original"]
        assert sorted(layers) == sorted(ours.layers) and (mode == "independent" or layers == ours.layers)
        np.testing.assert_allclose(ours.curve.numpy(), np.array([expected[n] for n in ours.layers]).T, atol=1e-6)


def test_similarities_match_scipy_and_skimage():
    generator = torch.Generator().manual_seed(3)
    first = torch.rand(3, 2, 12, 10, generator=generator, dtype=torch.float64)
    second = first + 0.3 * torch.rand(3, 2, 12, 10, generator=generator, dtype=torch.float64)
    tied = (first * 4).round()
    ranks, distinct = average_ranks(tied.flatten(1)), average_ranks(first.flatten(1))  # ties / none (fast path)
    for b in range(3):
        np.testing.assert_allclose(ranks[b].numpy() + 1, scipy.stats.rankdata(tied[b].flatten().numpy()))
        np.testing.assert_array_equal(distinct[b].numpy() + 1, scipy.stats.rankdata(first[b].flatten().numpy()))
        rho = scipy.stats.spearmanr(tied[b].flatten(), second[b].flatten()).statistic
        assert float(spearman(tied, second)[b]) == pytest.approx(rho)
    maps_a, maps_b = saliency_map(first).numpy(), saliency_map(second).numpy()
    expected = [structural_similarity(maps_a[b], maps_b[b], data_range=1.0) for b in range(3)]
    np.testing.assert_allclose(ssim(first, second).numpy(), expected, atol=1e-10)
    hogs = [np.corrcoef(hog(maps_a[b], pixels_per_cell=(2, 2), cells_per_block=(2, 2)),
                        hog(maps_b[b], pixels_per_cell=(2, 2), cells_per_block=(2, 2)))[0, 1] for b in range(3)]
    np.testing.assert_allclose(map_similarity(first, second, ("hog",))["hog"].numpy(), hogs, atol=1e-10)
