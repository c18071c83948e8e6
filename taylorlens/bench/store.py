"""The results store: one SQLite file per benchmark directory, written one transaction per batch.

Rows: one per (model, method entry, metric entry, sample) with the value and, where the metric has one, the
curve (JSON); one per (model, method entry, sample) with the attribution time; heat maps of the first
samples for the report's gallery; the config and environment of each run. Primary keys make a row unique, so
a rerun never duplicates, and a batch's rows land in one transaction, so a killed run never leaves half a
batch. A file at the store path that is not a taylorlens store is refused and left untouched.
"""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

STORE_FILE = "results.sqlite"
APPLICATION_ID = 0x544C4E53  # "TLNS"
SQLITE_HEADER = b"SQLite format 3\x00"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attributions (
    model TEXT NOT NULL, method_key TEXT NOT NULL, method TEXT NOT NULL, method_label TEXT NOT NULL,
    sample INTEGER NOT NULL, seconds REAL NOT NULL, pass_seconds REAL NOT NULL,
    PRIMARY KEY (model, method_key, sample));
CREATE TABLE IF NOT EXISTS results (
    model TEXT NOT NULL, method_key TEXT NOT NULL, metric_key TEXT NOT NULL, metric TEXT NOT NULL,
    metric_label TEXT NOT NULL, sample INTEGER NOT NULL, value REAL, curve TEXT,
    PRIMARY KEY (model, method_key, metric_key, sample));
CREATE TABLE IF NOT EXISTS maps (
    model TEXT NOT NULL, method_key TEXT NOT NULL, sample INTEGER NOT NULL, array BLOB NOT NULL,
    PRIMARY KEY (model, method_key, sample));
CREATE TABLE IF NOT EXISTS inputs (
    data_key TEXT NOT NULL, sample INTEGER NOT NULL, array BLOB NOT NULL, label TEXT NOT NULL,
    PRIMARY KEY (data_key, sample));
"""


class StoreError(RuntimeError):
    """The store path holds something that is not a taylorlens results store."""


@dataclass(frozen=True)
class ResultRow:
    model: str
    method_key: str
    metric_key: str
    metric: str
    metric_label: str
    sample: int
    value: float | None
    curve: list[float] | None = None


def array_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def bytes_array(blob: bytes) -> np.ndarray:
    return np.load(io.BytesIO(blob), allow_pickle=False)


def _check_foreign(path: Path) -> None:
    """Refuse, without writing, any existing file that is not one of our stores."""
    if not path.exists():
        return
    if path.is_dir():
        raise StoreError(f"{path} is a directory, not a taylorlens results store")
    with path.open("rb") as handle:
        header = handle.read(len(SQLITE_HEADER))
    if header != SQLITE_HEADER:
        raise StoreError(f"{path} is not a taylorlens results store (not an SQLite file); it was left untouched")
    probe = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        application = probe.execute("PRAGMA application_id").fetchone()[0]
        probe.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as error:
        raise StoreError(f"{path} is a corrupt SQLite file ({error}); it was left untouched") from None
    finally:
        probe.close()
    if application != APPLICATION_ID:
        raise StoreError(f"{path} is an SQLite file of another application; it was left untouched")


class Store:
    """Read and write a benchmark directory's results."""

    def __init__(self, directory: str | Path, *, create: bool = True) -> None:
        directory = Path(directory)
        self.path = directory / STORE_FILE if directory.suffix != ".sqlite" else directory
        _check_foreign(self.path)
        if not self.path.exists() and not create:
            raise StoreError(f"no results store at {self.path}; run `taylorlens bench CONFIG --out DIR` first")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.connection = sqlite3.connect(self.path)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute(f"PRAGMA application_id={APPLICATION_ID}")
        self.connection.executescript(SCHEMA)
        self.connection.commit()

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All writes inside land together or not at all."""
        with self.connection:
            yield self.connection

    def done_samples(self, model: str, method_key: str, metric_keys: Iterable[str]) -> set[int]:
        """Samples whose attribution and every listed metric are stored."""
        done = {r[0] for r in self.connection.execute(
            "SELECT sample FROM attributions WHERE model=? AND method_key=?", (model, method_key))}
        for metric_key in metric_keys:
            done &= {r[0] for r in self.connection.execute(
                "SELECT sample FROM results WHERE model=? AND method_key=? AND metric_key=?",
                (model, method_key, metric_key))}
        return done

    def write_batch(
        self,
        model: str,
        method_key: str,
        method: str,
        method_label: str,
        timings: dict[int, tuple[float, float]],
        rows: list[ResultRow],
        maps: dict[int, np.ndarray],
    ) -> None:
        """One batch: attribution timings, metric rows and gallery maps, in one transaction."""
        with self.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO attributions VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(model, method_key, method, method_label, s, t, p) for s, (t, p) in timings.items()],
            )
            db.executemany(
                "INSERT OR IGNORE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(r.model, r.method_key, r.metric_key, r.metric, r.metric_label, r.sample, r.value,
                  None if r.curve is None else json.dumps(r.curve)) for r in rows],
            )
            db.executemany(
                "INSERT OR IGNORE INTO maps VALUES (?, ?, ?, ?)",
                [(model, method_key, s, array_bytes(a)) for s, a in maps.items()],
            )

    def write_inputs(self, data_key: str, arrays: dict[int, np.ndarray], labels: dict[int, str]) -> None:
        with self.transaction() as db:
            db.executemany("INSERT OR IGNORE INTO inputs VALUES (?, ?, ?, ?)",
                           [(data_key, s, array_bytes(a), labels[s]) for s, a in arrays.items()])

    def set_meta(self, key: str, value: Any) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value, default=str)))

    def meta(self, key: str, default: Any = None) -> Any:
        row = self.connection.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def rows(self, table: str) -> list[tuple]:
        """Every row of a table in a stable order (for comparisons and the report)."""
        if table not in ("attributions", "results", "maps", "inputs", "meta"):
            raise ValueError(f"unknown table {table!r}")
        return self.connection.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3, 4").fetchall()
