"""The modified-gradient rules through unrolled recurrent layers (``products="symmetric"``).

epsilon-LRP gives the gates of LSTM/GRU cells no relevance (signal-take-all, Arras et al. 2017): the
identity rule ``sigmoid(z) / z`` of a gate is unbounded near ``z = 0`` (Ancona et al. Sec. 3.1, f(0) != 0),
and chained over hundreds of time steps it overflowed float32 into NaN attributions.

An LSTM layer whose nonlinearities all get one multiplier rule runs as one fused autograd Function
(:mod:`taylorlens.engine.lstm_pass`); it must give the step-by-step unrolling's gradients.
"""

from __future__ import annotations

import importlib

import pytest
import torch
from torch import nn

import taylorlens
from taylorlens.engine import EpsilonRule, Request, RescaleRule, RuleSelector, inputs_points

# The module, not the context manager of the same name that taylorlens.engine exports.
modified_gradients = importlib.import_module("taylorlens.engine.modified_gradients")


class LastStep(nn.Module):
    """``Linear(rnn(x)[:, -1])``: a recurrent layer explained after its last step."""

    def __init__(self, rnn: nn.RNNBase, outputs: int = 1, bias: bool = True) -> None:
        super().__init__()
        width = (2 if rnn.bidirectional else 1) * (getattr(rnn, "proj_size", 0) or rnn.hidden_size)
        self.rnn, self.out = rnn, nn.Linear(width, outputs, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.rnn(x)[0][:, -1])


def lrp(model: nn.Module, x: torch.Tensor, target: int = 0) -> torch.Tensor:
    return taylorlens.attribute(model.eval(), x, target, "epsilon_lrp", products="symmetric")


def test_epsilon_lrp_stays_finite_through_600_steps_of_an_lstm_with_large_weights():
    # float32, weights x4: before the gate rule, relevance grew ~1e13 per 100 steps backward through the
    # sigmoid gates' 0.5 / z multipliers and this case gave NaN (inf * 0 in a product's split).
    torch.manual_seed(0)
    model = LastStep(nn.LSTM(4, 8, batch_first=True))
    with torch.no_grad():
        for parameter in model.rnn.parameters():
            parameter.mul_(4)
    x = torch.randn(2, 600, 4, generator=torch.Generator().manual_seed(1))
    maps = lrp(model, x)
    assert torch.isfinite(maps).all()
    assert float(maps.abs().max()) < 10


@pytest.mark.parametrize("kind", [nn.LSTM, nn.GRU])
def test_epsilon_lrp_conserves_relevance_through_a_bias_free_recurrent_layer(make_inputs, kind):
    # No biases and zero initial states: every linear map and product passes its relevance on whole, so the
    # input relevance sums to the output (up to the epsilon absorption, 1e-9 / |z| per unit).
    torch.manual_seed(0)
    rnn = kind(5, 4, num_layers=2, bidirectional=True, batch_first=True, bias=False)
    model = LastStep(rnn, outputs=2, bias=False).double()
    x = make_inputs(3, 7, 5)
    maps = lrp(model, x, 1)
    with torch.no_grad():
        output = model(x)[:, 1]
    torch.testing.assert_close(maps.flatten(1).sum(1), output, rtol=1e-6, atol=1e-9)


def test_epsilon_lrp_of_one_lstm_step_matches_its_closed_form(make_inputs):
    # One step from zero states, no biases: c = i * g, h = o * tanh(c), y = v . h. The gates take no
    # relevance, tanh(c) and g = tanh(z_g) pass theirs on, so R_j = sum_k v_k h_k x_j W_g[k, j] / z_g[k].
    torch.manual_seed(0)
    model = LastStep(nn.LSTM(5, 3, batch_first=True, bias=False), bias=False).double()
    x = make_inputs(4, 1, 5)
    with torch.no_grad():
        w_g = model.rnn.weight_ih_l0[6:9]
        z_g = x[:, 0] @ w_g.T
        h = model.rnn(x)[0][:, 0]
        expected = ((model.out.weight[0] * h / z_g)[:, :, None] * w_g * x[:, 0, None, :]).sum(1)
    torch.testing.assert_close(lrp(model, x)[:, 0], expected)


