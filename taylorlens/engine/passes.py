"""The one batched evaluation path behind :class:`~taylorlens.engine.Request` (private: call the request).

A job is a :class:`Points` set: ``variants`` evaluation points for each of the request's samples (IG steps,
noise samples, baselines, occlusion windows, perturbed copies, ...), built lazily chunk by chunk so that
``B x variants`` points never have to sit in memory at once. The passes evaluate the chunks and either
return the explained outputs ``(B, variants)`` (:func:`forward`), stream per-chunk gradients
(:func:`gradient_chunks`), or fold them into a per-sample weighted sum (:func:`gradient_sum`). Chunk sizes
come from :mod:`taylorlens.engine.chunking` (measured with the same code path that then does the work);
results do not depend on them beyond float rounding.

Several targets per input: the request holds ``group = T`` consecutive samples per user input (one per
target). Chunks hold whole groups; when the T points of a group are equal (they are whenever a method's
points depend on the input only, as IG, DeepLIFT and occlusion do), the group is evaluated with one forward
pass and T backward passes (batched), never T forwards.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from taylorlens.engine.chunking import plan, remember_fit, whole_groups
from taylorlens.engine.memory import attempt, is_out_of_memory, warn_batch_size
from taylorlens.engine.modified_gradients import Rule, RuleSelector, UnsupportedModelError, modified_gradients
from taylorlens.engine.pass_clock import CLOCK
from taylorlens.engine.reference_tape import ReferenceMismatch, ReferenceTape

if TYPE_CHECKING:
    from taylorlens.engine.request import Request

#: ``build(sample_index, variant_index)`` -> the points of those (sample, variant) pairs, ``(n, ...)``.
Builder = Callable[[Tensor, Tensor], Tensor]
#: ``evaluate(sample_index, variant_index)`` -> the evaluated :class:`Chunk` of those pairs.
Evaluate = Callable[[Tensor, Tensor], "Chunk"]


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


class PathPoints(Points):
    """Points on straight paths ``z + alpha (x - z)``: ``starts`` (B, N, ...) and ``alphas``.

    ``alphas`` is ``(K,)`` (the same K nodes on every path: variant ``v`` is start ``v // K`` at node
    ``v % K``) or ``(B, N)`` (one node per start, drawn per sample: Expected Gradients). :meth:`start` and
    :meth:`alpha` hand a chunk's starts and nodes to the method's weights, shaped to broadcast.
    """

    def __init__(self, inputs: Tensor, starts: Tensor, alphas: Tensor) -> None:
        object.__setattr__(self, "starts", starts)  # Points is frozen
        object.__setattr__(self, "alphas", alphas)
        object.__setattr__(self, "nodes", alphas.shape[0] if alphas.dim() == 1 else 1)

        def build(sample: Tensor, variant: Tensor) -> Tensor:
            start = self.start(sample, variant)
            return start + self.alpha(sample, variant) * (inputs[sample] - start)

        super().__init__(inputs, starts.shape[1] * self.nodes, build)

    def start(self, sample: Tensor, variant: Tensor) -> Tensor:
        """The start ``z`` of each pair's path, ``(n, ...)``."""
        return self.starts[sample, variant // self.nodes]

    def node(self, variant: Tensor) -> Tensor:
        """Each pair's node index on its path (for per-node quadrature weights), ``(n,)``."""
        return variant % self.nodes

    def alpha(self, sample: Tensor, variant: Tensor) -> Tensor:
        """Each pair's ``alpha``, shaped ``(n, 1, ...)`` to broadcast against its points."""
        values = self.alphas[self.node(variant)] if self.alphas.dim() == 1 else self.alphas[sample, variant]
        return self.shaped(values)

    def shaped(self, values: Tensor) -> Tensor:
        """Per-pair values ``(n,)`` shaped ``(n, 1, ...)`` to broadcast against the points."""
        return values.view(-1, *(1,) * (self.inputs.dim() - 1))


def inputs_points(inputs: Tensor, reference: Tensor | None = None) -> Points:
    """The inputs themselves as a one-variant job (and, for DeepLIFT, their references)."""
    return Points(
        inputs,
        1,
        lambda s, v: inputs[s],
        None if reference is None else (lambda s, v: reference[s]),
    )


def run_chunks(
    request: Request,
    points: Points,
    kind: str,
    evaluate: Evaluate | dict[str, Evaluate],
    group: int = 1,
    copies: int = 1,
) -> Iterator[Chunk]:
    """Evaluate ``points`` chunk by chunk; the chunk size is measured with ``evaluate`` itself.

    ``evaluate`` is one way of evaluating a chunk or several named ways of getting the same values (the T
    backward passes of several targets batched or looped): the cheapest measured way and size is used
    (:func:`~taylorlens.engine.chunking.plan`). With ``group > 1`` the pairs are visited group by group (the
    ``group`` samples of one input next to each other for each variant) and chunks hold whole groups;
    measuring uses the first input's group. Every chunk is counted in the open tallies
    (:func:`~taylorlens.engine.pass_clock.tally`); ``copies`` (2 with DeepLIFT's references) scales the
    points a chunk's memory is measured for.

    A chunk that runs out of memory is evaluated again with half as many points (whole groups), with a
    :class:`~taylorlens.engine.memory.BatchSizeWarning`, and the size that fits is remembered for the model.
    Nothing of a failed chunk has been yielded, so no result is lost or counted twice; a single group that
    does not fit raises the error.
    """
    device = points.inputs.device
    example = points.inputs[0]
    ways = evaluate if isinstance(evaluate, dict) else {"": evaluate}

    def measured(way: Evaluate) -> Callable[[int], Chunk]:
        def first_point_repeated(size: int) -> Chunk:  # the first input's group (its targets), repeated
            sample = torch.arange(size, device=device) % group
            CLOCK.count_measuring(size)
            with CLOCK.measuring():
                return way(sample, torch.zeros_like(sample))

        return first_point_repeated

    name, size = plan(request.call.model, example, points.total, kind,
                      {name: measured(way) for name, way in ways.items()}, request.batch_size, group, copies)
    evaluate = ways[name]
    start = 0
    while start < points.total:
        sample, variant = _pairs(points, group, start, min(start + size, points.total))
        with CLOCK.holding() as held:  # a chunk's references, counted only if the chunk is kept
            chunk, error = attempt(partial(CLOCK.timed, device=device), evaluate, sample, variant)
        if error is not None:
            if size <= group:
                raise error
            halved = whole_groups(size // 2, group)
            given = "" if request.batch_size is None else f"batch_size={request.batch_size}: "
            warn_batch_size(f"{given}a chunk of {size} points ran out of memory ({_first_line(error)}); "
                            f"retrying with {halved} points per pass")
            remember_fit(request.call.model, example, kind, halved)
            size = halved
            continue
        for held_kind, rows in held:
            CLOCK.count(held_kind, rows)
        CLOCK.count(kind, request.rows[sample])
        yield chunk
        start += sample.shape[0]


def _pairs(points: Points, group: int, start: int, stop: int) -> tuple[Tensor, Tensor]:
    """The (sample, variant) pairs of flat positions ``start:stop`` (sample-major, groups kept together)."""
    flat = torch.arange(start, stop, device=points.inputs.device)
    if group == 1:
        return flat // points.variants, flat % points.variants
    rest = flat // group  # flat = ((input * variants) + variant) * group + member
    return (rest // points.variants) * group + flat % group, rest % points.variants


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:120]}" if text else type(error).__name__


def forward(request: Request, points: Points) -> Tensor:
    """Explained outputs at every point, ``(B, variants)``, in inference mode."""
    group = _shared_group(request)

    def evaluate(sample: Tensor, variant: Tensor) -> Chunk:
        with torch.inference_mode():
            batch = points.build(sample, variant)
            keep = _representatives(group, batch)
            if keep is None:
                outputs = request.call.explained(batch, request.rows[sample], _at(request.targets, sample))
            else:
                targets = request.targets[sample].view(-1, group)
                outputs = request.call.explained(batch[keep], request.rows[sample[keep]], targets).reshape(-1)
        return Chunk(sample, variant, batch, outputs)

    values = torch.empty(points.total, dtype=points.inputs.dtype, device=points.inputs.device)
    for chunk in run_chunks(request, points, "forward", evaluate, group):
        values[chunk.sample * points.variants + chunk.variant] = chunk.outputs.to(values.dtype)
    return values.view(points.samples, points.variants)


def gradient_chunks(request: Request, points: Points, rule: Rule | RuleSelector | None = None) -> Iterator[Chunk]:
    """Stream chunks with outputs and (modified) gradients of the explained output at every point."""
    paired = rule is not None and rule.needs_reference
    if paired and points.reference is None:
        raise ValueError(f"the {rule.name} rule needs reference points")
    group = _shared_group(request)

    def evaluate(sample: Tensor, variant: Tensor, batched: bool = True) -> Chunk:
        with torch.enable_grad():
            batch = points.build(sample, variant).detach()
            refs = points.reference(sample, variant).detach() if paired else None
            keep = _representatives(group, batch, refs)
            if keep is None:
                outputs, grads = _gradients(request, batch, refs, sample, _at(request.targets, sample), rule)
            else:
                targets = request.targets[sample].view(-1, group)
                outputs, grads = _gradients(
                    request, batch[keep], None if refs is None else refs[keep], sample[keep], targets, rule,
                    batched,
                )
                outputs, grads = outputs.reshape(-1), grads.transpose(0, 1).reshape(batch.shape)
        return Chunk(sample, variant, batch, outputs, grads)

    kind = "gradient" if rule is None else f"gradient:{rule.name}"
    # several targets: their backward passes batched (is_grads_batched) or looped, whichever measures cheaper
    ways = {"batched": evaluate, "looped": partial(evaluate, batched=False)} if group > 1 else evaluate
    yield from run_chunks(request, points, kind, ways, group, copies=2 if paired else 1)


def gradients(
    request: Request, points: Points, rule: Rule | RuleSelector | None = None
) -> tuple[Tensor, Tensor]:
    """All gradients ``(B, variants, ...)`` and outputs ``(B, variants)``, materialised."""
    grads = torch.empty(points.total, *points.inputs.shape[1:], dtype=points.inputs.dtype,
                        device=points.inputs.device)
    values = torch.empty(points.total, dtype=points.inputs.dtype, device=points.inputs.device)
    for chunk in gradient_chunks(request, points, rule):
        flat = chunk.sample * points.variants + chunk.variant
        grads[flat], values[flat] = chunk.grads.to(grads.dtype), chunk.outputs.to(values.dtype)
    return grads.view(points.samples, points.variants, *grads.shape[1:]), values.view(points.samples, -1)


def gradient_sum(
    request: Request, points: Points, weight: Callable[[Chunk], Tensor], rule: Rule | RuleSelector | None = None
) -> Tensor:
    """``sum_v weight(point_v) * grad f(point_v)`` per sample, ``(B, ...)``, folded chunk by chunk.

    ``weight`` maps a chunk to a tensor broadcastable to its gradients (a per-variant quadrature weight,
    ``x - baseline``, ``-eps / R``, ...). This is the shape of every path, smoothing and Taylor method.
    """
    return gradient_sum_and_outputs(request, points, weight, rule)[0]


def gradient_sum_and_outputs(
    request: Request, points: Points, weight: Callable[[Chunk], Tensor], rule: Rule | None = None
) -> tuple[Tensor, Tensor]:
    """:func:`gradient_sum` and the explained outputs at every point, ``(B, variants)``."""
    total = torch.zeros_like(points.inputs)
    values = torch.empty(points.total, dtype=points.inputs.dtype, device=points.inputs.device)
    for chunk in gradient_chunks(request, points, rule):
        total.index_add_(0, chunk.sample, weight(chunk) * chunk.grads)
        values[chunk.sample * points.variants + chunk.variant] = chunk.outputs.to(values.dtype)
    return total, values.view(points.samples, points.variants)


def nonlinearities(request: Request, points: Points, rule: Rule | RuleSelector) -> int:
    """How many elementwise nonlinearities ``rule`` modifies in the forward pass of the first point (the
    positions a :class:`~taylorlens.engine.RuleSelector` counts)."""
    first = torch.zeros(1, dtype=torch.long, device=points.inputs.device)
    refs = points.reference(first, first).detach() if rule.needs_reference else None
    with torch.enable_grad():
        batch = points.build(first, first).detach().requires_grad_(True)
        _, met = _modified_outputs(request, batch, refs, first, _at(request.targets, first), rule)
    return met


def _modified_outputs(
    request: Request, batch: Tensor, refs: Tensor | None, sample: Tensor, targets: Tensor | None,
    rule: Rule | RuleSelector | None,
) -> tuple[Tensor, int]:
    """The explained outputs at ``batch`` under ``rule``, and the nonlinearities it met.

    With references (``refs``, one per point), a forward pass of the references records their values at
    every rule site first (:mod:`~taylorlens.engine.reference_tape`): of one of them when all are equal and
    the model's other arguments do not vary with the sample (the values broadcast), else of all.
    """
    rows = request.rows[sample]
    if refs is None:
        with modified_gradients(rule) as seen:
            outputs = request.call.explained(batch, rows, targets)
        return outputs, 0 if seen is None else seen.met
    shared = _one_reference(request, refs, rows) and not _remembered_unshared(request.call.model)
    while True:
        tape = _reference_tape(request, refs, rows, targets, rule, shared)
        try:
            with modified_gradients(rule, tape) as seen:
                outputs = request.call.explained(batch, rows, targets)
            tape.finish()
            return outputs, seen.met
        except ReferenceMismatch as mismatch:
            if not shared:
                raise UnsupportedModelError(
                    f"the {rule.name} rule pairs every site of the points' forward pass with the same site of "
                    f"the references' pass, but the two passes differ ({mismatch}): the model takes a "
                    "different path for the references (input-dependent control flow)"
                ) from mismatch
            _remember_unshared(request.call.model)  # the model mixes the batch into other dimensions
            shared = False


#: Models whose values at one reference do not broadcast to a batch of points (remembered, not tried again).
_UNSHARED: weakref.WeakSet = weakref.WeakSet()


def _remembered_unshared(model: object) -> bool:
    try:
        return model in _UNSHARED
    except TypeError:  # a callable that cannot be weakly referenced: never remembered
        return False


def _remember_unshared(model: object) -> None:
    try:
        _UNSHARED.add(model)
    except TypeError:
        pass


def _one_reference(request: Request, refs: Tensor, rows: Tensor) -> bool:
    """Whether every point's reference gives the same values: equal references, and forward arguments (or a
    layer's context) that do not differ between the samples."""
    call = request.call
    if getattr(call.model, "training", False) or not torch.equal(refs, refs[:1].expand_as(refs)):
        return False  # in training mode batch norm needs the batch (and warns: model_state.frozen)
    return bool((rows == rows[0]).all()) or (call.site is None and not call.batched_kwargs)


def _reference_tape(
    request: Request, refs: Tensor, rows: Tensor, targets: Tensor | None, rule: Rule | RuleSelector, shared: bool
) -> ReferenceTape:
    """The references' values at every rule site (one reference when ``shared``), ready for replay."""
    if shared:
        refs, rows, targets = refs[:1], rows[:1], None if targets is None else targets[:1]
    tape = ReferenceTape()
    with torch.enable_grad(), modified_gradients(rule, tape):
        request.call.explained(refs.detach().requires_grad_(True), rows, targets)
    CLOCK.count("forward", rows)
    tape.start_replay()
    return tape


def _gradients(
    request: Request, batch: Tensor, refs: Tensor | None, sample: Tensor, targets: Tensor | None,
    rule: Rule | RuleSelector | None, batched: bool = True,
) -> tuple[Tensor, Tensor]:
    """Outputs and gradients at ``batch``: ``(n,)`` and ``(n, ...)``, or ``(n, T)`` and ``(T, n, ...)`` (the
    T backward passes ``batched`` or looped)."""
    batch = batch.requires_grad_(True)
    outputs, _ = _modified_outputs(request, batch, refs, sample, targets, rule)
    if not outputs.requires_grad:  # the explained output does not depend on the points at all
        shape = batch.shape if outputs.dim() == 1 else (outputs.shape[1], *batch.shape)
        return outputs.detach(), torch.zeros(shape, dtype=batch.dtype, device=batch.device)
    if outputs.dim() == 1:
        (grads,) = torch.autograd.grad(outputs.sum(), batch, allow_unused=True, materialize_grads=True)
        return outputs.detach(), grads
    return outputs.detach(), _per_target_gradients(outputs, batch, batched)


def _per_target_gradients(outputs: Tensor, batch: Tensor, batched: bool = True) -> Tensor:
    """``(T, n, ...)`` gradients of each of the T columns of ``outputs`` (n, T): one backward pass per target.

    The T backward passes are ``batched`` (``is_grads_batched``: one vectorised pass) where every operation
    supports it, else looped (T passes through the retained graph; cheaper on some models, see
    :func:`gradient_chunks`).
    """
    count = outputs.shape[1]
    if batched:
        seeds = torch.eye(count, dtype=outputs.dtype, device=outputs.device)[:, None].expand(count, *outputs.shape)
        try:
            (grads,) = torch.autograd.grad(outputs, batch, seeds, retain_graph=True, is_grads_batched=True,
                                           allow_unused=True, materialize_grads=True)
            return grads
        except (RuntimeError, NotImplementedError) as error:  # no batching rule: one pass per target
            if is_out_of_memory(error):
                raise
    per_target = [
        torch.autograd.grad(outputs[:, t].sum(), batch, retain_graph=t < count - 1, allow_unused=True,
                            materialize_grads=True)[0]
        for t in range(count)
    ]
    return torch.stack(per_target)


def _shared_group(request: Request) -> int:
    return request.group if request.targets is not None else 1


def _representatives(group: int, batch: Tensor, refs: Tensor | None = None) -> Tensor | None:
    """Indices of one point per group when all points of every group are equal (and their references)."""
    if group == 1 or batch.shape[0] % group:
        return None
    for tensor in (batch,) if refs is None else (batch, refs):
        grouped = tensor.reshape(-1, group, *tensor.shape[1:])
        if not torch.equal(grouped, grouped[:, :1].expand_as(grouped)):
            return None
    return torch.arange(0, batch.shape[0], group, device=batch.device)


def _at(targets: Tensor | None, sample: Tensor) -> Tensor | None:
    return None if targets is None else targets[sample]
