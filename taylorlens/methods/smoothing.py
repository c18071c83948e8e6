"""Smoothing over Gaussian noise: SmoothGrad around any method, and SmoothTaylor.

SmoothGrad (Smilkov et al. 2017; SmoothTaylor paper Eq. 4): ``(1/N') sum_n M(x + eps_n)``,
``eps_n ~ N(0, sigma'^2)``, for any attribution method ``M`` named by ``inner``.

SmoothTaylor (Goh et al. 2020, Eq. 9 with the roots of Eq. 10):
``(1/R) sum_r (x_i - z_i^r) df(z^r)/dx_i`` with ``z^r = x + eps_r``, ``eps_r ~ N(0, sigma^2)``; by the
paper's theorem this is SmoothGrad with the map ``M = grad f(x + eps) * (-eps)``. Both draw their noise
with :func:`gaussian_noise`, so the same seed gives the same noise in both.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from taylorlens.engine import Points, Request
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
        noisy = (x[:, None] + noise).flatten(0, 1)
        method = method_class(inner)(request.model, **inner_options)
        maps = method.attribute(noisy, request.repeated(n_samples, noisy).targets, batch_size=request.batch_size)
        lead = maps.shape[: maps.dim() - x.dim()]
        return maps.view(*lead, x.shape[0], n_samples, *x.shape[1:]).mean(dim=len(lead) + 1)


@register
class SmoothTaylor(Method):
    """SmoothTaylor (Goh et al. 2020, Eq. 9-10): ``mean_r (x - z_r) * grad f(z_r)``, ``z_r = x + eps_r``.

    Options: ``sigma`` (0.5, the paper's Fig. 1 setting; noise std in input units), ``n_roots`` (150),
    ``seed``. ``sigma="adaptive_aupc"`` / ``"adaptive_autvc"`` / a callable objective searches sigma per
    input (Algorithm 1, :mod:`taylorlens.methods.adaptive`; ``adaptive`` = dict of its settings); the
    returned tensor then carries the chosen sigmas as ``maps.sigmas`` (B,).
    """

    name = "smooth_taylor"
    # First-order Taylor terms at Gaussian roots around x: unbiased baselines only (Deng et al. 2021).
    principles = {"low_approximation_error": "no", "correct_assignment": "no", "unbiased_baseline": "full"}
    options = {"sigma": 0.5, "n_roots": 150, "seed": None, "adaptive": None}

    def compute(self, request: Request, sigma: Any, n_roots: int, seed: int | None, adaptive: Any) -> Tensor:
        if isinstance(sigma, str) or callable(sigma):  # adaptive noising, Algorithm 1: methods/adaptive.py
            from taylorlens.methods.adaptive import adaptive_noising

            maps, sigmas = adaptive_noising(request, sigma, n_roots, seed, **(adaptive or {}))
            maps.sigmas = sigmas
            return maps
        return smooth_taylor(request, gaussian_noise(request, n_roots, sigma, seed, count_name="n_roots"))


def smooth_taylor(request: Request, noise: Tensor) -> Tensor:
    """Eq. 9 for roots ``x + noise`` with ``noise`` of shape ``(B, R, ...)``."""
    x, roots = request.inputs, noise.shape[1]

    def build(sample: Tensor, variant: Tensor) -> Tensor:
        return x[sample] + noise[sample, variant]

    return request.gradient_sum(Points(x, roots, build), lambda chunk: -noise[chunk.sample, chunk.variant] / roots)
