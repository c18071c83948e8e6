"""Second-order Taylor reformulations of attribution methods (Deng et al., AAAI 2021, Sec. "Unified
Reformulations", Theorems 1-5 and the Expected Gradients corollary; proofs in Appendix A).

Every reformulation is expanded at the input ``x`` with ``Delta = x~ - x`` and returned with the methods'
sign (it explains ``f(x) - f(x~)``, so it is minus the assigned Taylor terms) and shape ``(B, ...)``:

* Gradient*Input (Theorem 1): ``-T^alpha_i`` at ``x~ = 0``, i.e. ``x_i f_xi``;
* Occlusion-1 (Theorem 2): ``-(T^alpha_i + T^beta_d_i)`` at ``x~ = x|_{x_i = baseline}``;
* Occlusion-patch (Theorem 3): for the patch ``p`` (window) containing ``x_i``,
  ``-(sum_{j in p} T^alpha_j + 1/2 Delta_p^T H_x Delta_p)``, i.e. the first-order, independent and all
  interactive terms inside the patch (the text's second-order formula drops the 1/2 on the double sum over
  ``i != j``; the one here is the second-order expansion itself). Overlapping windows are averaged exactly
  like :class:`~taylorlens.methods.Occlusion` does;
* DeepLIFT Rescale (Theorem 4): at a nonlinearity ``sigma``, the Rescale multiplier
  ``(sigma(y) - sigma(y~)) / (y - y~)`` becomes its second-order Taylor counterpart
  ``sigma'(y) - 1/2 sigma''(y) (y - y~)`` (the output change of the unit replaced by ``T^alpha + T^beta``,
  shared among its inputs in proportion to ``z_ji - z~_ji`` as in the theorem). ``nonlinearity=k``
  reformulates only the k-th nonlinearity of the forward pass, chosen by the engine's
  :class:`~taylorlens.engine.RuleSelector` (the paper computes the change layer by layer and averages, see
  :func:`deeplift_layers`); ``nonlinearity=None`` reformulates every one;
* Integrated Gradients (Theorem 5): ``-(T^alpha_i + T^beta_d_i + 1/2 sum_{j != i} T^beta_t_{i,j})``;
* Expected Gradients (corollary): the mean of Theorem 5 over the sampled baselines.

``percentage_change`` is the paper's validation metric (Sec. "Empirical Validations of Reformulations").
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from taylorlens.engine import MODEL_OPTIONS, Points, Request, RescaleRule, RuleSelector, inputs_points
from taylorlens.engine.checks import AttributionInputError, check_options, check_positive_int
from taylorlens.engine.modified_gradients import Pair
from taylorlens.methods.occlusion import Windows
from taylorlens.methods.paths import expected_baselines
from taylorlens.methods.registry import method_class
from taylorlens.taylor.terms import taylor_attribution


def reformulate(
    method: str, model: Callable, inputs: Any, target: Any = None, batch_size: int | None = None, **options: Any
) -> Any:
    """The second-order Taylor reformulation of ``method`` for a batch ``inputs`` (B, ...) and ``target``.

    ``method``: one of :data:`REFORMULATED`, with the same options (and defaults, read from the method
    itself), so ``percentage_change(attribute(model, x, t, method, **o), reformulate(method, model, x, t,
    **o))`` is the paper's validation. ``deeplift`` also takes ``nonlinearity`` (the index of the one
    reformulated nonlinearity, see the module docstring; the old name ``layer=<int>`` still works with a
    DeprecationWarning). The model calling options (``layer=`` a module, ``forward_kwargs``, ``output``, ...)
    are those of every method.
    """
    if method not in REFORMULATED:
        raise AttributionInputError(
            f"no Taylor reformulation for method {method!r}; available: {', '.join(REFORMULATED)}"
        )
    if method == "deeplift" and isinstance(options.get("layer"), int) and not isinstance(options["layer"], bool):
        warnings.warn("reformulate('deeplift', layer=k) is now nonlinearity=k (layer= names a module of the model)",
                      DeprecationWarning, stacklevel=2)
        options["nonlinearity"] = options.pop("layer")
    options = method_class(method).current_names(options)  # old option names, as the method takes them
    reformulation, own = REFORMULATED[method]
    accepted = {**own, **MODEL_OPTIONS}
    chosen = {**accepted, **check_options(f"reformulate {method}", options, accepted)}
    calling = {key: chosen.pop(key) for key in MODEL_OPTIONS}
    request = Request.build(model, inputs, target, batch_size, caller=f"reformulate {method}", **calling)
    with request.model_frozen():
        result = reformulation(request, **chosen)
    return request.result(result.to(dtype=request.inputs.dtype, device=request.inputs.device))


def deeplift_layers(model: Callable, inputs: Tensor, target: Any = None, baseline: Any = 0.0) -> int:
    """How many elementwise nonlinearities DeepLIFT meets in one forward pass (the layers of Theorem 4)."""
    request = Request.build(model, inputs, target)
    with request.model_frozen():
        return request.nonlinearities(inputs_points(request.inputs, request.broadcast(baseline)), RescaleRule())


def percentage_changes(original: Tensor, reformulated: Tensor) -> Tensor:
    """Per sample ``||a_o - a_r||_2 / ||a_o||_2 * 100`` (0 where both are zero), ``(B,)``."""
    if original.shape != reformulated.shape:
        raise AttributionInputError(
            f"original {tuple(original.shape)} and reformulated {tuple(reformulated.shape)} must have one shape"
        )
    difference = (original - reformulated).flatten(1).norm(dim=1)
    size = original.flatten(1).norm(dim=1)
    ratio = difference / torch.where(size == 0, torch.ones_like(size), size)
    return 100 * torch.where(size == 0, torch.where(difference == 0, 0.0, float("inf")).to(ratio), ratio)


def percentage_change(original: Tensor, reformulated: Tensor) -> float:
    """The paper's average percentage change ``d = (1/N) sum_i ||a_o(i) - a_r(i)|| / ||a_o(i)|| * 100%``."""
    return float(percentage_changes(original, reformulated).mean())


