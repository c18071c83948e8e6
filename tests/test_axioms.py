"""The IG paper's axioms (Sec. 2.5-2.6) on its own examples (Sec. 2.5 and Appendix B, Figure 14)."""

import pytest
import torch
from torch import nn

import taylorlens
from taylorlens.zoo.counterexamples import SaturatedReLU


class AppendixB(nn.Module):
    """``f = ReLU(ReLU(x1) - 1 - ReLU(x2))`` (``variant=0``) or ``g = ReLU(ReLU(x1 - 1) - ReLU(x2))``: equal."""

    def __init__(self, variant: int) -> None:
        super().__init__()
        self.variant = variant
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x[:, 0], x[:, 1]
        if self.variant == 0:
            return self.relu(self.relu(x1) - 1 - self.relu(x2))
        return self.relu(self.relu(x1 - 1) - self.relu(x2))


@pytest.fixture
def point():
    return torch.tensor([[3.0, 1.0]], dtype=torch.float64)


def test_integrated_gradients_passes_every_axiom(point):
    report = taylorlens.axioms.check("integrated_gradients", AppendixB(0).eval(), point,
                                     equivalent_model=AppendixB(1).eval())
    assert report.passed and all(row.passed for row in report)
    assert "implementation_invariance" in str(report)


def test_deeplift_breaks_implementation_invariance_on_figure_14(point):
    report = taylorlens.axioms.check("deeplift", AppendixB(0).eval(), point, equivalent_model=AppendixB(1).eval())
    assert report["implementation_invariance"].passed is False
    assert report["completeness"].passed and report["sensitivity"].passed


@pytest.mark.parametrize("method", ["guided_backprop", "deconvnet"])
def test_guided_backprop_and_deconvnet_break_sensitivity_on_appendix_b(point, method):
    # x2 changes the output (f(3, 1) = 1, f(3, 0) = 2) but gets zero attribution
    report = taylorlens.axioms.check(method, AppendixB(0).eval(), point)
    assert report["sensitivity"].passed is False and report["sensitivity"].gap == 0.0
    assert report["implementation_invariance"].passed is None


def test_gradients_break_sensitivity_through_saturation():
    # Sec. 2.5: f(x) = 1 - ReLU(1 - x) from x = 0 to x = 2
    model = SaturatedReLU()
    x = torch.tensor([[2.0]], dtype=torch.float64)
    assert taylorlens.axioms.check("gradient", model, x)["sensitivity"].passed is False
    assert taylorlens.axioms.check("integrated_gradients", model, x)["sensitivity"].passed is True
    assert taylorlens.axioms.check("gradient", model, x)["completeness"].passed is False


def test_dummy_and_linearity_on_a_cnn(relu_cnn):
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    report = taylorlens.axioms.check("gradient_x_input", relu_cnn, x, 1, axioms=("dummy", "additivity", "linearity"))
    assert [row.axiom for row in report] == ["dummy", "additivity", "linearity"] and report.passed
    report = taylorlens.axioms.check("deconvnet", relu_cnn, x, 1, axioms=("linearity",))
    assert report["linearity"].passed is False
