"""The scaling path of the IG paper (Sec. 2.1): outputs at alpha * x, against closed forms."""

import torch

from taylorlens.metrics import scaling_path


def test_scaling_path_of_a_linear_model_is_linear_in_alpha_and_its_softmax_matches():
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3).double().eval()
    x = torch.randn(4, 5, dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 1])
    path = scaling_path(model, x, target, alphas=[0.0, 0.25, 1.0], batch_size=5)
    with torch.no_grad():
        for k, alpha in enumerate([0.0, 0.25, 1.0]):
            logits = model(alpha * x)
            torch.testing.assert_close(path.scores[:, k], logits.gather(1, target[:, None])[:, 0])
            probabilities = logits.softmax(1).gather(1, target[:, None])[:, 0]
            torch.testing.assert_close(path.probabilities[:, k], probabilities)


def test_scaling_path_from_a_baseline_ends_at_the_input_and_starts_at_the_baseline():
    model = lambda x: x.sum(1) ** 2  # noqa: E731  (B,) outputs: no softmax
    x, baseline = torch.ones(2, 3, dtype=torch.float64), torch.full((3,), 2.0, dtype=torch.float64)
    path = scaling_path(model, x, None, baseline=baseline)
    assert path.probabilities is None
    torch.testing.assert_close(path.scores[:, 0], torch.full((2,), 36.0, dtype=torch.float64))
    torch.testing.assert_close(path.scores[:, -1], torch.full((2,), 9.0, dtype=torch.float64))


def test_scaling_path_at_an_embedding_layer_scales_the_context_embeddings():
    # Sundararajan et al. Sec. 3.2 / Fig. 8: a language model's next-word softmax as the context's embeddings
    # are scaled by alpha.
    from taylorlens.zoo.text import ImdbLanguageModel

    torch.manual_seed(0)
    model = ImdbLanguageModel(vocab_size=30, embedding_dim=6, hidden=5).double().eval()
    ids = torch.randint(1, 30, (3, 10), generator=torch.Generator().manual_seed(1))
    target = torch.tensor([4, 7, 9])
    alphas = [0.0, 0.3, 1.0]
    path = scaling_path(model, ids, target, alphas=alphas, layer="embed")
    embeddings = model.embed(ids).detach()
    with torch.no_grad():
        for k, alpha in enumerate(alphas):
            expected = model.classify_embeddings(alpha * embeddings).softmax(1).gather(1, target[:, None])[:, 0]
            torch.testing.assert_close(path.probabilities[:, k], expected)
    torch.testing.assert_close(path.curve, path.probabilities)
    p = path.probabilities
    share = (p[:, 1] - p[:, 0]) / (p[:, 2] - p[:, 0])
    torch.testing.assert_close(path.value, share)  # the rise reached at the node nearest alpha = 0.5 (0.3 here)
    # With output= the score is what output gives, and no softmax is taken on top of it.
    explained = scaling_path(model, ids, target, alphas=alphas, layer="embed", output=lambda out: out.softmax(1))
    assert explained.probabilities is None
    torch.testing.assert_close(explained.scores, path.probabilities)
