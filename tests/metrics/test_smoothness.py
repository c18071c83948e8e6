import pytest
import torch
from skimage.transform import pyramid_gaussian

from taylorlens.metrics import autvc, average_total_variation, gaussian_pyramid, saliency_map, simpson


def test_atv_of_a_constant_map_is_zero():
    maps = torch.full((2, 3, 10, 12), 0.7)
    assert torch.equal(average_total_variation(maps), torch.zeros(2))
    assert torch.equal(saliency_map(maps), torch.zeros(2, 10, 12))


@pytest.mark.parametrize(("h", "w"), [(8, 8), (5, 7), (30, 31)])
def test_atv_of_a_checkerboard_counts_every_neighbour_pair(h, w):
    board = ((torch.arange(h)[:, None] + torch.arange(w)) % 2).double()[None]
    expected = (h * (w - 1) + (h - 1) * w) / (h * w)
    assert average_total_variation(board).item() == pytest.approx(expected)


def test_saliency_map_sums_absolute_channels_clips_the_99th_percentile_and_normalises():
    maps = torch.zeros(1, 3, 10, 10, dtype=torch.float64)
    maps[0, :, 0, 0] = torch.tensor([-100.0, 50.0, 50.0])  # one outlier pixel: |.| summed = 200
    maps[0, 0, 5, :] = torch.linspace(0, 1, 10, dtype=torch.float64)
    result = saliency_map(maps)
    flat = maps.abs().sum(1).flatten()
    ceiling = torch.quantile(flat, 0.99)
    assert result[0, 0, 0].item() == 1.0 and ceiling < 200
    assert result[0, 5, 9].item() == pytest.approx(1.0 / ceiling.item())


def test_gaussian_pyramid_matches_skimage():
    maps = torch.rand(2, 100, 90, dtype=torch.float64)
    ours = gaussian_pyramid(maps, 1.5, 30)
    reference = [level for level in pyramid_gaussian(maps[1].numpy(), downscale=1.5) if min(level.shape) >= 30]
    assert len(ours) == len(reference) == 3
    for level, expected in zip(ours, reference, strict=True):
        assert torch.allclose(level[1], torch.from_numpy(expected), atol=1e-12)


def test_autvc_is_the_simpson_area_of_the_multiscale_atv_curve():
    maps = torch.rand(3, 1, 64, 64)
    result = autvc(maps)
    assert result.sizes == [(64, 64), (43, 43), (29, 29)][: len(result.sizes)] and len(result.sizes) == 2
    assert torch.allclose(result.autvc, simpson(result.curve))
    assert torch.allclose(result.curve[:, 0], average_total_variation(maps))
    small = autvc(maps, min_size=4)
    assert small.curve.shape[1] == len(small.sizes) > 2
