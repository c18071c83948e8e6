"""Second-order passes behind :class:`~taylorlens.engine.Request` (private: call the request's methods).

The Taylor framework (Deng et al., AAAI 2021, Sec. "A General Taylor Attribution Framework") needs the
gradient ``f_x``, products ``H_x v`` and the diagonal of ``H_x``, never the Hessian itself. A job is a
:class:`~taylorlens.engine.passes.Points` set (the evaluation points) plus one direction ``v`` per
(sample, variant) pair; every chunk returns the outputs, gradients and ``H v`` at its points. The chunks
go through the same chunking as the first-order passes (:mod:`taylorlens.engine.passes`, pass kind
``"hvp"``).

One product costs one forward-over-reverse pass (``torch.func.jvp`` of ``torch.func.grad``, which also
returns the gradient); models whose operations have no forward-mode derivative fall back to double
backward. Cost on CPU: about 2.5-3x one forward+backward pass (see benchmarks/taylor.py). Attention
(``F.scaled_dot_product_attention``) runs on torch's math kernel during these passes: the fused CPU and
flash kernels have no second derivative.

The diagonal is exact (one product per feature, ``H e_i``) or a Hutchinson-style estimate
``diag(H) ~ (1/P) sum_p z_p * (H z_p)`` with Rademacher probes ``z_p`` (Bekas, Kokiopoulou & Saad 2007),
unbiased with variance ``sum_{j != i} H_ij^2 / P`` per entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch.func import grad, jvp
from torch.nn.attention import SDPBackend, sdpa_kernel

from taylorlens.engine.checks import AttributionInputError, check_positive_int
from taylorlens.engine.memory import is_out_of_memory
from taylorlens.engine.passes import Builder, Chunk, Points, inputs_points, run_chunks

if TYPE_CHECKING:
    from taylorlens.engine.request import Request


@dataclass(frozen=True)
class HessianChunk(Chunk):
    """A chunk of a second-order job: ``grads`` are ``f_x`` and ``hvps`` are ``H_x v`` at its points."""

    directions: Tensor | None = None
    hvps: Tensor | None = None


def hvp_chunks(request: Request, points: Points, directions: Builder) -> Iterator[HessianChunk]:
    """Stream chunks with outputs, gradients and Hessian-vector products at every point of ``points``.

    ``directions(sample, variant)`` gives the vectors ``v`` (``(n, ...)``, the points' shape) to multiply.
    """
    targets = request.targets

    def evaluate(sample: Tensor, variant: Tensor) -> HessianChunk:
        batch = points.build(sample, variant).detach()
        vectors = directions(sample, variant).detach().to(batch.dtype)
        chosen = None if targets is None else targets[sample]
        rows = request.rows[sample]

        def explained(point: Tensor) -> Tensor:
            return request.call.explained(point, rows, chosen)

        with sdpa_kernel(SDPBackend.MATH):  # the fused attention kernels have no double backward
            outputs, grads, hvps = _gradient_and_hvp(explained, batch, vectors)
        return HessianChunk(sample, variant, batch, outputs, grads, vectors, hvps)

    yield from run_chunks(request, points, "hvp", evaluate)


def hessian_vector_products(request: Request, points: Points, directions: Builder) -> tuple[Tensor, Tensor, Tensor]:
    """Outputs ``(B, V)``, gradients ``(B, V, ...)`` and ``H v`` ``(B, V, ...)`` at every point, materialised."""
    chunks = list(hvp_chunks(request, points, directions))
    shape = (points.samples, points.variants)
    outputs = torch.cat([c.outputs for c in chunks]).view(shape)
    grads = torch.cat([c.grads for c in chunks])
    hvps = torch.cat([c.hvps for c in chunks])
    return outputs, grads.view(*shape, *grads.shape[1:]), hvps.view(*shape, *hvps.shape[1:])


def hessian_diagonal(
    request: Request, inputs: Tensor, *, n_probes: int | None = None, seed: int | None = None
) -> Tensor:
    """``diag(H_x)`` at every input, ``(B, ...)``.

    ``n_probes=None``: exact, one product ``H e_i`` per feature (n per sample, batched). Otherwise the
    Hutchinson estimate over ``n_probes`` Rademacher probes per sample drawn with ``seed``; its standard
    error per entry is ``sqrt(sum_{j != i} H_ij^2 / n_probes)``.
    """
    diagonal = torch.zeros_like(inputs).flatten(1)
    if n_probes is None:
        for chunk in hvp_chunks(request, *_unit_job(inputs)):
            diagonal[chunk.sample, chunk.variant] = chunk.hvps.flatten(1).gather(1, chunk.variant[:, None])[:, 0]
        return diagonal.view_as(inputs)
    n_probes = check_positive_int("n_probes", n_probes)
    signs = torch.randint(
        0, 2, (inputs.shape[0], n_probes, inputs[0].numel()), generator=request.generator(seed),
        dtype=torch.int8, device=inputs.device,
    )

    def probes(sample: Tensor, variant: Tensor) -> Tensor:
        return (2 * signs[sample, variant].to(inputs.dtype) - 1).view(-1, *inputs.shape[1:])

    job = Points(inputs, n_probes, lambda s, v: inputs[s])
    for chunk in hvp_chunks(request, job, probes):
        diagonal.index_add_(0, chunk.sample, (chunk.directions * chunk.hvps).flatten(1) / n_probes)
    return diagonal.view_as(inputs)


def hessian_matrix(request: Request, inputs: Tensor, max_features: int) -> Tensor:
    """The full Hessian ``(B, n, n)`` over the flattened features, from n products ``H e_i`` per sample.

    Raises for inputs with more than ``max_features`` features (n^2 entries per sample).
    """
    n = inputs[0].numel()
    if n > max_features:
        raise AttributionInputError(
            f"the full Hessian has n^2 = {n}^2 entries per sample; it is available for inputs with at most "
            f"{max_features} features, got {n}"
        )
    matrix = inputs.new_zeros(inputs.shape[0], n, n)
    for chunk in hvp_chunks(request, *_unit_job(inputs)):
        matrix[chunk.sample, :, chunk.variant] = chunk.hvps.flatten(1)
    return matrix


def gradient_and_hvp(request: Request, direction: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Outputs ``(B,)``, gradients ``(B, ...)`` and ``H_x v`` ``(B, ...)`` at the request's inputs."""
    outputs, grads, hvps = hessian_vector_products(request, inputs_points(request.inputs), lambda s, v: direction[s])
    return outputs[:, 0], grads[:, 0], hvps[:, 0]


def _unit_job(inputs: Tensor) -> tuple[Points, Builder]:
    """One point per feature ``i`` (the input itself) with direction ``e_i``."""
    n = inputs[0].numel()

    def units(sample: Tensor, variant: Tensor) -> Tensor:
        return torch.nn.functional.one_hot(variant, n).to(inputs.dtype).view(-1, *inputs.shape[1:])

    return Points(inputs, n, lambda s, v: inputs[s]), units


def _gradient_and_hvp(
    explained: Callable[[Tensor], Tensor], batch: Tensor, vectors: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Outputs, gradients and ``H v`` of ``explained`` at ``batch`` (points are independent samples)."""

    def summed(point: Tensor) -> tuple[Tensor, Tensor]:
        outputs = explained(point)
        return outputs.sum(), outputs

    try:
        grads, hvps, outputs = jvp(grad(summed, has_aux=True), (batch,), (vectors,), has_aux=True)
        return outputs.detach(), grads.detach(), hvps.detach()
    except (RuntimeError, NotImplementedError) as error:  # an operation without a forward-mode derivative
        if is_out_of_memory(error):
            raise
    with torch.enable_grad():
        point = batch.clone().requires_grad_(True)
        outputs = explained(point)
        (grads,) = torch.autograd.grad(outputs.sum(), point, create_graph=True)
        if not grads.requires_grad:  # piecewise-linear model: the Hessian is zero
            return outputs.detach(), grads.detach(), torch.zeros_like(batch)
        (hvps,) = torch.autograd.grad((grads * vectors).sum(), point, allow_unused=True)
    hvps = torch.zeros_like(batch) if hvps is None else hvps
    return outputs.detach(), grads.detach(), hvps
