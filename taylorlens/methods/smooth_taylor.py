"""SmoothTaylor (Goh et al., ICPR 2020) and its adaptive noising (Sec. V, Algorithm 1).

SmoothTaylor (Eq. 9 with the roots of Eq. 10): ``(1/R) sum_r (x_i - z_i^r) df(z^r)/dx_i`` with
``z^r = x + eps_r``, ``eps_r ~ N(0, sigma^2)``; by the paper's theorem this is SmoothGrad with the map
``M = grad f(x + eps) * (-eps)``. Its roots come from :func:`~taylorlens.methods.smoothing.gaussian_noise`,
so the same seed gives SmoothGrad and SmoothTaylor the same noise.

Adaptive noising (Algorithm 1): per input, a line search over the noise scale ``sigma`` minimising the
AUPC (sensitivity) or the AUTVC (noise) of the SmoothTaylor map: start at ``sigma = mean |x|``; each
iteration tries ``|sigma + alpha|``, else ``|sigma - alpha|``; when the objective gets worse,
``alpha *= gamma`` and the stop count grows (the search stops once it exceeds ``s_max``); otherwise the
stop count resets and the best ``sigma`` so far is kept. Defaults are the paper's: ``i_max=20, s_max=3,
alpha=0.1, gamma=0.9``, ``R = n_roots = 150``.

All inputs search together: each iteration evaluates the inputs still searching as one sub-request
(:meth:`Request.subset`): SmoothTaylor through the engine's chunked gradient pass, the objective through
:mod:`taylorlens.metrics`. The same standard-normal roots ``eps`` (drawn once from ``seed``) are scaled by
every candidate ``sigma``, so candidates are compared on common random numbers; AUPC's perturbation noise
comes from ``seed`` too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from taylorlens.engine import Points, Request
from taylorlens.engine.checks import AttributionInputError, check_options, check_positive_int, warn_renamed
from taylorlens.methods.base import Method
from taylorlens.methods.registry import register
from taylorlens.methods.smoothing import gaussian_noise
from taylorlens.metrics.perturbation import aupc
from taylorlens.metrics.smoothness import autvc

#: Search settings (Algorithm 1's parameters) and their defaults.
SEARCH_DEFAULTS: dict[str, Any] = {"i_max": 20, "s_max": 3, "alpha": 0.1, "gamma": 0.9, "metric_options": None}
#: ``adaptive`` names: the objective Algorithm 1 minimises.
OBJECTIVES = ("aupc", "autvc")
#: The old spellings (``sigma="adaptive_aupc"``), accepted for one release with a DeprecationWarning.
_OLD_OBJECTIVES = {f"adaptive_{name}": name for name in OBJECTIVES}
#: An objective: ``(model, inputs, attributions, target) -> (B,)`` scores, lower is better.
Objective = Callable[[Any, Tensor, Tensor, Any], Tensor]


@register
class SmoothTaylor(Method):
    """SmoothTaylor (Goh et al. 2020, Eq. 9-10): ``mean_r (x - z_r) * grad f(z_r)``, ``z_r = x + eps_r``.

    Options: ``sigma`` (0.5, the paper's Fig. 1 setting; noise std in input units, a number), ``n_roots``
    (150), ``seed``. ``adaptive="aupc"`` / ``"autvc"`` / a callable objective searches sigma per input
    instead (Algorithm 1, starting at ``mean |x|`` as the paper does, so ``sigma`` is not used);
    ``adaptive_options`` = dict of its settings ``i_max``, ``s_max``, ``alpha``, ``gamma`` and
    ``metric_options`` (keyword arguments of the objective's metric, e.g. ``{"k": 3, "L": 10}`` for small
    images). The returned tensor then carries the chosen sigmas as ``maps.sigmas`` (B,). A callable
    objective is ``(model, inputs, attributions, target) -> (B,)`` scores to minimise. The old spellings
    ``sigma="adaptive_aupc"`` and ``adaptive={...settings...}`` still work with a DeprecationWarning.
    """

    name = "smooth_taylor"
    # First-order Taylor terms at Gaussian roots around x: unbiased baselines only (Deng et al. 2021).
    principles = {"low_approximation_error": "no", "correct_assignment": "no", "unbiased_baseline": "full"}
    options = {"sigma": 0.5, "n_roots": 150, "seed": None, "adaptive": None, "adaptive_options": None}

    def compute(
        self, request: Request, sigma: Any, n_roots: int, seed: int | None, adaptive: Any, adaptive_options: Any
    ) -> Tensor:
        adaptive, adaptive_options = _current_adaptive(sigma, adaptive, adaptive_options)
        if adaptive is not None:  # adaptive noising, Algorithm 1
            maps, sigmas = adaptive_noising(request, adaptive, n_roots, seed, **adaptive_options)
            maps.sigmas = sigmas
            return maps
        return smooth_taylor(request, gaussian_noise(request, n_roots, sigma, seed, count_name="n_roots"))


def _current_adaptive(sigma: Any, adaptive: Any, options: Any) -> tuple[Any, dict[str, Any]]:
    """``(objective or None, search settings)`` from the options, translating the old spellings."""
    if isinstance(adaptive, dict):  # old: ``adaptive`` held the search settings
        warn_renamed("smooth_taylor", "adaptive={...search settings...}", "adaptive_options={...} ('adaptive' "
                     "names the objective)", stacklevel=6)
        if options is not None:
            raise AttributionInputError("smooth_taylor: pass the search settings once, in 'adaptive_options'")
        adaptive, options = None, adaptive
    if isinstance(sigma, str) and sigma not in _OLD_OBJECTIVES and sigma not in OBJECTIVES:
        raise AttributionInputError(f"smooth_taylor: sigma must be a number (the noise std), got {sigma!r}; "
                                    f"adaptive noising is adaptive={' or '.join(map(repr, OBJECTIVES))}")
    if isinstance(sigma, str) or callable(sigma):  # old: ``sigma`` named the objective
        warn_renamed("smooth_taylor", f"sigma={sigma!r}", f"adaptive={_OLD_OBJECTIVES.get(sigma, sigma)!r} "
                     "(sigma is a number)", stacklevel=6)
        if adaptive is not None:
            raise AttributionInputError("smooth_taylor: the objective is given twice, as sigma and as adaptive")
        adaptive = _OLD_OBJECTIVES.get(sigma, sigma)
    if options is not None and not isinstance(options, dict):
        raise AttributionInputError(f"smooth_taylor: adaptive_options must be a dict of search settings "
                                    f"({', '.join(SEARCH_DEFAULTS)}), got {type(options).__name__}")
    if options and adaptive is None:
        raise AttributionInputError("smooth_taylor: adaptive_options were given without adaptive= (the "
                                    f"objective: {', '.join(map(repr, OBJECTIVES))} or a callable)")
    if adaptive is not None and not (callable(adaptive) or adaptive in OBJECTIVES):
        raise AttributionInputError(
            f"smooth_taylor: adaptive must be None, one of {', '.join(map(repr, OBJECTIVES))} or a callable "
            f"(model, inputs, attributions, target) -> (B,) scores to minimise, got {adaptive!r}"
        )
    return adaptive, dict(options or {})


def smooth_taylor(request: Request, noise: Tensor) -> Tensor:
    """Eq. 9 for roots ``x + noise`` with ``noise`` of shape ``(B, R, ...)``."""
    x, roots = request.inputs, noise.shape[1]

    def build(sample: Tensor, variant: Tensor) -> Tensor:
        return x[sample] + noise[sample, variant]

    return request.gradient_sum(Points(x, roots, build), lambda chunk: -noise[chunk.sample, chunk.variant] / roots)


def adaptive_noising(
    request: Request, objective: str | Objective, n_roots: int, seed: int | None, **search: Any
) -> tuple[Tensor, Tensor]:
    """Algorithm 1 for every input of ``request`` at once; returns the best maps and sigmas."""
    settings = {**SEARCH_DEFAULTS, **check_options("smooth_taylor adaptive", search, SEARCH_DEFAULTS)}
    i_max = check_positive_int("i_max", settings["i_max"])
    s_max = check_positive_int("s_max", settings["s_max"], minimum=0)
    x = request.inputs
    seed = int(torch.randint(2**31, (1,))) if seed is None else seed
    score = _objective(objective, settings["metric_options"] or {}, seed)
    eps = gaussian_noise(request, check_positive_int("n_roots", n_roots), 1.0, seed, count_name="n_roots")
    tail = (1,) * (x.dim() - 1)

    def evaluate(index: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
        sub = request.subset(index)
        maps = smooth_taylor(sub, sigma.view(-1, 1, *tail) * eps[index])
        inputs, targets, _ = sub.reentry()
        return score(request.model, inputs, maps, targets).detach(), maps

    batch = x.shape[0]
    everyone = torch.arange(batch, device=x.device)
    sigma = x.abs().flatten(1).mean(1)
    auc, maps = evaluate(everyone, sigma)
    alpha = torch.full_like(sigma, float(settings["alpha"]))
    stops = torch.zeros(batch, dtype=torch.long, device=x.device)
    best_sigma, best_auc, best_maps = sigma.clone(), auc.clone(), maps.clone()
    active = torch.ones(batch, dtype=torch.bool, device=x.device)
    for _ in range(i_max):
        index = active.nonzero()[:, 0]
        if index.numel() == 0:
            break
        up = (sigma[index] + alpha[index]).abs()
        candidate_auc, candidate_maps = evaluate(index, up)
        worse = candidate_auc > auc[index]
        candidate = torch.where(worse, (sigma[index] - alpha[index]).abs(), up)
        if bool(worse.any()):
            candidate_auc[worse], candidate_maps[worse] = evaluate(index[worse], candidate[worse])
        sigma[index] = candidate
        got_worse = candidate_auc > auc[index]
        stop = got_worse & (stops[index] > s_max)
        decay = index[got_worse & ~stop]
        alpha[decay] *= settings["gamma"]
        stops[decay] += 1
        active[index[stop]] = False
        stops[index[~got_worse]] = 0
        improved = ~got_worse & (candidate_auc < best_auc[index])
        best_auc[index[improved]] = candidate_auc[improved]
        best_sigma[index[improved]] = candidate[improved]
        best_maps[index[improved]] = candidate_maps[improved]
        auc[index] = candidate_auc
    return best_maps, best_sigma


def _objective(objective: str | Objective, options: dict[str, Any], seed: int) -> Objective:
    if callable(objective):
        return objective
    if objective == "aupc":
        return lambda model, x, maps, target: aupc(model, x, maps, target, seed=seed, **options).aupc
    if objective == "autvc":
        return lambda model, x, maps, target: autvc(maps, **options).autvc
    raise AttributionInputError(
        f"adaptive must be one of {', '.join(map(repr, OBJECTIVES))} or a callable "
        f"(model, inputs, attributions, target) -> (B,) scores to minimise, got {objective!r}"
    )
