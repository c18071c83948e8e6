"""Smoothing over Gaussian noise: SmoothGrad around any method, and SmoothTaylor.

SmoothGrad (Smilkov et al. 2017; SmoothTaylor paper Eq. 4): ``(1/N') sum_n M(x + eps_n)``,
``eps_n ~ N(0, sigma'^2)``, for any attribution method ``M`` named by ``inner``.

The inner method runs on the request's noisy copies (:meth:`Request.repeated`), so options given per
sample (a baseline of the batch's shape, forward arguments) follow each copy to its own sample.
SmoothTaylor (:mod:`taylorlens.methods.smooth_taylor`) draws its roots with :func:`gaussian_noise` too, so
the same seed gives the same noise in both.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from taylorlens.engine import Request
from taylorlens.engine.checks import check_nonnegative, check_options, check_positive_int
from taylorlens.methods.base import Method
from taylorlens.methods.registry import method_class, register


def gaussian_noise(
    request: Request, count: int, sigma: float, seed: int | None, count_name: str = "n_samples"
) -> Tensor:
    """``count`` noise draws ``N(0, sigma^2)`` per sample, ``(B, count, ...)``, reproducible by ``seed``.

    ``count_name`` is the option that gave ``count``, named in the error when it is not a positive int.
    """
    x = request.inputs
    count = check_positive_int(count_name, count)
    sigma = check_nonnegative("sigma", sigma)
    shape = (x.shape[0], count, *x.shape[1:])
    return sigma * torch.randn(shape, generator=request.generator(seed), dtype=x.dtype, device=x.device)


@register
class SmoothGrad(Method):
    """SmoothGrad around any method: the mean of ``inner`` over ``n_samples`` noisy copies of each input.

    Options: ``inner`` ("gradient_x_input"; any method name), ``sigma`` (0.15, the noise's standard
    deviation in input units), ``n_samples`` (50), ``seed``; any other option is passed to ``inner``.
    All noisy copies of all inputs form one batch for the inner method, which the engine chunks.
    """

    name = "smoothgrad"
    # Default inner GI: first-order only; noise averages the baseline bias only partly (Deng et al. 2021).
    principles = {"low_approximation_error": "no", "correct_assignment": "no", "unbiased_baseline": "partial"}
    options = {"inner": "gradient_x_input", "sigma": 0.15, "n_samples": 50, "seed": None}

    def resolve(self, options: dict[str, Any]) -> dict[str, Any]:
        """Own options checked here; every other option is checked by, and passed to, the inner method."""
        own = {k: v for k, v in options.items() if k in self.accepted()}
        chosen = super().resolve(own)
        extra = {k: v for k, v in options.items() if k not in own}
        chosen["inner_options"] = check_options(chosen["inner"], extra, method_class(chosen["inner"]).accepted())
        return chosen

    def compute(self, request: Request, inner: str, sigma: float, n_samples: int, seed: int | None,
                inner_options: dict[str, Any]) -> Tensor:
        x = request.inputs
        noise = gaussian_noise(request, n_samples, sigma, seed)
        noisy = request.repeated(n_samples, (x[:, None] + noise).flatten(0, 1))
        maps = method_class(inner)(request.model).run(noisy, **inner_options)
        lead = maps.shape[: maps.dim() - x.dim()]
        return maps.view(*lead, x.shape[0], n_samples, *x.shape[1:]).mean(dim=len(lead) + 1)
