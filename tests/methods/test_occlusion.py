"""Occlusion-1 and Occlusion-patch (Ancona et al. 2018, Sec. 2) against a loop over windows."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import taylorlens
from taylorlens import AttributionInputError
from tests.slow_references import slow_occlusion


def test_occlusion_1_is_the_output_drop_for_each_single_feature(make_mlp, make_inputs):
    model, x = make_mlp(nn.Tanh), make_inputs(3, 5)
    maps = taylorlens.attribute(model, x, 1, "occlusion", baseline=0.25)
    with torch.no_grad():
        for i in range(5):
            occluded = x.clone()
            occluded[:, i] = 0.25
            torch.testing.assert_close(maps[:, i], model(x)[:, 1] - model(occluded)[:, 1])


@pytest.mark.parametrize(
    ("window", "stride"),
    [((1, 1, 1), (1, 1, 1)), ((1, 3, 3), (1, 1, 1)), ((2, 2, 3), (1, 2, 2)), ((1, 4, 4), (1, 3, 3))],
)
def test_occlusion_patch_matches_a_loop_over_windows(make_cnn, make_inputs, window, stride):
    model, x = make_cnn(nn.ReLU), make_inputs(2, 2, 6, 6)
    maps = taylorlens.attribute(model, x, 2, "occlusion", window=window, stride=stride, baseline=-0.5)
    torch.testing.assert_close(maps, slow_occlusion(model, x, 2, window, stride, -0.5))


def test_occlusion_int_window_spans_one_channel_of_images(make_cnn, make_inputs):
    model, x = make_cnn(nn.Tanh), make_inputs(2, 2, 6, 6)
    maps = taylorlens.attribute(model, x, 0, "occlusion", window=3, stride=3)
    torch.testing.assert_close(maps, slow_occlusion(model, x, 0, (1, 3, 3), (1, 3, 3), 0.0))


def test_occlusion_value_tensor_is_the_per_feature_fill(make_mlp, make_inputs):
    model, x, fill = make_mlp(nn.Softplus), make_inputs(2, 5), make_inputs(5, seed=9)
    maps = taylorlens.attribute(model, x, 0, "occlusion", baseline=fill)
    with torch.no_grad():
        for i in range(5):
            occluded = x.clone()
            occluded[:, i] = fill[i]
            torch.testing.assert_close(maps[:, i], model(x)[:, 0] - model(occluded)[:, 0])


@pytest.mark.parametrize("window", [0, 6, (1, 2), "big", (1, 1, 7)])
def test_occlusion_rejects_windows_that_do_not_fit(make_mlp, make_inputs, window):
    x = make_inputs(2, 1, 3, 5)
    with pytest.raises(AttributionInputError, match="window"):
        taylorlens.attribute(make_mlp(nn.Tanh, sizes=(15, 3)).eval(), x, 0, "occlusion", window=window)


def test_occlusion_covers_every_feature_when_the_stride_does_not_divide_the_size(make_mlp, make_inputs):
    # 7 features, window 3, stride 3: windows [0, 3), [3, 6) and the cut [6, 7); feature 6 is not left at 0.
    model, x = make_mlp(nn.Tanh, sizes=(7, 4, 2)), make_inputs(2, 7)
    maps = taylorlens.attribute(model, x, 0, "occlusion", window=3, stride=3)
    occluded = x.clone()
    occluded[:, 6] = 0.0
    with torch.no_grad():
        torch.testing.assert_close(maps[:, 6], model(x)[:, 0] - model(occluded)[:, 0])


def test_occlusion_old_option_name_value_still_works_with_a_deprecation_warning(make_mlp, make_inputs):
    model, x = make_mlp(nn.Tanh), make_inputs(3, 5)
    new = taylorlens.attribute(model, x, 1, "occlusion", window=2, baseline=0.25)
    with pytest.warns(DeprecationWarning, match="'value' is now 'baseline'"):
        old = taylorlens.attribute(model, x, 1, "occlusion", window=2, value=0.25)
    torch.testing.assert_close(old, new)
    with pytest.warns(DeprecationWarning, match="'value' is now 'baseline'"):
        reformulated = taylorlens.taylor.reformulate("occlusion", model, x, 1, value=0.25)
    torch.testing.assert_close(reformulated, taylorlens.taylor.reformulate("occlusion", model, x, 1, baseline=0.25))
