"""Empirical checks of the attribution axioms (Sundararajan et al., IG paper Sec. 2.5-2.6 and Appendix B).

The checks run a method by name, so they live above both the methods and the metrics (metrics never
compute attributions): ``taylorlens.axioms.check(method, model, inputs, ...)``.

:func:`check` runs a method on a model and measures, on the given inputs:

* **completeness**: ``sum_i a_i = f(x) - f(baseline)``; measure ``max |gap| / scale``.
* **sensitivity(a)**: an input and a baseline that differ in one feature only, with different outputs, give
  that feature a non-zero attribution. For up to ``n_features`` features ``i`` of each input, ``x`` is
  explained against ``x`` with ``x_i`` set to the baseline value (methods without a baseline just explain
  ``x``); measure ``min |a_i| / |f(x) - f(x with x_i at baseline)|`` over the pairs whose outputs differ (the
  axiom fails when it is ``<= tolerance``). The IG paper's ``1 - ReLU(1 - x)`` at ``x = 2`` breaks it for
  gradients, its Appendix B network at ``(3, 1)`` for guided backprop and deconvnet (``a_2 = 0``).
* **dummy**: a model that ignores some features (``f`` with ``n_features`` random features held at the
  baseline) gives them zero attribution; measure ``max |a_dummy| / scale``.
* **additivity** / **linearity**: ``a(f1 + f2) = a(f1) + a(f2)`` and ``a(2 f1 - 0.5 f2) = 2 a(f1) - 0.5 a(f2)``
  with ``f1 = model`` and ``f2`` = a copy of it reading its input mirrored along the last dimension;
  measure ``max |difference| / scale``. Guided backprop and deconvnet break linearity (they drop negative
  backward signals, so ``a(-f) != -a(f)``).
* **implementation invariance**: given ``equivalent_model`` (functionally equal to ``model``), the two
  attributions are identical; measure ``max |a_f - a_g| / scale`` (skipped without one; Appendix B's
  ``ReLU(ReLU(x1) - 1 - ReLU(x2))`` vs ``ReLU(ReLU(x1 - 1) - ReLU(x2))`` breaks DeepLIFT and LRP).

``scale`` is the largest of ``|f(x) - f(baseline)|`` and ``|a|`` over the batch. A check passes when its
measure is ``<= tolerance`` (sensitivity: ``> tolerance``). The baseline is passed to methods that take one
(``baseline``); methods that take a ``seed`` get ``seed`` so that repeated runs
see the same noise.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from taylorlens.engine import Request, broadcast_baseline
from taylorlens.engine.checks import check_positive_int
from taylorlens.methods.registry import attribute, method_class

AXIOMS = ("completeness", "sensitivity", "dummy", "additivity", "linearity", "implementation_invariance")


@dataclass(frozen=True)
class AxiomCheck:
    """One row: the axiom, ``passed`` (None when skipped), the measured value and what it measures."""

    axiom: str
    passed: bool | None
    gap: float
    measure: str


class AxiomReport(tuple):
    """The rows of :func:`check`; ``str(report)`` is a table, ``report["dummy"]`` one row."""

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return next(row for row in self if row.axiom == key)
        return super().__getitem__(key)

    @property
    def passed(self) -> bool:
        """Every check that ran passed."""
        return all(row.passed is not False for row in self)

    def __str__(self) -> str:
        lines = [f"{'axiom':<26} {'result':<7} {'gap':>11}  measure"]
        for row in self:
            result = "skipped" if row.passed is None else ("pass" if row.passed else "FAIL")
            lines.append(f"{row.axiom:<26} {result:<7} {row.gap:>11.3e}  {row.measure}")
        return "\n".join(lines)


def check(
    method: str | Callable,
    model: Callable,
    inputs: Tensor,
    target: Any = None,
    *,
    baseline: Any = 0.0,
    equivalent_model: Callable | None = None,
    tolerance: float = 1e-2,
    n_features: int = 16,
    axioms: tuple[str, ...] = AXIOMS,
    seed: int = 0,
    **options: Any,
) -> AxiomReport:
    """Check the axioms of ``method`` (a registered name, or ``(model, inputs, target) -> attributions``)
    on ``model`` at ``inputs``; ``options`` go to the method. Returns an :class:`AxiomReport`."""
    explain = _explainer(method, baseline, seed, options)
    request = Request.build(model, inputs, target)
    x, targets = request.inputs, request.targets
    fill = broadcast_baseline(baseline, x)
    n_features = check_positive_int("n_features", n_features)
    generator = torch.Generator().manual_seed(seed)
    a = explain(model, x, targets)
    with request.model_frozen():
        delta = request.outputs() - request.outputs(fill)
    scale = max(float(delta.abs().max()), float(a.abs().max()), 1e-12)
    rows = []
    for axiom in axioms:
        if axiom == "completeness":
            gap = float((a.flatten(1).sum(1) - delta).abs().max()) / scale
            rows.append(AxiomCheck(axiom, gap <= tolerance, gap, "max |sum(a) - (f(x) - f(baseline))| / scale"))
        elif axiom == "sensitivity":
            rows.append(_sensitivity(explain, request, fill, n_features, tolerance, generator))
        elif axiom == "dummy":
            features = x[0].numel()
            dummy = torch.zeros(features, dtype=torch.bool)
            dummy[torch.randperm(features, generator=generator)[: min(n_features, features)]] = True
            dummy = dummy.view(x.shape[1:]).to(x.device)
            a_dummy = explain(_HoldFeatures(model, dummy, fill[:1]), x, targets)
            gap = float(a_dummy[:, dummy].abs().max()) / scale
            rows.append(AxiomCheck(axiom, gap <= tolerance, gap, "max |a| on features the model ignores / scale"))
        elif axiom in ("additivity", "linearity"):
            weights = (1.0, 1.0) if axiom == "additivity" else (2.0, -0.5)
            second = _Mirrored(copy.deepcopy(model))
            combined = explain(_Combination(model, second, weights), x, targets)
            expected = weights[0] * a + weights[1] * explain(second, x, targets)
            gap = float((combined - expected).abs().max()) / scale
            formula = "a(f1 + f2) - a(f1) - a(f2)" if axiom == "additivity" else "a(2 f1 - f2/2) - 2 a(f1) + a(f2)/2"
            rows.append(AxiomCheck(axiom, gap <= tolerance, gap, f"max |{formula}| / scale"))
        elif axiom == "implementation_invariance":
            if equivalent_model is None:
                rows.append(AxiomCheck(axiom, None, float("nan"), "skipped: pass equivalent_model"))
                continue
            other = explain(equivalent_model, x, targets)
            gap = float((a - other).abs().max()) / scale
            rows.append(AxiomCheck(axiom, gap <= tolerance, gap, "max |a(f) - a(g)| / scale, g equivalent to f"))
        else:
            raise ValueError(f"unknown axiom {axiom!r}; known: {', '.join(AXIOMS)}")
    return AxiomReport(rows)


def _explainer(method: str | Callable, baseline: Any, seed: int, options: dict[str, Any]) -> Callable:
    """``explain(model, x, targets, baseline=None)``: attributions (the check's baseline by default)."""
    if callable(method):
        return lambda model, x, targets, base=None: method(model, x, targets).detach()
    accepted = method_class(method).accepted()
    fixed = dict(options)
    if "seed" in accepted:
        fixed.setdefault("seed", seed)
    key = "baseline" if "baseline" in accepted else None

    def explain(model: Callable, x: Tensor, targets: Any, base: Any = None) -> Tensor:
        chosen = dict(fixed)
        if key is not None and key not in options:
            chosen[key] = baseline if base is None else base
        return attribute(model, x, targets, method=method, **chosen).detach()

    return explain


def _sensitivity(
    explain: Callable, request: Request, fill: Tensor, n_features: int, tolerance: float, generator: torch.Generator
) -> AxiomCheck:
    """Explain each input against baselines that differ from it in one feature (set to the baseline value)."""
    x = request.inputs
    batch, features = x.shape[0], x[0].numel()
    count = min(n_features, features)
    differing = (x != fill).flatten(1).to(torch.float32) + 1e-3  # prefer features that differ from the baseline
    chosen = torch.multinomial(differing.cpu(), count, generator=generator).to(x.device)  # (B, count)
    samples = torch.arange(batch * count, device=x.device)
    sample, feature = samples // count, chosen.flatten()
    inputs = x[sample]
    baselines = inputs.flatten(1).clone()
    baselines[samples, feature] = fill[sample].flatten(1)[samples, feature]
    baselines = baselines.view_as(inputs)
    repeated = request.repeated(count, inputs)
    with repeated.model_frozen():
        changes = (repeated.outputs() - repeated.outputs(baselines)).view(batch, count)
    a = explain(request.model, inputs, repeated.targets, baselines).flatten(1)[samples, feature].view(batch, count)
    scale = max(float(changes.abs().max()), 1e-12)
    changing = changes.abs() > tolerance * scale
    if not bool(changing.any()):
        return AxiomCheck("sensitivity", None, float("nan"), "skipped: no single-feature change moves the output")
    ratio = float((a.abs() / changes.abs().clamp(min=1e-30))[changing].min())
    measure = "min |a_i| / |f(x) - f(x, x_i at baseline)| (pass if > tol)"
    return AxiomCheck("sensitivity", ratio > tolerance, ratio, measure)


class _Wrapper(nn.Module):
    """A model built around the user's model; in evaluation mode without touching the wrapped model's flags."""

    def __init__(self) -> None:
        super().__init__()
        self.training = False


class _HoldFeatures(_Wrapper):
    """``model`` with the features in ``mask`` held at ``values``: it does not depend on them."""

    def __init__(self, model: Callable, mask: Tensor, values: Tensor) -> None:
        super().__init__()
        self.model, self.mask, self.values = model, mask, values

    def forward(self, x: Tensor) -> Tensor:
        return self.model(torch.where(self.mask, self.values, x))


class _Mirrored(_Wrapper):
    """``model`` reading its input mirrored along the last dimension: another function of the same shape."""

    def __init__(self, model: Callable) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x.flip(-1))


class _Combination(_Wrapper):
    """``w1 * first(x) + w2 * second(x)``."""

    def __init__(self, first: Callable, second: Callable, weights: tuple[float, float]) -> None:
        super().__init__()
        self.first, self.second, self.weights = first, second, weights

    def forward(self, x: Tensor) -> Tensor:
        return self.weights[0] * self.first(x) + self.weights[1] * self.second(x)
