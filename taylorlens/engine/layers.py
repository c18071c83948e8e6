"""Explaining an inner layer: find it, read its value once, substitute evaluation points for it.

With ``layer=`` the explained variable is a layer's output (``side="output"``) or its first input
(``side="input"``), and the model is called on the user's own inputs (token ids are fine). The layer's value
is read once per input (:meth:`LayerSite.capture`); during the chunked passes the evaluation points are put
in its place (:meth:`LayerSite.substituted`): on the output side the layer itself is skipped (its forward
returns the points), so IG-50 at a word embedding costs 50 passes of the rest of the model and no embedding
look-up. Hooks and patched forwards never outlive the ``with`` block, also after an exception.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from taylorlens.engine.checks import AttributionInputError, check_choice, check_positive_int

SIDES = ("output", "input")


@dataclass(frozen=True)
class LayerSite:
    """Which layer, which side of it and (for a layer called several times per forward) which call."""

    module: nn.Module
    name: str
    side: str = "output"
    call: int | None = None

    @classmethod
    def resolve(cls, model: Any, layer: Any, side: Any, call: Any) -> LayerSite:
        """Check ``layer`` (a module inside ``model`` or its dotted name), ``side`` and ``call``."""
        side = check_choice("layer_side", side, SIDES)
        if call is not None:
            call = check_positive_int("layer_call", call, minimum=0)
        if not isinstance(model, nn.Module):
            raise AttributionInputError(f"layer= needs the model to be an nn.Module, got {type(model).__name__}")
        names = {module: name for name, module in model.named_modules()}
        if isinstance(layer, nn.Module):
            if layer not in names:
                raise AttributionInputError(
                    f"layer {type(layer).__name__} is not a module of the model; give a module from "
                    "model.named_modules() or its dotted name"
                )
            return cls(layer, names[layer] or "<model>", side, call)
        if not isinstance(layer, str):
            raise AttributionInputError(f"layer must be an nn.Module or a dotted name, got {type(layer).__name__}")
        modules = dict(model.named_modules())
        if layer not in modules:
            close = difflib.get_close_matches(layer, [n for n in modules if n], n=5, cutoff=0.4)
            hint = f"closest names: {', '.join(close)}" if close else "see model.named_modules()"
            raise AttributionInputError(f"layer {layer!r} is not in the model; {hint}")
        return cls(modules[layer], layer, side, call)

    @contextmanager
    def capture(self, store: list, cut: bool = False) -> Iterator[None]:
        """Append the layer's value (output or first input) of every call inside the block to ``store``.

        With ``cut`` the forward pass stops once the explained call's value is stored (the rest of the model
        is not evaluated): the block ends quietly, ``store`` holds the values up to that call.
        """
        wanted = self.call or 0

        def keep(value: Any) -> None:
            store.append(value)
            if cut and len(store) > wanted:
                raise _Captured

        if self.side == "output":
            def hook(module: nn.Module, args: tuple, output: Any) -> None:
                keep(output)

            handle = self.module.register_forward_hook(hook)
        else:
            def hook(module: nn.Module, args: tuple) -> None:  # type: ignore[misc]
                keep(args[0] if args else None)

            handle = self.module.register_forward_pre_hook(hook)
        try:
            yield
        except _Captured:
            pass
        finally:
            handle.remove()

    def chosen(self, values: list, batch: int) -> Tensor:
        """The captured value of the explained call, checked: a floating-point tensor ``(batch, ...)``."""
        if not values:
            raise AttributionInputError(f"layer {self.name!r} was not called in the model's forward pass")
        if self.call is None and len(values) > 1:
            raise AttributionInputError(
                f"layer {self.name!r} is called {len(values)} times per forward pass; choose one call with "
                f"layer_call= (0 to {len(values) - 1})"
            )
        index = 0 if self.call is None else self.call
        if index >= len(values):
            raise AttributionInputError(
                f"layer_call={index} but layer {self.name!r} is called {len(values)} time(s) per forward pass"
            )
        value = values[index]
        what = f"the {self.side} of layer {self.name!r}"
        if not isinstance(value, Tensor):
            raise AttributionInputError(
                f"{what} is a {type(value).__name__}, not a tensor: choose a layer whose {self.side} is one "
                "tensor (e.g. the embedding, not a module returning a tuple)"
            )
        if not value.is_floating_point():
            raise AttributionInputError(
                f"{what} has dtype {value.dtype}: only floating-point values have gradients; choose the "
                "layer whose output is the embedding (layer_side='output')"
            )
        if value.dim() < 1 or value.shape[0] != batch:
            raise AttributionInputError(
                f"{what} has shape {tuple(value.shape)}: its first dimension must be the batch ({batch}); "
                "layers with time-first outputs are not supported"
            )
        return value

    @contextmanager
    def substituted(self, points: Tensor) -> Iterator[None]:
        """Put ``points`` in the place of the layer's value for the explained call inside the block."""
        calls = [0]

        def explained_call() -> bool:
            index, calls[0] = calls[0], calls[0] + 1
            return index == (self.call or 0)

        if self.side == "output":
            original = self.module.forward
            had_own = "forward" in vars(self.module)

            def forward(*args: Any, **kwargs: Any) -> Any:
                return points if explained_call() else original(*args, **kwargs)

            self.module.forward = forward  # skips the layer itself: its value is the points
            try:
                yield
            finally:
                if had_own:
                    self.module.forward = original
                else:
                    del self.module.forward
            return

        def replace_input(module: nn.Module, args: tuple) -> tuple | None:
            return (points, *args[1:]) if explained_call() else None

        handle = self.module.register_forward_pre_hook(replace_input)
        try:
            yield
        finally:
            handle.remove()


class _Captured(Exception):
    """Raised inside the model's forward once the explained value is captured (:meth:`LayerSite.capture`)."""
