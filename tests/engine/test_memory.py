"""The memory governor: chunks that run out of memory are halved and retried, never lost or counted twice."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import taylorlens
from taylorlens.engine import BatchSizeWarning, chunking, memory


class OutOfMemoryAbove(nn.Module):
    """``model``, but raising like an allocator that runs out when a batch holds more than ``limit`` points."""

    def __init__(self, model: nn.Module, limit: int, error: type[Exception] | str = torch.OutOfMemoryError) -> None:
        super().__init__()
        self.model, self.limit, self.error = model, limit, error
        self.batches: list[int] = []
        self.train(model.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(x.shape[0])
        if x.shape[0] > self.limit:
            if isinstance(self.error, str):
                raise RuntimeError(self.error)
            raise self.error(f"tried to allocate memory for {x.shape[0]} points")
        return self.model(x)


@pytest.fixture
def cnn(make_cnn):
    torch.manual_seed(0)
    return make_cnn(nn.Softplus).double().eval()


@pytest.fixture
def x():
    return torch.randn(3, 2, 6, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def _attribute(model, x, method, **options):
    return taylorlens.attribute(model, x, target=1, method=method, **options)


CASES = {
    "integrated_gradients": {"steps": 40},
    "occlusion": {"window": (2, 2, 2), "stride": (2, 1, 1)},
    "smoothgrad": {"inner": "integrated_gradients", "n_samples": 6, "steps": 5, "seed": 3},
}


@pytest.mark.parametrize("method", sorted(CASES))
def test_too_large_batch_size_is_halved_with_a_warning_and_gives_the_unlimited_attributions(cnn, x, method):
    expected = _attribute(cnn, x, method, **CASES[method])
    limited = OutOfMemoryAbove(cnn, limit=10)
    with pytest.warns(BatchSizeWarning, match="batch_size=64: a chunk of 64 points ran out of memory"):
        got = _attribute(limited, x, method, batch_size=64, **CASES[method])
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    assert max(size for size in limited.batches if size <= limited.limit) == 8  # 64 -> 32 -> 16 -> 8
    # the size that fitted is remembered: the next call starts there (one warning, no failed chunk)
    limited.batches.clear()
    with pytest.warns(BatchSizeWarning, match="using 8 points per pass"):
        again = _attribute(limited, x, method, batch_size=64, **CASES[method])
    torch.testing.assert_close(again, expected, rtol=1e-10, atol=1e-12)
    assert max(limited.batches) <= limited.limit


@pytest.mark.parametrize("method", sorted(CASES))
def test_measured_chunks_that_run_out_of_memory_give_the_unlimited_attributions(cnn, x, method):
    expected, info = taylorlens.attribute(cnn, x, target=1, method=method, return_info=True, **CASES[method])
    limited = OutOfMemoryAbove(cnn, limit=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BatchSizeWarning)
        got, limited_info = taylorlens.attribute(limited, x, target=1, method=method, return_info=True,
                                                 **CASES[method])
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    assert max(limited.batches) > limited.limit  # some chunk did run out of memory
    assert limited_info.points == info.points  # every point evaluated once: failed chunks are not counted
    assert limited_info.points_by_pass == info.points_by_pass


def test_deeplift_counts_the_references_of_kept_chunks_only(cnn):
    # The shared reference's forward (1 point) fits; a chunk of 16 points does not and is evaluated again.
    x = torch.randn(20, 2, 6, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    expected = taylorlens.attribute(cnn, x, target=1, method="deeplift")
    limited = OutOfMemoryAbove(cnn, limit=10)
    with pytest.warns(BatchSizeWarning):
        got, info = taylorlens.attribute(limited, x, target=1, method="deeplift", batch_size=16, return_info=True)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    kept = [size for size in limited.batches if 1 < size <= limited.limit]
    assert 16 in limited.batches and sum(kept) == 20  # a failed chunk of 16, then the 20 points in kept chunks
    assert info.points_by_pass == {"gradient": 20, "forward": len(kept)}  # one reference forward per kept chunk


@pytest.mark.parametrize("message", ["CUDA out of memory. Tried to allocate 2.00 GiB",
                                     "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate "
                                     "memory: you tried to allocate 8589934592 bytes."])
def test_allocator_messages_count_as_out_of_memory(cnn, x, message):
    expected = _attribute(cnn, x, "integrated_gradients", steps=20)
    limited = OutOfMemoryAbove(cnn, limit=7, error=message)
    with pytest.warns(BatchSizeWarning):
        got = _attribute(limited, x, "integrated_gradients", steps=20, batch_size=30)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_other_runtime_errors_are_not_retried(cnn, x):
    limited = OutOfMemoryAbove(cnn, limit=7, error="mat1 and mat2 shapes cannot be multiplied")
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        _attribute(limited, x, "integrated_gradients", steps=20, batch_size=30)
    assert limited.batches == [30]


def test_a_single_point_that_does_not_fit_raises(cnn, x):
    limited = OutOfMemoryAbove(cnn, limit=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BatchSizeWarning)
        with pytest.raises(torch.OutOfMemoryError):
            _attribute(limited, x, "integrated_gradients", steps=20, batch_size=4)


def test_several_targets_keep_whole_groups_when_halving(cnn, x):
    targets = torch.tensor([[0, 1], [2, 0], [1, 2]])
    expected = taylorlens.attribute(cnn, x, target=targets, method="integrated_gradients", steps=10)
    limited = OutOfMemoryAbove(cnn, limit=5)
    with pytest.warns(BatchSizeWarning):
        got = taylorlens.attribute(limited, x, target=targets, method="integrated_gradients", steps=10,
                                   batch_size=24)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("metric", ["sensitivity_n", "perturbation_curve"])
def test_metrics_survive_out_of_memory_with_the_unlimited_values(cnn, x, metric):
    attributions = _attribute(cnn, x, "gradient_x_input")
    options = {"seed": 0} if metric == "sensitivity_n" else {}
    expected = taylorlens.metrics.evaluate(metric, model=cnn, inputs=x, attributions=attributions, target=1,
                                           **options)
    limited = OutOfMemoryAbove(cnn, limit=6)
    with pytest.warns(BatchSizeWarning):
        got = taylorlens.metrics.evaluate(metric, model=limited, inputs=x, attributions=attributions, target=1,
                                          batch_size=50, **options)
    torch.testing.assert_close(got.value, expected.value, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got.curve, expected.curve, rtol=1e-10, atol=1e-12)
    assert max(limited.batches[-3:]) <= limited.limit


def test_the_ladder_stops_below_a_size_that_runs_out_of_memory():
    def model(x: torch.Tensor) -> torch.Tensor:
        return x

    sizes = []

    def run(size: int) -> None:
        sizes.append(size)
        if size > 20:
            raise torch.OutOfMemoryError("no room")

    chosen = chunking.chunk_size(model, torch.zeros(3), 10_000, "gradient", run)
    assert chosen <= 16 and max(sizes) == 32 and sizes.count(32) == 1


def test_the_ladder_halves_below_its_first_candidate_when_that_does_not_fit():
    def model(x: torch.Tensor) -> torch.Tensor:
        return x

    def run(size: int) -> None:
        if size > 3:
            raise torch.OutOfMemoryError("no room")

    assert chunking.chunk_size(model, torch.zeros(3), 10_000, "gradient", run) == 2


def test_the_ladder_keeps_chunks_within_the_memory_budget(cnn, monkeypatch):
    """Saved-tensor bytes per point are measured at the first size; no larger size than the budget allows
    is tried or chosen."""
    x = torch.randn(2, 2, 6, 6, dtype=torch.float64)
    with memory.chunk_bytes(cnn, x[0], "gradient", 2) as used:
        point = x.clone().requires_grad_(True)
        torch.autograd.grad(cnn(point)[:, 0].sum(), point)
    per_point = used.value / 2
    assert per_point > 2 * x[0].numel() * 8  # activations are counted, not only the points
    monkeypatch.setattr(memory, "MEMORY_BUDGET", int(20 * per_point))
    model = OutOfMemoryAbove(cnn, limit=10_000)
    taylorlens.attribute(model, x, target=1, method="integrated_gradients", steps=2000)
    assert max(model.batches) <= 20 and max(model.batches) >= 8


def test_model_parameters_are_not_counted_as_chunk_memory():
    big = nn.Linear(1000, 1000)
    x = torch.randn(1, 1000, requires_grad=True)
    with memory.chunk_bytes(big, x[0], "gradient", 1) as used:
        big(x).sum().backward()
    assert used.value < 1000 * 1000 * 4 / 10  # the weight matrix (4 MB) is saved but not counted


def test_out_of_memory_is_recognised():
    assert memory.is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert memory.is_out_of_memory(MemoryError())
    assert memory.is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to"))
    assert not memory.is_out_of_memory(RuntimeError("expected scalar type Float"))
    assert not memory.is_out_of_memory(ValueError("out of memory"))
