"""The shape every attribution method shares: options with documented defaults and one entry point.

A method is a small class with a ``name``, an ``options`` table (every accepted option and its default)
and a ``compute(request, **options)`` that sends its model passes through the engine's
:class:`~taylorlens.engine.Request`. Options can be given to the constructor (``steps=50``) or to
``attribute`` (``baseline=0.0``); the call wins. Unknown options are rejected with the accepted list.

How the model is called (``batch_size``, ``layer``, ``layer_side``, ``layer_call``, ``forward_kwargs``,
``output``) is accepted by every method and goes to :meth:`Request.build`, never to ``compute``: a method
works on one explained tensor whatever the model takes.

``attribute(..., return_info=True)`` returns ``(attributions, info)``: an :class:`AttributionInfo` with the
points (model evaluations) the call spent, counted by the engine for every method, and the per-sample values
a method reports (:meth:`Request.note`, e.g. the steps and completeness gap of ``integrated_gradients`` with
``steps="auto"``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import Tensor

from taylorlens.engine import MODEL_OPTIONS, Request
from taylorlens.engine.checks import check_options, warn_renamed
from taylorlens.engine.pass_clock import tally

#: Options every method accepts: they say how the model is called and go to ``Request.build``.
COMMON_OPTIONS: dict[str, Any] = {"batch_size": None, **MODEL_OPTIONS}


@dataclass(frozen=True)
class AttributionInfo:
    """What one ``attribute(..., return_info=True)`` call spent, and what its method reports per sample.

    * ``points``: model evaluations the result needed, over the whole batch (forward, gradient and
      Hessian-vector points; DeepLIFT's references count, as they go through the model with the points;
      the T targets of one input sharing a forward pass count T times). ``passes`` is the same number.
    * ``points_by_pass``: the same by pass kind, e.g. ``{"forward": 4, "gradient": 200}``.
    * ``points_per_sample``: ``(B,)`` points per input sample.
    * ``measuring_points``: extra evaluations spent timing chunk sizes (the first time a model meets a
      point shape; zero with ``batch_size=``), not part of ``points``.
    * ``model_calls``: chunks sent to the model (measuring included); ``seconds``: wall time inside them.
    * ``details``: per-sample values ``(B,)`` (``(B, T)`` for T targets per sample) reported by the method;
      they also read as attributes and items: ``info.steps``, ``info["gap"]``.
    """

    method: str
    points: int
    points_by_pass: dict[str, int]
    points_per_sample: Tensor
    measuring_points: int
    model_calls: int
    seconds: float
    details: dict[str, Tensor] = field(default_factory=dict)

    @property
    def passes(self) -> int:
        """Model evaluations spent (the same as ``points``)."""
        return self.points

    def __getattr__(self, name: str) -> Tensor:
        details = self.__dict__.get("details", {})
        if name in details:
            return details[name]
        raise AttributeError(f"{type(self).__name__} has no {name!r} (details: {', '.join(details) or 'none'})")

    def __getitem__(self, name: str) -> Any:
        if name in self.details:
            return self.details[name]
        return getattr(self, name)


class Method:
    """Base of all attribution methods (Captum-like: ``Method(model, **options).attribute(x, target)``)."""

    name: ClassVar[str]
    #: Accepted options and their defaults (without :data:`COMMON_OPTIONS`).
    options: ClassVar[dict[str, Any]] = {}
    #: The Taylor framework's three principles (Deng et al. 2021, Table 2), filled in by taylorlens.taylor.
    principles: ClassVar[dict[str, str]] = {}
    #: Old option names still accepted for one release (old -> new), with a DeprecationWarning.
    renamed: ClassVar[dict[str, str]] = {}

    def __init__(self, model: Callable, **options: Any) -> None:
        self.model = model
        self.defaults = options
        self.resolve(options)

    def resolve(self, options: dict[str, Any]) -> dict[str, Any]:
        """Every option of one call: documented defaults overridden by ``options`` (checked)."""
        options = self.current_names(options)
        return {**self.accepted(), **check_options(self.name, options, self.accepted())}

    @classmethod
    def current_names(cls, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` with old option names (:attr:`renamed`) replaced by the current ones, warning once each."""
        options = dict(options)
        for old, new in cls.renamed.items():
            if old in options:
                warn_renamed(cls.name, f"option {old!r}", repr(new), stacklevel=5)
                options.setdefault(new, options.pop(old))
        return options

    @classmethod
    def accepted(cls) -> dict[str, Any]:
        """Every accepted option with its default."""
        return {**COMMON_OPTIONS, **cls.options}

    def attribute(self, inputs: Any, target: Any = None, *, return_info: bool = False, **options: Any) -> Any:
        """Attributions for a batch ``inputs`` (B, ...) and ``target`` (int, B ints, (B, T) ints, or None).

        Returns a tensor of the explained variable's shape (the inputs', or the layer's with ``layer=``),
        dtype and device; ``(B, T, ...)`` for T targets per sample; a tuple for a tuple of inputs. Methods
        that stack several maps, such as interior gradients, add a leading dimension. With
        ``return_info=True``: ``(attributions, info)``, ``info`` an :class:`AttributionInfo`.
        """
        if not isinstance(return_info, bool):
            raise TypeError(f"return_info must be True or False, got {return_info!r}")
        chosen = self.resolve({**self.defaults, **options})
        calling = {key: chosen.pop(key) for key in COMMON_OPTIONS}
        with tally() as spent:
            request = Request.build(self.model, inputs, target, **calling)
            with request.model_frozen():
                values = self.compute(request, **chosen)
        result = request.result(values.to(dtype=request.inputs.dtype, device=request.inputs.device))
        return (result, self._info(request, spent)) if return_info else result

    def _info(self, request: Request, spent: Any) -> AttributionInfo:
        per_input = request.batch // request.group
        details = {
            name: value.reshape(per_input, request.group, *value.shape[1:]) if request.group > 1 else value
            for name, value in request.notes.items()
            if value.shape[0] == request.batch
        }
        return AttributionInfo(
            method=self.name,
            points=sum(spent.points.values()),
            points_by_pass=dict(spent.points),
            points_per_sample=spent.per_sample(request.call.batch),
            measuring_points=spent.measuring_points,
            model_calls=spent.model_calls,
            seconds=spent.seconds,
            details=details,
        )

    def run(self, request: Request, **options: Any) -> Tensor:
        """The method on a request that is already built (a wrapper's derived request, such as SmoothGrad's
        noisy copies from :meth:`Request.repeated`): options checked, the model calling ones ignored."""
        chosen = self.resolve({**self.defaults, **options})
        for key in COMMON_OPTIONS:
            chosen.pop(key)
        return self.compute(request, **chosen)

    def compute(self, request: Request, **options: Any) -> Tensor:
        raise NotImplementedError
