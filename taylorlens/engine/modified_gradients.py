"""Modified gradients: swap the gradient of every elementwise nonlinearity during one forward pass.

Ancona et al. (ICLR 2018), Sec. 3, Eq. 5: in the chain rule through a network, replace the derivative
``f'(z)`` of each nonlinearity by a function ``g(z)``; linear layers, convolutions, pooling and
multiplicative units keep their ordinary gradients. With

* ``g = (f(z) - f(z_ref)) / (z - z_ref)`` the input-times-gradient product is DeepLIFT (Rescale),
  Proposition 2 (:class:`RescaleRule`);
* ``g = f(z) / (z + epsilon * sign(z))`` it is epsilon-LRP, Proposition 1 (:class:`EpsilonRule`; the
  stabiliser sits where Eq. 2 of the paper puts it, on the pre-activation ``z`` of each unit);
* the ReLU gradient passed only where the incoming gradient is positive it is guided backpropagation
  (Springenberg et al. 2015) and deconvnet (Zeiler & Fergus 2014) (:class:`GuidedReLURule`,
  :class:`DeconvReLURule`).

One object (a rule) decides which gradient each nonlinearity gets; one context
(:func:`modified_gradients`) applies it, through a ``TorchFunctionMode``, so it sees modules
(``nn.ReLU``, ``nn.Tanh``, ``nn.Sigmoid``, ``nn.Softplus``, ``nn.ELU``, ``nn.ReLU6``, ``nn.GELU``, ...) and
functional calls (``F.relu``, ``torch.sigmoid``, ``x.tanh()``) alike, a module used twice, and leaves
nothing behind when the ``with`` block ends. Covered elementwise nonlinearities are listed in
:data:`ELEMENTWISE`. Operations whose gradient cannot be modified this way (softmax, normalisation layers,
fused recurrent cells, in-place activations such as ``x.relu_()``) raise
:class:`UnsupportedModelError` instead of silently giving the plain gradient.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

#: Elementwise nonlinearities whose gradient a rule replaces (matched by the called function's name).
ELEMENTWISE = frozenset(
    {
        "relu", "relu6", "leaky_relu", "rrelu", "elu", "selu", "celu", "gelu", "silu", "mish",
        "sigmoid", "tanh", "softplus", "softsign", "hardtanh", "hardsigmoid", "hardswish",
        "logsigmoid", "tanhshrink", "softshrink", "hardshrink", "threshold", "clamp", "clip", "expit",
        # elementwise functions used as nonlinearities inside models (x ** 2, torch.exp, ...)
        "exp", "expm1", "exp2", "log", "log1p", "log2", "log10", "sqrt", "rsqrt", "abs", "square", "reciprocal",
        "sin", "cos", "tan", "sinh", "cosh", "asinh", "atan", "arctan", "erf", "erfc", "pow", "__pow__",
        "__rpow__", "float_power",
    }
)
#: Elementwise functions of two arguments: handled when the second is a constant, refused when it is a tensor.
BINARY = frozenset({"pow", "__pow__", "__rpow__", "float_power"})
#: ReLU-type nonlinearities: the only ones guided backprop and deconvnet are defined for.
RELU_LIKE = frozenset({"relu", "relu6", "hardtanh", "clamp", "clip", "threshold"})
#: Operations that are nonlinear but not elementwise: no modified gradient exists for them.
UNSUPPORTED = frozenset(
    {
        "softmax", "log_softmax", "softmin", "gumbel_softmax", "layer_norm", "group_norm",
        "instance_norm", "local_response_norm", "normalize", "lstm", "gru", "rnn_tanh", "rnn_relu",
        "lstm_cell", "gru_cell", "rnn_tanh_cell", "rnn_relu_cell", "scaled_dot_product_attention",
    }
)


class UnsupportedModelError(RuntimeError):
    """The model uses an operation a modified-gradient method cannot handle."""


class Rule:
    """Decides the gradient of each elementwise nonlinearity ``out = f(z)``.

    ``replace`` returns a tensor equal to ``out`` whose gradient with respect to ``z`` is the rule's.
    ``needs_reference``: the batch is ``[points; references]`` and ``replace`` gets the split index.
    """

    name = "rule"
    needs_reference = False
    supported: frozenset[str] = ELEMENTWISE

    def replace(self, f: Callable[[Tensor], Tensor], z: Tensor, out: Tensor, n: int) -> Tensor:
        raise NotImplementedError


class _MultipliedGradient(torch.autograd.Function):
    """Identity on ``out`` whose backward to ``z`` multiplies the incoming gradient by ``multiplier``."""

    @staticmethod
    def forward(ctx: Any, z: Tensor, out: Tensor, multiplier: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(multiplier)
        return out.view_as(out)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        (multiplier,) = ctx.saved_tensors
        return grad_out * multiplier, None, None


def with_multiplier(z: Tensor, out: Tensor, multiplier: Tensor) -> Tensor:
    """``out`` in value, ``multiplier * dz`` in gradient (the modified chain rule of Eq. 5)."""
    return _MultipliedGradient.apply(z, out.detach(), multiplier.detach())


def derivative(f: Callable[[Tensor], Tensor], z: Tensor) -> Tensor:
    """The ordinary elementwise derivative ``f'(z)``."""
    with torch.enable_grad():
        point = z.detach().requires_grad_(True)
        (slope,) = torch.autograd.grad(f(point).sum(), point)
    return slope


