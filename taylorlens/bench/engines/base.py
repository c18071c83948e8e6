"""What an execution engine is: something that turns shards into results, in any order, and never writes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from taylorlens.bench.config import BenchConfig
from taylorlens.bench.shards import Shard, ShardResult


class EngineError(RuntimeError):
    """An engine that cannot run here (not installed, cluster unreachable); the message says what to do."""


class Engine(Protocol):
    @property
    def description(self) -> str:
        """One line for the run's log and the store's environment, e.g. "ray (2 workers)"."""
        ...

    def results(self, config: BenchConfig, shards: list[Shard]) -> Iterator[ShardResult]:
        """The result of every shard, each once, as soon as it is computed (in any order)."""
        ...

    def close(self) -> None:
        """Release workers and connections; the engine is not used afterwards."""
        ...
