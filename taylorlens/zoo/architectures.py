"""The papers' small architectures, as plain ``nn.Module``s with one module per layer and per nonlinearity.

Every nonlinearity is its own module instance (``nn.ReLU``, ``nn.Tanh``, ``nn.Sigmoid``, ``nn.Softplus``,
never shared, never in-place), so modified-gradient methods (DeepLIFT, eps-LRP, guided backprop) can hook
each one; pooling is ``nn.MaxPool2d`` where the papers pool.

- Ancona et al., "Towards better understanding of gradient-based attribution methods for DNNs" (ICLR 2018),
  Appendix C: ``AnconaMLP`` (C.1 MNIST MLP), ``AnconaCNN`` (C.1 MNIST CNN), ``AnconaCifarCNN`` (C.2); the
  IMDB models (C.4) are in ``taylorlens.zoo.text``.
- Deng et al., "A Unified Taylor Framework for Revisiting Attribution Methods" (AAAI 2021), Section
  "Experiments": ``QuadraticModel`` (Poly), ``TaylorMLP`` (M-sg), ``TaylorCNN`` (C-sg with sigmoid, C-sp with
  softplus). That paper names the models but gives no widths; the widths below are ours.
"""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "softplus": nn.Softplus,
}


def make_activation(name: str) -> nn.Module:
    """A fresh nonlinearity module by name: one of ``ACTIVATIONS`` (relu, tanh, sigmoid, softplus)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]()


class AnconaMLP(nn.Module):
    """Ancona et al. App. C.1 "MNIST MLP": Dense+act (512), Dense+act (512), Dense (n_classes).

    Input (N, C, H, W) is flattened; ``in_features = C * H * W`` (64 for 8x8 digits, 784 for 28x28).
    """

    def __init__(self, in_features: int, activation: str, n_classes: int = 10, hidden: int = 512):
        super().__init__()
        self.flatten = nn.Flatten()
        self.dense1 = nn.Linear(in_features, hidden)
        self.activation1 = make_activation(activation)
        self.dense2 = nn.Linear(hidden, hidden)
        self.activation2 = make_activation(activation)
        self.logits = nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.activation1(self.dense1(self.flatten(x)))
        h = self.activation2(self.dense2(h))
        return self.logits(h)


class AnconaCNN(nn.Module):
    """Ancona et al. App. C.1 "MNIST CNN": Conv+act (3x3, 32), Conv+act (3x3, 64), MaxPool (2x2),
    Dense+act (128), Dense (n_classes).

    ``padding=0`` is the paper's (Keras "valid") layout for 28x28 input: 28 -> 26 -> 24 -> 12, so the dense
    layer sees 64*12*12 features. On 8x8 digits "valid" convolutions would leave 2x2 maps, so the digit
    variant uses ``padding=1``: 8 -> 8 -> 8 -> 4, i.e. 64*4*4 features.
    """

    def __init__(self, in_channels: int, image_size: int, activation: str, padding: int, n_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, 3, padding=padding)
        self.activation1 = make_activation(activation)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=padding)
        self.activation2 = make_activation(activation)
        self.pool = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        pooled = (image_size + 4 * padding - 4) // 2
        self.dense = nn.Linear(64 * pooled * pooled, 128)
        self.activation3 = make_activation(activation)
        self.logits = nn.Linear(128, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.activation1(self.conv1(x))
        h = self.pool(self.activation2(self.conv2(h)))
        h = self.activation3(self.dense(self.flatten(h)))
        return self.logits(h)


class AnconaCifarCNN(nn.Module):
    """Ancona et al. App. C.2 "CIFAR-10 CNN" (ReLU) for (N, 3, 32, 32) input in [-1, 1]:
    Conv (3x3, 32), Conv (3x3, 32), MaxPool, Dropout 0.25, Conv (3x3, 64), Conv (3x3, 64), MaxPool,
    Dropout 0.25, Dense (256), Dropout 0.5, Dense (10).

    The first convolution of each pair pads ("same"), the second does not ("valid"), as in the Keras CIFAR-10
    example the paper's layer list matches: 32 -> 32 -> 30 -> 15 -> 15 -> 13 -> 6.
    """

    def __init__(self, n_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
        self.activation1 = nn.ReLU()
        self.conv2 = nn.Conv2d(32, 32, 3)
        self.activation2 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.dropout1 = nn.Dropout(0.25)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.activation3 = nn.ReLU()
        self.conv4 = nn.Conv2d(64, 64, 3)
        self.activation4 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.dropout2 = nn.Dropout(0.25)
        self.flatten = nn.Flatten()
        self.dense = nn.Linear(64 * 6 * 6, 256)
        self.activation5 = nn.ReLU()
        self.dropout3 = nn.Dropout(0.5)
        self.logits = nn.Linear(256, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.activation2(self.conv2(self.activation1(self.conv1(x))))
        h = self.dropout1(self.pool1(h))
        h = self.activation4(self.conv4(self.activation3(self.conv3(h))))
        h = self.dropout2(self.pool2(h))
        h = self.dropout3(self.activation5(self.dense(self.flatten(h))))
        return self.logits(h)


class QuadraticModel(nn.Module):
    """Deng et al. (AAAI 2021) "Poly", a second-order polynomial model, with a low-rank quadratic term:

        logit_c(x) = b_c + a_c^T x + 1/2 x^T Q_c x,   Q_c = U^T diag(s_c) U,

    with ``U = projection.weight`` (rank x d) shared by all classes and ``s_c = curvature[c]``. Its Taylor
    expansion around any point is exact at second order: gradient ``a_c + Q_c x`` and Hessian ``Q_c``
    (``hessian(c)``), which makes it the closed-form test model for second-order attribution.
    """

    def __init__(self, in_features: int, n_classes: int = 10, rank: int = 16):
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear = nn.Linear(in_features, n_classes)
        self.projection = nn.Linear(in_features, rank, bias=False)
        self.curvature = nn.Parameter(torch.randn(n_classes, rank) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = self.flatten(x)
        return self.linear(flat) + 0.5 * self.projection(flat).square() @ self.curvature.T

    def hessian(self, class_index: int) -> torch.Tensor:
        """Q_c = U^T diag(s_c) U, the (d, d) Hessian of logit ``class_index`` w.r.t. the flattened input."""
        u = self.projection.weight
        return u.T @ (self.curvature[class_index, :, None] * u)


class TaylorMLP(nn.Module):
    """Deng et al. (AAAI 2021) "M-sg": a three-layer MLP with sigmoid activations,
    Dense+sigmoid (256), Dense+sigmoid (128), Dense (n_classes) (widths ours; the paper gives none).
    """

    def __init__(self, in_features: int, n_classes: int = 10, activation: str = "sigmoid"):
        super().__init__()
        self.flatten = nn.Flatten()
        self.dense1 = nn.Linear(in_features, 256)
        self.activation1 = make_activation(activation)
        self.dense2 = nn.Linear(256, 128)
        self.activation2 = make_activation(activation)
        self.logits = nn.Linear(128, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.activation1(self.dense1(self.flatten(x)))
        return self.logits(self.activation2(self.dense2(h)))


class TaylorCNN(nn.Module):
    """Deng et al. (AAAI 2021) "C-sg" (sigmoid) and "C-sp" (softplus): a three-layer CNN,
    Conv+act (3x3, 16, pad 1), MaxPool (2x2), Conv+act (3x3, 32, pad 1), MaxPool (2x2), Dense (n_classes)
    (widths ours; the paper gives none). 8x8 input -> 2x2 maps, 28x28 -> 7x7.
    """

    def __init__(self, in_channels: int, image_size: int, activation: str, n_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1)
        self.activation1 = make_activation(activation)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.activation2 = make_activation(activation)
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.logits = nn.Linear(32 * (image_size // 4) ** 2, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool1(self.activation1(self.conv1(x)))
        h = self.pool2(self.activation2(self.conv2(h)))
        return self.logits(self.flatten(h))
