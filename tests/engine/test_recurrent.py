"""Recurrent layers unrolled from the module's own weights give the fused layers' outputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from taylorlens.engine.recurrent import RECURRENT, PlainOps


def fused_arguments(module: nn.RNNBase, x: torch.Tensor) -> tuple:
    """The arguments ``nn.LSTM/GRU/RNN.forward`` hands to ``torch._VF.<mode>`` (zero initial states)."""
    directions = 2 if module.bidirectional else 1
    batch = x.shape[0] if module.batch_first else x.shape[1]
    size = module.proj_size or module.hidden_size
    h0 = torch.randn(module.num_layers * directions, batch, size, dtype=x.dtype)
    if isinstance(module, nn.LSTM):
        h0 = (h0, torch.randn(module.num_layers * directions, batch, module.hidden_size, dtype=x.dtype))
    flags = (module.bias, module.num_layers, module.dropout, module.training, module.bidirectional, module.batch_first)
    return (x, h0, module._flat_weights, *flags), h0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("kind", "options"),
    [
        (nn.LSTM, {}),
        (nn.LSTM, {"proj_size": 2}),
        (nn.LSTM, {"bias": False, "batch_first": False}),
        (nn.GRU, {}),
        (nn.RNN, {}),
        (nn.RNN, {"nonlinearity": "relu"}),
    ],
    ids=["lstm", "lstm_proj", "lstm_nobias_seqfirst", "gru", "rnn_tanh", "rnn_relu"],
)
def test_unrolled_layer_equals_the_fused_layer(dtype, kind, options):
    torch.manual_seed(0)
    options = {"num_layers": 2, "bidirectional": True, "batch_first": True, **options}
    module = kind(4, 3, **options).to(dtype).eval()
    x = torch.randn(2, 6, 4, dtype=dtype) if module.batch_first else torch.randn(6, 2, 4, dtype=dtype)
    arguments, h0 = fused_arguments(module, x)
    name = module.mode.lower() if kind is not nn.RNN else f"rnn_{options.get('nonlinearity', 'tanh')}"
    unrolled = RECURRENT[name](PlainOps(), *arguments)
    with torch.no_grad():
        fused = module(x, h0)
    fused = (fused[0], *fused[1]) if kind is nn.LSTM else fused
    tolerance = 1e-6 if dtype == torch.float32 else 1e-12
    for ours, theirs in zip(unrolled, fused, strict=True):
        torch.testing.assert_close(ours, theirs, atol=tolerance, rtol=0)


@pytest.mark.parametrize("kind", [nn.LSTMCell, nn.GRUCell, nn.RNNCell])
def test_unrolled_cell_equals_the_fused_cell(kind):
    torch.manual_seed(1)
    cell = kind(4, 3).double().eval()
    x, h = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    state = (h, torch.randn(5, 3, dtype=torch.float64)) if kind is nn.LSTMCell else h
    name = {nn.LSTMCell: "lstm_cell", nn.GRUCell: "gru_cell", nn.RNNCell: "rnn_tanh_cell"}[kind]
    ours = RECURRENT[name](PlainOps(), x, state, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
    with torch.no_grad():
        theirs = cell(x, state)
    torch.testing.assert_close(ours, theirs, atol=1e-12, rtol=0)
