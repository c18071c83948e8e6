"""The batched evaluation path: results do not depend on how points are chunked."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import taylorlens
from taylorlens.engine import Points, Request, chunking
from tests.methods.test_base import FAST_OPTIONS


class CountingModel(nn.Module):
    """Wraps a model and records the batch size of every call."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.calls = model, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.shape[0])
        return self.model(x)


@pytest.mark.parametrize("method", sorted(FAST_OPTIONS))
def test_results_do_not_depend_on_the_chunk_size(make_cnn, make_inputs, method):
    model, x = make_cnn(nn.ReLU, pool="max"), make_inputs(3, 2, 6, 6)
    target = torch.tensor([0, 2, 1])
    options = FAST_OPTIONS[method]
    whole = taylorlens.attribute(model, x, target, method, **options)
    for batch_size in (1, 7):
        chunked = taylorlens.attribute(model, x, target, method, batch_size=batch_size, **options)
        torch.testing.assert_close(chunked, whole, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("batch_size", [1, 7, 100])
def test_passes_go_in_chunks_of_batch_size(make_mlp, make_inputs, batch_size):
    model = CountingModel(make_mlp(nn.Tanh))
    taylorlens.attribute(model, make_inputs(3, 5), 1, "integrated_gradients", steps=10, batch_size=batch_size)
    # 30 path points plus the (unused-for-IG) nothing else: IG runs one gradient pass over the points.
    assert sum(model.calls) == 30
    assert max(model.calls) == min(batch_size, 30)


def test_deeplift_evaluates_the_references_of_each_chunk_before_its_points(make_mlp, make_inputs):
    # One shared baseline: one reference forward per chunk, its values broadcast to the chunk's points.
    model, x = CountingModel(make_mlp(nn.Tanh)).eval(), make_inputs(5, 5)
    shared = taylorlens.attribute(model, x, 1, "deeplift", batch_size=2)
    assert model.calls == [1, 2, 1, 2, 1, 1]
    # A baseline per sample: as many references as points; the same attributions for equal baselines.
    model.calls.clear()
    per_sample = taylorlens.attribute(model, x, 1, "deeplift", baseline=torch.zeros_like(x) + 0.0, batch_size=2)
    assert model.calls == [1, 2, 1, 2, 1, 1]  # equal rows are still recognised as one reference
    torch.testing.assert_close(per_sample, shared, rtol=0, atol=0)
    model.calls.clear()
    baseline = make_inputs(5, 5)
    taylorlens.attribute(model, x, 1, "deeplift", baseline=baseline, batch_size=2)
    assert model.calls == [2, 2, 2, 2, 1, 1]


def test_large_jobs_use_a_measured_chunk_size_and_agree_with_single_points(make_mlp, make_inputs):
    model, x = make_mlp(nn.Softplus), make_inputs(3, 5)
    assert 3 * 40 > chunking.SMALL_JOB
    measured = taylorlens.attribute(model, x, 1, "integrated_gradients", steps=40)
    kinds = {key[-1] for key in chunking._measured[model]}
    assert "gradient" in kinds
    single = taylorlens.attribute(model, x, 1, "integrated_gradients", steps=40, batch_size=1)
    torch.testing.assert_close(measured, single, rtol=1e-12, atol=1e-12)
    occluded = taylorlens.attribute(model, make_inputs(20, 5), 0, "occlusion")  # 100 forward points
    assert "forward" in {key[-1] for key in chunking._measured[model]}
    torch.testing.assert_close(
        occluded, taylorlens.attribute(model, make_inputs(20, 5), 0, "occlusion", batch_size=3)
    )


def test_measured_chunks_split_a_large_job(make_mlp, make_inputs):
    model = CountingModel(make_mlp(nn.Tanh))
    chunking._measured[model] = {  # as if measured before
        ((5,), torch.float64, "cpu", 1, "gradient"): chunking.Ladder([16], {("", 16): 1.0}, measured=1)
    }
    taylorlens.attribute(model, make_inputs(3, 5), 1, "integrated_gradients", steps=40)
    assert model.calls == [15] * 8  # 120 points need 8 chunks of at most 16: evened out to 8 x 15


def test_points_are_ordered_sample_major_and_built_lazily(make_mlp, make_inputs):
    model, x = make_mlp(nn.Tanh), make_inputs(3, 5)
    built = []

    def build(sample: torch.Tensor, variant: torch.Tensor) -> torch.Tensor:
        built.append((sample.tolist(), variant.tolist()))
        return x[sample] * (1 + variant[:, None])

    request = Request.build(model, x, 2, batch_size=4)
    values = request.forward(Points(x, 2, build))
    assert built == [([0, 0, 1, 1], [0, 1, 0, 1]), ([2, 2], [0, 1])]
    with torch.no_grad():
        torch.testing.assert_close(values, torch.stack([model(x)[:, 2], model(2 * x)[:, 2]], dim=1))


def test_gradient_sum_weights_each_point(make_mlp, make_inputs):
    model, x = make_mlp(nn.Tanh), make_inputs(3, 5)
    request = Request.build(model, x, 1, batch_size=5)
    points = Points(x, 3, lambda s, v: x[s] + 0.1 * v[:, None])
    total = request.gradient_sum(points, lambda chunk: (chunk.variant + 1)[:, None].to(x.dtype))
    grads, values = request.gradients(points)
    assert grads.shape == (3, 3, 5) and values.shape == (3, 3)
    torch.testing.assert_close(total, (grads * torch.tensor([1.0, 2.0, 3.0], dtype=x.dtype)[None, :, None]).sum(1))
    for v in range(3):
        torch.testing.assert_close(grads[:, v], taylorlens.attribute(model, x + 0.1 * v, 1, "gradient"))


def test_several_targets_give_the_same_gradients_batched_or_looped(make_mlp, make_inputs):
    from taylorlens.engine import passes

    model, x = make_mlp(nn.Tanh), make_inputs(4, 5).requires_grad_(True)
    outputs = model(x)[:, :3]
    batched = passes._per_target_gradients(outputs, x, batched=True)
    looped = passes._per_target_gradients(outputs, x, batched=False)
    assert batched.shape == (3, 4, 5)
    torch.testing.assert_close(batched, looped, rtol=1e-12, atol=1e-12)
