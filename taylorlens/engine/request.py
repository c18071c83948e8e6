"""One explanation request: a model, a checked batch of inputs and resolved targets.

Methods and metrics receive a :class:`Request` and call its passes; they never call the model directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from taylorlens.engine import passes
from taylorlens.engine.checks import check_inputs, check_positive_int
from taylorlens.engine.model_state import frozen
from taylorlens.engine.modified_gradients import Rule
from taylorlens.engine.passes import Chunk, Points
from taylorlens.engine.targets import resolve_targets


@dataclass(frozen=True)
class Request:
    """What to explain: ``model`` at ``inputs`` (B, ...) for ``targets`` (B,) or None for (B,) outputs."""

    model: Callable
    inputs: Tensor
    targets: Tensor | None
    batch_size: int | None = None

    @classmethod
    def build(cls, model: Callable, inputs: Any, target: Any, batch_size: int | None = None) -> Request:
        """Check ``inputs``, resolve ``target`` and ``batch_size``; raise early with a clear message."""
        if not callable(model):
            raise TypeError(f"model must be an nn.Module or a callable, got {type(model).__name__}")
        inputs = check_inputs(inputs).detach()
        if batch_size is not None:
            check_positive_int("batch_size", batch_size)
        return cls(model, inputs, resolve_targets(target, inputs.shape[0], inputs.device), batch_size)

    @property
    def batch(self) -> int:
        return self.inputs.shape[0]

    def repeated(self, times: int, inputs: Tensor) -> Request:
        """The same request for ``inputs`` holding ``times`` consecutive copies of each sample."""
        targets = None if self.targets is None else self.targets.repeat_interleave(times)
        return Request(self.model, inputs, targets, self.batch_size)

    @contextmanager
    def model_frozen(self) -> Iterator[None]:
        with frozen(self.model):
            yield

    def forward(self, points: Points) -> Tensor:
        """Explained outputs at every point of ``points``: ``(B, variants)``."""
        return passes.forward(self.model, points, self.targets, batch_size=self.batch_size)

    def outputs(self, inputs: Tensor | None = None) -> Tensor:
        """Explained outputs at ``inputs`` (default: the request's inputs), ``(B,)``."""
        return self.forward(passes.inputs_points(self.inputs if inputs is None else inputs))[:, 0]

    def gradients(self, points: Points, rule: Rule | None = None) -> tuple[Tensor, Tensor]:
        """Gradients ``(B, variants, ...)`` and outputs ``(B, variants)`` at every point."""
        return passes.gradients(self.model, points, self.targets, rule=rule, batch_size=self.batch_size)

    def gradient_sum(
        self, points: Points, weight: Callable[[Chunk], Tensor], rule: Rule | None = None
    ) -> Tensor:
        """``sum_v weight * grad`` over the variants of each sample, ``(B, ...)``."""
        return passes.gradient_sum(
            self.model, points, self.targets, weight, rule=rule, batch_size=self.batch_size
        )

    def generator(self, seed: int | None) -> torch.Generator:
        """A random generator on the inputs' device; ``seed=None`` draws a fresh seed."""
        generator = torch.Generator(device=self.inputs.device)
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(check_positive_int("seed", seed, minimum=0))
        return generator
