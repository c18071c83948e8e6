"""Leave the user's model exactly as it was: parameters, ``.grad``, ``requires_grad`` and ``training``."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def frozen(model: Callable) -> Iterator[None]:
    """Evaluate ``model`` without touching its state.

    Parameters stop requiring gradients for the duration (so no weight gradients are computed: the backward
    pass only goes to the inputs) and get their flags back on exit, also after an exception. ``training``
    is never changed, but a model in training mode gets a warning: dropout and batch-norm statistics then
    make attributions random.
    """
    if not isinstance(model, nn.Module):
        if not callable(model):
            raise TypeError(f"model must be an nn.Module or a callable, got {type(model).__name__}")
        yield
        return
    if model.training:
        warnings.warn(
            "the model is in training mode: dropout and batch-norm make attributions random; "
            "call model.eval() first",
            stacklevel=4,
        )
    flags = [(p, p.requires_grad) for p in model.parameters()]
    modes = [(module, module.training) for module in model.modules()]
    try:
        for parameter, _ in flags:
            parameter.requires_grad_(False)
        yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)
        for module, mode in modes:
            module.training = mode
