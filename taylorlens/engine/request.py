"""One explanation request: the one door into the engine.

Methods and metrics receive a :class:`Request` and call its passes (:meth:`Request.forward`,
:meth:`~Request.gradients`, :meth:`~Request.gradient_sum`, the second-order passes); they never call the
model directly and never see how it is called. :meth:`Request.build` checks everything the user passed:
the inputs (one tensor, or a tuple of tensors with the same batch size), the explained ``layer``, the
``forward_kwargs``, how to read the ``output`` and the ``target`` (one class per sample, or ``(B, T)``: T
classes per sample). The explained variable :attr:`Request.inputs` is then always one tensor
``(batch, ...)``: the inputs, the packed parts of a tuple (:mod:`taylorlens.engine.layout`) or the layer's
value (:mod:`taylorlens.engine.layers`), repeated once per target when there are several.

Every sample of a request remembers the user's sample it comes from (:attr:`Request.rows`), so wrappers
(SmoothGrad's noisy copies, Algorithm 1's searching subset) use :meth:`~Request.repeated` and
:meth:`~Request.subset`, and per-sample options (a baseline of the batch's shape) still fit:
:meth:`~Request.broadcast` reads them in the user's batch and indexes them for the request's samples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from taylorlens.engine import hessian, passes
from taylorlens.engine.checks import (
    AttributionInputError,
    check_finite,
    check_inputs,
    check_options,
    check_positive_int,
)
from taylorlens.engine.hessian import HessianChunk
from taylorlens.engine.layers import LayerSite
from taylorlens.engine.layout import Layout
from taylorlens.engine.model_call import ModelCall, check_output, split_kwargs
from taylorlens.engine.model_state import frozen
from taylorlens.engine.modified_gradients import Rule, RuleSelector
from taylorlens.engine.pass_clock import CLOCK
from taylorlens.engine.passes import Builder, Chunk, Points
from taylorlens.engine.targets import resolve_targets

#: How the model is called: accepted by ``Request.build``, every method and every metric that takes a model.
MODEL_OPTIONS: dict[str, Any] = {
    "layer": None, "layer_side": "output", "layer_call": None, "forward_kwargs": None, "output": None,
}
#: User samples whose layer value is read in one forward pass.
CAPTURE_CHUNK = 64


@dataclass(frozen=True)
class Request:
    """What to explain: ``call`` at the explained ``inputs`` (batch, ...) for ``targets`` (batch,) or None.

    ``rows[i]`` is the user's sample that sample ``i`` comes from; ``group`` consecutive samples share one
    user sample and differ only in their target (several targets per input). ``notes`` holds what a method
    reports per sample besides its attributions (:meth:`note`); derived requests share it.
    """

    call: ModelCall
    inputs: Tensor
    targets: Tensor | None
    rows: Tensor
    batch_size: int | None = None
    group: int = 1
    notes: dict[str, Tensor] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(
        cls,
        model: Callable,
        inputs: Any,
        target: Any = None,
        batch_size: int | None = None,
        *,
        caller: str = "attribute",
        **model_options: Any,
    ) -> Request:
        """Check every argument and resolve ``target``; raise early with a clear message.

        ``model_options`` are :data:`MODEL_OPTIONS` (any other name is refused, naming ``caller``):
        ``layer`` (a module of the model or its dotted name), ``layer_side`` ("output" or "input"),
        ``layer_call`` (which call of a layer called several times), ``forward_kwargs`` (a dict passed to
        the model at every chunk) and ``output`` (how to read the model's return value).
        """
        options = {**MODEL_OPTIONS, **check_options(caller, model_options, MODEL_OPTIONS)}
        layer, forward_kwargs, output = options["layer"], options["forward_kwargs"], options["output"]
        if not callable(model):
            raise TypeError(f"model must be an nn.Module or a callable, got {type(model).__name__}")
        if batch_size is not None:
            check_positive_int("batch_size", batch_size)
        parts = _parts(inputs, floating=layer is None)
        batch = parts[0].shape[0]
        batched, constant = split_kwargs(forward_kwargs, batch)
        output = check_output(output)
        rows = torch.arange(batch, device=parts[0].device)
        if layer is None:
            layout = Layout.of(parts) if _several(inputs) else Layout.single(parts[0].shape[1:])
            call = ModelCall(model, layout, batch, output, None, (), batched, constant)
            explained = layout.pack(tuple(part.detach() for part in parts))
        else:
            site = LayerSite.resolve(model, layer, options["layer_side"], options["layer_call"])
            call = ModelCall(model, Layout.single(()), batch, output, site, tuple(parts), batched, constant)
            explained = _layer_value(call, site, rows, batch_size)
            call = replace(call, layout=Layout.single(tuple(explained.shape[1:])))
        targets = resolve_targets(target, batch, explained.device)
        request = cls(call, explained, targets, rows, batch_size)
        if targets is not None and targets.dim() == 2:
            count = targets.shape[1]
            request = cls(call, explained.repeat_interleave(count, 0), targets.reshape(-1),
                          rows.repeat_interleave(count), batch_size, group=count)
        return request

    @property
    def batch(self) -> int:
        return self.inputs.shape[0]

    @property
    def model(self) -> Callable:
        return self.call.model

    # --- derived requests -------------------------------------------------------------------------------
    def repeated(self, times: int, inputs: Tensor | None = None) -> Request:
        """The same request for ``inputs`` (default: each sample repeated) holding ``times`` consecutive
        copies of each sample (SmoothGrad's noisy copies)."""
        inputs = self.inputs.repeat_interleave(times, 0) if inputs is None else inputs.detach()
        if inputs.shape[0] != self.batch * times:
            raise ValueError(f"repeated inputs must hold {self.batch * times} samples, got {inputs.shape[0]}")
        targets = None if self.targets is None else self.targets.repeat_interleave(times)
        return Request(self.call, inputs, targets, self.rows.repeat_interleave(times), self.batch_size,
                       notes=self.notes)

    def subset(self, index: Tensor, inputs: Tensor | None = None) -> Request:
        """The request for the samples ``index`` (and optionally other explained values for them)."""
        inputs = self.inputs[index] if inputs is None else inputs.detach()
        targets = None if self.targets is None else self.targets[index]
        return Request(self.call, inputs, targets, self.rows[index], self.batch_size, notes=self.notes)

    # --- options in the explained space ---------------------------------------------------------------
    def broadcast(self, value: Any, name: str = "baseline") -> Tensor:
        """A baseline-like option as a ``(batch, ...)`` tensor of the explained space.

        Accepted: a number; a tensor of one sample's shape; a tensor of the user's batch shape (it is
        indexed for the request's samples); for several inputs, a tuple with one such entry per input.
        """
        layout, x = self.call.layout, self.inputs
        try:
            return layout.broadcast(value, self.call.batch, x.dtype, x.device, name)[self.rows]
        except AttributionInputError:
            if self.batch == self.call.batch:
                raise
        return layout.broadcast(value, self.batch, x.dtype, x.device, name)

    def result(self, values: Tensor) -> Tensor | tuple[Tensor, ...]:
        """A method's result ``(*lead, batch, ...)`` in the user's terms: a T axis after the batch for
        several targets, a tuple for several inputs."""
        lead = values.shape[: values.dim() - self.inputs.dim()]
        if self.group > 1:
            values = values.reshape(*lead, self.batch // self.group, self.group, *values.shape[len(lead) + 1:])
        return self.call.layout.result(values)

    def reentry(self) -> tuple[Any, Tensor | None, dict[str, Any]]:
        """``(inputs, targets, options)`` that rebuild this request through a public entry point (a metric
        called on the request's samples): the user's inputs and forward arguments indexed by ``rows``."""
        call = self.call
        kwargs = call.kwargs(self.rows) or None
        options = {"forward_kwargs": kwargs, "output": call.output, "batch_size": self.batch_size}
        if call.site is None:
            return call.layout.result(self.inputs), self.targets, options
        site = call.site
        options.update(layer=site.module, layer_side=site.side, layer_call=site.call)
        parts = call.user_inputs(self.rows)
        return (parts if len(parts) > 1 else parts[0]), self.targets, options

    def note(self, **per_sample: Tensor) -> None:
        """Record per-sample values ``(batch,)`` that a method reports with its attributions (steps used,
        final error, ...): ``attribute(..., return_info=True)`` returns them in the info's ``details``."""
        for name, value in per_sample.items():
            value = torch.as_tensor(value).detach()
            if value.shape[:1] != (self.batch,):
                raise ValueError(f"note {name!r} needs one value per sample ({self.batch}), got {tuple(value.shape)}")
            self.notes[name] = value

    @contextmanager
    def model_frozen(self) -> Iterator[None]:
        with frozen(self.call.model):
            yield

    # --- passes ---------------------------------------------------------------------------------------
    def forward(self, points: Points) -> Tensor:
        """Explained outputs at every point of ``points``: ``(batch, variants)``."""
        return passes.forward(self, points)

    def outputs(self, inputs: Tensor | None = None) -> Tensor:
        """Explained outputs at ``inputs`` (default: the request's inputs), ``(batch,)``."""
        return self.forward(passes.inputs_points(self.inputs if inputs is None else inputs))[:, 0]

    def gradients(self, points: Points, rule: Rule | RuleSelector | None = None) -> tuple[Tensor, Tensor]:
        """Gradients ``(batch, variants, ...)`` and outputs ``(batch, variants)`` at every point; ``rule`` (or a
        :class:`RuleSelector`, a rule per nonlinearity) modifies the gradients of the nonlinearities."""
        return passes.gradients(self, points, rule)

    def gradient_sum(
        self, points: Points, weight: Callable[[Chunk], Tensor], rule: Rule | RuleSelector | None = None
    ) -> Tensor:
        """``sum_v weight * grad`` over the variants of each sample, ``(batch, ...)``."""
        return passes.gradient_sum(self, points, weight, rule)

    def nonlinearities(self, points: Points, rule: Rule | RuleSelector) -> int:
        """How many elementwise nonlinearities ``rule`` modifies in one forward pass (of the first point)."""
        return passes.nonlinearities(self, points, rule)

    def gradient_sum_and_outputs(
        self, points: Points, weight: Callable[[Chunk], Tensor], rule: Rule | None = None
    ) -> tuple[Tensor, Tensor]:
        """:meth:`gradient_sum` and the explained outputs at every point, ``(batch, variants)``."""
        return passes.gradient_sum_and_outputs(self, points, weight, rule)

    def hvp_chunks(self, points: Points, directions: Builder) -> Iterator[HessianChunk]:
        """Chunks with outputs, gradients and Hessian-vector products ``H v`` at every point."""
        return hessian.hvp_chunks(self, points, directions)

    def gradient_and_hvp(self, direction: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Outputs ``(batch,)``, gradients and ``H_x v`` ``(batch, ...)`` at the request's inputs."""
        return hessian.gradient_and_hvp(self, direction)

    def hessian_diagonal(self, *, n_probes: int | None = None, seed: int | None = None) -> Tensor:
        """``diag(H_x)`` at every input, exact or Hutchinson with ``n_probes`` probes, ``(batch, ...)``."""
        return hessian.hessian_diagonal(self, self.inputs, n_probes=n_probes, seed=seed)

    def hessian_matrix(self, max_features: int) -> Tensor:
        """The full Hessian ``(batch, n, n)`` over the flattened features (at most ``max_features``)."""
        return hessian.hessian_matrix(self, self.inputs, max_features)

    def generator(self, seed: int | None) -> torch.Generator:
        """A random generator on the inputs' device; ``seed=None`` draws a fresh seed."""
        generator = torch.Generator(device=self.inputs.device)
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(check_positive_int("seed", seed, minimum=0))
        return generator


def _several(inputs: Any) -> bool:
    """Several inputs: a tuple, or a list of tensors (a list of numbers is one malformed input)."""
    return isinstance(inputs, tuple) or (isinstance(inputs, list) and all(isinstance(p, Tensor) for p in inputs))


def _parts(inputs: Any, floating: bool) -> tuple[Tensor, ...]:
    """The input tensor(s), checked: the same batch size B >= 1; floating point unless a layer is explained."""
    if _several(inputs):
        if not inputs:
            raise AttributionInputError("inputs is an empty tuple; give a tensor (B, ...) or a tuple of them")
        parts = tuple(_part(part, f"inputs[{i}]", floating) for i, part in enumerate(inputs))
        sizes = [part.shape[0] for part in parts]
        if len(set(sizes)) > 1:
            raise AttributionInputError(f"every input must have the same batch size B, got batch sizes {sizes}")
        return parts
    return (_part(inputs, "inputs", floating),)


def _part(part: Any, name: str, floating: bool) -> Tensor:
    if floating:
        return check_inputs(part, name)
    if not isinstance(part, Tensor) or part.dim() < 1 or part.shape[0] < 1:
        got = tuple(part.shape) if isinstance(part, Tensor) else type(part).__name__
        raise AttributionInputError(f"{name} must be a tensor of shape (B, ...) with B >= 1, got {got}")
    if part.is_floating_point():
        check_finite(part, name)
    return part


def _layer_value(call: ModelCall, site: LayerSite, rows: Tensor, batch_size: int | None) -> Tensor:
    """The explained layer's value at every user input, read once (in chunks of user samples).

    The first sample goes through the whole forward pass, which checks how often the layer is called; the
    others stop at the explained call (for a word embedding: one look-up, not a pass of the whole model).
    """
    step = batch_size or CAPTURE_CHUNK
    starts = [0, *range(1, rows.shape[0], step)]
    values = []
    with torch.no_grad():
        for start in starts:
            chunk = rows[start: start + step] if start else rows[:1]
            seen: list = []
            with site.capture(seen, cut=start > 0):
                call.on_user_inputs(chunk)
            CLOCK.count("forward", chunk)
            values.append(site.chosen(seen, chunk.shape[0]).detach())
    value = torch.cat(values)
    check_finite(value, f"the {site.side} of layer {site.name!r}")
    return value
