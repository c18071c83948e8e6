"""Integrated Gradients, Expected Gradients and interior gradients (IG paper; SmoothTaylor paper Eq. 1-3)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import taylorlens
from taylorlens.methods.quadrature import RULES, quadrature
from taylorlens.zoo.counterexamples import AppendixBF, AppendixBG, ReluProduct, SaturatedReLU
from tests.slow_references import slow_integrated_gradients


def test_ig_completeness_on_softplus_mlp_with_error_shrinking_in_steps(make_mlp, make_inputs):
    model = make_mlp(nn.Softplus)
    x, baseline = make_inputs(4, 5), make_inputs(4, 5, seed=2)
    with torch.no_grad():
        delta = model(x)[:, 1] - model(baseline)[:, 1]
    errors = []
    for steps in (4, 16, 64, 256):
        maps = taylorlens.attribute(model, x, 1, "integrated_gradients", baseline=baseline, steps=steps)
        errors.append((maps.sum(dim=1) - delta).abs().max().item())
    # The right Riemann sum errs by O(1/steps): each 4x more steps cut the completeness error about 4x.
    for earlier, later in zip(errors, errors[1:], strict=False):
        assert 3.5 < earlier / later < 4.5
    # Gauss-Legendre on this smooth path converges far faster than the Riemann sum.
    gauss = taylorlens.attribute(model, x, 1, "integrated_gradients", baseline=baseline, steps=32,
                                 rule="gauss_legendre")
    torch.testing.assert_close(gauss.sum(dim=1), delta, atol=1e-10, rtol=0)


def test_ig_sensitivity_example_gives_one_where_the_gradient_is_zero():
    x = torch.tensor([[2.0]], dtype=torch.float64)
    model = SaturatedReLU().eval()
    assert taylorlens.attribute(model, x, method="gradient").item() == 0.0
    # The kink sits at alpha = 1/2: midpoints avoid putting a node on it.
    ig = taylorlens.attribute(model, x, method="integrated_gradients", steps=100, rule="riemann_middle")
    torch.testing.assert_close(ig, torch.tensor([[1.0]], dtype=torch.float64))


@pytest.mark.parametrize("model", [AppendixBF().eval(), AppendixBG().eval()], ids=["f", "g"])
def test_ig_is_implementation_invariant_on_the_appendix_b_networks(model):
    # Derived from the definitions: on the path a * (3, 1) both networks are ReLU(2a - 1), whose gradient
    # is (1, -1) for a > 1/2, so IG = (3 * 1/2, 1 * -1/2) = (1.5, -0.5). The extracted Fig. 14 text shows
    # IG = (2, -1), which does not match the definition (its rows are garbled); (2, -1) is DeepLIFT on g.
    x = torch.tensor([[3.0, 1.0]], dtype=torch.float64)
    ig = taylorlens.attribute(model, x, method="integrated_gradients", steps=1000, rule="riemann_middle")
    torch.testing.assert_close(ig, torch.tensor([[1.5, -0.5]], dtype=torch.float64))


def test_ig_keeps_completeness_on_the_multiplicative_example():
    # h(a * (3, 1)) = ReLU(3a - 1) * a: IG_1 = 3 * int_{1/3}^1 a da = 4/3, IG_2 = int_{1/3}^1 (3a - 1) da = 2/3.
    x = torch.tensor([[3.0, 1.0]], dtype=torch.float64)
    model = ReluProduct().eval()
    ig = taylorlens.attribute(model, x, method="integrated_gradients", steps=3000, rule="riemann_middle")
    torch.testing.assert_close(ig, torch.tensor([[4 / 3, 2 / 3]], dtype=torch.float64), atol=1e-6, rtol=0)
    assert ig.sum().item() == pytest.approx(2.0, abs=1e-6)


@pytest.mark.parametrize("activation", [nn.Tanh, nn.ReLU, nn.Softplus])
def test_ig_matches_a_slow_loop_over_steps(make_mlp, make_inputs, activation):
    model = make_mlp(activation)
    x, baseline = make_inputs(3, 5), make_inputs(3, 5, seed=3)
    target = torch.tensor([0, 2, 1])
    fast = taylorlens.attribute(model, x, target, "integrated_gradients", baseline=baseline, steps=20)
    torch.testing.assert_close(fast, slow_integrated_gradients(model, x, target, baseline, 20))


def test_ig_equals_input_difference_times_mean_interior_gradient(make_mlp, make_inputs):
    model = make_mlp(nn.Softplus)
    x = make_inputs(3, 5)
    steps = 25
    alphas = [m / steps for m in range(1, steps + 1)]
    interior = taylorlens.attribute(model, x, 2, "interior_gradients", alphas=alphas)
    assert interior.shape == (steps, 3, 5)
    ig = taylorlens.attribute(model, x, 2, "integrated_gradients", steps=steps)
    torch.testing.assert_close(ig, x * interior.mean(dim=0))


def test_interior_gradients_are_gradients_at_scaled_inputs(make_mlp, make_inputs):
    model = make_mlp(nn.Tanh)
    x = make_inputs(2, 5)
    interior = taylorlens.attribute(model, x, 0, "interior_gradients", alphas=[0.25, 1.0], baseline=0.5)
    for index, alpha in enumerate((0.25, 1.0)):
        expected = taylorlens.attribute(model, 0.5 + alpha * (x - 0.5), 0, "gradient")
        torch.testing.assert_close(interior[index], expected)


def test_interior_gradients_default_alphas_are_fifty_steps_up_to_one(make_mlp, make_inputs):
    model = make_mlp(nn.Tanh)
    x = make_inputs(2, 5)
    interior = taylorlens.attribute(model, x, 0, "interior_gradients")
    assert interior.shape == (50, 2, 5)
    torch.testing.assert_close(interior[-1], taylorlens.attribute(model, x, 0, "gradient"))


@pytest.mark.parametrize("rule", RULES)
def test_quadrature_rules_integrate_polynomials(rule):
    alphas, weights = quadrature(rule, 40, torch.float64, torch.device("cpu"))
    assert weights.sum().item() == pytest.approx(1.0)
    exact_enough = {"gauss_legendre": 1e-12, "trapezoid": 1e-3, "riemann_middle": 1e-3}.get(rule, 3e-2)
    assert (weights * alphas**2).sum().item() == pytest.approx(1 / 3, abs=exact_enough)


def test_ig_with_uniform_baselines_averages_ig_over_the_drawn_baselines(make_mlp, make_inputs):
    model = make_mlp(nn.Tanh)
    x = make_inputs(2, 5)
    seed, n = 7, 3
    generator = torch.Generator().manual_seed(seed)
    drawn = -1 + 2 * torch.rand((2, n, 5), generator=generator, dtype=torch.float64)
    expected = sum(
        taylorlens.attribute(model, x, 1, "integrated_gradients", baseline=drawn[:, k], steps=10) for k in range(n)
    ) / n
    got = taylorlens.attribute(model, x, 1, "integrated_gradients", baseline="uniform", n_baselines=n, low=-1.0,
                               high=1.0, seed=seed, steps=10)
    torch.testing.assert_close(got, expected)


def test_expected_gradients_from_references_is_a_slow_monte_carlo_loop(make_mlp, make_inputs):
    model = make_mlp(nn.Softplus)
    x, references = make_inputs(2, 5), make_inputs(6, 5, seed=4)
    n, seed = 5, 3
    got = taylorlens.attribute(model, x, 0, "expected_gradients", references=references, n_samples=n, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    index = torch.randint(6, (2, n), generator=generator)
    alphas = torch.rand((2, n), generator=generator, dtype=torch.float64)
    expected = torch.zeros_like(x)
    for b in range(2):
        for k in range(n):
            start = references[index[b, k]]
            point = (start + alphas[b, k] * (x[b] - start)).requires_grad_(True)
            (grad,) = torch.autograd.grad(model(point[None])[0, 0], point)
            expected[b] += (x[b] - start) * grad / n
    torch.testing.assert_close(got, expected)


def test_expected_gradients_complete_in_expectation(make_mlp, make_inputs):
    model = make_mlp(nn.Softplus)
    x, references = make_inputs(2, 5), make_inputs(4, 5, seed=4)
    maps = taylorlens.attribute(model, x, 0, "expected_gradients", references=references, n_samples=4000, seed=0)
    with torch.no_grad():
        expected = model(x)[:, 0] - model(references)[:, 0].mean()
    torch.testing.assert_close(maps.sum(dim=1), expected, atol=0.05, rtol=0)


# --- steps="auto": nested trapezoid/Riemann doubling until the completeness gap is below the tolerance -------


class Quadratic(nn.Module):
    """``f(x) = x^T A x + b^T x`` (one output per sample); with a zero baseline IG_i = x_i ((A x)_i + b_i)."""

    def __init__(self, n: int, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        a = torch.randn(n, n, generator=generator, dtype=torch.float64)
        self.a = nn.Parameter((a + a.T) / 2)
        self.b = nn.Parameter(torch.randn(n, generator=generator, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x @ self.a) * x).sum(1) + x @ self.b

    def integrated_gradients(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return x * (x @ self.a + self.b)


class CountingModel(nn.Module):
    """Counts the points (rows) and calls that reach the wrapped model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.rows, self.calls = model, 0, 0

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        self.rows, self.calls = self.rows + x.shape[0], self.calls + 1
        return self.model(x, *args, **kwargs)


