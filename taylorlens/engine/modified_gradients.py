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

One object (a rule, or a :class:`RuleSelector` naming a rule per nonlinearity) decides which gradient each
nonlinearity gets; one context (:func:`modified_gradients`) applies it, through a ``TorchFunctionMode``,
so it sees modules (``nn.ReLU``, ``nn.Tanh``, ``nn.Sigmoid``, ``nn.Softplus``, ``nn.ELU``, ``nn.ReLU6``,
``nn.GELU``, ...) and functional calls (``F.relu``, ``torch.sigmoid``, ``x.tanh()``) alike, a module used
twice, and leaves nothing behind when the ``with`` block ends. Covered elementwise nonlinearities are
listed in :data:`ELEMENTWISE`. Operations whose gradient cannot be modified this way (softmax,
normalisation layers, fused recurrent cells, in-place activations such as ``x.relu_()``) raise
:class:`UnsupportedModelError` instead of silently giving the plain gradient.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from taylorlens.engine.checks import AttributionInputError, check_choice
from taylorlens.engine.decompositions import DECOMPOSITIONS
from taylorlens.engine.lstm_pass import lstm_values, modified_lstm_layer
from taylorlens.engine.recurrent import RECURRENT, lstm_step, unrolled
from taylorlens.engine.reference_tape import ReferenceTape

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


#: Products of two activations (bilinear in their two tensor arguments) split by ``products="symmetric"``.
PRODUCTS = frozenset({"mul", "multiply", "__mul__", "__rmul__", "matmul", "__matmul__", "bmm"})
#: Quotients of two activations: ``a * reciprocal(b)``, a product and an elementwise function.
QUOTIENTS = frozenset({"div", "divide", "true_divide", "__truediv__"})
#: Refused by ``products="symmetric"`` when two of their tensor arguments depend on the inputs: they are
#: not split into products, so they would silently break summation-to-delta.
UNSPLIT_PRODUCTS = frozenset(
    {
        "einsum", "mm", "mv", "dot", "vdot", "inner", "outer", "kron", "tensordot", "addmm", "addmv", "addbmm",
        "baddbmm", "addr", "addcmul", "addcdiv", "bilinear", "maximum", "minimum", "fmax", "fmin", "cross",
        "mul_", "__imul__", "div_", "__itruediv__", "matmul_",
    }
)
#: Refused by ``products="symmetric"`` when their input depends on the inputs (products in disguise).
UNSPLIT_REDUCTIONS = frozenset(
    {"prod", "cumprod", "var", "std", "var_mean", "std_mean", "norm", "linalg_vector_norm", "logsumexp"}
)
#: Operations :mod:`~taylorlens.engine.decompositions` and :mod:`~taylorlens.engine.recurrent` recompute.
DECOMPOSED = {**DECOMPOSITIONS, **RECURRENT}
#: The values of a site at the references: ``(z_ref, f(z_ref))`` of a nonlinearity, ``(a_ref, b_ref)`` of a product.
Pair = tuple[Tensor, Tensor]


class UnsupportedModelError(RuntimeError):
    """The model uses an operation a modified-gradient method cannot handle."""


