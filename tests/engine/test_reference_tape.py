"""DeepLIFT's references: recorded in a forward pass of their own, replayed at the points' rule sites."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import taylorlens
from taylorlens import UnsupportedModelError
from taylorlens.engine import passes
from taylorlens.engine.reference_tape import ReferenceMismatch, ReferenceTape


class FlatTanh(nn.Module):
    """Folds the batch into the feature dimension around its nonlinearity: one reference does not broadcast."""

    def __init__(self) -> None:
        super().__init__()
        self.linear, self.out = nn.Linear(4, 4).double(), nn.Linear(4, 2).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear(x)
        return self.out(torch.tanh(h.reshape(-1)).reshape(h.shape))


class BranchOnSign(nn.Module):
    """Input-dependent control flow: the references take another path than the points."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x).sum(1) if bool(x.sum() > 0) else torch.sigmoid(torch.tanh(x)).sum(1)


def loop_deeplift(model: nn.Module, x: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
    """DeepLIFT of each sample alone, with its own reference: nothing shared or broadcast."""
    return torch.cat([taylorlens.attribute(model, x[i : i + 1], 0, "deeplift", baseline=baseline[i : i + 1])
                      for i in range(x.shape[0])])


def test_a_model_that_folds_the_batch_falls_back_to_one_reference_per_point():
    torch.manual_seed(0)
    model, x = FlatTanh().eval(), torch.randn(3, 4, dtype=torch.float64)
    passes._UNSHARED.discard(model)
    maps = taylorlens.attribute(model, x, 0, "deeplift")
    assert model in passes._UNSHARED  # the shared reference's values did not broadcast, and it is remembered
    torch.testing.assert_close(maps, loop_deeplift(model, x, torch.zeros_like(x)), rtol=1e-12, atol=1e-12)
    with torch.no_grad():
        delta = model(x)[:, 0] - model(torch.zeros_like(x))[:, 0]
    torch.testing.assert_close(maps.sum(1), delta, rtol=1e-10, atol=1e-12)


def test_references_on_another_path_than_the_points_are_refused():
    x = torch.ones(2, 3, dtype=torch.float64)
    with pytest.raises(UnsupportedModelError, match="different path for the references"):
        taylorlens.attribute(BranchOnSign(), x, None, "deeplift", baseline=-x)


def test_the_tape_checks_kind_shape_and_length():
    tape = ReferenceTape()
    tape.record("elementwise", torch.zeros(1, 3), torch.zeros(1, 3))
    tape.start_replay()
    with pytest.raises(ReferenceMismatch, match="is a product for the points and a elementwise"):
        tape.replay("product", torch.zeros(4, 3))
    tape.start_replay()
    with pytest.raises(ReferenceMismatch, match=r"shape \(4, 5\) and the references' \(1, 3\)"):
        tape.replay("elementwise", torch.zeros(4, 5))
    tape.start_replay()
    z_ref, _ = tape.replay("elementwise", torch.zeros(4, 3))
    assert z_ref.shape == (1, 3)
    tape.finish()
    with pytest.raises(ReferenceMismatch, match="after the 1 sites"):
        tape.replay("elementwise", torch.zeros(4, 3))
    tape.start_replay()
    with pytest.raises(ReferenceMismatch, match="met 0 of the references' 1 sites"):
        tape.finish()


def test_a_model_that_cannot_be_weakly_referenced_still_gets_its_references():
    x = torch.rand(3, 4, dtype=torch.float64)  # torch.tanh is a builtin: no weak reference to remember it by
    maps = taylorlens.attribute(torch.tanh, x, None, "deeplift", output=lambda out: out.sum(1))
    torch.testing.assert_close(maps, torch.tanh(x), rtol=1e-12, atol=1e-12)  # tanh(0) = 0, elementwise


def test_a_model_in_training_mode_gets_one_reference_per_point():
    # Batch norm in training mode cannot normalise a batch of one shared reference; the model warns anyway.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 2)).double().train()
    x = torch.randn(5, 4, dtype=torch.float64)
    with pytest.warns(UserWarning, match="training mode"):
        maps = taylorlens.attribute(model, x, 0, "deeplift")
    assert maps.shape == x.shape and bool(torch.isfinite(maps).all())
