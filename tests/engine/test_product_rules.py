"""The ``products="symmetric"`` rules against slow loop re-implementations of their equations.

DeepLIFT: the symmetric split ``Δ(ab) = b_bar Δa + a_bar Δb`` (``x_bar`` = mean of point and reference),
Rescale multipliers ``Δf / Δz`` for the exponential, reciprocal and ``rsqrt`` inside softmax and layer
norm. epsilon-LRP (AttnLRP, Achtibat et al. 2024): uniform rule (half the relevance to each factor),
softmax rule ``R_i = x_i (R_i^out - s_i sum_j R_j^out)`` and the LN-rule (Ali et al. 2022: constant std).
Decompositions evaluated with plain operations give torch's own values.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import taylorlens
from taylorlens import UnsupportedModelError
from taylorlens.engine.decompositions import DECOMPOSITIONS
from taylorlens.engine.recurrent import PlainOps

N = 5


def weights(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


class TanhGate(nn.Module):
    """``f(x) = v . (tanh(W1 x + c1) * (W2 x + c2))``: a product of two activations."""

    def __init__(self) -> None:
        super().__init__()
        self.w1, self.c1, self.w2, self.c2, self.v = weights(4, N, seed=1), weights(4, seed=2), \
            weights(4, N, seed=3), weights(4, seed=4), weights(4, seed=5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.tanh(x @ self.w1.T + self.c1) * (x @ self.w2.T + self.c2)) @ self.v


class Scores(nn.Module):
    """``f(X) = sum_ij U_ij ((X Wq)(X Wk)^T)_ij`` for ``X`` of shape (3, N): a matrix product of activations."""

    def __init__(self) -> None:
        super().__init__()
        self.wq, self.wk, self.u = weights(N, 2, seed=6), weights(N, 2, seed=7), weights(3, 3, seed=8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x @ self.wq) @ (x @ self.wk).transpose(-2, -1) * self.u).sum((-2, -1))


class SoftmaxHead(nn.Module):
    """``f(x) = w . softmax(W x + c)``."""

    def __init__(self) -> None:
        super().__init__()
        self.w, self.c, self.v = weights(4, N, seed=9), weights(4, seed=10), weights(4, seed=11)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x @ self.w.T + self.c, dim=-1) @ self.v


class NormHead(nn.Module):
    """``f(x) = w . LayerNorm(x)`` with an affine layer norm."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(N).double()
        with torch.no_grad():
            self.norm.weight.copy_(weights(N, seed=12))
            self.norm.bias.copy_(weights(N, seed=13))
        self.w = weights(N, seed=14)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x) @ self.w


def rescale(f, z: torch.Tensor, z_ref: torch.Tensor) -> torch.Tensor:
    return (f(z) - f(z_ref)) / (z - z_ref)


