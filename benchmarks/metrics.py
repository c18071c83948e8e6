"""Benchmark the metrics on a 28x28 CNN with 64 inputs: time vs. the ideal, and Quantus / Captum doing the same work.

``ideal`` = number of forward passes x the best per-sample forward cost (measured in this run, inference
mode, over chunk sizes 8..1024). Quantus and Captum run the closest equivalent configuration; where the
work differs (Quantus's SensitivityN removes features cumulatively, one set per n; its Infidelity sweeps
patch positions) the number of forward passes is listed for each. Run: ``python benchmarks/metrics.py``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from taylorlens import metrics

BATCH = 64
torch.manual_seed(0)


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 10),
    ).eval()


def best_forward_cost(model: nn.Module) -> float:
    """Seconds per sample of the fastest chunk size, in inference mode."""
    best = float("inf")
    with torch.inference_mode():
        for size in (8, 16, 32, 64, 128, 256, 512, 1024):
            batch = torch.randn(size, 1, 28, 28)
            model(batch)
            start = time.perf_counter()
            for _ in range(3):
                model(batch)
            best = min(best, (time.perf_counter() - start) / (3 * size))
    return best


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    warnings.filterwarnings("ignore")
    model = cnn()
    x = torch.rand(BATCH, 1, 28, 28)
    y = model(x).argmax(1)
    a = torch.randn_like(x)
    metrics.sensitivity_n(model, x[:2], a[:2], y[:2], n=[1], n_subsets=2)  # warm-up and chunk-size measuring
    cost = best_forward_cost(model)
    grid = len(metrics.default_n_grid(784))
    rows = [
        (
            "sensitivity_n (S=100)",
            BATCH * (grid * 100 + 1),
            lambda: metrics.sensitivity_n(model, x, a, y, n_subsets=100, seed=0),
        ),
        ("pixel flipping (8/step)", BATCH * 99, lambda: metrics.perturbation_curve(model, x, a, y, step=8)),
        (
            "region perturbation 4x4, 20",
            BATCH * 21,
            lambda: metrics.perturbation_curve(model, x, a, y, region=4, n_steps=20),
        ),
        (
            "infidelity square (100)",
            BATCH * 101,
            lambda: metrics.infidelity(model, x, a, y, n_perturbations=100, square_size=4, seed=0),
        ),
        ("aupc k=4 L=30 P=50", BATCH * (30 * 50 + 1), lambda: metrics.aupc(model, x, a, y, k=4, L=30, P=50, seed=0)),
        ("autvc (no model)", 0, lambda: metrics.autvc(a, min_size=8)),
    ]
    others = competitors(model, x, y, a)
    print(f"best forward cost: {cost * 1e6:.1f} us/sample (inference mode)")
    print(f"{'metric':<30} {'forwards':>9} {'time s':>8} {'ideal s':>8} {'ratio':>6}  other libraries")
    for name, forwards, run in rows:
        seconds = min(timed(run), timed(run))
        ideal = forwards * cost
        ratio = f"{seconds / ideal:6.2f}" if ideal else "   -  "
        print(f"{name:<30} {forwards:>9} {seconds:>8.3f} {ideal:>8.3f} {ratio}  {others.get(name, '')}")


def competitors(model: nn.Module, x: torch.Tensor, y: torch.Tensor, a: torch.Tensor) -> dict[str, str]:
    """Quantus and Captum timings for the same (or the closest) configurations."""
    results: dict[str, str] = {}
    try:
        from captum.metrics import infidelity

        def square_removal(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            top, left = np.random.randint(0, 25, 2)
            mask = torch.zeros_like(inputs)
            mask[..., top : top + 4, left : left + 4] = 1
            return mask, inputs * (1 - mask)

        seconds = timed(
            lambda: infidelity(
                model, square_removal, x, a, target=y, n_perturb_samples=100, max_examples_per_batch=6400
            )
        )
        results["infidelity square (100)"] = f"captum {seconds:.3f}s (same forwards)"
    except Exception as error:  # report, do not fail the benchmark
        results["infidelity square (100)"] = f"captum failed: {error}"
    try:
        import quantus
    except ImportError:
        return {k: v + "; quantus not installed" for k, v in results.items()}
    xs, ys, as_ = x.numpy(), y.numpy(), a.numpy()
    common = {"disable_warnings": True, "display_progressbar": False}
    runs = {
        "pixel flipping (8/step)": (
            quantus.PixelFlipping(features_in_step=8, perturb_baseline="black", **common),
            "same forwards",
        ),
        "region perturbation 4x4, 20": (
            quantus.RegionPerturbation(patch_size=4, regions_evaluation=20, **common),
            "same forwards",
        ),
        "sensitivity_n (S=100)": (
            quantus.SensitivityN(features_in_step=8, n_max_percentage=0.8, **common),
            f"cumulative, {BATCH * 79} forwards",
        ),
        "infidelity square (100)": (
            quantus.Infidelity(perturb_patch_sizes=[4], n_perturb_samples=1, **common),
            "sweeps all 4x4 patch positions once",
        ),
    }
    for name, (metric, note) in runs.items():
        try:
            seconds = timed(
                lambda metric=metric: metric(
                    model=model, x_batch=xs, y_batch=ys, a_batch=as_, softmax=False, device="cpu", batch_size=BATCH
                )
            )
            text = f"quantus {seconds:.3f}s ({note})"
        except Exception as error:
            text = f"quantus failed: {type(error).__name__}: {error}"[:120]
        results[name] = f"{results[name]}; {text}" if name in results else text
    return results


if __name__ == "__main__":
    main()