def relative_gap(model, x, target, maps, baseline=0.0):
    with torch.no_grad():
        base = torch.broadcast_to(torch.as_tensor(baseline, dtype=x.dtype), x.shape)
        delta = model(x)[:, target] - model(base)[:, target]
    return ((maps.flatten(1).sum(1) - delta).abs() / delta.abs())


def assert_equals_the_fixed_rule_at_the_chosen_steps(model, inputs, target, auto, steps, rule="trapezoid", **options):
    """Every sample's auto result is the fixed-steps result of the same rule at the steps it used."""
    for count in steps.unique().tolist():
        fixed = taylorlens.attribute(model, inputs, target, "integrated_gradients", steps=count, rule=rule, **options)
        chosen = steps == count
        for ours, theirs in zip(auto if isinstance(auto, tuple) else (auto,),
                                fixed if isinstance(fixed, tuple) else (fixed,), strict=True):
            torch.testing.assert_close(ours[chosen], theirs[chosen])


def test_ig_auto_is_exact_on_a_quadratic_with_the_trapezoid_at_its_first_level(make_inputs):
    model, x = Quadratic(6).eval(), make_inputs(4, 6)
    maps, info = taylorlens.attribute(model, x, None, "integrated_gradients", steps="auto", return_info=True)
    # steps="auto" uses the trapezoid unless a rule is given. The gradient is linear along the path: the
    # trapezoid rule is exact with its first 5 nodes.
    torch.testing.assert_close(maps, model.integrated_gradients(x))
    assert info.steps.tolist() == [5, 5, 5, 5] and info.converged.all() and (info.gap < 1e-12).all()
    assert info.points == 20 and info.points_by_pass == {"gradient": 20}


