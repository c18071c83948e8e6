"""Word attributions at the embedding layer of token-id models: equal to the hand-split model
``classify_embeddings(embed(ids))``, and against slow re-implementations."""

import pytest
import torch
from torch import nn

import taylorlens
from taylorlens import UnsupportedModelError, word_attributions
from taylorlens.zoo.text import ImdbLSTM, ImdbMLP


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are tiny: one thread is several times faster than many on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


def hand_split(model, tokens, target, method, **options):
    """The same method on ``classify_embeddings`` at the embeddings, summed over the components."""
    embeddings = model.embed(tokens).detach()
    return taylorlens.attribute(model.classify_embeddings, embeddings, target, method, **options).sum(-1)


@pytest.mark.parametrize("method, options", [
    ("gradient_x_input", {}),
    ("integrated_gradients", {"steps": 16}),
    ("smoothgrad", {"inner": "integrated_gradients", "steps": 4, "sigma": 0.3, "n_samples": 3, "seed": 1}),
])
def test_word_scores_equal_the_method_on_the_hand_split_lstm(lstm, method, options):
    tokens = ids(4)
    torch.testing.assert_close(word_attributions(lstm, tokens, 1, method, **options),
                               hand_split(lstm, tokens, 1, method, **options))


@pytest.mark.parametrize("method", ["deeplift", "epsilon_lrp"])
def test_lstm_modified_gradients_default_to_symmetric_products_and_equal_the_hand_split(lstm, method):
    tokens = ids(5)
    scores = word_attributions(lstm, tokens, 1, method)
    torch.testing.assert_close(scores, hand_split(lstm, tokens, 1, method, products="symmetric"))
    if method == "deeplift":  # summation to delta: sum over words = f(x) - f(all words absent)
        with torch.no_grad():
            delta = lstm(tokens)[:, 1] - lstm(torch.zeros_like(tokens))[:, 1]
        torch.testing.assert_close(scores.sum(1), delta)


def test_an_explicit_products_choice_is_kept_even_on_an_lstm(lstm):
    with pytest.raises(UnsupportedModelError):
        word_attributions(lstm, ids(), 1, "dl", products="gradient")


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


def test_occlusion_of_two_word_windows_gives_each_word_the_mean_drop_of_its_windows(lstm):
    tokens = ids(6)
    scores = word_attributions(lstm, tokens, 0, "occlusion", window=(2, 6))
    embeddings = lstm.embed(tokens).detach()
    drops = []
    for start in range(tokens.shape[1] - 1):
        occluded = embeddings.clone()
        occluded[:, start: start + 2] = 0
        drops.append((lstm.classify_embeddings(embeddings) - lstm.classify_embeddings(occluded))[:, 0].detach())
    drops = torch.stack(drops, 1)
    expected = torch.cat([drops[:, :1], (drops[:, 1:] + drops[:, :-1]) / 2, drops[:, -1:]], 1)
    torch.testing.assert_close(scores, expected)


def test_gradient_x_input_sums_each_words_embedding_components(lstm):
    tokens = ids(2)
    embeddings = lstm.embed(tokens).detach().requires_grad_()
    gradient = torch.autograd.grad(lstm.classify_embeddings(embeddings)[:, 0].sum(), embeddings)[0]
    expected = (gradient * embeddings).sum(-1).detach()
    torch.testing.assert_close(word_attributions(lstm, tokens, 0, "gradient_x_input"), expected)


def test_several_targets_give_one_row_of_word_scores_per_target(lstm):
    tokens = ids(7)
    both = word_attributions(lstm, tokens, torch.tensor([[0, 1]] * 3), "integrated_gradients", steps=8)
    assert both.shape == (3, 2, 12)
    for target in (0, 1):
        torch.testing.assert_close(both[:, target],
                                   word_attributions(lstm, tokens, target, "integrated_gradients", steps=8))


def test_mlp_words_are_linear_in_gradient_x_input_at_small_embeddings():
    # Ancona et al. Sec. 4.1: IMDB-MLP "behaves almost linearly"; with a purely linear net every method agrees.
    torch.manual_seed(0)
    mlp = ImdbMLP(vocab_size=40, max_length=12, embedding_dim=6, hidden=8).double().eval()
    mlp.activation = torch.nn.Identity()
    tokens = ids(3)
    gi = word_attributions(mlp, tokens, 1, "gradient_x_input")
    torch.testing.assert_close(word_attributions(mlp, tokens, 1, "integrated_gradients", steps=8), gi)
    torch.testing.assert_close(word_attributions(mlp, tokens, 1, "occlusion"), gi)
    torch.testing.assert_close(word_attributions(mlp, tokens, 1, "deeplift"), gi)


class Tagged(nn.Module):
    """A token-id model whose embedding is not called ``embed``: found through get_input_embeddings()."""

    def __init__(self):
        super().__init__()
        self.words = nn.Embedding(40, 5)
        self.head = nn.Linear(5, 2)

    def get_input_embeddings(self):
        return self.words

    def forward(self, tokens):
        return self.head(torch.tanh(self.words(tokens)).mean(1))


def test_get_input_embeddings_is_the_default_layer_and_a_dotted_name_selects_it_too():
    torch.manual_seed(0)
    model = Tagged().double().eval()
    tokens = ids(8)
    default = word_attributions(model, tokens, 1, "occlusion")
    torch.testing.assert_close(word_attributions(model, tokens, 1, "occlusion", layer="words"), default)
    embeddings = model.words(tokens).detach()
    occluded = embeddings.clone()
    occluded[:, 3] = 0
    head = model.head
    drop = (head(torch.tanh(embeddings).mean(1)) - head(torch.tanh(occluded).mean(1)))[:, 1].detach()
    torch.testing.assert_close(default[:, 3], drop)


def test_models_without_an_embedding_layer_are_refused_naming_layer():
    with pytest.raises(taylorlens.AttributionInputError, match="layer="):
        word_attributions(nn.Linear(3, 2), torch.zeros(1, 3, dtype=torch.long), 0)
