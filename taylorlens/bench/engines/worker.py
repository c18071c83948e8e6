"""The code that computes shards, identical in every engine: in the runner's process or inside a Ray actor."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from taylorlens import zoo
from taylorlens.bench.config import BenchConfig
from taylorlens.bench.data import BenchData, load_data
from taylorlens.bench.shards import Shard, ShardResult, compute_shard


class ShardWorker:
    """Computes the shards of one config, loading the data once and each model once by its zoo name.

    Only the most recent model is kept (with its targets), so a worker holds one model at a time; shards come
    model by model, so each model is loaded once per worker. ``threads`` sets torch's intra-op threads
    (a Ray worker gets as many as the CPUs it reserved).
    """

    def __init__(self, config: BenchConfig, threads: int | None = None) -> None:
        if threads is not None:
            torch.set_num_threads(threads)
        self.config = config
        self._data: BenchData | None = None
        self._model: tuple[str, nn.Module, Tensor] | None = None

    def compute(self, shard: Shard) -> ShardResult:
        model, targets = self._loaded(shard.model)
        return compute_shard(self.config, shard, model, self.data.inputs, targets, self.data.boxes)

    @property
    def data(self) -> BenchData:
        if self._data is None:
            self._data = load_data(self.config)
        return self._data

    def _loaded(self, name: str) -> tuple[nn.Module, Tensor]:
        if self._model is None or self._model[0] != name:
            self._model = None  # free the previous model before loading the next
            model = zoo.load(name, device=self.config.device)
            self._model = (name, model, self.data.targets(self.config, model))
        return self._model[1], self._model[2]