@pytest.mark.parametrize("tolerance", [1e-2, 1e-3])
def test_ig_auto_meets_the_tolerance_on_a_quadratic_with_the_riemann_sum(make_inputs, tolerance):
    model, x = Quadratic(6).eval(), make_inputs(4, 6)
    maps, info = taylorlens.attribute(model, x, None, "integrated_gradients", steps="auto", tolerance=tolerance,
                                      rule="riemann_right", max_steps=1 << 14, return_info=True)
    expected = model.integrated_gradients(x)
    with torch.no_grad():
        delta = model(x) - model(torch.zeros_like(x))
    gap = (maps.sum(1) - delta).abs() / delta.abs()
    assert (gap <= tolerance).all() and info.converged.all()
    torch.testing.assert_close(info.gap, gap)
    # The right Riemann sum errs by x^T A x / M here: steps double from 4 until that is below the tolerance.
    quadratic = (x @ model.a.detach() * x).sum(1)
    needed = (quadratic.abs() / (tolerance * delta.abs())).clamp(min=1)
    expected_steps = 2 ** torch.ceil(torch.log2(needed)).clamp(min=2)
    assert info.steps.tolist() == expected_steps.long().tolist()
    assert_equals_the_fixed_rule_at_the_chosen_steps(model, x, None, maps, info.steps, rule="riemann_right")
    assert (maps - expected).abs().max() <= tolerance * expected.abs().sum(1).max()


@pytest.mark.parametrize(
    ("rule", "tolerance"),
    [("trapezoid", 1e-2), ("trapezoid", 1e-3), ("riemann_right", 1e-2), ("riemann_left", 1e-2)],
)
def test_ig_auto_meets_the_tolerance_on_a_relu_mlp(make_mlp, make_inputs, rule, tolerance):
    model = make_mlp(nn.ReLU, sizes=(5, 16, 16, 3))
    x = make_inputs(6, 5)
    # Sample 3 has f(x) - f(0) = -0.008 against outputs of size 2-4: a gap relative to that needs thousands
    # of steps (the gradient jumps at every ReLU kink on the path, the error falls only as 1/M).
    x = x[[0, 1, 2, 4, 5]]
    maps, info = taylorlens.attribute(model, x, 1, "integrated_gradients", steps="auto", rule=rule,
                                      tolerance=tolerance, max_steps=1 << 14, return_info=True)
    gap = relative_gap(model, x, 1, maps)
    assert (gap <= tolerance).all() and info.converged.all()
    torch.testing.assert_close(info.gap, gap)
    assert_equals_the_fixed_rule_at_the_chosen_steps(model, x, 1, maps, info.steps, rule=rule)


