"""The model is left as it was: parameters, .grad, requires_grad, training flags, no hooks or modes left."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import taylorlens
from tests.methods.test_base import FAST_OPTIONS


def snapshot(model: nn.Module) -> dict:
    return {
        "params": [p.detach().clone() for p in model.parameters()],
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "training": [m.training for m in model.modules()],
        "hooks": [
            (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks)) for m in model.modules()
        ],
    }


def assert_unchanged(model: nn.Module, before: dict) -> None:
    after = snapshot(model)
    for name in ("requires_grad", "training", "hooks"):
        assert after[name] == before[name], name
    for old, new in zip(before["params"], after["params"], strict=True):
        assert torch.equal(old, new)
    for old, new in zip(before["grads"], after["grads"], strict=True):
        assert (old is None and new is None) or torch.equal(old, new)
    assert torch._C._len_torch_function_stack() == 0


def prepared_model(make_mlp) -> nn.Module:
    """A ReLU MLP with mixed flags: one frozen parameter, one existing gradient, one submodule in train mode."""
    model = make_mlp(nn.ReLU)
    model[0].bias.requires_grad_(False)
    model[2].weight.grad = torch.full_like(model[2].weight, 0.5)
    model[1].train()
    return model


@pytest.mark.parametrize("method", sorted(FAST_OPTIONS))
def test_every_method_leaves_the_model_as_it_was(make_mlp, make_inputs, method):
    model = prepared_model(make_mlp)
    before = snapshot(model)
    taylorlens.attribute(model, make_inputs(3, 5), 1, method, **FAST_OPTIONS[method])
    assert_unchanged(model, before)


class FailsAfterReLU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.linear(x))
        if h.requires_grad:
            raise RuntimeError("boom inside forward")
        return h


@pytest.mark.parametrize("method", ["gradient", "deeplift", "epsilon_lrp", "guided_backprop", "smoothgrad"])
def test_an_exception_inside_forward_leaves_nothing_behind(make_inputs, method):
    model = FailsAfterReLU().double().eval()
    model.linear.weight.requires_grad_(False)
    before = snapshot(model)
    with pytest.raises(RuntimeError, match="boom inside forward"):
        taylorlens.attribute(model, make_inputs(2, 3), 0, method)
    assert_unchanged(model, before)
    # Nothing left active: a plain forward with gradients works normally afterwards.
    x = make_inputs(2, 3).requires_grad_(True)
    torch.relu(x).sum().backward()
    torch.testing.assert_close(x.grad, (x > 0).to(x.dtype))


def test_a_model_in_training_mode_gets_one_warning_pointing_at_the_caller(make_mlp, make_inputs):
    model = make_mlp(nn.Tanh).train()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        taylorlens.attribute(model, make_inputs(2, 5), 0, "smoothgrad", n_samples=2)
    training = [w for w in caught if "training mode" in str(w.message)]
    assert len(training) == 1
    assert training[0].filename == __file__
    assert model.training and all(m.training for m in model.modules())


def test_a_model_in_training_mode_warns_through_the_class_api_too(make_mlp, make_inputs):
    model = make_mlp(nn.Tanh).train()
    with pytest.warns(UserWarning, match=r"training mode.*model.eval\(\)") as record:
        taylorlens.Gradient(model).attribute(make_inputs(2, 5), 0)
    assert record[0].filename == __file__


def test_a_model_in_eval_mode_gets_no_warning(make_mlp, make_inputs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        taylorlens.attribute(make_mlp(nn.Tanh), make_inputs(2, 5), 0, "integrated_gradients", steps=3)


def test_plain_callables_are_accepted(make_mlp, make_inputs):
    model, x = make_mlp(nn.Tanh), make_inputs(2, 5)
    maps = taylorlens.attribute(lambda t: model(t), x, 0, "deeplift")
    torch.testing.assert_close(maps, taylorlens.attribute(model, x, 0, "deeplift"))
