"""ROAD (Rong et al. 2022): noisy linear imputation and the MoRF / LeRF curves."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from torch import nn

from taylorlens.metrics import noisy_linear_imputation, road
from taylorlens.metrics.road import NEIGHBOURS


def slow_imputation(image: torch.Tensor, removed: torch.Tensor) -> torch.Tensor:
    """One removed pixel at a time: its equation ``sum_n w_n (v_n - v) = 0`` as a dense row, then a dense solve."""
    channels, height, width = image.shape
    unknown = [(y, x) for y in range(height) for x in range(width) if removed[y, x]]
    index = {pixel: i for i, pixel in enumerate(unknown)}
    matrix = np.zeros((len(unknown), len(unknown)))
    rhs = np.zeros((len(unknown), channels))
    for i, (y, x) in enumerate(unknown):
        for (dy, dx), weight in NEIGHBOURS.items():
            if 0 <= y + dy < height and 0 <= x + dx < width:
                matrix[i, i] -= weight
                if (y + dy, x + dx) in index:
                    matrix[i, index[(y + dy, x + dx)]] += weight
                else:
                    rhs[i] -= weight * image[:, y + dy, x + dx].numpy()
    solution = np.linalg.solve(matrix, rhs)
    out = image.clone()
    for i, (y, x) in enumerate(unknown):
        out[:, y, x] = torch.from_numpy(solution[i])
    return out


def test_a_removed_pixel_surrounded_by_known_pixels_of_a_linear_image_is_recovered_exactly():
    rows, cols = torch.meshgrid(torch.arange(9.0).double(), torch.arange(11.0).double(), indexing="ij")
    image = torch.stack([0.3 * rows - 0.7 * cols + 2, -rows + 0.1 * cols])[None]
    removed = torch.zeros(1, 2, 9, 11, dtype=torch.bool)
    removed[0, 0, 4, 5] = True  # one pixel
    removed[0, 1, 2:7, 3:8] = True  # an interior block: the linear image is still the only solution
    imputed = noisy_linear_imputation(image, removed)
    torch.testing.assert_close(imputed, image[:, None].expand_as(imputed), atol=1e-12, rtol=0)


def test_noisy_linear_imputation_matches_a_dense_per_pixel_solve_including_borders():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 7, 6, generator=generator, dtype=torch.float64)
    removed = torch.rand(2, 3, 7, 6, generator=generator) < torch.tensor([0.2, 0.5, 0.8]).view(1, 3, 1, 1)
    imputed = noisy_linear_imputation(images, removed)
    for b in range(2):
        for k in range(3):
            torch.testing.assert_close(imputed[b, k], slow_imputation(images[b], removed[b, k]))


def test_banded_and_sparse_solves_of_the_imputation_agree_on_tall_and_wide_images(monkeypatch):
    """Masks sorted by size, banded solves over runs of them (each with its own band), assembly in chunks of
    CELLS padded pixels, SuperLU one mask at a time: every split gives the same values as the dense solve."""
    road_module = importlib.import_module("taylorlens.metrics.road")  # the package's `road` is the function

    generator = torch.Generator().manual_seed(5)
    for shape in ((9, 13), (13, 9)):
        images = torch.rand(3, 2, *shape, generator=generator, dtype=torch.float64)
        fractions = 0.9 * torch.rand(3, 5, 1, 1, generator=generator)  # mask sizes in an order unlike the masks'
        removed = torch.rand(3, 5, *shape, generator=generator) < fractions
        removed[1, 3] = False  # no removed pixel
        removed[2, 0] = True
        removed[2, 0, 4, 4] = False  # one known pixel
        banded = noisy_linear_imputation(images, removed)
        for name, value in (("BANDED_UP_TO", 0), ("BAND_ENTRIES", 1), ("BAND_ENTRIES", 300), ("CELLS", 1),
                            ("CELLS", 400)):
            monkeypatch.setattr(road_module, name, value)
            torch.testing.assert_close(noisy_linear_imputation(images, removed), banded, atol=1e-12, rtol=0)
            monkeypatch.undo()
        for b, k in ((1, 2), (2, 0), (0, 4), (1, 3)):
            torch.testing.assert_close(banded[b, k], slow_imputation(images[b], removed[b, k]))


def test_banded_runs_split_the_masks_at_their_boundaries_each_with_its_own_band(monkeypatch):
    road_module = importlib.import_module("taylorlens.metrics.road")
    monkeypatch.setattr(road_module, "BAND_ENTRIES", 300)
    generator = torch.Generator().manual_seed(6)
    removed = (torch.rand(12, 10, 10, generator=generator) < torch.linspace(0.05, 0.95, 12).view(-1, 1, 1)).numpy()
    system = road_module._ImputationSystem.build(np.zeros((12, 1, 10, 10)), removed)
    runs = system.runs()
    assert runs[0][0] == 0 and runs[-1][1] == system.starts[-1] and len(runs) > 2
    assert all(hi == next_lo for (_, hi, _), (next_lo, _, _) in zip(runs, runs[1:], strict=False))
    assert {lo for lo, _, _ in runs} <= set(system.starts.tolist())
    for lo, hi, band in runs:
        gaps = [gap[(i >= lo) & (i < hi)] for _, i, gap in system.pairs]
        assert band == max(int(g.max()) for g in gaps if g.size)
        masks = np.searchsorted(system.starts, hi) - np.searchsorted(system.starts, lo)
        assert (hi - lo) * (band + 1) <= 300 or masks == 1  # within the budget, or one mask over it
    assert runs[0][2] < 8 < runs[-1][2] <= 11


def test_imputation_without_a_known_pixel_is_refused():
    with pytest.raises(ValueError, match="at least one pixel"):
        noisy_linear_imputation(torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4, dtype=torch.bool))


def test_noisy_linear_imputation_matches_quantus_noise_free():
    from quantus.functions.perturb_func import noisy_linear_imputation as quantus_imputation

    generator = torch.Generator().manual_seed(1)
    image = torch.rand(3, 8, 9, generator=generator, dtype=torch.float64)
    indices = torch.randperm(72, generator=generator)[:30].numpy()
    removed = torch.zeros(72, dtype=torch.bool)
    removed[indices] = True
    ours = noisy_linear_imputation(image[None], removed.view(1, 1, 8, 9))[0, 0]
    expected = quantus_imputation(image.numpy(), indices, noise=0.0)
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-10)


def test_noise_is_added_to_imputed_pixels_only_and_is_seeded():
    images = torch.zeros(1, 1, 30, 30, dtype=torch.float64)
    removed = torch.zeros(1, 1, 30, 30, dtype=torch.bool)
    removed[0, 0, 5:25, 5:25] = True

    def noisy(seed):
        return noisy_linear_imputation(images, removed, 0.1, torch.Generator().manual_seed(seed))

    first = noisy(3)
    assert torch.equal(first, noisy(3)) and not torch.equal(first, noisy(4))
    assert torch.equal(first[0, 0, 0][~removed[0, 0]], torch.zeros(500, dtype=torch.float64))
    assert float(first[0, 0, 0][removed[0, 0]].std()) == pytest.approx(0.1, rel=0.1)


def test_constant_road_on_a_linear_model_removes_the_ranked_pixels(linear_model):
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    a = torch.randn(3, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    contribution = (x * linear_model.weight.detach()).flatten(1)
    for order, descending in (("morf", True), ("lerf", False)):
        result = road(linear_model, x, a, fractions=(0.25, 0.5, 0.75), order=order, imputation="constant")
        ranked = contribution.gather(1, a.flatten(1).argsort(1, descending=descending))
        expected = linear_model(x)[:, None] - torch.stack([ranked[:, :n].sum(1) for n in (16, 32, 48)], 1)
        torch.testing.assert_close(result.curve, expected)
        assert result.removed.tolist() == [16, 32, 48]
        torch.testing.assert_close(result.area, 0.25 * (result.curve[:, :-1] + result.curve[:, 1:]).sum(1) / 2)


def test_road_accuracy_curve_matches_quantus_road(digits):
    import quantus

    model, x, y = digits
    a = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    percentages = [10, 30, 50, 70, 90]
    reference = quantus.ROAD(percentages=percentages, noise=0.0, disable_warnings=True, display_progressbar=False)
    expected = reference(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(), device="cpu")
    result = road(model, x, a, y, fractions=[p / 100 for p in percentages], noise=0.0, readout="correct")
    assert result.curve.mean(0).tolist() == pytest.approx([expected[p] for p in percentages])


def test_readout_correct_needs_class_outputs_and_targets(linear_model):
    x = torch.zeros(2, 1, 8, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match="needs targets"):
        road(linear_model, x, x, readout="correct")
    with pytest.raises(ValueError, match="fractions"):
        road(nn.Flatten(), x, x, fractions=(0.5, 1.0))
