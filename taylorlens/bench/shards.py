"""Work units of a benchmark: one shard = one model x one method entry x one fixed batch of samples.

Batches are fixed by the config (samples ``[b * batch_size, (b + 1) * batch_size)``) and seeded by their
index, so a shard's numbers never depend on which other shards ran before, were resumed, or ran on another
worker. :func:`compute_shard` is a pure function of its inputs: the local engine calls it in-process and a
distributed engine can call it anywhere.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from taylorlens.bench.config import BenchConfig, Entry
from taylorlens.bench.data import reference_samples
from taylorlens.bench.measures import measure
from taylorlens.bench.store import ResultRow
from taylorlens.engine.pass_clock import pass_seconds
from taylorlens.methods import attribute as attribute_with
from taylorlens.methods import method_class


@dataclass(frozen=True)
class Shard:
    model: str
    method: Entry
    batch: int
    samples: tuple[int, ...]

    def method_key(self, config: BenchConfig) -> str:
        return self.method.key(self.model, config.data_context(), config.seed)


@dataclass
class ShardResult:
    shard: Shard
    method_key: str
    timings: dict[int, tuple[float, float]]
    rows: list[ResultRow]
    maps: dict[int, np.ndarray]
    seconds: float
    pass_seconds: float


def metric_key(metric: Entry, method_key: str) -> str:
    return metric.key(method_key)


def method_options(config: BenchConfig, method: Entry, batch: int) -> dict[str, Any]:
    """The entry's options, with the batch's seed for stochastic methods that were given none, and named
    reference samples (``references = "train:N"``) loaded."""
    options = dict(method.options)
    if isinstance(options.get("references"), str):
        options["references"] = reference_samples(config.dataset, options["references"], config.device)
    if "seed" in method_class(method.name).accepted() and "seed" not in options:
        options["seed"] = config.seed + batch
    return options


def word_scores(method: Entry, maps: Tensor) -> Tensor:
    """One score per word ``(B, T)`` from attributions of the embedding output ``(B, T, D)``.

    Ancona et al. (ICLR 2018), App. C.4: a word's attribution is the sum over its embedding components.
    Occlusion over whole words (``window = [1, D]``) puts the word's output drop on each of its D components,
    so its score is their mean, the drop ``f(x) - f(x with the word's embedding = 0)`` (Occlusion-1, Sec. 2).
    """
    window = method.options.get("window", 1)
    whole_words = method.name == "occlusion" and isinstance(window, list | tuple) and window[-1] == maps.shape[-1]
    return maps.mean(-1) if whole_words else maps.sum(-1)


def compute_shard(
    config: BenchConfig, shard: Shard, model: nn.Module, inputs: Tensor, targets: Tensor,
    boxes: Tensor | None = None,
) -> ShardResult:
    """Attributions of one batch and every metric on them (nothing is written here). ``boxes``: the data
    set's object masks, for the localization metrics."""
    index = torch.as_tensor(shard.samples, device=inputs.device)
    x, target = inputs[index], targets[index]
    batch_boxes = None if boxes is None else boxes[index]
    method_key = shard.method_key(config)
    start = time.perf_counter()
    model_options = config.model_options()
    with pass_seconds() as elapsed:
        options = method_options(config, shard.method, shard.batch)
        maps = attribute_with(model, x, target, shard.method.name, **options, **model_options)
        attribution_seconds = time.perf_counter() - start
        attribution_pass_seconds = elapsed()
        rows = []
        for metric in config.metrics:
            values, curves = measure(metric, model, x, maps, target, seed=config.seed + shard.batch,
                                     method=shard.method.name, method_options=options, boxes=batch_boxes,
                                     model_options=model_options)
            rows += [
                ResultRow(shard.model, method_key, metric_key(metric, method_key), metric.name, metric.label,
                          sample, value, curve)
                for sample, value, curve in zip(shard.samples, values, curves, strict=True)
            ]
        total_pass = elapsed()
    per_sample = attribution_seconds / len(shard.samples)
    per_sample_pass = attribution_pass_seconds / len(shard.samples)
    shown = word_scores(shard.method, maps) if config.is_text else maps
    gallery = {s: shown[i].detach().cpu().numpy() for i, s in enumerate(shard.samples) if s < config.gallery}
    return ShardResult(
        shard, method_key, {s: (per_sample, per_sample_pass) for s in shard.samples}, rows, gallery,
        time.perf_counter() - start, total_pass,
    )
