"""One LSTM layer (one direction) under a modified-gradient rule, as a single autograd Function.

DeepLIFT (Rescale, Shrikumar et al. 2017) and epsilon-LRP (Bach et al. 2015; gates by Arras et al. 2017) as
modified gradients through an LSTM (Ancona et al. 2018, Sec. 2-3 and App. C.4, the IMDB LSTM).

The step-by-step unrolling of :mod:`~taylorlens.engine.recurrent` records ~40 autograd nodes per time step
(three elementwise rules, three gate products, their splits), and a Rescale multiplier that needs the
midpoint slope runs an extra autograd pass inside every step: at 500 steps the modified pass cost 10-30
plain passes. Every rule factor is an elementwise function of the forward values, so this Function
computes them for all steps at once after a no-grad forward (torch's fused LSTM kernel for the outputs, one
batched product for the gates, one operation per step for the cells: :func:`lstm_values`), and its
backward is the modified chain rule of the unrolled cell written out, a few batched operations per step::

    gh_t  = dL/dh_t (from above and from step t+1),   gc_t = dL/dc_t (from step t+1) + gh_t * o_bar_t m_c_t
    dz_t  = [gc_t g_bar_t m_i_t, gc_t cprev_bar_t m_f_t, gc_t i_bar_t m_g_t, gh_t tanhc_bar_t m_o_t]
    dL/dc_{t-1} += gc_t f_bar_t,   dL/dh_{t-1} += dz_t W_hh

``m_*`` are the rule's multipliers (:meth:`Rule.multiplier`) of ``sigmoid`` at the gates' pre-activations
and of ``tanh`` at ``g`` and ``c``; ``x_bar`` are the factors of the gate products ``f * c_{t-1}``,
``i * g``, ``o * tanh(c)`` (:meth:`Rule.gate_factors`). These are the gradients the unrolled graph gives,
so the attributions do not change (tests/engine/test_recurrent_rules.py compares both). When no gate gets
a gradient (epsilon-LRP's signal-take-all: ``g_bar = cprev_bar = tanhc_bar = 0``) only the ``g`` block
of ``dz`` is computed, and ``dL/dh_{t-1}`` needs only that block of ``W_hh``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from taylorlens.engine.recurrent import time_steps


class LSTMValues(NamedTuple):
    """The forward values of one LSTM layer, time-major: gate pre-activations and their sigmoids ``(T, B, 4H)``,
    cells ``(T, B, H)``, outputs ``(T, B, P)`` and the last ``h``, ``c``."""

    gates: Tensor
    sigmoids: Tensor
    cells: Tensor
    hidden: Tensor
    h: Tensor
    c: Tensor

    def recorded(self, c0: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """What the rules need of a reference (:mod:`~taylorlens.engine.reference_tape`)."""
        return self.gates, self.sigmoids, self.cells, c0


def lstm_values(
    projected: Tensor, h0: Tensor, c0: Tensor, w_hh: Tensor, b_hh: Tensor | None, w_hr: Tensor | None,
    reverse: bool, source: tuple[Tensor, Tensor, Tensor | None],
) -> LSTMValues:
    """The values of :func:`~taylorlens.engine.recurrent.lstm_step` (the LSTM equations of the ``torch.nn.LSTM``
    documentation, Hochreiter & Schmidhuber 1997) over all steps, without gradients.

    ``source = (input, w_ih, b_ih)`` (``projected = F.linear(input, w_ih, b_ih)``): the outputs come from
    torch's fused LSTM kernel, the gate pre-activations of all steps from one matrix product with the
    outputs one step before, and only the cell recurrence ``c_t = f_t c_{t-1} + i_t g_t`` runs step by step
    (one operation per step).
    """
    with torch.no_grad():
        x, w_ih, b_ih = source
        weights = [w for w in (w_ih, w_hh, b_ih, b_hh, w_hr) if w is not None]
        order = (lambda s: s.flip(0)) if reverse else (lambda s: s)
        hidden, h, c = torch._VF.lstm(order(x), (h0[None], c0[None]), weights, b_ih is not None, 1, 0.0, False,
                                      False, False)
        hidden = order(hidden)
        before = torch.cat([hidden[1:], h0[None]]) if reverse else torch.cat([h0[None], hidden[:-1]])
        gates = torch.add(projected, F.linear(before, w_hh, b_hh))
        sigmoids = torch.sigmoid(gates)
        i, f, _, _ = sigmoids.chunk(4, dim=-1)
        inflow = i * torch.tanh(gates.chunk(4, dim=-1)[2])
        cells = torch.empty_like(inflow)
        cell = c0
        for t in time_steps(projected.shape[0], reverse):
            cell = torch.addcmul(inflow[t], f[t], cell, out=cells[t])
    return LSTMValues(gates, sigmoids, cells, hidden, h[0], c[0])


class _ModifiedLSTMLayer(torch.autograd.Function):
    """``(hidden (T, B, P), h_last, c_last)`` from ``projected = x W_ih^T + b_ih`` ``(T, B, 4H)`` and ``h0, c0``."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, projected: Tensor, h0: Tensor, c0: Tensor, w_hh: Tensor, b_hh: Tensor | None,
        w_hr: Tensor | None, rule: Any, reverse: bool, reference: tuple[Tensor, ...] | None,
        source: tuple[Tensor, Tensor, Tensor | None],
    ) -> tuple[Tensor, Tensor, Tensor]:
        values = lstm_values(projected, h0, c0, w_hh, b_hh, w_hr, reverse, source)
        factors = _backward_factors(rule, values.recorded(c0), reverse, reference)
        ctx.steps = time_steps(projected.shape[0], reverse)
        ctx.w_hr, ctx.factors = w_hr, factors
        ctx.w_hh = w_hh if factors.gate_gains.shape[-2] == 3 else w_hh.chunk(4)[2]
        return values.hidden, values.h, values.c

    @staticmethod
    def backward(ctx: Any, grad_hidden: Tensor, grad_h: Tensor, grad_c: Tensor) -> tuple:  # type: ignore[override]
        factors, every_gate = ctx.factors, ctx.factors.gate_gains.shape[-2] == 3
        batch, length, _, size = factors.gate_gains.shape
        dz = grad_hidden.new_zeros(length, batch, 4, size)  # time-major like ``projected``; gates i, f, g, o
        from_above = grad_hidden.flatten(1).any(1).tolist()  # steps whose output is used above

        def per_step(t: Tensor | None) -> Any:  # the views of every step at once: one C call, not T indexings
            return None if t is None else t.unbind(1)

        cell_gain, carry = per_step(factors.cell_gain), per_step(factors.carry)
        output_gain = per_step(factors.output_gain)
        gate_gains = per_step(factors.gate_gains if every_gate else factors.gate_gains[:, :, 0])
        above, rows = grad_hidden.unbind(0), dz.flatten(-2).unbind(0)
        heads, tails = (dz[:, :, :3].unbind(0), dz[:, :, 3].unbind(0)) if every_gate else (dz[:, :, 2].unbind(0), None)
        gh, gc = grad_h, grad_c
        for t in reversed(ctx.steps):
            if from_above[t]:
                gh = gh + above[t]
            full = gh if ctx.w_hr is None else gh @ ctx.w_hr
            gc = torch.addcmul(gc, full, cell_gain[t])
            if every_gate:
                torch.mul(gc.unsqueeze(-2), gate_gains[t], out=heads[t])
                torch.mul(full, output_gain[t], out=tails[t])
                gh = rows[t] @ ctx.w_hh
            else:
                gh = torch.mul(gc, gate_gains[t], out=heads[t]) @ ctx.w_hh
            gc = gc * carry[t]
        return dz.flatten(-2), gh, gc, None, None, None, None, None, None, None