class Rule:
    """Decides the gradient of each elementwise nonlinearity ``out = f(z)``.

    ``replace`` returns a tensor equal to ``f(z)`` whose gradient with respect to ``z`` is the rule's.
    ``needs_reference``: every site also gets the reference's values there (``reference``; recorded by a
    forward pass of the references, :mod:`~taylorlens.engine.reference_tape`), else ``reference`` is None.

    ``products``: ``"gradient"`` (the papers' rules) keeps the ordinary gradient of products of
    activations and refuses the operations that hide products and nonlinearities (softmax,
    normalisations, attention kernels, fused recurrent layers). ``"symmetric"`` gives every product
    ``z = a * b`` (elementwise or matrix) the modified gradients ``dz/da = b_bar``, ``dz/db = a_bar`` of
    :meth:`product_factors`, and recomputes those operations from products, linear maps and elementwise
    functions (:mod:`~taylorlens.engine.decompositions`, :mod:`~taylorlens.engine.recurrent`) so the rule
    reaches every nonlinearity inside. ``decomposes_softmax`` and ``constant_statistics`` say how the
    rule treats softmax and normalisation statistics there.
    """

    name = "rule"
    needs_reference = False
    supported: frozenset[str] = ELEMENTWISE
    products = "gradient"
    decomposes_softmax = True
    constant_statistics = False
    #: Operations (by name) that keep their ordinary gradient, however they are built.
    passed_through: frozenset[str] = frozenset()

    def replace(self, f: Callable[[Tensor], Tensor], z: Tensor, reference: Pair | None) -> Tensor:
        with torch.no_grad():  # the value only: the rule decides the gradient
            out = f(z)
        return with_multiplier(z, out, self.multiplier(f, z.detach(), out, reference))

    def multiplier(self, f: Callable[[Tensor], Tensor], z: Tensor, out: Tensor, reference: Pair | None) -> Tensor:
        """The rule's ``g(z)`` for ``out = f(z)``, elementwise (rules that only rescale the incoming gradient);
        ``reference`` is ``(z_ref, f(z_ref))`` for rules that need references (broadcastable to ``z``).

        A rule that overrides :meth:`replace` instead is not :func:`by_multiplier`: the fused recurrent pass
        (:mod:`~taylorlens.engine.lstm_pass`) then leaves it to the step-by-step unrolling.
        """
        raise NotImplementedError

    def product_factors(self, a: Tensor, b: Tensor, reference: Pair | None) -> tuple[Tensor, Tensor]:
        """The constants ``(a_bar, b_bar)`` of ``dz = b_bar da + a_bar db`` for ``z = a * b`` (``reference``:
        ``(a_ref, b_ref)`` for rules that need references)."""
        raise NotImplementedError

    def gate_factors(self, gate: Tensor, signal: Tensor, reference: Pair | None) -> tuple[Tensor, Tensor]:
        """:meth:`product_factors` of ``z = gate * signal``, a sigmoid gate of a recurrent cell times its signal
        (Ancona et al. 2018, Sec. 4.1, multiplicative units; epsilon-LRP overrides it with Arras et al. 2017)."""
        return self.product_factors(gate, signal, reference)


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


def derivative_where(f: Callable[[Tensor], Tensor], where: Tensor, values: Tensor, *ends: Tensor) -> Tensor:
    """``values`` with ``f'`` at the mean of ``ends`` at the entries ``where`` (bool, shaped like ``values``;
    ``ends`` broadcast to it): the midpoint slope of Rescale, the limit of ``Δf(z) / Δz`` as ``Δz -> 0``
    (Ancona et al. 2018, Prop. 2), or epsilon-LRP's ``f'(z)`` where ``z + eps sign z = 0`` (Prop. 1).

    The derivative is evaluated at those entries only when ``f`` is pointwise (``f.pointwise``, default
    True: no tensor arguments besides ``z`` that would have to be indexed with it), else at every entry.
    """
    if getattr(f, "pointwise", True) and values.dim() > 0:
        entries = where.nonzero(as_tuple=True)
        if entries[0].numel():
            values[entries] = derivative(f, sum(_at_entries(end, entries) for end in ends) / len(ends))
        return values
    if not bool(where.any()):
        return values
    return torch.where(where, derivative(f, sum(ends) / len(ends)), values)


def _at_entries(t: Tensor, entries: tuple[Tensor, ...]) -> Tensor:
    """The values of ``t`` at the ``entries`` (coordinates) of the shape ``t`` broadcasts to, without expanding it."""
    offset = len(entries) - t.dim()
    return t[tuple(torch.zeros_like(index) if size == 1 else index
                   for index, size in zip(entries[offset:], t.shape, strict=True))]


def _check_products(products: str, choices: tuple[str, ...] = ("gradient", "symmetric")) -> str:
    return check_choice("products", products, choices)


def _given(reference: Pair | None, rule: Rule) -> Pair:
    if reference is None:
        raise UnsupportedModelError(f"the {rule.name} rule needs the reference's values at every site")
    return reference


