"""Leave the user's model exactly as it was: parameters, ``.grad``, ``requires_grad`` and ``training``."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from torch import nn

#: ids of the models inside a ``frozen`` block: a nested block (SmoothGrad's inner method) leaves them alone.
_frozen_now: set[int] = set()
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CONTEXTLIB = os.path.abspath(contextlib.__file__)


@contextmanager
def frozen(model: Callable) -> Iterator[None]:
    """Evaluate ``model`` without touching its state.

    Parameters stop requiring gradients for the duration (so no weight gradients are computed: the backward
    pass only goes to the inputs) and get their flags back on exit, also after an exception. ``training``
    is never changed, but a model in training mode gets a warning: dropout and batch-norm statistics then
    make attributions random. Nested blocks for the same model do nothing (the outermost one restores).
    """
    if id(model) in _frozen_now:
        yield
        return
    if not isinstance(model, nn.Module):
        if not callable(model):
            raise TypeError(f"model must be an nn.Module or a callable, got {type(model).__name__}")
        yield
        return
    if model.training:
        warnings.warn(
            "the model is in training mode: dropout and batch-norm make attributions random; "
            "call model.eval() first",
            stacklevel=_caller_stacklevel(),
        )
    flags = [(p, p.requires_grad) for p in model.parameters()]
    modes = [(module, module.training) for module in model.modules()]
    _frozen_now.add(id(model))
    try:
        for parameter, _ in flags:
            parameter.requires_grad_(False)
        yield
    finally:
        _frozen_now.discard(id(model))
        for parameter, flag in flags:
            parameter.requires_grad_(flag)
        for module, mode in modes:
            module.training = mode


def _caller_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning in :func:`frozen` point at the first frame outside taylorlens."""
    frame, level = sys._getframe(2), 2  # frame 1 is frozen itself
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if not (path.startswith(_PACKAGE_DIR + os.sep) or path == _CONTEXTLIB):
            break
        frame, level = frame.f_back, level + 1
    return level
