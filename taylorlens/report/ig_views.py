"""The IG paper's views (Sundararajan et al.): interior-gradient strips and their animation (Sec. 2.2,
Figs. 3-4) and the saturation plot along the scaling path (Sec. 2.1, Fig. 2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from torch import Tensor

from taylorlens.metrics.saturation import ScalingPath
from taylorlens.report.figures import plt, png
from taylorlens.report.heatmaps import normalise, to_map


def interior_strip_frames(interior: Tensor, sample: int) -> list[np.ndarray]:
    """One absolute-normalised map per alpha for ``sample`` of interior gradients ``(A, B, ...)``."""
    return [normalise(to_map(interior[a, sample]), "absolute") for a in range(interior.shape[0])]


def interior_strip(interior: Tensor, alphas: Tensor, path: str | Path, labels: list[str] | None = None) -> Path:
    """PNG: one row per sample, one column per alpha, the interior gradient's absolute map."""
    samples, columns = interior.shape[1], interior.shape[0]
    figure, axes = plt.subplots(samples, columns, figsize=(1.2 * columns, 1.3 * samples), squeeze=False)
    for row in range(samples):
        for column, frame in enumerate(interior_strip_frames(interior, row)):
            axes[row, column].imshow(frame, cmap="hot", vmin=0, vmax=1)
            axes[row, column].set_axis_off()
            if row == 0:
                axes[row, column].set_title(f"alpha={float(alphas[column]):.2f}", fontsize=6)
        if labels:
            axes[row, 0].text(-0.5, 0.5, labels[row], fontsize=6, transform=axes[row, 0].transAxes, ha="right")
    path = Path(path)
    path.write_bytes(png(figure))
    return path


def interior_gif(interior: Tensor, path: str | Path, *, size: int = 160, milliseconds: int = 250) -> Path:
    """Animated GIF over alpha: each frame shows every sample's interior-gradient map side by side."""
    frames = []
    for a in range(interior.shape[0]):
        tiles = [normalise(to_map(interior[a, s]), "absolute") for s in range(interior.shape[1])]
        row = np.concatenate([np.kron(t, np.ones((max(1, size // t.shape[0]),) * 2)) for t in tiles], axis=1)
        frames.append(Image.fromarray((plt.get_cmap("hot")(row)[..., :3] * 255).astype(np.uint8)))
    path = Path(path)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=milliseconds, loop=0)
    return path


def saturation_plot(scaling: ScalingPath, path: str | Path, labels: list[str] | None = None) -> Path:
    """Target score (pre-softmax) and softmax probability against alpha, one line per input (Fig. 2)."""
    panels = 1 if scaling.probabilities is None else 2
    figure, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 3.4), squeeze=False)
    alphas = scaling.alphas.cpu().numpy()
    curves = [("pre-softmax score", scaling.scores)]
    if scaling.probabilities is not None:
        curves.append(("softmax probability", scaling.probabilities))
    for axis, (name, values) in zip(axes[0], curves, strict=True):
        for index, line in enumerate(values.cpu().numpy()):
            axis.plot(alphas, line, linewidth=1.2, label=labels[index] if labels else None)
        axis.set(xlabel="alpha (scaled input alpha * x)", ylabel=name, title=f"{name} along the scaling path")
        axis.grid(alpha=0.3)
    if labels:
        axes[0, -1].legend(fontsize=6)
    path = Path(path)
    path.write_bytes(png(figure))
    return path