def test_ig_auto_meets_the_tolerance_on_a_softplus_cnn(make_cnn, make_inputs):
    model, x = make_cnn(nn.Softplus, pool="avg"), make_inputs(5, 2, 6, 6)
    baseline = make_inputs(5, 2, 6, 6, seed=7)
    for tolerance in (1e-2, 1e-3, 1e-5):
        maps, info = taylorlens.attribute(model, x, 2, "integrated_gradients", baseline=baseline, steps="auto",
                                          rule="trapezoid", tolerance=tolerance, return_info=True)
        gap = relative_gap(model, x, 2, maps, baseline)
        assert (gap <= tolerance).all() and info.converged.all()
        assert_equals_the_fixed_rule_at_the_chosen_steps(model, x, 2, maps, info.steps, baseline=baseline)
    # Smooth path: the trapezoid error falls as 1/M^2, so even 1e-5 stays within the paper's 300 steps.
    assert info.steps.max() <= 257


def test_ig_auto_reuses_every_evaluation_and_gives_more_steps_to_unconverged_samples_only(make_mlp, make_inputs):
    model = CountingModel(make_mlp(nn.ReLU, sizes=(5, 16, 16, 3)))
    x = make_inputs(6, 5)
    maps, info = taylorlens.attribute(model, x, 1, "integrated_gradients", steps="auto", rule="trapezoid",
                                      tolerance=1e-3, batch_size=16, return_info=True)
    steps = info.steps
    assert steps.unique().numel() > 1  # the samples needed different steps
    # Each sample's model evaluations are its final nodes: nothing evaluated twice, and no extra pass for
    # f(x) and f(z) (the trapezoid's end nodes).
    assert model.rows == int(steps.sum()) == info.points == info.points_by_pass["gradient"]
    assert info.points_per_sample.tolist() == steps.tolist()
    assert info.measuring_points == 0 and info.model_calls == model.calls
    # Without reuse, levels 5, 9, 17, ... would each be evaluated afresh.
    fresh = sum(sum(4 * 2**level + 1 for level in range(int(torch.log2(torch.tensor(s - 1.0))) - 1)) for s in steps)
    assert model.rows < fresh


def test_ig_auto_riemann_needs_one_forward_pass_at_each_baseline(make_mlp, make_inputs):
    model = CountingModel(make_mlp(nn.Softplus))
    x = make_inputs(3, 5)
    _, info = taylorlens.attribute(model, x, 0, "integrated_gradients", steps="auto", rule="riemann_right",
                                   batch_size=64, return_info=True)
    assert info.points_by_pass == {"gradient": int(info.steps.sum()), "forward": 3}
    assert model.rows == info.points


def test_ig_auto_stops_at_max_steps_and_warns(make_mlp, make_inputs):
    model, x = make_mlp(nn.ReLU, sizes=(5, 16, 16, 3)), make_inputs(4, 5)
    with pytest.warns(UserWarning, match="did not reach tolerance"):
        maps, info = taylorlens.attribute(model, x, 1, "integrated_gradients", steps="auto", rule="trapezoid",
                                          tolerance=1e-12, max_steps=20, return_info=True)
    assert info.steps.tolist() == [17] * 4 and not info.converged.any()
    torch.testing.assert_close(info.gap, relative_gap(model, x, 1, maps))
    with pytest.warns(UserWarning):
        _, info = taylorlens.attribute(model, x, 1, "integrated_gradients", steps="auto", rule="trapezoid",
                                       tolerance=1e-12, max_steps=2, return_info=True)
    assert info.steps.tolist() == [2] * 4


