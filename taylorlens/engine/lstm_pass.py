"""One LSTM layer (one direction) under a modified-gradient rule, as a single autograd Function.

The step-by-step unrolling of :mod:`~taylorlens.engine.recurrent` records ~40 autograd nodes per time step
(three elementwise rules, three gate products, their splits), and a Rescale multiplier that needs the
midpoint slope runs an extra autograd pass inside every step: at 500 steps the modified pass cost 10-30
plain passes. Every rule factor is an elementwise function of the forward values, so this Function
computes them for all steps at once after a no-grad forward, and its backward is the modified chain rule
of the unrolled cell written out, a few batched operations per step::

    gh_t  = dL/dh_t (from above and from step t+1),   gc_t = dL/dc_t (from step t+1) + gh_t * o_bar_t m_c_t
    dz_t  = [gc_t g_bar_t m_i_t, gc_t cprev_bar_t m_f_t, gc_t i_bar_t m_g_t, gh_t tanhc_bar_t m_o_t]
    dL/dc_{t-1} += gc_t f_bar_t,   dL/dh_{t-1} += dz_t W_hh

``m_*`` are the rule's multipliers (:meth:`Rule.multiplier`) of ``sigmoid`` at the gates' pre-activations
and of ``tanh`` at ``g`` and ``c``; ``x_bar`` are the factors of the gate products ``f * c_{t-1}``,
``i * g``, ``o * tanh(c)`` (:meth:`Rule.gate_factors`). These are the gradients the unrolled graph gives,
so the attributions do not change (tests/engine/test_recurrent_rules.py compares both).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


class _ModifiedLSTMLayer(torch.autograd.Function):
    """``(hidden (T, B, P), h_last, c_last)`` from ``projected = x W_ih^T + b_ih`` ``(T, B, 4H)`` and ``h0, c0``."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, projected: Tensor, h0: Tensor, c0: Tensor, w_hh: Tensor, b_hh: Tensor | None,
        w_hr: Tensor | None, rule: Any, n: int, reverse: bool,
    ) -> tuple[Tensor, Tensor, Tensor]:
        steps = range(projected.shape[0] - 1, -1, -1) if reverse else range(projected.shape[0])
        gates = torch.empty_like(projected)
        cells = projected.new_empty(*projected.shape[:2], c0.shape[-1])
        hidden = projected.new_empty(*projected.shape[:2], h0.shape[-1])
        h, c = h0, c0
        for t in steps:  # the values of recurrent.lstm_step, operation for operation
            gates[t] = projected[t] + F.linear(h, w_hh, b_hh)
            i, f, _, o = torch.sigmoid(gates[t]).chunk(4, dim=-1)
            c = f * c + i * torch.tanh(gates[t].chunk(4, dim=-1)[2])
            cells[t] = c
            h = o * torch.tanh(c)
            hidden[t] = h if w_hr is None else F.linear(h, w_hr)
            h = hidden[t]
        ctx.w_hh, ctx.w_hr, ctx.steps = w_hh, w_hr, steps
        ctx.factors = _backward_factors(rule, n, gates, cells, c0, reverse)
        return hidden, h, c

    @staticmethod
    def backward(ctx: Any, grad_hidden: Tensor, grad_h: Tensor, grad_c: Tensor) -> tuple:  # type: ignore[override]
        cell_gain, output_gain, gate_gains, carry = ctx.factors
        gh, gc, dz = grad_h, grad_c, [None] * len(ctx.steps)
        for t in reversed(ctx.steps):
            gh = gh + grad_hidden[t]
            full = gh if ctx.w_hr is None else gh @ ctx.w_hr
            gc = gc + full * cell_gain[t]
            dz[t] = torch.cat([(gc.unsqueeze(-2) * gate_gains[t]).flatten(-2), full * output_gain[t]], dim=-1)
            gc = gc * carry[t]
            gh = dz[t] @ ctx.w_hh
        return torch.stack(dz), gh, gc, None, None, None, None, None, None


def _backward_factors(
    rule: Any, n: int, gates: Tensor, cells: Tensor, c0: Tensor, reverse: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(o_bar m_c, tanhc_bar m_o, [g_bar m_i, cprev_bar m_f, i_bar m_g], f_bar)``, time-major, all steps."""
    previous = torch.cat([cells[1:], c0[None]]) if reverse else torch.cat([c0[None], cells[:-1]])

    def batch_first(t: Tensor) -> Tensor:  # the rules pair points and references along dimension 0
        return t.transpose(0, 1)

    def time_first(*ts: Tensor) -> tuple[Tensor, ...]:
        return tuple(t.transpose(0, 1) for t in ts)

    z, cells, previous = batch_first(gates), batch_first(cells), batch_first(previous)
    sigmoids = torch.sigmoid(z)
    m_sigmoid = rule.multiplier(torch.sigmoid, z, sigmoids, n)
    i, f, _, o = sigmoids.chunk(4, dim=-1)
    m_i, m_f, _, m_o = m_sigmoid.chunk(4, dim=-1)
    z_g = z.chunk(4, dim=-1)[2]
    g, tanh_c = torch.tanh(z_g), torch.tanh(cells)
    m_g, m_c = rule.multiplier(torch.tanh, z_g, g, n), rule.multiplier(torch.tanh, cells, tanh_c, n)
    f_bar, previous_bar = rule.gate_factors(f, previous, n)
    i_bar, g_bar = rule.gate_factors(i, g, n)
    o_bar, tanh_c_bar = rule.gate_factors(o, tanh_c, n)
    gate_gains = torch.stack([g_bar * m_i, previous_bar * m_f, i_bar * m_g], dim=-2)
    return time_first(o_bar * m_c, tanh_c_bar * m_o, gate_gains, f_bar)


def modified_lstm_layer(
    rule: Any, n: int, projected: Tensor, state: tuple[Tensor, Tensor], w_hh: Tensor, b_hh: Tensor | None,
    w_hr: Tensor | None, reverse: bool,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """``hidden (T, B, P)`` and the last ``(h, c)`` of one LSTM layer, with ``rule``'s modified gradients.

    The weights must not require gradients (the passes freeze the model's parameters).
    """
    hidden, h, c = _ModifiedLSTMLayer.apply(projected, state[0], state[1], w_hh, b_hh, w_hr, rule, n, reverse)
    return hidden, (h, c)
