"""IMDB models and their training loops, on a 400-review slice with a 300-word vocabulary (never full runs)."""

from functools import partial

import pytest
import torch
from torch import nn

from taylorlens import zoo
from taylorlens.zoo import imdb, training, wheels
from taylorlens.zoo.datasets import MissingDataError
from taylorlens.zoo.text import (
    ImdbLanguageModel,
    ImdbLSTM,
    ImdbMLP,
    LanguageModelRecipe,
    TextClassifierRecipe,
    language_model_scores,
    token_stream,
    train_language_model,
    train_text_classifier,
)

USER_WHEELS = wheels.wheels_directory()  # see test_imdb.py: the real wheel lives in the user's wheels directory
VOCABULARY, LENGTH = 300, 80


@pytest.fixture(scope="module")
def reviews():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(wheels.WHEELS_ENV_VARIABLE, str(USER_WHEELS))
        try:
            texts, labels = imdb.read_reviews(imdb.imdb_wheel())
        except MissingDataError as error:
            pytest.skip(str(error))
    return imdb.prepare(texts[:400], labels[:400], vocabulary_size=VOCABULARY, max_length=LENGTH)


def test_classifier_training_keeps_the_best_validation_weights_and_is_seeded(reviews):
    build = partial(ImdbMLP, vocab_size=VOCABULARY, max_length=LENGTH, hidden=16)
    train = reviews.split("train")
    recipe = TextClassifierRecipe(epochs=2, batch_size=32, validation_fraction=0.25)
    state = torch.random.get_rng_state()
    result, extra = train_text_classifier(build, train, reviews.split("test"), recipe)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert result.train_samples == len(train[1]) - len(train[1]) // 4
    # The held-out rows are the first quarter of the seeded permutation: the kept weights score exactly the
    # recorded validation accuracy on them, and the recorded test accuracy on the test split.
    validation = torch.randperm(len(train[1]), generator=torch.Generator().manual_seed(0))[: len(train[1]) // 4]
    validation_accuracy = training.test_accuracy(result.model, train[0][validation], train[1][validation])
    assert validation_accuracy == extra["validation_accuracy"]
    assert result.test_accuracy == training.test_accuracy(result.model, *reviews.split("test"))
    assert 1 <= extra["best_epoch"] <= extra["epochs_run"] <= 2
    again, _ = train_text_classifier(build, train, reviews.split("test"), recipe)
    for name, value in result.model.state_dict().items():
        torch.testing.assert_close(again.model.state_dict()[name], value, rtol=0, atol=0)


def test_lstm_reads_front_padded_reviews_to_their_last_word(reviews):
    torch.manual_seed(0)
    model = ImdbLSTM(vocab_size=VOCABULARY).eval()
    ids = reviews.test_ids[:4]
    with torch.no_grad():
        outputs, _ = model.lstm(model.embed(ids))
        torch.testing.assert_close(model(ids), model.logits(outputs[:, -1]))
        assert ids[:, -1].ne(imdb.PAD_ID).all()  # the last position holds a word, padding is in front


def test_language_model_perplexity_of_uniform_logits_is_the_vocabulary_size():
    model = ImdbLanguageModel(vocab_size=50, embedding_dim=4, hidden=4).eval()
    with torch.no_grad():
        model.decoder.weight.zero_()
        model.decoder.bias.zero_()
    ids = torch.randint(1, 50, (10, 40), generator=torch.Generator().manual_seed(0))
    perplexity, accuracy = language_model_scores(model, ids, tokens=320, steps=7)
    assert perplexity == pytest.approx(50.0)
    assert accuracy == 0.0  # ties break to id 0 (padding), which never is a next word


def test_language_model_learns_a_repeating_sentence():
    # "1 2 3 4 5 1 2 3 4 5 ...": after one pass, the next word is nearly certain.
    ids = torch.arange(1, 6).repeat(40, 10)
    build = partial(ImdbLanguageModel, vocab_size=8, embedding_dim=8, hidden=16, dropout=0.0)
    recipe = LanguageModelRecipe(epochs=8, train_tokens=2000, test_tokens=640, steps=10, batch_size=8,
                                 learning_rate=1e-2)  # fmt: skip
    result, extra = train_language_model(build, ids, ids, recipe)
    assert extra["train_tokens"] == 2000 and result.train_samples == 2000
    assert extra["test_perplexity"] < 1.2 and result.test_accuracy > 0.95


def test_token_stream_drops_padding_in_row_order():
    ids = torch.tensor([[0, 0, 3, 4], [0, 5, 6, 7]])
    assert token_stream(ids).tolist() == [3, 4, 5, 6, 7]


def test_imdb_recipes_are_recorded_in_the_registry():
    models = zoo.models()
    assert models["imdb_mlp"].trainable and models["imdb_lstm"].paper_accuracy == pytest.approx(0.873)
    assert isinstance(models["imdb_language_model"].recipe, LanguageModelRecipe)
    assert all(models[n].recipe.threads == 1 for n in ("imdb_mlp", "imdb_lstm", "imdb_language_model"))
    assert isinstance(zoo.build("imdb_lstm").embed, nn.Embedding)
