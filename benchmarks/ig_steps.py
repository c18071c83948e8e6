"""Passes Integrated Gradients needs to reach a completeness gap, per quadrature rule and with ``steps="auto"``.

The relative completeness gap of IG with ``M`` steps is ``|sum_i IG_i - (f(x) - f(z))| / |f(x) - f(z)|``
(IG paper, Sundararajan et al. 2017, Sec. 3 and Proposition 1: the paper picks 20-300 steps by checking it;
Captum's default is a fixed 50 Gauss-Legendre nodes). Because ``sum_i IG_i = sum_k w_k s(alpha_k)`` with
``s(alpha) = (x - z) . grad f(z + alpha (x - z))``, every rule's gap at every ``M`` follows from the scalar
``s`` at its nodes: this script evaluates ``s`` once per distinct node (one gradient pass per sample and
node, through the engine) and reads off, per sample, the smallest ``M`` on a ladder (:data:`LADDER`) from
which each rule's gap stays at most 1% (0.1%) at every larger ladder value: a fixed ``steps`` has to be chosen
before seeing the gap, and on ReLU networks the gap is not monotone in ``M`` (a lucky ``M`` can cancel to
1e-5 and the next one err by 3e-3):

* ``riemann_right`` (the IG paper's and SmoothTaylor's Eq. 2), ``trapezoid`` and ``gauss_legendre``: passes =
  ``M`` (at the ladder's resolution: the true minimum lies between the previous ladder value and this one);
* ``auto``: ``taylorlens.attribute(..., steps="auto", tolerance=...)`` run for real, passes = the points it
  spent per sample (``return_info=True``), including its reuse of earlier levels.

Models: the digit CNN (``zoo.load("digits_cnn_relu")``, 8x8 test digits), EfficientNet-Lite0 on the bundled
photos (pretrained, 224x224), and a small random BERT (``BertForSequenceClassification``) at
``layer="bert.embeddings.word_embeddings"``. Baseline 0 in each explained space; target = predicted class.

Run: ``nice python benchmarks/ig_steps.py`` (``--models digits bert`` for the fast ones; ``--photos 2``).
"""

from __future__ import annotations