def test_ig_auto_averages_noise_baselines_and_meets_the_tolerance(make_cnn, make_inputs):
    model, x = make_cnn(nn.Softplus), make_inputs(3, 2, 6, 6)
    options = {"baseline": "uniform", "n_baselines": 4, "seed": 5}
    maps, info = taylorlens.attribute(model, x, 0, "integrated_gradients", steps="auto", rule="trapezoid",
                                      tolerance=1e-4, return_info=True, **options)
    assert info.converged.all()
    assert_equals_the_fixed_rule_at_the_chosen_steps(model, x, 0, maps, info.steps, **options)


class TwoInputsWithMask(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.image = nn.Conv2d(1, 2, 3)
        self.table = nn.Linear(3, 4)
        self.out = nn.Linear(2 * 16 + 4, 3)

    def forward(self, image: torch.Tensor, table: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        features = nn.functional.softplus(self.image(image)).flatten(1)
        return self.out(torch.cat([features, torch.tanh(self.table(table)) * mask], dim=1))


def test_ig_auto_goes_through_tuple_inputs_forward_kwargs_and_several_targets(make_inputs):
    model = TwoInputsWithMask().double().eval()
    image, table = make_inputs(3, 1, 6, 6), make_inputs(3, 3, seed=2)
    mask = torch.tensor([[1.0, 0, 1, 1], [1, 1, 1, 1], [0, 1, 0, 1]], dtype=torch.float64)
    targets = torch.tensor([[0, 2], [1, 1], [2, 0]])
    options = {"forward_kwargs": {"mask": mask}}
    maps, info = taylorlens.attribute(model, (image, table), targets, "integrated_gradients", steps="auto",
                                      tolerance=1e-3, return_info=True, **options)
    assert maps[0].shape == (3, 2, 1, 6, 6) and maps[1].shape == (3, 2, 3)
    assert info.steps.shape == (3, 2) and info.gap.shape == (3, 2) and info.converged.all()
    with torch.no_grad():
        outputs = model(image, table, mask).gather(1, targets)
        zero = model(torch.zeros_like(image), torch.zeros_like(table), mask).gather(1, targets)
    total = maps[0].flatten(2).sum(2) + maps[1].sum(2)
    assert (((total - (outputs - zero)).abs() / (outputs - zero).abs()) <= 1e-3).all()
    assert_equals_the_fixed_rule_at_the_chosen_steps(model, (image, table), targets, maps, info.steps, **options)


def test_ig_auto_explains_a_layer(make_inputs):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(20, 4), nn.Flatten(), nn.Linear(20, 8), nn.GELU(), nn.Linear(8, 2))
    model = model.double().eval()
    ids = torch.randint(0, 20, (4, 5), generator=torch.Generator().manual_seed(1))
    maps, info = taylorlens.attribute(model, ids, 1, "integrated_gradients", steps="auto", rule="trapezoid",
                                      tolerance=1e-3, layer="0", return_info=True)
    assert maps.shape == (4, 5, 4) and info.converged.all()
    with torch.no_grad():
        delta = model(ids)[:, 1] - model[2:](torch.zeros(4, 20, dtype=torch.float64))[:, 1]
    assert (((maps.flatten(1).sum(1) - delta).abs() / delta.abs()) <= 1e-3).all()
    # The layer's value is read once per sample before the path: one forward point each.
    assert info.points_by_pass["forward"] == 4
    assert_equals_the_fixed_rule_at_the_chosen_steps(model, ids, 1, maps, info.steps, layer="0")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tolerance": 0}, "tolerance must be a finite number > 0"),
        ({"tolerance": -1e-3}, "tolerance must be a finite number > 0"),
        ({"tolerance": "small"}, "tolerance must be a finite number > 0"),
        ({"max_steps": 1}, "max_steps must be an integer >= 2"),
        ({"max_steps": 10.5}, "max_steps must be an integer >= 2"),
        ({"rule": "gauss_legendre"}, "steps='auto' needs a nested rule"),
        ({"rule": "riemann_middle"}, "steps='auto' needs a nested rule"),
    ],
)
def test_ig_auto_refuses_bad_options_with_clear_errors(make_mlp, make_inputs, options, message):
    with pytest.raises(taylorlens.AttributionInputError, match=message):
        taylorlens.attribute(make_mlp(), make_inputs(2, 5), 0, "integrated_gradients", steps="auto", **options)


def test_ig_refuses_steps_that_are_neither_a_count_nor_auto(make_mlp, make_inputs):
    with pytest.raises(taylorlens.AttributionInputError, match="steps must be a positive integer or 'auto'"):
        taylorlens.attribute(make_mlp(), make_inputs(2, 5), 0, "integrated_gradients", steps="adaptive")
