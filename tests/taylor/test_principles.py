"""Principles of each method (Deng et al. 2021, Table 2) and their count (x-axis of Fig. 2 and Fig. 3)."""

from __future__ import annotations

import pytest

import taylorlens
from taylorlens import taylor
from taylorlens.engine import AttributionInputError
from taylorlens.methods import Method


def test_every_method_states_every_principle():
    for name, info in taylorlens.methods().items():
        assert set(info.principles) == set(taylor.PRINCIPLES), name
        assert set(info.principles.values()) <= set(taylor.LEVELS), name


@pytest.mark.parametrize(
    ("method", "count"),
    [
        ("gradient_x_input", 0.0),  # Table 2: no principle
        ("occlusion", 0.5),  # second principle partially
        ("deeplift", 1.0),  # first
        ("epsilon_lrp", 1.0),  # first (with DeepLIFT)
        ("integrated_gradients", 2.0),  # first and second
        ("expected_gradients", 3.0),  # all three
    ],
)
def test_principles_followed_matches_table_2(method, count):
    assert taylor.principles_followed(method) == count
    assert taylor.principles_followed(taylorlens.methods()[method]) == count


def test_principles_followed_rejects_incomplete_principles():
    class Incomplete(Method):
        name = "incomplete"
        principles = {"low_approximation_error": "yes"}

    with pytest.raises(AttributionInputError, match="incomplete"):
        taylor.principles_followed(Incomplete)
