"""Every method by name: ``taylorlens.attribute(model, x, target, method=...)`` and ``taylorlens.methods()``.

Methods reach each other only through this registry (SmoothGrad wraps any method by name).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from taylorlens.engine.checks import AttributionInputError
from taylorlens.methods.base import Method

_REGISTRY: dict[str, type[Method]] = {}
#: Short names the papers and the command line use.
ALIASES = {
    "ig": "integrated_gradients", "eg": "expected_gradients", "gi": "gradient_x_input", "gxi": "gradient_x_input",
    "dl": "deeplift", "lrp": "epsilon_lrp", "occ": "occlusion", "sg": "smoothgrad", "st": "smooth_taylor",
    "gbp": "guided_backprop",
}


@dataclass(frozen=True)
class MethodInfo:
    """What ``taylorlens.methods()`` lists for one method."""

    name: str
    summary: str
    options: dict[str, Any]
    cls: type[Method] = field(repr=False)
    principles: dict[str, str] = field(default_factory=dict)


def register(cls: type[Method]) -> type[Method]:
    """Class decorator adding a method to the registry under ``cls.name``."""
    if cls.name in _REGISTRY:
        raise ValueError(f"method {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def method_class(name: Any) -> type[Method]:
    """The class registered under ``name`` (or a short alias such as "ig"); the error lists the known names."""
    name = ALIASES.get(name, name) if isinstance(name, str) else name
    if not isinstance(name, str) or name not in _REGISTRY:
        raise AttributionInputError(f"unknown method {name!r}; known methods: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def methods() -> dict[str, MethodInfo]:
    """Every method name with its options, their defaults, a one-line summary and its principles."""
    return {
        name: MethodInfo(
            name,
            (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else "",
            cls.accepted(),
            cls,
            dict(cls.principles),
        )
        for name, cls in sorted(_REGISTRY.items())
    }


def attribute(
    model: Callable,
    inputs: Tensor,
    target: Any = None,
    method: str = "integrated_gradients",
    *,
    return_info: bool = False,
    **options: Any,
) -> Any:
    """Attribute ``model``'s output ``target`` to every feature of the batch ``inputs``.

    ``model`` maps ``(B, ...)`` to ``(B, C)`` or ``(B,)``; ``target`` is an int, B ints, or None for
    ``(B,)`` outputs. Returns a tensor of the inputs' shape, dtype and device. See ``taylorlens.methods()``
    for the method names and their options. ``return_info=True`` returns ``(attributions, info)``, ``info``
    a :class:`~taylorlens.methods.base.AttributionInfo` (points spent, per-sample details).
    """
    cls = method_class(method)
    return cls(model).attribute(inputs, target, return_info=return_info, **options)