class RescaleRule(Rule):
    """DeepLIFT Rescale (Ancona et al., Prop. 2): ``g = (f(z) - f(z_ref)) / (z - z_ref)``.

    Where ``|z - z_ref|`` is below ``sqrt(machine eps) * max(1, |z|)`` the ratio is replaced by its limit,
    the derivative at the midpoint (second-order accurate), so no division by a vanishing denominator occurs.
    """

    name = "rescale"
    needs_reference = True

    def replace(self, f: Callable[[Tensor], Tensor], z: Tensor, out: Tensor, n: int) -> Tensor:
        if z.shape[0] != 2 * n:
            raise UnsupportedModelError(
                "deeplift needs each nonlinearity to see the whole batch (points and references along "
                f"dimension 0); a nonlinearity received a tensor of shape {tuple(z.shape)}"
            )
        z_x, z_ref = z[:n].detach(), z[n:].detach()
        delta = z_x - z_ref
        tol = torch.finfo(z.dtype).eps ** 0.5 * torch.clamp(z_x.abs(), min=1.0)
        small = delta.abs() <= tol
        if bool(small.any()):
            ratio = (out[:n] - out[n:]) / torch.where(small, torch.ones_like(delta), delta)
            multiplier = torch.where(small, derivative(f, (z_x + z_ref) / 2), ratio)
        else:
            multiplier = (out[:n] - out[n:]) / delta
        return with_multiplier(z, out, torch.cat([multiplier, multiplier]))


class EpsilonRule(Rule):
    """epsilon-LRP (Ancona et al., Prop. 1): ``g = f(z) / (z + epsilon * sign(z))``, ``sign(0) = 1``."""

    name = "epsilon"

    def __init__(self, epsilon: float) -> None:
        self.epsilon = epsilon

    def replace(self, f: Callable[[Tensor], Tensor], z: Tensor, out: Tensor, n: int) -> Tensor:
        zd = z.detach()
        denominator = zd + self.epsilon * (2 * (zd >= 0).to(zd.dtype) - 1)
        zero = denominator == 0
        if bool(zero.any()):
            multiplier = torch.where(zero, derivative(f, zd), out / torch.where(zero, torch.ones_like(zd), denominator))
        else:
            multiplier = out / denominator
        return with_multiplier(z, out, multiplier)


class _PositiveBackward(torch.autograd.Function):
    """ReLU gradient that passes only positive incoming gradients (optionally ignoring the ReLU's mask)."""

    @staticmethod
    def forward(ctx: Any, z: Tensor, out: Tensor, gate: Tensor | None) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(gate if gate is not None else torch.empty(0))
        ctx.gated = gate is not None
        return out.clone()

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, None, None]:  # type: ignore[override]
        (gate,) = ctx.saved_tensors
        grad = grad_out.clamp(min=0)
        return (grad * gate if ctx.gated else grad), None, None