class RescaleRule(Rule):
    """DeepLIFT Rescale (Ancona et al., Prop. 2): ``g = (f(z) - f(z_ref)) / (z - z_ref)``.

    Where ``|z - z_ref|`` is below ``sqrt(machine eps) * max(1, |z|)`` the ratio is replaced by its limit,
    the derivative at the midpoint (second-order accurate), so no division by a vanishing denominator occurs.

    ``products="symmetric"``: a product ``z = a * b`` of two activations gets ``dz/da = (b + b_ref) / 2``
    and ``dz/db = (a + a_ref) / 2``, so ``Δz = ((b + b_ref)/2) Δa + ((a + a_ref)/2) Δb`` holds exactly (the
    two-player Shapley split of ``Δz``; per term for matrix products). With the decompositions of softmax,
    normalisations, attention and recurrent layers, the attributions then sum to ``f(x) - f(x_ref)`` on
    any network of linear maps, elementwise functions and products (summation-to-delta). The default
    ``"gradient"`` is the papers' DeepLIFT: Ancona et al. Sec. 3.1's ``ReLU(x1 - 1) * ReLU(x2)`` misses it.
    """

    name = "rescale"
    needs_reference = True

    def __init__(self, products: str = "gradient") -> None:
        self.products = _check_products(products)

    def product_factors(self, a: Tensor, b: Tensor, reference: Pair | None) -> tuple[Tensor, Tensor]:
        a_ref, b_ref = _given(reference, self)
        return (a + a_ref) / 2, (b + b_ref) / 2

    def multiplier(self, f: Callable[[Tensor], Tensor], z: Tensor, out: Tensor, reference: Pair | None) -> Tensor:
        z_ref, out_ref = _given(reference, self)
        delta = z - z_ref
        multiplier = torch.sub(out, out_ref).div_(delta)  # in place where possible: these tensors are large
        tolerance = torch.finfo(z.dtype).eps ** 0.5
        small = delta.abs_() <= tolerance  # |delta| <= tolerance * max(1, |z|), without a buffer for |z|
        small |= delta.div_(z).abs_() <= tolerance
        return derivative_where(f, small, multiplier, z, z_ref)


class EpsilonRule(Rule):
    """epsilon-LRP (Ancona et al., Prop. 1): ``g = f(z) / (z + epsilon * sign(z))``, ``sign(0) = 1``.

    ``products="symmetric"`` follows AttnLRP (Achtibat et al., ICML 2024), written as modified gradients
    (relevance = activation * modified gradient): the uniform rule for a product ``z = a * b`` of two
    activations, ``dz/da = b / 2`` and ``dz/db = a / 2`` (each factor gets half of ``R_z``; per term for
    matrix products); the softmax rule ``R_i = x_i (R^out_i - s_i sum_j R^out_j)`` (Prop. 3.1), which is
    the ordinary softmax gradient times the input; the LN-rule of Ali et al. (ICML 2022, Sec. 4.2) for
    layer/group/instance/RMS norm and ``F.normalize``: the normalising statistic is a constant, and so is
    the denominator of a quotient ``a / b`` of two activations. Elementwise functions keep the identity
    rule of Eq. 2 (``g = f(z) / z``, stabilised).

    Gates of recurrent cells (``gate * signal`` in the unrolled LSTM/GRU, :meth:`gate_factors`) get the
    signal-take-all rule of Arras et al. (2017), the LSTM rule Ancona et al. point to (Sec. 4.1, consideration 5):
    ``dz/dsignal = gate``, ``dz/dgate = 0``, so the whole ``R_z`` goes to the signal. The uniform rule would
    send half of it through the gate's sigmoid, whose identity rule ``sigmoid(z) / (z + eps sign z)`` is
    unbounded near ``z = 0`` (``f(0) != 0``, Sec. 3.1); chained over the time steps those factors overflow
    (a trained IMDB LSTM gave NaN after ~120 of its 500 steps).
    """

    name = "epsilon"
    decomposes_softmax = False
    constant_statistics = True

    def __init__(self, epsilon: float, products: str = "gradient") -> None:
        self.epsilon = epsilon
        self.products = _check_products(products)

    def product_factors(self, a: Tensor, b: Tensor, reference: Pair | None) -> tuple[Tensor, Tensor]:
        return a / 2, b / 2

    def gate_factors(self, gate: Tensor, signal: Tensor, reference: Pair | None) -> tuple[Tensor, Tensor]:
        return gate, torch.zeros_like(signal)

    def multiplier(self, f: Callable[[Tensor], Tensor], z: Tensor, out: Tensor, reference: Pair | None) -> Tensor:
        denominator = z + 0.0  # -0.0 becomes +0.0, so that copysign gives sign(0) = 1
        torch.copysign(z.new_tensor(self.epsilon), denominator, out=denominator).add_(z)
        multiplier = torch.div(out, denominator, out=denominator)
        if self.epsilon > 0:  # z + epsilon sign(z) is never 0
            return multiplier
        return derivative_where(f, z == 0, multiplier, z)


