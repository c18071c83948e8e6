"""`taylorlens bench`: every (model, sample, method, options) attribution and every metric on it, streamed
into the results store so that a killed run resumes where it stopped and a changed method recomputes alone.
"""

from __future__ import annotations

import math
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from taylorlens import __version__
from taylorlens.bench.config import BenchConfig
from taylorlens.bench.data import BenchData, load_data
from taylorlens.bench.engines import Engine, make_engine
from taylorlens.bench.shards import Shard, ShardResult, metric_key
from taylorlens.bench.store import Store

#: Meta key prefix of a text data set's gallery words: ``words:<dataset>/<split>`` -> {sample: [word, ...]}.
WORDS_META_PREFIX = "words:"


@dataclass(frozen=True)
class RunReport:
    """What a run did: shards computed and skipped, seconds computing them and seconds inside model passes."""

    computed: int
    skipped: int
    seconds: float
    pass_seconds: float

    @property
    def pass_share(self) -> float:
        return self.pass_seconds / self.seconds if self.seconds else 0.0


def plan(config: BenchConfig, store: Store) -> Iterator[tuple[Shard, bool]]:
    """Every shard of the config, with whether the store already holds all of its rows."""
    batches = [tuple(range(s, min(s + config.batch_size, config.samples)))
               for s in range(0, config.samples, config.batch_size)]
    for model in config.models:
        for method in config.methods:
            for index, samples in enumerate(batches):
                shard = Shard(model, method, index, samples)
                method_key = shard.method_key(config)
                done = store.done_samples(model, method_key, [metric_key(m, method_key) for m in config.metrics])
                yield shard, set(samples) <= done


def environment(config: BenchConfig, engine: Engine) -> dict[str, str]:
    return {
        "taylorlens": __version__, "torch": torch.__version__, "python": platform.python_version(),
        "platform": platform.platform(), "device": config.device, "threads": str(torch.get_num_threads()),
        "seed": str(config.seed), "engine": engine.description,
    }


def run(
    config: BenchConfig,
    out: str | Path,
    *,
    engine: str | Engine = "local",
    address: str | None = None,
    show_progress: bool = True,
    echo: Callable[[str], None] = print,
) -> RunReport:
    """Compute what the store in ``out`` is missing for ``config``; print a summary table.

    ``engine`` is a name ("local" or "ray"; ``address`` is the Ray cluster for "ray"), created and closed
    here, or an :class:`Engine` the caller keeps open across runs. Whatever the engine, this process is the
    only one writing the store: each shard's rows land in one transaction as its result arrives.
    """
    start = time.perf_counter()
    chosen = make_engine(engine, address=address) if isinstance(engine, str) else engine
    try:
        with Store(out) as store:
            store.set_meta(f"config:{config.name}", config.source)
            store.set_meta("environment", environment(config, chosen))
            data = load_data(config)
            shards = list(plan(config, store))
            todo = [s for s, done in shards if not done]
            echo(f"{config.name}: {len(shards)} shards, {len(shards) - len(todo)} already stored, {len(todo)} to "
                 f"compute on {chosen.description}")
            if todo:
                _store_gallery_inputs(store, config, data)
            compute_seconds = pass_seconds = 0.0
            with tqdm(total=sum(len(s.samples) for s in todo), disable=not show_progress, unit="sample",
                      desc=config.name[:30], leave=False) as bar:
                for result in chosen.results(config, todo):
                    _write(store, result)
                    compute_seconds += result.seconds
                    pass_seconds += result.pass_seconds
                    bar.set_postfix_str(f"{result.shard.model} {result.shard.method.label}"[:50], refresh=False)
                    bar.update(len(result.shard.samples))
            report = RunReport(len(todo), len(shards) - len(todo), compute_seconds, pass_seconds)
            for line in summary_table(store, config):
                echo(line)
            if todo:
                echo(f"time in model passes: {report.pass_share:.0%} of the {report.seconds:.1f} s spent computing "
                     f"shards ({time.perf_counter() - start:.1f} s wall time with data and model loading)")
            return report
    finally:
        if isinstance(engine, str):
            chosen.close()


def _write(store: Store, result: ShardResult) -> None:
    shard = result.shard
    store.write_batch(shard.model, result.method_key, shard.method.name, shard.method.label, result.timings,
                      result.rows, result.maps)


def _store_gallery_inputs(store: Store, config: BenchConfig, data: BenchData) -> None:
    shown = range(min(config.gallery, data.inputs.shape[0]))
    data_key = f"{config.dataset}/{config.split}"
    store.write_inputs(data_key, {i: data.inputs[i].cpu().numpy() for i in shown}, {i: data.names[i] for i in shown})
    if data.words is not None:  # text: the report draws the words coloured by their scores
        store.set_meta(f"{WORDS_META_PREFIX}{data_key}", {str(i): data.words[i] for i in shown})


def mean_interval(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its normal-approximation 95% interval (1.96 standard errors)."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return float("nan"), float("nan")
    mean = statistics.fmean(finite)
    half = 1.96 * statistics.stdev(finite) / math.sqrt(len(finite)) if len(finite) > 1 else float("nan")
    return mean, half


def summary_table(store: Store, config: BenchConfig) -> list[str]:
    """Mean +- 95% interval per model x method x metric, and seconds per sample per method."""
    lines = [f"{'model':<22} {'method':<44} {'metric':<28} {'mean':>10} {'+-95%':>9} {'n':>5}"]
    for model in config.models:
        for method in config.methods:
            key = Shard(model, method, 0, ()).method_key(config)
            seconds = [r[0] for r in store.connection.execute(
                "SELECT seconds FROM attributions WHERE model=? AND method_key=?", (model, key))]
            mean, half = mean_interval(seconds)
            lines.append(f"{model:<22} {method.label[:44]:<44} {'seconds/sample':<28} {mean:>10.4g} {half:>9.2g} "
                         f"{len(seconds):>5}")
            for metric in config.metrics:
                values = [r[0] for r in store.connection.execute(
                    "SELECT value FROM results WHERE model=? AND method_key=? AND metric_key=?",
                    (model, key, metric_key(metric, key)))]
                mean, half = mean_interval(values)
                lines.append(f"{'':<22} {'':<44} {metric.label[:28]:<28} {mean:>10.4g} {half:>9.2g} {len(values):>5}")
    return lines
