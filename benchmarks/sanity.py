"""Benchmark ROAD and the randomization test: time vs. the ideal model passes and vs. Quantus on the same work.

ROAD on a 28x28 CNN with 64 inputs and the fractions 0.1..0.9: ``ideal`` = B x K forwards at the best
per-sample forward cost (the best batch size among 8..1024, inference mode; a plain pass at that size is
timed in the same interleaved rounds as the metric, medians of 5); the sparse solves of the imputation are
timed apart. Quantus's ``ROAD`` (the same images and percentages, noise 0) solves one
system per image per percentage and runs the most-relevant-first order only. The randomization test
(gradient maps, cascading over the 4 parameterised layers) against Quantus's ``MPRT`` with the same
explanation function: ``ideal`` = (L + 1) gradient passes at the best per-sample forward+backward cost
(timed the same way).
Both libraries run with one torch thread: on a shared 2-core machine two threads spin against other jobs
and the timings stop meaning anything. Run: ``python benchmarks/sanity.py``.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/sanity.py` finds the package

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import taylorlens  # noqa: E402
from benchmarks.timing import best_pass_cost, plain_pass, time_interleaved  # noqa: E402
from taylorlens import metrics  # noqa: E402
from taylorlens.metrics.road import noisy_linear_imputation  # noqa: E402

BATCH = 64
FRACTIONS = tuple(p / 100 for p in range(10, 100, 10))
torch.manual_seed(0)
torch.set_num_threads(1)


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10),
    ).eval()


def interleaved(run: Callable[[], object], plain: Callable[[], object], passes: float) -> tuple[float, float]:
    """(ideal, ours): medians of 5 interleaved rounds of ``run`` and of one plain pass at the best batch size,
    the ideal being ``passes`` such passes, so both see the same machine load."""
    times = time_interleaved({"ours": run, "plain": plain}, repeats=5)
    return passes * times["plain"].median, times["ours"].median


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
    sizes = (8, 16, 32, 64, 128, 256, 512, 1024)
    forward, backward = (best_pass_cost(model, x, y, backward=b, batch_sizes=sizes) for b in (False, True))
    metrics.road(model, x[:2], a[:2], y[:2], fractions=(0.5,))  # warm-up and chunk-size measuring
    print(f"best forward {forward.per_point * 1e6:.1f} us/sample (batch {forward.batch_size}), forward+backward "
          f"{backward.per_point * 1e6:.1f} us/sample (batch {backward.batch_size})")

    removed = torch.rand(BATCH, len(FRACTIONS), 28, 28) < torch.tensor(FRACTIONS).view(1, -1, 1, 1)
    solve = timed(lambda: noisy_linear_imputation(x, removed))
    images, masks = x.double().numpy(), removed.numpy().reshape(BATCH, len(FRACTIONS), -1)
    quantus_solve = timed(lambda: [quantus_imputation(images[b], np.flatnonzero(masks[b, k]), noise=0.0)
                                   for b in range(BATCH) for k in range(len(FRACTIONS))], repeats=1)
    points = BATCH * len(FRACTIONS)
    ideal, morf = interleaved(lambda: metrics.road(model, x, a, y, fractions=FRACTIONS, noise=0.0, readout="correct"),
                              plain_pass(model, x, y, forward.batch_size, backward=False), points / forward.batch_size)
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
    ideal, ours = interleaved(
        lambda: metrics.randomization_test(model, x, y, "gradient", seed=0, similarity=("spearman_abs",)),
        plain_pass(model, x, y, backward.batch_size), (layers + 1) * BATCH / backward.batch_size,
    )
    mprt = quantus.MPRT(layer_order="top_down", seed=0, disable_warnings=True, display_progressbar=False)
    quantus_mprt = timed(lambda: mprt(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(),
                                      explain_func=explain, device="cpu", batch_size=BATCH), repeats=1)
    print(f"randomization test, gradient, {layers} layers cascading ({layers + 1} gradient passes of {BATCH}):")
    print(f"  ideal {ideal:.3f}s; taylorlens {ours:.3f}s ({ours / ideal:.2f}x); quantus MPRT {quantus_mprt:.3f}s "
          f"({quantus_mprt / ours:.1f}x taylorlens)")


if __name__ == "__main__":
    main()