import argparse
import sys
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/ig_steps.py` finds the package

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

import taylorlens  # noqa: E402
from benchmarks.timing import load_average, machine, markdown_table  # noqa: E402
from taylorlens import zoo  # noqa: E402
from taylorlens.engine import PathPoints, Request  # noqa: E402
from taylorlens.engine.passes import gradient_chunks  # noqa: E402
from taylorlens.methods.quadrature import quadrature  # noqa: E402

#: Steps at which each fixed rule is checked (smallest first).
LADDER = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
TOLERANCES = (1e-2, 1e-3)
RULES = ("riemann_right", "trapezoid", "gauss_legendre")


def digits_case(count: int) -> tuple[nn.Module, Tensor, dict]:
    x, _ = zoo.dataset("digits", "test")
    return zoo.load("digits_cnn_relu"), x[:count], {}


def photos_case(count: int) -> tuple[nn.Module, Tensor, dict]:
    photos = list(zoo.photos().values())[:count]
    return zoo.load("efficientnet_lite0"), torch.stack([p.tensor for p in photos]), {}


def bert_case(count: int) -> tuple[nn.Module, Tensor, dict]:
    import transformers

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=128, max_position_embeddings=64, num_labels=2)
    model = transformers.BertForSequenceClassification(config).eval()
    ids = torch.randint(1, 1000, (count, 32), generator=torch.Generator().manual_seed(1))
    return model, ids, {"layer": "bert.embeddings.word_embeddings"}


#: name -> (title, make(count), default samples, ladder end).
CASES = {
    "digits": ("digit CNN (digits_cnn_relu, 1x8x8)", digits_case, 32, 512),
    "photos": ("EfficientNet-Lite0, bundled photos 3x224x224", photos_case, 2, 128),
    "bert": ("random BERT (2 layers, hidden 64, seq 32) at the word embeddings", bert_case, 8, 512),
}


class NodeValues:
    """``s(alpha)`` and ``f`` per sample at any node, each node evaluated once (cached by its exact value)."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.cache: dict[Fraction, tuple[Tensor, Tensor]] = {}
        self.passes = 0

    def at(self, nodes: list[Fraction] | np.ndarray) -> tuple[Tensor, Tensor]:
        """``s`` and ``f`` at ``nodes``: ``(B, K)`` each."""
        keys = [node if isinstance(node, Fraction) else float(node) for node in nodes]
        missing = [key for key in dict.fromkeys(keys) if key not in self.cache]
        if missing:
            self._evaluate(missing)
        s = torch.stack([self.cache[key][0] for key in keys], 1)
        f = torch.stack([self.cache[key][1] for key in keys], 1)
        return s, f

    def _evaluate(self, keys: list) -> None:
        x = self.request.inputs
        alphas = torch.tensor([float(key) for key in keys], dtype=torch.float64).to(x.dtype)
        points = PathPoints(x, torch.zeros_like(x)[:, None], alphas)
        s = torch.zeros(x.shape[0], len(keys), dtype=torch.float64)
        f = torch.zeros_like(s)
        with self.request.model_frozen():
            for chunk in gradient_chunks(self.request, points, None):
                products = (chunk.grads * x[chunk.sample]).flatten(1).sum(1).double()
                s[chunk.sample, chunk.variant] = products
                f[chunk.sample, chunk.variant] = chunk.outputs.double()
        self.passes += points.total
        for k, key in enumerate(keys):
            self.cache[key] = (s[:, k], f[:, k])


def fixed_rule_gap(values: NodeValues, rule: str, steps: int, delta: Tensor) -> Tensor:
    """Relative completeness gap per sample of ``rule`` with ``steps`` nodes."""
    if rule == "riemann_right":
        nodes, weights = [Fraction(m, steps) for m in range(1, steps + 1)], torch.full((steps,), 1 / steps)
    elif rule == "trapezoid":
        nodes = [Fraction(m, steps - 1) for m in range(steps)]
        weights = torch.full((steps,), 1 / (steps - 1))
        weights[[0, -1]] /= 2
    else:
        alphas, weights = quadrature(rule, steps, torch.float64, torch.device("cpu"))
        nodes = alphas.numpy()
    s, _ = values.at(nodes)
    return ((s * weights.double()).sum(1) - delta).abs() / delta.abs()


def passes_needed(values: NodeValues, rule: str, delta: Tensor, ladder: tuple[int, ...]) -> dict[float, list]:
    """Per tolerance, each sample's smallest ladder steps from which the gap stays at most the tolerance
    (None: not even at the ladder's end)."""
    gaps = torch.stack([fixed_rule_gap(values, rule, steps, delta) for steps in ladder], 1)  # (B, L)
    needed = {}
    for tolerance in TOLERANCES:
        above = (gaps > tolerance).flip(1).cumsum(1).flip(1) > 0  # some later ladder value is above
        needed[tolerance] = [
            None if row.all() else ladder[int((~row).nonzero()[0])] for row in above
        ]
    return needed


def summary(counts: list[int | None], top: int) -> str:
    """``median / max`` over samples; ``>top`` when some sample needs more than ``top`` (the ladder's end)."""
    reached = [c for c in counts if c is not None]
    if not reached:
        return f">{top}"
    median = float(np.median([c if c is not None else top * 2 for c in counts]))
    median_text = f">{top}" if median > top else f"{median:g}"
    worst = f">{top}" if len(reached) < len(counts) else f"{max(reached)}"
    return f"{median_text} / {worst}"


def run_case(name: str, count: int) -> list[list[str]]:
    title, make, _, end = CASES[name]
    ladder = tuple(steps for steps in LADDER if steps <= end)
    model, inputs, options = make(count)
    with torch.no_grad():
        predicted = model(inputs).logits.argmax(1) if name == "bert" else model(inputs).argmax(1)
    request = Request.build(model, inputs, predicted, **options)
    values = NodeValues(request)
    start = time.perf_counter()
    _, f = values.at([Fraction(0), Fraction(1)])
    delta = f[:, 1] - f[:, 0]
    rows = []
    needed = {rule: passes_needed(values, rule, delta, ladder) for rule in RULES}
    auto = {}
    for tolerance in TOLERANCES:
        _, info = taylorlens.attribute(model, inputs, predicted, "integrated_gradients", steps="auto",
                                       tolerance=tolerance, return_info=True, **options)
        auto[tolerance] = info
    for tolerance in TOLERANCES:
        info = auto[tolerance]
        per_sample = [int(p) if ok else None for p, ok in zip(info.points_per_sample.tolist(),
                                                              info.converged.tolist(), strict=True)]
        if options.get("layer"):  # the layer's value is read once per sample: not a path pass
            per_sample = [None if p is None else p - 1 for p in per_sample]
        rows.append([title, f"{tolerance:.1%}", *(summary(needed[rule][tolerance], end) for rule in RULES),
                     summary(per_sample, top=1025), f"{np.median(info.steps.tolist()):g} / {max(info.steps.tolist())}"])
    print(f"{title}: {inputs.shape[0]} samples, {values.passes} node passes for the fixed rules, "
          f"{time.perf_counter() - start:.0f} s; |f(x) - f(0)| median {delta.abs().median():.3g}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--samples", type=int, default=None, help="samples per model (default: per model)")
    args = parser.parse_args()
    print(f"{time.strftime('%Y-%m-%d')}, {machine()}; load average {load_average()} at start", flush=True)
    rows = []
    for name in args.models:
        rows += run_case(name, args.samples or CASES[name][2])
    print(f"load average {load_average()} at end")
    header = ["model", "gap", *RULES, "auto (points)", "auto (steps)"]
    print(markdown_table(header, rows))


if __name__ == "__main__":
    main()
