"""The scaling path of the IG paper (Sec. 2.1): outputs at alpha * x, against closed forms."""

import torch

from taylorlens.metrics import scaling_path


def test_scaling_path_of_a_linear_model_is_linear_in_alpha_and_its_softmax_matches():
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3).double().eval()
    x = torch.randn(4, 5, dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 1])
    path = scaling_path(model, x, target, alphas=[0.0, 0.25, 1.0], batch_size=5)
    with torch.no_grad():
        for k, alpha in enumerate([0.0, 0.25, 1.0]):
            logits = model(alpha * x)
            torch.testing.assert_close(path.scores[:, k], logits.gather(1, target[:, None])[:, 0])
            probabilities = logits.softmax(1).gather(1, target[:, None])[:, 0]
            torch.testing.assert_close(path.probabilities[:, k], probabilities)


def test_scaling_path_from_a_baseline_ends_at_the_input_and_starts_at_the_baseline():
    model = lambda x: x.sum(1) ** 2  # noqa: E731  (B,) outputs: no softmax
    x, baseline = torch.ones(2, 3, dtype=torch.float64), torch.full((3,), 2.0, dtype=torch.float64)
    path = scaling_path(model, x, None, baseline=baseline)
    assert path.probabilities is None
    torch.testing.assert_close(path.scores[:, 0], torch.full((2,), 36.0, dtype=torch.float64))
    torch.testing.assert_close(path.scores[:, -1], torch.full((2,), 9.0, dtype=torch.float64))
