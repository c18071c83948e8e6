"""Deterministic training of the zoo's classifiers on the shipped data.

Ancona et al. (ICLR 2018, App. C.1) train with Adadelta and early stopping. We train with Adam for a fixed,
per-model number of epochs (``TrainingRecipe``) so that every digit model trains in seconds on 2 CPU cores
and the same seed gives the same weights on the same machine: the model is initialised and the batches are
shuffled from ``seed`` inside ``torch.random.fork_rng``, leaving the caller's random state untouched.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

EVALUATION_BATCH_SIZE = 1000


@dataclass(frozen=True)
class TrainingRecipe:
    """Adam with a fixed learning rate for ``epochs`` passes over the first ``max_train_samples`` rows.

    ``threads`` caps torch's intra-op threads while training (None: leave torch's setting). One thread is
    about as fast for the 8x8 models, does not collapse when the CPU is shared, and makes the weights
    independent of the machine's core count. ``shuffled_labels``: fit a seeded permutation of the training
    labels instead (:func:`shuffled_labels`), the model of Adebayo et al.'s data randomization test.
    """

    epochs: int
    learning_rate: float = 1e-3
    batch_size: int = 64
    max_train_samples: int | None = None
    threads: int | None = 1
    shuffled_labels: bool = False


@dataclass(frozen=True)
class TrainingResult:
    model: nn.Module
    test_accuracy: float
    train_samples: int
    seconds: float
    train_accuracy: float | None = None


def train_classifier(
    build: Callable[[], nn.Module],
    train_data: tuple[torch.Tensor, torch.Tensor],
    test_data: tuple[torch.Tensor, torch.Tensor],
    recipe: TrainingRecipe,
    seed: int = 0,
) -> TrainingResult:
    """Build a model from ``seed``, fit it with cross-entropy following ``recipe``; return it in eval mode.

    With ``recipe.shuffled_labels`` the model fits :func:`shuffled_labels` and ``train_accuracy`` is measured
    on those (how much it memorised); its test accuracy is near chance."""
    start = time.perf_counter()
    x, y = train_data
    if recipe.max_train_samples is not None:
        x, y = x[: recipe.max_train_samples], y[: recipe.max_train_samples]
    if recipe.shuffled_labels:
        y = shuffled_labels(y, seed)
    previous_threads = torch.get_num_threads()
    with torch.random.fork_rng():
        torch.set_num_threads(recipe.threads or previous_threads)
        torch.manual_seed(seed)
        model = build()
        order_generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=recipe.learning_rate)
        loss_function = nn.CrossEntropyLoss()
        model.train()
        try:
            for _ in range(recipe.epochs):
                for batch in torch.randperm(len(x), generator=order_generator).split(recipe.batch_size):
                    optimizer.zero_grad()
                    loss_function(model(x[batch]), y[batch]).backward()
                    optimizer.step()
        finally:
            torch.set_num_threads(previous_threads)
    model.eval()
    accuracy = test_accuracy(model, *test_data)
    fitted = test_accuracy(model, x, y) if recipe.shuffled_labels else None
    return TrainingResult(model, accuracy, len(x), time.perf_counter() - start, fitted)


def shuffled_labels(labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The labels in a random order drawn from ``seed`` (Adebayo et al. 2018, Sec. 3.2: the same inputs and
    label counts, no relation between input and label left to learn)."""
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))]


@torch.no_grad()
def test_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of rows of ``x`` whose arg-max logit equals ``y``."""
    correct = sum(
        int((model(xb).argmax(dim=1) == yb).sum())
        for xb, yb in zip(x.split(EVALUATION_BATCH_SIZE), y.split(EVALUATION_BATCH_SIZE), strict=True)
    )
    return correct / len(y)
