"""Any model: token ids and inner layers (layer=), several inputs, forward arguments, structured outputs and
several targets, for every method, checked against the hand-split model, loops and Captum.

Hugging Face models are small random configs (no weights can be downloaded); they run in float64 so the
comparisons are tight.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import taylorlens
from taylorlens import AttributionInputError
from taylorlens.engine import Request
from taylorlens.methods.smoothing import gaussian_noise

transformers = pytest.importorskip("transformers")
captum_attr = pytest.importorskip("captum.attr")

VOCAB, LENGTH, BATCH = 30, 7, 3


def token_ids(batch: int = BATCH, length: int = LENGTH, seed: int = 0) -> torch.Tensor:
    return torch.randint(1, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


class EmbeddingMLP(nn.Module):
    """Ancona et al.'s IMDB MLP shape, small: Embedding -> flatten -> Dense ReLU -> Dense (2 classes)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 4)
        self.hidden = nn.Linear(LENGTH * 4, 6)
        self.out = nn.Linear(6, 2)

    def classify(self, embedded: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(embedded.flatten(1))))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(ids))


class EmbeddingLSTM(nn.Module):
    """Ancona et al.'s IMDB LSTM shape, small: Embedding -> LSTM -> Dense on the last state (one output)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 4)
        self.lstm = nn.LSTM(4, 5, batch_first=True)
        self.out = nn.Linear(5, 1)

    def classify(self, embedded: torch.Tensor) -> torch.Tensor:
        return self.out(self.lstm(embedded)[0][:, -1])[:, 0]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(ids))


def seeded(model: nn.Module, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    for parameter in model.parameters():
        nn.init.normal_(parameter, std=0.5)
    return model.double().eval()


class Split(nn.Module):
    """The hand-split model: the part after the embedding, fed embeddings."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.train(model.training)

    def forward(self, embedded: torch.Tensor) -> torch.Tensor:
        return self.model.classify(embedded)


RANDOM = ("expected_gradients", "smoothgrad", "smooth_taylor")
METHOD_OPTIONS = {
    "gradient": {},
    "gradient_x_input": {},
    "integrated_gradients": {"steps": 8},
    "expected_gradients": {"sigma": 0.3, "n_samples": 6, "seed": 3},
    "occlusion": {"window": (1, 4)},
    "smoothgrad": {"inner": "integrated_gradients", "steps": 4, "n_samples": 3, "sigma": 0.2, "seed": 1},
    "smooth_taylor": {"n_roots": 5, "seed": 2},
    "taylor": {"order": 2},
}


@pytest.mark.parametrize("method", [*METHOD_OPTIONS, "deeplift", "epsilon_lrp"])
def test_layer_output_equals_the_hand_split_embedding_mlp(method):
    model = seeded(EmbeddingMLP())
    ids, target = token_ids(), torch.tensor([0, 1, 1])
    options = METHOD_OPTIONS.get(method, {})
    ours = taylorlens.attribute(model, ids, target, method, layer=model.embed, **options)
    split = taylorlens.attribute(Split(model), model.embed(ids).detach(), target, method, **options)
    assert ours.shape == (BATCH, LENGTH, 4)
    torch.testing.assert_close(ours, split)
    by_name = taylorlens.attribute(model, ids, target, method, layer="embed", **options)
    torch.testing.assert_close(by_name, ours)


@pytest.mark.parametrize("method", list(METHOD_OPTIONS))
def test_layer_output_equals_the_hand_split_embedding_lstm(method):
    model = seeded(EmbeddingLSTM())
    ids = token_ids()
    options = METHOD_OPTIONS[method]
    ours = taylorlens.attribute(model, ids, None, method, layer="embed", **options)
    split = taylorlens.attribute(Split(model), model.embed(ids).detach(), None, method, **options)
    torch.testing.assert_close(ours, split)


def test_layer_input_side_explains_what_the_layer_receives():
    model = seeded(EmbeddingMLP())
    ids = token_ids()
    hidden_input = model.embed(ids).flatten(1).detach()
    ours = taylorlens.attribute(model, ids, 1, "integrated_gradients", layer=model.hidden, layer_side="input")
    tail = nn.Sequential(model.hidden, nn.ReLU(), model.out).eval()
    torch.testing.assert_close(ours, taylorlens.attribute(tail, hidden_input, 1, "integrated_gradients"))


