"""Plain gradients at the input: gradient, saliency, Gradient*Input.

Signs: attributions are of the explained output ``f_c(x)``; a positive value means increasing the feature
increases the output.
"""

from __future__ import annotations

from torch import Tensor

from taylorlens.engine import Request, inputs_points
from taylorlens.methods.base import Method
from taylorlens.methods.registry import register


def input_gradient(request: Request) -> Tensor:
    """``df_c/dx`` at every input, ``(B, ...)``."""
    grads, _ = request.gradients(inputs_points(request.inputs))
    return grads[:, 0]


@register
class Gradient(Method):
    """Signed gradient ``df_c(x)/dx_i``."""

    name = "gradient"
    # Not a Taylor attribution of f(x) - f(x~) (Deng et al. 2021, Table 2 lists it with no principle).
    principles = {"low_approximation_error": "no", "correct_assignment": "no", "unbiased_baseline": "no"}

    def compute(self, request: Request) -> Tensor:
        return input_gradient(request)


@register
class Saliency(Method):
    """Saliency map ``|df_c(x)/dx_i|`` (Simonyan et al. 2014)."""

    name = "saliency"
    # Not a Taylor attribution of f(x) - f(x~): no principle (Deng et al. 2021).
    principles = {"low_approximation_error": "no", "correct_assignment": "no", "unbiased_baseline": "no"}

    def compute(self, request: Request) -> Tensor:
        return input_gradient(request).abs()


@register
class GradientXInput(Method):
    """Gradient*Input ``x_i * df_c(x)/dx_i`` (Shrikumar et al. 2016; Ancona et al. 2018, Table 1)."""

    name = "gradient_x_input"
    # Deng et al. 2021, Table 2: first-order terms only (Theorem 1), zero baseline.
    principles = {"low_approximation_error": "no", "correct_assignment": "no", "unbiased_baseline": "no"}

    def compute(self, request: Request) -> Tensor:
        return request.inputs * input_gradient(request)
