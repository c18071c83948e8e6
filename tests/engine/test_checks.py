"""Bad input gets a clear AttributionInputError that names the argument, the value and what is accepted."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import taylorlens
from taylorlens import AttributionInputError


@pytest.fixture
def model(make_mlp):
    return make_mlp(nn.Tanh)


@pytest.fixture
def x(make_inputs):
    return make_inputs(3, 5)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (3, "target 3 is out of range for a model with 3 outputs"),
        (-1, "target -1 is out of range"),
        ([0, 1], r"expected 3 ints, got shape \(2,\)"),
        (torch.tensor([[0, 1, 2]]), r"expected 3 ints, got shape \(1, 3\)"),
        (1.0, "target must hold integers, got dtype torch.float"),
        (True, "target must be an int"),
        ("cat", "target must"),
        (None, "the model returns 3 outputs per sample: pass target"),
    ],
)
@pytest.mark.parametrize("method", ["gradient", "deeplift", "occlusion"])
def test_bad_targets_are_rejected(model, x, method, target, message):
    with pytest.raises(AttributionInputError, match=message):
        taylorlens.attribute(model, x, target, method)


def test_targets_per_sample_pick_each_samples_output(model, x):
    maps = taylorlens.attribute(model, x, [2, 0, 1], "gradient")
    for b, c in enumerate([2, 0, 1]):
        torch.testing.assert_close(maps[b], taylorlens.attribute(model, x[b:b + 1], c, "gradient")[0])
    torch.testing.assert_close(taylorlens.attribute(model, x, torch.tensor(1), "gradient"),
                               taylorlens.attribute(model, x, 1, "gradient"))


@pytest.mark.parametrize("method", ["integrated_gradients", "deeplift", "interior_gradients"])
def test_baseline_that_does_not_broadcast_is_rejected(model, x, method):
    with pytest.raises(AttributionInputError, match=r"baseline of shape \(4,\) does not broadcast to the inputs"):
        taylorlens.attribute(model, x, 0, method, baseline=torch.zeros(4))


def test_baseline_of_one_sample_shape_is_used_for_every_sample(model, x):
    one = torch.linspace(-1, 1, 5, dtype=torch.float64)
    torch.testing.assert_close(taylorlens.attribute(model, x, 0, "deeplift", baseline=one),
                               taylorlens.attribute(model, x, 0, "deeplift", baseline=one.expand(3, 5)))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_inputs_and_baselines_are_rejected(model, x, bad):
    poisoned = x.clone()
    poisoned[1, 2] = bad
    with pytest.raises(AttributionInputError, match=r"inputs contains 1 NaN or infinite value\(s\)"):
        taylorlens.attribute(model, poisoned, 0, "gradient")
    with pytest.raises(AttributionInputError, match=r"baseline contains 1 NaN or infinite"):
        taylorlens.attribute(model, x, 0, "integrated_gradients", baseline=poisoned[1])
    with pytest.raises(AttributionInputError, match="baseline contains 1 NaN"):
        taylorlens.attribute(model, x, 0, "deeplift", baseline=bad)
    with pytest.raises(AttributionInputError, match="baseline contains"):
        taylorlens.attribute(model, x, 0, "occlusion", baseline=bad)
    with pytest.raises(AttributionInputError, match="references contains"):
        taylorlens.attribute(model, x, 0, "expected_gradients", references=poisoned)


@pytest.mark.parametrize("inputs", [torch.tensor([[1, 2, 3, 4, 5]]), torch.ones(2, 5, dtype=torch.bool)])
def test_non_floating_inputs_are_rejected(model, inputs):
    message = f"inputs must be a floating-point tensor, got dtype {inputs.dtype}"
    with pytest.raises(AttributionInputError, match=message):
        taylorlens.attribute(model, inputs, 0, "gradient")


@pytest.mark.parametrize(
    ("inputs", "message"),
    [([[1.0, 2.0]], "inputs must be a torch.Tensor of shape"), (torch.tensor(1.0), "batch of shape"),
     (torch.zeros(0, 5), r"B >= 1, got shape \(0, 5\)")],
)
def test_inputs_that_are_not_a_batch_are_rejected(model, inputs, message):
    with pytest.raises(AttributionInputError, match=message):
        taylorlens.attribute(model, inputs, 0, "gradient")


@pytest.mark.parametrize(
    ("forward", "message"),
    [
        (lambda t: {"scores": t}, "the model returned a dict; taylorlens reads a tensor, .logits of a ModelOutput"),
        (lambda t: (None, t), "the model returned a tuple; taylorlens reads a tensor"),
        # n is the size of the pass that met the output (occlusion and deeplift send more points than inputs).
        (lambda t: t[:, :, None], r"outputs of shape \((\d+), C\) or \(\1,\), got \(\1, 5, 1\)"),
        (lambda t: t.sum(), r"got \(\)"),
        (lambda t: t[:1], r"got \(1, 5\)"),
    ],
)
@pytest.mark.parametrize("method", ["gradient", "occlusion", "deeplift"])
def test_model_outputs_other_than_b_c_or_b_are_rejected(x, forward, message, method):
    with pytest.raises(AttributionInputError, match=message):
        taylorlens.attribute(forward, x, 0, method)


def test_scalar_output_models_take_no_target_or_zero(x):
    def scalar(t: torch.Tensor) -> torch.Tensor:
        return (t**2).sum(dim=1)

    torch.testing.assert_close(taylorlens.attribute(scalar, x, None, "gradient"), 2 * x)
    torch.testing.assert_close(taylorlens.attribute(scalar, x, 0, "gradient"), 2 * x)
    with pytest.raises(AttributionInputError, match=r"one output per sample \(B,\): target must be None or 0"):
        taylorlens.attribute(scalar, x, 1, "gradient")
    # A (B, 1) output is one output per sample too: target None picks its only column.
    torch.testing.assert_close(taylorlens.attribute(lambda t: scalar(t)[:, None], x, None, "gradient"), 2 * x)


def test_a_model_that_is_not_callable_is_rejected(x):
    with pytest.raises(TypeError, match="model must be an nn.Module or a callable"):
        taylorlens.attribute("resnet", x, 0, "gradient")
