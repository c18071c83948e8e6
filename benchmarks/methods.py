"""Time every attribution method against its ideal cost and against Captum.

Run ``python benchmarks/methods.py`` (about 8 minutes on 2 CPU cores) or ``--quick`` (a ~1 minute smoke
run on smaller inputs). Two models, random weights (only timing matters, and the ratios do not depend on
the weights):

* a small CNN on 1x28x28 inputs, batch 64 (Ancona et al.'s MNIST CNN layout: two 3x3 convolutions, max-pool,
  two dense layers, ReLU);
* a ResNet-18-like network on 3x224x224 inputs, batch 4 (torchvision's layout, written out here with one
  ``nn.ReLU`` module per use so that Captum's hook-based methods accept it), with fewer steps/samples than
  the CNN: the counts are printed.

``--models bert lstm`` (not in the default run) times DeepLIFT and epsilon-LRP with ``products="symmetric"``
on a random BERT-base-sized encoder (sequence 128, batch 4, at ``inputs_embeds``) and on Ancona et al.'s
IMDB LSTM shape (500 tokens, at the embeddings), against Captum's DeepLift (which runs there but misses
summation-to-delta) and LRP (which refuses these models). The ideal is the plain pass of the fused model
(torch's attention kernel, cuDNN-style fused ``nn.LSTM``).

Timings use one torch thread unless ``--threads`` says otherwise. For each method the table gives the
median wall-clock time over interleaved rounds, the ideal time, their ratio, Captum's median time for the
same work and the largest absolute difference between the two results (``random`` where both draw their own
noise). Ideal = points evaluated x the best per-point cost of a plain pass (input gradient of the explained
output, parameters not requiring grad; forward only for occlusion): the batch size with the best cost is
found once per model, and a plain pass at that size is timed in every round next to the method, so the
ideal sees the same machine load. DeepLIFT's shared reference (baseline 0) adds one forward of one point
per chunk to its ideal (the forward cost at batch size 1, or the best one where 1 is not measured): its
values are recorded once and broadcast to the chunk's points. Before the reference tape the references
doubled the batch, and the ideal counted ``2 x batch`` gradient points.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/methods.py` finds the package

import captum.attr as captum  # noqa: E402
import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

import taylorlens  # noqa: E402
from benchmarks.timing import (  # noqa: E402
    PassCost,
    best_pass_cost,
    load_average,
    machine,
    markdown_table,
    plain_pass,
    seconds,
    time_interleaved,
)
from taylorlens.engine.pass_clock import tally  # noqa: E402


class SmallCNN(nn.Module):
    """Conv(3x3, 32)+ReLU, Conv(3x3, 64)+ReLU, MaxPool(2), Dense(128)+ReLU, Dense(10); 1x28x28 inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.relu1 = nn.Conv2d(1, 32, 3), nn.ReLU()
        self.conv2, self.relu2 = nn.Conv2d(32, 64, 3), nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.dense, self.relu3 = nn.Linear(64 * 12 * 12, 128), nn.ReLU()
        self.logits = nn.Linear(128, 10)

    def forward(self, x: Tensor) -> Tensor:
        h = self.pool(self.relu2(self.conv2(self.relu1(self.conv1(x)))))
        return self.logits(self.relu3(self.dense(h.flatten(1))))


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convolutions with batch norm, identity (or 1x1 projection) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1, self.relu1 = nn.BatchNorm2d(out_channels), nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2, self.relu2 = nn.BatchNorm2d(out_channels), nn.ReLU()
        self.shortcut = None  # identity; not nn.Identity, for which Captum's LRP has no rule
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: Tensor) -> Tensor:
        h = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(h + (x if self.shortcut is None else self.shortcut(x)))