def by_multiplier(rule: Rule) -> bool:
    """Whether ``rule`` modifies gradients only through :meth:`Rule.multiplier` (it keeps the base ``replace``)."""
    return type(rule).replace is Rule.replace


class _PositivePass(torch.autograd.Function):
    """Identity on ``out`` whose backward to ``z`` passes the positive part of the incoming gradient."""

    @staticmethod
    def forward(ctx: Any, z: Tensor, out: Tensor) -> Tensor:  # type: ignore[override]
        return out.view_as(out)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return _positive_part(grad_out), None


def _positive_part(grad: Tensor) -> Tensor:
    return grad.clamp(min=0)


def _passed_through(non_relu: str) -> frozenset[str]:
    """With ``non_relu="gradient"`` every operation but the ReLU-type units keeps its ordinary gradient."""
    if check_choice("non_relu", non_relu, ("refuse", "gradient")) == "refuse":
        return frozenset()
    return (ELEMENTWISE | UNSUPPORTED) - RELU_LIKE - {"rnn_relu", "rnn_relu_cell"}


class GuidedReLURule(Rule):
    """Guided backpropagation: ``grad_in = relu'(z) * max(grad_out, 0)`` at each ReLU-type unit.

    ``non_relu``: ``"refuse"`` (default) raises on any other nonlinearity; ``"gradient"`` lets every other
    operation (tanh, GELU, softmax, normalisations, attention, LSTM/GRU) keep its ordinary gradient.
    """

    name = "guided"
    supported = RELU_LIKE

    def __init__(self, non_relu: str = "refuse") -> None:
        self.passed_through = _passed_through(non_relu)

    def replace(self, f: Callable[[Tensor], Tensor], z: Tensor, reference: Pair | None) -> Tensor:
        out = f(z)  # the unit's own gradient relu'(z), applied to the positive part of the incoming one
        out.register_hook(_positive_part)
        return out


class DeconvReLURule(Rule):
    """Deconvnet: ``grad_in = max(grad_out, 0)`` at each ReLU-type unit, whatever the unit's input.

    ``non_relu`` as for :class:`GuidedReLURule`.
    """

    name = "deconv"
    supported = RELU_LIKE

    def __init__(self, non_relu: str = "refuse") -> None:
        self.passed_through = _passed_through(non_relu)

    def replace(self, f: Callable[[Tensor], Tensor], z: Tensor, reference: Pair | None) -> Tensor:
        with torch.no_grad():
            out = f(z)
        return _PositivePass.apply(z, out)


