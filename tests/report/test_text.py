"""Words coloured by attribution, as HTML spans and as a PNG."""

import io
import re

import pytest
from PIL import Image

from taylorlens.report.text import unknown_word, word_colour, words_html, words_png


def spans(fragment):
    """(style, text) of every word span."""
    return re.findall(r'<span class="word[^"]*" style="([^"]*)"[^>]*>(.*?)</span>', fragment)


def test_largest_positive_word_is_full_red_and_most_negative_full_blue_on_a_symmetric_scale():
    fragment = words_html(["good", "bad", "the"], [2.0, -1.0, 0.0])
    styles = [style for style, _ in spans(fragment)]
    assert "background-color: rgb(255, 0, 0)" in styles[0]
    assert "background-color: rgb(128, 128, 255)" in styles[1]  # half of the scale's end, blue
    assert "background-color: rgb(255, 255, 255)" in styles[2]
    assert "scale: -2 (blue) .. 0 (white) .. +2 (red)" in fragment


def test_most_negative_word_is_full_blue_when_it_has_the_largest_magnitude():
    fragment = words_html(["a", "b"], [0.5, -4.0])
    styles = [style for style, _ in spans(fragment)]
    assert "rgb(0, 0, 255)" in styles[1] and "rgb(255, 223, 223)" in styles[0]  # 0.5 / 4 of the way to red


def test_colour_is_white_at_zero_and_clipped_at_the_scale():
    assert word_colour(0.0, 1.0) == (255, 255, 255)
    assert word_colour(3.0, 1.0) == (255, 0, 0) and word_colour(-3.0, 1.0) == (0, 0, 255)
    assert word_colour(1.0, 0.0) == (255, 255, 255)  # all-zero rows stay white


def test_words_and_title_are_html_escaped():
    fragment = words_html(["<b>bold</b>", "a&b", '"q"'], [1.0, 0.0, -1.0], title="<script>x</script>")
    assert "<b>" not in fragment and "<script>" not in fragment
    assert "&lt;b&gt;bold&lt;/b&gt;" in fragment and "a&amp;b" in fragment and "&quot;q&quot;" in fragment
    assert "&lt;script&gt;x&lt;/script&gt;" in fragment


def test_unknown_words_are_marked_and_keep_their_own_text():
    fragment = words_html(["this", "<unk>", unknown_word("zxqv")], [0.1, 0.2, 0.3])
    marked = re.findall(r'<span class="word unknown"[^>]*>(.*?)</span>', fragment)
    assert marked == ["&lt;unk&gt;<sup>?</sup>", "zxqv<sup>?</sup>"]
    assert fragment.count('class="word"') == 1


def test_score_of_each_word_is_in_its_tooltip_and_data_attribute():
    fragment = words_html(["x"], [-0.25])
    assert 'title="-0.25"' in fragment and 'data-score="-0.25"' in fragment


@pytest.mark.parametrize("draw", [words_html, words_png])
def test_length_mismatch_is_refused_naming_both_lengths(draw):
    with pytest.raises(ValueError, match="3 words and 2 scores"):
        draw(["a", "b", "c"], [1.0, 2.0])


@pytest.mark.parametrize("draw", [words_html, words_png])
def test_non_finite_scores_are_refused(draw):
    with pytest.raises(ValueError, match="finite"):
        draw(["a", "b"], [1.0, float("nan")])


def test_png_decodes_and_shows_red_and_blue_backgrounds():
    data = words_png(["good"] * 3 + ["bad"] * 3 + [unknown_word("zxqv")] + ["word"] * 40,
                     [3.0] * 3 + [-3.0] * 3 + [0.0] * 41, title="review <1>")
    image = Image.open(io.BytesIO(data)).convert("RGB")
    colours = set(image.getdata())
    assert (255, 0, 0) in colours and (0, 0, 255) in colours
    assert image.height > 60  # 47 words wrap onto several lines


def test_generation_heatmap_draws_the_matrix_with_causal_cells_grey():
    import numpy as np

    from taylorlens.report.text import generation_png

    matrix = np.zeros((3, 5))
    matrix[0, :2], matrix[2, 3] = [1.0, -1.0], 0.5
    image = Image.open(io.BytesIO(generation_png(matrix, ["a", "b"], ["c", "d", "e"], title="t"))).convert("RGB")
    colours = set(image.getdata())
    assert (255, 0, 0) in colours and (0, 0, 255) in colours and (217, 217, 217) in colours


def test_generation_heatmap_refuses_a_matrix_of_the_wrong_shape():
    from taylorlens.report.text import generation_png

    with pytest.raises(ValueError, match=r"\(T, P \+ T\) = \(2, 4\)"):
        generation_png([[0.0] * 3] * 2, ["a", "b"], ["c", "d"])
