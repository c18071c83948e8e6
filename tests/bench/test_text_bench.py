"""Text benchmark configs end to end on a tiny slice of the real IMDB reviews (300 reviews, a 300-word vocabulary,
40 tokens) with small zoo-architecture models put in place of the zoo's trained ones: attributions at the
embedding layer, per-word gallery scores, Sensitivity-n over whole words, the language model's sections and
scaling path, and the report's word rows."""

import json
import re
import tomllib

import pytest
import torch

from taylorlens import zoo
from taylorlens.bench import config as bench_config
from taylorlens.bench import runner
from taylorlens.bench.store import Store, bytes_array
from taylorlens.report.html import render
from taylorlens.zoo import imdb, wheels
from taylorlens.zoo.errors import MissingDataError
from taylorlens.zoo.text import ImdbLanguageModel, ImdbLSTM

USER_WHEELS = wheels.wheels_directory()  # read before any fixture moves the zoo cache (see tests/zoo/test_imdb.py)
VOCABULARY, LENGTH, WIDTH = 300, 40, 8

CLASSIFIER_CONFIG = """
name = "tiny-imdb"
batch_size = 2
gallery = 2
layer = "embed"
output = "logit_difference"
models = ["imdb_lstm"]
[data]
dataset = "imdb"
samples = 3
[[methods]]
name = "integrated_gradients"
steps = 400
[[methods]]
name = "deeplift"
products = "symmetric"
[[methods]]
name = "occlusion"
window = [1, 8]
stride = [1, 8]
[[metrics]]
name = "sensitivity_n"
feature_groups = "token"
n_subsets = 20
n = [1, 4, 16]
"""

LANGUAGE_MODEL_CONFIG = """
name = "tiny-lm"
batch_size = 4
gallery = 2
layer = "embed"
output = "softmax"
models = ["imdb_language_model"]
[data]
dataset = "imdb"
context = 6
samples = 4
[[methods]]
name = "integrated_gradients"
steps = 400
[[metrics]]
name = "scaling_path"
[[metrics]]
name = "completeness_gap"
"""


@pytest.fixture(scope="module")
def reviews():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(wheels.WHEELS_ENV_VARIABLE, str(USER_WHEELS))
        try:
            texts, labels = imdb.read_reviews(imdb.imdb_wheel())
        except MissingDataError as error:
            pytest.skip(str(error))
    return imdb.prepare(texts[:300], labels[:300], vocabulary_size=VOCABULARY, max_length=LENGTH)


@pytest.fixture
def tiny_zoo(reviews, monkeypatch):
    """``zoo.dataset("imdb")``, ``zoo.imdb_vocabulary()`` and ``zoo.load`` answered by the slice and small
    float64 models (embeddings scaled up so that the LSTM is far from linear); returns the models."""
    torch.manual_seed(0)
    lstm = ImdbLSTM(vocab_size=VOCABULARY, embedding_dim=WIDTH, hidden=8).double().eval()
    language_model = ImdbLanguageModel(vocab_size=VOCABULARY, embedding_dim=WIDTH, hidden=8).double().eval()
    with torch.no_grad():
        lstm.embed.weight.mul_(20)
        language_model.embed.weight.mul_(20)
    models = {"imdb_lstm": lstm, "imdb_language_model": language_model}
    monkeypatch.setattr(zoo, "dataset", lambda name, split="test": reviews.split(split))
    monkeypatch.setattr(zoo, "imdb_vocabulary", lambda: list(reviews.vocabulary))
    monkeypatch.setattr(zoo, "load", lambda name, device="cpu": models[name])
    return models


def run(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text)
    config = bench_config.load(path)
    report = runner.run(config, tmp_path / "out", show_progress=False, echo=lambda line: None)
    return config, report


def gallery(store, method):
    """{sample: stored per-word scores} of one method's gallery."""
    rows = store.connection.execute(
        "SELECT m.sample, m.array FROM maps m JOIN attributions a ON a.model = m.model AND a.method_key = "
        "m.method_key AND a.sample = m.sample WHERE a.method = ?", (method,)).fetchall()
    return {sample: torch.from_numpy(bytes_array(blob)) for sample, blob in rows}


