"""The modified-gradient rules through unrolled recurrent layers (``products="symmetric"``).

epsilon-LRP gives the gates of LSTM/GRU cells no relevance (signal-take-all, Arras et al. 2017): the
identity rule ``sigmoid(z) / z`` of a gate is unbounded near ``z = 0`` (Ancona et al. Sec. 3.1, f(0) != 0),
and chained over hundreds of time steps it overflowed float32 into NaN attributions.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import taylorlens


class LastStep(nn.Module):
    """``Linear(rnn(x)[:, -1])``: a recurrent layer explained after its last step."""

    def __init__(self, rnn: nn.RNNBase, outputs: int = 1, bias: bool = True) -> None:
        super().__init__()
        directions = 2 if rnn.bidirectional else 1
        self.rnn, self.out = rnn, nn.Linear(directions * rnn.hidden_size, outputs, bias=bias)

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