@pytest.mark.parametrize("rule", [RescaleRule("symmetric"), EpsilonRule(1e-9, "symmetric")], ids=["rescale", "eps"])
@pytest.mark.parametrize(
    "options",
    [{}, {"proj_size": 2}, {"bias": False, "batch_first": False}],
    ids=["lstm", "lstm_proj", "lstm_nobias_seqfirst"],
)
def test_fused_lstm_pass_gives_the_step_by_step_gradients(make_inputs, monkeypatch, rule, options):
    torch.manual_seed(0)
    options = {"num_layers": 2, "bidirectional": True, "batch_first": True, **options}
    steps = 6
    model = LastStep(nn.LSTM(4, 3, **options), outputs=2).double().eval()
    if not options["batch_first"]:
        model = SequenceFirst(model)
    x = make_inputs(3, steps, 4)
    request = Request.build(model, x, 1)
    reference = 0.5 * make_inputs(3, steps, 4, seed=5) if rule.needs_reference else None
    points = inputs_points(request.inputs, reference)
    # A position named in every layer and direction (4 x 3 T nonlinearities) sends each one step by step.
    stepwise = RuleSelector(rule, {k * 3 * steps: rule for k in range(4)})
    fused_layers, fused_layer = [], modified_gradients.modified_lstm_layer
    monkeypatch.setattr(modified_gradients, "modified_lstm_layer",
                        lambda *args: fused_layers.append(True) or fused_layer(*args))
    with request.model_frozen():  # frozen weights: the fused pass runs
        fused, outputs = request.gradients(points, rule)
        assert len(fused_layers) == 4
        unrolled, unrolled_outputs = request.gradients(points, stepwise)
        assert len(fused_layers) == 4
    torch.testing.assert_close(fused, unrolled, rtol=1e-10, atol=1e-13)
    # The fused pass reads its values from torch's LSTM kernel: the same numbers in another summation order.
    torch.testing.assert_close(outputs, unrolled_outputs, rtol=1e-12, atol=1e-15)
    assert request.nonlinearities(points, rule) == request.nonlinearities(points, stepwise) == 4 * 3 * steps


class SequenceFirst(nn.Module):
    """A batch-first model around a sequence-first recurrent layer."""

    def __init__(self, model: LastStep) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.out(self.model.rnn(x.transpose(0, 1))[0][-1])


def test_symmetric_deeplift_sums_to_delta_through_a_500_step_lstm(make_inputs):
    # The IMDB LSTM's length in small: float64, the fused pass keeps summation-to-delta to float rounding.
    torch.manual_seed(0)
    model = LastStep(nn.LSTM(3, 4, batch_first=True)).double().eval()
    x, baseline = make_inputs(2, 500, 3), 0.3 * make_inputs(2, 500, 3, seed=4)
    maps = taylorlens.attribute(model, x, 0, "deeplift", baseline=baseline, products="symmetric")
    with torch.no_grad():
        delta = model(x)[:, 0] - model(baseline)[:, 0]
    torch.testing.assert_close(maps.flatten(1).sum(1), delta, rtol=0, atol=1e-12 * max(1.0, float(delta.abs().max())))


@pytest.mark.parametrize("method", ["deeplift", "epsilon_lrp"])
def test_fused_lstm_pass_with_several_targets_gives_each_targets_attributions(make_inputs, method):
    # Several targets share one forward pass and run T backward passes (batched, or one by one where the
    # fused backward cannot be batched): either way each target's attributions are its own call's.
    torch.manual_seed(0)
    model, x = LastStep(nn.LSTM(3, 4, batch_first=True), outputs=3).double().eval(), make_inputs(2, 5, 3)
    targets = torch.tensor([[0, 2], [1, 0]])
    both = taylorlens.attribute(model, x, targets, method, products="symmetric")
    for k in range(2):
        alone = taylorlens.attribute(model, x, targets[:, k], method, products="symmetric")
        torch.testing.assert_close(both[:, k], alone)
