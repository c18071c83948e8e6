"""Recurrent layers unrolled from their own weights, so the rules see every gate.

``nn.LSTM``, ``nn.GRU`` and ``nn.RNN`` (and their cells) run as one fused operation (``torch._VF.lstm``,
...), whose gates a modified-gradient rule cannot reach. The functions here take the fused operation's
arguments (the module's flat weights, in PyTorch's order) and recompute it step by step with the
equations of the ``torch.nn`` documentation: linear maps, elementwise ``sigmoid``/``tanh`` through
``ops.elementwise`` and the products of gates and states through ``ops.product``. All layers,
bidirectional, ``batch_first`` and LSTM projections (``proj_size``) are covered; the outputs equal the
fused ones to float tolerance (tests/engine/test_recurrent.py). With :class:`PlainOps` they are ordinary
torch code. Packed sequences are refused. Each direction of each layer runs through ``ops.sequence``:
:func:`unrolled` step by step, or (the rules' ops, LSTM layers) :mod:`~taylorlens.engine.lstm_pass`.
Inside the cells, ``ops.gated(gate, signal)`` is a product of a sigmoid gate and the value it gates.

LSTM (gates ``i, f, g, o`` in that order in ``weight_ih``/``weight_hh``)::

    c' = sigmoid(f) * c + sigmoid(i) * tanh(g),   h' = sigmoid(o) * tanh(c')   (h' @ W_hr^T with proj_size)

GRU (``r, z, n``): ``n = tanh(x W_in^T + b_in + sigmoid(r) * (h W_hn^T + b_hn))``,
``h' = (1 - sigmoid(z)) * n + sigmoid(z) * h``. RNN: ``h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)`` (or relu).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import torch
import torch.nn.functional as F
from torch import Tensor

#: ``step(ops, input_projection, state, hidden_weights) -> state``; ``state[0]`` is the output ``h``.
Step = Callable[[Any, Tensor, tuple[Tensor, ...], Sequence[Tensor | None]], tuple[Tensor, ...]]


class PlainOps:
    """Ordinary torch operations in the interface the decompositions use."""

    decomposes_softmax = True

    def elementwise(self, f: Callable[[Tensor], Tensor], z: Tensor) -> Tensor:
        return f(z)

    def product(self, func: Callable[[Tensor, Tensor], Tensor], a: Tensor, b: Tensor) -> Tensor:
        return func(a, b)

    def gated(self, gate: Tensor, signal: Tensor) -> Tensor:
        return gate * signal

    def sequence(
        self, step: Step, projected: Tensor, state: tuple[Tensor, ...], weights: Sequence[Tensor | None], reverse: bool,
        source: tuple[Tensor, Tensor, Tensor | None] | None = None,
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """``source``: ``(input, w_ih, b_ih)`` with ``projected = F.linear(input, w_ih, b_ih)`` (unused here)."""
        return unrolled(self, step, projected, state, weights, reverse)

    def statistic(self, t: Tensor) -> Tensor:
        return t

    def softmax(self, x: Tensor, dim: int, log: bool = False) -> Tensor:
        return torch.log_softmax(x, dim) if log else torch.softmax(x, dim)

    def refuse(self, message: str) -> NoReturn:
        raise NotImplementedError(message)


def lstm_step(ops: Any, projected: Tensor, state: tuple[Tensor, ...], weights: Sequence[Tensor | None]) -> tuple:
    w_hh, b_hh, w_hr = weights
    h, c = state
    gates = projected + F.linear(h, w_hh, b_hh)
    # One elementwise call for the three sigmoid gates (the sigmoid of the g block is computed and unused).
    i, f, _, o = ops.elementwise(torch.sigmoid, gates).chunk(4, dim=-1)
    g = ops.elementwise(torch.tanh, gates.chunk(4, dim=-1)[2])
    c = ops.gated(f, c) + ops.gated(i, g)
    h = ops.gated(o, ops.elementwise(torch.tanh, c))
    return (h if w_hr is None else F.linear(h, w_hr)), c


def gru_step(ops: Any, projected: Tensor, state: tuple[Tensor, ...], weights: Sequence[Tensor | None]) -> tuple:
    w_hh, b_hh, _ = weights
    (h,) = state
    x_r, x_z, x_n = projected.chunk(3, dim=-1)
    h_r, h_z, h_n = F.linear(h, w_hh, b_hh).chunk(3, dim=-1)
    reset = ops.elementwise(torch.sigmoid, x_r + h_r)
    update = ops.elementwise(torch.sigmoid, x_z + h_z)
    new = ops.elementwise(torch.tanh, x_n + ops.gated(reset, h_n))
    return (ops.gated(1 - update, new) + ops.gated(update, h),)


def rnn_step(nonlinearity: Callable[[Tensor], Tensor]) -> Step:
    def step(ops: Any, projected: Tensor, state: tuple[Tensor, ...], weights: Sequence[Tensor | None]) -> tuple:
        w_hh, b_hh, _ = weights
        return (ops.elementwise(nonlinearity, projected + F.linear(state[0], w_hh, b_hh)),)

    return step


def time_steps(length: int, reverse: bool) -> range:
    """The time steps in the order a layer's direction visits them."""
    return range(length - 1, -1, -1) if reverse else range(length)


