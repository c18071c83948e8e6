"""`taylorlens explain` on text: word scores of an IMDB model for test reviews or for the user's own sentences.

``--inputs imdb`` explains the first ``--count`` reviews of the IMDB test split; ``--text "..."`` (repeatable)
explains any sentence, tokenized with the IMDB vocabulary (:func:`taylorlens.zoo.tokenize_reviews`); words
outside the vocabulary are read by the model as ``<unk>`` (id 1) and shown as the user wrote them, marked
unknown. The sentiment classifiers (``imdb_mlp``, ``imdb_lstm``) read the first 500 words, padded in front
as in training; the language model (``imdb_language_model``) reads the last 10 words (its context) and its
prediction is the next word.

Each method explains the predicted class (sentiment or next word) at the embedding layer
(:func:`taylorlens.word_attributions`: a word's score is the sum over its embedding components; Occlusion-1
zeroes a word's embedding; DeepLIFT / epsilon-LRP use ``products="symmetric"`` on the LSTMs). Written to
``--out``:

- ``words.html``: every sample with one coloured row per method (red positive, blue negative, the scale
  printed; :func:`taylorlens.report.text.words_html`);
- per method: ``<method>.html`` (its rows), ``<method>_<i>.png`` (sample i's row, :func:`words_png`) and
  ``<method>.json``: per sample the ``words``, their ``ids``, ``unknown`` flags, the ``scores``, the
  ``target`` (id and name), the model's ``score`` (target logit) and ``probability``, the words' ``total``
  and ``padding_score`` (the target logit on all-padding input, i.e. every embedding zero: the baseline, so
  ``total ~ score - padding_score`` for IG, DeepLIFT and epsilon-LRP);
- ``summary.json``: model, inputs, time per method (or why it was skipped) and the prediction per sample.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from taylorlens import zoo
from taylorlens.engine import AttributionInputError, UnsupportedModelError
from taylorlens.explain import ExplainError, load_model
from taylorlens.methods import methods
from taylorlens.methods.registry import ALIASES
from taylorlens.methods.words import embedding_layer, word_attributions
from taylorlens.report.text import shown_word, unknown_word, words_html, words_page, words_png
from taylorlens.zoo.imdb import MAX_LENGTH, PAD_ID, UNKNOWN_ID, tokenize

DEFAULT_TEXT_MODEL = "imdb_lstm"
TEXT_DATASET = "imdb"
#: Ancona et al. (ICLR 2018), Sec. 4.1 / Fig. 4, IMDB rows: the five methods compared on the text models.
DEFAULT_TEXT_METHODS = ("gradient_x_input", "integrated_gradients", "deeplift", "epsilon_lrp", "occlusion")
SENTIMENTS = ("negative", "positive")


@dataclass(frozen=True)
class TextModel:
    """A model on IMDB token ids: how many tokens it reads, which end of a text it keeps, its class names."""

    model: nn.Module
    name: str
    length: int
    keep_last: bool
    class_names: Sequence[str] | None


@dataclass(frozen=True)
class TextSamples:
    """Token ids ``(N, length)`` and, per sample, the shown words of its non-padding positions and a label."""

    ids: Tensor
    words: list[list[str]]
    labels: list[str]


def is_text_model(spec: str | None) -> bool:
    """Whether ``spec`` names a zoo model trained on the IMDB token ids."""
    return spec in zoo.models() and zoo.models()[spec].dataset == TEXT_DATASET


def load_text_model(spec: str, device: str) -> TextModel:
    """A zoo text model (or ``module:function`` / TorchScript with an embedding layer), refused otherwise."""
    if spec in zoo.models():
        info = zoo.models()[spec]
        if info.dataset != TEXT_DATASET:
            text_models = ", ".join(name for name in zoo.models() if is_text_model(name))
            raise ExplainError(
                f"model {spec!r} is an image model (trained on {info.dataset}); --text and --inputs imdb need a "
                f"model on IMDB token ids: {text_models}"
            )
        model = zoo.load(spec, device=device)
        language_model = info.n_classes != len(SENTIMENTS)
        names = zoo.imdb_vocabulary() if language_model else SENTIMENTS
        return TextModel(model, spec, info.input_shape[0], language_model, names)
    model = load_model(spec, device)
    try:
        embedding_layer(model)
    except AttributionInputError as error:
        raise ExplainError(f"model {spec!r} cannot be explained per word: {error}") from None
    return TextModel(model, spec, MAX_LENGTH, False, None)


def sentence_samples(texts: Sequence[str], model: TextModel) -> TextSamples:
    """The user's ``texts`` as ids with the IMDB vocabulary, the words as written (unknown ones marked)."""
    rows, words = [], []
    for number, text in enumerate(texts):
        tokens = tokenize(text)
        tokens = tokens[-model.length:] if model.keep_last else tokens[: model.length]
        if not tokens:
            raise ExplainError(f"--text {number + 1} ({text!r}) has no words (letters or digits) to explain")
        ids = zoo.tokenize_reviews(" ".join(tokens), max_length=model.length)[0]
        shown = ids[ids != PAD_ID].tolist()
        words.append([unknown_word(t) if i == UNKNOWN_ID else t for t, i in zip(tokens, shown, strict=True)])
        rows.append(ids)
    labels = [f"text {number + 1}" for number in range(len(texts))]
    return TextSamples(torch.stack(rows), words, labels)


