"""Methods at the embedding layer of a small LSTM trained on real IMDB reviews (300 reviews, a 300-word
vocabulary, 60 tokens: never the full model): IG completeness as steps grow (Sundararajan et al. 2017,
Sec. 2.6) and Occlusion-1 over words (Ancona et al. 2018, App. C.4)."""

import pytest
import torch

import taylorlens
from taylorlens.zoo import imdb, wheels
from taylorlens.zoo.errors import MissingDataError
from taylorlens.zoo.text import ImdbLSTM

USER_WHEELS = wheels.wheels_directory()  # read before any fixture moves the zoo cache (see tests/zoo/test_imdb.py)
VOCABULARY, LENGTH, WIDTH = 300, 60, 8


@pytest.fixture(scope="module")
def trained():
    """A float64 ImdbLSTM (embedding 8, 16 units) fitted to 150 reviews (Adam, 20 epochs: it classifies them
    all, its logits move by several units between a review and the zero embedding), and 4 test reviews."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(wheels.WHEELS_ENV_VARIABLE, str(USER_WHEELS))
        try:
            texts, labels = imdb.read_reviews(imdb.imdb_wheel())
        except MissingDataError as error:
            pytest.skip(str(error))
    reviews = imdb.prepare(texts[:300], labels[:300], vocabulary_size=VOCABULARY, max_length=LENGTH)
    x, y = reviews.split("train")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = ImdbLSTM(vocab_size=VOCABULARY, embedding_dim=WIDTH, hidden=16)
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
        for _ in range(20):
            for batch in torch.randperm(len(x)).split(50):
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
                optimizer.step()
    model = model.double().eval()
    with torch.no_grad():
        assert bool((model(x).argmax(1) == y).float().mean() > 0.9)
    ids, labels = reviews.split("test")
    return model, ids[:4], labels[:4]


def explained(model, embeddings, target):
    """``f``: the target logit at the given embeddings."""
    with torch.no_grad():
        return model.classify_embeddings(embeddings).gather(1, target[:, None])[:, 0]


def test_ig_completeness_at_the_embedding_layer_as_steps_grow_on_a_trained_lstm(trained):
    model, ids, target = trained
    embeddings = model.embed(ids).detach()
    delta = explained(model, embeddings, target) - explained(model, torch.zeros_like(embeddings), target)
    assert bool((delta.abs() > 0.1).all())  # a fitted model: the words move the logit
    def gap(steps, rule):
        maps = taylorlens.attribute(model, ids, target, "integrated_gradients", layer="embed", steps=steps, rule=rule)
        assert maps.shape == (4, LENGTH, WIDTH)
        words = taylorlens.sum_over(maps, -1)  # one score per word (Ancona et al., App. C.4)
        return words, (words.sum(1) - delta).abs() / delta.abs()

    # The fitted LSTM's path is steep (16 Riemann steps can miss the delta several times over): the gap shrinks
    # as steps grow, about like 1/steps for the paper's Riemann sum and much faster for Gauss-Legendre nodes.
    riemann = [float(gap(steps, "riemann_right")[1].sum()) for steps in (16, 64)]
    assert riemann[1] < riemann[0] / 4
    legendre = [gap(steps, "gauss_legendre") for steps in (16, 32, 64)]
    relative = [float(r.max()) for _, r in legendre]
    assert relative[0] > relative[1] > relative[2] and relative[2] < 1e-3
    # Padding embeds to the zero baseline, so padded positions get exactly nothing (a shortened review).
    short = ids[:1].clone()
    short[0, :20] = imdb.PAD_ID
    words = taylorlens.sum_over(taylorlens.attribute(model, short, target[:1], "integrated_gradients", layer="embed",
                                                     steps=8), -1)  # fmt: skip
    assert float(words[0, :20].abs().max()) == 0.0 and float(words[0, 20:].abs().max()) > 0


def test_occlusion_1_over_words_is_the_drop_when_that_word_embedding_is_zero(trained):
    model, ids, target = trained
    maps = taylorlens.attribute(model, ids, target, "occlusion", layer="embed", window=(1, WIDTH),
                                stride=(1, WIDTH))  # fmt: skip
    # Every component of a word holds the same drop; the word's score is that drop.
    torch.testing.assert_close(maps, maps[..., :1].expand_as(maps))
    embeddings = model.embed(ids).detach()
    f_x = explained(model, embeddings, target)
    for position in (0, LENGTH // 2, LENGTH - 3, LENGTH - 1):
        occluded = embeddings.clone()
        occluded[:, position] = 0.0
        drop = f_x - explained(model, occluded, target)
        torch.testing.assert_close(maps[:, position, 0], drop, rtol=1e-10, atol=1e-12)
    assert float(maps[:, -1, 0].abs().max()) > 0  # the last word of a review matters to an LSTM
