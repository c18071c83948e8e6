"""DeepLIFT and epsilon-LRP with ``products="symmetric"`` through transformers, LSTMs and gated units.

Summation-to-delta in float64: ``|sum(a) - (f(x) - f(ref))| <= 1e-6 * max(1, |f(x) - f(ref)|)``. The
Hugging Face models are small random configurations (no weights are downloaded), explained at their
input embeddings / pixels through a small wrapper module.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

import taylorlens
from taylorlens.zoo.counterexamples import ReluProduct

transformers = pytest.importorskip("transformers")
captum_attr = pytest.importorskip("captum.attr")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are tiny: one thread is several times faster than many on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class AtFloatInputs(nn.Module):
    """A Hugging Face model called with ``inputs_embeds=`` / ``pixel_values=``; ``pick`` chooses the outputs."""

    def __init__(self, model: nn.Module, keyword: str, pick: Callable) -> None:
        super().__init__()
        self.model, self.keyword, self.pick = model, keyword, pick

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pick(self.model(**{self.keyword: x}))


SIZES = {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32}


def bert() -> nn.Module:
    config = transformers.BertConfig(vocab_size=30, max_position_embeddings=16, **SIZES)
    return AtFloatInputs(transformers.BertModel(config), "inputs_embeds", lambda o: o.pooler_output[:, :4])


def distilbert() -> nn.Module:
    config = transformers.DistilBertConfig(
        vocab_size=30, dim=16, n_layers=2, n_heads=2, hidden_dim=32, max_position_embeddings=16
    )
    return AtFloatInputs(
        transformers.DistilBertModel(config), "inputs_embeds", lambda o: o.last_hidden_state[:, 0, :4]
    )


def gpt2() -> nn.Module:
    config = transformers.GPT2Config(
        vocab_size=30, n_embd=16, n_layer=2, n_head=2, n_positions=16, bos_token_id=0, eos_token_id=0
    )
    return AtFloatInputs(transformers.GPT2LMHeadModel(config), "inputs_embeds", lambda o: o.logits[:, -1])


def vit() -> nn.Module:
    config = transformers.ViTConfig(image_size=8, patch_size=4, num_channels=3, **SIZES)
    return AtFloatInputs(transformers.ViTModel(config), "pixel_values", lambda o: o.pooler_output[:, :4])


def convnext() -> nn.Module:
    config = transformers.ConvNextConfig(num_channels=3, hidden_sizes=[8, 16], depths=[1, 1], num_stages=2)
    return AtFloatInputs(transformers.ConvNextModel(config), "pixel_values", lambda o: o.pooler_output[:, :4])


class SentimentLSTM(nn.Module):
    """Ancona et al. App. C.4's shape in small: (embedded tokens) -> 2-layer bidirectional LSTM -> Linear."""

    def __init__(self, kind: type[nn.RNNBase] = nn.LSTM) -> None:
        super().__init__()
        self.rnn = kind(8, 6, num_layers=2, bidirectional=True, batch_first=True)
        self.out = nn.Linear(12, 2)

    def forward(self, embedded: torch.Tensor) -> torch.Tensor:
        return self.out(self.rnn(embedded)[0][:, -1])


class SwiGLU(nn.Module):
    """``W3 (silu(W1 x) * W2 x)`` (Shazeer 2020), the MLP of LLaMA-type transformers, with an RMS norm."""

    def __init__(self) -> None:
        super().__init__()
        self.norm, self.gate, self.up, self.down = nn.RMSNorm(8), nn.Linear(8, 12), nn.Linear(8, 12), nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        return self.down(nn.functional.silu(self.gate(x)) * self.up(x))


TRANSFORMERS = {"bert": (bert, (6, 16)), "distilbert": (distilbert, (6, 16)), "gpt2": (gpt2, (6, 16)),
                "vit": (vit, (3, 8, 8)), "convnext": (convnext, (3, 32, 32))}
OTHERS = {"lstm": (SentimentLSTM, (7, 8)), "gru": (lambda: SentimentLSTM(nn.GRU), (7, 8)), "swiglu": (SwiGLU, (8,))}
MODELS = {**TRANSFORMERS, **OTHERS}


def build(name: str) -> tuple[nn.Module, tuple[int, ...]]:
    factory, shape = MODELS[name]
    torch.manual_seed(0)
    return factory().double().eval(), shape