def test_layer_passes_skip_the_embedding_lookup():
    # IG-16 at the embedding: the look-up runs once per input (reading its value: the first input alone,
    # through the whole model, then the others), never per point
    model = seeded(EmbeddingMLP())
    calls = []
    original = model.embed.forward

    def counting(ids):
        calls.append(ids.shape[0])
        return original(ids)

    model.embed.forward = counting
    taylorlens.attribute(model, token_ids(), 0, "integrated_gradients", layer=model.embed, steps=16)
    assert calls == [1, BATCH - 1]
    assert model.embed.forward is counting  # the user's own patch is left in place


def test_layer_results_do_not_depend_on_the_chunk_size():
    model = seeded(EmbeddingLSTM())
    ids = token_ids(5)
    whole = taylorlens.attribute(model, ids, None, "integrated_gradients", layer="embed", steps=6)
    chunked = taylorlens.attribute(model, ids, None, "integrated_gradients", layer="embed", steps=6, batch_size=4)
    torch.testing.assert_close(whole, chunked)


class FailingHead(nn.Module):
    def __init__(self, model: nn.Module, fail_after: int) -> None:
        super().__init__()
        self.model, self.calls, self.fail_after = model, 0, fail_after

    def forward(self, ids):
        self.calls += 1
        if self.calls > self.fail_after:
            raise RuntimeError("boom in the middle of a chunk")
        return self.model(ids)


@pytest.mark.parametrize("side", ["output", "input"])
def test_hooks_and_patched_forwards_are_removed_after_an_exception(side):
    inner = seeded(EmbeddingMLP())
    model = FailingHead(inner, fail_after=2).eval()
    with pytest.raises(RuntimeError, match="boom"):
        taylorlens.attribute(model, token_ids(), 0, "integrated_gradients", layer="model.hidden", layer_side=side,
                             steps=32, batch_size=4)
    for module in inner.modules():
        assert "forward" not in vars(module)
        assert not module._forward_hooks and not module._forward_pre_hooks
    assert all(parameter.requires_grad for parameter in inner.parameters())


def test_several_targets_equal_one_call_per_target_with_one_forward_per_point():
    model = seeded(EmbeddingMLP())
    mlp = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double().eval()
    x = torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    targets = torch.tensor([[0, 2], [1, 0], [2, 2], [1, 2]])
    rows = []
    mlp.register_forward_pre_hook(lambda module, args: rows.append(args[0].shape[0]))
    for method, options in [("integrated_gradients", {"steps": 5}), ("deeplift", {}), ("occlusion", {}),
                            ("gradient_x_input", {})]:
        rows.clear()
        both = taylorlens.attribute(mlp, x, targets, method, batch_size=1000, **options)
        joint_rows = sum(rows)
        assert both.shape == (4, 2, 4)
        rows.clear()
        for t in range(2):
            one = taylorlens.attribute(mlp, x, targets[:, t], method, batch_size=1000, **options)
            torch.testing.assert_close(both[:, t], one)
        assert joint_rows == sum(rows) // 2, method  # the forward of each point is shared by both targets
    ids = token_ids()
    several = taylorlens.attribute(model, ids, torch.tensor([[0, 1]] * BATCH), "integrated_gradients",
                                   layer="embed", steps=4)
    for t in range(2):
        torch.testing.assert_close(several[:, t], taylorlens.attribute(model, ids, t, "integrated_gradients",
                                                                      layer="embed", steps=4))


def test_smoothgrad_repeats_a_per_sample_baseline_for_its_noisy_copies():
    mlp = nn.Sequential(nn.Linear(6, 5), nn.Softplus(), nn.Linear(5, 2)).double().eval()
    x = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    baseline = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([0, 1, 1, 0])
    maps = taylorlens.attribute(mlp, x, target, method="smoothgrad", inner="integrated_gradients",
                                baseline=baseline, n_samples=3, sigma=0.1, seed=0, steps=8)
    noise = gaussian_noise(Request.build(mlp, x, target), 3, 0.1, 0)
    for b in range(4):
        copies = x[b] + noise[b]
        expected = taylorlens.attribute(mlp, copies, int(target[b]), "integrated_gradients",
                                        baseline=baseline[b], steps=8).mean(0)
        torch.testing.assert_close(maps[b], expected)


