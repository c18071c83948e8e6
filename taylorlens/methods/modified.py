"""Modified-gradient methods: DeepLIFT (Rescale), epsilon-LRP, guided backprop, deconvnet.

Ancona et al. (ICLR 2018), Sec. 3 and Propositions 1-2: both DeepLIFT (Rescale) and epsilon-LRP are the
feature-wise product of an input difference and a *modified* gradient, in which the derivative of each
nonlinearity is replaced by a ratio (see :mod:`taylorlens.engine.modified_gradients` for the rules and the
operations they cover). Linear layers, convolutions, pooling and (by default) multiplicative units keep
their ordinary gradients; ``products="symmetric"`` extends DeepLIFT and epsilon-LRP to transformers and
recurrent layers. A model containing an operation the rules cannot handle raises ``UnsupportedModelError``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from taylorlens.engine import (
    DeconvReLURule,
    EpsilonRule,
    GuidedReLURule,
    Request,
    RescaleRule,
    inputs_points,
)
from taylorlens.engine.checks import check_nonnegative
from taylorlens.methods.base import Method
from taylorlens.methods.registry import register


@register
class DeepLift(Method):
    """DeepLIFT Rescale as a modified gradient: ``(x - x_ref) * d^g f / dx``, ``g = Δf(z)/Δz`` (Prop. 2).

    ``baseline`` (0.0): the reference input, a number or a tensor broadcastable to the inputs. Reference
    activations are those of the network at the baseline; points and references share one batched pass.

    ``products`` ("gradient"): the papers' DeepLIFT, products of activations keep their ordinary gradient
    and softmax, normalisations, attention and recurrent layers are refused. ``"symmetric"``: each product
    splits its difference symmetrically, ``Δ(ab) = ((b + b_ref)/2) Δa + ((a + a_ref)/2) Δb``, and those
    operations are recomputed from products and elementwise functions, so the attributions sum exactly to
    ``f(x) - f(baseline)`` on transformers, gated units and LSTMs; use it for them.
    """

    name = "deeplift"
    # Deng et al. 2021, Table 2: high-order terms kept (Theorem 4), shared by weight not by feature.
    principles = {"low_approximation_error": "full", "correct_assignment": "no", "unbiased_baseline": "no"}
    options = {"baseline": 0.0, "products": "gradient"}

    def compute(self, request: Request, baseline: Any, products: str) -> Tensor:
        x = request.inputs
        reference = request.broadcast(baseline)
        grads, _ = request.gradients(inputs_points(x, reference), RescaleRule(products))
        return (x - reference) * grads[:, 0]


@register
class EpsilonLRP(Method):
    """epsilon-LRP as a modified gradient: ``x * d^g f / dx``, ``g = f(z) / (z + eps sign z)`` (Prop. 1).

    ``epsilon`` (1e-9, the stabiliser of Eq. 2 of Ancona et al.). On ReLU networks it equals
    Gradient*Input (Prop. 3 i). ``products`` ("gradient"): as for DeepLIFT; ``"symmetric"`` applies
    AttnLRP's rules (Achtibat et al., ICML 2024) for transformers and LSTMs: the uniform rule for products
    of activations (half the relevance to each factor), the LN-rule for normalisations and the softmax rule.
    """

    name = "epsilon_lrp"
    # Deng et al. 2021, Table 2 (with DeepLIFT): first principle only.
    principles = {"low_approximation_error": "full", "correct_assignment": "no", "unbiased_baseline": "no"}
    options = {"epsilon": 1e-9, "products": "gradient"}

    def compute(self, request: Request, epsilon: float, products: str) -> Tensor:
        rule = EpsilonRule(check_nonnegative("epsilon", epsilon), products)
        grads, _ = request.gradients(inputs_points(request.inputs), rule)
        return request.inputs * grads[:, 0]


@register
class GuidedBackprop(Method):
    """Guided backpropagation (Springenberg et al. 2015): ReLUs pass only positive gradients where active.

    Defined for ReLU-type networks only. It fails the IG paper's sensitivity and implementation-invariance
    checks, which is why taylorlens keeps it: as a counterexample in the axiom checks. ``non_relu``
    ("refuse"): other nonlinearities raise; ``"gradient"``: every other operation (tanh, GELU, softmax,
    normalisations, attention, LSTMs) keeps its ordinary gradient, so transformers and LSTMs go through.
    """

    name = "guided_backprop"
    # Not reformulable in the Taylor framework (Deng et al. 2021): it recovers the input.
    principles = {"low_approximation_error": "no", "correct_assignment": "no", "unbiased_baseline": "no"}
    options = {"non_relu": "refuse"}

    def compute(self, request: Request, non_relu: str) -> Tensor:
        grads, _ = request.gradients(inputs_points(request.inputs), GuidedReLURule(non_relu))
        return grads[:, 0]


@register
class Deconvnet(Method):
    """Deconvnet (Zeiler & Fergus 2014): ReLUs pass positive gradients whatever their input.

    ReLU nets only unless ``non_relu="gradient"`` (as for guided backprop).
    """

    name = "deconvnet"
    # Not reformulable in the Taylor framework (Deng et al. 2021): it recovers the input.
    principles = {"low_approximation_error": "no", "correct_assignment": "no", "unbiased_baseline": "no"}
    options = {"non_relu": "refuse"}

    def compute(self, request: Request, non_relu: str) -> Tensor:
        grads, _ = request.gradients(inputs_points(request.inputs), DeconvReLURule(non_relu))
        return grads[:, 0]
