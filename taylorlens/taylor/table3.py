"""Table 3 of Deng et al. (AAAI 2021), Sec. "Empirical Validations of Reformulations".

For each model (Poly, M-sg, C-sg, C-sp from :mod:`taylorlens.zoo`, trained on the digits data) and each
method (GI, Occ-1, Occ-2x2, Occ-4x4, DL, IG, all with the zero baseline of the paper's theorems), the
average percentage change ``d`` between the method and its second-order Taylor reformulation
(DeepLIFT: per nonlinearity layer, then averaged), the model's normalised second-order approximation error
``mean_i |epsilon_i| / |Delta f_i|`` (baseline 0) and the Pearson correlation between the per-sample
percentage change and approximation error. The explained output is the predicted class.

Run ``python -m taylorlens.taylor.table3 [--samples N]``; :func:`table3` is what a benchmark runner calls.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

import taylorlens
from taylorlens.taylor.reformulate import deeplift_layers, percentage_changes, reformulate
from taylorlens.taylor.terms import terms

#: Paper name -> zoo model name.
MODELS = {"Poly": "digits_poly", "M-sg": "digits_m_sg", "C-sg": "digits_c_sg", "C-sp": "digits_c_sp"}
#: Paper name -> (method, options); patches do not overlap (Theorem 3's partition into patches).
METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "GI": ("gradient_x_input", {}),
    "Occ-1": ("occlusion", {"window": 1}),
    "Occ-2x2": ("occlusion", {"window": 2, "stride": 2}),
    "Occ-4x4": ("occlusion", {"window": 4, "stride": 4}),
    "DL": ("deeplift", {}),
    "IG": ("integrated_gradients", {}),
}
#: The paper's Table 3 (percent) and its approximation errors (text below the table). C-sp: not reported.
PAPER = {
    "GI": {"Poly": 0.0, "M-sg": 0.0, "C-sg": 0.0},
    "Occ-1": {"Poly": 0.0, "M-sg": 0.05, "C-sg": 13.17},
    "Occ-2x2": {"Poly": 0.0, "M-sg": 0.35, "C-sg": 21.22},
    "Occ-4x4": {"Poly": 0.0, "M-sg": 2.00, "C-sg": 35.93},
    "DL": {"Poly": 0.0, "M-sg": 2.35, "C-sg": 32.76},
    "IG": {"Poly": 0.12, "M-sg": 3.50, "C-sg": 40.29},
}
PAPER_APPROXIMATION_ERROR = {"Poly": 0.0, "M-sg": 0.084, "C-sg": 0.420}


@dataclass(frozen=True)
class Table3Cell:
    """One (model, method) result: ``d`` in percent, the model's mean normalised error, their correlation."""

    model: str
    method: str
    percentage_change: float
    approximation_error: float
    correlation: float


def validate(
    model: Callable, inputs: Tensor, targets: Tensor, methods: dict[str, tuple[str, dict[str, Any]]] = METHODS
) -> tuple[dict[str, Tensor], Tensor]:
    """Per-sample percentage changes ``{method: (N,)}`` and normalised approximation errors ``(N,)``."""
    changes = {}
    for label, (method, options) in methods.items():
        original = taylorlens.attribute(model, inputs, targets, method, **options)
        if method == "deeplift" and (layers := deeplift_layers(model, inputs, targets)):
            per_layer = [
                percentage_changes(original, reformulate(method, model, inputs, targets, nonlinearity=k, **options))
                for k in range(layers)
            ]
            changes[label] = torch.stack(per_layer).mean(0)
        else:
            changes[label] = percentage_changes(original, reformulate(method, model, inputs, targets, **options))
    errors = terms(model, inputs, targets, 0.0, order=2, diagonal="none").relative_error
    return changes, errors


def table3(
    models: dict[str, Callable] | None = None,
    inputs: Tensor | None = None,
    n_samples: int | None = 150,
    dtype: torch.dtype = torch.float64,
) -> list[Table3Cell]:
    """Table 3 for ``models`` (default: the zoo's Poly, M-sg, C-sg, C-sp) on ``inputs`` (default: the first
    ``n_samples`` of the digits test split). Computed in ``dtype`` (float64: "exactly 0" means rounding)."""
    if models is None:
        from taylorlens import zoo

        models = {label: zoo.load(name) for label, name in MODELS.items()}
    if inputs is None:
        from taylorlens import zoo

        inputs, _ = zoo.dataset("digits", split="test")
    inputs = inputs[:n_samples].to(dtype)
    cells = []
    for label, model in models.items():
        model = model.to(dtype).eval()
        with torch.no_grad():
            targets = model(inputs).argmax(1)
        changes, errors = validate(model, inputs, targets)
        finite = torch.isfinite(errors)
        for method, change in changes.items():
            cells.append(
                Table3Cell(label, method, float(change.mean()), float(errors[finite].mean()),
                           _pearson(change[finite], errors[finite]))
            )
    return cells


def format_table3(cells: list[Table3Cell]) -> str:
    """Markdown tables: percentage change (ours / paper), approximation error, correlation."""
    models = list(dict.fromkeys(c.model for c in cells))
    methods = list(dict.fromkeys(c.method for c in cells))
    at = {(c.model, c.method): c for c in cells}
    header = "| method | " + " | ".join(models) + " |\n|---|" + "---|" * len(models)

    def paper(method: str, model: str) -> str:
        value = PAPER.get(method, {}).get(model)
        return "" if value is None else f" ({value:.2f}%)"

    lines = ["Average percentage change d, ours (paper):", header]
    for method in methods:
        row = [f"{at[m, method].percentage_change:.3g}%{paper(method, m)}" for m in models]
        lines.append(f"| {method} | " + " | ".join(row) + " |")
    lines += ["", "Normalised approximation error mean |eps| / |Delta f| (paper):", header.replace("method", "")]
    row = []
    for m in models:
        value = PAPER_APPROXIMATION_ERROR.get(m)
        row.append(f"{at[m, methods[0]].approximation_error:.3g}" + ("" if value is None else f" ({value})"))
    lines.append("| | " + " | ".join(row) + " |")
    lines += ["", "Pearson correlation of per-sample d and approximation error:", header]
    for method in methods:
        lines.append(f"| {method} | " + " | ".join(f"{at[m, method].correlation:.2f}" for m in models) + " |")
    return "\n".join(lines)


def _pearson(a: Tensor, b: Tensor) -> float:
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    scale = float(a.norm() * b.norm())
    return float((a * b).sum()) / scale if scale > 0 else math.nan


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Reproduce Table 3 of Deng et al. (AAAI 2021).")
    parser.add_argument("--samples", type=int, default=150, help="digits test samples (450 = all)")
    args = parser.parse_args(argv)
    print(format_table3(table3(n_samples=args.samples)))


if __name__ == "__main__":
    main()
