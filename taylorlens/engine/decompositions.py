"""Softmax, normalisations and attention written as what they are, for the ``products="symmetric"`` rules.

Each function has the signature of the torch function it stands for (after an ``ops`` argument) and
recomputes it from linear maps, elementwise functions (``ops.elementwise``, the rule's modified gradient)
and products of two activations (``ops.product``, the rule's product split), so that the rules of
:mod:`taylorlens.engine.modified_gradients` see every nonlinearity inside:

* softmax ``s = exp(x - c) * (1 / sum exp(x - c))`` (``ops.softmax``): the shift ``c`` is a constant shared
  by each point and its reference, so it drops out of the difference; with DeepLIFT the exponential
  and the reciprocal get Rescale multipliers and the product the symmetric split, which keeps
  summation-to-delta exact. epsilon-LRP keeps the ordinary softmax gradient instead: times the input it
  is AttnLRP's softmax rule ``R_i = x_i (R^out_i - s_i sum_j R^out_j)`` (Achtibat et al., ICML 2024,
  Prop. 3.1) (``ops.decomposes_softmax``);
* normalisations ``(x - mean) * (1 / sqrt(var + eps))`` with ``var`` a mean of products of the centred
  input: DeepLIFT follows all of it; epsilon-LRP applies the LN-rule (Ali et al., ICML 2022, Sec. 4.2),
  the statistic is a constant (``ops.statistic`` detaches it) and the layer is linear;
* scaled-dot-product attention as ``softmax(q k^T * scale + mask) v``: two products and a softmax.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


def softmax(ops: Any, input: Tensor, dim: int | None = None, _stacklevel: Any = 3, dtype: Any = None) -> Tensor:
    """``exp(x - c) / sum exp(x - c)`` along ``dim`` (``torch.softmax``, ``F.softmax``, ``Tensor.softmax``)."""
    x = _along(ops, "softmax", input, dim, _stacklevel, dtype)
    if not ops.decomposes_softmax:
        return torch.softmax(x, dim)
    return ops.softmax(_finite(x), dim)


def log_softmax(ops: Any, input: Tensor, dim: int | None = None, _stacklevel: Any = 3, dtype: Any = None) -> Tensor:
    """``(x - c) - log sum exp(x - c)`` along ``dim``."""
    x = _along(ops, "log_softmax", input, dim, _stacklevel, dtype)
    if not ops.decomposes_softmax:
        return torch.log_softmax(x, dim)
    return ops.softmax(_finite(x), dim, log=True)


def softmin(ops: Any, input: Tensor, dim: int | None = None, _stacklevel: Any = 3, dtype: Any = None) -> Tensor:
    """``softmax(-x)``."""
    return softmax(ops, -input, dim, _stacklevel, dtype)


def _along(ops: Any, name: str, x: Tensor, dim: int | None, third: Any, dtype: Any) -> Tensor:
    """``x`` in the requested dtype (``torch.softmax(x, dim, dtype)`` passes it third, ``F.softmax`` fourth)."""
    dtype = third if isinstance(third, torch.dtype) else dtype
    if dim is None:
        ops.refuse(f"the model calls {name} without dim: give the dimension explicitly")
    return x if dtype is None else x.to(dtype)


def _finite(x: Tensor) -> Tensor:
    """``-inf`` masks become the most negative float, so that ``exp`` of a masked entry has a difference 0."""
    return x.clamp(min=torch.finfo(x.dtype).min)


def _normalised(ops: Any, x: Tensor, dims: tuple[int, ...], eps: float, centre: bool = True) -> Tensor:
    """``(x - mean) / sqrt(mean((x - mean)^2) + eps)`` over ``dims`` (without centring: RMS)."""
    centred = x - x.mean(dims, keepdim=True) if centre else x
    statistic = ops.statistic(centred)
    variance = ops.product(torch.mul, statistic, statistic).mean(dims, keepdim=True)
    return ops.product(torch.mul, centred, ops.elementwise(torch.rsqrt, variance + eps))


def _affine(y: Tensor, weight: Tensor | None, bias: Tensor | None, shape: tuple[int, ...]) -> Tensor:
    if weight is not None:
        y = y * weight.reshape(shape)
    return y if bias is None else y + bias.reshape(shape)


def layer_norm(
    ops: Any, input: Tensor, normalized_shape: Any, weight: Tensor | None = None, bias: Tensor | None = None,
    eps: float = 1e-5, *_backend_flags: Any,
) -> Tensor:
    """``F.layer_norm``: normalised over the last ``len(normalized_shape)`` dimensions."""
    dims = tuple(range(-len(tuple(normalized_shape)), 0))
    shape = tuple(input.shape[d] for d in dims)
    return _affine(_normalised(ops, input, dims, eps), weight, bias, shape)


def rms_norm(
    ops: Any, input: Tensor, normalized_shape: Any, weight: Tensor | None = None, eps: float | None = None
) -> Tensor:
    """``F.rms_norm``: ``x / sqrt(mean(x^2) + eps)`` (``eps=None``: the dtype's machine epsilon)."""
    dims = tuple(range(-len(tuple(normalized_shape)), 0))
    eps = torch.finfo(input.dtype).eps if eps is None else eps
    shape = tuple(input.shape[d] for d in dims)
    return _affine(_normalised(ops, input, dims, eps, centre=False), weight, None, shape)


def group_norm(
    ops: Any, input: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None,
    eps: float = 1e-5, *_backend_flags: Any,
) -> Tensor:
    """``F.group_norm``: channels split into ``num_groups``, each normalised over its channels and positions."""
    grouped = input.reshape(input.shape[0], num_groups, -1)
    y = _normalised(ops, grouped, (2,), eps).reshape(input.shape)
    return _affine(y, weight, bias, (input.shape[1],) + (1,) * (input.dim() - 2))


def instance_norm(
    ops: Any, input: Tensor, running_mean: Tensor | None = None, running_var: Tensor | None = None,
    weight: Tensor | None = None, bias: Tensor | None = None, use_input_stats: bool = True,
    momentum: float = 0.1, eps: float = 1e-5, *_backend_flags: Any,
) -> Tensor:
    """``F.instance_norm``: each channel of each sample normalised over its positions (running stats: linear)."""
    if not use_input_stats:
        mean, var = running_mean.reshape(1, -1, *(1,) * (input.dim() - 2)), running_var
        y = (input - mean) / torch.sqrt(var.reshape(mean.shape) + eps)
    else:
        y = _normalised(ops, input, tuple(range(2, input.dim())), eps)
    return _affine(y, weight, bias, (input.shape[1],) + (1,) * (input.dim() - 2))


def normalize(
    ops: Any, input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out: Tensor | None = None
) -> Tensor:
    """``F.normalize`` for ``p = 2``: ``x / max(||x||, eps)`` along ``dim``."""
    if p != 2 or out is not None:
        ops.refuse(f"the model calls normalize with p={p!r} (out given: {out is not None}): only p=2 is covered")
    statistic = ops.statistic(input)
    squares = ops.product(torch.mul, statistic, statistic).sum(dim, keepdim=True)
    inverse = ops.elementwise(lambda t: 1 / torch.sqrt(t).clamp(min=eps), squares)
    return ops.product(torch.mul, input, inverse)


def scaled_dot_product_attention(
    ops: Any, query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
    dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None, enable_gqa: bool = False,
) -> Tensor:
    """``F.scaled_dot_product_attention`` as ``softmax(q k^T * scale + mask) @ v`` (the math kernel)."""
    if dropout_p > 0:
        ops.refuse(f"the model calls scaled_dot_product_attention with dropout_p={dropout_p}: call model.eval()")
    if enable_gqa and key.shape[-3] != query.shape[-3]:
        repeats = query.shape[-3] // key.shape[-3]
        key, value = key.repeat_interleave(repeats, -3), value.repeat_interleave(repeats, -3)
    scale = 1 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = ops.product(torch.matmul, query, key.transpose(-2, -1)) * scale
    lowest = torch.finfo(scores.dtype).min
    if is_causal:
        keep = torch.ones(scores.shape[-2:], dtype=torch.bool, device=scores.device).tril()
        scores = scores.masked_fill(~keep, lowest)
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, lowest) if attn_mask.dtype == torch.bool else scores + attn_mask
    return ops.product(torch.matmul, softmax(ops, scores, -1), value)


#: torch function name -> its decomposition.
DECOMPOSITIONS: dict[str, Callable[..., Tensor]] = {
    "softmax": softmax,
    "log_softmax": log_softmax,
    "softmin": softmin,
    "layer_norm": layer_norm,
    "rms_norm": rms_norm,
    "group_norm": group_norm,
    "instance_norm": instance_norm,
    "normalize": normalize,
    "scaled_dot_product_attention": scaled_dot_product_attention,
}
