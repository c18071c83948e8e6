"""Every method family and the metrics keep their tensors on the inputs' device (CUDA when present).

The CUDA cases are marked ``cuda`` and skipped without a GPU; the same checks run on the CPU so the test itself
is exercised everywhere. Deterministic methods must match a CPU run in float64; methods that draw noise (the
CUDA generator differs from the CPU one) must give the same values twice for one seed.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import taylorlens
from taylorlens.engine import chunking, memory

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(),
                                                                      reason="needs a CUDA device")]),
]

DETERMINISTIC = {
    "gradient": {},
    "saliency": {},
    "gradient_x_input": {},
    "integrated_gradients": {"steps": 16},
    "integrated_gradients auto": {"steps": "auto", "rule": "trapezoid", "tolerance": 1e-3},
    "interior_gradients": {"alphas": (0.25, 0.5, 1.0)},
    "deeplift": {},
    "epsilon_lrp": {},
    "guided_backprop": {},
    "deconvnet": {},
    "occlusion": {"window": (2, 2, 2), "stride": (2, 2, 2)},
    "taylor": {"order": 2},
}
RANDOM = {
    "expected_gradients": {"n_samples": 8, "seed": 1},
    "smoothgrad": {"inner": "integrated_gradients", "n_samples": 4, "steps": 4, "seed": 1},
    "smooth_taylor": {"n_roots": 6, "seed": 1},
}


@pytest.fixture
def relu_cnn(make_cnn):
    torch.manual_seed(0)
    return make_cnn(nn.ReLU).double().eval()


@pytest.fixture
def softplus_cnn(make_cnn):
    torch.manual_seed(0)
    return make_cnn(nn.Softplus).double().eval()


def _x(device: str) -> torch.Tensor:
    return torch.randn(3, 2, 6, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64).to(device)


def _run(model: nn.Module, x: torch.Tensor, name: str, options: dict) -> torch.Tensor:
    method = name.split()[0]
    if method == "expected_gradients":
        options = {**options, "references": torch.zeros_like(x[:2])}
    return taylorlens.attribute(model, x, target=torch.tensor([0, 1, 2], device=x.device), method=method,
                                **options)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(DETERMINISTIC))
def test_deterministic_methods_stay_on_the_device_and_match_the_cpu(relu_cnn, softplus_cnn, device, name):
    model = softplus_cnn if name.startswith(("integrated", "taylor")) else relu_cnn
    expected = _run(model, _x("cpu"), name, DETERMINISTIC[name])
    got = _run(model.to(device), _x(device), name, DETERMINISTIC[name])
    model.to("cpu")
    assert got.device.type == device
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(RANDOM))
def test_methods_that_draw_noise_stay_on_the_device_and_repeat_for_a_seed(softplus_cnn, device, name):
    model = softplus_cnn.to(device)
    first, second = (_run(model, _x(device), name, RANDOM[name]) for _ in range(2))
    model.to("cpu")
    assert first.device.type == device and bool(torch.isfinite(first).all())
    torch.testing.assert_close(first, second)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("metric", ["sensitivity_n", "perturbation_curve", "infidelity", "completeness_gap"])
def test_metrics_stay_on_the_device(softplus_cnn, device, metric):
    model, x = softplus_cnn.to(device), _x(device)
    attributions = taylorlens.attribute(model, x, target=1, method="gradient_x_input")
    result = taylorlens.metrics.evaluate(metric, model=model, inputs=x, attributions=attributions, target=1, seed=0)
    model.to("cpu")
    assert bool(torch.isfinite(result.value.double()).all())
    if device == "cpu":
        return
    cpu_x = x.cpu()
    expected = taylorlens.metrics.evaluate(metric, model=softplus_cnn, inputs=cpu_x, attributions=attributions.cpu(),
                                           target=1, seed=0)
    if metric in ("perturbation_curve", "completeness_gap"):  # no random draws
        torch.testing.assert_close(result.value.cpu(), expected.value, rtol=1e-7, atol=1e-9)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_chunk_bytes_on_cuda_is_the_rise_of_allocated_memory(softplus_cnn):
    model = softplus_cnn.cuda()
    points = torch.randn(16, 2, 6, 6, dtype=torch.float64, device="cuda", requires_grad=True)
    with memory.chunk_bytes(model, points[0], "gradient", 16) as used:
        torch.autograd.grad(model(points)[:, 0].sum(), points)
    model.cpu()
    assert used.value is not None and used.value >= 2 * points.numel() * 8


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_real_cuda_out_of_memory_is_halved_and_retried(softplus_cnn):
    class AllocatesAbove(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner.eval()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[0] > 8:  # asks for far more than any GPU has
                torch.empty(2**50, dtype=torch.uint8, device=x.device)
            return self.inner(x)

    model, x = AllocatesAbove(softplus_cnn).cuda().eval(), _x("cuda")
    expected = taylorlens.attribute(softplus_cnn.cuda(), x, target=1, method="integrated_gradients", steps=20)
    with pytest.warns(taylorlens.BatchSizeWarning):
        got = taylorlens.attribute(model, x, target=1, method="integrated_gradients", steps=20, batch_size=40)
    softplus_cnn.cpu()
    torch.testing.assert_close(got, expected)
    assert chunking._store_for(model)  # the size that fitted is remembered
