import torch

import taylorlens
from taylorlens.metrics import completeness_gap


def test_ig_on_a_linear_model_has_no_completeness_gap(linear_model):
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    a = taylorlens.attribute(linear_model, x, None, method="integrated_gradients", steps=4)
    gap = completeness_gap(linear_model, x, a, None)
    assert float(gap.absolute.max()) < 1e-12 and float(gap.relative.max()) < 1e-12
    assert torch.allclose(gap.delta, linear_model(x) - linear_model(torch.zeros_like(x)))


def test_gradient_gap_is_the_difference_to_the_output_change(linear_model):
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    a = taylorlens.attribute(linear_model, x, None, method="gradient")
    gap = completeness_gap(linear_model, x, a, None, baseline=0.5)
    expected = linear_model.weight.sum() - (linear_model(x) - linear_model(torch.full_like(x, 0.5)))
    assert torch.allclose(gap.gap, expected) and torch.allclose(gap.relative, expected.abs() / gap.delta.abs())
