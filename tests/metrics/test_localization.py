import pytest
import torch

from taylorlens.metrics import attribution_in_box, bbox_accuracy


def test_bbox_accuracy_is_the_share_of_the_top_n_pixels_inside_the_box():
    a = torch.zeros(2, 3, 6, 6)
    a[0, :, 0:2, 0:2] = 1.0  # all four top pixels inside the 2 x 2 box
    a[1, 0, 0, 0], a[1, 0, 5, 5], a[1, 0, 4, 5], a[1, 0, 5, 4] = 4.0, 3.0, 3.0, 3.0  # one of four inside
    boxes = torch.tensor([[0, 0, 2, 2], [0, 0, 2, 2]])
    assert torch.allclose(bbox_accuracy(a, boxes=boxes), torch.tensor([1.0, 0.25]))
    masks = torch.zeros(2, 6, 6, dtype=torch.bool)
    masks[:, :2, :2] = True
    assert torch.allclose(bbox_accuracy(a, boxes=masks), torch.tensor([1.0, 0.25]))


def test_attribution_in_box_is_the_share_of_attribution_mass():
    a = torch.zeros(1, 1, 4, 4)
    a[0, 0, 0, 0], a[0, 0, 3, 3] = 3.0, -1.0
    box = torch.tensor([0, 0, 2, 2])
    assert attribution_in_box(a, boxes=box).item() == pytest.approx(0.75)
    assert attribution_in_box(a, boxes=box, absolute=False).item() == pytest.approx(1.5)
    assert attribution_in_box(torch.zeros(1, 4, 4), boxes=box).item() == 0.0


def test_boxes_of_the_wrong_shape_are_rejected():
    with pytest.raises(ValueError, match="boxes"):
        bbox_accuracy(torch.zeros(1, 4, 4), boxes=torch.ones(1, 3))
