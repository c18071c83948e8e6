"""The one batched evaluation path: every method and metric sends its model passes through here.

A job is a :class:`Points` set: ``variants`` evaluation points for each of the B input samples (IG steps,
noise samples, baselines, occlusion windows, perturbed copies, ...), built lazily chunk by chunk so that
``B x variants`` points never have to sit in memory at once. The passes evaluate the chunks and either
return the explained outputs ``(B, variants)`` (:func:`forward`), stream per-chunk gradients
(:func:`gradient_chunks`), or fold them into a per-sample weighted sum (:func:`gradient_sum`). Chunk sizes
come from :mod:`taylorlens.engine.chunking` (measured with the same code path that then does the work);
results do not depend on them beyond float rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from taylorlens.engine.chunking import chunk_size
from taylorlens.engine.modified_gradients import Rule, modified_gradients
from taylorlens.engine.pass_clock import CLOCK
from taylorlens.engine.targets import select_outputs

#: ``build(sample_index, variant_index)`` -> the points of those (sample, variant) pairs, ``(n, ...)``.
Builder = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Points:
    """``variants`` evaluation points per sample of ``inputs``, ordered sample-major.

    ``build`` makes the points of any (sample, variant) pairs; ``reference`` (only for rules that compare
    against a reference, DeepLIFT) makes the matching reference points.
    """

    inputs: Tensor
    variants: int
    build: Builder
    reference: Builder | None = None

    @property
    def samples(self) -> int:
        return self.inputs.shape[0]

    @property
    def total(self) -> int:
        return self.samples * self.variants


@dataclass(frozen=True)
class Chunk:
    """One evaluated chunk: which (sample, variant) pairs, their points, outputs and (maybe) gradients."""

    sample: Tensor
    variant: Tensor
    points: Tensor
    outputs: Tensor
    grads: Tensor | None = None


def inputs_points(inputs: Tensor, reference: Tensor | None = None) -> Points:
    """The inputs themselves as a one-variant job (and, for DeepLIFT, their references)."""
    return Points(
        inputs,
        1,
        lambda s, v: inputs[s],
        None if reference is None else (lambda s, v: reference[s]),
    )


def run_chunks(
    model: Callable, points: Points, kind: str, evaluate: Callable[[Tensor, Tensor], Chunk], batch_size: int | None
) -> Iterator[Chunk]:
    """Evaluate ``points`` chunk by chunk; the chunk size is measured with ``evaluate`` itself."""
    device = points.inputs.device

    def first_point_repeated(size: int) -> Chunk:
        zeros = torch.zeros(size, dtype=torch.long, device=device)
        return evaluate(zeros, zeros)

    size = chunk_size(model, points.inputs[0], points.total, kind, first_point_repeated, batch_size)
    for start in range(0, points.total, size):
        flat = torch.arange(start, min(start + size, points.total), device=device)
        yield CLOCK.timed(evaluate, flat // points.variants, flat % points.variants)


def forward(
    model: Callable, points: Points, targets: Tensor | None, *, batch_size: int | None = None
) -> Tensor:
    """Explained outputs at every point, ``(B, variants)``, in inference mode."""

    def evaluate(sample: Tensor, variant: Tensor) -> Chunk:
        with torch.inference_mode():
            batch = points.build(sample, variant)
            outputs = select_outputs(model(batch), _at(targets, sample), batch.shape[0])
        return Chunk(sample, variant, batch, outputs)

    chunks = run_chunks(model, points, "forward", evaluate, batch_size)
    return torch.cat([chunk.outputs for chunk in chunks]).view(points.samples, points.variants)


def gradient_chunks(
    model: Callable,
    points: Points,
    targets: Tensor | None,
    *,
    rule: Rule | None = None,
    batch_size: int | None = None,
) -> Iterator[Chunk]:
    """Stream chunks with outputs and (modified) gradients of the explained output at every point."""
    paired = rule is not None and rule.needs_reference
    if paired and points.reference is None:
        raise ValueError(f"the {rule.name} rule needs reference points")

    def evaluate(sample: Tensor, variant: Tensor) -> Chunk:
        n = sample.shape[0]
        with torch.enable_grad():
            batch = points.build(sample, variant).detach().requires_grad_(True)
            chosen = _at(targets, sample)
            if paired:
                batch_and_refs = torch.cat([batch, points.reference(sample, variant).detach()])
                chosen = None if chosen is None else torch.cat([chosen, chosen])
            else:
                batch_and_refs = batch
            with modified_gradients(rule, n):
                outputs = select_outputs(model(batch_and_refs), chosen, batch_and_refs.shape[0])[:n]
            if outputs.requires_grad:
                (grads,) = torch.autograd.grad(outputs.sum(), batch, allow_unused=True, materialize_grads=True)
            else:  # the explained output does not depend on the inputs at all
                grads = torch.zeros_like(batch)
        return Chunk(sample, variant, batch.detach(), outputs.detach(), grads)

    kind = "gradient" if rule is None else f"gradient:{rule.name}"
    yield from run_chunks(model, points, kind, evaluate, batch_size)


def gradients(
    model: Callable,
    points: Points,
    targets: Tensor | None,
    *,
    rule: Rule | None = None,
    batch_size: int | None = None,
) -> tuple[Tensor, Tensor]:
    """All gradients ``(B, variants, ...)`` and outputs ``(B, variants)``, materialised."""
    chunks = list(gradient_chunks(model, points, targets, rule=rule, batch_size=batch_size))
    grads = torch.cat([chunk.grads for chunk in chunks])
    values = torch.cat([chunk.outputs for chunk in chunks])
    return grads.view(points.samples, points.variants, *grads.shape[1:]), values.view(points.samples, -1)


def gradient_sum(
    model: Callable,
    points: Points,
    targets: Tensor | None,
    weight: Callable[[Chunk], Tensor],
    *,
    rule: Rule | None = None,
    batch_size: int | None = None,
) -> Tensor:
    """``sum_v weight(point_v) * grad f(point_v)`` per sample, ``(B, ...)``, folded chunk by chunk.

    ``weight`` maps a chunk to a tensor broadcastable to its gradients (a per-variant quadrature weight,
    ``x - baseline``, ``-eps / R``, ...). This is the shape of every path, smoothing and Taylor method.
    """
    total = torch.zeros_like(points.inputs)
    for chunk in gradient_chunks(model, points, targets, rule=rule, batch_size=batch_size):
        total.index_add_(0, chunk.sample, weight(chunk) * chunk.grads)
    return total


def _at(targets: Tensor | None, sample: Tensor) -> Tensor | None:
    return None if targets is None else targets[sample]
