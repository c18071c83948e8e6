"""`taylorlens report DIR`: the results store as one self-contained HTML page (figures embedded as PNG).

Sections: summary table (mean and 95% interval per model x method x metric, beside the paper's number where
the config gives one in a ``[[paper]]`` table), the papers' figures (metric curves; metric against the number
of principles, Deng et al. Figs. 2-3), a heat-map gallery per model (for text: each gallery sample as a row of
words coloured by attribution, one row per method, ``taylorlens.report.text``), and the configuration and
environment (versions, device, seed, time per method).
"""

from __future__ import annotations

import base64
import html
import json
import re
import sqlite3
from collections import defaultdict
from pathlib import Path

from taylorlens.bench.runner import WORDS_META_PREFIX, mean_interval
from taylorlens.bench.store import Store, bytes_array
from taylorlens.report.figures import curves_figure, gallery_figure, principles_figure, road_figure
from taylorlens.report.text import words_html
from taylorlens.taylor.principles import principles_followed

REPORT_FILE = "report.html"
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.8rem 0; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.5rem; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { display: inline-block; margin: 0.5rem; } img { max-width: 100%; }
pre { background: #f6f6f6; padding: 0.6rem; font-size: 0.8rem; overflow-x: auto; }
.muted { color: #777; }
"""


def _img(data: bytes, alt: str) -> str:
    encoded = base64.b64encode(data).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}"></figure>'


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(content: str) -> str:
    numeric = content[:1].isdigit() or content[:1] in "-." or content == "n/a"
    return f"<td class='num'>{content}</td>" if numeric else f"<td>{content}</td>"


def _number(value: float, half: float | None = None) -> str:
    if value != value:  # NaN
        return "n/a"
    text = f"{value:.4g}"
    return text if half is None or half != half else f"{text} &plusmn; {half:.2g}"


def _paper_numbers(configs: dict[str, dict]) -> dict[tuple[str, str], str]:
    """(method label or name, metric name) -> the paper's number, from the configs' ``[[paper]]`` tables."""
    found = {}
    for source in configs.values():
        for entry in source.get("paper", []):
            found[(entry["method"], entry["metric"])] = f"{entry['value']}" + (
                f" <span class='muted'>({html.escape(entry['note'])})</span>" if entry.get("note") else "")
    return found


def render(directory: str | Path) -> Path:
    """Write ``DIR/report.html`` from the store in ``DIR`` and return its path."""
    directory = Path(directory)
    with Store(directory, create=False) as store:
        db = store.connection
        configs = {k.removeprefix("config:"): json.loads(v) for k, v in db.execute(
            "SELECT key, value FROM meta WHERE key LIKE 'config:%' ORDER BY key")}
        environment = store.meta("environment", {})
        methods = db.execute("SELECT DISTINCT model, method_key, method, method_label FROM attributions "
                             "ORDER BY model, method_label").fetchall()
        paper = _paper_numbers(configs)
        sections = [f"<h1>taylorlens report: {html.escape(', '.join(configs) or directory.name)}</h1>"]
        sections.append(_summary_section(db, methods, paper))
        sections.append(_curves_section(db))
        sections.append(_principles_section(db, methods))
        sections.append(_gallery_section(db, methods))
        sections.append(_setup_section(db, configs, environment))
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>taylorlens report</title>"
            f"<style>{STYLE}</style></head><body>{''.join(sections)}</body></html>")
    path = directory / REPORT_FILE
    path.write_text(page, encoding="utf-8")
    return path


def _summary_section(db: sqlite3.Connection, methods: list[tuple], paper: dict[tuple[str, str], str]) -> str:
    rows = []
    for model, key, name, label in methods:
        metric_rows = db.execute("SELECT DISTINCT metric_key, metric, metric_label FROM results "
                                 "WHERE model=? AND method_key=? ORDER BY metric_label", (model, key)).fetchall()
        for metric_key, metric, metric_label in metric_rows:
            values = [r[0] for r in db.execute("SELECT value FROM results WHERE model=? AND method_key=? AND "
                                               "metric_key=?", (model, key, metric_key))]
            mean, half = mean_interval(values)
            ours = paper.get((label, metric)) or paper.get((name, metric)) or "<span class='muted'>&mdash;</span>"
            rows.append([html.escape(model), html.escape(label), html.escape(metric_label), _number(mean, half),
                         str(len(values)), ours])
    if not rows:
        return "<h2>Summary</h2><p>No metric results are stored yet.</p>"
    return "<h2>Summary</h2>" + _table(["model", "method", "metric", "mean &plusmn; 95%", "n", "paper"], rows)


def _curves_section(db: sqlite3.Connection) -> str:
    groups: dict[tuple[str, str, str], dict[str, list[list[float]]]] = defaultdict(lambda: defaultdict(list))
    query = ("SELECT r.model, r.metric, r.metric_label, a.method_label, r.curve FROM results r JOIN "
             "(SELECT DISTINCT model, method_key, method_label FROM attributions) a "
             "ON a.model = r.model AND a.method_key = r.method_key WHERE r.curve IS NOT NULL")
    road: dict[tuple[str, str], dict[str, dict[str, list]]] = defaultdict(lambda: defaultdict(dict))
    for model, metric, metric_label, method_label, curve in db.execute(query):
        if metric == "road":  # MoRF and LeRF of one method share a figure
            order = "lerf" if "order=lerf" in metric_label else "morf"
            entry = re.sub(r"order=(morf|lerf)(, )?", "", metric_label).replace(", )", ")").replace("()", "")
            road[(model, entry)][method_label].setdefault(order, []).append(json.loads(curve))
            continue
        groups[(model, metric, metric_label)][method_label].append(json.loads(curve))
    # a curve is {"x": [...], "y": [...]}; the x values are shared by every sample of a metric entry
    figures = [_img(curves_figure(f"{metric_label} on {model}", metric, curves), f"{metric_label} {model}")
               for (model, metric, metric_label), curves in sorted(groups.items())]
    figures += [_img(road_figure(f"{entry} on {model}", curves,
                                 "correct" if "readout=correct" in entry else "output"), f"{entry} {model}")
                for (model, entry), curves in sorted(road.items())]
    return "<h2>Curves</h2>" + ("".join(figures) or "<p>No curve metric in this run.</p>")


def _principles_section(db: sqlite3.Connection, methods: list[tuple]) -> str:
    by_metric: dict[tuple[str, str], list[tuple[str, float, float]]] = defaultdict(list)
    for model, key, name, label in methods:
        for metric, metric_label in db.execute("SELECT DISTINCT metric, metric_label FROM results WHERE model=? "
                                               "AND method_key=?", (model, key)):
            if metric not in ("infidelity", "bbox_accuracy"):
                continue
            values = [r[0] for r in db.execute("SELECT value FROM results WHERE model=? AND method_key=? AND "
                                               "metric_label=?", (model, key, metric_label))]
            by_metric[(model, metric_label)].append((label, principles_followed(name), mean_interval(values)[0]))
    if not by_metric:
        return ""
    figures = [_img(principles_figure(f"{metric_label} on {model}", points, metric_label), f"{metric_label} {model}")
               for (model, metric_label), points in sorted(by_metric.items())]
    return "<h2>Metric against the number of principles (Deng et al. 2021, Figs. 2-3)</h2>" + "".join(figures)


def _gallery_section(db: sqlite3.Connection, methods: list[tuple]) -> str:
    words = {key.removeprefix(WORDS_META_PREFIX): json.loads(value) for key, value in db.execute(
        "SELECT key, value FROM meta WHERE key LIKE ?", (f"{WORDS_META_PREFIX}%",))}
    if words:
        return _text_gallery_section(db, methods, words)
    inputs = db.execute("SELECT sample, array, label FROM inputs ORDER BY data_key, sample").fetchall()
    if not inputs:
        return ""
    samples = [s for s, _, _ in inputs]
    parts = ["<h2>Heat-map gallery</h2>"]
    for model in sorted({m[0] for m in methods}):
        maps = {}
        for _, key, _, label in (m for m in methods if m[0] == model):
            stored = dict(db.execute("SELECT sample, array FROM maps WHERE model=? AND method_key=?", (model, key)))
            maps[label] = [bytes_array(stored[s]) if s in stored else None for s in samples]
        figure = gallery_figure([bytes_array(a) for _, a, _ in inputs], [lbl for _, _, lbl in inputs], maps)
        parts.append(f"<h3>{html.escape(model)}</h3>" + _img(figure, f"gallery {model}"))
    return "".join(parts)


def _text_gallery_section(
    db: sqlite3.Connection, methods: list[tuple], words: dict[str, dict[str, list[str]]]
) -> str:
    """Per model and gallery sample, one row of words per method coloured by its per-word scores (stored by
    the bench for the last ``len(words)`` positions: reviews are padded in front), titled with the method's
    total over all positions; where a ``scaling_path`` was measured, the heading gives the explained output at
    the input and at the baseline, which a complete method's total equals the difference of (IG paper,
    Figs. 9-10: the total IG next to the prediction score)."""
    labels = dict(db.execute("SELECT sample, label FROM inputs"))
    parts = ["<h2>Word gallery</h2><p class='muted'>Each word coloured by its attribution (sum over its embedding "
             "components; Occlusion-1: the output drop when the word's embedding is zero): red positive, blue "
             "negative, white 0, scale per row; <i>total</i>: the sum over all positions.</p>"]
    samples = sorted({int(s) for shown in words.values() for s in shown})
    sample_words = {int(s): w for shown in words.values() for s, w in shown.items()}
    for model in sorted({m[0] for m in methods}):
        parts.append(f"<h3>{html.escape(model)}</h3>")
        for sample in samples:
            text = sample_words[sample]
            output = _explained_output(db, model, sample)
            parts.append(f"<h4>sample {sample}: {html.escape(str(labels.get(sample, '')))}{output}</h4>")
            for _, key, _, label in (m for m in methods if m[0] == model):
                stored = db.execute("SELECT array FROM maps WHERE model=? AND method_key=? AND sample=?",
                                    (model, key, sample)).fetchone()
                if stored is None:
                    continue
                scores = bytes_array(stored[0]).reshape(-1)
                shown = scores[len(scores) - len(text):].tolist() if text else []
                parts.append(words_html(text, shown, title=f"{label}: total {float(scores.sum()):+.4g}"))
    return "".join(parts)


def _explained_output(db: sqlite3.Connection, model: str, sample: int) -> str:
    """`` (explained output f(x) = ..., at the baseline ...)`` from a stored scaling path (its ends are
    alpha = 1 and alpha = 0), or ``""`` when none was measured."""
    row = db.execute("SELECT curve FROM results WHERE model=? AND sample=? AND metric='scaling_path' "
                     "AND curve IS NOT NULL LIMIT 1", (model, sample)).fetchone()
    if row is None:
        return ""
    path = json.loads(row[0])["y"]
    return (f" (explained output {path[-1]:.4g}, at the baseline {path[0]:.4g}: difference "
            f"{path[-1] - path[0]:+.4g})")


def _setup_section(db: sqlite3.Connection, configs: dict[str, dict], environment: dict) -> str:
    timing = db.execute("SELECT model, method_label, avg(seconds), count(*) FROM attributions "
                        "GROUP BY model, method_key ORDER BY model, method_label").fetchall()
    rows = [[html.escape(m), html.escape(label), f"{seconds:.4g}", str(n)] for m, label, seconds, n in timing]
    env_rows = [[html.escape(k), html.escape(str(v))] for k, v in environment.items()]
    configs_text = "".join(f"<h3>{html.escape(name)}</h3><pre>{html.escape(json.dumps(source, indent=2))}</pre>"
                           for name, source in configs.items())
    return ("<h2>Time per method</h2>" + _table(["model", "method", "seconds / sample", "samples"], rows)
            + "<h2>Environment</h2>" + _table(["what", "value"], env_rows) + "<h2>Configuration</h2>" + configs_text)
