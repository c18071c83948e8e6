"""The metrics registry: metadata for every metric and one result shape (value (B,), curve (B, K))."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from taylorlens import metrics

#: options that keep each metric small on (3, 1, 8, 8) inputs of a linear model
SMALL = {
    "sensitivity_n": {"n": [1, 4], "n_subsets": 4},
    "perturbation_curve": {"step": 16},
    "aupc": {"k": 2, "L": 3, "P": 2},
    "autvc": {"min_size": 2},
    "average_total_variation": {},
    "completeness_gap": {},
    "infidelity": {"n_perturbations": 5},
    "bbox_accuracy": {"boxes": torch.tensor([[0, 0, 4, 4]] * 3)},
    "attribution_in_box": {"boxes": torch.tensor([[0, 0, 4, 4]] * 3)},
    "road": {"fractions": (0.25, 0.5)},
    "randomization_test": {},
    "scaling_path": {"alphas": [0.0, 0.5, 1.0]},
    "data_randomization_test": {"shuffled_model": nn.Sequential(nn.Flatten(), nn.Linear(64, 1), nn.Flatten(0))
                                .double()},
}


def test_available_lists_every_metric_with_direction_curve_axis_and_needed_arguments():
    listed = metrics.available()
    expected = {"sensitivity_n", "aupc", "autvc", "infidelity", "bbox_accuracy", "road", "randomization_test"}
    assert expected <= set(listed)
    for name, info in listed.items():
        assert info.name == name and info.higher_is_better in (True, False, None) and info.value
        assert set(info.needs) <= set(metrics.registry.ARGUMENTS)
        assert (info.curve_label is None) == (info.curve_axis is None)
    assert listed["autvc"].needs == ("attributions",) and listed["autvc"].higher_is_better is False
    assert listed["sensitivity_n"].seeded and listed["sensitivity_n"].log_x
    assert "method" in listed["randomization_test"].needs and "attributions" not in listed["randomization_test"].needs


@pytest.mark.parametrize("name", sorted(metrics.available()))
def test_every_metric_gives_one_value_and_at_most_one_curve_per_input(name):
    assert name in SMALL, f"add small options for {name!r} to SMALL"
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 1), nn.Flatten(0)).double().eval()
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    a = x * model[1].weight.detach().view(1, 1, 8, 8)
    result = metrics.evaluate(name, model=model, inputs=x, attributions=a, target=None,
                              method="gradient", seed=0, **SMALL[name])
    assert isinstance(result, metrics.MetricResult) and result.value.shape == (3,)
    info = metrics.available()[name]
    if info.has_curve:
        assert result.curve.dim() == 2 and result.curve.shape[0] == 3
        if result.curve_x is not None:
            assert result.curve_x.shape[-1] == result.curve.shape[1]
    else:
        assert result.curve is None


def test_sensitivity_n_value_and_curve_are_per_input(linear_model):
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    result = metrics.sensitivity_n(linear_model, x, x * linear_model.weight.detach(), n=[1, 3, 5], n_subsets=5, seed=0)
    assert result.curve.shape == (2, 3) and torch.equal(result.curve, result.correlation)
    torch.testing.assert_close(result.value, result.correlation.nanmean(1))


def test_model_free_metrics_take_attributions_only_and_warn_on_the_old_call_style():
    maps = torch.rand(2, 3, 9, 9, generator=torch.Generator().manual_seed(2))
    box = torch.tensor([[1, 1, 5, 5]] * 2)
    with pytest.warns(DeprecationWarning, match="needs no model"):
        old = metrics.average_total_variation(None, None, maps, None)
    torch.testing.assert_close(old, metrics.average_total_variation(maps))
    with pytest.warns(DeprecationWarning):
        old = metrics.bbox_accuracy(model=None, inputs=None, attributions=maps, boxes=box)
    torch.testing.assert_close(old, metrics.bbox_accuracy(maps, boxes=box))
    with pytest.warns(DeprecationWarning):
        old = metrics.autvc(None, None, maps, min_size=3)
    torch.testing.assert_close(old.curve, metrics.autvc(maps, min_size=3).curve)


def test_an_unknown_metric_names_the_known_ones():
    with pytest.raises(ValueError, match="known metrics: .*sensitivity_n"):
        metrics.evaluate("sensitivty_n", attributions=torch.zeros(1, 2))
