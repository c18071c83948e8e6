"""Heat maps of attributions: red positive, blue negative, or the papers' absolute-value maps.

The absolute-value normalisation follows the SmoothTaylor paper (Goh et al. 2020, Fig. 1 caption and
Sec. IV-C-2): absolute attributions summed over channels, values above the 99th percentile clipped, then
min-max normalised. The signed view divides by the 99th percentile of ``|a|`` and clips to [-1, 1].
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

NORMALISATIONS = ("signed", "absolute")


def to_map(attribution: Tensor) -> np.ndarray:
    """One sample's attribution ``(C, H, W)``, ``(H, W)`` or ``(D,)`` as a 2-D map (channels summed)."""
    a = attribution.detach().to(torch.float64).cpu()
    if a.dim() == 3:
        a = a.sum(0)
    elif a.dim() == 1:
        side = int(round(a.numel() ** 0.5))
        a = a.view(side, side) if side * side == a.numel() else a.view(1, -1)
    return a.numpy()


def normalise(values: np.ndarray, mode: str = "signed", percentile: float = 99.0) -> np.ndarray:
    """Signed maps to [-1, 1] or absolute maps to [0, 1], clipping above the ``percentile``."""
    if mode == "absolute":
        values = np.abs(values)
        top = np.percentile(values, percentile)
        clipped = np.minimum(values, top)
        low, high = clipped.min(), clipped.max()
        return (clipped - low) / (high - low) if high > low else np.zeros_like(clipped)
    if mode == "signed":
        top = np.percentile(np.abs(values), percentile)
        return np.clip(values / top, -1, 1) if top > 0 else np.zeros_like(values)
    raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {mode!r}")


def image_for_display(sample: Tensor) -> np.ndarray:
    """An input sample ``(C, H, W)`` or ``(H, W)`` rescaled to [0, 1] for display."""
    x = sample.detach().to(torch.float64).cpu()
    if x.dim() == 3:
        x = x.permute(1, 2, 0) if x.shape[0] in (3, 4) else x.mean(0)
    x = x.numpy()
    low, high = x.min(), x.max()
    return (x - low) / (high - low) if high > low else np.zeros_like(x)


def heatmap_grid(
    inputs: Tensor,
    maps: dict[str, Tensor],
    path: str | Path,
    *,
    row_titles: list[str] | None = None,
    mode: str = "signed",
    percentile: float = 99.0,
    display: list[np.ndarray] | None = None,
) -> Path:
    """Write a PNG grid: one row per sample, the input then one map per method. Returns the path."""
    rows, columns = inputs.shape[0], len(maps) + 1
    figure, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.7 * rows), squeeze=False)
    cmap, limits = ("bwr", (-1, 1)) if mode == "signed" else ("hot", (0, 1))
    for row in range(rows):
        image = display[row] if display is not None else image_for_display(inputs[row])
        axes[row, 0].imshow(image, cmap=None if image.ndim == 3 else "gray")
        axes[row, 0].set_title(row_titles[row] if row_titles else "input", fontsize=7)
        for column, (name, attribution) in enumerate(maps.items(), start=1):
            values = normalise(to_map(attribution[row]), mode, percentile)
            axes[row, column].imshow(values, cmap=cmap, vmin=limits[0], vmax=limits[1])
            if row == 0:
                axes[row, column].set_title(name.replace("_", " "), fontsize=7)
    for axis in axes.flat:
        axis.set_axis_off()
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
