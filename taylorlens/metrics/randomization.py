"""Model-parameter randomization test (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018, Sec. 3).

An explanation that does not change when the model's weights are destroyed does not explain the model.
The test re-initialises the layers from the output down (``"cascading"``, Sec. 3.1: layer ``l`` and every
layer above it are random) or one at a time (``"independent"``: only layer ``l``), recomputes the maps and
reports their similarity to the original maps per randomised layer. The paper's measures (Fig. 2):
Spearman rank correlation of the absolute maps (``"spearman_abs"``) and of the signed maps
(``"spearman"``), the structural similarity index of the maps (``"ssim"``) and the Pearson correlation
of their histograms of oriented gradients (``"hog"``). Gradient and integrated gradients pass (similarity
falls towards 0); guided backprop and deconvnet fail (their maps survive randomisation of the top layers).

Layering: this is the one metric that attributes. It takes a method *name* and calls the public
``taylorlens.attribute``, imported inside :func:`randomization_test`, so the metrics package imports no
method module. The data randomization test (Sec. 3.2) is :func:`data_randomization_test`: the similarity
of a model's maps to those of the same architecture trained on shuffled labels (the zoo has
``digits_cnn_relu_shuffled_labels``); :func:`map_similarity` compares any two batches of maps.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taylorlens.engine.checks import AttributionInputError, check_choice
from taylorlens.metrics.registry import register
from taylorlens.metrics.sensitivity import Centred, correlation
from taylorlens.metrics.smoothness import saliency_map

MODES = ("cascading", "independent")


@dataclass(frozen=True)
class RandomizationTest:
    """``similarity[name]`` (B, L): similarity of each input's map after randomising ``layers[:l + 1]``
    (cascading) or ``layers[l]`` alone (independent) to its original map; ``layers`` in the order randomised;
    ``original`` the original maps."""

    layers: list[str]
    similarity: dict[str, Tensor]
    original: Tensor
    mode: str

    @property
    def curve(self) -> Tensor:
        """The first similarity measure per randomised layer, ``(B, L)``."""
        return next(iter(self.similarity.values()))

    @property
    def value(self) -> Tensor:
        """The first similarity measure averaged over the layers, ``(B,)``; lower passes the check."""
        return self.curve.mean(1)

    @property
    def curve_x(self) -> Tensor:
        return torch.arange(1, len(self.layers) + 1, dtype=torch.float64)

    @property
    def curve_ticks(self) -> list[str]:
        """The randomised layers, one per point of the curve (the report's x-axis labels)."""
        return list(self.layers)


@register("randomization_test", higher_is_better=False, needs=("model", "inputs", "target", "method"),
          value="mean similarity to the original maps over randomised layers", seeded=True,
          curve_axis="layers randomised (from the output)", curve_label="similarity to the original map")
def randomization_test(
    model: nn.Module,
    inputs: Tensor,
    target: Any,
    method: str,
    *,
    mode: str = "cascading",
    layers: Any = None,
    similarity: tuple[str, ...] = ("spearman_abs", "spearman", "ssim"),
    seed: int | None = None,
    **method_options: Any,
) -> RandomizationTest:
    """Similarity of ``method``'s maps before and after randomising each layer (Adebayo et al. 2018, Sec. 3.1).

    ``method``: a registered method name; ``method_options`` go to it (``seed`` too, when the method takes
    one, so both maps see the same noise). ``layers``: module names of ``model`` (``named_modules``),
    randomised in the order given (a block such as ``"_blocks.15"`` re-initialises every layer inside it);
    default every module with a ``reset_parameters`` method and parameters of its own, from the output back
    to the input. A layer is re-initialised by its ``reset_parameters()``
    (PyTorch's default initialisation) with the global generator seeded to ``seed + 1`` before each layer,
    as Quantus's ``MPRT`` does (the caller's random state is restored afterwards). The model is copied,
    never modified. ``similarity``: names from :data:`SIMILARITIES`. A randomised model that no longer
    depends on its input (e.g. a random convolution under a trained batch norm that saturates every ReLU6)
    gives constant maps, whose rank correlation is undefined: NaN, as in Quantus; randomise the batch norm
    too (the default layer list holds every one).
    """
    check_choice("mode", mode, MODES)
    for name in similarity:
        check_choice("similarity", name, tuple(SIMILARITIES))
    if not isinstance(model, nn.Module):
        raise AttributionInputError(f"randomization_test needs an nn.Module to re-initialise, got {type(model)}")
    names = _layers(model, layers)
    seed = int(torch.randint(2**31, ()).item()) if seed is None else seed
    explain = _explainer(inputs, target, method, seed, method_options)
    original = explain(model)
    randomised = copy.deepcopy(model)
    state = copy.deepcopy(randomised.state_dict()) if mode == "independent" else None
    modules = dict(randomised.named_modules())
    scores: dict[str, list[Tensor]] = {name: [] for name in similarity}
    prepared = {name: SIMILARITIES[name].prepare(original) for name in similarity}  # once, not per layer
    for layer in names:
        if mode == "independent":
            randomised.load_state_dict(state)
        with _seeded(seed + 1, randomised):
            for part in _parts(modules[layer]):
                part.reset_parameters()
        maps = explain(randomised)
        for name in similarity:
            measure = SIMILARITIES[name]
            scores[name].append(measure.compare(prepared[name], measure.prepare(maps)))
    return RandomizationTest(names, {name: torch.stack(rows, 1) for name, rows in scores.items()}, original, mode)


@dataclass(frozen=True)
class DataRandomizationTest:
    """``similarity[name]`` (B,): similarity of each input's map under the model to its map under the model
    trained on shuffled labels; ``original`` and ``shuffled`` the two batches of maps."""

    similarity: dict[str, Tensor]
    original: Tensor
    shuffled: Tensor

    @property
    def value(self) -> Tensor:
        """The first similarity measure, ``(B,)``; lower passes the check."""
        return next(iter(self.similarity.values()))


@register("data_randomization_test", higher_is_better=False, needs=("model", "inputs", "target", "method"),
          value="similarity to the maps of the model trained on shuffled labels", seeded=True)
def data_randomization_test(
    model: nn.Module,
    inputs: Tensor,
    target: Any,
    method: str,
    *,
    shuffled_model: nn.Module | str,
    similarity: tuple[str, ...] = ("spearman_abs", "spearman", "ssim"),
    seed: int | None = None,
    **method_options: Any,
) -> DataRandomizationTest:
    """Similarity of ``method``'s maps of ``model`` and of ``shuffled_model``, the same architecture trained on
    a permutation of the training labels (Adebayo et al. 2018, Sec. 3.2). An explanation that survives the
    permutation does not depend on the relation between inputs and labels the model learnt.

    ``shuffled_model``: an ``nn.Module`` or a zoo model name (e.g. ``"digits_cnn_relu_shuffled_labels"``,
    loaded with ``taylorlens.zoo.load``). Both maps explain the same ``target`` with the same
    ``method_options`` (and ``seed``, when the method takes one). ``similarity``: names from
    :data:`SIMILARITIES`.
    """
    if isinstance(shuffled_model, str):
        from taylorlens import zoo  # a name from a bench config; the metrics package imports no zoo module

        shuffled_model = zoo.load(shuffled_model, device=inputs.device)
    seed = int(torch.randint(2**31, ()).item()) if seed is None else seed
    explain = _explainer(inputs, target, method, seed, method_options)
    original, shuffled = explain(model), explain(shuffled_model)
    return DataRandomizationTest(map_similarity(original, shuffled, tuple(similarity)), original, shuffled)


def map_similarity(first: Tensor, second: Tensor, similarity: tuple[str, ...] = ("spearman_abs", "ssim")) -> dict:
    """``{name: (B,)}``: similarity of two batches of maps of the same shape (e.g. the data randomization test,
    Adebayo et al. Sec. 3.2: a model's maps against those of the same architecture trained on shuffled labels)."""
    if first.shape != second.shape:
        raise AttributionInputError(f"maps of shapes {tuple(first.shape)} and {tuple(second.shape)} differ")
    return {name: SIMILARITIES[check_choice("similarity", name, tuple(SIMILARITIES))](first, second)
            for name in similarity}


@contextmanager
def _seeded(seed: int, model: nn.Module) -> Iterator[None]:
    """The generators of the devices holding ``model``'s parameters seeded to ``seed`` inside the block and
    restored after it. (``torch.manual_seed`` would also queue seeds for every lazily initialised backend,
    formatting a stack trace for each: 5 ms per layer here.)"""
    cuda = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(seed)
        for index in cuda:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
        yield


def average_ranks(values: Tensor) -> Tensor:
    """Ranks along the last dimension of ``(B, N)`` values, ties given their average rank (as SciPy)."""
    if values.device.type == "cpu":  # NumPy's introsort: 5x torch.sort on 64 x 784 maps, one thread
        order = torch.from_numpy(np.argsort(values.detach().numpy(), axis=-1))
        ordered = values.gather(-1, order)
    else:  # unstable is fine for both: tied values share their average rank
        ordered, order = values.sort(dim=-1)
    starts = torch.ones_like(ordered, dtype=torch.bool)
    starts[..., 1:] = ordered[..., 1:] != ordered[..., :-1]
    position = torch.arange(values.shape[-1], dtype=torch.float64, device=values.device).expand(values.shape)
    if bool(starts.all()):  # no ties: the ranks are the inverse permutation
        return torch.empty_like(position).scatter_(-1, order, position)
    group = starts.long().cumsum(-1) - 1
    total = torch.zeros_like(position).scatter_add_(-1, group, position)
    count = torch.zeros_like(position).scatter_add_(-1, group, torch.ones_like(position))
    ranks = (total / count.clamp(min=1)).gather(-1, group)
    return torch.empty_like(ranks).scatter_(-1, order, ranks)


@dataclass(frozen=True)
class Similarity:
    """A similarity of two batches of maps, ``(B,)``, in two stages: ``prepare(maps)`` (ranks, saliency maps,
    features: what depends on one side only) and ``compare(prepared, prepared)``, so that the randomization
    test prepares the original maps once and compares them with every layer's maps. ``similarity(a, b)``
    does both."""

    prepare: Callable[[Tensor], Any]
    compare: Callable[[Any, Any], Tensor]

    def __call__(self, first: Tensor, second: Tensor) -> Tensor:
        return self.compare(self.prepare(first), self.prepare(second))


def _ranked(maps: Tensor) -> Centred:
    """Average ranks (float64) of the flattened maps, centred; ties are found in the maps' own dtype."""
    return Centred.of(average_ranks(maps.flatten(1)))


def spearman(first: Tensor, second: Tensor) -> Tensor:
    """Spearman rank correlation of the flattened maps per input, ``(B,)`` (NaN for a constant map)."""
    return correlation(_ranked(first), _ranked(second))


class _SsimSide(NamedTuple):
    """One side of SSIM: the saliency maps ``(B, 1, H, W)``, their local means and local means of squares."""

    maps: Tensor
    mean: Tensor
    mean_square: Tensor


SSIM_WINDOW = 7


def _ssim_side(attributions: Tensor) -> _SsimSide:
    maps = saliency_map(attributions).double()[:, None]
    if min(maps.shape[-2:]) < SSIM_WINDOW:
        raise AttributionInputError(
            f"ssim needs maps of at least {SSIM_WINDOW} x {SSIM_WINDOW}, got {tuple(maps.shape[-2:])}"
        )
    return _SsimSide(maps, _local_mean(maps), _local_mean(maps * maps))


def _local_mean(values: Tensor) -> Tensor:
    return F.avg_pool2d(values, SSIM_WINDOW, stride=1)


def _ssim_compare(a: _SsimSide, b: _SsimSide) -> Tensor:
    count = SSIM_WINDOW * SSIM_WINDOW
    correction = count / (count - 1)
    var_a = correction * (a.mean_square - a.mean * a.mean)
    var_b = correction * (b.mean_square - b.mean * b.mean)
    cov = correction * (_local_mean(a.maps * b.maps) - a.mean * b.mean)
    c1, c2 = 0.01**2, 0.03**2
    index = ((2 * a.mean * b.mean + c1) * (2 * cov + c2)) / ((a.mean**2 + b.mean**2 + c1) * (var_a + var_b + c2))
    return index.flatten(1).mean(1)


def ssim(first: Tensor, second: Tensor) -> Tensor:
    """Mean structural similarity (Wang et al. 2004) of the saliency maps
    (:func:`~taylorlens.metrics.smoothness.saliency_map`, in [0, 1]) per input, ``(B,)``, as
    ``skimage.metrics.structural_similarity(a, b, data_range=1)``: a 7 x 7 uniform window
    (:data:`SSIM_WINDOW`), K1 = 0.01, K2 = 0.03, sample covariances, averaged over the positions where the
    window fits."""
    return _ssim_compare(_ssim_side(first), _ssim_side(second))


def _hog_side(attributions: Tensor) -> Centred:
    """HOG features (``skimage.feature.hog``, 9 orientations, cells of an eighth of the shorter side but at
    least 2 pixels, 2 x 2 blocks) of the saliency maps, centred for a Pearson correlation."""
    from skimage.feature import hog

    maps = saliency_map(attributions)
    cell = max(2, min(maps.shape[-2:]) // 8)
    rows = [hog(m, pixels_per_cell=(cell, cell), cells_per_block=(2, 2)) for m in maps.cpu().double().numpy()]
    return Centred.of(torch.from_numpy(np.stack(rows)).to(attributions.device))


def hog_similarity(first: Tensor, second: Tensor) -> Tensor:
    """Pearson correlation of the HOG features of the saliency maps (:func:`_hog_side`), ``(B,)``."""
    return correlation(_hog_side(first), _hog_side(second))


#: similarity name -> :class:`Similarity` (callable as ``(maps, maps) -> (B,)``)
SIMILARITIES: dict[str, Similarity] = {
    "spearman_abs": Similarity(lambda maps: _ranked(maps.abs()), correlation),
    "spearman": Similarity(_ranked, correlation),
    "ssim": Similarity(_ssim_side, _ssim_compare),
    "hog": Similarity(_hog_side, correlation),
}


def _explainer(inputs: Tensor, target: Any, method: str, seed: int,
               method_options: dict[str, Any]) -> Callable[[nn.Module], Tensor]:
    """``network -> maps`` of ``method`` on ``inputs``, with ``seed`` passed to methods that take one, so that
    the maps of every network see the same noise."""
    from taylorlens import attribute, methods  # the public door: metrics import no method module

    options = dict(method_options)
    listed = methods().get(method)
    if listed is not None and "seed" in listed.options:
        options.setdefault("seed", seed)

    def explain(network: nn.Module) -> Tensor:
        return attribute(network, inputs, target, method=method, **options).detach()

    return explain


def _layers(model: nn.Module, layers: Any) -> list[str]:
    if layers is None:
        names = [name for name, module in model.named_modules() if _randomisable(module)]
        if not names:
            raise AttributionInputError("the model has no layer with reset_parameters() and parameters to randomise")
        return names[::-1]
    modules = dict(model.named_modules())
    names = [layers] if isinstance(layers, str) else list(layers)
    unknown = [n for n in names if n not in modules or not _parts(modules[n])]
    if unknown:
        known = [n for n, m in modules.items() if _randomisable(m)]
        raise AttributionInputError(f"layers {unknown} hold no module with reset_parameters(); layers: {known}")
    return names


def _randomisable(module: nn.Module) -> bool:
    return hasattr(module, "reset_parameters") and any(True for _ in module.parameters(recurse=False))


def _parts(module: nn.Module) -> list[nn.Module]:
    """The module itself, or every randomisable module inside it (a block named in ``layers``)."""
    return [module] if _randomisable(module) else [m for m in module.modules() if _randomisable(m)]
