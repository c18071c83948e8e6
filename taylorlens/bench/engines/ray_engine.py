"""The Ray engine: shards run on one long-lived actor per worker; results stream back to the runner.

Each actor is a :class:`ShardWorker` built from the config: it loads the data and each model itself, by zoo name,
once (models are never pickled per task). What crosses the network: the config once per actor, a
:class:`Shard` per task (model name, method entry, sample indices), and a :class:`ShardResult` back (metric rows,
timings, gallery maps of the first ``config.gallery`` samples). Only the runner writes to the store.

Workers: one per GPU of the cluster when the config's device is ``cuda`` (Ray points each actor's ``cuda`` at its
own GPU), else one per ``cpus_per_worker`` CPUs. Each actor has ``shards_in_flight`` shards queued so it never
waits for the driver; the next shard goes to whichever actor finishes first.

Failures: an actor whose process dies is restarted by Ray (``max_restarts``) and the calls it had not finished
run again on the restarted actor (``max_task_retries``), so a killed worker costs only its unfinished shards.
A shard that keeps killing its worker ends the run with :class:`EngineError`; everything stored so far stays,
and rerunning resumes. An exception raised by the shard's own code reaches the caller as its own type.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from taylorlens.bench.config import BenchConfig
from taylorlens.bench.engines.base import EngineError
from taylorlens.bench.engines.worker import ShardWorker
from taylorlens.bench.shards import Shard, ShardResult

INSTALL_HINT = "--engine ray needs Ray, which is not installed: pip install 'taylorlens[ray]' (or 'ray[default]')"


def import_ray() -> ModuleType:
    """The ``ray`` module, or :class:`EngineError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise EngineError(INSTALL_HINT) from None
    return ray


class RayEngine:
    """Shards on Ray actors. ``address``: the cluster to join ("auto" finds one started with ``ray start --head``
    on this machine, "ray://host:10001" a remote one); None starts a local instance, unless this process is
    already connected (then that connection is used and left open)."""

    def __init__(
        self,
        address: str | None = None,
        *,
        workers: int | None = None,
        cpus_per_worker: int = 1,
        max_restarts: int = 3,
        shards_in_flight: int = 2,
    ) -> None:
        self.ray = import_ray()
        self.address = address
        self.workers = workers
        self.cpus_per_worker = cpus_per_worker
        self.max_restarts = max_restarts
        self.shards_in_flight = shards_in_flight
        self._owns_connection = not self.ray.is_initialized()
        if self._owns_connection:
            try:
                self.ray.init(address=address, logging_level=logging.WARNING)
            except (ConnectionError, ValueError) as error:
                raise EngineError(f"cannot reach the Ray cluster at {address!r} ({error}); start one with "
                                  "`ray start --head` and pass --address auto, or leave out --address") from None
        self._config: BenchConfig | None = None
        self._actors: list[Any] = []

    @property
    def description(self) -> str:
        resources = self.ray.cluster_resources()
        where = f" at {self.address}" if self.address else ""
        return f"ray{where} ({int(resources.get('CPU', 0))} CPUs, {int(resources.get('GPU', 0))} GPUs)"

    def results(self, config: BenchConfig, shards: list[Shard]) -> Iterator[ShardResult]:
        if not shards:
            return
        actors = self._actors_for(config)
        queue = deque(shards)
        pending: dict[Any, tuple[int, Shard]] = {}

        def submit(worker: int) -> None:
            if queue:
                shard = queue.popleft()
                pending[actors[worker].compute.remote(shard)] = (worker, shard)

        for worker in range(len(actors)):
            for _ in range(self.shards_in_flight):
                submit(worker)
        while pending:
            [ready], _ = self.ray.wait(list(pending), num_returns=1)
            worker, shard = pending.pop(ready)
            try:
                result = self.ray.get(ready)
            except self.ray.exceptions.RayActorError as error:
                raise EngineError(
                    f"a Ray worker died on shard {shard.model} {shard.method.label} batch {shard.batch} and could "
                    f"not be restarted (at most {self.max_restarts} restarts); the shards computed so far are "
                    f"stored and a rerun resumes ({error})"
                ) from None
            except self.ray.exceptions.RayTaskError as error:
                if error.cause is None:
                    raise
                raise error.cause from error  # the shard's own exception; the worker's traceback is its cause
            submit(worker)
            yield result

    def close(self) -> None:
        self._release_actors()
        if self._owns_connection and self.ray.is_initialized():
            self.ray.shutdown()

    def _actors_for(self, config: BenchConfig) -> list[Any]:
        """One actor per worker for ``config``, kept while the same config runs again."""
        if self._config == config and self._actors:
            return self._actors
        self._release_actors()
        on_gpu = config.device.startswith("cuda")
        resources = self.ray.cluster_resources()
        count = self.workers or int(resources.get("GPU", 0) if on_gpu
                                    else resources.get("CPU", 1) // self.cpus_per_worker)
        if count < 1:
            needed = "GPUs" if on_gpu else f"{self.cpus_per_worker} CPUs per worker"
            raise EngineError(f"the Ray cluster has no room for a worker: device={config.device!r} needs {needed}, "
                              f"the cluster has {resources}")
        actor = self.ray.remote(ShardWorker).options(
            num_cpus=self.cpus_per_worker, num_gpus=1 if on_gpu else 0,
            max_restarts=self.max_restarts, max_task_retries=self.max_restarts,
        )
        self._actors = [actor.remote(config, threads=self.cpus_per_worker) for _ in range(count)]
        self._config = config
        return self._actors

    def _release_actors(self) -> None:
        for actor in self._actors:
            self.ray.kill(actor)
        self._actors, self._config = [], None
