"""``taylorlens.methods()`` lists every method with its options and defaults; names resolve to classes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import taylorlens
from taylorlens import AttributionInputError

EXPECTED_DEFAULTS = {
    "gradient": {},
    "saliency": {},
    "gradient_x_input": {},
    "integrated_gradients": {"baseline": 0.0, "steps": 50, "rule": "riemann_right", "n_baselines": 1,
                             "low": 0.0, "high": 1.0, "seed": None, "tolerance": 1e-2, "max_steps": 1025},
    "expected_gradients": {"references": None, "sigma": None, "n_samples": 50, "seed": None},
    "interior_gradients": {"alphas": None, "baseline": 0.0},
    "deeplift": {"baseline": 0.0},
    "epsilon_lrp": {"epsilon": 1e-9},
    "guided_backprop": {},
    "deconvnet": {},
    "occlusion": {"window": 1, "stride": 1, "baseline": 0.0},
    "smoothgrad": {"inner": "gradient_x_input", "sigma": 0.15, "n_samples": 50, "seed": None},
    "smooth_taylor": {"sigma": 0.5, "n_roots": 150, "seed": None},
}


def test_methods_lists_every_method_with_its_options_and_defaults():
    listed = taylorlens.methods()
    assert set(EXPECTED_DEFAULTS) <= set(listed)
    for name, defaults in EXPECTED_DEFAULTS.items():
        info = listed[name]
        assert info.name == name
        # Other modules may add options (smooth_taylor's adaptive noising): the documented ones must be there.
        assert {"batch_size": None, **defaults}.items() <= info.options.items(), name
        assert info.summary and "\n" not in info.summary
        assert info.cls.name == name
        assert isinstance(info.principles, dict)


def test_class_api_takes_constructor_options_and_call_options(make_mlp, make_inputs):
    model, x = make_mlp(nn.Softplus), make_inputs(2, 5)
    explainer = taylorlens.IntegratedGradients(model, steps=50)
    maps = explainer.attribute(x, 1, baseline=0.0)
    torch.testing.assert_close(maps, taylorlens.attribute(model, x, 1, "integrated_gradients"))
    # Call options override constructor options.
    fine = explainer.attribute(x, 1, steps=7)
    torch.testing.assert_close(fine, taylorlens.attribute(model, x, 1, "integrated_gradients", steps=7))


@pytest.mark.parametrize("cls", [taylorlens.Gradient, taylorlens.Saliency, taylorlens.GradientXInput,
                                 taylorlens.DeepLift, taylorlens.EpsilonLRP, taylorlens.GuidedBackprop,
                                 taylorlens.Deconvnet, taylorlens.Occlusion, taylorlens.InteriorGradients,
                                 taylorlens.ExpectedGradients, taylorlens.SmoothGrad, taylorlens.SmoothTaylor])
def test_every_class_is_registered_under_its_name(cls):
    assert taylorlens.methods()[cls.name].cls is cls


def test_unknown_method_lists_the_known_ones(make_mlp, make_inputs):
    with pytest.raises(AttributionInputError, match=r"unknown method 'lime'; known methods: .*deeplift"):
        taylorlens.attribute(make_mlp(), make_inputs(2, 5), 0, method="lime")


def test_unknown_option_lists_the_accepted_ones(make_mlp, make_inputs):
    with pytest.raises(AttributionInputError,
                       match=r"unknown option\(s\) 'step' for method 'integrated_gradients'; accepted: .*steps"):
        taylorlens.attribute(make_mlp(), make_inputs(2, 5), 0, "integrated_gradients", step=3)
    with pytest.raises(AttributionInputError, match="unknown option"):
        taylorlens.DeepLift(make_mlp(), epsilon=0.1)


@pytest.mark.parametrize(
    ("method", "options", "message"),
    [
        ("integrated_gradients", {"rule": "simpson"}, "rule must be one of"),
        ("integrated_gradients", {"steps": 0}, "steps must be an integer >= 1, got 0"),
        ("integrated_gradients", {"baseline": "black"}, "baseline must be a number, a tensor .* or 'uniform'"),
        ("integrated_gradients", {"n_baselines": 3}, "n_baselines=3 averages over random baselines"),
        ("integrated_gradients", {"baseline": "uniform", "low": 1.0, "high": 0.0}, "low < high"),
        ("expected_gradients", {}, "needs references"),
        ("expected_gradients", {"references": torch.zeros(3, 4)}, "references must be a tensor"),
        ("epsilon_lrp", {"epsilon": -1.0}, "epsilon must be a finite number >= 0"),
        ("smoothgrad", {"sigma": float("nan")}, "sigma must be a finite number >= 0"),
        ("interior_gradients", {"alphas": []}, "alphas must be a non-empty"),
        ("occlusion", {"stride": 1.5}, "stride must be an int or a tuple of ints"),
    ],
)
def test_bad_option_values_get_clear_errors(make_mlp, make_inputs, method, options, message):
    with pytest.raises(AttributionInputError, match=message):
        taylorlens.attribute(make_mlp(), make_inputs(2, 5), 0, method, **options)


def test_short_aliases_name_the_same_method():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double().eval()
    x = torch.randn(2, 3, dtype=torch.float64)
    for alias, name in [("ig", "integrated_gradients"), ("dl", "deeplift"), ("lrp", "epsilon_lrp")]:
        torch.testing.assert_close(taylorlens.attribute(model, x, 1, alias), taylorlens.attribute(model, x, 1, name))
