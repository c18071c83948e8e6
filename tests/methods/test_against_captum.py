"""Cross-check against Captum 0.9.0 (a test-only dependency) on small random MLPs and CNNs.

Reference models avoid Captum's known defects: its DeepLift is wrong when two nonlinearities follow each
other directly (Captum issue #1104; such models are checked against hand-chained Rescale multipliers in
test_modified.py), its Occlusion returns float32 for float64 inputs, its LRP has no rule for Softplus or
Sigmoid, and its DeepLift has its own max-pooling rule (ours keeps the ordinary gradient through pooling).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import taylorlens

captum_attr = pytest.importorskip("captum.attr")
EpsilonRule = pytest.importorskip("captum.attr._utils.lrp_rules").EpsilonRule

ACTIVATIONS = [nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.ELU]
TARGET = torch.tensor([0, 2, 1, 2])


def models(make_mlp, make_cnn, activation, pool=None):
    yield make_mlp(activation), torch.randn(4, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x = torch.randn(4, 2, 6, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    yield make_cnn(activation, pool=pool), x


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradient_methods_agree_with_captum(make_mlp, make_cnn, activation):
    for model, x in models(make_mlp, make_cnn, activation, pool="max"):
        ours = taylorlens.attribute(model, x, TARGET, "saliency")
        torch.testing.assert_close(ours, captum_attr.Saliency(model).attribute(x, target=TARGET, abs=True))
        ours = taylorlens.attribute(model, x, TARGET, "gradient_x_input")
        torch.testing.assert_close(ours, captum_attr.InputXGradient(model).attribute(x, target=TARGET))


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_integrated_gradients_agrees_with_captum_riemann_right(make_mlp, make_cnn, activation):
    for model, x in models(make_mlp, make_cnn, activation, pool="avg"):
        baseline = torch.full_like(x, -0.3)
        ours = taylorlens.attribute(model, x, TARGET, "integrated_gradients", baseline=baseline, steps=16)
        theirs = captum_attr.IntegratedGradients(model).attribute(
            x, baselines=baseline, target=TARGET, n_steps=16, method="riemann_right"
        )
        torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_deeplift_agrees_with_captum_without_max_pooling(make_mlp, make_cnn, activation):
    for model, x in models(make_mlp, make_cnn, activation, pool="avg"):
        baseline = 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3), dtype=x.dtype)
        ours = taylorlens.attribute(model, x, TARGET, "deeplift", baseline=baseline)
        theirs = captum_attr.DeepLift(model).attribute(x, baselines=baseline, target=TARGET)
        torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("pool", [None, "max", "avg"])
@pytest.mark.parametrize("activation", [nn.ReLU, nn.Tanh])
def test_epsilon_lrp_agrees_with_captum(make_mlp, make_cnn, activation, pool):
    # Captum puts the stabiliser on every layer's output (pooling and the top unit included), taylorlens on
    # the pre-activation of every nonlinearity; with a tiny epsilon both are Eq. 2 of Ancona et al.
    epsilon = 1e-13
    for model, x in models(make_mlp, make_cnn, activation, pool=pool):
        ours = taylorlens.attribute(model, x, TARGET, "epsilon_lrp", epsilon=epsilon)
        for layer in model.modules():
            if isinstance(layer, nn.Linear | nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d):
                layer.rule = EpsilonRule(epsilon)
        theirs = captum_attr.LRP(model).attribute(x, target=TARGET)
        torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize(("window", "stride"), [((1, 1, 1), (1, 1, 1)), ((1, 3, 3), (1, 2, 2)), ((2, 2, 2), (1, 2, 1))])
def test_occlusion_agrees_with_captum(make_cnn, window, stride):
    model = make_cnn(nn.Tanh, pool="max")
    x = torch.randn(4, 2, 6, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ours = taylorlens.attribute(model, x, TARGET, "occlusion", window=window, stride=stride, baseline=0.5)
    theirs = captum_attr.Occlusion(model).attribute(
        x, sliding_window_shapes=window, strides=stride, baselines=0.5, target=TARGET
    )
    # Captum returns float32 here; compare at float32 precision.
    torch.testing.assert_close(ours, theirs.to(ours.dtype), atol=1e-5, rtol=1e-5)


def test_occlusion_1_agrees_with_captum_on_an_mlp(make_mlp):
    model = make_mlp(nn.Softplus)
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ours = taylorlens.attribute(model, x, TARGET, "occlusion")
    theirs = captum_attr.Occlusion(model).attribute(x, sliding_window_shapes=(1,), target=TARGET)
    torch.testing.assert_close(ours, theirs.to(ours.dtype), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("method", "reference"), [("guided_backprop", "GuidedBackprop"), ("deconvnet", "Deconvolution")]
)
def test_guided_backprop_and_deconvnet_agree_with_captum(make_mlp, make_cnn, method, reference):
    for model, x in models(make_mlp, make_cnn, nn.ReLU, pool="max"):
        ours = taylorlens.attribute(model, x, TARGET, method)
        theirs = getattr(captum_attr, reference)(model).attribute(x, target=TARGET)
        torch.testing.assert_close(ours, theirs)
