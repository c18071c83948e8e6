"""The local engine: every shard in the runner's own process, one after another."""

from __future__ import annotations

from collections.abc import Iterator

from taylorlens.bench.config import BenchConfig
from taylorlens.bench.engines.worker import ShardWorker
from taylorlens.bench.shards import Shard, ShardResult


class LocalEngine:
    description = "local (in-process)"

    def results(self, config: BenchConfig, shards: list[Shard]) -> Iterator[ShardResult]:
        worker = ShardWorker(config)
        for shard in shards:
            yield worker.compute(shard)

    def close(self) -> None:
        """Nothing to release: the worker and its model go with the generator."""
