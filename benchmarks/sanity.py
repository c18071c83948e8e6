"""Benchmark ROAD and the randomization test: time vs. the ideal model passes and vs. Quantus on the same work.

ROAD on a 28x28 CNN with 64 inputs and the fractions 0.1..0.9: ``ideal`` = B x K forwards at the best
per-sample forward cost (measured here, inference mode, chunk sizes 8..1024); the sparse solves of the
imputation are timed apart. Quantus's ``ROAD`` (the same images and percentages, noise 0) solves one
system per image per percentage and runs the most-relevant-first order only. The randomization test
(gradient maps, cascading over the 4 parameterised layers) against Quantus's ``MPRT`` with the same
explanation function: ``ideal`` = (L + 1) gradient passes at the best per-sample forward+backward cost.
Both libraries run with one torch thread: on a shared 2-core machine two threads spin against other jobs
and the timings stop meaning anything. Run: ``python benchmarks/sanity.py``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

import taylorlens
from taylorlens import metrics
from taylorlens.metrics.road import noisy_linear_imputation

BATCH = 64
FRACTIONS = tuple(p / 100 for p in range(10, 100, 10))
torch.manual_seed(0)
torch.set_num_threads(1)


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10),
    ).eval()


def best_cost(model: nn.Module, backward: bool) -> float:
    """Seconds per sample of the fastest chunk size: a forward in inference mode, or a forward+backward."""
    best = float("inf")
    for size in (8, 16, 32, 64, 128, 256, 512, 1024):
        batch = torch.randn(size, 1, 28, 28)

        def run(batch: torch.Tensor = batch) -> None:
            if backward:
                point = batch.clone().requires_grad_(True)
                torch.autograd.grad(model(point)[:, 0].sum(), point)
            else:
                with torch.inference_mode():
                    model(batch)

        run()
        start = time.perf_counter()
        for _ in range(3):
            run()
        best = min(best, (time.perf_counter() - start) / (3 * size))
    return best


def timed(run: Callable[[], object], repeats: int = 2) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    warnings.filterwarnings("ignore")
    import quantus
    from quantus.functions.perturb_func import noisy_linear_imputation as quantus_imputation

    model = cnn()
    x = torch.rand(BATCH, 1, 28, 28)
    y = model(x).argmax(1)
    a = torch.randn_like(x)
    forward, backward = best_cost(model, False), best_cost(model, True)
    metrics.road(model, x[:2], a[:2], y[:2], fractions=(0.5,))  # warm-up and chunk-size measuring
    print(f"best forward {forward * 1e6:.1f} us/sample, forward+backward {backward * 1e6:.1f} us/sample")

    removed = torch.rand(BATCH, len(FRACTIONS), 28, 28) < torch.tensor(FRACTIONS).view(1, -1, 1, 1)
    solve = timed(lambda: noisy_linear_imputation(x, removed))
    images, masks = x.double().numpy(), removed.numpy().reshape(BATCH, len(FRACTIONS), -1)
    quantus_solve = timed(lambda: [quantus_imputation(images[b], np.flatnonzero(masks[b, k]), noise=0.0)
                                   for b in range(BATCH) for k in range(len(FRACTIONS))], repeats=1)
    ideal = BATCH * len(FRACTIONS) * forward
    morf = timed(lambda: metrics.road(model, x, a, y, fractions=FRACTIONS, noise=0.0, readout="correct"))
    both = timed(lambda: [metrics.road(model, x, a, y, fractions=FRACTIONS, order=o, seed=0) for o in ("morf", "lerf")])
    reference = quantus.ROAD(percentages=list(range(10, 100, 10)), noise=0.0, disable_warnings=True,
                             display_progressbar=False)
    quantus_road = timed(lambda: reference(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(),
                                           device="cpu", batch_size=BATCH), repeats=1)
    print(f"ROAD, {BATCH} images x {len(FRACTIONS)} fractions ({BATCH * len(FRACTIONS)} forwards):")
    print(f"  ideal passes {ideal:.3f}s; imputation alone {solve:.3f}s (quantus's, same masks: {quantus_solve:.3f}s)")
    print(f"  taylorlens MoRF {morf:.3f}s ({morf / ideal:.1f}x the ideal passes, {morf / (ideal + solve):.2f}x "
          f"passes + imputation); both orders {both:.3f}s")
    print(f"  quantus ROAD (MoRF only) {quantus_road:.3f}s: taylorlens is {quantus_road / morf:.1f}x faster")

    def explain(model: nn.Module, inputs: np.ndarray, targets: np.ndarray, **_: object) -> np.ndarray:
        return taylorlens.attribute(model, torch.as_tensor(inputs), torch.as_tensor(targets), "gradient").numpy()

    layers = 4
    ideal = (layers + 1) * BATCH * backward
    ours = timed(lambda: metrics.randomization_test(model, x, y, "gradient", seed=0, similarity=("spearman_abs",)))
    mprt = quantus.MPRT(layer_order="top_down", seed=0, disable_warnings=True, display_progressbar=False)
    quantus_mprt = timed(lambda: mprt(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(),
                                      explain_func=explain, device="cpu", batch_size=BATCH), repeats=1)
    print(f"randomization test, gradient, {layers} layers cascading ({layers + 1} gradient passes of {BATCH}):")
    print(f"  ideal {ideal:.3f}s; taylorlens {ours:.3f}s ({ours / ideal:.2f}x); quantus MPRT {quantus_mprt:.3f}s "
          f"({quantus_mprt / ours:.1f}x taylorlens)")


if __name__ == "__main__":
    main()
