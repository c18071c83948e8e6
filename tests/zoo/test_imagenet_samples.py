import numpy as np
import pytest
import torch

from taylorlens import zoo
from taylorlens.zoo.imagenet_samples import IMAGENET_LABELS, labelled_images
from taylorlens.zoo.photos import imagenet_preprocess


@pytest.fixture(autouse=True)
def _foolbox(require_wheels):
    require_wheels("foolbox")


def test_foolbox_images_are_20_labelled_512px_photos_in_file_order():
    images = labelled_images()
    assert [label for *_, label in images] == list(IMAGENET_LABELS)
    assert IMAGENET_LABELS[:3] == (243, 559, 438) and IMAGENET_LABELS.count(609) == 2
    name, image, label = images[0]
    assert name == "imagenet_00_243" and label == 243
    assert image.shape == (512, 512, 3) and image.dtype == np.uint8 and image.std() > 20


def test_imagenet_samples_are_labelled_images_then_unlabelled_photos_at_each_resolution():
    samples = zoo.imagenet_samples()
    assert len(samples) == 26
    values = list(samples.values())
    assert [s.label for s in values[:20]] == list(IMAGENET_LABELS) and all(s.label is None for s in values[20:])
    assert list(samples)[20:] == ["chelsea", "coffee", "astronaut", "rocket", "china", "flower"]
    assert values[0].tensor.shape == (3, 224, 224)
    torch.testing.assert_close(values[0].tensor, imagenet_preprocess(values[0].image))
    lite2 = zoo.imagenet_samples("efficientnet_lite2", include_photos=False)
    assert len(lite2) == 20 and next(iter(lite2.values())).tensor.shape == (3, 260, 260)
    assert zoo.imagenet_samples(240, include_photos=False)["imagenet_05_853"].tensor.shape == (3, 240, 240)
    with pytest.raises(ValueError, match="not RGB images"):
        zoo.imagenet_samples("digits_mlp_relu")