def deeplift(model: nn.Module, x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    return taylorlens.attribute(model.eval(), x, None, "deeplift", baseline=reference, products="symmetric")


def lrp(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return taylorlens.attribute(model.eval(), x, None, "epsilon_lrp", products="symmetric")


def test_symmetric_product_split_matches_its_equation_on_a_tanh_gate(make_inputs):
    model, x, ref = TanhGate(), make_inputs(3, N), make_inputs(3, N, seed=2)
    expected = torch.zeros_like(x)
    for s in range(x.shape[0]):
        z, z_ref = model.w1 @ x[s] + model.c1, model.w1 @ ref[s] + model.c1
        b, b_ref = model.w2 @ x[s] + model.c2, model.w2 @ ref[s] + model.c2
        multiplier = rescale(torch.tanh, z, z_ref)
        a_bar, b_bar = (torch.tanh(z) + torch.tanh(z_ref)) / 2, (b + b_ref) / 2
        for k in range(4):  # unit k: Δ(a_k b_k) = b_bar_k m_k W1[k] Δx + a_bar_k W2[k] Δx
            expected[s] += model.v[k] * (b_bar[k] * multiplier[k] * model.w1[k] + a_bar[k] * model.w2[k])
        expected[s] *= x[s] - ref[s]
    torch.testing.assert_close(deeplift(model, x, ref), expected)


def test_symmetric_split_of_a_matrix_product_matches_its_equation_per_term(make_inputs):
    model, x, ref = Scores(), make_inputs(2, 3, N), make_inputs(2, 3, N, seed=3)
    expected = torch.zeros_like(x)
    for s in range(x.shape[0]):
        q, q_ref, k, k_ref = x[s] @ model.wq, ref[s] @ model.wq, x[s] @ model.wk, ref[s] @ model.wk
        q_bar, k_bar = (q + q_ref) / 2, (k + k_ref) / 2
        for i in range(3):
            for j in range(3):
                for d in range(2):  # term q_id k_jd: k_bar_jd Δq_id + q_bar_id Δk_jd
                    expected[s, i] += model.u[i, j] * k_bar[j, d] * model.wq[:, d] * (x[s, i] - ref[s, i])
                    expected[s, j] += model.u[i, j] * q_bar[i, d] * model.wk[:, d] * (x[s, j] - ref[s, j])
    torch.testing.assert_close(deeplift(model, x, ref), expected)


def test_softmax_decomposition_matches_rescale_and_symmetric_products_by_hand(make_inputs):
    model, x, ref = SoftmaxHead(), make_inputs(3, N), make_inputs(3, N, seed=4)
    expected = torch.zeros_like(x)
    for s in range(x.shape[0]):
        z, z_ref = model.w @ x[s] + model.c, model.w @ ref[s] + model.c
        shift = torch.maximum(z.max(), z_ref.max())  # shared by point and reference
        e, e_ref = torch.exp(z - shift), torch.exp(z_ref - shift)
        total, total_ref = e.sum(), e_ref.sum()
        m_e, m_r = rescale(torch.exp, z - shift, z_ref - shift), rescale(torch.reciprocal, total, total_ref)
        r_bar, e_bar = (1 / total + 1 / total_ref) / 2, (e + e_ref) / 2
        for i in range(4):  # s_i = e_i * r: Δs_i = r_bar m_e_i Δz_i + e_bar_i m_r sum_j m_e_j Δz_j
            row = r_bar * m_e[i] * model.w[i]
            for j in range(4):
                row = row + e_bar[i] * m_r * m_e[j] * model.w[j]
            expected[s] += model.v[i] * row
        expected[s] *= x[s] - ref[s]
    torch.testing.assert_close(deeplift(model, x, ref), expected)


def test_layer_norm_decomposition_matches_its_equation(make_inputs):
    model, x, ref = NormHead(), make_inputs(3, N), make_inputs(3, N, seed=5)
    gamma, eps = model.norm.weight.detach(), model.norm.eps
    centring = torch.eye(N, dtype=x.dtype) - 1 / N
    expected = torch.zeros_like(x)
    for s in range(x.shape[0]):
        c, c_ref = centring @ x[s], centring @ ref[s]
        v, v_ref = (c * c).mean(), (c_ref * c_ref).mean()
        m_r = rescale(torch.rsqrt, v + eps, v_ref + eps)
        r_bar, c_bar = (torch.rsqrt(v + eps) + torch.rsqrt(v_ref + eps)) / 2, (c + c_ref) / 2
        dv = (c + c_ref) / N @ centring  # Δv = (1/N) sum_k (c_k + c_k_ref) Δc_k
        for j in range(N):  # Δy_j = gamma_j (r_bar Δc_j + c_bar_j m_r Δv)
            expected[s] += model.w[j] * gamma[j] * (r_bar * centring[j] + c_bar[j] * m_r * dv)
        expected[s] *= x[s] - ref[s]
    torch.testing.assert_close(deeplift(model, x, ref), expected)


class Bilinear(nn.Module):
    """``f(x) = v . ((W1 x) * (W2 x))``: bias-free, so epsilon-LRP's relevance is conserved."""

    def __init__(self) -> None:
        super().__init__()
        self.w1, self.w2, self.v = weights(4, N, seed=15), weights(4, N, seed=16), weights(4, seed=17)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x @ self.w1.T) * (x @ self.w2.T)) @ self.v


