import pytest
import torch

import taylorlens
from taylorlens.engine.checks import AttributionInputError
from taylorlens.metrics import aupc, perturbation_curve
from taylorlens.metrics.perturbation import PRESETS, top_regions


def test_curve_of_a_linear_model_follows_the_sorted_contributions(linear_model):
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    a = x * linear_model.weight
    f_x = linear_model(x)
    for order, descending in (("morf", True), ("lerf", False)):
        result = perturbation_curve(linear_model, x, a, None, order=order)
        steps = a.flatten(1).sort(1, descending=descending).values.cumsum(1)
        expected = torch.cat([f_x[:, None], f_x[:, None] - steps], 1)
        assert torch.allclose(result.curve, expected, atol=1e-9)
        assert result.curve.shape == (3, 65) and int(result.removed[-1]) == 64


def test_steps_of_s_features_and_the_ig_preset_count_removed_units(linear_model):
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    a = x * linear_model.weight
    result = perturbation_curve(linear_model, x, a, None, step=10, n_steps=4)
    steps = a.flatten(1).sort(1, descending=True).values.cumsum(1)[:, [9, 19, 29, 39]]
    assert torch.allclose(result.curve[:, 1:], linear_model(x)[:, None] - steps, atol=1e-9)
    assert PRESETS["ig_pixel_ablation"]["step"] == 100 and PRESETS["ig_pixel_ablation"]["n_steps"] == 50
    preset = perturbation_curve(linear_model, x, a, None, preset="ig_pixel_ablation", n_steps=3, step=5)
    assert preset.curve.shape == (2, 4) and preset.removed.tolist() == [0, 5, 10, 15]


def test_aopc_morf_exceeds_lerf(linear_model):
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    a = x * linear_model.weight
    most = perturbation_curve(linear_model, x, a, None, preset="ancona_fig3c")
    least = perturbation_curve(linear_model, x, a, None, preset="ancona_fig3c", order="lerf")
    assert bool((most.aopc > least.aopc).all())


def test_regions_are_removed_whole_in_ranked_order(linear_model):
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    a = x * linear_model.weight
    result = perturbation_curve(linear_model, x, a, None, region=4)
    assert result.curve.shape == (2, 5)  # at most four 4 x 4 regions fit; greedy picks may leave fewer
    drops = result.curve[:, :-1] - result.curve[:, 1:]
    assert bool((drops[:, 0] >= drops[:, 1:].max(1).values - 1e-9).all()) or bool((drops[:, 1:] == 0).any())


def test_uniform_and_callable_replacements():
    model = lambda x: x.flatten(1).sum(1)  # noqa: E731
    x = torch.zeros(2, 1, 4, 4)
    a = torch.rand(2, 1, 4, 4)
    noisy = perturbation_curve(model, x, a, None, baseline="uniform", valid_range=(2.0, 3.0), seed=0)
    increments = noisy.curve[:, 1:] - noisy.curve[:, :-1]
    assert bool(((increments >= 2) & (increments <= 3)).all())
    ones = perturbation_curve(model, x, a, None, baseline=lambda points, mask: torch.ones_like(points))
    assert torch.allclose(ones.curve, torch.arange(17.0).expand(2, 17))


def test_top_regions_do_not_overlap_and_rank_by_mean():
    scores = torch.zeros(1, 6, 6)
    scores[0, 1:3, 1:3] = 5.0
    scores[0, 4:6, 4:6] = 1.0
    corners = top_regions(scores, 2, 9)[0]
    assert corners[0].tolist() == [1, 1] and corners[1].tolist() == [4, 4]
    chosen = corners[corners[:, 0] >= 0]
    for i in range(len(chosen)):
        for j in range(i):
            assert bool(((chosen[i] - chosen[j]).abs() >= 2).any())


def test_aupc_of_a_model_that_ignores_the_input_is_the_curve_length():
    model = lambda x: torch.full((x.shape[0],), 0.7)  # noqa: E731
    x = torch.rand(3, 3, 12, 12)
    result = aupc(model, x, torch.rand_like(x), None, k=3, L=10, P=4, seed=0)
    assert torch.allclose(result.aupc, torch.full((3,), 10.0))
    assert result.curve.shape == (3, 11) and result.regions.shape == (3, 10, 2)


