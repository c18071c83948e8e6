"""Throughput of the Ray engine with 1 and 2 local workers, and its per-shard overhead against the local engine.

Run ``python benchmarks/ray_scaling.py`` (about 3 minutes on 2 CPU cores; ``--quick``: about 1 minute). Needs
``pip install taylorlens[ray]``. Model ``digits_cnn_relu``; three methods and two metrics as in the quickstart
config; the shard size (config ``batch_size``) at the default 32 and at 8.

Contenders, timed in interleaved rounds (:func:`benchmarks.timing.time_interleaved`, so machine load hits all
alike), each computing every shard of the config once and nothing else (no store):

* ``local``: the local engine's work, one :class:`ShardWorker` in this process with torch on 1 thread;
* ``ray 1``: the Ray engine with one 1-CPU worker (also 1 torch thread): the same work plus Ray's overhead;
* ``ray 2``: the Ray engine with two 1-CPU workers.

All three are warmed up first (model loaded, chunk sizes measured, Ray actors started): the numbers are the
steady state of a long run. Overhead per shard = (``ray 1`` - ``local``) / shards.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/ray_scaling.py` finds the package

import ray  # noqa: E402
import torch  # noqa: E402

from benchmarks.timing import load_average, machine, markdown_table, time_interleaved  # noqa: E402
from taylorlens.bench.config import BenchConfig, parse  # noqa: E402
from taylorlens.bench.engines import RayEngine, ShardWorker  # noqa: E402
from taylorlens.bench.shards import Shard  # noqa: E402

MODEL = "digits_cnn_relu"


def config(samples: int, batch_size: int) -> BenchConfig:
    return parse({
        "name": f"ray-scaling-{batch_size}", "seed": 0, "batch_size": batch_size, "models": [MODEL],
        "data": {"dataset": "digits", "samples": samples},
        "methods": [{"name": "gradient_x_input"}, {"name": "integrated_gradients", "steps": 32},
                    {"name": "smooth_taylor", "sigma": 0.5, "n_roots": 64}],
        "metrics": [{"name": "completeness_gap"}, {"name": "aupc", "k": 2, "L": 8, "P": 16}],
    })


def shards(cfg: BenchConfig) -> list[Shard]:
    batches = [tuple(range(s, min(s + cfg.batch_size, cfg.samples))) for s in range(0, cfg.samples, cfg.batch_size)]
    return [Shard(MODEL, method, index, samples) for method in cfg.methods for index, samples in enumerate(batches)]


def measure(samples: int, batch_size: int, repeats: int) -> list[object]:
    cfg = config(samples, batch_size)
    work = shards(cfg)
    local = ShardWorker(cfg, threads=1)
    engines = {workers: RayEngine(workers=workers) for workers in (1, 2)}
    try:
        times = time_interleaved({
            "local": lambda: [local.compute(shard) for shard in work],
            "ray 1": lambda: list(engines[1].results(cfg, work)),
            "ray 2": lambda: list(engines[2].results(cfg, work)),
        }, repeats=repeats)
    finally:
        for engine in engines.values():
            engine.close()
    best = {name: timing.best for name, timing in times.items()}
    overhead = (best["ray 1"] - best["local"]) / len(work)
    per_shard = best["local"] / len(work)
    attributions = samples * len(cfg.methods)
    return [
        batch_size, len(work), f"{attributions / best['local']:.0f}", f"{attributions / best['ray 1']:.0f}",
        f"{attributions / best['ray 2']:.0f}", f"{best['ray 1'] / best['ray 2']:.2f}x",
        f"{per_shard * 1e3:.0f} ms", f"{overhead * 1e3:+.1f} ms ({overhead / per_shard:+.1%})",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples and rounds")
    args = parser.parse_args()
    samples, repeats = (96, 2) if args.quick else (256, 3)
    torch.set_num_threads(1)
    # Three 1-CPU actors exist at once (the 1- and the 2-worker engine); only one engine computes at a time.
    ray.init(num_cpus=3, include_dashboard=False, logging_level="WARNING")
    try:
        rows = [measure(samples, batch_size, repeats) for batch_size in (32, 8)]
    finally:
        ray.shutdown()
    print(f"{machine()}, load average {load_average()}, Ray {ray.__version__}; {MODEL}, {samples} samples x 3 "
          f"methods, best of {repeats} interleaved rounds; throughput in attributions/s (each with its 2 metrics)")
    print(markdown_table(["batch_size", "shards", "local", "ray 1 worker", "ray 2 workers", "2 vs 1 worker",
                          "local per shard", "ray overhead per shard"], rows))


if __name__ == "__main__":
    main()
