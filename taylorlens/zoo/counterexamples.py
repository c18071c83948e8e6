"""The papers' two-input toy networks that separate attribution methods (closed forms, axiom checks).

Each maps ``(B, 2)`` (or ``(B, 1)``) to ``(B,)`` outputs, so explain them with ``target=None``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class Counterexample(nn.Module):
    """A parameter-free toy network: created in eval mode (nothing in it depends on the mode)."""

    def __init__(self) -> None:
        super().__init__()
        self.eval()


class SaturatedReLU(Counterexample):
    """IG paper (Sundararajan et al.), Sec. 2-3: ``f(x) = 1 - ReLU(1 - x)``, flat for ``x >= 1``.

    At ``x = 2`` with baseline 0 the gradient is 0 while the output changed by 1: gradients break
    Sensitivity(a), Integrated Gradients gives 1.
    """

    def forward(self, x: Tensor) -> Tensor:
        return 1 - F.relu(1 - x[:, 0])


class AppendixBF(Counterexample):
    """IG paper, Appendix B / Fig. 14: ``f(x1, x2) = ReLU(ReLU(x1) - 1 - ReLU(x2))``.

    Functionally equal to :class:`AppendixBG`; at (3, 1) with a zero baseline IG gives (1.5, -0.5) for both,
    DeepLIFT (1.5, -0.5) here and (2, -1) there: DeepLIFT breaks implementation invariance.
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(F.relu(x[:, 0]) - 1 - F.relu(x[:, 1]))


class AppendixBG(Counterexample):
    """IG paper, Appendix B / Fig. 14: ``g(x1, x2) = ReLU(ReLU(x1 - 1) - ReLU(x2))``, equal to ``f``."""

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(F.relu(x[:, 0] - 1) - F.relu(x[:, 1]))


class ReluProduct(Counterexample):
    """Ancona et al. (ICLR 2018), Sec. 3.1: ``h(x1, x2) = ReLU(x1 - 1) * ReLU(x2)``, a multiplicative unit.

    DeepLIFT (Rescale) misses completeness here while Integrated Gradients keeps it.
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x[:, 0] - 1) * F.relu(x[:, 1])
