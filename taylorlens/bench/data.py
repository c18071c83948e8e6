"""The samples and targets a benchmark explains, loaded from the zoo's offline data."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from taylorlens import zoo
from taylorlens.bench.config import BenchConfig, ConfigError


@dataclass(frozen=True)
class BenchData:
    inputs: Tensor
    labels: Tensor
    names: list[str]

    def targets(self, config: BenchConfig, model: nn.Module) -> Tensor:
        """The explained class per sample: the true label or the model's prediction."""
        if config.target == "label":
            return self.labels
        with torch.inference_mode():
            return torch.cat([model(chunk).argmax(1) for chunk in self.inputs.split(64)])


def load_data(config: BenchConfig) -> BenchData:
    """The first ``config.samples`` samples of the configured data set, on the configured device."""
    if config.dataset == "photos":
        photos = list(zoo.photos().values())[: config.samples]
        x = torch.stack([p.tensor for p in photos])
        return BenchData(x.to(config.device), torch.full((len(photos),), -1), [p.name for p in photos])
    x, y = zoo.dataset(config.dataset, split=config.split)
    if config.samples > x.shape[0]:
        raise ConfigError(f"data.samples={config.samples} but {config.dataset} {config.split} has {x.shape[0]}")
    x, y = x[: config.samples], y[: config.samples]
    return BenchData(x.to(config.device), y.to(config.device), [f"label {int(v)}" for v in y])
