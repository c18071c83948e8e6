"""What every method promises (Method.attribute): dtype, device, shape, reproducible randomness."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import taylorlens

#: Every method with options small enough for fast tests.
FAST_OPTIONS = {
    "gradient": {},
    "saliency": {},
    "gradient_x_input": {},
    "integrated_gradients": {"steps": 8},
    "expected_gradients": {"sigma": 0.3, "n_samples": 6, "seed": 0},
    "interior_gradients": {"alphas": [0.5, 1.0]},
    "deeplift": {"baseline": 0.1},
    "epsilon_lrp": {"epsilon": 1e-6},
    "guided_backprop": {},
    "deconvnet": {},
    "occlusion": {"window": 2},
    "smoothgrad": {"n_samples": 5, "seed": 0},
    "smooth_taylor": {"n_roots": 5, "seed": 0},
}

STOCHASTIC = {
    "integrated_gradients": {"baseline": "uniform", "n_baselines": 3, "steps": 5},
    "expected_gradients": {"sigma": 0.3, "n_samples": 6},
    "smoothgrad": {"n_samples": 5},
    "smooth_taylor": {"n_roots": 5},
}

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


def test_fast_options_cover_every_registered_method():
    # Methods registered outside taylorlens.methods are tested by their owners.
    registered = taylorlens.methods().items()
    ours = {name for name, info in registered if info.cls.__module__.startswith("taylorlens.methods.")}
    assert ours == set(FAST_OPTIONS)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("method", sorted(FAST_OPTIONS))
def test_output_has_the_inputs_shape_dtype_and_device(make_cnn, make_inputs, method, dtype, device):
    model = make_cnn(nn.ReLU, pool="max", dtype=dtype).to(device)
    x = make_inputs(3, 2, 6, 6, dtype=dtype).to(device)
    maps = taylorlens.attribute(model, x, torch.tensor([0, 2, 1]), method, **FAST_OPTIONS[method])
    expected_shape = (2, *x.shape) if method == "interior_gradients" else x.shape
    assert maps.shape == expected_shape
    assert maps.dtype == dtype
    assert maps.device == x.device
    assert torch.isfinite(maps).all()


@pytest.mark.parametrize("method", sorted(FAST_OPTIONS))
def test_float32_agrees_with_float64(make_mlp, make_inputs, method):
    model64, x64 = make_mlp(nn.ReLU), make_inputs(3, 5)
    model32 = make_mlp(nn.ReLU, dtype=torch.float32)
    maps64 = taylorlens.attribute(model64, x64, 1, method, **FAST_OPTIONS[method])
    maps32 = taylorlens.attribute(model32, x64.float(), 1, method, **FAST_OPTIONS[method])
    if method in STOCHASTIC:  # the noise itself is drawn in each dtype
        assert maps32.dtype == torch.float32
        return
    torch.testing.assert_close(maps32, maps64.float(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("method", sorted(STOCHASTIC))
def test_stochastic_methods_are_reproducible_by_seed(make_mlp, make_inputs, method):
    model, x = make_mlp(nn.Tanh), make_inputs(3, 5)
    first = taylorlens.attribute(model, x, 1, method, seed=5, **STOCHASTIC[method])
    again = taylorlens.attribute(model, x, 1, method, seed=5, **STOCHASTIC[method])
    other = taylorlens.attribute(model, x, 1, method, seed=6, **STOCHASTIC[method])
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


@pytest.mark.parametrize("method", sorted(STOCHASTIC))
def test_stochastic_methods_without_seed_draw_fresh_noise(make_mlp, make_inputs, method):
    model, x = make_mlp(nn.Tanh), make_inputs(3, 5)
    first = taylorlens.attribute(model, x, 1, method, **STOCHASTIC[method])
    assert not torch.allclose(first, taylorlens.attribute(model, x, 1, method, **STOCHASTIC[method]))


def test_seed_does_not_touch_the_global_random_state(make_mlp, make_inputs):
    model, x = make_mlp(nn.Tanh), make_inputs(3, 5)
    state = torch.random.get_rng_state()
    taylorlens.attribute(model, x, 1, "smoothgrad", n_samples=3, seed=1)
    assert torch.equal(state, torch.random.get_rng_state())


class CountingModel(nn.Module):
    """Counts the points (rows) and the calls that reach the wrapped model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.rows, self.calls = model, 0, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows, self.calls = self.rows + x.shape[0], self.calls + 1
        return self.model(x)


@pytest.mark.parametrize("method", sorted(FAST_OPTIONS))
def test_return_info_counts_every_point_that_reaches_the_model(make_cnn, make_inputs, method):
    model = CountingModel(make_cnn(nn.ReLU, pool="max"))
    x = make_inputs(3, 2, 6, 6)
    plain = taylorlens.attribute(model, x, torch.tensor([0, 2, 1]), method, batch_size=7, **FAST_OPTIONS[method])
    model.rows = model.calls = 0
    maps, info = taylorlens.attribute(model, x, torch.tensor([0, 2, 1]), method, batch_size=7, return_info=True,
                                      **FAST_OPTIONS[method])
    torch.testing.assert_close(maps, plain)
    assert isinstance(info, taylorlens.AttributionInfo) and info.method == method
    assert info.points == info.passes == sum(info.points_by_pass.values()) == model.rows > 0
    assert info.model_calls == model.calls and info.measuring_points == 0
    assert info.points_per_sample.shape == (3,) and int(info.points_per_sample.sum()) == info.points
    assert info.seconds >= 0


def test_return_info_counts_measuring_apart_and_reads_details_as_attributes(make_mlp, make_inputs):
    model = CountingModel(make_mlp(nn.Tanh, sizes=(5, 7, 3), seed=11))  # a fresh model: chunk sizes are measured
    maps, info = taylorlens.attribute(model, make_inputs(8, 5), 0, "integrated_gradients", steps=40,
                                      return_info=True)
    assert info.points == 320 and info.points_per_sample.tolist() == [40] * 8
    assert info.measuring_points > 0 and model.rows == info.points + info.measuring_points
    assert info.steps.tolist() == [40] * 8 and info["steps"] is info.steps
    with pytest.raises(AttributeError, match="details: steps"):
        _ = info.gap


def test_return_info_must_be_a_bool(make_mlp, make_inputs):
    with pytest.raises(TypeError, match="return_info must be True or False"):
        taylorlens.attribute(make_mlp(), make_inputs(2, 5), 0, "gradient", return_info="yes")
