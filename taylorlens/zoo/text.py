"""The papers' text models on IMDB token ids, and how they are trained.

- Ancona et al., "Towards better understanding of gradient-based attribution methods for DNNs" (ICLR 2018),
  App. C.4: ``ImdbMLP`` (embedding -> Dense-ReLU -> logits) and ``ImdbLSTM`` (embedding -> LSTM -> logits).
- Sundararajan, Taly, Yan, "Gradients of Counterfactuals" (2017), Sec. 3.2: ``ImdbLanguageModel``, a
  word-level LSTM language model in the spirit of Zaremba et al.'s small configuration (smaller here).

Every model takes int64 token ids and exposes its embedding layer as the submodule ``embed`` (an
``nn.Embedding`` with ``padding_idx=0``, so padding embeds to zero) and ``classify_embeddings(e)`` with
``classify_embeddings(embed(ids)) == forward(ids)``. Attribution per word is taken at ``embed``'s output and
summed over the embedding components; a word's "absence" (Occlusion-1, the IG baseline) is a zero
embedding, which is also what padding embeds to.

Embeddings start uniform in [-0.05, 0.05] (Keras' default, which the paper's models used; PyTorch's
N(0, 1) default makes the 16,000-input dense layer of ``ImdbMLP`` train several times slower).

The classifiers give two logits (negative, positive) where the paper has one sigmoid unit: the logit
difference plays the role of the paper's single pre-sigmoid output.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from taylorlens.zoo.imdb import MAX_LENGTH, VOCABULARY_SIZE
from taylorlens.zoo.training import TrainingResult, test_accuracy

EMBEDDING_INIT_RANGE = 0.05


def word_embedding(vocab_size: int, embedding_dim: int) -> nn.Embedding:
    """``nn.Embedding`` with id 0 (padding) fixed at zero and the rest uniform in +-``EMBEDDING_INIT_RANGE``."""
    embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
    with torch.no_grad():
        embedding.weight.uniform_(-EMBEDDING_INIT_RANGE, EMBEDDING_INIT_RANGE)
        embedding.weight[0].zero_()
    return embedding


class ImdbMLP(nn.Module):
    """Ancona et al. App. C.4 IMDB "shallow MLP": embedding of the 5,000 most frequent words of reviews cut or
    padded to 500 tokens, one ReLU hidden layer, 2 sentiment logits. The paper gives no widths; ours are
    32 (embedding) and 250 (hidden), as in the Keras IMDB example.
    """

    def __init__(
        self,
        vocab_size: int = VOCABULARY_SIZE,
        max_length: int = MAX_LENGTH,
        embedding_dim: int = 32,
        hidden: int = 250,
    ):
        super().__init__()
        self.embed = word_embedding(vocab_size, embedding_dim)
        self.flatten = nn.Flatten()
        self.dense = nn.Linear(max_length * embedding_dim, hidden)
        self.activation = nn.ReLU()
        self.logits = nn.Linear(hidden, 2)

    def classify_embeddings(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 2)`` from embeddings ``(N, max_length, embedding_dim)``."""
        return self.logits(self.activation(self.dense(self.flatten(embeddings))))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.classify_embeddings(self.embed(tokens))