def test_classifier_config_scores_words_and_removes_whole_words(tiny_zoo, reviews, tmp_path):
    config, report = run(tmp_path, CLASSIFIER_CONFIG)
    assert report.computed == 3 * 2  # 3 methods x 2 batches
    lstm = tiny_zoo["imdb_lstm"]
    ids, labels = reviews.split("test")
    embeddings = lstm.embed(ids[:2]).detach()

    def f(e):  # the explained output: the logit difference of the true class
        with torch.no_grad():
            return (lstm.classify_embeddings(e) @ torch.tensor([[1.0, -1.0], [-1.0, 1.0]], dtype=e.dtype))[
                torch.arange(len(e)), labels[: len(e)]]

    with Store(tmp_path / "out") as store:
        occlusion, ig = gallery(store, "occlusion"), gallery(store, "integrated_gradients")
        assert sorted(occlusion) == [0, 1] and occlusion[0].shape == (LENGTH,)  # one score per position
        for position in (LENGTH - 1, LENGTH - 5):
            occluded = embeddings.clone()
            occluded[:, position] = 0
            drop = f(embeddings) - f(occluded)
            torch.testing.assert_close(torch.stack([occlusion[0][position], occlusion[1][position]]), drop)
        # IG per word sums to f(x) - f(zero embeddings) (completeness; 400 steps).
        delta = f(embeddings) - f(torch.zeros_like(embeddings))
        torch.testing.assert_close(torch.stack([ig[0].sum(), ig[1].sum()]), delta, rtol=1e-2, atol=1e-4)
        words = store.meta("words:imdb/test")
        assert words["0"] == imdb.decode(ids[0], reviews.vocabulary)
        # Occlusion-1 satisfies Sensitivity-1 (Ancona et al., Sec. 4.1): correlation 1 at n = 1.
        curves = [json.loads(c) for (c,) in store.connection.execute(
            "SELECT r.curve FROM results r JOIN attributions a ON a.model = r.model AND a.method_key = r.method_key "
            "AND a.sample = r.sample WHERE a.method = 'occlusion'")]
        assert len(curves) == 3 and all(c["x"] == [1.0, 4.0, 16.0] for c in curves)
        assert all(c["y"][0] == pytest.approx(1.0, abs=1e-9) for c in curves)
    page = render(tmp_path / "out").read_text()
    assert "Word gallery" in page
    shown = re.findall(r'<span class="word[^"]*"', page)
    assert len(shown) == 3 * (len(words["0"]) + len(words["1"]))  # every word of both reviews, per method


def test_language_model_config_explains_the_next_word_softmax_of_sections(tiny_zoo, reviews, tmp_path):
    config, _ = run(tmp_path, LANGUAGE_MODEL_CONFIG)
    model = tiny_zoo["imdb_language_model"]
    with Store(tmp_path / "out") as store:
        results = store.connection.execute("SELECT metric, sample, value, curve FROM results").fetchall()
        words = store.meta("words:imdb/test")
        names = dict(store.connection.execute("SELECT sample, label FROM inputs"))
    index = {word: i for i, word in enumerate(reviews.vocabulary)}
    sections = torch.tensor([[index[w] for w in words[str(i)]] for i in range(2)])
    following = torch.tensor([index[names[i].removeprefix("next word: ")] for i in range(2)])
    assert sections.shape == (2, 6)
    # each section is 6 consecutive words of a test review, followed there by its label word
    test_rows = [imdb.decode(row, reviews.vocabulary) for row in reviews.test_ids]
    for i in range(2):
        text = " ".join(words[str(i)] + [reviews.vocabulary[following[i]]])
        assert any(text in " ".join(row) for row in test_rows)
    with torch.no_grad():
        probabilities = model(sections).softmax(1)[torch.arange(2), following]
    paths = {sample: json.loads(curve) for metric, sample, _, curve in results if metric == "scaling_path"}
    gaps = [value for metric, _, value, _ in results if metric == "completeness_gap"]
    assert len(paths) == 4 and len(gaps) == 4 and max(gaps) < 1e-3  # IG on the softmax: total = p(x) - p(0)
    for sample in (0, 1):  # Fig. 8: the next word's softmax score from alpha = 0 to alpha = 1 (the prediction)
        assert paths[sample]["x"][0] == 0.0 and paths[sample]["x"][-1] == 1.0
        assert paths[sample]["y"][-1] == pytest.approx(float(probabilities[sample]), rel=1e-9)
    # The word gallery puts each method's total next to the prediction score (IG paper, Figs. 9-10).
    page = render(tmp_path / "out").read_text()
    for sample in (0, 1):
        p_x, p_0 = paths[sample]["y"][-1], paths[sample]["y"][0]
        assert f"explained output {p_x:.4g}, at the baseline {p_0:.4g}: difference {p_x - p_0:+.4g}" in page
    with Store(tmp_path / "out") as store:
        totals = {sample: float(scores.sum()) for sample, scores in gallery(store, "integrated_gradients").items()}
    assert totals and all(f"integrated_gradients(steps=400): total {t:+.4g}" in page for t in totals.values())


def test_text_config_errors_name_the_field_and_what_is_accepted():
    base = 'models = ["imdb_lstm"]\n{top}[data]\ndataset = "imdb"\n{data}[[methods]]\nname = "gradient"\n'
    with pytest.raises(bench_config.ConfigError, match=r'layer \(e.g. layer = "embed"'):
        bench_config.parse(tomllib.loads(base.format(top="", data="")))
    with pytest.raises(bench_config.ConfigError, match=r"output must be one of \('softmax', 'logit_difference'\)"):
        bench_config.parse(tomllib.loads(base.format(top='layer = "embed"\noutput = "probability"\n', data="")))
    with pytest.raises(bench_config.ConfigError, match="data.context must be a positive int"):
        bench_config.parse(tomllib.loads(base.format(top='layer = "embed"\n', data="context = 0\n")))
    parsed = bench_config.parse(tomllib.loads(base.format(top='layer = "embed"\n', data="")))
    assert parsed.is_text and parsed.model_options() == {"layer": "embed"}
    assert parsed.data_context()[-1] == {"layer": "embed"}  # the layer is part of every method's key
