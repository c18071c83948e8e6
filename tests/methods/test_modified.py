"""DeepLIFT (Rescale), epsilon-LRP, guided backprop and deconvnet (Ancona et al. 2018; IG paper Appendix B)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import taylorlens
from taylorlens.zoo.counterexamples import AppendixBF, AppendixBG, ReluProduct
from tests.slow_references import slow_epsilon_lrp, slow_rescale_deeplift

POINT = torch.tensor([[3.0, 1.0]], dtype=torch.float64)






@pytest.mark.parametrize(
    ("model", "expected"),
    [(AppendixBF(), [[1.5, -0.5]]), (AppendixBG(), [[2.0, -1.0]])],
    ids=["f", "g"],
)
def test_deeplift_breaks_implementation_invariance_on_the_appendix_b_networks(model, expected):
    # By hand (zero baseline): for f the outer ReLU sees z = 1 vs z_ref = -1, multiplier 1/2, so
    # (3 * 1/2, 1 * -1/2); for g, ReLU(x1 - 1) sees 2 vs -1 (multiplier 2/3) and the outer ReLU 1 vs 0, so
    # (3 * 2/3, -1). The extracted Fig. 14 text swaps these rows; the values here follow from Eq. 4.
    maps = taylorlens.attribute(model.eval(), POINT, method="deeplift")
    torch.testing.assert_close(maps, torch.tensor(expected, dtype=torch.float64))


@pytest.mark.parametrize("method", ["guided_backprop", "deconvnet"])
def test_guided_backprop_and_deconvnet_give_zero_to_x2_on_the_appendix_b_network(method):
    # IG paper Appendix B: f decreases in x2, yet the negative signal at ReLU(x2) is never passed back.
    for x in (POINT, torch.tensor([[5.0, 2.0]], dtype=torch.float64)):
        maps = taylorlens.attribute(AppendixBF().eval(), x, method=method)
        assert maps[0, 1].item() == 0.0
        assert maps[0, 0].item() == 1.0


def test_deeplift_misses_completeness_on_a_multiplicative_unit():
    # Ancona Sec. 3.1. Zero baseline: ReLU(x1 - 1) has multiplier (2 - 0) / (2 - -1) = 2/3, ReLU(x2) has 1,
    # the product keeps its ordinary gradient (1, 2): DeepLIFT = (3 * 2/3 * 1, 1 * 1 * 2) = (2, 2), summing
    # to 4 while h(x) - h(0) = 2.
    maps = taylorlens.attribute(ReluProduct().eval(), POINT, method="deeplift")
    torch.testing.assert_close(maps, torch.tensor([[2.0, 2.0]], dtype=torch.float64))
    assert maps.sum().item() != pytest.approx(2.0)


class SigmoidThenTanh(nn.Sequential):
    """Two nonlinearities in a row (where Captum 0.9.0's DeepLift is wrong, its issue #1104)."""

    def __init__(self) -> None:
        super().__init__(nn.Linear(5, 7), nn.Sigmoid(), nn.Tanh(), nn.Linear(7, 4), nn.Softplus(), nn.Linear(4, 3))


@pytest.mark.parametrize("activation", [nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.ELU, "sigmoid_tanh"])
def test_deeplift_is_complete_and_matches_hand_chained_rescale_multipliers(make_mlp, make_inputs, activation):
    if activation == "sigmoid_tanh":
        torch.manual_seed(0)
        model = SigmoidThenTanh().double().eval()
    else:
        model = make_mlp(activation)
    x, baseline = make_inputs(4, 5), make_inputs(4, 5, seed=5)
    target = torch.tensor([0, 1, 2, 1])
    maps = taylorlens.attribute(model, x, target, "deeplift", baseline=baseline)
    with torch.no_grad():
        delta = model(x).gather(1, target[:, None])[:, 0] - model(baseline).gather(1, target[:, None])[:, 0]
    torch.testing.assert_close(maps.sum(dim=1), delta, atol=1e-10, rtol=0)
    torch.testing.assert_close(maps, slow_rescale_deeplift(model, x, baseline, target))


@pytest.mark.parametrize("activation", [nn.ReLU, nn.Tanh, nn.Softplus])
def test_epsilon_lrp_matches_relevance_redistribution_of_eq_2(make_mlp, make_inputs, activation):
    model = make_mlp(activation)
    x, target = make_inputs(3, 5), torch.tensor([2, 0, 1])
    maps = taylorlens.attribute(model, x, target, "epsilon_lrp")
    torch.testing.assert_close(maps, slow_epsilon_lrp(model, x, target, 1e-9))


def test_epsilon_lrp_places_a_large_stabiliser_on_every_hidden_pre_activation(make_inputs):
    # The model ends in a nonlinearity, so every stabiliser of Eq. 2 sits on a hidden pre-activation.
    # (For models ending in a linear unit, see the report: the top unit's own stabiliser is not applied.)
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3), nn.Tanh()).double().eval()
    x, target = make_inputs(3, 5), torch.tensor([2, 0, 1])
    maps = taylorlens.attribute(model, x, target, "epsilon_lrp", epsilon=0.1)
    torch.testing.assert_close(maps, slow_epsilon_lrp(model, x, target, 0.1))
    assert not torch.allclose(maps, slow_epsilon_lrp(model, x, target, 1e-9))