class GuidedReLURule(Rule):
    """Guided backpropagation: ``grad_in = relu'(z) * max(grad_out, 0)`` at each ReLU-type unit."""

    name = "guided"
    supported = RELU_LIKE

    def replace(self, f: Callable[[Tensor], Tensor], z: Tensor, out: Tensor, n: int) -> Tensor:
        return _PositiveBackward.apply(z, out.detach(), derivative(f, z))


class DeconvReLURule(Rule):
    """Deconvnet: ``grad_in = max(grad_out, 0)`` at each ReLU-type unit, whatever the unit's input."""

    name = "deconv"
    supported = RELU_LIKE

    def replace(self, f: Callable[[Tensor], Tensor], z: Tensor, out: Tensor, n: int) -> Tensor:
        return _PositiveBackward.apply(z, out.detach(), None)


class _SwapNonlinearityGradients(TorchFunctionMode):
    def __init__(self, rule: Rule, n_points: int) -> None:
        super().__init__()
        self.rule, self.n_points = rule, n_points

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in UNSUPPORTED or (name.endswith("_") and name[:-1] in ELEMENTWISE):
            raise UnsupportedModelError(_unsupported_message(self.rule, name))
        if name not in ELEMENTWISE or not args or not isinstance(args[0], Tensor) or not args[0].requires_grad:
            return func(*args, **kwargs)  # linear ops, and nonlinearities of constants (no path to the inputs)
        if name in BINARY and len(args) > 1 and isinstance(args[1], Tensor) and args[1].requires_grad:
            raise UnsupportedModelError(
                f"the model calls {name} with a tensor exponent that depends on the inputs: the {self.rule.name} "
                "rule only modifies elementwise functions of one input-dependent tensor"
            )
        if name not in self.rule.supported:
            raise UnsupportedModelError(
                f"{self.rule.name} rule is defined only for ReLU-type nonlinearities "
                f"({', '.join(sorted(self.rule.supported))}); the model calls {name}"
            )
        args, kwargs = _out_of_place(func, args, kwargs)
        z, rest = args[0], args[1:]

        def f(t: Tensor) -> Tensor:
            return func(t, *rest, **kwargs)

        if not z.is_floating_point():
            return f(z)
        with torch.no_grad():  # the value only: the rule decides the gradient
            out = f(z)
        return self.rule.replace(f, z, out, self.n_points)


def _out_of_place(func: Callable, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Rewrite ``F.relu(x, inplace=True)``-style calls so the activation returns a new tensor."""
    try:
        bound = inspect.signature(func).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return args, kwargs
    if bound.arguments.get("inplace"):
        bound.arguments["inplace"] = False
    return bound.args, bound.kwargs


def _unsupported_message(rule: Rule, name: str) -> str:
    if name.endswith("_"):
        return (
            f"the model calls the in-place activation {name}(); modified-gradient methods ({rule.name} rule) "
            f"need the out-of-place form ({name[:-1]}() or the nn module)"
        )
    return (
        f"the model calls {name}, a nonlinearity that is not elementwise: the {rule.name} rule of the "
        "modified-gradient methods (deeplift, epsilon_lrp, guided_backprop, deconvnet) cannot handle it. "
        "Explain the logits before a softmax, or use a gradient or path method (integrated_gradients)"
    )


@contextmanager
def modified_gradients(rule: Rule | None, n_points: int) -> Iterator[None]:
    """Apply ``rule`` to every elementwise nonlinearity of the forward passes inside the block.

    ``n_points`` is the number of points at the start of the batch; when ``rule.needs_reference`` the batch
    continues with one reference per point. ``rule=None`` leaves every gradient ordinary.
    """
    if rule is None:
        yield
        return
    with _SwapNonlinearityGradients(rule, n_points):
        yield
