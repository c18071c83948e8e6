"""The three principles of a good attribution (Deng et al., AAAI 2021, Sec. "Three Principles of
Attribution" and Table 2).

1. ``low_approximation_error``: after Taylor reformulation, the approximation error ``epsilon(x~, K)`` is
   low for every baseline (similar to completeness);
2. ``correct_assignment``: independent terms of ``x_i`` go to ``x_i`` only, interactive terms of a subset
   ``A`` to the features of ``A`` only;
3. ``unbiased_baseline``: the ``Delta_i`` do not differ much between features (e.g. averaged over baselines
   drawn from a small-variance distribution).

Each method class carries ``principles = {principle: level}`` with level "full", "partial" or "no"
(Table 2: GI none; Occlusion-1/-patch the second partially; DeepLIFT and epsilon-LRP the first;
Integrated Gradients the first two; Expected Gradients all three). :func:`principles_followed` counts them
(full = 1, partial = 1/2), the x-axis of the paper's Fig. 2 and Fig. 3.
"""

from __future__ import annotations

from typing import Any

from taylorlens.engine.checks import AttributionInputError
from taylorlens.methods.base import Method
from taylorlens.methods.registry import MethodInfo, method_class

PRINCIPLES = ("low_approximation_error", "correct_assignment", "unbiased_baseline")
#: How much each level counts towards the number of principles followed.
LEVELS = {"full": 1.0, "partial": 0.5, "no": 0.0}


def principles_followed(method: Any) -> float:
    """Number of principles ``method`` follows (a name, a Method class or a MethodInfo): full 1, partial 1/2."""
    if isinstance(method, MethodInfo):
        principles = method.principles
    elif isinstance(method, type) and issubclass(method, Method):
        principles = method.principles
    else:
        principles = method_class(method).principles
    name = getattr(method, "name", method)
    missing = [p for p in PRINCIPLES if p not in principles]
    bad = {p: v for p, v in principles.items() if p not in PRINCIPLES or v not in LEVELS}
    if missing or bad:
        raise AttributionInputError(
            f"method {name!r} must give a level ({', '.join(LEVELS)}) for each principle "
            f"{', '.join(PRINCIPLES)}; missing {missing}, invalid {bad}"
        )
    return sum(LEVELS[principles[p]] for p in PRINCIPLES)
