"""Text coloured by attribution: a row of words, each on a background that shows its score.

The view of Ancona et al. (ICLR 2018), App. C.4 / Fig. 4 and Sundararajan et al. (2017), Figs. 9-10 for word
attributions: positive scores red, negative blue, white at 0, on a scale symmetric around 0 whose end is
the largest ``|score|`` of the row (so the most important word, of either sign, is fully saturated and 0
is always white). The colours are matplotlib's ``bwr`` map, the same as the signed image heat maps of
:mod:`taylorlens.report.heatmaps`; the scale is printed under the words.

A word is shown as *unknown* (not in the vocabulary, read by the model as ``<unk>``) when it is ``"<unk>"``
or was wrapped with :func:`unknown_word` (``"<unk:zxqv>"``, shown as ``zxqv`` marked unknown): it gets a
dashed outline, a ``?`` and the class ``unknown`` in HTML.

:func:`generation_png` draws what :func:`taylorlens.explain_generation` returns for one sample: the
``(T, P + T)`` matrix of generated token ``t``'s logit attributed to every token before it, on the same
symmetric red/blue scale (Sundararajan et al. 2017, Sec. 3.2 / Figs. 9-10 show one such row per prediction).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from taylorlens.report.figures import png  # noqa: E402

UNKNOWN = "<unk>"
_UNKNOWN_PREFIX, _UNKNOWN_SUFFIX = "<unk:", ">"
_DARK_BACKGROUND = 0.6  # above this share of the scale, words are written in white
_PNG_FONT_SIZE = 11
_PNG_CHARACTER_WIDTH = 0.6 * _PNG_FONT_SIZE / 72  # inches per character of DejaVu Sans Mono
_PNG_WIDTH = 9.0  # inches
_PNG_LINE_HEIGHT = 0.32  # inches
_PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; font-size: 1.2rem; }
.words { margin: 0.6rem 0 1rem; } .words-title { font-weight: 600; font-size: 0.9rem; }
.muted { color: #777; }
"""


def unknown_word(word: str) -> str:
    """``word`` marked as not in the vocabulary, for :func:`words_html` / :func:`words_png` (``"<unk:word>"``)."""
    return f"{_UNKNOWN_PREFIX}{word}{_UNKNOWN_SUFFIX}"


def is_unknown(word: str) -> bool:
    """Whether ``word`` is ``"<unk>"`` or was marked with :func:`unknown_word`."""
    return word == UNKNOWN or (word.startswith(_UNKNOWN_PREFIX) and word.endswith(_UNKNOWN_SUFFIX))


def shown_word(word: str) -> str:
    """The text displayed for ``word``: the original word of an :func:`unknown_word`, else ``word`` itself."""
    if word != UNKNOWN and is_unknown(word):
        return word[len(_UNKNOWN_PREFIX): -len(_UNKNOWN_SUFFIX)]
    return word


def symmetric_scale(scores: Sequence[float]) -> float:
    """The end of the colour scale: ``max |score|`` (0 for an empty or all-zero row)."""
    return max((abs(s) for s in scores), default=0.0)


def word_colour(score: float, scale: float) -> tuple[int, int, int]:
    """RGB 0-255 of ``score`` on ``[-scale, scale]``: white at 0, red ``(255, 0, 0)`` at ``+scale``, blue
    ``(0, 0, 255)`` at ``-scale``, linear in between (matplotlib's ``bwr``)."""
    share = 0.0 if scale <= 0 else max(-1.0, min(1.0, score / scale))
    fade = round(255 * (1 - abs(share)))
    return (255, fade, fade) if share >= 0 else (fade, fade, 255)


def _checked(words: Sequence[str], scores: Sequence[float]) -> tuple[list[str], list[float]]:
    words, scores = [str(w) for w in words], [float(s) for s in scores]
    if len(words) != len(scores):
        raise ValueError(f"words and scores must have the same length, got {len(words)} words and "
                         f"{len(scores)} scores")
    bad = [i for i, s in enumerate(scores) if not math.isfinite(s)]
    if bad:
        raise ValueError(f"scores must be finite, got {scores[bad[0]]} for word {bad[0]} ({words[bad[0]]!r})")
    return words, scores


def _scale_text(scale: float) -> str:
    return f"scale: -{scale:.3g} (blue) .. 0 (white) .. +{scale:.3g} (red)"


def words_html(words: Sequence[str], scores: Sequence[float], *, title: str = "") -> str:
    """An HTML fragment: ``title``, then one ``<span>`` per word with its background coloured by its score
    (:func:`word_colour` on the row's symmetric scale) and the score in its tooltip, then the scale.

    Words and title are HTML-escaped; unknown words (see the module docstring) carry the class ``unknown``.
    Raises ``ValueError`` when ``words`` and ``scores`` differ in length or a score is not finite.
    """
    words, scores = _checked(words, scores)
    scale = symmetric_scale(scores)
    spans = []
    for word, score in zip(words, scores, strict=True):
        red, green, blue = word_colour(score, scale)
        ink = "#fff" if scale > 0 and abs(score) / scale > _DARK_BACKGROUND else "#000"
        unknown = is_unknown(word)
        style = f"background-color: rgb({red}, {green}, {blue}); color: {ink}; padding: 0 0.15em"
        if unknown:
            style += "; outline: 1px dashed #555"
        tip = f"{score:+.4g}" + (" (unknown word: not in the vocabulary)" if unknown else "")
        text = html.escape(shown_word(word)) + ("<sup>?</sup>" if unknown else "")
        spans.append(f'<span class="word{" unknown" if unknown else ""}" style="{style}" '
                     f'title="{html.escape(tip)}" data-score="{score!r}">{text}</span>')
    heading = f'<div class="words-title">{html.escape(title)}</div>' if title else ""
    return (f'<div class="words">{heading}<p style="line-height: 1.9">{" ".join(spans)}</p>'
            f'<div class="words-scale" style="font-size: 0.8em; color: #555">{html.escape(_scale_text(scale))}'
            "</div></div>")