class TwoInputs(nn.Module):
    """An image + tabular model with a mask forward argument."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.table = nn.Linear(3, 4)
        self.out = nn.Linear(2 * 4 * 4 + 4, 3)

    def forward(self, image, table, mask=None, scale=1.0):
        features = torch.tanh(self.conv(image)).flatten(1)
        tabular = torch.sigmoid(self.table(table))
        if mask is not None:
            tabular = tabular * mask
        return {"logits": scale * self.out(torch.cat([features, tabular], dim=1)), "hidden": features}


@pytest.mark.parametrize("method", list(METHOD_OPTIONS))
def test_tuple_inputs_and_forward_kwargs_equal_a_closure_per_sample(method):
    model = seeded(TwoInputs())
    generator = torch.Generator().manual_seed(4)
    image = torch.randn(3, 1, 6, 6, dtype=torch.float64, generator=generator)
    table = torch.randn(3, 3, dtype=torch.float64, generator=generator)
    mask = torch.tensor([[1.0, 0, 1, 1], [1, 1, 1, 1], [0, 1, 0, 1]], dtype=torch.float64)
    options = {k: v for k, v in METHOD_OPTIONS[method].items() if k != "window"}
    image_part, table_part = taylorlens.attribute(
        model, (image, table), [0, 2, 1], method, forward_kwargs={"mask": mask, "scale": 2.0}, **options
    )
    assert image_part.shape == image.shape and table_part.shape == table.shape

    def packed(rows: slice):
        def forward(flat):
            return model(flat[:, :36].reshape(-1, 1, 6, 6), flat[:, 36:], mask=mask[rows], scale=2.0)["logits"]
        return forward

    flat = torch.cat([image.flatten(1), table], dim=1)
    if method in RANDOM:  # noise is drawn for the whole batch: compare the batch, one mask row for all
        mask[:] = mask[0]
        image_part, table_part = taylorlens.attribute(
            model, (image, table), [0, 2, 1], method, forward_kwargs={"mask": mask, "scale": 2.0}, **options
        )
        expected = taylorlens.attribute(packed(slice(0, 1)), flat, [0, 2, 1], method, **options)
        torch.testing.assert_close(image_part, expected[:, :36].reshape(image.shape))
        torch.testing.assert_close(table_part, expected[:, 36:])
        return
    for b, t in enumerate([0, 2, 1]):
        expected = taylorlens.attribute(packed(slice(b, b + 1)), flat[b:b + 1], t, method, **options)
        torch.testing.assert_close(image_part[b], expected[0, :36].reshape(1, 6, 6))
        torch.testing.assert_close(table_part[b], expected[0, 36:])


def test_tuple_ig_agrees_with_captum_and_completeness_holds_over_all_parts():
    model = seeded(TwoInputs())
    generator = torch.Generator().manual_seed(6)
    image = torch.randn(2, 1, 6, 6, dtype=torch.float64, generator=generator)
    table = torch.randn(2, 3, dtype=torch.float64, generator=generator)
    mask = torch.ones(2, 4, dtype=torch.float64)
    baselines = (0.1, torch.full((3,), -0.2, dtype=torch.float64))
    ours = taylorlens.attribute(model, (image, table), 1, "integrated_gradients", steps=20, baseline=baselines,
                                forward_kwargs={"mask": mask})

    def forward(image, table, mask):
        return model(image, table, mask=mask)["logits"]

    theirs = captum_attr.IntegratedGradients(forward).attribute(
        (image, table), baselines=(0.1, baselines[1].expand(2, 3)), target=1, additional_forward_args=(mask,),
        n_steps=20, method="riemann_right",
    )
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b)
    fine = taylorlens.attribute(model, (image, table), 1, "integrated_gradients", steps=400, rule="trapezoid",
                                baseline=baselines, forward_kwargs={"mask": mask})
    total = sum(part.flatten(1).sum(1) for part in fine)
    change = forward(image, table, mask)[:, 1] - forward(torch.full_like(image, 0.1),
                                                         baselines[1].expand(2, 3), mask)[:, 1]
    torch.testing.assert_close(total, change, rtol=1e-4, atol=1e-6)


def small_bert(classes: int = 3):
    config = transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
        max_position_embeddings=16, num_labels=classes, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config).double().eval()


def test_bert_layer_ig_agrees_with_captum_layer_integrated_gradients():
    model = small_bert()
    ids = token_ids()
    mask = torch.ones_like(ids)
    mask[2, -2:] = 0
    target = torch.tensor([0, 2, 1])
    pad = torch.zeros_like(ids)
    embeddings = model.bert.embeddings.word_embeddings
    ours = taylorlens.attribute(model, ids, target, "integrated_gradients", steps=12,
                                layer="bert.embeddings.word_embeddings", forward_kwargs={"attention_mask": mask},
                                baseline=embeddings(pad).detach())
    assert ours.shape == (BATCH, LENGTH, 16)

    def forward(ids, mask):
        return model(ids, attention_mask=mask).logits

    theirs = captum_attr.LayerIntegratedGradients(forward, embeddings).attribute(
        ids, baselines=pad, target=target, additional_forward_args=(mask,), n_steps=12, method="riemann_right"
    )
    torch.testing.assert_close(ours, theirs)
    one_pad = taylorlens.attribute(model, ids, target, "integrated_gradients", steps=12, layer=embeddings,
                                   forward_kwargs={"attention_mask": mask}, baseline=embeddings(pad[0]).detach())
    torch.testing.assert_close(one_pad, ours)  # a baseline of one sample's layer shape (the [PAD] embedding)


def test_ig_completeness_at_the_bert_embedding_improves_as_steps_grow():
    model = small_bert()
    ids = token_ids()
    layer = "bert.embeddings.word_embeddings"
    with torch.no_grad():
        scores = model(ids).logits[torch.arange(BATCH), 1]
        embeddings = model.bert.embeddings.word_embeddings(ids)
        zero = model(inputs_embeds=torch.zeros_like(embeddings)).logits[:, 1]
    gaps = []
    for steps in (4, 16, 64):
        maps = taylorlens.attribute(model, ids, 1, "integrated_gradients", steps=steps, layer=layer,
                                    rule="trapezoid")
        gaps.append(float((taylorlens.sum_over(maps, (1, 2)) - (scores - zero)).abs().max()))
    assert gaps[2] < gaps[1] < gaps[0] and gaps[2] < 1e-3 * float((scores - zero).abs().max()) + 1e-6


@pytest.mark.parametrize("name", ["bert", "distilbert", "gpt2"])
def test_hugging_face_models_equal_their_inputs_embeds_split(name):
    if name == "bert":
        model, layer = small_bert(), "bert.embeddings.word_embeddings"
        target, output = 1, None
    elif name == "distilbert":
        config = transformers.DistilBertConfig(vocab_size=VOCAB, dim=16, n_layers=2, n_heads=2, hidden_dim=24,
                                               max_position_embeddings=16, num_labels=2, dropout=0.0,
                                               attention_dropout=0.0)
        torch.manual_seed(0)
        model = transformers.DistilBertForSequenceClassification(config).double().eval()
        layer, target, output = "distilbert.embeddings.word_embeddings", 1, None
    else:
        model, layer = small_gpt2(), "transformer.wte"
        target = 5

        def output(out):
            return out.logits[:, -1]

    ids = token_ids()
    embed = model.get_input_embeddings()
    ours = taylorlens.attribute(model, ids, target, "integrated_gradients", steps=6, layer=layer, output=output)

    def split(embedded):
        out = model(inputs_embeds=embedded)
        return out.logits if output is None else output(out)

    torch.testing.assert_close(ours, taylorlens.attribute(split, embed(ids).detach(), target,
                                                          "integrated_gradients", steps=6))


def small_gpt2():
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=16, n_layer=2, n_head=2,
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(config).double().eval()


@pytest.mark.parametrize("method", ["gradient_x_input", "integrated_gradients"])
def test_explain_generation_equals_the_per_token_loop(method):
    model = small_gpt2()
    prompt, generated = token_ids(2, 5, seed=1), token_ids(2, 4, seed=2)
    options = {"steps": 5} if method == "integrated_gradients" else {}
    matrix = taylorlens.explain_generation(model, prompt, generated, method=method, **options)
    assert matrix.shape == (2, 4, 9)
    sequence = torch.cat([prompt, generated], dim=1)
    for t in range(4):
        def logit(out, t=t):
            return out.logits[:, 5 + t - 1]

        row = taylorlens.attribute(model, sequence, generated[:, t], method, layer="transformer.wte", output=logit,
                                   **options).sum(-1)
        torch.testing.assert_close(matrix[:, t], row, rtol=1e-5, atol=1e-7)
        assert bool((matrix[:, t, 5 + t:] == 0).all())  # causal: later tokens never explain earlier logits


def test_output_is_read_from_model_outputs_keys_and_callables():
    model = seeded(TwoInputs())
    image = torch.randn(2, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    table = torch.randn(2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    default = taylorlens.attribute(model, (image, table), 0, "gradient")
    keyed = taylorlens.attribute(model, (image, table), 0, "gradient", output="logits")
    called = taylorlens.attribute(model, (image, table), 0, "gradient", output=lambda out: out["logits"])
    for a, b, c in zip(default, keyed, called, strict=True):
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(a, c)
    as_tuple = taylorlens.attribute(lambda i, t: (model(i, t)["logits"], None), (image, table), 0, "gradient")
    torch.testing.assert_close(as_tuple[1], default[1])


class Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Linear(3, 3)

    def forward(self, x):
        return self.shared(torch.tanh(self.shared(x)))


def test_a_layer_called_twice_is_chosen_with_layer_call():
    model = seeded(Twice())
    x = torch.randn(2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    with pytest.raises(AttributionInputError, match=r"layer 'shared' is called 2 times per forward pass; choose one "
                                                    r"call with layer_call= \(0 to 1\)"):
        taylorlens.attribute(model, x, 0, "gradient", layer="shared")
    second = taylorlens.attribute(model, x, 0, "gradient", layer="shared", layer_call=1, layer_side="input")
    hidden = torch.tanh(model.shared(x)).detach()
    torch.testing.assert_close(second, taylorlens.attribute(model.shared, hidden, 0, "gradient"))
    first = taylorlens.attribute(model, x, 0, "gradient", layer="shared", layer_call=0)
    torch.testing.assert_close(first, taylorlens.attribute(lambda h: model.shared(torch.tanh(h)),
                                                           model.shared(x).detach(), 0, "gradient"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"layer": "embedd"}, r"layer 'embedd' is not in the model; closest names: embed"),
        ({"layer": nn.Linear(2, 2)}, "layer Linear is not a module of the model"),
        ({"layer": 3}, "layer must be an nn.Module or a dotted name, got int"),
        ({"layer": "embed", "layer_side": "inside"}, "layer_side must be one of 'output', 'input'"),
        ({"layer": "embed", "layer_side": "input"}, r"has dtype torch.int64: only floating-point values"),
        ({"layer": "embed", "layer_call": 2}, r"layer_call=2 but layer 'embed' is called 1 time"),
        ({"layer": "embed", "forward_kwargs": {"mask": torch.ones(2, 7)}},
         r"forward_kwargs\['mask'\] has shape \(2, 7\): a tensor argument must have the batch size 3"),
        ({"layer": "embed", "forward_kwargs": [1]}, "forward_kwargs must be a dict"),
        ({"layer": "embed", "output": 3}, "output must be None, a key such as 'logits' or a callable"),
        ({"layer": "embed", "output": "scores"}, r"output='scores' is not in the model's return value"),
        ({"layer": "embed", "output": lambda out: out[:, :, None]}, r"must map a batch of \d+ to outputs of shape"),
        ({"layer": "embed", "layr": 1}, r"unknown option\(s\) 'layr'"),
    ],
)
def test_bad_model_options_are_rejected_with_clear_messages(options, message):
    model = seeded(EmbeddingMLP())
    with pytest.raises(AttributionInputError, match=message):
        taylorlens.attribute(model, token_ids(), 0, "integrated_gradients", steps=2, **options)


def test_token_ids_without_layer_and_bad_several_inputs_are_rejected():
    model = seeded(EmbeddingMLP())
    with pytest.raises(AttributionInputError, match="inputs must be a floating-point tensor"):
        taylorlens.attribute(model, token_ids(), 0, "gradient")
    with pytest.raises(AttributionInputError, match=r"same batch size B, got batch sizes \[2, 3\]"):
        taylorlens.attribute(TwoInputs().eval(), (torch.zeros(2, 1, 6, 6), torch.zeros(3, 3)), 0, "gradient")
    with pytest.raises(AttributionInputError, match="baseline must give one entry per input"):
        taylorlens.attribute(TwoInputs().double().eval(), (torch.zeros(2, 1, 6, 6, dtype=torch.float64),
                                                    torch.zeros(2, 3, dtype=torch.float64)), 0,
                             "integrated_gradients", baseline=(0.0,))
    with pytest.raises(AttributionInputError, match=r"expected 3 ints, got shape \(3, 2, 1\)"):
        taylorlens.attribute(model, token_ids(), torch.zeros(3, 2, 1, dtype=torch.long), "gradient", layer="embed")


METRIC_CALLS = {
    "sensitivity_n": lambda m, x, a, t, **o: taylorlens.metrics.sensitivity_n(m, x, a, t, n_subsets=8, seed=0, **o),
    "perturbation_curve": lambda m, x, a, t, **o: taylorlens.metrics.perturbation_curve(m, x, a, t, **o),
    "aupc": lambda m, x, a, t, **o: taylorlens.metrics.aupc(m, x, a, t, k=2, L=3, P=2, seed=0, **o),
    "infidelity": lambda m, x, a, t, **o: taylorlens.metrics.infidelity(
        m, x, a, t, perturbation="gaussian", n_perturbations=6, seed=0, **o),
    "completeness_gap": lambda m, x, a, t, **o: taylorlens.metrics.completeness_gap(m, x, a, t, **o),
}


@pytest.mark.parametrize("metric", list(METRIC_CALLS))
def test_metrics_at_a_layer_equal_the_metric_on_the_hand_split_model(metric):
    # A metric called with the options the attributions were computed with perturbs the same variable.
    model = seeded(EmbeddingMLP())
    ids, target = token_ids(), torch.tensor([0, 1, 1])
    maps = taylorlens.attribute(model, ids, target, "gradient_x_input", layer="embed")
    ours = METRIC_CALLS[metric](model, ids, maps, target, layer="embed")
    split = METRIC_CALLS[metric](Split(model), model.embed(ids).detach(), maps, target)
    assert torch.isfinite(ours.value).all()
    torch.testing.assert_close(ours.value, split.value)


def test_metrics_take_forward_kwargs_and_output_like_the_methods():
    model = small_bert()
    ids, target = token_ids(), torch.tensor([0, 1, 1])
    mask = torch.ones_like(ids)
    mask[1, -3:] = 0
    options = {"layer": "bert.embeddings.word_embeddings", "forward_kwargs": {"attention_mask": mask},
               "output": "logits"}
    maps = taylorlens.attribute(model, ids, target, "integrated_gradients", steps=64, rule="gauss_legendre",
                                **options)
    gap = taylorlens.metrics.completeness_gap(model, ids, maps, target, **options)
    with torch.no_grad():
        embedded = model.bert.embeddings.word_embeddings(ids)
        rows = torch.arange(BATCH)
        delta = (model(inputs_embeds=embedded, attention_mask=mask).logits[rows, target]
                 - model(inputs_embeds=torch.zeros_like(embedded), attention_mask=mask).logits[rows, target])
    expected = (maps.sum((1, 2)) - delta).abs()
    torch.testing.assert_close(gap.value, expected)
    assert float(gap.value.max()) < 1e-6 * float(delta.abs().max()) + 1e-9  # and IG is complete there


def test_metrics_refuse_several_targets_per_sample_with_a_clear_error():
    model = seeded(EmbeddingMLP())
    ids = token_ids()
    maps = taylorlens.attribute(model, ids, torch.tensor([0, 1, 1]), "gradient", layer="embed")
    with pytest.raises(AttributionInputError, match="one class per sample"):
        taylorlens.metrics.completeness_gap(model, ids, maps, torch.tensor([[0, 1]] * BATCH), layer="embed")
    expected = "'lyer' for metric 'completeness_gap'; accepted: baseline, batch_size and the model options"
    with pytest.raises(AttributionInputError, match=expected):
        taylorlens.metrics.completeness_gap(model, ids, maps, 0, lyer="embed")


def test_taylor_terms_at_a_layer_equal_the_terms_of_the_hand_split_model():
    model = seeded(EmbeddingMLP())
    ids, target = token_ids(), torch.tensor([0, 1, 1])
    ours = taylorlens.taylor.terms(model, ids, target, order=2, diagonal="exact", layer="embed")
    split = taylorlens.taylor.terms(Split(model), model.embed(ids).detach(), target, order=2, diagonal="exact")
    for field in ("first_order", "second_independent", "second_interactive", "attribution"):
        torch.testing.assert_close(getattr(ours, field), getattr(split, field))
    torch.testing.assert_close(ours.output_change, split.output_change)


def test_reading_a_layer_value_stops_the_forward_pass_after_the_layer():
    # only the first input runs the whole model (to check how often the layer is called); the others stop
    # at the layer: the parts after the embedding run once, and the value is the same as the full pass's
    model = seeded(EmbeddingMLP())
    after = []
    handle = model.hidden.register_forward_pre_hook(lambda module, args: after.append(args[0].shape[0]))
    try:
        request = Request.build(model, token_ids(), 0, layer="embed")
    finally:
        handle.remove()
    assert after == [1]
    torch.testing.assert_close(request.inputs, model.embed(token_ids()).detach())
