"""The Ray engine: the same store as the local engine, resume across engines, a killed worker loses nothing,
and a clear install message without Ray. The Ray tests skip when Ray is not installed."""

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

from taylorlens.bench import config as bench_config
from taylorlens.bench import runner
from taylorlens.bench.store import STORE_FILE, Store, bytes_array
from taylorlens.cli import main

#: Two methods, a scalar and a curve metric, targets predicted by the model (computed inside each worker).
SMALL = {
    "name": "ray-small", "seed": 3, "batch_size": 4, "models": ["digits_cnn_relu"],
    "data": {"dataset": "digits", "samples": 16, "target": "predicted"},
    "methods": [{"name": "integrated_gradients", "steps": 16},
                {"name": "smoothgrad", "inner": "gradient", "n_samples": 6}],
    "metrics": [{"name": "completeness_gap"}, {"name": "aupc", "k": 2, "L": 8, "P": 16}],
}
#: Shards of a few tenths of a second, so that a worker or the driver can be killed in the middle of the run.
SLOW = """
name = "ray-slow"
batch_size = 4
models = ["digits_cnn_relu"]
[data]
dataset = "digits"
samples = 40
[[methods]]
name = "integrated_gradients"
steps = 256
[[metrics]]
name = "completeness_gap"
"""
QUIET = {"show_progress": False, "echo": lambda line: None}


def close(x: object, y: object) -> bool:
    """Equal, with floats (also inside JSON curves) equal up to rounding: the workers run torch with one thread,
    the local engine with several, so sums are taken in another order."""
    if isinstance(x, str) and isinstance(y, str) and x.startswith("{"):
        x, y = json.loads(x), json.loads(y)
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(close(x[k], y[k]) for k in x)
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(close(a, b) for a, b in zip(x, y, strict=True))
    if isinstance(x, float) and isinstance(y, float):
        return math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-7)
    return x == y


def assert_same_store(directory: Path, reference: Path) -> None:
    with Store(directory) as store, Store(reference) as ref:
        results, expected = store.rows("results"), ref.rows("results")
        assert [r[:6] for r in results] == [r[:6] for r in expected]  # every row, once, with the same keys
        assert all(close(list(a), list(b)) for a, b in zip(results, expected, strict=True))
        assert [r[:5] for r in store.rows("attributions")] == [r[:5] for r in ref.rows("attributions")]
        maps, expected_maps = store.rows("maps"), ref.rows("maps")
        assert [r[:3] for r in maps] == [r[:3] for r in expected_maps]
        for a, b in zip(maps, expected_maps, strict=True):
            np.testing.assert_allclose(bytes_array(a[3]), bytes_array(b[3]), rtol=1e-5, atol=1e-7)
        assert store.rows("inputs") == ref.rows("inputs")


@pytest.fixture(scope="module")
def ray_session():
    """A local Ray instance with 2 CPUs, shared by the module's tests."""
    ray = pytest.importorskip("ray", reason="the Ray engine needs the optional extra: pip install taylorlens[ray]")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture
def ray_engine(ray_session):
    """An engine with two 1-CPU workers; closing it frees the CPUs for the next test."""
    from taylorlens.bench.engines import RayEngine

    engine = RayEngine()
    yield engine
    engine.close()


def local_store(tmp_path_factory, source: dict) -> Path:
    out = tmp_path_factory.mktemp("local")
    runner.run(bench_config.parse(source), out, **QUIET)
    return out


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory):
    return local_store(tmp_path_factory, SMALL)


@pytest.fixture(scope="module")
def slow_reference(tmp_path_factory):
    return local_store(tmp_path_factory, tomllib.loads(SLOW))


def test_ray_engine_without_ray_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    config_path = tmp_path / "c.toml"
    config_path.write_text('models = ["digits_cnn_relu"]\n[[methods]]\nname = "gradient"\n')
    assert main(["bench", str(config_path), "--out", str(tmp_path / "out"), "--engine", "ray"]) == 2
    error = capsys.readouterr().err
    assert "pip install 'taylorlens[ray]'" in error and "Traceback" not in error
    assert not (tmp_path / "out" / STORE_FILE).exists()