def words_png(words: Sequence[str], scores: Sequence[float], *, title: str = "") -> bytes:
    """The same row of coloured words as :func:`words_html`, drawn with matplotlib; PNG bytes.

    Words wrap at the figure width; unknown words are drawn with a dashed outline and a ``?``. Raises
    ``ValueError`` like :func:`words_html`.
    """
    words, scores = _checked(words, scores)
    scale = symmetric_scale(scores)
    per_line = max(1, int(_PNG_WIDTH / _PNG_CHARACTER_WIDTH))
    lines, line, used = [], [], 0
    for word, score in zip(words, scores, strict=True):
        text = shown_word(word) + ("?" if is_unknown(word) else "")
        if line and used + len(text) + 1 > per_line:
            lines.append(line)
            line, used = [], 0
        line.append((text, score, is_unknown(word), used))
        used += len(text) + 1
    if line:
        lines.append(line)
    rows = len(lines) + 1 + bool(title)
    figure = plt.figure(figsize=(_PNG_WIDTH + 0.4, _PNG_LINE_HEIGHT * rows + 0.2))
    height = figure.get_figheight()
    top = 1 - (0.1 + _PNG_LINE_HEIGHT * 0.5) / height
    if title:
        figure.text(0.2 / figure.get_figwidth(), top, title, fontsize=_PNG_FONT_SIZE, weight="bold", va="center")
        top -= _PNG_LINE_HEIGHT / height
    for number, entries in enumerate(lines):
        y = top - number * _PNG_LINE_HEIGHT / height
        for text, score, unknown, column in entries:
            colour = tuple(c / 255 for c in word_colour(score, scale))
            dark = scale > 0 and abs(score) / scale > _DARK_BACKGROUND
            figure.text((0.2 + column * _PNG_CHARACTER_WIDTH) / figure.get_figwidth(), y, text,
                        family="monospace", fontsize=_PNG_FONT_SIZE, va="center", color="white" if dark else "black",
                        bbox={"facecolor": colour, "edgecolor": "#555" if unknown else colour,
                              "linestyle": "--" if unknown else "-", "pad": 1.5})
    figure.text(0.2 / figure.get_figwidth(), top - len(lines) * _PNG_LINE_HEIGHT / height, _scale_text(scale),
                fontsize=_PNG_FONT_SIZE - 2, color="#555", va="center")
    return png(figure)


def words_page(title: str, body: Sequence[str]) -> str:
    """A self-contained HTML page: ``title`` (escaped) as heading, then the ``body`` fragments (HTML, e.g.
    :func:`words_html` rows and headings) in order."""
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_PAGE_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{''.join(body)}</body></html>")


def generation_png(matrix: Any, prompt_tokens: Sequence[str], generated_tokens: Sequence[str], *,
                   title: str = "") -> bytes:
    """Heat map of one sample's :func:`taylorlens.explain_generation` matrix ``(T, P + T)``; PNG bytes.

    Row ``t`` (labelled with generated token ``t``) explains that token's logit; columns are the prompt
    tokens then the generated ones, a line separating them. Colours: ``bwr`` on ``[-m, m]``, ``m`` the
    largest ``|score|`` (the colour bar prints the scale); cells at or after the predicting position
    (``column >= P + t``, exactly 0 by causality) are grey. Token labels are shown as given. Raises
    ``ValueError`` when the matrix is not ``(len(generated_tokens), len(prompt_tokens) + len(generated_tokens))``.
    """
    values = np.asarray(matrix.detach().cpu() if hasattr(matrix, "detach") else matrix, dtype=float)
    prompt, generated = [str(t) for t in prompt_tokens], [str(t) for t in generated_tokens]
    expected = (len(generated), len(prompt) + len(generated))
    if values.shape != expected:
        raise ValueError(f"matrix must have shape (T, P + T) = {expected} for {len(prompt)} prompt and "
                         f"{len(generated)} generated tokens, got {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("matrix must be finite")
    scale = float(np.abs(values).max()) or 1.0
    rows, columns = np.indices(values.shape)
    shown = np.ma.masked_where(columns >= len(prompt) + rows, values)
    colours = plt.get_cmap("bwr").copy()
    colours.set_bad("#d9d9d9")
    figure, axis = plt.subplots(figsize=(0.28 * expected[1] + 2.2, 0.28 * expected[0] + 1.6))
    image = axis.imshow(shown, cmap=colours, vmin=-scale, vmax=scale, aspect="auto", interpolation="nearest")
    axis.set_xticks(range(expected[1]), prompt + generated, rotation=90, fontsize=7)
    axis.set_yticks(range(expected[0]), generated, fontsize=7)
    axis.axvline(len(prompt) - 0.5, color="black", linewidth=0.8)
    axis.set_xlabel("explaining token (prompt | generated)")
    axis.set_ylabel("generated token (explained logit)")
    if title:
        axis.set_title(title, fontsize=9)
    figure.colorbar(image, ax=axis, fraction=0.03, pad=0.02).set_label(f"score (scale +-{scale:.3g})")
    return png(figure)