class ResNet18(nn.Module):
    """ResNet-18 (He et al. 2016, Table 1): 7x7 stem, four stages of two basic blocks, 1000 classes."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)
        )
        blocks, channels = [], 64
        for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [BasicBlock(channels, width, stride), BasicBlock(width, width, 1)]
            channels = width
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, 1000)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.blocks(self.stem(x))).flatten(1))


class BertBaseAtEmbeddings(nn.Module):
    """A random BERT-base-sized encoder (12 layers, hidden 768, 12 heads) at ``inputs_embeds``, 2 logits."""

    def __init__(self, layers: int = 12, hidden: int = 768) -> None:
        super().__init__()
        import transformers

        config = transformers.BertConfig(
            hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=hidden // 64,
            intermediate_size=4 * hidden, vocab_size=100,
        )
        self.bert, self.head = transformers.BertModel(config), nn.Linear(hidden, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.bert(inputs_embeds=x).pooler_output)


class ImdbLSTM(nn.Module):
    """Ancona et al. App. C.4's IMDB model after its Embedding(5000, 32): LSTM(64) -> Linear(1), at the embeddings."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm, self.out = nn.LSTM(32, 64, batch_first=True), nn.Linear(64, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.lstm(x)[0][:, -1])


@dataclass(frozen=True)
class Setup:
    """One model and the work sizes used on it."""

    name: str
    model: Callable[[], nn.Module]
    shape: tuple[int, ...]
    batch: int
    classes: int
    steps: int  # IG steps, EG/SmoothGrad samples, interior-gradient alphas
    roots: int  # SmoothTaylor roots
    window: tuple[int, ...]  # occlusion window (= stride)
    repeats: int = 5
    budget: float = 12.0  # seconds of timed rounds per method (at least one round always runs)
    pass_sizes: tuple[int, ...] = (1, 8, 16, 32, 64, 128, 256, 512, 1024)
    #: Only these methods (None: all), and options added to the modified-gradient methods.
    methods: tuple[str, ...] | None = None
    modified: dict[str, Any] = field(default_factory=dict)


@dataclass
class Case:
    """One method: the taylorlens call, the number of points it evaluates and Captum's counterpart."""

    method: str
    options: dict[str, Any]
    points: int
    backward: bool = True
    note: str = ""
    reference_forwards: int = 0  # forward passes of one point added to the ideal (DeepLIFT's reference)
    captum: Callable[[Tensor, Tensor], Tensor] | None = None
    deterministic: bool = True
    row: list[str] = field(default_factory=list)


