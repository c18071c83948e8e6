import pytest
import torch

from taylorlens.metrics import aopc, aopc_curve, simpson, trapezoid


@pytest.mark.parametrize("points", [3, 5, 9, 31])
def test_simpson_is_exact_for_cubics_with_odd_point_counts(points):
    t = torch.linspace(0, 2, points, dtype=torch.float64)
    y = 4 * t**3 - t**2 + 3
    assert simpson(y, dx=2 / (points - 1)).item() == pytest.approx(16 - 8 / 3 + 6, rel=1e-12)


@pytest.mark.parametrize("points", [4, 6, 10, 30])
def test_simpson_is_exact_for_quadratics_with_even_point_counts(points):
    t = torch.linspace(0, 3, points, dtype=torch.float64)
    assert simpson(t**2 - 2 * t, dx=3 / (points - 1)).item() == pytest.approx(9 - 9, abs=1e-12)
    assert simpson(t**2, dx=3 / (points - 1)).item() == pytest.approx(9, rel=1e-12)


def test_simpson_of_a_constant_curve_is_its_length_and_batches():
    y = torch.ones(3, 31, dtype=torch.float64) * torch.tensor([[1.0], [2.0], [0.5]], dtype=torch.float64)
    assert torch.allclose(simpson(y), torch.tensor([30.0, 60.0, 15.0], dtype=torch.float64))
    assert simpson(torch.ones(1, 2)).item() == 1.0 and trapezoid(torch.ones(1, 1)).item() == 0.0


def test_aopc_is_the_mean_drop_from_the_first_point():
    curve = torch.tensor([[1.0, 0.5, 0.25, 0.0]])
    assert aopc(curve).item() == pytest.approx((0 + 0.5 + 0.75 + 1.0) / 4)
    assert torch.allclose(aopc_curve(curve), torch.tensor([[0.0, 0.25, 1.25 / 3, 2.25 / 4]]))