class _Factors(NamedTuple):
    """What the backward multiplies by, ``(B, T, ...)``: ``o_bar m_c``, ``tanhc_bar m_o``, the gains of the
    ``i, f, g`` blocks ``[g_bar m_i, cprev_bar m_f, i_bar m_g]`` (``(B, T, 3, H)``, or only ``[i_bar m_g]``,
    ``(B, T, 1, H)``, when no gate gets a gradient) and ``f_bar``."""

    cell_gain: Tensor
    output_gain: Tensor | None
    gate_gains: Tensor
    carry: Tensor


class _Unit(NamedTuple):
    """Batch-major values of a layer at the points or at their references: ``(B, 4, T, H)`` gates and their
    sigmoids, ``(B, T, H)`` cells, the cells one step before, ``g = tanh`` of the g block and ``tanh(c)``."""

    gates: Tensor
    sigmoids: Tensor
    cells: Tensor
    previous: Tensor
    g: Tensor
    tanh_c: Tensor

    @classmethod
    def of(cls, gates: Tensor, sigmoids: Tensor, cells: Tensor, c0: Tensor, reverse: bool) -> _Unit:
        length, batch, size = cells.shape
        gates = gates.view(length, batch, 4, size).permute(1, 2, 0, 3).contiguous()  # elementwise kernels are
        sigmoids = sigmoids.view(length, batch, 4, size).permute(1, 2, 0, 3).contiguous()  # fastest contiguous
        cells = cells.transpose(0, 1).contiguous()
        start = c0[:, None]
        previous = torch.cat([cells[:, 1:], start], 1) if reverse else torch.cat([start, cells[:, :-1]], 1)
        return cls(gates, sigmoids, cells, previous, torch.tanh(gates[:, 2]), torch.tanh(cells))