def cases(setup: Setup, model: nn.Module, references: Tensor) -> list[Case]:
    """Every method with the options of this setup, paired with Captum's implementation of the same work."""
    b, n = setup.batch, setup.steps
    windows = math.prod(size // w for size, w in zip(setup.shape, setup.window, strict=True))
    saliency = captum.Saliency(model)
    return [
        Case("gradient", {}, b, captum=lambda x, t: saliency.attribute(x, t, abs=False)),
        Case("saliency", {}, b, captum=lambda x, t: saliency.attribute(x, t, abs=True)),
        Case("gradient_x_input", {}, b, captum=lambda x, t: captum.InputXGradient(model).attribute(x, t)),
        Case(
            "integrated_gradients",
            {"steps": n},
            b * n,
            note=f"steps={n}",
            captum=lambda x, t: captum.IntegratedGradients(model).attribute(
                x, 0.0, t, n_steps=n, method="riemann_right"
            ),
        ),
        Case(
            "expected_gradients",
            {"references": references, "n_samples": n, "seed": 0},
            b * n,
            note=f"n_samples={n}; Captum: GradientShap",
            deterministic=False,
            captum=lambda x, t: captum.GradientShap(model).attribute(x, references, n_samples=n, target=t),
        ),
        Case("interior_gradients", {"alphas": torch.arange(1, n + 1) / n}, b * n, note=f"{n} alphas"),
        Case(
            "deeplift",
            dict(setup.modified),
            b,
            note="+1 reference forward",
            reference_forwards=1,
            captum=lambda x, t: captum.DeepLift(model).attribute(x, 0.0, t),
        ),
        Case(
            "epsilon_lrp",
            dict(setup.modified),
            b,
            note="Captum: LRP (epsilon rule)",
            captum=lambda x, t: captum.LRP(model).attribute(x, t),
        ),
        Case("guided_backprop", {}, b, captum=lambda x, t: captum.GuidedBackprop(model).attribute(x, t)),
        Case("deconvnet", {}, b, captum=lambda x, t: captum.Deconvolution(model).attribute(x, t)),
        Case(
            "occlusion",
            {"window": setup.window, "stride": setup.window},
            b * (windows + 1),
            backward=False,
            note=f"{windows} windows {'x'.join(map(str, setup.window))} + f(x)",
            captum=lambda x, t: captum.Occlusion(model).attribute(x, setup.window, setup.window, 0.0, t),
        ),
        Case(
            "smoothgrad",
            {"inner": "gradient", "n_samples": n, "sigma": 0.15, "seed": 0},
            b * n,
            note=f"n_samples={n}, inner=gradient; Captum: NoiseTunnel(Saliency)",
            deterministic=False,
            captum=lambda x, t: captum.NoiseTunnel(saliency).attribute(
                x, nt_type="smoothgrad", nt_samples=n, stdevs=0.15, target=t, abs=False
            ),
        ),
        Case("smooth_taylor", {"n_roots": setup.roots, "seed": 0}, b * setup.roots, note=f"n_roots={setup.roots}"),
    ]


def run_setup(setup: Setup, methods: list[str] | None) -> str:
    """Time every method on one model; returns the markdown table (also printed as it fills)."""
    torch.manual_seed(0)
    model = setup.model().eval()
    x = torch.rand(setup.batch, *setup.shape)
    target = torch.randint(setup.classes, (setup.batch,))
    references = torch.rand(16, *setup.shape)
    print(
        f"\n## {setup.name}: inputs {'x'.join(map(str, setup.shape))}, batch {setup.batch} (random weights)", flush=True
    )
    costs = {
        backward: best_pass_cost(model, x, target, backward=backward, batch_sizes=setup.pass_sizes)
        for backward in (True, False)
    }
    for cost in costs.values():
        print(f"best plain pass, {cost.describe()}; per batch size: {_by_size(cost)}", flush=True)
    header = [
        "method",
        "points",
        "taylorlens",
        "ideal",
        "ratio",
        "captum",
        "captum / taylorlens",
        "max abs diff",
        "work",
    ]
    rows = []
    for case in cases(setup, model, references):
        if (methods and case.method not in methods) or (setup.methods and case.method not in setup.methods):
            continue
        case.row = time_case(setup, case, model, x, target, costs[case.backward], costs[False])
        rows.append(case.row)
        print(" | ".join(case.row), flush=True)
    return markdown_table(header, rows)


def time_case(
    setup: Setup, case: Case, model: nn.Module, x: Tensor, target: Tensor, cost: PassCost, forward: PassCost
) -> list[str]:
    """Warm up on a quarter of the batch, then on the whole one until the chunk sizes are measured
    (:func:`settle`), then time interleaved rounds."""
    warm = max(1, setup.batch // 4)
    results: dict[str, Tensor] = {}

    def ours(inputs: Tensor, targets: Tensor) -> Tensor:
        return taylorlens.attribute(model, inputs, targets, method=case.method, **case.options)

    def keep(name: str, compute: Callable[[], Tensor]) -> Callable[[], None]:
        return lambda: results.__setitem__(name, compute())

    contenders = {
        "taylorlens": keep("taylorlens", lambda: ours(x, target)),
        "plain": plain_pass(model, x, target, cost.batch_size, backward=case.backward),
    }
    def warm_up() -> None:
        ours(x[:warm], target[:warm])
        settle(lambda: ours(x, target))

    warmups = {"taylorlens": warm_up}
    if case.captum is not None:
        contenders["captum"] = keep("captum", lambda: case.captum(x, target))
        warmups["captum"] = lambda: case.captum(x[:warm], target[:warm])
    try:
        times = time_interleaved(contenders, repeats=setup.repeats, budget=setup.budget, warmups=warmups)
    except Exception as error:  # Captum rejects some models (e.g. LRP on layers it has no rule for)
        if case.captum is None:
            raise
        print(f"  captum failed on {case.method}: {type(error).__name__}: {str(error)[:200]}", flush=True)
        case.captum, case.note = None, f"{case.note}; Captum failed: {type(error).__name__}".lstrip("; ")
        return time_case(setup, case, model, x, target, cost, forward)
    one_forward = forward.by_batch_size.get(1, forward.per_point)
    ideal = case.points * times["plain"].median / cost.batch_size + case.reference_forwards * one_forward
    ours_time = times["taylorlens"].median
    captum_time = times["captum"].median if "captum" in times else None
    if "captum" not in results:
        difference = "-"
    elif case.deterministic:
        difference = f"{(results['taylorlens'] - results['captum']).abs().max().item():.1e}"
    else:
        difference = "random"
    return [
        case.method,
        f"{case.points}{'' if case.backward else ' fwd'}",
        seconds(ours_time),
        seconds(ideal),
        f"{ours_time / ideal:.2f}",
        seconds(captum_time),
        "-" if captum_time is None else f"{captum_time / ours_time:.2f}",
        difference,
        case.note,
    ]


def settle(call: Callable[[], object], most: int = 4) -> None:
    """Call until the chunk plan has finished measuring (no measuring points in a call; at most ``most``
    calls): the timed rounds then see the steady state a user's repeated calls see. Measuring is a one-time
    cost per model and point shape, bounded per call by ``chunking.MEASURE_SHARE``."""
    for _ in range(most):
        with tally() as spent:
            call()
        if spent.measuring_points == 0:
            return


def _by_size(cost: PassCost) -> str:
    return ", ".join(f"{size}: {value * 1e3:.2f}" for size, value in cost.by_batch_size.items()) + " ms/point"


#: DeepLIFT and epsilon-LRP through attention and recurrent layers (``products="symmetric"``).
PRODUCTS = {"methods": ("deeplift", "epsilon_lrp"), "modified": {"products": "symmetric"}}
SETUPS = {
    "cnn": Setup("small CNN", SmallCNN, (1, 28, 28), 64, 10, steps=50, roots=150, window=(1, 1, 1)),
    "bert": Setup(
        "BERT-base-sized (random), at inputs_embeds", BertBaseAtEmbeddings, (128, 768), 4, 2, steps=1, roots=1,
        window=(128, 768), repeats=2, budget=0.0, pass_sizes=(4, 8), **PRODUCTS,
    ),
    "lstm": Setup(
        "IMDB LSTM (Embedding 5000x32 -> LSTM 64 -> Linear 1), at the embeddings", ImdbLSTM, (500, 32), 4, 1,
        steps=1, roots=1, window=(500, 32), repeats=3, budget=10.0, pass_sizes=(4, 8), **PRODUCTS,
    ),
    "resnet": Setup(
        "ResNet-18-like",
        ResNet18,
        (3, 224, 224),
        4,
        1000,
        steps=8,
        roots=8,
        window=(3, 56, 56),
        repeats=3,
        budget=20.0,
        pass_sizes=(1, 2, 4, 8),
    ),
}
QUICK = {
    "cnn": Setup(
        "small CNN (quick)",
        SmallCNN,
        (1, 28, 28),
        8,
        10,
        steps=8,
        roots=8,
        window=(1, 4, 4),
        repeats=1,
        budget=0.0,
        pass_sizes=(8, 32),
    ),
    "resnet": Setup(
        "ResNet-18-like (quick, 32x32)",
        ResNet18,
        (3, 32, 32),
        2,
        1000,
        steps=2,
        roots=2,
        window=(3, 16, 16),
        repeats=1,
        budget=0.0,
        pass_sizes=(2,),
    ),
    "bert": Setup(
        "BERT-sized (quick: 2 layers, hidden 128, seq 32)", lambda: BertBaseAtEmbeddings(2, 128), (32, 128), 2, 2,
        steps=1, roots=1, window=(32, 128), repeats=1, budget=0.0, pass_sizes=(2, 4), **PRODUCTS,
    ),
    "lstm": Setup(
        "IMDB LSTM (quick: 100 tokens)", ImdbLSTM, (100, 32), 2, 1, steps=1, roots=1, window=(100, 32),
        repeats=1, budget=0.0, pass_sizes=(2, 4), **PRODUCTS,
    ),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run on small inputs (~1 minute)")
    parser.add_argument("--models", nargs="+", choices=sorted(SETUPS), default=["cnn", "resnet"])
    parser.add_argument("--methods", nargs="+", default=None, help="only these methods")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the machine is shared)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    setups = QUICK if args.quick else SETUPS
    print(f"# taylorlens methods benchmark\n{machine()}; load average {load_average()} at start")
    tables = [run_setup(setups[name], args.methods) for name in sorted(args.models)]
    print(f"\nload average {load_average()} at end")
    for table in tables:
        print(f"\n{table}")


if __name__ == "__main__":
    main()
