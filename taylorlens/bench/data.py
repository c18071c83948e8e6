"""The samples and targets a benchmark explains, loaded from the zoo's offline data."""

from __future__ import annotations

import functools
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


@functools.lru_cache(maxsize=4)
def reference_samples(dataset: str, spec: str, device: str) -> Tensor:
    """Reference samples named in a config, e.g. Expected Gradients' ``references = "train:200"``: the first
    200 samples of the data set's training split (a fixed choice, so the method's key stays meaningful)."""
    split, _, count = spec.partition(":")
    if split != "train" or not count.isdigit() or int(count) < 1:
        raise ConfigError(f"references must be 'train:N' (the first N training samples), got {spec!r}")
    if dataset == "photos":
        raise ConfigError("references 'train:N' needs a data set with a training split (digits, fashion_mnist)")
    x, _ = zoo.dataset(dataset, split="train")
    return x[: int(count)].to(device)


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
