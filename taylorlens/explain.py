"""`taylorlens explain`: attributions of a model on a few inputs, as arrays, heat maps and a JSON summary.

Per input sample it writes ``attributions/<method>.npy`` (all samples stacked), ``sample_<i>.png`` (the
input, then one map per method), ``grid.png`` (all samples) and ``summary.json`` (predicted label and score,
each map's completeness gap ``sum(a) - (f(x) - f(0))``, time per method). It also draws the IG paper's
views: ``interior_gradients.png`` (a strip over alpha per input), ``interior_gradients.gif`` (the same
animated) and ``saturation.png`` (target score and probability along the scaling path, every input).
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from taylorlens import zoo
from taylorlens.engine import UnsupportedModelError
from taylorlens.methods import attribute, methods
from taylorlens.methods.registry import ALIASES
from taylorlens.metrics.saturation import scaling_path
from taylorlens.report.heatmaps import heatmap_grid
from taylorlens.report.ig_views import interior_gif, interior_strip, saturation_plot
from taylorlens.zoo.registry import DEPRECATED_NAMES

#: Alphas of the interior-gradient strip (IG paper, Fig. 3 shows a handful between 0 and 1).
STRIP_ALPHAS = (0.02, 0.04, 0.06, 0.08, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0)

DEFAULT_MODEL = "digits_cnn_relu"
DEFAULT_INPUTS = "digits"
#: The model used when none is given, by inputs (anything else: DEFAULT_MODEL).
DEFAULT_MODELS = {"photos": "efficientnet_lite0", "imagenet": "efficientnet_lite0", "mnist": "mnist5k_mlp_relu",
                  "fashion_mnist": "fashion_mnist_mlp_relu"}  # fmt: skip
#: Methods shown by default: every single-map method.
DEFAULT_METHODS = (
    "gradient", "gradient_x_input", "integrated_gradients", "expected_gradients", "deeplift", "epsilon_lrp",
    "occlusion", "smoothgrad", "smooth_taylor", "guided_backprop", "deconvnet",
)  # fmt: skip


class ExplainError(RuntimeError):
    """A model or input that `taylorlens explain` cannot load; the message says what is accepted."""


@dataclass
class LoadedInputs:
    """A batch to explain, how to show it, and reference samples for Expected Gradients."""

    x: Tensor
    labels: list[str]
    display: list[np.ndarray] | None = None
    references: Tensor | None = None
    class_names: list[str] | None = field(default=None)


def load_model(spec: str, device: str) -> nn.Module | Callable:
    """A zoo name, a TorchScript file, or ``package.module:function`` returning an ``nn.Module``."""
    if spec in zoo.models() or spec in DEPRECATED_NAMES:
        return zoo.load(spec, device=device)
    if ":" in spec and not Path(spec).exists():
        module_name, _, function_name = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), function_name)
        except (ImportError, AttributeError) as error:
            raise ExplainError(f"cannot import {spec!r}: {error}") from None
        return factory().to(device).eval()
    path = Path(spec)
    if not path.is_file():
        raise ExplainError(
            f"model {spec!r} is neither a zoo model ({', '.join(sorted(zoo.models()))}), an existing TorchScript "
            "file, nor module:function"
        )
    try:
        return torch.jit.load(str(path), map_location=device).eval()
    except (RuntimeError, ValueError, OSError) as error:
        raise ExplainError(
            f"{path} is not a readable TorchScript file ({str(error).splitlines()[0]}); save models with "
            "torch.jit.script(model).save(path) or pass module:function"
        ) from None


def load_inputs(spec: str, model_name: str, count: int) -> LoadedInputs:
    """Built-in data ("digits", "mnist", "fashion_mnist", "photos", "imagenet": the labelled ImageNet samples
    at the zoo model's resolution, true class in the label), a ``.npz`` (arrays x[, y]) or an image folder."""
    if spec == "imagenet":
        resolution = model_name if model_name in zoo.models() else 224
        chosen = list(zoo.imagenet_samples(resolution, include_photos=False).values())[:count]
        classes = zoo.imagenet_classes()
        return LoadedInputs(
            torch.stack([p.tensor for p in chosen]),
            [f"true {classes[p.label]}" for p in chosen],
            display=[p.image for p in chosen],
            class_names=classes,
        )
    if spec in ("digits", "mnist", "fashion_mnist"):
        x, y = zoo.dataset(spec, split="test")
        train, _ = zoo.dataset(spec, split="train")
        return LoadedInputs(x[:count], [f"label {int(v)}" for v in y[:count]], references=train[:200])
    if spec == "photos" or Path(spec).is_dir():
        found = zoo.photos() if spec == "photos" else zoo.photos_from_folder(spec)
        chosen = list(found.values())[:count]
        return LoadedInputs(
            torch.stack([p.tensor for p in chosen]),
            [p.name for p in chosen],
            display=[p.image for p in chosen],
            class_names=zoo.imagenet_classes(),
        )
    if spec.endswith(".npz"):
        x, y = zoo.npz_dataset(spec)
        return LoadedInputs(x[:count], [f"label {int(v)}" for v in y[:count]])
    raise ExplainError(
        f"inputs {spec!r}: give digits, mnist, fashion_mnist, photos, imagenet, a .npz file or an image folder"
    )


def method_options(name: str, inputs: LoadedInputs) -> dict[str, Any]:
    """Options that depend on the data: references for Expected Gradients, patch occlusion for photos."""
    if name == "expected_gradients":
        return {"references": inputs.references, "seed": 0} if inputs.references is not None else {
            "sigma": 0.5, "seed": 0}
    if name in ("smoothgrad", "smooth_taylor"):
        return {"seed": 0}
    if name == "occlusion" and inputs.x.dim() == 4 and inputs.x.shape[-1] >= 64:
        # photos: 16x16 patches over all channels, stride 8 (Occlusion-1 would be 150,528 passes per image)
        return {"window": (inputs.x.shape[1], 16, 16), "stride": (inputs.x.shape[1], 8, 8)}
    return {}


def _ig_views(model: Callable, x: Tensor, target: Tensor, labels: list[str], out: Path) -> None:
    """Interior-gradient strip and GIF, and the saturation plot (IG paper, Figs. 2-4)."""
    alphas = torch.tensor(STRIP_ALPHAS, dtype=x.dtype)
    interior = attribute(model, x, target, "interior_gradients", alphas=alphas)
    interior_strip(interior, alphas, out / "interior_gradients.png", labels)
    interior_gif(interior, out / "interior_gradients.gif")
    saturation_plot(scaling_path(model, x, target), out / "saturation.png", labels)


def explain(
    model_spec: str | None = None,
    inputs_spec: str = DEFAULT_INPUTS,
    method_names: list[str] | None = None,
    out: str | Path = "results/explain",
    *,
    count: int = 6,
    device: str = "cpu",
    normalisation: str = "signed",
    progress: Callable[[str], None] = print,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Run the explain job and return its summary (also written to ``out/summary.json``). Without
    ``model_spec`` the model fits the inputs (``DEFAULT_MODELS``, else ``DEFAULT_MODEL``)."""
    model_spec = model_spec or DEFAULT_MODELS.get(inputs_spec, DEFAULT_MODEL)
    out = Path(out)
    known = methods()
    method_names = [ALIASES.get(m, m) for m in (method_names or DEFAULT_METHODS)]
    unknown = [m for m in method_names if m not in known]
    if unknown:
        raise ExplainError(f"unknown method(s) {unknown}; known: {', '.join(known)} (aliases: {', '.join(ALIASES)})")
    model = load_model(model_spec, device)
    data = load_inputs(inputs_spec, model_spec, count)
    x = data.x.to(device)
    with torch.inference_mode():
        logits = model(x)
        scores, predicted = logits.max(dim=1)
        f_zero = model(torch.zeros_like(x)).gather(1, predicted[:, None])[:, 0]
    names = data.class_names
    labels = [names[int(p)] if names else str(int(p)) for p in predicted]
    maps: dict[str, Tensor] = {}
    summary: dict[str, Any] = {"model": model_spec, "inputs": inputs_spec, "methods": {}, "samples": []}
    (out / "attributions").mkdir(parents=True, exist_ok=True)
    bar = tqdm(method_names, unit="method", disable=not show_progress, leave=False)
    for index, name in enumerate(bar, start=1):
        bar.set_postfix_str(name)
        start = time.perf_counter()
        try:
            maps[name] = attribute(model, x, predicted, name, **method_options(name, data))
        except UnsupportedModelError as error:
            progress(f"[{index}/{len(method_names)}] {name}: skipped ({error})")
            summary["methods"][name] = {"skipped": str(error)}
            continue
        seconds = time.perf_counter() - start
        np.save(out / "attributions" / f"{name}.npy", maps[name].cpu().numpy())
        gap = maps[name].flatten(1).sum(1) - (scores - f_zero)
        summary["methods"][name] = {"seconds": round(seconds, 4), "completeness_gap": gap.tolist()}
        progress(f"[{index}/{len(method_names)}] {name}: {seconds:.2f} s")
    rows = [f"{label}\npred {p} ({s:.2f})" for label, p, s in zip(data.labels, labels, scores.tolist(), strict=True)]
    for i in range(x.shape[0]):
        one = {name: m[i : i + 1] for name, m in maps.items()}
        display = None if data.display is None else data.display[i : i + 1]
        heatmap_grid(x[i : i + 1], one, out / f"sample_{i}.png", row_titles=rows[i : i + 1], mode=normalisation,
                     display=display)
        summary["samples"].append({"input": data.labels[i], "predicted": labels[i], "score": float(scores[i])})
    heatmap_grid(x, maps, out / "grid.png", row_titles=rows, mode=normalisation, display=data.display)
    _ig_views(model, x, predicted, data.labels, out)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    progress(f"wrote {out / 'grid.png'}, {x.shape[0]} sample PNGs, attributions/*.npy, summary.json, "
             f"interior_gradients.png/.gif and saturation.png to {out}")
    return summary
