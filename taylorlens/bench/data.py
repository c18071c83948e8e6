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
    boxes: Tensor | None = None  # (N, H, W) bool object masks, for bbox_accuracy / attribution_in_box
    words: list[list[str]] | None = None  # text: the words of every sample, padding dropped (one per position)

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
    if dataset in ("photos", "imagenet", "boxes"):
        raise ConfigError("references 'train:N' needs a data set with a training split (digits, mnist, fashion_mnist)")
    x, _ = zoo.dataset(dataset, split="train")
    return x[: int(count)].to(device)


def load_data(config: BenchConfig) -> BenchData:
    """The first ``config.samples`` samples of the configured data set, on the configured device."""
    if config.dataset == "photos":
        photos = list(zoo.photos().values())[: config.samples]
        x = torch.stack([p.tensor for p in photos])
        return BenchData(x.to(config.device), torch.full((len(photos),), -1), [p.name for p in photos])
    if config.dataset == "imagenet":  # 20 labelled images, then the 6 photos (label -1: use target "predicted")
        samples = list(zoo.imagenet_samples(**config.data_options).values())[: config.samples]
        x = torch.stack([s.tensor for s in samples])
        y = torch.tensor([-1 if s.label is None else s.label for s in samples])
        return BenchData(x.to(config.device), y.to(config.device), [s.name for s in samples])
    if config.dataset == "boxes":
        boxed = zoo.dataset("boxes", split=config.split, samples=config.samples, **config.data_options)
        if len(boxed.y) < config.samples:
            raise ConfigError(f"data.samples={config.samples} but only {len(boxed.y)} boxes images are left "
                              f"(after keep_classified_by); set data.samples <= {len(boxed.y)}")
        return BenchData(boxed.x.to(config.device), boxed.y.to(config.device), boxed.names,
                         boxed.masks.to(config.device))  # fmt: skip
    if config.dataset == "imdb":
        return _imdb(config)
    x, y = zoo.dataset(config.dataset, split=config.split)
    if config.samples > x.shape[0]:
        raise ConfigError(f"data.samples={config.samples} but {config.dataset} {config.split} has {x.shape[0]}")
    x, y = x[: config.samples], y[: config.samples]
    return BenchData(x.to(config.device), y.to(config.device), [f"label {int(v)}" for v in y])


def _imdb(config: BenchConfig) -> BenchData:
    """The first reviews of the split (label 1 = positive), or with ``context = k`` the IG paper's language-model
    samples (Sundararajan et al. 2017, Sec. 3.2): ``samples`` random sections of ``k`` consecutive words of
    the split's reviews (review and start drawn with the config's seed), the word that follows as label."""
    ids, labels = zoo.dataset("imdb", split=config.split)
    vocabulary = zoo.imdb_vocabulary()
    context = config.data_options.get("context")
    if context is None:
        if config.samples > ids.shape[0]:
            raise ConfigError(f"data.samples={config.samples} but imdb {config.split} has {ids.shape[0]} reviews")
        x, y = ids[: config.samples], labels[: config.samples]
        names = ["positive" if int(v) == 1 else "negative" for v in y]
    else:
        x, y = _sections(ids, context, config.samples, config.seed)
        names = [f"next word: {vocabulary[int(v)]}" for v in y]
    words = [[vocabulary[i] for i in row.tolist() if i != 0] for row in x]
    return BenchData(x.to(config.device), y.to(config.device), names, words=words)


def _sections(ids: Tensor, context: int, count: int, seed: int) -> tuple[Tensor, Tensor]:
    """``count`` sections ``(count, context)`` of consecutive non-padding ids and the id after each."""
    lengths = (ids != 0).sum(1)
    long_enough = torch.nonzero(lengths > context).flatten()
    if len(long_enough) < count:
        raise ConfigError(f"data.samples={count} but only {len(long_enough)} reviews have more than {context} words")
    generator = torch.Generator().manual_seed(seed)
    rows = long_enough[torch.randperm(len(long_enough), generator=generator)[:count]]
    sections, following = [], []
    for row in rows.tolist():
        words = ids[row, ids.shape[1] - int(lengths[row]):]  # reviews are padded in front
        start = int(torch.randint(len(words) - context, (1,), generator=generator))
        sections.append(words[start : start + context])
        following.append(words[start + context])
    return torch.stack(sections), torch.stack(following)
