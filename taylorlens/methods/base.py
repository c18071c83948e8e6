"""The shape every attribution method shares: options with documented defaults and one entry point.

A method is a small class with a ``name``, an ``options`` table (every accepted option and its default)
and a ``compute(request, **options)`` that sends its model passes through the engine's
:class:`~taylorlens.engine.Request`. Options can be given to the constructor (``steps=50``) or to
``attribute`` (``baseline=0.0``); the call wins. Unknown options are rejected with the accepted list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from torch import Tensor

from taylorlens.engine import Request
from taylorlens.engine.checks import check_options

#: Options every method accepts.
COMMON_OPTIONS: dict[str, Any] = {"batch_size": None}


class Method:
    """Base of all attribution methods (Captum-like: ``Method(model, **options).attribute(x, target)``)."""

    name: ClassVar[str]
    #: Accepted options and their defaults (without :data:`COMMON_OPTIONS`).
    options: ClassVar[dict[str, Any]] = {}
    #: The Taylor framework's three principles (Deng et al. 2021, Table 2), filled in by taylorlens.taylor.
    principles: ClassVar[dict[str, str]] = {}

    def __init__(self, model: Callable, **options: Any) -> None:
        self.model = model
        self.defaults = options
        self.resolve(options)

    def resolve(self, options: dict[str, Any]) -> dict[str, Any]:
        """Every option of one call: documented defaults overridden by ``options`` (checked)."""
        return {**self.accepted(), **check_options(self.name, options, self.accepted())}

    @classmethod
    def accepted(cls) -> dict[str, Any]:
        """Every accepted option with its default."""
        return {**COMMON_OPTIONS, **cls.options}

    def attribute(self, inputs: Tensor, target: Any = None, **options: Any) -> Tensor:
        """Attributions for a batch ``inputs`` (B, ...) and ``target`` (int, B ints, or None).

        Returns a tensor of the inputs' shape, dtype and device (methods that stack several maps, such as
        interior gradients, add a leading dimension).
        """
        chosen = self.resolve({**self.defaults, **options})
        request = Request.build(self.model, inputs, target, chosen.pop("batch_size"))
        with request.model_frozen():
            return self.compute(request, **chosen).to(dtype=inputs.dtype, device=inputs.device)

    def compute(self, request: Request, **options: Any) -> Tensor:
        raise NotImplementedError