def _backward_factors(
    rule: Any, values: tuple[Tensor, ...], reverse: bool, reference: tuple[Tensor, ...] | None
) -> _Factors:
    """The factors for all steps from the forward values ``(gates, sigmoids, cells, c0)``, time-major ``(T, B,
    ...)`` (gates ``(T, B, 4H)``), and the same values at the references (None: the rule needs none)."""
    x = _Unit.of(*values, reverse)
    r = None if reference is None else _Unit.of(*reference, reverse)

    def at(*fields: str) -> tuple[Tensor, ...] | None:  # the reference's values of a site
        return None if r is None else tuple(getattr(r, name) if isinstance(name, str) else name(r) for name in fields)

    i, f, _, o = x.sigmoids.unbind(1)
    f_bar, previous_bar = rule.gate_factors(f, x.previous, at(lambda u: u.sigmoids[:, 1], "previous"))
    i_bar, g_bar = rule.gate_factors(i, x.g, at(lambda u: u.sigmoids[:, 0], "g"))
    o_bar, tanh_c_bar = rule.gate_factors(o, x.tanh_c, at(lambda u: u.sigmoids[:, 3], "tanh_c"))
    m_g = rule.multiplier(torch.tanh, x.gates[:, 2], x.g, at(lambda u: u.gates[:, 2], "g"))
    m_c = rule.multiplier(torch.tanh, x.cells, x.tanh_c, at("cells", "tanh_c"))
    if not any(bool(bar.any()) for bar in (g_bar, previous_bar, tanh_c_bar)):
        return _Factors(o_bar * m_c, None, (i_bar * m_g)[:, :, None], f_bar)
    m_i, m_f, _, m_o = rule.multiplier(torch.sigmoid, x.gates, x.sigmoids, at("gates", "sigmoids")).unbind(1)
    gate_gains = torch.stack([g_bar * m_i, previous_bar * m_f, i_bar * m_g], dim=-2)
    return _Factors(o_bar * m_c, tanh_c_bar * m_o, gate_gains, f_bar)


def modified_lstm_layer(
    rule: Any, projected: Tensor, state: tuple[Tensor, Tensor], w_hh: Tensor, b_hh: Tensor | None,
    w_hr: Tensor | None, reverse: bool, reference: tuple[Tensor, ...] | None,
    source: tuple[Tensor, Tensor, Tensor | None],
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """``hidden (T, B, P)`` and the last ``(h, c)`` of one LSTM layer, with ``rule``'s modified gradients
    (``reference``: the references' :meth:`LSTMValues.recorded`, for rules that need them).

    The weights must not require gradients (the passes freeze the model's parameters).
    """
    source = tuple(None if s is None else s.detach() for s in source)
    hidden, h, c = _ModifiedLSTMLayer.apply(projected, state[0], state[1], w_hh, b_hh, w_hr, rule, reverse,
                                            reference, source)
    return hidden, (h, c)