def _occlusion(request: Request, window: Any, stride: Any, baseline: Any) -> Tensor:
    """Theorems 2-3: ``-(f_x . Delta_w + 1/2 Delta_w^T H_x Delta_w)`` per window, spread like Occlusion."""
    x = request.inputs
    windows = Windows.of(x, window, stride)
    delta = request.broadcast(baseline) - x

    def directions(sample: Tensor, variant: Tensor) -> Tensor:
        return delta[sample] * windows.mask(variant)

    drops = x.new_zeros(x.shape[0], windows.count)
    for chunk in request.hvp_chunks(Points(x, windows.count, lambda s, v: x[s]), directions):
        change = (chunk.directions * (chunk.grads + 0.5 * chunk.hvps)).flatten(1).sum(1)
        drops[chunk.sample, chunk.variant] = -change
    return windows.average(drops)


def _deeplift(request: Request, baseline: Any, nonlinearity: int | None) -> Tensor:
    """Theorem 4: DeepLIFT with the Taylor multiplier at the ``nonlinearity``-th one (every one if None)."""
    x = request.inputs
    reference = request.broadcast(baseline)
    if nonlinearity is None:
        rule = RuleSelector(_TaylorRescaleRule())
    else:
        rule = RuleSelector(RescaleRule(), {check_positive_int("nonlinearity", nonlinearity, minimum=0):
                                            _TaylorRescaleRule()})
    grads, _ = request.gradients(inputs_points(x, reference), rule)
    return (x - reference) * grads[:, 0]


def _expected_gradients(
    request: Request, references: Tensor | None, sigma: float | None, n_samples: int, seed: int | None
) -> Tensor:
    """Corollary: the mean over the baselines of Theorem 5, ``-Delta (f_x + 1/2 H_x Delta)``.

    Baselines are drawn as :class:`~taylorlens.methods.ExpectedGradients` draws them (same seed, same
    baselines); the method's random ``alpha`` has no counterpart (it is integrated exactly here).
    """
    x = request.inputs
    n_samples = check_positive_int("n_samples", n_samples)
    starts = expected_baselines(x, references, sigma, n_samples, request.generator(seed))
    deltas = starts - x[:, None]
    total = torch.zeros_like(x)
    job = Points(x, n_samples, lambda s, v: x[s])
    for chunk in request.hvp_chunks(job, lambda s, v: deltas[s, v]):
        total.index_add_(0, chunk.sample, -chunk.directions * (chunk.grads + 0.5 * chunk.hvps) / n_samples)
    return total


class _TaylorRescaleRule(RescaleRule):
    """Theorem 4's multiplier ``sigma'(y) - 1/2 sigma''(y) (y - y~)`` in place of Rescale's ratio."""

    name = "taylor_rescale"

    def multiplier(self, f: Callable[[Tensor], Tensor], z: Tensor, out: Tensor, reference: Pair | None) -> Tensor:
        z_ref, _ = reference
        slope, curvature = _first_two_derivatives(f, z)
        return slope - 0.5 * curvature * (z - z_ref)


def _first_two_derivatives(f: Callable[[Tensor], Tensor], z: Tensor) -> tuple[Tensor, Tensor]:
    """``sigma'(z)`` and ``sigma''(z)`` of an elementwise nonlinearity."""
    with torch.enable_grad():
        point = z.detach().requires_grad_(True)
        (slope,) = torch.autograd.grad(f(point).sum(), point, create_graph=True)
        if not slope.requires_grad:  # piecewise linear: sigma'' = 0 almost everywhere
            return slope.detach(), torch.zeros_like(z)
        (curvature,) = torch.autograd.grad(slope.sum(), point, allow_unused=True)
    return slope.detach(), torch.zeros_like(z) if curvature is None else curvature


def _gradient_x_input(request: Request) -> Tensor:
    """Theorem 1: ``-T^alpha`` at ``x~ = 0``."""
    return taylor_attribution(request, 1, 0.0)


def _integrated_gradients(request: Request, baseline: Any) -> Tensor:
    """Theorem 5: ``-(T^alpha + T^beta_d + 1/2 sum_{j != i} T^beta_t)``, the second-order Taylor attribution."""
    return taylor_attribution(request, 2, baseline)


def _defaults(method: str, *names: str) -> dict[str, Any]:
    """The method's own defaults of ``names`` (one source of truth for the method and its reformulation)."""
    options = method_class(method).options
    return {name: options[name] for name in names}


#: Reformulated methods: name -> (reformulation, its options with the method's defaults).
REFORMULATED: dict[str, tuple[Callable[..., Tensor], dict[str, Any]]] = {
    "gradient_x_input": (_gradient_x_input, {}),
    "occlusion": (_occlusion, _defaults("occlusion", "window", "stride", "baseline")),
    "deeplift": (_deeplift, {**_defaults("deeplift", "baseline"), "nonlinearity": None}),
    "integrated_gradients": (_integrated_gradients, _defaults("integrated_gradients", "baseline")),
    "expected_gradients": (
        _expected_gradients, _defaults("expected_gradients", "references", "sigma", "n_samples", "seed")
    ),
}