def delta_gap(model: nn.Module, maps: torch.Tensor, x: torch.Tensor, reference: torch.Tensor, target: int):
    """``|sum(a) - Δf|`` and ``max(1, |Δf|)`` per sample."""
    with torch.no_grad():
        delta = model(x)[:, target] - model(reference)[:, target]
    return (maps.flatten(1).sum(1) - delta).abs(), delta.abs().clamp(min=1.0)


@pytest.mark.parametrize("reference", ["zero", "random"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_symmetric_deeplift_sums_to_delta(make_inputs, name, reference):
    model, shape = build(name)
    x = make_inputs(2, *shape)
    baseline = torch.zeros_like(x) if reference == "zero" else 0.5 * make_inputs(2, *shape, seed=9)
    maps = taylorlens.attribute(model, x, 1, "deeplift", baseline=baseline, products="symmetric", batch_size=2)
    gap, scale = delta_gap(model, maps, x, baseline, 1)
    assert (gap <= 1e-6 * scale).all(), (gap, scale)


def test_ancona_product_example_misses_completeness_by_default_and_keeps_it_symmetric():
    # Ancona Sec. 3.1 at (3, 2): ReLU(x1 - 1) has multiplier 2/3, ReLU(x2) 1, h(x) - h(0) = 4. The papers'
    # DeepLIFT keeps the product's gradient (2, 2): (3 * 2/3 * 2, 2 * 1 * 2) = (4, 4), summing to 8. The
    # symmetric split uses the mean factors (1, 1): (2, 2), summing to 4.
    x = torch.tensor([[3.0, 2.0]], dtype=torch.float64)
    default = taylorlens.attribute(ReluProduct().eval(), x, method="deeplift")
    torch.testing.assert_close(default, torch.tensor([[4.0, 4.0]], dtype=torch.float64))
    symmetric = taylorlens.attribute(ReluProduct().eval(), x, method="deeplift", products="symmetric")
    torch.testing.assert_close(symmetric, torch.tensor([[2.0, 2.0]], dtype=torch.float64))


class BiasFreeBlock(nn.Module):
    """A bias-free transformer block with linear attention ``(Q K^T) V``, LN-rule norms and a SwiGLU MLP."""

    def __init__(self) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(8, bias=False), nn.RMSNorm(8)
        self.q, self.k, self.v = (nn.Linear(8, 8, bias=False) for _ in range(3))
        self.gate, self.up = nn.Linear(8, 8, bias=False), nn.Linear(8, 8, bias=False)
        self.down = nn.Linear(8, 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        h = x + (self.q(h) @ self.k(h).transpose(-2, -1)) @ self.v(h) / 8
        h = self.norm2(h)
        return self.down(nn.functional.silu(self.gate(h)) * self.up(h)).sum(1)


def test_epsilon_lrp_conserves_relevance_on_a_bias_free_attention_block(make_inputs):
    torch.manual_seed(0)
    model, x = BiasFreeBlock().double().eval(), make_inputs(3, 5, 8)
    maps = taylorlens.attribute(model, x, 1, "epsilon_lrp", products="symmetric")
    with torch.no_grad():
        output = model(x)[:, 1]
    torch.testing.assert_close(maps.flatten(1).sum(1), output, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("network", ["linear", "relu_mlp"])
def test_symmetric_epsilon_lrp_equals_gradient_x_input_where_attnlrp_says_so(make_mlp, make_inputs, network):
    model = nn.Sequential(nn.Linear(5, 3)).double().eval() if network == "linear" else make_mlp(nn.ReLU)
    x = make_inputs(4, 5)
    lrp = taylorlens.attribute(model, x, 1, "epsilon_lrp", products="symmetric")
    torch.testing.assert_close(lrp, taylorlens.attribute(model, x, 1, "gradient_x_input"))


@pytest.mark.parametrize("name", ["bert", "lstm"])
def test_guided_backprop_with_non_relu_gradient_goes_through_transformers_and_lstms(make_inputs, name):
    model, shape = build(name)
    x = make_inputs(2, *shape)
    guided = taylorlens.attribute(model, x, 1, "guided_backprop", non_relu="gradient")
    # No ReLU-type unit in these models: every gradient is the ordinary one.
    torch.testing.assert_close(guided, taylorlens.attribute(model, x, 1, "gradient"))


@pytest.mark.parametrize("name", ["bert", "gpt2"])
def test_second_order_taylor_runs_on_attention_models(make_inputs, name):
    model, shape = build(name)
    maps = taylorlens.attribute(model, make_inputs(2, *shape), 1, "taylor", order=2)
    assert maps.shape == (2, *shape) and torch.isfinite(maps).all()


class QuadraticAttention(nn.Module):
    """``sum(Q(X) * mean_seq(K(X)))`` through ``scaled_dot_product_attention``: quadratic in ``X``."""

    def __init__(self) -> None:
        super().__init__()
        self.q, self.k = nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        constant = torch.zeros_like(x)  # constant queries and keys: every attention weight is 1/L
        mixed = nn.functional.scaled_dot_product_attention(constant, constant, self.k(x))
        return (self.q(x) * mixed).sum((1, 2))


def test_second_order_taylor_is_exact_on_a_quadratic_attention_model(make_inputs):
    torch.manual_seed(0)
    model, x = QuadraticAttention().double().eval(), make_inputs(3, 5, 4)
    maps = taylorlens.attribute(model, x, None, "taylor", order=2)
    with torch.no_grad():
        torch.testing.assert_close(maps.flatten(1).sum(1), model(x) - model(torch.zeros_like(x)))


def test_symmetric_deeplift_agrees_with_captum_on_a_product_free_network(make_mlp, make_inputs):
    # Without products and normalisations the symmetric option changes nothing: Captum's DeepLift is right.
    model, x = make_mlp(nn.Tanh), make_inputs(4, 5)
    ours = taylorlens.attribute(model, x, 2, "deeplift", products="symmetric")
    torch.testing.assert_close(ours, captum_attr.DeepLift(model).attribute(x, 0.0 * x, target=2))


def test_captum_deeplift_misses_summation_to_delta_on_a_small_bert(make_inputs, capsys):
    model, shape = build("bert")
    x, baseline = make_inputs(2, *shape), torch.zeros(2, *shape, dtype=torch.float64)
    ours = taylorlens.attribute(model, x, 1, "deeplift", products="symmetric", batch_size=2)
    theirs = captum_attr.DeepLift(model).attribute(x, baseline, target=1)
    ours_gap, scale = delta_gap(model, ours, x, baseline, 1)
    theirs_gap, _ = delta_gap(model, theirs, x, baseline, 1)
    with torch.no_grad():
        delta = (model(x)[:, 1] - model(baseline)[:, 1]).abs()
    with capsys.disabled():
        print(
            f"\nsmall BERT, zero baseline: completeness gap |sum(a) - Δf| / |Δf| per input: taylorlens "
            f"{(ours_gap / delta).tolist()}, Captum DeepLift {(theirs_gap / delta).tolist()}"
        )
    assert (ours_gap <= 1e-6 * scale).all()
    assert (theirs_gap > 1e-3 * delta).any()


@pytest.mark.parametrize(
    ("method", "options", "message"),
    [
        ("deeplift", {"products": "shapley"}, "products must be one of 'gradient', 'symmetric', got 'shapley'"),
        ("epsilon_lrp", {"products": None}, "products must be one of 'gradient', 'symmetric', got None"),
        ("guided_backprop", {"non_relu": "keep"}, "non_relu must be one of 'refuse', 'gradient', got 'keep'"),
    ],
)
def test_bad_product_options_get_clear_errors(make_mlp, make_inputs, method, options, message):
    with pytest.raises(taylorlens.AttributionInputError, match=message):
        taylorlens.attribute(make_mlp(), make_inputs(2, 5), 0, method, **options)


def test_the_default_rules_still_refuse_attention_and_packed_sequences_stay_refused(make_inputs):
    model, shape = build("bert")
    with pytest.raises(taylorlens.UnsupportedModelError, match="calls layer_norm"):
        taylorlens.attribute(model, make_inputs(2, *shape), 1, "deeplift")

    class Packed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.GRU(8, 4, batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            packed = nn.utils.rnn.pack_padded_sequence(x, [x.shape[1]] * x.shape[0], batch_first=True)
            return self.rnn(packed)[1][0]

    with pytest.raises(taylorlens.UnsupportedModelError, match="packed sequence"):
        taylorlens.attribute(Packed().double().eval(), make_inputs(2, 5, 8), 1, "deeplift", products="symmetric")