class RuleSelector:
    """Which rule each elementwise nonlinearity of a forward pass gets (in the spirit of Zennit's composites).

    ``at`` maps a nonlinearity to its rule, by position (an ``int``: the k-th elementwise nonlinearity the
    forward pass meets, counted from 0 in call order, so a module called twice has two positions) or by
    module (a module of the model: every nonlinearity computed inside it; the innermost named module wins,
    and a module entry wins over a position). Every other nonlinearity gets ``default``, which also decides
    everything that is not an elementwise nonlinearity (``products``, softmax, normalisations) and whether
    points come with references (every rule of a selector must agree on ``needs_reference``). A position
    the forward pass never reaches raises :class:`~taylorlens.engine.AttributionInputError` after the pass.
    """

    def __init__(self, default: Rule, at: Mapping[int | nn.Module, Rule] | None = None) -> None:
        at = dict(at or {})
        for key, rule in at.items():
            if isinstance(key, bool) or not isinstance(key, int | nn.Module) or (isinstance(key, int) and key < 0):
                raise AttributionInputError(
                    f"a rule selector maps positions (ints >= 0) or modules to rules, got the key {key!r}"
                )
            if not isinstance(rule, Rule) or rule.needs_reference != default.needs_reference:
                raise AttributionInputError(
                    f"the rule for {key!r} must be a Rule that, like the default {default.name} rule, "
                    f"{'needs' if default.needs_reference else 'does not need'} reference points; got {rule!r}"
                )
        self.default = default
        self.positions = {key: rule for key, rule in at.items() if isinstance(key, int)}
        self.modules = {key: rule for key, rule in at.items() if isinstance(key, nn.Module)}
        self.name = "+".join([default.name, *sorted({rule.name for rule in at.values()} - {default.name})])
        self.needs_reference = default.needs_reference

    def rule_for(self, position: int, inside: list[nn.Module]) -> Rule:
        """The rule of the nonlinearity at ``position``, called inside the named modules ``inside``."""
        for module in reversed(inside):
            if module in self.modules:
                return self.modules[module]
        return self.positions.get(position, self.default)

    def check_reached(self, met: int) -> None:
        """Raise when a named position lies beyond the ``met`` nonlinearities of the forward pass."""
        beyond = sorted(position for position in self.positions if position >= met)
        if beyond:
            raise AttributionInputError(
                f"the rules name nonlinearity {beyond[0]} (counted from 0), but the forward pass meets only {met} "
                "elementwise nonlinearities"
            )


