"""The sanity checks through the bench and the report: the randomization test stores its curve per randomised
layer with the layer names, ROAD stores both orders, and the report draws one figure for each."""

import json
import re
import sqlite3

import pytest

import taylorlens
from taylorlens import metrics, zoo
from taylorlens.bench import config as bench_config
from taylorlens.bench import runner
from taylorlens.report.html import render

CONFIG = """
name = "sanity-smoke"
seed = 0
batch_size = 4
models = ["digits_mlp_relu"]
[data]
dataset = "digits"
samples = 4
[[methods]]
name = "gradient"
[[methods]]
name = "guided_backprop"
[[metrics]]
name = "randomization_test"
similarity = ["spearman_abs", "ssim"]
[[metrics]]
name = "road"
readout = "correct"
fractions = [0.25, 0.5, 0.75]
grid = { order = ["morf", "lerf"] }
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("sanity")
    (directory / "c.toml").write_text(CONFIG)
    runner.run(bench_config.load(directory / "c.toml"), directory / "out", show_progress=False, echo=lambda s: None)
    return directory / "out"


def stored(run, metric: str) -> list[tuple[str, str, int, float, dict]]:
    with sqlite3.connect(run / "results.sqlite") as db:
        rows = db.execute("SELECT r.metric_label, a.method, r.sample, r.value, r.curve FROM results r JOIN "
                          "attributions a ON a.model = r.model AND a.method_key = r.method_key AND a.sample = r.sample "
                          "WHERE r.metric = ? ORDER BY r.metric_label, a.method, r.sample", (metric,)).fetchall()
    return [(label, method, sample, value, json.loads(curve)) for label, method, sample, value, curve in rows]


def test_stored_randomization_curves_name_the_layers_and_equal_the_metric(run):
    model = zoo.load("digits_mlp_relu")
    x, y = zoo.dataset("digits", split="test")
    rows = [r for r in stored(run, "randomization_test") if r[1] == "gradient"]
    direct = metrics.randomization_test(model, x[:4], y[:4], "gradient", seed=0, similarity=("spearman_abs", "ssim"))
    assert [r[2] for r in rows] == [0, 1, 2, 3]
    for _, _, sample, value, curve in rows:
        assert curve["ticks"] == direct.layers and curve["x"] == [1.0, 2.0, 3.0]
        assert curve["y"] == pytest.approx(direct.similarity["spearman_abs"][sample].tolist(), abs=1e-6)
        assert value == pytest.approx(float(direct.value[sample]), abs=1e-6)


def test_stored_road_curves_hold_both_orders_and_equal_the_metric(run):
    model = zoo.load("digits_mlp_relu")
    x, y = zoo.dataset("digits", split="test")
    maps = taylorlens.attribute(model, x[:4], y[:4], "gradient")
    rows = [r for r in stored(run, "road") if r[1] == "gradient"]
    assert {"order=morf" in r[0] for r in rows} == {True, False} and len(rows) == 8
    for label, _, sample, value, curve in rows:
        order = "morf" if "order=morf" in label else "lerf"
        direct = metrics.road(model, x[:4], maps, y[:4], fractions=(0.25, 0.5, 0.75), order=order, readout="correct",
                              seed=0)
        assert curve["x"] == pytest.approx([0.25, 0.5, 0.75]) and set(curve["y"]) <= {0.0, 1.0}
        assert curve["y"] == direct.curve[sample].tolist() and value == pytest.approx(float(direct.area[sample]))


def test_report_draws_the_randomization_figure_and_one_road_figure_per_model(run):
    page = render(run).read_text()
    titles = re.findall(r'<img alt="([^"]+)"', page)
    assert sum(t.startswith("randomization_test") for t in titles) == 1
    road = [t for t in titles if t.startswith("road")]
    assert len(road) == 1 and "order" not in road[0]  # MoRF and LeRF of every method share it


def test_road_figure_names_the_accuracy_axis_for_the_correct_readout(monkeypatch):
    from matplotlib.axes import Axes

    from taylorlens.metrics.road import READOUTS
    from taylorlens.report import figures

    labels = []
    original = Axes.set
    monkeypatch.setattr(Axes, "set", lambda self, **kw: labels.append(kw.get("ylabel")) or original(self, **kw))
    curves = {"gradient": {"morf": [{"x": [0.1, 0.5], "y": [1.0, 0.0]}]}}
    for readout in READOUTS:
        figures.road_figure("t", curves, readout)
    assert labels == [figures.ROAD_Y_LABELS[r] for r in READOUTS] and "accuracy" in labels[1]
