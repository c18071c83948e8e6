import pytest
import torch

from taylorlens.metrics import infidelity


def test_exact_attributions_of_a_linear_model_have_zero_infidelity(linear_model):
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    relevance = x * linear_model.weight  # square removal to 0 reads attributions in output units
    square = infidelity(linear_model, x, relevance, None, seed=0)
    assert torch.allclose(square.attribution_terms, square.output_drops, atol=1e-12)
    assert float(square.infidelity.max()) < 1e-20
    gradient = linear_model.weight.detach().expand_as(x)  # Gaussian perturbations read sensitivities
    gaussian = infidelity(linear_model, x, gradient, None, perturbation="gaussian", n_perturbations=50, seed=0)
    assert float(gaussian.infidelity.max()) < 1e-20


def test_normalisation_removes_the_attribution_scale(linear_model):
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    relevance = 2 * x * linear_model.weight
    normalised = infidelity(linear_model, x, relevance, None, seed=0)
    raw = infidelity(linear_model, x, relevance, None, normalize=False, seed=0)
    assert torch.allclose(normalised.beta, torch.full((2,), 0.5, dtype=torch.float64))
    assert float(normalised.infidelity.max()) < 1e-20
    assert torch.allclose(raw.infidelity, (raw.output_drops**2).mean(1))


def test_infidelity_matches_its_definition_for_a_nonlinear_model(relu_cnn):
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    a = torch.randn_like(x)
    result = infidelity(relu_cnn, x, a, 0, perturbation="gaussian", n_perturbations=7, sigma=0.3, normalize=False,
                        seed=5)
    expected = ((result.attribution_terms - result.output_drops) ** 2).mean(1)
    assert torch.allclose(result.infidelity, expected)
    again = infidelity(relu_cnn, x, a, 0, perturbation="gaussian", n_perturbations=7, sigma=0.3, normalize=False,
                       seed=5, batch_size=3)
    assert torch.allclose(result.output_drops, again.output_drops)


def test_square_sizes_are_checked(linear_model):
    x = torch.randn(1, 1, 8, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match="square_size"):
        infidelity(linear_model, x, x, None, square_size=9)
    fixed = infidelity(linear_model, x, torch.ones_like(x), None, square_size=3, normalize=False, seed=0)
    assert torch.allclose(fixed.attribution_terms, torch.full_like(fixed.attribution_terms, 9.0))