def test_aupc_follows_equations_11_and_12_on_a_linear_model(linear_model):
    # y^(l) = mean_p f(x^(l-1) with region r_l noised) / f(x); the median copy is carried on
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    a = x * linear_model.weight
    result = aupc(linear_model, x, a, None, k=2, L=3, P=5, valid_range=(0.0, 1.0), seed=1)
    generator = torch.Generator().manual_seed(1)
    current = x.clone()
    f_x = linear_model(x)
    for step in range(3):
        uniform = torch.rand((2, 5, 1, 2, 2), generator=generator, dtype=x.dtype)
        copies = current[:, None].repeat(1, 5, 1, 1, 1)
        for b in range(2):
            y, z = result.regions[b, step].tolist()
            copies[b, :, :, y : y + 2, z : z + 2] = uniform[b]
        scores = linear_model(copies.flatten(0, 1)).view(2, 5)
        assert torch.allclose(result.curve[:, step + 1], scores.mean(1) / f_x)
        current = copies[torch.arange(2), scores.median(1).indices]


def test_digit_model_sanity_ig_beats_random_and_morf_beats_lerf(digits):
    model, x, y = digits
    ig = taylorlens.attribute(model, x, y, method="integrated_gradients", baseline=0.0, steps=32)
    random = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    ig_aupc = aupc(model, x, ig, y, k=2, L=8, P=8, valid_range=(-1.0, 1.0), seed=0).aupc.mean()
    random_aupc = aupc(model, x, random, y, k=2, L=8, P=8, valid_range=(-1.0, 1.0), seed=0).aupc.mean()
    assert ig_aupc < random_aupc
    most = perturbation_curve(model, x, ig, y, baseline=-1.0, step=4)
    least = perturbation_curve(model, x, ig, y, baseline=-1.0, step=4, order="lerf")
    assert most.aopc.mean() > least.aopc.mean()


def test_bad_arguments_name_what_is_accepted(linear_model):
    x = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match="order"):
        perturbation_curve(linear_model, x, x, None, order="random")
    with pytest.raises(ValueError, match="larger than the images"):
        aupc(linear_model, x, x, None)
    with pytest.raises(ValueError, match="attributions"):
        perturbation_curve(linear_model, x, x[:, :, :4], None)


def test_old_option_name_replacement_still_works_with_a_deprecation_warning(linear_model):
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    a = x * linear_model.weight
    new = perturbation_curve(linear_model, x, a, None, baseline=0.5, step=8)
    with pytest.warns(DeprecationWarning, match="'replacement' is now 'baseline'"):
        old = perturbation_curve(linear_model, x, a, None, replacement=0.5, step=8)
    torch.testing.assert_close(old.curve, new.curve)


@pytest.mark.parametrize(("old", "new", "message"), [
    ({"steps": 3}, {"n_steps": 3}, "'steps' is now 'n_steps'"),
    ({"order": "least_relevant_first"}, {"order": "lerf"}, "'least_relevant_first' is now 'lerf'"),
    ({"order": "most_relevant_first"}, {"order": "morf"}, "'most_relevant_first' is now 'morf'"),
])
def test_old_spellings_of_steps_and_order_warn_and_give_the_same_curve(linear_model, old, new, message):
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    a = x * linear_model.weight
    expected = perturbation_curve(linear_model, x, a, None, step=4, **new)
    with pytest.warns(DeprecationWarning, match=message):
        got = perturbation_curve(linear_model, x, a, None, step=4, **old)
    torch.testing.assert_close(got.curve, expected.curve)


def test_an_option_given_under_its_old_and_new_name_is_refused(linear_model):
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    with pytest.warns(DeprecationWarning), pytest.raises(AttributionInputError, match="given twice"):
        perturbation_curve(linear_model, x, x, None, n_steps=2, steps=3)