class _SplitProduct(torch.autograd.Function):
    """``a * b`` or ``a @ b`` in value; in gradient ``dz/da = b_bar``, ``dz/db = a_bar`` (the rule's split).

    One product in the forward and two in the backward, like the plain product: the split of Ancona et
    al.'s multiplicative units (:meth:`Rule.product_factors`) costs no more than its ordinary gradient.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, a: Tensor, b: Tensor, a_bar: Tensor, b_bar: Tensor, matrix: bool
    ) -> Tensor:
        ctx.save_for_backward(a_bar, b_bar)
        ctx.matrix, ctx.shapes = matrix, (a.shape, b.shape)
        return torch.matmul(a, b) if matrix else a * b

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple:  # type: ignore[override]
        a_bar, b_bar = ctx.saved_tensors
        a_shape, b_shape = ctx.shapes
        if ctx.matrix:
            grad_a, grad_b = grad @ b_bar.mT, a_bar.mT @ grad
        else:
            grad_a, grad_b = grad * b_bar, grad * a_bar
        return grad_a.sum_to_size(a_shape), grad_b.sum_to_size(b_shape), None, None, None


#: Products :class:`_SplitProduct` computes: elementwise (False) or matrix (True) products.
_SPLIT = {"mul": False, "multiply": False, "__mul__": False, "__rmul__": False, "matmul": True,
          "__matmul__": True, "bmm": True}


def split_product(func: Callable[[Tensor, Tensor], Tensor], a: Tensor, b: Tensor, a_bar: Tensor,
                  b_bar: Tensor) -> Tensor:
    """``func(a, b)`` with ``dz/da = b_bar``, ``dz/db = a_bar`` (``func`` elementwise or matrix product): the
    modified chain rule (Ancona et al. 2018, Eq. 5) at a product, e.g. the symmetric split ``Δz = b_bar Δa +
    a_bar Δb`` with ``a_bar = (a + a_ref) / 2`` of :class:`RescaleRule`, AttnLRP's uniform rule of
    :class:`EpsilonRule`."""
    matrix = _SPLIT.get(getattr(func, "__name__", ""))
    if matrix is not None and (not matrix or (a.dim() >= 2 and b.dim() >= 2)):
        return _SplitProduct.apply(a, b, a_bar.expand_as(a), b_bar.expand_as(b), matrix)
    with torch.no_grad():
        out = func(a, b)
    split = func(a, b_bar) + func(a_bar, b)  # the modified gradient; its value is replaced by ``out``
    return out + (split - split.detach())


class RuleOps:
    """The operations decompositions are written in, each applying the rule of the context.

    ``elementwise(f, z)``: ``f(z)`` with the modified gradient of the rule chosen for it; ``product(func,
    a, b)``: a bilinear ``func`` (``torch.mul``, ``torch.matmul``) with the rule's product split;
    ``softmax(x, dim, log)``: the softmax decomposed into those two; ``statistic(t)``: ``t``, or a constant
    for rules with ``constant_statistics``; ``refuse(message)`` raises :class:`UnsupportedModelError`.
    With a :class:`~taylorlens.engine.reference_tape.ReferenceTape` being recorded (the references' pass)
    each site writes down its inputs and returns its plain value; replayed (the points' pass), each site
    reads the reference's values back for the rule.
    """

    def __init__(self, state: _SwapNonlinearityGradients) -> None:
        self.state, self.rule, self.tape = state, state.rule, state.tape
        self.decomposes_softmax = self.rule.decomposes_softmax

    def recording(self) -> bool:
        return self.tape is not None and self.tape.recording

    def elementwise(self, f: Callable[[Tensor], Tensor], z: Tensor) -> Tensor:
        if not (isinstance(z, Tensor) and z.requires_grad and z.is_floating_point()):
            return f(z)
        return self.state.replace(f, z)

    def product(self, func: Callable[[Tensor, Tensor], Tensor], a: Tensor, b: Tensor) -> Tensor:
        return self._bilinear(func, a, b, self.rule.product_factors)

    def gated(self, gate: Tensor, signal: Tensor) -> Tensor:
        """``gate * signal`` inside a recurrent cell, split by the rule's :meth:`Rule.gate_factors`."""
        return self._bilinear(torch.mul, gate, signal, self.rule.gate_factors)

    def _bilinear(self, func: Callable, a: Tensor, b: Tensor, factors: Callable) -> Tensor:
        """A product site: plain unless both factors depend on the inputs, recorded or split by ``factors``."""
        if not (_input_dependent(a) and _input_dependent(b)):
            return func(a, b)
        if self.recording():
            return _recorded(self.tape, "product", func, a, b)
        reference = None if self.tape is None else self.tape.replay("product", a, b)
        return self._split(func, a, b, reference, factors)

    def _split(self, func: Callable, a: Tensor, b: Tensor, reference: Pair | None, factors: Callable) -> Tensor:
        a_bar, b_bar = factors(a.detach(), b.detach(), reference)
        return split_product(func, a, b, a_bar, b_bar)

    def softmax(self, x: Tensor, dim: int, log: bool = False) -> Tensor:
        """``exp(s) * (1 / sum exp(s))`` (``log``: ``s - log sum exp(s)``), ``s = x - c`` along ``dim``.

        ``exp`` and the reciprocal get the rule's multiplier (Rescale, Ancona et al. 2018 Prop. 2), the
        product its split. The shift ``c`` is the larger of the point's and its reference's row maxima, shared
        by both, so it drops out of their difference and neither side overflows. The references' pass
        records ``x`` only; the points' pass computes the reference's side of the decomposition with the
        shared shift.
        """
        if self.recording():
            self.state.met += 2  # exp and reciprocal (or log): the sites the points' pass gives a rule
            return _recorded(self.tape, "softmax", torch.log_softmax if log else torch.softmax, x, dim=dim)
        shift = x.detach().amax(dim, keepdim=True)
        s_ref = None
        if self.tape is not None:
            (x_ref,) = self.tape.replay("softmax", x)
            shift = torch.maximum(shift, x_ref.amax(dim, keepdim=True))
            s_ref = x_ref - shift
        s = x - shift
        numerator, numerator_ref = self._paired_site(torch.exp, s, s_ref)
        total, total_ref = numerator.sum(dim, keepdim=True), _maybe(numerator_ref, lambda t: t.sum(dim, keepdim=True))
        if log:
            return s - self._paired_site(torch.log, total, total_ref)[0]
        inverse, inverse_ref = self._paired_site(torch.reciprocal, total, total_ref)
        if not _input_dependent(inverse):
            return numerator * inverse
        reference = None if numerator_ref is None else (numerator_ref, inverse_ref)
        return self._split(torch.mul, numerator, inverse, reference, self.rule.product_factors)

    def _paired_site(self, f: Callable[[Tensor], Tensor], z: Tensor, z_ref: Tensor | None) -> tuple[Tensor, Any]:
        """``f(z)`` with the rule's gradient given the reference ``z_ref`` (None: no references), and ``f(z_ref)``."""
        out_ref = _maybe(z_ref, f)
        if not (z.requires_grad and z.is_floating_point()):
            return f(z), out_ref
        return self.state.site(f, z, None if z_ref is None else (z_ref, out_ref)), out_ref

    def sequence(
        self, step: Callable, projected: Tensor, state: tuple[Tensor, ...], weights: tuple, reverse: bool,
        source: tuple[Tensor, Tensor, Tensor | None],
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """One direction of a recurrent layer: an LSTM whose ``3 T`` nonlinearities all get one
        :func:`by_multiplier` rule runs as one fused Function (:mod:`~taylorlens.engine.lstm_pass`), any
        other layer step by step (:func:`~taylorlens.engine.recurrent.unrolled`). Both give the same gradients.
        ``source`` (``(input, w_ih, b_ih)`` of ``projected``) lets the fused pass read its values from torch's
        LSTM kernel.
        """
        count = 3 * projected.shape[0]  # sigmoid of the gates, tanh of g and of c in every step
        rule = self.state.rule_ahead(count) if step is lstm_step and _input_dependent(projected) else None
        if rule is None or not by_multiplier(rule) or any(_input_dependent(w) for w in weights):
            return unrolled(self, step, projected, state, weights, reverse)
        self.state.met += count
        if self.recording():
            values = lstm_values(projected.detach(), *(s.detach() for s in state), *weights, reverse, source)
            self.tape.record("lstm", *values.recorded(state[1]))
            last = tuple(s.clone().requires_grad_() for s in (values.h, values.c))  # views of hidden, cells
            return values.hidden.requires_grad_(), last
        reference = None if self.tape is None else self.tape.replay("lstm", projected)
        return modified_lstm_layer(rule, projected, state, *weights, reverse, reference, source)

    def quotient(self, a: Tensor, b: Tensor) -> Tensor:
        return self.product(torch.mul, a, self.elementwise(torch.reciprocal, self.statistic(b)))

    def statistic(self, t: Tensor) -> Tensor:
        return t.detach() if self.rule.constant_statistics else t

    def refuse(self, message: str) -> None:
        raise UnsupportedModelError(f"{message} ({self.rule.name} rule, products={self.rule.products!r})")


def _recorded(
    tape: ReferenceTape, kind: str, func: Callable, *values: Tensor, keep_output: bool = False, **kwargs: Any
) -> Tensor:
    """The references' pass at a site: write its inputs (and with ``keep_output`` its value) down, return its
    plain value (marked as depending on the inputs, so that later sites are recognised as in the points' pass)."""
    with torch.no_grad():
        out = func(*values, **kwargs)
    tape.record(kind, *values, *((out,) if keep_output else ()))
    return out.requires_grad_()


def _maybe(t: Tensor | None, f: Callable[[Tensor], Tensor]) -> Tensor | None:
    return None if t is None else f(t)


def _input_dependent(value: Any) -> bool:
    return isinstance(value, Tensor) and value.requires_grad


def _any_input_dependent(args: tuple, kwargs: dict) -> bool:
    values = [*args, *kwargs.values()]
    return any(
        _input_dependent(v) or (isinstance(v, list | tuple) and any(map(_input_dependent, v))) for v in values
    )


class _SwapNonlinearityGradients(TorchFunctionMode):
    """The context's state for one forward pass: ``met`` nonlinearities so far, the named modules ``inside``,
    the references' ``tape`` (None for rules without references)."""

    def __init__(self, selector: RuleSelector, tape: ReferenceTape | None) -> None:
        super().__init__()
        self.selector, self.rule, self.tape = selector, selector.default, tape
        self.met, self.inside = 0, []
        self.ops = RuleOps(self)

    def replace(self, f: Callable[[Tensor], Tensor], z: Tensor) -> Tensor:
        """``f(z)`` with the gradient of the rule the selector chooses for this nonlinearity (recorded on the
        tape in the references' pass)."""
        if self.tape is None:
            return self.site(f, z, None)
        if self.tape.recording:
            self.met += 1
            return _recorded(self.tape, "elementwise", f, z, keep_output=True)
        return self.site(f, z, self.tape.replay("elementwise", z))

    def site(self, f: Callable[[Tensor], Tensor], z: Tensor, reference: Pair | None) -> Tensor:
        """``f(z)`` with the gradient of the selector's rule for the next nonlinearity, given its reference."""
        rule = self.selector.rule_for(self.met, self.inside)
        self.met += 1
        return rule.replace(f, z, reference)

    def rule_ahead(self, count: int) -> Rule | None:
        """The rule of the next ``count`` nonlinearities if the selector gives them all the same one, else None."""
        if any(self.met <= position < self.met + count for position in self.selector.positions):
            return None
        return self.selector.rule_for(self.met, self.inside)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if self.rule.products == "symmetric":
            result = self._split_products(func, name, args, kwargs)
            if result is not NotImplemented:
                return result
        elif name in self.rule.passed_through:
            return func(*args, **kwargs)
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

        f.pointwise = not any(isinstance(v, Tensor) for v in (*rest, *kwargs.values()))  # see derivative_where
        if not z.is_floating_point():
            return f(z)
        return self.replace(f, z)

    def _split_products(self, func: Callable, name: str, args: tuple, kwargs: dict) -> Any:
        """Products, quotients and decomposed operations under ``products="symmetric"``; else NotImplemented."""
        if name in DECOMPOSED and _any_input_dependent(args, kwargs):
            return DECOMPOSED[name](self.ops, *args, **kwargs)
        two = len(args) >= 2 and _input_dependent(args[0]) and _input_dependent(args[1])
        if name in PRODUCTS and two and not kwargs and len(args) == 2:
            return self.ops.product(func, args[0], args[1])
        if name in QUOTIENTS and two and kwargs.get("rounding_mode") is None:
            return self.ops.quotient(args[0], args[1])
        if name == "__rtruediv__" and _input_dependent(args[0]) and not isinstance(args[1], Tensor):
            return self.ops.elementwise(lambda t: func(t, *args[1:]), args[0])
        dependent = sum(map(_input_dependent, (*args, *kwargs.values())))
        if (name in UNSPLIT_PRODUCTS and dependent >= 2) or (name in UNSPLIT_REDUCTIONS and dependent):
            self.ops.refuse(
                f"the model calls {name} on activations: it is not split into products, elementwise functions "
                "and linear maps, so summation-to-delta would not hold"
            )
        return NotImplemented


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
def modified_gradients(
    rule: Rule | RuleSelector | None, tape: ReferenceTape | None = None
) -> Iterator[_SwapNonlinearityGradients | None]:
    """Apply ``rule`` (or the rules of a :class:`RuleSelector`) to every elementwise nonlinearity of the one
    forward pass inside the block; hooks on the selector's modules are removed when the block ends.

    When ``rule.needs_reference``, ``tape`` holds the references' values: a forward pass of the references
    inside the block records it, a forward pass of the points then replays it
    (:mod:`~taylorlens.engine.reference_tape`). ``rule=None`` leaves every gradient ordinary. The block gets
    the pass's state (its ``met`` counts the nonlinearities given a rule), or None for ``rule=None``.
    """
    if rule is None:
        yield None
        return
    selector = rule if isinstance(rule, RuleSelector) else RuleSelector(rule)
    if selector.needs_reference and tape is None:
        raise ValueError(f"the {selector.name} rule needs a reference tape")
    mode = _SwapNonlinearityGradients(selector, tape)

    def enter(module: nn.Module, args: tuple) -> None:
        mode.inside.append(module)

    def leave(module: nn.Module, args: tuple, output: Any) -> None:
        mode.inside.pop()

    hooks = [hook for module in selector.modules
             for hook in (module.register_forward_pre_hook(enter), module.register_forward_hook(leave))]
    try:
        with mode:
            yield mode
    finally:
        for hook in hooks:
            hook.remove()
    selector.check_reached(mode.met)