def test_epsilon_uniform_rule_gives_each_factor_half_of_the_relevance(make_inputs):
    model, x = Bilinear(), make_inputs(3, N)
    expected = torch.zeros_like(x)
    for s in range(x.shape[0]):
        a, b = model.w1 @ x[s], model.w2 @ x[s]
        for k in range(4):  # R_k = v_k a_k b_k, half to a_k and half to b_k, then z-rule through W1, W2
            half = model.v[k] * a[k] * b[k] / 2
            expected[s] += x[s] * model.w1[k] / a[k] * half + x[s] * model.w2[k] / b[k] * half
    maps = lrp(model, x)
    torch.testing.assert_close(maps, expected)
    with torch.no_grad():
        torch.testing.assert_close(maps.sum(1), model(x))  # conservation


def test_epsilon_softmax_rule_matches_attnlrp_proposition(make_inputs):
    v = weights(N, seed=18)

    class Softmax(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(x, dim=-1) @ v

    x = make_inputs(3, N)
    s = torch.softmax(x, dim=-1)
    relevance = v * s  # R_j of the output units
    expected = x * (relevance - s * relevance.sum(1, keepdim=True))
    torch.testing.assert_close(lrp(Softmax(), x), expected)


def test_epsilon_ln_rule_treats_the_standard_deviation_as_a_constant(make_inputs):
    model, x = NormHead(), make_inputs(3, N)
    gamma, eps = model.norm.weight.detach(), model.norm.eps
    expected = torch.zeros_like(x)
    for s in range(x.shape[0]):
        std = torch.sqrt(x[s].var(unbiased=False) + eps)
        for j in range(N):  # y_j = sum_i z_ij + beta_j, z_ij = x_i (delta_ij - 1/N) gamma_j / std
            z = x[s] * ((torch.arange(N) == j).double() - 1 / N) * gamma[j] / std
            expected[s] += z * model.w[j]  # z_ij / y_j * R_j with R_j = w_j y_j
    torch.testing.assert_close(lrp(model, x), expected)


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("softmax", lambda x: (x, -1)),
        ("log_softmax", lambda x: (x, 1)),
        ("softmin", lambda x: (x, -1)),
        ("layer_norm", lambda x: (x, (4, 5), weights(4, 5, seed=1), weights(4, 5, seed=2), 1e-5)),
        ("rms_norm", lambda x: (x, (5,), weights(5, seed=1), 1e-6)),
        ("group_norm", lambda x: (x, 2, weights(4, seed=1), weights(4, seed=2))),
        ("instance_norm", lambda x: (x, None, None, weights(4, seed=1), weights(4, seed=2))),
        ("normalize", lambda x: (x, 2.0, 2)),
    ],
)
def test_decompositions_give_torchs_values(make_inputs, name, arguments):
    x = make_inputs(3, 4, 5)
    torch.testing.assert_close(DECOMPOSITIONS[name](PlainOps(), *arguments(x)), getattr(F, name)(*arguments(x)))


@pytest.mark.parametrize("mask", ["none", "causal", "bool", "float", "gqa"])
def test_attention_decomposition_gives_torchs_values(make_inputs, mask):
    q, k, v = make_inputs(2, 2, 4, 3), make_inputs(2, 2, 6, 3, seed=2), make_inputs(2, 2, 6, 3, seed=3)
    options = {
        "none": {"scale": 0.3},
        "causal": {"is_causal": True},
        "bool": {"attn_mask": make_inputs(4, 6, seed=4) > 0},
        "float": {"attn_mask": make_inputs(2, 1, 4, 6, seed=5)},
        "gqa": {"enable_gqa": True},
    }[mask]
    if mask == "bool":
        options["attn_mask"][:, 0] = True  # no fully masked row
    if mask == "gqa":
        q = make_inputs(2, 4, 4, 3)
    ours = DECOMPOSITIONS["scaled_dot_product_attention"](PlainOps(), q, k, v, **options)
    torch.testing.assert_close(ours, F.scaled_dot_product_attention(q, k, v, **options))


class Varied(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.var(dim=1)


class Einsum(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bi,bi->b", x, x.tanh())


@pytest.mark.parametrize(("model", "message"), [(Varied(), "calls var"), (Einsum(), "calls einsum")])
def test_operations_that_would_break_summation_to_delta_are_refused(make_inputs, model, message):
    with pytest.raises(UnsupportedModelError, match=message):
        deeplift(model, make_inputs(2, N), 0.0)
