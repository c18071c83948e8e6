"""Peak memory of IG-200 on the ResNet benchmark model against one chunk's forward+backward pass.

Run ``python benchmarks/memory.py`` (about 5 minutes on 2 CPU cores; ``--quick``: 32x32 inputs, under a
minute). Every configuration runs in a fresh Python process (so no configuration inherits another's
allocations) on one thread, and reports its peak resident memory (``VmHWM`` of ``/proc/self/status``):

* ``baseline``: torch, taylorlens and the model loaded, inputs made, no pass;
* ``ig``: ``integrated_gradients`` with 200 steps on the benchmark batch (4 x 3x224x224, 800 points), the
  chunk size chosen by the ladder (memory-bounded); it also reports the chunk size used for the work and the
  largest chunk it ran (ladder included, read with a forward pre-hook);
* ``chunk``: one plain forward+backward pass (input gradient of the explained output, parameters frozen) of
  as many points as the largest chunk the ``ig`` run evaluated, and the bytes the governor predicts for it
  (:func:`taylorlens.engine.memory.chunk_bytes`);
* ``ig, budget``: the same IG run with a memory budget of a quarter of that chunk's predicted bytes, to
  show the ladder staying within it.

The ratios: peak of ``ig`` / peak of ``chunk`` (whole process), and the same above ``baseline`` (memory
the passes added).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/memory.py` finds the package

from benchmarks.timing import load_average, machine, markdown_table  # noqa: E402

STEPS = 200


def peak_bytes() -> int:
    """The process's peak resident memory (VmHWM), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(config: dict) -> dict:
    """Run one configuration in this (fresh) process and report its peak memory."""
    import torch

    torch.set_num_threads(1)
    import taylorlens
    from benchmarks.methods import ResNet18
    from taylorlens.engine import memory

    torch.manual_seed(0)
    model = ResNet18().eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    side = config["side"]
    x = torch.randn(config["batch"], 3, side, side)
    target = torch.arange(config["batch"])
    batches: list[int] = []
    model.register_forward_pre_hook(lambda module, args: batches.append(args[0].shape[0]))
    report: dict = {}
    if config["kind"] == "ig":
        if config.get("budget"):
            memory.MEMORY_BUDGET = config["budget"]
        _, info = taylorlens.attribute(model, x, target, method="integrated_gradients", steps=STEPS,
                                       return_info=True)
        report.update(largest=max(batches), used=_used_size(batches, info.points))
    elif config["kind"] == "chunk":
        size = config["size"]
        points = x[:1].expand(size, -1, -1, -1).clone().requires_grad_(True)
        with memory.chunk_bytes(model, points[0], "gradient", size) as predicted:
            outputs = model(points)[:, 0].sum()
            torch.autograd.grad(outputs, points)
        report.update(predicted=predicted.value)
    report["peak"] = peak_bytes()
    return report


def _used_size(batches: list[int], points: int) -> int:
    """The chunk size of the work: the most common batch among the last calls that cover the job's points."""
    covered, work = 0, []
    for size in reversed(batches):
        if covered >= points:
            break
        covered += size
        work.append(size)
    return max(set(work), key=work.count)


def run(config: dict) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(config)], capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32x32 inputs instead of 224x224")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    import torch

    torch.set_num_threads(1)  # as in the children: the machine line says so
    shape = {"side": 32 if args.quick else 224, "batch": 4}
    base = run({**shape, "kind": "baseline"})
    ig = run({**shape, "kind": "ig"})
    chunk = run({**shape, "kind": "chunk", "size": ig["largest"]})
    budget = chunk["predicted"] // 4
    small = run({**shape, "kind": "ig", "budget": budget})
    small_chunk = run({**shape, "kind": "chunk", "size": small["largest"]})
    mb = 2**20

    def row(name: str, result: dict, versus: dict | None) -> list[str]:
        ratio = above = "-"
        if versus is not None:
            ratio = f"{result['peak'] / versus['peak']:.2f}"
            above = f"{(result['peak'] - base['peak']) / max(1, versus['peak'] - base['peak']):.2f}"
        chunks = f"{result['used']} (largest {result['largest']})" if "used" in result else "-"
        predicted = f"{result['predicted'] / mb:.0f}" if result.get("predicted") else "-"
        return [name, f"{result['peak'] / mb:.0f}", f"{(result['peak'] - base['peak']) / mb:.0f}", chunks,
                predicted, ratio, above]

    rows = [
        row("baseline (model and inputs)", base, None),
        row(f"one chunk of {ig['largest']}: forward+backward", chunk, None),
        row(f"IG-{STEPS}, ladder", ig, chunk),
        row(f"one chunk of {small['largest']}: forward+backward", small_chunk, None),
        row(f"IG-{STEPS}, budget {budget / mb:.0f} MB", small, small_chunk),
    ]
    print(f"{machine()}; load average {load_average()}; ResNet-18-like, {shape['batch']} x 3x{shape['side']}x"
          f"{shape['side']}, {STEPS} steps = {STEPS * shape['batch']} points\n")
    print(markdown_table(["run", "peak RSS (MB)", "above baseline (MB)", "chunk size (points)",
                          "predicted chunk bytes (MB)", "peak / chunk", "above baseline / chunk's"], rows))


if __name__ == "__main__":
    main()