def test_address_without_ray_engine_is_refused(tmp_path, capsys):
    config_path = tmp_path / "c.toml"
    config_path.write_text('models = ["digits_cnn_relu"]\n[[methods]]\nname = "gradient"\n')
    assert main(["bench", str(config_path), "--out", str(tmp_path / "out"), "--address", "auto"]) == 2
    assert "--engine ray only" in capsys.readouterr().err


def test_ray_store_equals_local_store_row_for_row(tmp_path, ray_engine, local_reference):
    report = runner.run(bench_config.parse(SMALL), tmp_path, engine=ray_engine, **QUIET)
    assert report.computed == 2 * 4 and report.skipped == 0  # 2 methods x 4 batches of 4 samples
    assert_same_store(tmp_path, local_reference)
    with Store(tmp_path) as store:
        assert store.meta("environment")["engine"].startswith("ray")


def test_ray_engine_resumes_a_store_the_local_engine_started(tmp_path, ray_engine, local_reference):
    runner.run(bench_config.parse({**SMALL, "data": {**SMALL["data"], "samples": 8}}), tmp_path, **QUIET)
    resumed = runner.run(bench_config.parse(SMALL), tmp_path, engine=ray_engine, **QUIET)
    assert resumed.skipped == 2 * 2 and resumed.computed == 2 * 2  # batches 0-1 stored locally, 2-3 on Ray
    assert_same_store(tmp_path, local_reference)


def shard_worker_processes(busy: bool) -> list[int]:
    """Ray actor processes of this test session's Ray instance (descendants of this process), by title."""
    title = b"ray::ShardWorker.compute" if busy else b"ray::ShardWorker"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "cmdline").read_bytes().startswith(title):
                continue
            pid = int(entry.name)
            while pid > 1 and pid != os.getpid():
                pid = int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if pid == os.getpid():
            found.append(int(entry.name))
    return found


def stored_attributions(path: Path) -> int:
    """Rows in the store's attribution table, read without writing (the run is writing it)."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return db.execute("SELECT count(*) FROM attributions").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds Ray's worker processes through /proc")
def test_worker_killed_mid_shard_loses_nothing_and_writes_nothing_twice(tmp_path, ray_engine, slow_reference):
    config = bench_config.parse(tomllib.loads(SLOW))
    out = tmp_path / "ray"
    killed: list[int] = []

    def kill_a_busy_worker_after_the_first_stored_shard() -> None:
        deadline = time.time() + 60
        while time.time() < deadline and not killed:
            busy = shard_worker_processes(busy=True)
            if busy and stored_attributions(out / STORE_FILE) > 0:
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
            time.sleep(0.01)

    killer = threading.Thread(target=kill_a_busy_worker_after_the_first_stored_shard)
    killer.start()
    report = runner.run(config, out, engine=ray_engine, **QUIET)
    killer.join()

    assert killed, "a worker must be killed during the run"
    assert report.computed == 10 and report.skipped == 0
    assert_same_store(out, slow_reference)
    workers = shard_worker_processes(busy=False)
    assert killed[0] not in workers and len(workers) == 2  # the killed actor was restarted


def test_driver_killed_mid_run_resumes_to_the_uninterrupted_result(tmp_path, ray_session, ray_engine, slow_reference):
    config_path = tmp_path / "slow.toml"
    config_path.write_text(SLOW)
    out = tmp_path / "ray"
    # The killed driver joins this session's Ray instance: its job's actors die with it, nothing is left behind.
    address = ray_session.get_runtime_context().gcs_address
    driver = subprocess.Popen([sys.executable, "-m", "taylorlens", "bench", str(config_path), "--out", str(out),
                               "--engine", "ray", "--address", address, "--no-progress"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 90
    while time.time() < deadline and driver.poll() is None and stored_attributions(out / STORE_FILE) == 0:
        time.sleep(0.02)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    stored = stored_attributions(out / STORE_FILE)
    assert 0 < stored < 40, "the driver must be killed part-way"

    resumed = runner.run(bench_config.parse(tomllib.loads(SLOW)), out, engine=ray_engine, **QUIET)
    assert resumed.skipped > 0 and resumed.computed + resumed.skipped == 10
    assert_same_store(out, slow_reference)
