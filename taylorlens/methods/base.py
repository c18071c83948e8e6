"""The shape every attribution method shares: options with documented defaults and one entry point.

A method is a small class with a ``name``, an ``options`` table (every accepted option and its default)
and a ``compute(request, **options)`` that sends its model passes through the engine's
:class:`~taylorlens.engine.Request`. Options can be given to the constructor (``steps=50``) or to
``attribute`` (``baseline=0.0``); the call wins. Unknown options are rejected with the accepted list.

How the model is called (``batch_size``, ``layer``, ``layer_side``, ``layer_call``, ``forward_kwargs``,
``output``) is accepted by every method and goes to :meth:`Request.build`, never to ``compute``: a method
works on one explained tensor whatever the model takes.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, ClassVar

from torch import Tensor

from taylorlens.engine import MODEL_OPTIONS, Request
from taylorlens.engine.checks import check_options

#: Options every method accepts: they say how the model is called and go to ``Request.build``.
COMMON_OPTIONS: dict[str, Any] = {"batch_size": None, **MODEL_OPTIONS}


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
                warnings.warn(f"{cls.name}: option {old!r} is now {new!r}; {old!r} will be removed in the next release",
                              DeprecationWarning, stacklevel=4)
                options.setdefault(new, options.pop(old))
        return options

    @classmethod
    def accepted(cls) -> dict[str, Any]:
        """Every accepted option with its default."""
        return {**COMMON_OPTIONS, **cls.options}

    def attribute(self, inputs: Any, target: Any = None, **options: Any) -> Any:
        """Attributions for a batch ``inputs`` (B, ...) and ``target`` (int, B ints, (B, T) ints, or None).

        Returns a tensor of the explained variable's shape (the inputs', or the layer's with ``layer=``),
        dtype and device; ``(B, T, ...)`` for T targets per sample; a tuple for a tuple of inputs. Methods
        that stack several maps, such as interior gradients, add a leading dimension.
        """
        chosen = self.resolve({**self.defaults, **options})
        calling = {key: chosen.pop(key) for key in COMMON_OPTIONS}
        request = Request.build(self.model, inputs, target, **calling)
        with request.model_frozen():
            values = self.compute(request, **chosen)
        return request.result(values.to(dtype=request.inputs.dtype, device=request.inputs.device))

    def run(self, request: Request, **options: Any) -> Tensor:
        """The method on a request that is already built (a wrapper's derived request, such as SmoothGrad's
        noisy copies from :meth:`Request.repeated`): options checked, the model calling ones ignored."""
        chosen = self.resolve({**self.defaults, **options})
        for key in COMMON_OPTIONS:
            chosen.pop(key)
        return self.compute(request, **chosen)

    def compute(self, request: Request, **options: Any) -> Tensor:
        raise NotImplementedError
