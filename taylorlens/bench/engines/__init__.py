"""Execution engines: where the shards of a benchmark are computed.

The runner plans shards and writes every result into the store (the single writer); an engine only turns
shards into :class:`~taylorlens.bench.shards.ShardResult` objects, in any order:

- ``local`` (:class:`LocalEngine`): in this process, one shard after another.
- ``ray`` (:class:`RayEngine`): on a Ray cluster (or a local Ray instance), one actor per worker that loads
  each model once by its zoo name. Needs the optional extra: ``pip install taylorlens[ray]``.
"""

from __future__ import annotations

from taylorlens.bench.engines.base import Engine, EngineError
from taylorlens.bench.engines.local import LocalEngine
from taylorlens.bench.engines.ray_engine import RayEngine
from taylorlens.bench.engines.worker import ShardWorker

ENGINES = ("local", "ray")

__all__ = ["ENGINES", "Engine", "EngineError", "LocalEngine", "RayEngine", "ShardWorker", "make_engine"]


def make_engine(name: str, *, address: str | None = None) -> Engine:
    """The engine called ``name``; ``address`` is the Ray cluster to join (ray only)."""
    if name == "local":
        if address is not None:
            raise EngineError(f"--address applies to --engine ray only, got --engine local --address {address}")
        return LocalEngine()
    if name == "ray":
        return RayEngine(address)
    raise EngineError(f"engine must be one of {ENGINES}, got {name!r}")
