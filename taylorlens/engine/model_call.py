"""How the model is called at a chunk of evaluation points: inputs, forward arguments, layer, output.

A :class:`ModelCall` turns points of the explained space into the model's explained outputs. It owns every
calling convention so that methods and metrics never see one:

* several inputs: the points are unpacked into the parts (:class:`~taylorlens.engine.layout.Layout`);
* ``forward_kwargs``: passed at every chunk; tensors whose first dimension is the batch B are indexed to the
  chunk's samples (``rows``), the rest is passed as is;
* ``layer=``: the model is called on the user's own inputs (indexed to the chunk's samples) and the points
  are substituted for the layer's value (:class:`~taylorlens.engine.layers.LayerSite`);
* ``output=``: how to read the model's return value (a tensor, a ``ModelOutput``/dict with ``logits``, the
  first element of a tuple, a key or a callable).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from taylorlens.engine.checks import AttributionInputError
from taylorlens.engine.layers import LayerSite
from taylorlens.engine.layout import Layout
from taylorlens.engine.targets import select_outputs


@dataclass(frozen=True)
class ModelCall:
    """``model`` called at explained points; ``context`` holds the user's inputs when a layer is explained."""

    model: Callable
    layout: Layout
    batch: int
    output: Any = None
    site: LayerSite | None = None
    context: tuple[Any, ...] = ()
    batched_kwargs: dict[str, Tensor] = field(default_factory=dict)
    constant_kwargs: dict[str, Any] = field(default_factory=dict)

    def raw(self, points: Tensor, rows: Tensor) -> Any:
        """The model's return value at ``points`` (n, ...), whose samples are the user's ``rows`` (n,)."""
        if self.site is None:
            return self.model(*self.layout.unpack(points), **self.kwargs(rows))
        with self.site.substituted(points):
            return self.on_user_inputs(rows)

    def on_user_inputs(self, rows: Tensor) -> Any:
        """The model's return value at the user's own inputs ``rows`` (a layer explained: nothing substituted)."""
        return self.model(*self.user_inputs(rows), **self.kwargs(rows))

    def user_inputs(self, rows: Tensor) -> tuple[Any, ...]:
        """The user's inputs of samples ``rows``, as positional arguments of the model (layer explained)."""
        return tuple(_index(part, rows, self.batch) for part in self.context)

    def kwargs(self, rows: Tensor) -> dict[str, Any]:
        """The forward arguments of samples ``rows``."""
        return {**self.constant_kwargs, **{k: v[rows] for k, v in self.batched_kwargs.items()}}

    def outputs(self, points: Tensor, rows: Tensor) -> Tensor:
        """The model's output tensor at ``points``, read as ``output=`` says."""
        return read_output(self.raw(points, rows), self.output)

    def explained(self, points: Tensor, rows: Tensor, targets: Tensor | None) -> Tensor:
        """Explained outputs: ``(n,)``, or ``(n, T)`` for targets ``(n, T)``."""
        return select_outputs(self.outputs(points, rows), targets, points.shape[0])


def split_kwargs(forward_kwargs: Any, batch: int) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``forward_kwargs`` -> (tensors indexed per sample, arguments passed as they are), checked."""
    if forward_kwargs is None:
        return {}, {}
    if not isinstance(forward_kwargs, Mapping) or not all(isinstance(k, str) for k in forward_kwargs):
        raise AttributionInputError(
            f"forward_kwargs must be a dict of keyword arguments for the model, got {type(forward_kwargs).__name__}"
        )
    batched, constant = {}, {}
    for key, value in forward_kwargs.items():
        if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == batch:
            batched[key] = value.detach()
        elif isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] != 1:
            raise AttributionInputError(
                f"forward_kwargs[{key!r}] has shape {tuple(value.shape)}: a tensor argument must have the "
                f"batch size {batch} as its first dimension (it is indexed like the inputs) or 1 (broadcast "
                "to every sample); bind other constants to the model instead"
            )
        else:
            constant[key] = value
    return batched, constant


def check_output(output: Any) -> Any:
    """``output=``: None, a key of the model's return value, or a callable."""
    if output is None or isinstance(output, str) or callable(output):
        return output
    raise AttributionInputError(
        f"output must be None, a key such as 'logits' or a callable out -> (B, C) tensor, got {type(output).__name__}"
    )


def read_output(out: Any, output: Any) -> Tensor:
    """The explained tensor of a model's return value (see :class:`ModelCall`)."""
    if callable(output):
        value = output(out)
        if not isinstance(value, Tensor):
            raise AttributionInputError(f"output= returned a {type(value).__name__}; it must return a tensor")
        return value
    if isinstance(output, str):
        return _keyed(out, output)
    if isinstance(out, Tensor):
        return out
    if (isinstance(out, Mapping) and "logits" in out) or hasattr(out, "logits"):
        return _keyed(out, "logits")
    if isinstance(out, tuple | list) and out and isinstance(out[0], Tensor):
        return out[0]
    raise AttributionInputError(
        f"the model returned a {type(out).__name__}; taylorlens reads a tensor, .logits of a ModelOutput/dict "
        "or the first element of a tuple: pass output='key' or output=lambda out: ... to choose"
    )


def _keyed(out: Any, key: str) -> Tensor:
    if isinstance(out, Mapping) and key in out:
        value = out[key]
    elif not isinstance(out, Mapping) and hasattr(out, key):
        value = getattr(out, key)
    else:
        keys = list(out.keys()) if isinstance(out, Mapping) else [k for k in vars(out) if not k.startswith("_")]
        raise AttributionInputError(
            f"output={key!r} is not in the model's return value ({type(out).__name__}); it has: "
            f"{', '.join(map(str, keys)) or 'nothing'}"
        )
    if not isinstance(value, Tensor):
        raise AttributionInputError(f"output={key!r} is a {type(value).__name__}, not a tensor")
    return value


def _index(part: Any, rows: Tensor, batch: int) -> Any:
    if isinstance(part, Tensor) and part.dim() > 0 and part.shape[0] == batch:
        return part[rows]
    return part
