"""The ``taylor`` attribution method: first- or second-order Taylor attribution (Deng et al., AAAI 2021).

Registered as ``taylorlens.attribute(model, x, target, method="taylor", order=2, baseline=0.0)`` so that
Taylor attributions are benchmarked like every other method.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from taylorlens.engine import Request
from taylorlens.methods.base import Method
from taylorlens.methods.registry import register
from taylorlens.taylor.terms import taylor_attribution


@register
class TaylorAttribution(Method):
    """K-order Taylor attribution of ``f(x) - f(baseline)``, interactive terms split equally (Deng et al.).

    ``order`` (2): 1 gives ``(x - x~) * f_x`` (Gradient*Input at ``baseline=0``, Theorem 1); 2 gives
    ``(x - x~) * (f_x - 1/2 H_x (x - x~))``, the first-order, second-order independent and half of every
    second-order interactive term (Sec. "Second-order Taylor Attribution", ``w = 1/2``), from the gradient
    and one Hessian-vector product per sample. ``baseline`` (0.0): ``x~``, a number or a tensor
    broadcastable to the inputs. Sign: like every method, it explains ``f(x) - f(x~)``.
    """

    name = "taylor"
    options = {"order": 2, "baseline": 0.0}
    # Second order: small (not zero) approximation error, correct equal-split assignment, fixed baseline.
    principles = {"low_approximation_error": "partial", "correct_assignment": "full", "unbiased_baseline": "no"}

    def compute(self, request: Request, order: int, baseline: Any) -> Tensor:
        return taylor_attribution(request, order, baseline)
