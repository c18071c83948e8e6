"""Every registered method and metric against its slow reference (tests/slow_references.py).

The table must name a reference for every entry of ``taylorlens.methods()`` and
``taylorlens.metrics.available()``: registering a method or a metric without one fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import taylorlens
from taylorlens import metrics
from tests.slow_references import METHODS, METRICS

TARGET = torch.tensor([0, 2, 1])


def test_every_registered_method_and_metric_has_a_slow_reference():
    assert set(taylorlens.methods()) - set(METHODS) == set(), "add the method's slow reference to METHODS"
    assert set(metrics.available()) - set(METRICS) == set(), "add the metric's slow reference to METRICS"
    assert set(METHODS) <= set(taylorlens.methods()) and set(METRICS) <= set(metrics.available())


@pytest.mark.parametrize("name", sorted(name for name, ref in METRICS.items() if ref.compared_in))
def test_metrics_compared_elsewhere_name_a_test_that_exists(name):
    path, test = METRICS[name].compared_in.split("::")
    tree = ast.parse((Path(__file__).resolve().parents[1] / path).read_text(encoding="utf-8"))
    assert test in {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_matches_its_slow_reference_on_a_small_mlp(make_mlp, make_inputs, name):
    reference = METHODS[name]
    model, x = make_mlp(reference.activation), make_inputs(3, 5)
    fast = taylorlens.attribute(model, x, TARGET, name, **reference.options)
    torch.testing.assert_close(fast, reference.slow(model, x, TARGET, **reference.options))


@pytest.mark.parametrize("name", sorted(name for name, ref in METRICS.items() if ref.slow))
def test_metric_matches_its_slow_reference(make_mlp, make_inputs, name):
    reference, info = METRICS[name], metrics.available()[name]
    model = make_mlp()
    x = make_inputs(3, 5) if "model" in info.needs else make_inputs(3, 1, 4, 4)
    a = make_inputs(*x.shape, seed=7)
    result = metrics.evaluate(name, model=model, inputs=x, attributions=a, target=TARGET, **reference.options)
    if "model" in info.needs:
        expected = reference.slow(model, x, a, TARGET, **reference.options)
    else:
        expected = reference.slow(a, **reference.options)
    torch.testing.assert_close(result.value, expected)