def review_samples(count: int, model: TextModel) -> TextSamples:
    """The first ``count`` IMDB test reviews (the last ``model.length`` tokens for a language model)."""
    ids, labels = zoo.dataset(TEXT_DATASET, split="test")
    ids, labels = ids[:count], labels[:count]
    if ids.shape[1] != model.length:
        ids = ids[:, -model.length:] if model.keep_last else ids[:, : model.length]
    vocabulary = zoo.imdb_vocabulary()
    words = [[vocabulary[i] for i in row[row != PAD_ID].tolist()] for row in ids]
    tags = [f"test review {i} ({SENTIMENTS[int(y)]})" for i, y in enumerate(labels.tolist())]
    return TextSamples(ids, words, tags)


def text_method_options(name: str) -> dict[str, Any]:
    """Seeds for the random methods; everything else keeps the method's defaults."""
    return {"seed": 0} if name in ("smoothgrad", "smooth_taylor", "expected_gradients") else {}


def explain_text(
    model_spec: str | None = None,
    texts: Sequence[str] | None = None,
    method_names: list[str] | None = None,
    out: str | Path = "results/explain_text",
    *,
    count: int = 6,
    device: str = "cpu",
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Explain ``texts`` (or, without them, ``count`` IMDB test reviews) per word with every method; write the
    files of the module docstring to ``out`` and return the summary."""
    known = methods()
    method_names = [ALIASES.get(m, m) for m in (method_names or DEFAULT_TEXT_METHODS)]
    unknown = [m for m in method_names if m not in known]
    if unknown:
        raise ExplainError(f"unknown method(s) {unknown}; known: {', '.join(known)} (aliases: {', '.join(ALIASES)})")
    if count < 1:
        raise ExplainError(f"--count must be at least 1, got {count}")
    model = load_text_model(model_spec or DEFAULT_TEXT_MODEL, device)
    samples = sentence_samples(texts, model) if texts is not None else review_samples(count, model)
    ids = samples.ids.to(device)
    with torch.inference_mode():
        logits = model.model(ids)
        target = logits.argmax(1)
        score = logits.gather(1, target[:, None])[:, 0]
        probability = logits.softmax(1).gather(1, target[:, None])[:, 0]
        padding_score = model.model(torch.full_like(ids, PAD_ID)).gather(1, target[:, None])[:, 0]
    names = [model.class_names[t] if model.class_names else str(t) for t in target.tolist()]
    inputs = "text" if texts is not None else TEXT_DATASET
    summary: dict[str, Any] = {"model": model.name, "inputs": inputs, "methods": {}, "samples": [
        {"input": label, "words": len(words), "predicted": name, "target": int(t), "score": float(s),
         "probability": float(p)}
        for label, words, name, t, s, p in zip(samples.labels, samples.words, names, target.tolist(),
                                               score.tolist(), probability.tolist(), strict=True)
    ]}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[str]] = {}
    for index, name in enumerate(method_names, start=1):
        start = time.perf_counter()
        try:
            scores = word_attributions(model.model, ids, target, name, **text_method_options(name))
        except UnsupportedModelError as error:
            progress(f"[{index}/{len(method_names)}] {name}: skipped ({error})")
            summary["methods"][name] = {"skipped": str(error)}
            continue
        seconds = time.perf_counter() - start
        records = []
        rows[name] = []
        for i, words in enumerate(samples.words):
            kept = samples.ids[i] != PAD_ID
            values = scores[i][kept.to(scores.device)].tolist()
            title = f"{name}: {samples.labels[i]}, predicted {names[i]} ({float(score[i]):.3g})"
            rows[name].append(words_html(words, values, title=title))
            (out / f"{name}_{i}.png").write_bytes(words_png(words, values, title=title))
            records.append({
                "input": samples.labels[i], "words": [shown_word(w) for w in words],
                "ids": samples.ids[i][kept].tolist(), "unknown": (samples.ids[i][kept] == UNKNOWN_ID).tolist(),
                "scores": values, "target": int(target[i]), "target_name": names[i], "score": float(score[i]),
                "probability": float(probability[i]), "total": float(sum(values)),
                "padding_score": float(padding_score[i]),
            })
        (out / f"{name}.json").write_text(json.dumps({"method": name, "model": model.name, "samples": records},
                                                     indent=1))
        (out / f"{name}.html").write_text(words_page(f"{name} on {model.name}", rows[name]), encoding="utf-8")
        summary["methods"][name] = {"seconds": round(seconds, 4)}
        progress(f"[{index}/{len(method_names)}] {name}: {seconds:.2f} s")
    body = []
    for i, label in enumerate(samples.labels):
        body.append(f"<h2>{html.escape(label)}: predicted {html.escape(names[i])} "
                    f"<span class='muted'>(score {float(score[i]):.3g}, p = {float(probability[i]):.3f})</span></h2>")
        body.extend(method_rows[i] for method_rows in rows.values())
    (out / "words.html").write_text(words_page(f"Word attributions of {model.name}", body), encoding="utf-8")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    progress(f"wrote words.html, <method>.html/.json and {len(samples.labels)} PNGs per method to {out}")
    return summary

