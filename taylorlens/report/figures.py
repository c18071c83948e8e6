"""Figures of a results store, as PNG bytes for embedding: metric curves, metric against principles,
heat-map galleries. Each follows the paper figure it reproduces (named in the docstrings)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from taylorlens.metrics import available  # noqa: E402
from taylorlens.report.heatmaps import image_for_display, normalise, to_map  # noqa: E402


def png(figure: Figure) -> bytes:
    """The figure as PNG bytes (and closed)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def curves_figure(title: str, metric: str, curves: dict[str, list[dict[str, list[float]]]]) -> bytes:
    """Mean curve per method with a band of +-1 standard error (e.g. Ancona et al. Fig. 4; Adebayo et al.
    Fig. 2 for the randomization test: similarity per randomised layer).

    ``curves`` maps a method label to one ``{"x": [...], "y": [...]}`` per sample, with ``"ticks"`` (names
    of the points, drawn as x-axis labels) where the metric names them. Axis names and scale come from the
    metrics registry.
    """
    figure, axis = plt.subplots(figsize=(6, 3.6))
    for label, rows in sorted(curves.items()):
        length = min(len(r["y"]) for r in rows)
        values = np.array([r["y"][:length] for r in rows], dtype=float)
        mean = np.nanmean(values, axis=0)
        error = np.nanstd(values, axis=0) / np.sqrt(max(1, values.shape[0]))
        steps = np.nanmean(np.array([r["x"][:length] for r in rows], dtype=float), axis=0)
        axis.plot(steps, mean, label=label, linewidth=1.4)
        axis.fill_between(steps, mean - error, mean + error, alpha=0.2)
    info = available().get(metric)
    x_label, y_label = (info.curve_axis, info.curve_label) if info is not None and info.has_curve else ("step", metric)
    axis.set(title=title, xlabel=x_label, ylabel=y_label)
    first = next(iter(curves.values()), [{}])[0]
    if first.get("ticks"):
        axis.set_xticks(first["x"], first["ticks"], rotation=45, ha="right", fontsize=7)
    if info is not None and info.log_x:
        axis.set_xscale("log")
    axis.legend(fontsize=7, loc="best")
    axis.grid(alpha=0.3)
    return png(figure)


#: ROAD's y-axis per ``readout`` (taylorlens.metrics.road): what each curve point is.
ROAD_Y_LABELS = {"output": "explained output", "correct": "accuracy (fraction predicting the target)"}


def road_figure(title: str, curves: dict[str, dict[str, list[dict[str, list[float]]]]],
                readout: str = "output") -> bytes:
    """ROAD curves (Rong et al. 2022, Fig. 4): per method its mean MoRF curve (solid) and LeRF curve (dashed)
    in one colour; a method whose LeRF curve lies above its MoRF curve ranks pixels consistently.

    ``curves`` maps a method label to ``{"morf": rows, "lerf": rows}`` (either may be missing), each row one
    sample's ``{"x": [...], "y": [...]}``. ``readout``: the metric's option, naming the y-axis
    (:data:`ROAD_Y_LABELS`: the explained output, or the accuracy for ``"correct"``).
    """
    info = available()["road"]
    figure, axis = plt.subplots(figsize=(6, 3.6))
    for index, (label, orders) in enumerate(sorted(curves.items())):
        for order, style in (("morf", "-"), ("lerf", "--")):
            rows = orders.get(order)
            if not rows:
                continue
            values = np.array([r["y"] for r in rows], dtype=float)
            axis.plot(rows[0]["x"], np.nanmean(values, axis=0), style, color=f"C{index % 10}",
                      label=f"{label} {order.upper()}", linewidth=1.4)
    axis.set(title=title, xlabel=info.curve_axis, ylabel=ROAD_Y_LABELS.get(readout, info.curve_label))
    axis.legend(fontsize=7, loc="best")
    axis.grid(alpha=0.3)
    return png(figure)


def principles_figure(title: str, points: list[tuple[str, float, float]], y_label: str) -> bytes:
    """Metric against the number of principles a method follows (Deng et al. 2021, Figs. 2 and 3)."""
    figure, axis = plt.subplots(figsize=(5, 3.4))
    for label, count, value in points:
        axis.scatter(count, value, s=30)
        axis.annotate(label, (count, value), fontsize=7, xytext=(4, 2), textcoords="offset points")
    axis.set(title=title, xlabel="number of principles followed", ylabel=y_label)
    axis.grid(alpha=0.3)
    return png(figure)


def gallery_figure(inputs: list[np.ndarray], labels: list[str], maps: dict[str, list[np.ndarray | None]],
                   mode: str = "absolute") -> bytes:
    """One row per sample: the input, then each method's map (papers' absolute, 99th-percentile clipped)."""
    import torch

    rows, columns = len(inputs), len(maps) + 1
    figure, axes = plt.subplots(rows, columns, figsize=(1.5 * columns, 1.6 * rows), squeeze=False)
    cmap = "hot" if mode == "absolute" else "bwr"
    low = 0 if mode == "absolute" else -1
    for row, (image, label) in enumerate(zip(inputs, labels, strict=True)):
        shown = image_for_display(torch.as_tensor(image))
        axes[row, 0].imshow(shown, cmap=None if shown.ndim == 3 else "gray")
        axes[row, 0].set_title(label, fontsize=6)
        for column, (name, arrays) in enumerate(maps.items(), start=1):
            if arrays[row] is not None:
                values = normalise(to_map(torch.as_tensor(arrays[row])), mode)
                axes[row, column].imshow(values, cmap=cmap, vmin=low, vmax=1)
            if row == 0:
                axes[row, column].set_title(name[:24], fontsize=6)
    for axis in axes.flat:
        axis.set_axis_off()
    figure.tight_layout()
    return png(figure)
