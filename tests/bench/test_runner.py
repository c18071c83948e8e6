"""The benchmark runner: resumable, de-duplicated, recomputing only what changed, refusing foreign stores."""

import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from taylorlens.bench import config as bench_config
from taylorlens.bench import runner
from taylorlens.bench.store import STORE_FILE, Store, StoreError

CONFIG = """
name = "resume"
seed = 3
batch_size = 2
models = ["digits_mlp_relu"]
[data]
dataset = "digits"
samples = {samples}
[[methods]]
name = "integrated_gradients"
grid = {{ steps = [{steps}, 12] }}
[[methods]]
name = "smoothgrad"
inner = "gradient"
n_samples = 6
{metrics}
"""
METRICS = """
[[metrics]]
name = "completeness_gap"
"""


def write_config(path: Path, samples: int = 6, steps: int = 8, metrics: str = METRICS) -> Path:
    path.write_text(CONFIG.format(samples=samples, steps=steps, metrics=metrics))
    return path


def rows_close(a: list[tuple], b: list[tuple]) -> bool:
    """Same rows in the same order; floats equal up to rounding (chunk sizes may differ between processes)."""
    if len(a) != len(b):
        return False
    for row_a, row_b in zip(a, b, strict=True):
        for x, y in zip(row_a, row_b, strict=True):
            if isinstance(x, float) and isinstance(y, float):
                if not math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-7):
                    return False
            elif x != y:
                return False
    return True


def result_rows(directory: Path) -> list[tuple]:
    with Store(directory) as store:
        return store.rows("results")


def test_rerun_computes_nothing_and_duplicates_nothing(tmp_path):
    cfg = bench_config.load(write_config(tmp_path / "c.toml"))
    first = runner.run(cfg, tmp_path / "out", show_progress=False, echo=lambda line: None)
    rows = result_rows(tmp_path / "out")
    second = runner.run(cfg, tmp_path / "out", show_progress=False, echo=lambda line: None)
    assert first.computed == 3 * 3 and first.skipped == 0  # 3 method entries x 3 batches of 2 samples
    assert second.computed == 0 and second.skipped == 9
    assert result_rows(tmp_path / "out") == rows
    assert len(rows) == 3 * 6  # one completeness row per method entry and sample


def test_changing_one_method_option_recomputes_only_that_method(tmp_path):
    run_quietly = dict(show_progress=False, echo=lambda line: None)
    runner.run(bench_config.load(write_config(tmp_path / "a.toml", steps=8)), tmp_path / "out", **run_quietly)
    changed = runner.run(bench_config.load(write_config(tmp_path / "b.toml", steps=10)), tmp_path / "out",
                         **run_quietly)
    assert changed.computed == 3 and changed.skipped == 6  # only steps=10's three batches


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    config_path = write_config(tmp_path / "c.toml", samples=40)
    reference = tmp_path / "reference"
    runner.run(bench_config.load(config_path), reference, show_progress=False, echo=lambda line: None)

    interrupted = tmp_path / "interrupted"
    command = [sys.executable, "-m", "taylorlens", "bench", str(config_path), "--out", str(interrupted),
               "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.time() + 120
    stored = 0
    while time.time() < deadline and process.poll() is None:
        try:
            with sqlite3.connect(interrupted / STORE_FILE) as db:
                stored = db.execute("SELECT count(*) FROM results").fetchone()[0]
        except sqlite3.Error:
            stored = 0
        if stored >= 10:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 0 < stored < 3 * 40, "the run must be killed part-way"

    resumed = runner.run(bench_config.load(config_path), interrupted, show_progress=False, echo=lambda line: None)
    assert resumed.skipped > 0
    assert rows_close(result_rows(interrupted), result_rows(reference))
    with Store(interrupted) as store, Store(reference) as ref:
        assert [r[:5] for r in store.rows("attributions")] == [r[:5] for r in ref.rows("attributions")]


@pytest.mark.parametrize("content", [b"my thesis draft, not a database", b"SQLite format 3\x00" + b"\x07" * 200])
def test_foreign_or_corrupt_store_is_refused_and_left_untouched(tmp_path, content):
    out = tmp_path / "out"
    out.mkdir()
    (out / STORE_FILE).write_bytes(content)
    with pytest.raises(StoreError, match="left untouched"):
        Store(out)
    assert (out / STORE_FILE).read_bytes() == content


def test_sqlite_file_of_another_application_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with sqlite3.connect(out / STORE_FILE) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
        db.execute("INSERT INTO notes VALUES ('keep me')")
    before = (out / STORE_FILE).read_bytes()
    with pytest.raises(StoreError, match="another application"):
        Store(out)
    assert (out / STORE_FILE).read_bytes() == before


def test_config_errors_name_the_field(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('models = ["digits_mlp_relu"]\n[data]\ndataset = "cifar"\n[[methods]]\nname = "gradient"\n')
    with pytest.raises(bench_config.ConfigError, match="data.dataset"):
        bench_config.load(bad)


def test_expected_gradients_references_can_name_training_samples(tmp_path):
    config = tmp_path / "eg.toml"
    config.write_text('name = "eg"\nbatch_size = 4\nmodels = ["digits_mlp_relu"]\n[data]\ndataset = "digits"\n'
                      'samples = 4\n[[methods]]\nname = "expected_gradients"\nreferences = "train:20"\n'
                      'n_samples = 8\n[[metrics]]\nname = "completeness_gap"\n')
    report = runner.run(bench_config.load(config), tmp_path / "out", show_progress=False, echo=lambda line: None)
    assert report.computed == 1
    bad = tmp_path / "bad.toml"
    bad.write_text(config.read_text().replace('"train:20"', '"all"'))
    with pytest.raises(bench_config.ConfigError, match="train:N"):
        runner.run(bench_config.load(bad), tmp_path / "out2", show_progress=False, echo=lambda line: None)
