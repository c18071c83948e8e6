"""`taylorlens explain` on text (--text, --inputs imdb): the JSON word scores equal `taylorlens.attribute` at the
embedding layer, on a tiny LSTM and a 40-word vocabulary (the zoo's loader and IMDB data are replaced: no
training, no download)."""

import dataclasses
import io
import json

import pytest
import torch
from PIL import Image

import taylorlens
from taylorlens import zoo
from taylorlens.cli import main
from taylorlens.zoo import imdb, registry
from taylorlens.zoo.cache import CACHE_ENV_VARIABLE
from taylorlens.zoo.text import ImdbLSTM

REVIEWS = [
    ("a great film, i loved it and the actors were great", "positive"),
    ("not good at all, a boring and bad movie", "negative"),
    ("the best movie of the year, wonderful and moving", "positive"),
    ("awful plot, bad acting, i hated it", "negative"),
    ("great music and a lovely story", "positive"),
    ("the worst film i have seen, not funny", "negative"),
    ("wonderful actors, great fun", "positive"),
    ("boring, too long and bad", "negative"),
]
LENGTH = 40
METHODS = ("gradient_x_input", "integrated_gradients", "deeplift", "epsilon_lrp", "occlusion")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are tiny: one thread is several times faster than many on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_imdb(tmp_path, monkeypatch):
    """A 40-word vocabulary over 8 reviews (4 test reviews) of 40 tokens, and a random float64 ImdbLSTM loaded
    as imdb_lstm (registered as reading 40 tokens)."""
    monkeypatch.setenv(CACHE_ENV_VARIABLE, str(tmp_path / "cache"))
    monkeypatch.setitem(registry.MODELS, "imdb_lstm", dataclasses.replace(registry.MODELS["imdb_lstm"],
                                                                          input_shape=(LENGTH,)))
    texts, labels = zip(*REVIEWS, strict=True)
    reviews = imdb.prepare(list(texts), torch.tensor([imdb.LABELS[s] for s in labels]).numpy(),
                           vocabulary_size=40, max_length=LENGTH)
    monkeypatch.setattr(imdb, "_prepared", lambda directory: reviews)
    torch.manual_seed(0)
    model = ImdbLSTM(vocab_size=40, embedding_dim=6, hidden=5).double().eval()
    with torch.no_grad():
        model.embed.weight.mul_(20)
    loaded = []

    def load(name, device="cpu", **_):
        loaded.append(name)
        assert name == "imdb_lstm", f"only the tiny imdb_lstm may be loaded, not {name}"
        return model

    monkeypatch.setattr(zoo, "load", load)
    return model, reviews, loaded


def expected_word_scores(model, ids, target, method):
    """The method straight through `taylorlens.attribute` at the embedding layer, one score per position."""
    options = {"deeplift": {"products": "symmetric"}, "epsilon_lrp": {"products": "symmetric"},
               "occlusion": {"window": (1, 6)}}.get(method, {})
    maps = taylorlens.attribute(model, ids, target, method, layer="embed", **options)
    return maps.mean(-1) if method == "occlusion" else taylorlens.sum_over(maps, -1)


def test_text_json_scores_equal_attribute_at_the_embedding_layer_for_every_method(tiny_imdb, tmp_path):
    model, reviews, loaded = tiny_imdb
    sentence = "This movie was not good, zxqv!"
    assert main(["explain", "--model", "imdb_lstm", "--text", sentence, "--out", str(tmp_path / "out")]) == 0
    assert loaded == ["imdb_lstm"]
    ids = zoo.tokenize_reviews(sentence, max_length=LENGTH)
    with torch.no_grad():
        logits = model(ids)
    target = int(logits.argmax(1))
    words = ["this", "movie", "was", "not", "good", "zxqv"]
    for method in METHODS:
        record = json.loads((tmp_path / "out" / f"{method}.json").read_text())
        assert record["method"] == method and record["model"] == "imdb_lstm"
        (sample,) = record["samples"]
        assert sample["words"] == words
        assert sample["ids"] == ids[0, -6:].tolist()
        vocabulary = zoo.imdb_vocabulary()
        assert sample["unknown"] == [w not in vocabulary for w in words] and sample["unknown"][-1]
        assert sample["ids"][-1] == imdb.UNKNOWN_ID
        assert sample["target"] == target and sample["target_name"] == ["negative", "positive"][target]
        assert sample["score"] == pytest.approx(float(logits[0, target]))
        expected = expected_word_scores(model, ids, torch.tensor([target]), method)
        torch.testing.assert_close(torch.tensor(sample["scores"], dtype=torch.float64), expected[0, -6:])
        assert sample["total"] == pytest.approx(sum(sample["scores"]))
        page = (tmp_path / "out" / f"{method}.html").read_text()
        assert "zxqv<sup>?</sup>" in page and 'class="word unknown"' in page
        with Image.open(io.BytesIO((tmp_path / "out" / f"{method}_0.png").read_bytes())) as image:
            assert image.size[0] > 300
    # IG, DeepLIFT and epsilon-LRP sum to f(x) - f(all padding) (padding embeds to zero: the baseline)
    deeplift = json.loads((tmp_path / "out" / "deeplift.json").read_text())["samples"][0]
    assert deeplift["total"] == pytest.approx(deeplift["score"] - deeplift["padding_score"], rel=1e-6)
    overview = (tmp_path / "out" / "words.html").read_text()
    assert all(f"{method}: text 1" in overview for method in METHODS)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert set(summary["methods"]) == set(METHODS) and summary["inputs"] == "text"


def test_imdb_inputs_explain_the_first_test_reviews_with_their_words(tiny_imdb, tmp_path):
    model, reviews, _ = tiny_imdb
    out = tmp_path / "out"
    assert main(["explain", "--model", "imdb_lstm", "--inputs", "imdb", "--count", "3",
                 "--methods", "ig,occ", "--out", str(out)]) == 0  # fmt: skip
    ids, labels = reviews.split("test")
    ids = ids[:3]
    with torch.no_grad():
        target = model(ids).argmax(1)
    for method in ("integrated_gradients", "occlusion"):
        samples = json.loads((out / f"{method}.json").read_text())["samples"]
        assert len(samples) == 3
        expected = expected_word_scores(model, ids, target, method)
        for i, sample in enumerate(samples):
            kept = ids[i] != imdb.PAD_ID
            assert sample["words"] == imdb.decode(ids[i], reviews.vocabulary)
            assert sample["input"] == f"test review {i} ({['negative', 'positive'][int(labels[i])]})"
            torch.testing.assert_close(torch.tensor(sample["scores"], dtype=torch.float64), expected[i][kept])


def test_text_models_default_to_the_imdb_reviews(tiny_imdb, tmp_path):
    assert main(["explain", "--model", "imdb_lstm", "--count", "1", "--methods", "gi", "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "summary.json").read_text())["inputs"] == "imdb"


@pytest.mark.parametrize("argv, message", [
    (["--model", "digits_cnn_relu", "--text", "a good film"], "is an image model"),
    (["--model", "imdb_lstm", "--inputs", "digits"], "takes IMDB token ids"),
    (["--model", "digits_mlp_relu", "--inputs", "imdb"], "is an image model"),
    (["--text", "a good film", "--inputs", "imdb"], "not both"),
    (["--model", "imdb_lstm", "--text", "!!! ..."], "has no words"),
    (["--model", "imdb_lstm", "--text", "good", "--methods", "no_such"], "unknown method"),
])
def test_bad_text_requests_exit_2_with_a_clear_message(tiny_imdb, tmp_path, capsys, argv, message):
    assert main(["explain", *argv, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
