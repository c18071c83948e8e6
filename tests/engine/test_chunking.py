"""Chunk sizes: the user's batch_size wins; small jobs go in one pass; others are measured once."""

from __future__ import annotations

import pytest
import torch

from taylorlens import AttributionInputError
from taylorlens.engine import chunking


def model(x: torch.Tensor) -> torch.Tensor:
    return x


def test_requested_batch_size_wins_and_is_capped_by_the_job():
    example = torch.zeros(3)
    assert chunking.chunk_size(model, example, 100, "forward", lambda size: None, requested=7) == 7
    assert chunking.chunk_size(model, example, 5, "forward", lambda size: None, requested=7) == 5


@pytest.mark.parametrize("requested", [0, -1, 2.5, True])
def test_bad_batch_size_is_rejected(requested):
    with pytest.raises(AttributionInputError, match="batch_size must be an integer >= 1"):
        chunking.chunk_size(model, torch.zeros(3), 100, "forward", lambda size: None, requested=requested)


def test_small_jobs_go_in_one_pass_without_measuring():
    runs = []
    assert chunking.chunk_size(model, torch.zeros(3), chunking.SMALL_JOB, "k", runs.append) == chunking.SMALL_JOB
    assert runs == []


def test_large_jobs_are_measured_once_per_shape_and_kind():
    runs = []

    def fresh_model(x: torch.Tensor) -> torch.Tensor:
        return x

    size = chunking.chunk_size(fresh_model, torch.zeros(3), 1000, "gradient", runs.append)
    ladder = chunking._store_for(fresh_model)[((3,), torch.float32, "cpu", 1, "gradient")]
    way, measured = ladder.choice()
    assert ladder.finished and way == "" and measured in chunking.CANDIDATES and runs
    # the measured size is evened out over the job: as many chunks as the measured size needs, equal in size
    assert size <= measured and -(-1000 // size) == -(-1000 // measured)
    count = len(runs)
    assert chunking.chunk_size(fresh_model, torch.zeros(3), 1000, "gradient", runs.append) == size
    assert len(runs) == count
    chunking.chunk_size(fresh_model, torch.zeros(3), 1000, "forward", runs.append)
    assert len(runs) > count


def test_big_points_are_capped_by_memory():
    example = torch.zeros(chunking.MAX_CHUNK_BYTES // 4 // 8 + 1, dtype=torch.float32)  # just over 1/8 of the cap
    runs = []
    size = chunking.chunk_size(model, example, 1000, "forward", runs.append)
    assert size * example.numel() * 4 <= chunking.MAX_CHUNK_BYTES
    assert max(runs) * example.numel() * 4 <= chunking.MAX_CHUNK_BYTES


def test_few_big_points_are_measured_with_small_candidates_too():
    # 64 points of 3x224x224 are 38 MB: not a small job; such points also try chunks of 2 and 4.
    example = torch.zeros(3, 224, 224)
    runs = []

    def fresh_model(x: torch.Tensor) -> torch.Tensor:
        return x

    size = chunking.chunk_size(fresh_model, example, chunking.SMALL_JOB, "forward", runs.append)
    assert runs and runs[0] == chunking.LARGE_POINT_CANDIDATES[0] and size <= chunking.SMALL_JOB
    # A handful of them (under SMALL_JOB_BYTES) still goes in one pass.
    runs.clear()
    assert chunking.chunk_size(fresh_model, example, 4, "gradient", runs.append) == 4 and runs == []


def test_grouped_jobs_are_measured_in_whole_groups():
    # 16 points x 32 targets: every measured and returned size holds whole groups of 32 (one input's targets)
    runs = []

    def fresh_model(x: torch.Tensor) -> torch.Tensor:
        return x

    size = chunking.chunk_size(fresh_model, torch.zeros(3), 16 * 32, "gradient", runs.append, group=32)
    assert runs and all(run % 32 == 0 for run in runs) and runs[0] == 32
    assert size % 32 == 0 and (16 * 32) % size == 0


def test_plan_keeps_the_cheaper_way():
    def fresh_model(x: torch.Tensor) -> torch.Tensor:
        return x

    def dear(size: int) -> None:
        sum(range(20000 * size))

    def cheap(size: int) -> None:
        sum(range(2000 * size))

    way, size = chunking.plan(fresh_model, torch.zeros(3), 1000, "gradient", {"dear": dear, "cheap": cheap})
    assert way == "cheap"
    # without measuring (a requested size, a small job) the first way is used
    assert chunking.plan(fresh_model, torch.zeros(3), 1000, "g", {"dear": dear, "cheap": cheap}, requested=5) == (
        "dear", 5)
    assert chunking.plan(fresh_model, torch.zeros(3), 8, "g", {"dear": dear, "cheap": cheap}) == ("dear", 8)


def test_a_ladder_cut_short_by_the_budget_is_resumed_by_the_next_job(monkeypatch):
    # every point "takes" 1 ms; a job may spend 40 ms measuring: sizes 8 (2 x 8 ms) and 16 (2 x 16 ms) do not
    # fit in one job, so the second job measures 16
    monkeypatch.setattr(chunking, "_timed", lambda example, run, size: size * 1e-3)
    monkeypatch.setattr(chunking, "MIN_MEASURE_SECONDS", 0.04)
    monkeypatch.setattr(chunking, "MEASURE_SHARE", 0.0)
    runs = []

    def fresh_model(x: torch.Tensor) -> torch.Tensor:
        return x

    chunking.chunk_size(fresh_model, torch.zeros(3), 1000, "gradient", runs.append)
    ladder = chunking._store_for(fresh_model)[((3,), torch.float32, "cpu", 1, "gradient")]
    assert ladder.measured == 1 and not ladder.finished
    chunking.chunk_size(fresh_model, torch.zeros(3), 1000, "gradient", runs.append)
    assert ladder.measured == 2


def test_a_way_that_gets_dearer_and_is_beaten_is_not_measured_at_larger_sizes(monkeypatch):
    monkeypatch.setattr(chunking, "_timed", lambda example, run, size: run(size))
    ways = {"rising": lambda size: size * 1e-6 * (1 + size / 8), "flat": lambda size: size * 1e-6}

    def fresh_model(x: torch.Tensor) -> torch.Tensor:
        return x

    assert chunking.plan(fresh_model, torch.zeros(3), 1000, "gradient", ways)[0] == "flat"
    ladder = chunking._store_for(fresh_model)[((3,), torch.float32, "cpu", 1, "gradient")]
    assert ladder.dropped == {"rising"}
    assert ("rising", 16) in ladder.costs and ("rising", 32) not in ladder.costs and ("flat", 32) in ladder.costs
