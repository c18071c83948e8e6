"""Slow references: every registered method and metric written straight from its paper's equation.

Each reference is a plain loop (over samples, steps, noise draws, windows, features) that calls the model
one point at a time, so it is obviously right and obviously slow; :data:`METHODS` and :data:`METRICS` name
one for every entry of ``taylorlens.methods()`` and ``taylorlens.metrics.available()`` with the options it
is compared at (``tests/test_slow_references.py``). Metrics whose reference needs the metric's own random
draws or a large model point to the test that compares them to a slow loop or to another library instead.
The references that other tests use directly live here too, written once.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


def slow_gradient(model, x, target):
    """``df_c/dx`` one sample at a time."""
    rows = []
    for b in range(x.shape[0]):
        point = x[b].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(point[None])[0, target[b]], point)
        rows.append(grad)
    return torch.stack(rows)


def slow_integrated_gradients(model, x, target, baseline, steps):
    """IG by Eq. 2 of the SmoothTaylor paper, one point at a time: ``(x - z)/M sum_m grad f(z + m/M (x - z))``."""
    result = torch.zeros_like(x)
    for b in range(x.shape[0]):
        total = torch.zeros_like(x[b])
        for m in range(1, steps + 1):
            point = (baseline[b] + m / steps * (x[b] - baseline[b])).clone().requires_grad_(True)
            output = model(point[None])[0, target[b]]
            (grad,) = torch.autograd.grad(output, point)
            total += grad
        result[b] = (x[b] - baseline[b]) * total / steps
    return result


def slow_rescale_deeplift(model: nn.Sequential, x, baseline, target):
    """DeepLIFT Rescale (Ancona Eq. 4 / Prop. 2) by hand, one sample at a time, layer by layer.

    Carries the modified Jacobian ``d^g a / dx`` forward: a Linear multiplies it by ``W``; a nonlinearity by
    its Rescale multiplier ``(f(z) - f(z_ref)) / (z - z_ref)`` (its derivative where ``z == z_ref``).
    """
    result = torch.zeros_like(x)
    for b in range(x.shape[0]):
        a, r = x[b], baseline[b]
        jacobian = torch.eye(x.shape[1], dtype=x.dtype)
        for layer in model:
            if isinstance(layer, nn.Linear):
                a, r, jacobian = layer(a), layer(r), layer.weight @ jacobian
                continue
            fa, fr = layer(a), layer(r)
            point = a.detach().clone().requires_grad_(True)
            (slope,) = torch.autograd.grad(layer(point).sum(), point)
            same = (a - r).abs() < 1e-12
            multiplier = torch.where(same, slope, (fa - fr) / torch.where(same, torch.ones_like(a), a - r))
            a, r, jacobian = fa, fr, multiplier[:, None] * jacobian
        result[b] = (x[b] - baseline[b]) * jacobian[target[b]]
    return result.detach()


def slow_epsilon_lrp(model: nn.Sequential, x, target, epsilon):
    """epsilon-LRP by Ancona Eq. 2, relevance redistributed layer by layer, one sample at a time.

    ``r_i = sum_j z_ji / (z_j + eps sign(z_j)) r_j`` with ``z_ji = w_ji a_i`` and ``z_j = sum_i z_ji + b_j``;
    nonlinearities pass relevance unchanged; the output unit starts with its own value ``S_c(x)``.
    """
    result = torch.zeros_like(x)
    with torch.no_grad():
        for b in range(x.shape[0]):
            activations, a = [], x[b]
            for layer in model:
                activations.append(a)
                a = layer(a)
            relevance = torch.zeros_like(a)
            relevance[target[b]] = a[target[b]]
            for layer, a_in in zip(reversed(model), reversed(activations), strict=True):
                if not isinstance(layer, nn.Linear):
                    continue
                z = layer(a_in)
                stabilised = z + epsilon * torch.where(z >= 0, 1.0, -1.0)
                relevance = (layer.weight * a_in[None, :] / stabilised[:, None] * relevance[:, None]).sum(dim=0)
            result[b] = relevance
    return result


def slow_occlusion(model, x, target, window, stride, value):
    """Each window occluded on its own, one model call per window; each feature gets its windows' mean drop.

    Windows start at 0, stride, ... until the dimension is covered; the last one is cut at the border.
    """
    shape = x.shape[1:]
    total, count = torch.zeros_like(x), torch.zeros_like(x[0])
    starts = [range(0, n - w + s, s) for n, w, s in zip(shape, window, stride, strict=True)]
    with torch.no_grad():
        for b in range(x.shape[0]):
            reference = model(x[b][None])[0, target]
            for corner in itertools.product(*starts):
                region = tuple(slice(c, c + w) for c, w in zip(corner, window, strict=True))
                occluded = x[b].clone()
                occluded[region] = value
                total[b][region] += reference - model(occluded[None])[0, target]
                if b == 0:
                    count[region] += 1
    return total / count.clamp(min=1)


def slow_relu_backprop(model: nn.Sequential, x, target, guided: bool):
    """Guided backprop (``guided``) or deconvnet through a Linear/ReLU stack, one sample at a time: at each
    ReLU the incoming gradient is clamped at 0 (and, for guided backprop, masked by ``z > 0``)."""
    rows = []
    with torch.no_grad():
        for b in range(x.shape[0]):
            a, inputs = x[b], []
            for layer in model:
                inputs.append(a)
                a = layer(a)
            grad = torch.zeros_like(a)
            grad[target[b]] = 1.0
            for layer, z in zip(reversed(model), reversed(inputs), strict=True):
                if isinstance(layer, nn.Linear):
                    grad = grad @ layer.weight
                else:
                    grad = grad.clamp(min=0) * ((z > 0).to(z.dtype) if guided else 1.0)
            rows.append(grad)
    return torch.stack(rows)


def noise(x, count, sigma, seed):
    """The noise SmoothGrad, SmoothTaylor and Expected Gradients draw: ``sigma * N(0, 1)``, ``(B, count, ...)``,
    from a generator seeded with ``seed`` (drawn first, before anything else)."""
    generator = torch.Generator().manual_seed(seed)
    return sigma * torch.randn((x.shape[0], count, *x.shape[1:]), generator=generator, dtype=x.dtype), generator


def slow_expected_gradients(model, x, target, sigma, n_samples, seed):
    """Erion et al.: ``mean_k (x - x'_k) grad f(x'_k + alpha_k (x - x'_k))``, ``x'_k ~ N(x, sigma^2)``."""
    draws, generator = noise(x, n_samples, sigma, seed)
    alphas = torch.rand((x.shape[0], n_samples), generator=generator, dtype=x.dtype)
    result = torch.zeros_like(x)
    for b in range(x.shape[0]):
        for k in range(n_samples):
            start = x[b] + draws[b, k]
            point = start + alphas[b, k] * (x[b] - start)
            result[b] += (x[b] - start) * slow_gradient(model, point[None], [target[b]])[0] / n_samples
    return result


def slow_noise_average(model, x, target, sigma, count, seed, term):
    """``mean_r term(x, p_r, grad f(p_r))`` over the noisy points ``p_r = x + eps_r`` of :func:`noise`:
    SmoothGrad of Gradient*Input (Smilkov et al.; Goh et al. Eq. 4) with ``term = p * grad``, SmoothTaylor
    (Goh et al. Eq. 9) with ``term = (x - p) * grad``."""
    draws, _ = noise(x, count, sigma, seed)
    result = torch.zeros_like(x)
    for b in range(x.shape[0]):
        for r in range(count):
            point = x[b] + draws[b, r]
            result[b] += term(x[b], point, slow_gradient(model, point[None], [target[b]])[0]) / count
    return result


def slow_taylor(model, x, target, order, baseline):
    """Deng et al.: ``(x - x~) * (f_x - 1/2 H_x (x - x~))`` (second order), the full Hessian per sample."""
    result = torch.zeros_like(x)
    for b in range(x.shape[0]):
        def explained(v, b=b):
            return model(v[None])[0, target[b]]

        delta = x[b] - baseline
        gradient = torch.autograd.functional.jacobian(explained, x[b])
        hessian = torch.autograd.functional.hessian(explained, x[b])
        result[b] = delta * (gradient - (0.5 * hessian @ delta if order == 2 else 0.0))
    return result


def slow_completeness_gap(model, x, a, target, baseline):
    """``|sum_i a_i - (f(x) - f(baseline))|`` per input."""
    gaps = []
    with torch.no_grad():
        for b in range(x.shape[0]):
            delta = model(x[b][None])[0, target[b]] - model(torch.full_like(x[b], baseline)[None])[0, target[b]]
            gaps.append((a[b].sum() - delta).abs())
    return torch.stack(gaps)


def slow_aopc(model, x, a, target, region, step, baseline):
    """Samek et al. Eq. 12 with single features: remove the most relevant feature, then the next, ...;
    ``AOPC = mean_k (f(x) - f(x^(k)))`` over k = 0..L."""
    values = []
    with torch.no_grad():
        for b in range(x.shape[0]):
            current, drops = x[b].clone(), []
            start = model(current[None])[0, target[b]]
            drops.append(0.0)
            for i in a[b].flatten().argsort(descending=True).tolist():
                current.view(-1)[i] = baseline
                drops.append(float(start - model(current[None])[0, target[b]]))
            values.append(sum(drops) / len(drops))
    return torch.tensor(values, dtype=x.dtype)


def slow_box_share(a, boxes, top_pixels: bool):
    """Per image: the share of the |a| mass inside the box, or (``top_pixels``) of the n highest-scoring
    pixels that lie inside the n-pixel box, pixel by pixel."""
    values = []
    for b in range(a.shape[0]):
        scores = a[b].abs().sum(0)
        top, left, bottom, right = boxes[b].tolist()
        inside = [(i, j) for i in range(scores.shape[0]) for j in range(scores.shape[1])
                  if top <= i < bottom and left <= j < right]
        if top_pixels:
            ranked = sorted(itertools.product(range(scores.shape[0]), range(scores.shape[1])),
                            key=lambda p: -float(scores[p]))[: len(inside)]
            values.append(sum(p in inside for p in ranked) / len(inside))
        else:
            values.append(float(sum(scores[p] for p in inside) / scores.sum()))
    return torch.tensor(values, dtype=a.dtype)


@dataclass(frozen=True)
class Reference:
    """A slow reference and the options both sides run with.

    Methods: ``slow(model, x, target, **options)`` on an MLP with ``activation`` units. Metrics:
    ``slow(model, x, attributions, target, **options)`` (model-free: ``slow(attributions, **options)``).
    ``compared_in`` (see :func:`elsewhere`) instead names the test that compares the fast path to a slow
    loop (or to another library).
    """

    slow: Callable[..., Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    activation: type[nn.Module] = nn.Softplus
    compared_in: str | None = None


def elsewhere(path: str, test: str) -> Reference:
    """A metric compared to a slow loop (or another library) by ``test`` in ``tests/<path>``."""
    return Reference(compared_in=f"tests/{path}::{test}")


BOXES = torch.tensor([[0, 0, 2, 3], [1, 1, 4, 4], [2, 0, 4, 2]])

#: Every registered method -> its slow reference.
METHODS: dict[str, Reference] = {
    "gradient": Reference(slow_gradient),
    "saliency": Reference(lambda model, x, t: slow_gradient(model, x, t).abs()),
    "gradient_x_input": Reference(lambda model, x, t: x * slow_gradient(model, x, t)),
    "integrated_gradients": Reference(
        lambda model, x, t, baseline, steps: slow_integrated_gradients(
            model, x, t, torch.full_like(x, baseline), steps),
        {"baseline": 0.2, "steps": 8},
    ),
    "expected_gradients": Reference(slow_expected_gradients, {"sigma": 0.3, "n_samples": 4, "seed": 0}),
    "interior_gradients": Reference(
        lambda model, x, t, alphas: torch.stack([slow_gradient(model, alpha * x, t) for alpha in alphas]),
        {"alphas": [0.5, 1.0]},
    ),
    "deeplift": Reference(
        lambda model, x, t, baseline: slow_rescale_deeplift(model, x, torch.full_like(x, baseline), t),
        {"baseline": 0.1},
    ),
    "epsilon_lrp": Reference(slow_epsilon_lrp, {"epsilon": 1e-9}),  # on hidden units only: see test_modified
    "guided_backprop": Reference(lambda model, x, t: slow_relu_backprop(model, x, t, guided=True), activation=nn.ReLU),
    "deconvnet": Reference(lambda model, x, t: slow_relu_backprop(model, x, t, guided=False), activation=nn.ReLU),
    "occlusion": Reference(
        lambda model, x, t, window, baseline: torch.cat([
            slow_occlusion(model, x[b: b + 1], t[b], (window,), (1,), baseline) for b in range(x.shape[0])
        ]),
        {"window": 2, "baseline": -0.3},
    ),
    "smoothgrad": Reference(
        lambda model, x, t, sigma, n_samples, seed: slow_noise_average(
            model, x, t, sigma, n_samples, seed, lambda x, point, grad: point * grad),
        {"sigma": 0.2, "n_samples": 4, "seed": 0},
    ),
    "smooth_taylor": Reference(
        lambda model, x, t, sigma, n_roots, seed: slow_noise_average(
            model, x, t, sigma, n_roots, seed, lambda x, root, grad: (x - root) * grad),
        {"sigma": 0.3, "n_roots": 4, "seed": 0},
    ),
    "taylor": Reference(slow_taylor, {"order": 2, "baseline": 0.1}),
}

#: Every registered metric -> its slow reference (or the test that compares it to one).
METRICS: dict[str, Reference] = {
    "completeness_gap": Reference(slow_completeness_gap, {"baseline": 0.0}),
    "perturbation_curve": Reference(slow_aopc, {"region": 1, "step": 1, "baseline": 0.0}),
    "attribution_in_box": Reference(lambda a, boxes: slow_box_share(a, boxes, top_pixels=False), {"boxes": BOXES}),
    "bbox_accuracy": Reference(lambda a, boxes: slow_box_share(a, boxes, top_pixels=True), {"boxes": BOXES}),
    "sensitivity_n": elsewhere(
        "metrics/test_sensitivity.py", "test_sensitivity_n_matches_a_slow_loop_over_subsets"),
    "aupc": elsewhere(
        "metrics/test_perturbation.py", "test_aupc_follows_equations_11_and_12_on_a_linear_model"),
    "infidelity": elsewhere(
        "metrics/test_infidelity.py", "test_infidelity_matches_its_definition_for_a_nonlinear_model"),
    "road": elsewhere(
        "metrics/test_road.py", "test_noisy_linear_imputation_matches_a_dense_per_pixel_solve_including_borders"),
    "data_randomization_test": elsewhere(
        "metrics/test_randomization.py",
        "test_data_randomization_of_linear_models_is_the_rank_correlation_of_their_weights",
    ),
    "scaling_path": elsewhere(
        "metrics/test_saturation.py", "test_scaling_path_of_a_linear_model_is_linear_in_alpha_and_its_softmax_matches"),
    "randomization_test": elsewhere(
        "metrics/test_randomization.py", "test_randomization_test_matches_quantus_mprt"),
    "average_total_variation": elsewhere(
        "metrics/test_smoothness.py", "test_atv_of_a_checkerboard_counts_every_neighbour_pair"),
    "autvc": elsewhere(
        "metrics/test_smoothness.py", "test_autvc_is_the_simpson_area_of_the_multiscale_atv_curve"),
}