@pytest.mark.parametrize("network", ["mlp", "cnn_max", "cnn_avg"])
def test_epsilon_lrp_equals_gradient_x_input_on_relu_networks(make_mlp, make_cnn, make_inputs, network):
    # Ancona Prop. 3 (i).
    if network == "mlp":
        model, x = make_mlp(nn.ReLU), make_inputs(4, 5)
    else:
        model, x = make_cnn(nn.ReLU, pool=network[4:]), make_inputs(4, 2, 6, 6)
    lrp = taylorlens.attribute(model, x, 1, "epsilon_lrp")
    torch.testing.assert_close(lrp, taylorlens.attribute(model, x, 1, "gradient_x_input"))


@pytest.mark.parametrize("activation", [nn.Tanh, nn.ReLU])
def test_epsilon_lrp_equals_zero_baseline_deeplift_without_biases(make_mlp, make_inputs, activation):
    # Ancona Prop. 3 (ii): no biases and f(0) = 0 make every reference activation zero.
    model, x = make_mlp(activation, bias=False), make_inputs(4, 5)
    lrp = taylorlens.attribute(model, x, 2, "epsilon_lrp")
    torch.testing.assert_close(lrp, taylorlens.attribute(model, x, 2, "deeplift"))
    with_bias = make_mlp(activation, bias=True)
    assert not torch.allclose(
        taylorlens.attribute(with_bias, x, 2, "epsilon_lrp"), taylorlens.attribute(with_bias, x, 2, "deeplift")
    )


@pytest.mark.parametrize("method", ["guided_backprop", "deconvnet"])
def test_guided_rules_match_a_hand_written_backward_pass(make_mlp, make_inputs, method):
    model, x = make_mlp(nn.ReLU, sizes=(5, 8, 6, 8, 3)), make_inputs(3, 5)
    maps = taylorlens.attribute(model, x, 0, method)
    for b in range(3):
        pre_activations, a = [], x[b]
        with torch.no_grad():
            for layer in model:
                if isinstance(layer, nn.ReLU):
                    pre_activations.append(a)
                a = layer(a)
        signal = model[-1].weight[0].detach()
        for layer in reversed(list(model)[:-1]):
            if isinstance(layer, nn.ReLU):
                z = pre_activations.pop()
                signal = signal.clamp(min=0) * ((z > 0).to(z.dtype) if method == "guided_backprop" else 1)
            else:
                signal = layer.weight.detach().T @ signal
        torch.testing.assert_close(maps[b], signal)


def test_all_methods_equal_weight_times_input_on_a_linear_model(make_inputs):
    # Ancona Prop. 4 / Appendix A.3: on S_c(x) = sum_i (w_ci x_i) + b_c, Gradient*Input, IG, DeepLIFT and
    # epsilon-LRP (zero baselines) and Occlusion-1 all give w_ci x_i.
    torch.manual_seed(0)
    model = nn.Linear(6, 3).double().eval()
    x = make_inputs(4, 6)
    expected = model.weight[1].detach() * x
    for method in ("gradient_x_input", "integrated_gradients", "deeplift", "epsilon_lrp", "occlusion"):
        torch.testing.assert_close(taylorlens.attribute(model, x, 1, method), expected, msg=method)


class _SquareAndScale(nn.Module):
    """``w2 . (W1 x)^2 * exp(s)``: a power nonlinearity of the inputs and an exp of a parameter only."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.first, self.second = nn.Linear(4, 3).double(), nn.Linear(3, 1).double()
        self.log_scale = nn.Parameter(torch.tensor(0.3, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x) ** 2)[:, 0] * torch.exp(self.log_scale)


def test_deeplift_rescales_power_nonlinearities_and_ignores_functions_of_parameters():
    model, x = _SquareAndScale(), torch.randn(5, 4, dtype=torch.float64)
    maps = taylorlens.attribute(model, x, None, "deeplift")
    # Rescale on the single nonlinearity z -> z^2 is exact: summation to delta holds to float error
    with torch.no_grad():
        delta = model(x) - model(torch.zeros_like(x))
    torch.testing.assert_close(maps.sum(1), delta)
    # the hand-computed multiplier of z^2 against z_ref = b1 is (z^2 - b1^2) / (z - b1) = z + b1
    with torch.no_grad():
        z, b1 = model.first(x), model.first.bias
        expected = x * ((model.second.weight[0] * (z + b1)) @ model.first.weight) * torch.exp(model.log_scale)
    torch.testing.assert_close(maps, expected)


def test_modified_gradients_refuse_an_input_dependent_exponent():
    model = lambda x: (x[:, :2] ** x[:, 2:]).sum(1)  # noqa: E731
    with pytest.raises(taylorlens.UnsupportedModelError, match="tensor exponent"):
        taylorlens.attribute(model, torch.rand(3, 4, dtype=torch.float64) + 0.5, None, "deeplift")
