"""The modified-gradient context: catches modules and functional calls, refuses what it cannot handle."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import taylorlens
from taylorlens import AttributionInputError, UnsupportedModelError
from taylorlens.engine import EpsilonRule, Request, RescaleRule, Rule, RuleSelector, inputs_points, modified_gradients
from taylorlens.engine.modified_gradients import derivative, with_multiplier
from taylorlens.engine.reference_tape import ReferenceTape

MODIFIED = ["deeplift", "epsilon_lrp"]


def linear_layers(seed: int = 0) -> tuple[nn.Linear, nn.Linear, nn.Linear]:
    torch.manual_seed(seed)
    return nn.Linear(4, 5).double(), nn.Linear(5, 5).double(), nn.Linear(5, 3).double()


class ModuleNet(nn.Module):
    def __init__(self, first: nn.Module, second: nn.Module) -> None:
        super().__init__()
        self.l1, self.l2, self.l3 = linear_layers()
        self.first, self.second = first, second

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l3(self.second(self.l2(self.first(self.l1(x)))))


class FunctionalNet(nn.Module):
    def __init__(self, first, second) -> None:
        super().__init__()
        self.l1, self.l2, self.l3 = linear_layers()
        self.first, self.second = first, second

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l3(self.second(self.l2(self.first(self.l1(x)))))


PAIRS = [
    (nn.ReLU(), nn.ReLU(inplace=True), F.relu, lambda t: t.relu()),
    (nn.Tanh(), nn.Sigmoid(), lambda t: t.tanh(), torch.sigmoid),
    (nn.Softplus(), nn.ELU(), F.softplus, F.elu),
    (nn.Sigmoid(), nn.Tanh(), F.sigmoid, torch.tanh),
]


@pytest.mark.parametrize("method", MODIFIED)
@pytest.mark.parametrize("pair", PAIRS, ids=["relu", "tanh_sigmoid", "softplus_elu", "sigmoid_tanh"])
def test_modules_and_functional_calls_get_the_same_modified_gradient(make_inputs, method, pair):
    module_net = ModuleNet(pair[0], pair[1]).eval()
    functional_net = FunctionalNet(pair[2], pair[3]).eval()
    x = make_inputs(3, 4)
    from_modules = taylorlens.attribute(module_net, x, 1, method, baseline=-0.2) if method == "deeplift" else \
        taylorlens.attribute(module_net, x, 1, method)
    from_functions = taylorlens.attribute(functional_net, x, 1, method, baseline=-0.2) if method == "deeplift" else \
        taylorlens.attribute(functional_net, x, 1, method)
    torch.testing.assert_close(from_modules, from_functions)
    # The rule really replaced the gradient (it is not Gradient*Input on these networks).
    if not isinstance(pair[0], nn.ReLU) or method == "deeplift":
        assert not torch.allclose(from_modules, taylorlens.attribute(module_net, x, 1, "gradient_x_input"))


class SharedActivation(nn.Module):
    """One nn.Tanh module used twice in one forward."""

    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2, self.l3 = linear_layers(1)
        self.act = nn.Tanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l3(self.act(self.l2(self.act(self.l1(x)))))


def test_a_module_used_twice_gets_a_rescale_multiplier_at_each_use(make_inputs):
    model = SharedActivation().eval()
    x, reference = make_inputs(2, 4), make_inputs(2, 4, seed=7)
    maps = taylorlens.attribute(model, x, 2, "deeplift", baseline=reference)
    with torch.no_grad():
        expected = []
        for b in range(2):
            z1, r1 = model.l1(x[b]), model.l1(reference[b])
            m1 = (torch.tanh(z1) - torch.tanh(r1)) / (z1 - r1)
            z2, r2 = model.l2(torch.tanh(z1)), model.l2(torch.tanh(r1))
            m2 = (torch.tanh(z2) - torch.tanh(r2)) / (z2 - r2)
            chain = model.l3.weight[2] @ (m2[:, None] * model.l2.weight) @ (m1[:, None] * model.l1.weight)
            expected.append((x[b] - reference[b]) * chain)
    torch.testing.assert_close(maps, torch.stack(expected))


class SoftmaxInside(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.linear(x), dim=1)


class LSTMNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm, self.out = nn.LSTM(4, 3, batch_first=True), nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.lstm(x)[0][:, -1])


class InPlaceReLU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2 = nn.Linear(4, 5), nn.Linear(5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l2(self.l1(x).relu_())


@pytest.mark.parametrize("method", [*MODIFIED, "guided_backprop", "deconvnet"])
@pytest.mark.parametrize(
    ("model", "shape", "message"),
    [
        (SoftmaxInside(), (2, 4), "calls softmax, a nonlinearity that is not elementwise"),
        (LSTMNet(), (2, 3, 4), "calls lstm"),
        (InPlaceReLU(), (2, 4), r"in-place activation relu_\(\)"),
    ],
    ids=["softmax", "lstm", "relu_"],
)
def test_unsupported_operations_raise(make_inputs, method, model, shape, message):
    model = model.double().eval()
    with pytest.raises(UnsupportedModelError, match=message):
        taylorlens.attribute(model, make_inputs(*shape), 1, method)
    # Plain gradients still work on the same models (the in-place ReLU aside, which acts on a non-leaf).
    assert taylorlens.attribute(model, make_inputs(*shape), 1, "integrated_gradients", steps=3).shape == shape


@pytest.mark.parametrize("method", ["guided_backprop", "deconvnet"])
def test_guided_rules_refuse_a_tanh_model(make_mlp, make_inputs, method):
    with pytest.raises(UnsupportedModelError, match="defined only for ReLU-type nonlinearities.*calls tanh"):
        taylorlens.attribute(make_mlp(nn.Tanh), make_inputs(2, 5), 0, method)


def test_context_is_gone_after_the_block_and_after_an_exception(make_inputs):
    x = make_inputs(4, 3).requires_grad_(True)
    with modified_gradients(EpsilonRule(0.0)):
        y = torch.tanh(x)
    assert torch._C._len_torch_function_stack() == 0
    (grad,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(grad, torch.tanh(x) / x)  # the epsilon rule at eps = 0: f(z) / z
    with pytest.raises(ZeroDivisionError), modified_gradients(RescaleRule(), ReferenceTape()):
        raise ZeroDivisionError
    assert torch._C._len_torch_function_stack() == 0
    (plain,) = torch.autograd.grad(torch.tanh(x).sum(), x)
    torch.testing.assert_close(plain, 1 - torch.tanh(x) ** 2)


def test_rescale_multiplier_falls_back_to_the_derivative_when_input_equals_reference(make_mlp, make_inputs):
    # Baseline equal to the input: every multiplier is a 0/0 limit; the result is 0 and finite.
    model, x = make_mlp(nn.Softplus), make_inputs(2, 5)
    maps = taylorlens.attribute(model, x, 0, "deeplift", baseline=x)
    assert torch.equal(maps, torch.zeros_like(x))
    # Baseline a hair away: DeepLIFT tends to Gradient*(x - baseline).
    near = x - 1e-9
    maps = taylorlens.attribute(model, x, 0, "deeplift", baseline=near)
    grad = taylorlens.attribute(model, x, 0, "gradient")
    torch.testing.assert_close(maps, 1e-9 * grad, rtol=1e-5, atol=1e-20)


class OrdinaryGradient(Rule):
    """A rule that keeps the ordinary derivative: the odd one out in a selector."""

    name = "ordinary"

    def replace(self, f, z, reference):
        return with_multiplier(z, f(z), derivative(f, z))


def test_rule_selector_gives_one_nonlinearity_its_own_rule_by_position_or_by_module(make_inputs):
    first, second = nn.Tanh(), nn.Tanh()
    model, x = ModuleNet(first, second).eval(), make_inputs(3, 4)
    request = Request.build(model, x, 1)
    points = inputs_points(request.inputs)
    by_position, _ = request.gradients(points, RuleSelector(EpsilonRule(0.0), {0: OrdinaryGradient()}))
    by_module, _ = request.gradients(points, RuleSelector(EpsilonRule(0.0), {first: OrdinaryGradient()}))
    with torch.no_grad():  # by hand: tanh' at the first unit, the epsilon rule's f(z) / z at the second
        z1 = model.l1(x)
        z2 = model.l2(torch.tanh(z1))
        upstream = (model.l3.weight[1] * torch.tanh(z2) / z2) @ model.l2.weight
        expected = (upstream * (1 - torch.tanh(z1) ** 2)) @ model.l1.weight
    torch.testing.assert_close(by_position[:, 0], expected)
    torch.testing.assert_close(by_module[:, 0], expected)
    assert not first._forward_hooks and not first._forward_pre_hooks  # nothing survives the pass
    assert request.nonlinearities(points, EpsilonRule(0.0)) == 2


def test_rule_selector_refuses_unreached_positions_and_rules_that_disagree_on_references(make_inputs):
    model, x = ModuleNet(nn.Tanh(), nn.Tanh()).eval(), make_inputs(3, 4)
    request = Request.build(model, x, 1)
    with pytest.raises(AttributionInputError, match="nonlinearity 2 .*meets only 2"):
        request.gradients(inputs_points(request.inputs), RuleSelector(EpsilonRule(0.0), {2: OrdinaryGradient()}))
    with pytest.raises(AttributionInputError, match="reference points"):
        RuleSelector(RescaleRule(), {0: EpsilonRule(0.0)})
    with pytest.raises(AttributionInputError, match="positions"):
        RuleSelector(RescaleRule(), {-1: RescaleRule()})
