"""Cost of second-order Taylor attribution (Deng et al. 2021) as a multiple of one forward+backward pass.

The equal-split second-order attribution needs the gradient and one Hessian-vector product per sample
(``taylorlens.attribute(..., method="taylor", order=2)``). The ideal is 1x (the gradient alone: the HVP is
extra work), the target <= 4x. The naive route forms the full Hessian (n Hessian-vector products per
sample, n^2 memory) and is timed where it fits in memory.

Run: ``python benchmarks/taylor.py`` (a few minutes on 2 CPU cores).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

import taylorlens

TARGET = 4.0
FULL_HESSIAN_MAX_BYTES = 2 * 2**30


def mnist_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.Softplus(), nn.Conv2d(32, 64, 3), nn.Softplus(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(64 * 12 * 12, 128), nn.Softplus(), nn.Linear(128, 10),
    ).eval()


def imagenet_cnn() -> nn.Module:
    """A small 224x224 CNN with smooth activations (stride-2 stages, global pooling)."""
    layers: list[nn.Module] = []
    channels = 3
    for width in (16, 32, 64, 128, 256):
        layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.Softplus()]
        channels = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 1000)).eval()


def seconds(run: Callable[[], object], repeats: int) -> float:
    run()
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    return (time.perf_counter() - start) / repeats


def full_hessian_route(model: nn.Module, x: torch.Tensor, target: int) -> torch.Tensor:
    """Naive second-order attribution: the full Hessian per sample, then ``Delta (f_x + H Delta / 2)``."""
    maps = []
    for sample in x:
        def explained(flat: torch.Tensor, shape: torch.Size = sample.shape) -> torch.Tensor:
            return model(flat.view(1, *shape))[0, target]

        flat = sample.flatten()
        hessian = torch.func.hessian(explained)(flat)
        gradient = torch.func.grad(explained)(flat)
        delta = -flat
        maps.append((-delta * (gradient + 0.5 * hessian @ delta)).view_as(sample))
    return torch.stack(maps)


def bench(name: str, model: nn.Module, shape: tuple[int, ...], batch: int, repeats: int) -> None:
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.rand(batch, *shape, generator=torch.Generator().manual_seed(0))
    first = seconds(lambda: taylorlens.attribute(model, x, 3, "gradient"), repeats) / batch
    second = seconds(lambda: taylorlens.attribute(model, x, 3, "taylor", order=2), repeats) / batch
    ratio = second / first
    print(f"{name}: input {shape}, batch {batch}")
    print(f"  forward+backward (gradient)       {1e3 * first:9.2f} ms/sample   1.00x")
    print(f"  taylor order 2 (grad + 1 HVP)     {1e3 * second:9.2f} ms/sample  {ratio:5.2f}x  "
          f"(ideal 1x: ratio to ideal {ratio:.2f}; target <= {TARGET:.0f}x: {'met' if ratio <= TARGET else 'MISSED'})")
    n = x[0].numel()
    if n * n * x.element_size() > FULL_HESSIAN_MAX_BYTES:
        print(f"  full Hessian route                n^2 = {n}^2 entries ({n * n * 4 / 2**30:.0f} GiB): does not fit")
        return
    few = x[:2]
    naive = seconds(lambda: full_hessian_route(model, few, 3), 1) / few.shape[0]
    check = taylorlens.attribute(model, few, 3, "taylor", order=2)
    agree = torch.allclose(full_hessian_route(model, few, 3), check, atol=1e-5, rtol=1e-3)
    print(f"  full Hessian route (naive)        {1e3 * naive:9.2f} ms/sample  {naive / first:5.1f}x  "
          f"({naive / second:.0f}x slower than HVP; same maps: {agree})")


def main() -> None:
    torch.set_num_threads(2)
    bench("28x28 CNN", mnist_cnn(), (1, 28, 28), batch=64, repeats=3)
    bench("3x224x224 CNN", imagenet_cnn(), (3, 224, 224), batch=8, repeats=2)


if __name__ == "__main__":
    main()