def unrolled(
    ops: Any, step: Step, projected: Tensor, state: tuple[Tensor, ...], weights: Sequence[Tensor | None],
    reverse: bool,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """One direction of one layer, step by step: ``hidden (T, B, P)`` and the last state."""
    hidden = [None] * projected.shape[0]
    for t in time_steps(projected.shape[0], reverse):
        state = step(ops, projected[t], state, weights)
        hidden[t] = state[0]
    return torch.stack(hidden), state


def _layers(
    ops: Any, step: Step, input: Tensor, hx: Sequence[Tensor], params: Sequence[Tensor], has_biases: bool,
    num_layers: int, dropout: float, train: bool, bidirectional: bool, batch_first: bool,
) -> tuple[Tensor, ...]:
    """A stacked (bi)directional recurrent layer over ``input`` ``(T, B, F)`` (``(B, T, F)`` if batch_first)."""
    if train and dropout > 0:
        ops.refuse("the model runs a recurrent layer with dropout in training mode: call model.eval()")
    directions = 2 if bidirectional else 1
    per_direction = len(params) // (num_layers * directions)
    sequence = input.transpose(0, 1) if batch_first else input
    finals: list[list[Tensor]] = [[] for _ in hx]
    for layer in range(num_layers):
        outputs = []
        for direction in range(directions):
            index = layer * directions + direction
            weights = list(params[index * per_direction : (index + 1) * per_direction])
            w_ih, w_hh = weights[:2]
            b_ih, b_hh = weights[2:4] if has_biases else (None, None)
            w_hr = weights[-1] if per_direction in (3, 5) else None
            projected = F.linear(sequence, w_ih, b_ih)  # every time step at once
            state = tuple(s[index] for s in hx)
            hidden, state = ops.sequence(step, projected, state, (w_hh, b_hh, w_hr), bool(direction),
                                         source=(sequence, w_ih, b_ih))
            outputs.append(hidden)
            for final, s in zip(finals, state, strict=True):
                final.append(s)
        sequence = torch.cat(outputs, dim=-1) if directions == 2 else outputs[0]
    output = sequence.transpose(0, 1) if batch_first else sequence
    return (output, *(torch.stack(final) for final in finals))


def _refuse_packed(ops: Any, name: str, weights: Any) -> None:
    if not isinstance(weights, list | tuple):
        ops.refuse(f"the model calls {name} on a packed sequence: unrolling covers padded tensors only")


def lstm(ops: Any, input: Tensor, hx: Any, params: Any, *flags: Any) -> tuple[Tensor, Tensor, Tensor]:
    """``torch._VF.lstm(input, (h0, c0), flat_weights, has_biases, num_layers, dropout, train, bidir, batch_first)``."""
    if isinstance(hx, Tensor):
        ops.refuse("the model calls lstm on a packed sequence: unrolling covers padded tensors only")
    return _layers(ops, lstm_step, input, hx, params, *flags)


def gru(ops: Any, input: Tensor, hx: Any, params: Any, *flags: Any) -> tuple[Tensor, Tensor]:
    """``torch._VF.gru(input, h0, flat_weights, has_biases, num_layers, dropout, train, bidir, batch_first)``."""
    _refuse_packed(ops, "gru", params)
    return _layers(ops, gru_step, input, (hx,), params, *flags)


def rnn_tanh(ops: Any, input: Tensor, hx: Any, params: Any, *flags: Any) -> tuple[Tensor, Tensor]:
    _refuse_packed(ops, "rnn_tanh", params)
    return _layers(ops, rnn_step(torch.tanh), input, (hx,), params, *flags)


def rnn_relu(ops: Any, input: Tensor, hx: Any, params: Any, *flags: Any) -> tuple[Tensor, Tensor]:
    _refuse_packed(ops, "rnn_relu", params)
    return _layers(ops, rnn_step(torch.relu), input, (hx,), params, *flags)


def _cell(step: Step) -> Callable[..., tuple[Tensor, ...]]:
    def cell(
        ops: Any, input: Tensor, hx: Any, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None = None,
        b_hh: Tensor | None = None,
    ) -> tuple[Tensor, ...]:
        state = tuple(hx) if isinstance(hx, list | tuple) else (hx,)
        return step(ops, F.linear(input, w_ih, b_ih), state, (w_hh, b_hh, None))

    return cell


def lstm_cell(ops: Any, *args: Any) -> tuple[Tensor, Tensor]:
    """``torch._VF.lstm_cell(input, (h, c), w_ih, w_hh, b_ih, b_hh)``."""
    return _cell(lstm_step)(ops, *args)


def gru_cell(ops: Any, *args: Any) -> Tensor:
    return _cell(gru_step)(ops, *args)[0]


def rnn_tanh_cell(ops: Any, *args: Any) -> Tensor:
    return _cell(rnn_step(torch.tanh))(ops, *args)[0]


def rnn_relu_cell(ops: Any, *args: Any) -> Tensor:
    return _cell(rnn_step(torch.relu))(ops, *args)[0]


#: torch function name -> its unrolled equivalent.
RECURRENT: dict[str, Callable[..., Any]] = {
    "lstm": lstm,
    "gru": gru,
    "rnn_tanh": rnn_tanh,
    "rnn_relu": rnn_relu,
    "lstm_cell": lstm_cell,
    "gru_cell": gru_cell,
    "rnn_tanh_cell": rnn_tanh_cell,
    "rnn_relu_cell": rnn_relu_cell,
}