class ImdbLSTM(nn.Module):
    """Ancona et al. App. C.4 IMDB LSTM: embedding (5,000 words, width 32), one LSTM layer of 64 units, 2
    sentiment logits from the hidden state after the last token (reviews are padded in front).
    """

    def __init__(self, vocab_size: int = VOCABULARY_SIZE, embedding_dim: int = 32, hidden: int = 64):
        super().__init__()
        self.embed = word_embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden, batch_first=True)
        self.logits = nn.Linear(hidden, 2)

    def classify_embeddings(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 2)`` from embeddings ``(N, T, embedding_dim)`` of any length ``T``."""
        outputs, _ = self.lstm(embeddings)
        return self.logits(outputs[:, -1])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.classify_embeddings(self.embed(tokens))


class ImdbLanguageModel(nn.Module):
    """Sundararajan et al. Sec. 3.2 word-level LSTM language model: embedding (5,000 IMDB words, width 128),
    two LSTM layers of 200 units (Zaremba et al.'s small model has 2 x 200 on a 10,000-word vocabulary),
    dropout 0.2 between layers while training, and a linear decoder to next-word logits.

    ``forward(context)`` gives the next-word logits ``(N, vocab)`` after the context ``(N, T)``;
    ``sequence_logits(ids)`` gives them after every position ``(N, T, vocab)`` (used for training and
    perplexity).
    """

    def __init__(
        self, vocab_size: int = VOCABULARY_SIZE, embedding_dim: int = 128, hidden: int = 200, dropout: float = 0.2
    ):
        super().__init__()
        self.embed = word_embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden, num_layers=2, batch_first=True, dropout=dropout)
        self.dropout = nn.Dropout(dropout)
        self.decoder = nn.Linear(hidden, vocab_size)

    def sequence_embeddings(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Next-word logits ``(N, T, vocab)`` after every position of embeddings ``(N, T, embedding_dim)``."""
        outputs, _ = self.lstm(self.dropout(embeddings))
        return self.decoder(self.dropout(outputs))

    def sequence_logits(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.sequence_embeddings(self.embed(tokens))

    def classify_embeddings(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Next-word logits ``(N, vocab)`` after the last of the embeddings ``(N, T, embedding_dim)``."""
        return self.sequence_embeddings(embeddings)[:, -1]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.classify_embeddings(self.embed(tokens))


@dataclass(frozen=True)
class TextClassifierRecipe:
    """Adam for at most ``epochs`` passes with early stopping (Ancona et al. App. C.4).

    ``validation_fraction`` of the training rows (chosen with the seed) are held out; after each epoch the
    weights with the best validation accuracy so far are kept, and training stops after ``patience`` epochs
    without improvement. ``gradient_clip`` (None: off) caps the gradient norm of each step (LSTMs on
    500-token reviews otherwise take occasional exploding steps). ``threads`` caps torch's intra-op threads
    while training.
    """

    epochs: int
    learning_rate: float = 1e-3
    batch_size: int = 64
    validation_fraction: float = 0.1
    patience: int = 1
    gradient_clip: float | None = None
    max_train_samples: int | None = None
    threads: int | None = 1


@dataclass(frozen=True)
class LanguageModelRecipe:
    """Adam on consecutive ``steps``-token windows of the concatenated training reviews (truncated BPTT with
    the state carried across windows), ``epochs`` passes over the first ``train_tokens`` tokens in
    ``batch_size`` parallel streams, gradient norm clipped at ``gradient_clip``; perplexity on the first
    ``test_tokens`` tokens of the test reviews.
    """

    epochs: int
    train_tokens: int
    test_tokens: int
    steps: int = 35
    batch_size: int = 32
    learning_rate: float = 2e-3
    gradient_clip: float = 5.0
    threads: int | None = 1


def train_text_classifier(
    build: type[nn.Module],
    train_data: tuple[torch.Tensor, torch.Tensor],
    test_data: tuple[torch.Tensor, torch.Tensor],
    recipe: TextClassifierRecipe,
    seed: int = 0,
) -> tuple[TrainingResult, dict]:
    """Fit ``build()`` with cross-entropy and early stopping; the result and extra record fields."""
    start = time.perf_counter()
    x, y = train_data
    if recipe.max_train_samples is not None:
        x, y = x[: recipe.max_train_samples], y[: recipe.max_train_samples]
    previous_threads = torch.get_num_threads()
    with torch.random.fork_rng():
        torch.set_num_threads(recipe.threads or previous_threads)
        try:
            torch.manual_seed(seed)
            model = build()
            generator = torch.Generator().manual_seed(seed)
            rows = torch.randperm(len(x), generator=generator)
            n_validation = int(len(x) * recipe.validation_fraction)
            validation, train = rows[:n_validation], rows[n_validation:]
            optimizer = torch.optim.Adam(model.parameters(), lr=recipe.learning_rate)
            best = (-1.0, None, 0)
            for epoch in range(recipe.epochs):
                model.train()
                for batch in train[torch.randperm(len(train), generator=generator)].split(recipe.batch_size):
                    optimizer.zero_grad()
                    nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
                    if recipe.gradient_clip is not None:
                        nn.utils.clip_grad_norm_(model.parameters(), recipe.gradient_clip)
                    optimizer.step()
                model.eval()
                score = test_accuracy(model, x[validation], y[validation])
                if score > best[0]:
                    best = (score, {k: v.clone() for k, v in model.state_dict().items()}, epoch + 1)
                elif epoch + 1 - best[2] >= recipe.patience:
                    break
            model.load_state_dict(best[1])
            model.eval()
            accuracy = test_accuracy(model, *test_data)
        finally:
            torch.set_num_threads(previous_threads)
    extra = {"validation_accuracy": best[0], "best_epoch": best[2], "epochs_run": epoch + 1}
    return TrainingResult(model, accuracy, len(train), time.perf_counter() - start), extra


def token_stream(ids: torch.Tensor) -> torch.Tensor:
    """The non-padding ids of all rows, concatenated in row order (the corpus a language model reads)."""
    return ids[ids != 0]


def train_language_model(
    build: type[nn.Module],
    train_ids: torch.Tensor,
    test_ids: torch.Tensor,
    recipe: LanguageModelRecipe,
    seed: int = 0,
) -> tuple[TrainingResult, dict]:
    """Fit ``build()`` as a next-word predictor; ``test_accuracy`` is top-1 next-word accuracy."""
    start = time.perf_counter()
    stream = token_stream(train_ids)[: recipe.train_tokens]
    width = len(stream) // recipe.batch_size
    streams = stream[: width * recipe.batch_size].view(recipe.batch_size, width)
    previous_threads = torch.get_num_threads()
    with torch.random.fork_rng():
        torch.set_num_threads(recipe.threads or previous_threads)
        try:
            torch.manual_seed(seed)
            model = build()
            optimizer = torch.optim.Adam(model.parameters(), lr=recipe.learning_rate)
            model.train()
            for _ in range(recipe.epochs):
                state = None
                for begin in range(0, width - 1, recipe.steps):
                    end = min(begin + recipe.steps, width - 1)
                    inputs, targets = streams[:, begin:end], streams[:, begin + 1 : end + 1]
                    outputs, state = model.lstm(model.dropout(model.embed(inputs)), state)
                    state = tuple(s.detach() for s in state)
                    logits = model.decoder(model.dropout(outputs))
                    loss = nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
                    optimizer.zero_grad()
                    loss.backward()
                    nn.utils.clip_grad_norm_(model.parameters(), recipe.gradient_clip)
                    optimizer.step()
            model.eval()
            perplexity, accuracy = language_model_scores(model, test_ids, recipe.test_tokens, recipe.steps)
        finally:
            torch.set_num_threads(previous_threads)
    result = TrainingResult(model, accuracy, len(stream), time.perf_counter() - start)
    return result, {"test_perplexity": perplexity, "train_tokens": len(stream)}


@torch.no_grad()
def language_model_scores(model: nn.Module, ids: torch.Tensor, tokens: int, steps: int) -> tuple[float, float]:
    """Perplexity and top-1 next-word accuracy over the first ``tokens`` non-padding ids of ``ids`` (read as
    one stream in 32 parallel rows, state carried across ``steps``-token windows)."""
    stream = token_stream(ids)[:tokens]
    width = len(stream) // 32
    streams = stream[: width * 32].view(32, width)
    state, total_loss, correct, count = None, 0.0, 0, 0
    for begin in range(0, width - 1, steps):
        end = min(begin + steps, width - 1)
        outputs, state = model.lstm(model.embed(streams[:, begin:end]), state)
        logits = model.decoder(outputs).flatten(0, 1)
        targets = streams[:, begin + 1 : end + 1].flatten()
        total_loss += float(nn.functional.cross_entropy(logits, targets, reduction="sum"))
        correct += int((logits.argmax(1) == targets).sum())
        count += len(targets)
    return math.exp(total_loss / count), correct / count
