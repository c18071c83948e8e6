"""The HTML report of a small benchmark run: self-contained, every figure decodes, renders in Chromium."""

import base64
import io
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from taylorlens.bench import config as bench_config
from taylorlens.bench import runner
from taylorlens.report.html import render

CONFIG = """
name = "report-smoke"
batch_size = 4
gallery = 2
models = ["digits_mlp_relu"]
[data]
dataset = "digits"
samples = 6
[[methods]]
name = "integrated_gradients"
steps = 16
[[methods]]
name = "gradient_x_input"
[[metrics]]
name = "sensitivity_n"
n_subsets = 10
[[metrics]]
name = "infidelity"
[[paper]]
method = "integrated_gradients(steps=16)"
metric = "sensitivity_n"
value = 0.9
note = "illustrative"
"""


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("report")
    (directory / "c.toml").write_text(CONFIG)
    runner.run(bench_config.load(directory / "c.toml"), directory / "out", show_progress=False, echo=lambda s: None)
    return render(directory / "out")


def test_report_is_self_contained_and_every_figure_decodes(report):
    page = report.read_text()
    assert "http://" not in page and "https://" not in page and "<script" not in page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) >= 3  # curves, principles, gallery
    for data in images:
        with Image.open(io.BytesIO(base64.b64decode(data))) as image:
            assert image.size[0] > 100 and image.size[1] > 100
    assert "Sensitivity" in page or "sensitivity_n" in page
    assert "illustrative" in page  # the paper's number sits beside ours


CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver (make install)")
def test_report_renders_in_headless_chromium_with_all_figures_and_no_console_errors(report, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        driver.get(report.as_uri())
        images = driver.find_elements("tag name", "img")
        assert len(images) >= 3
        loaded = driver.execute_script(
            "return Array.from(document.images).map(i => i.complete && i.naturalWidth > 0);")
        assert all(loaded)
        assert driver.find_element("tag name", "h1").text.startswith("taylorlens report")
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == []
    finally:
        driver.quit()
