"""Word attributions at the embedding layer of token-id models, against slow re-implementations."""

import pytest
import torch

from taylorlens.words import embedding_split, word_attributions
from taylorlens.zoo.text import ImdbLSTM, ImdbMLP


@pytest.fixture
def lstm():
    torch.manual_seed(0)
    model = ImdbLSTM(vocab_size=40, embedding_dim=6, hidden=8).double().eval()
    with torch.no_grad():
        model.embed.weight.mul_(20)  # embeddings of norm ~1: the LSTM is far from linear on them
    return model


def ids(seed=0):
    tokens = torch.randint(1, 40, (3, 12), generator=torch.Generator().manual_seed(seed))
    tokens[0, :4] = 0  # front padding, as the IMDB data has it
    return tokens


def test_ig_completeness_over_words_tightens_as_steps_grow(lstm):
    tokens = ids()
    with torch.no_grad():
        score = lstm(tokens)[:, 1] - lstm(torch.zeros_like(tokens))[:, 1]  # all-padding = zero embeddings
    gaps = [
        (word_attributions(lstm, tokens, 1, "integrated_gradients", steps=steps).sum(1) - score).abs().max()
        for steps in (2, 8, 32)
    ]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 2e-2 * score.abs().min()


def test_occlusion_1_over_words_is_the_drop_when_a_word_embedding_is_zeroed(lstm):
    tokens = ids(1)
    scores = word_attributions(lstm, tokens, 1, "occlusion")
    embeddings = lstm.embed(tokens).detach()
    for i in range(tokens.shape[1]):
        occluded = embeddings.clone()
        occluded[:, i] = 0
        drop = lstm.classify_embeddings(embeddings)[:, 1] - lstm.classify_embeddings(occluded)[:, 1]
        torch.testing.assert_close(scores[:, i], drop.detach())
    # padding already embeds to zero: occluding it changes nothing
    torch.testing.assert_close(scores[0, :4], torch.zeros(4, dtype=scores.dtype))


def test_gradient_x_input_sums_each_words_embedding_components(lstm):
    tokens = ids(2)
    embeddings = lstm.embed(tokens).detach().requires_grad_()
    gradient = torch.autograd.grad(lstm.classify_embeddings(embeddings)[:, 0].sum(), embeddings)[0]
    expected = (gradient * embeddings).sum(-1).detach()
    torch.testing.assert_close(word_attributions(lstm, tokens, 0, "gradient_x_input"), expected)


def test_mlp_words_are_linear_in_gradient_x_input_at_small_embeddings():
    # Ancona et al. Sec. 4.1: IMDB-MLP "behaves almost linearly"; with a purely linear net every method agrees.
    torch.manual_seed(0)
    mlp = ImdbMLP(vocab_size=40, max_length=12, embedding_dim=6, hidden=8).double().eval()
    mlp.activation = torch.nn.Identity()
    tokens = ids(3)
    gi = word_attributions(mlp, tokens, 1, "gradient_x_input")
    torch.testing.assert_close(word_attributions(mlp, tokens, 1, "integrated_gradients", steps=8), gi)
    torch.testing.assert_close(word_attributions(mlp, tokens, 1, "occlusion"), gi)


def test_models_without_an_embedding_layer_are_refused_by_name():
    with pytest.raises(TypeError, match="`embed`"):
        embedding_split(torch.nn.Linear(3, 2), torch.zeros(1, 3, dtype=torch.long))
