"""Explaining what a language model generated: every generated token's logit attributed to the tokens before it.

For a causal language model (a Hugging Face GPT-2, an LSTM language model) fed ``prompt + generated``
token ids ``(B, P + T)``, the logit of generated token ``t`` is read at position ``P + t - 1``. All T logits
are explained at once with the engine's several-targets path: the model's output is read as the
``(B, V * T)`` block of the logits at positions ``P - 1 .. P + T - 2``, vocabulary-major, so target ``t`` is
column ``generated[t] * T + t`` whatever V is (no pass is spent on reading V), and every evaluation point
costs one forward pass over the whole sequence and the
T backward passes are batched (:mod:`taylorlens.engine.passes`), never T separate calls as a per-token loop
(Captum's ``LLMGradientAttribution``) makes. The explained variable is the input embedding (IG paper,
Sec. 3.2: scaling the embedding vectors), and a token's score is the sum over its embedding components
(Ancona et al., App. C.4). Token ``j`` after the predicting position gets exactly 0 (causality).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from taylorlens.engine.checks import AttributionInputError
from taylorlens.engine.layout import sum_over
from taylorlens.engine.model_call import read_output
from taylorlens.methods.registry import attribute


def explain_generation(
    model: Callable,
    prompt_ids: Tensor,
    generated_ids: Tensor,
    method: str = "integrated_gradients",
    *,
    layer: Any = None,
    output: Any = None,
    forward_kwargs: dict[str, Any] | None = None,
    **options: Any,
) -> Tensor:
    """Token-to-token scores ``(B, T, P + T)``: row ``t`` explains the logit of ``generated_ids[:, t]``.

    ``prompt_ids`` ``(B, P)`` and ``generated_ids`` ``(B, T)`` are int token ids; the model is called on
    their concatenation (add ``forward_kwargs={"attention_mask": ...}`` of shape ``(B, P + T)`` if it needs
    one). ``layer`` (default: ``model.get_input_embeddings()``) is the explained embedding layer; ``output``
    reads the ``(B, L, V)`` logits from the model's return value (default: the tensor, ``.logits`` or the
    first element). ``method`` and ``options`` are any attribution method and its options; the scores are
    the method's attributions summed over the embedding components.
    """
    prompt, generated = _token_ids("prompt_ids", prompt_ids), _token_ids("generated_ids", generated_ids)
    if prompt.shape[0] != generated.shape[0]:
        raise AttributionInputError(
            f"prompt_ids and generated_ids must have the same batch size, got {prompt.shape[0]} and "
            f"{generated.shape[0]}"
        )
    if layer is None:
        if not isinstance(model, nn.Module) or not hasattr(model, "get_input_embeddings"):
            raise AttributionInputError(
                "explain_generation needs layer= (the embedding layer) for a model without get_input_embeddings()"
            )
        layer = model.get_input_embeddings()
    start, count = prompt.shape[1], generated.shape[1]
    forward_kwargs = _kept_logits(model, forward_kwargs, count)

    def generated_logits(out: Any) -> Tensor:
        logits = read_output(out, output)
        if logits.dim() != 3 or logits.shape[1] not in (start + count, count + 1):
            raise AttributionInputError(
                f"explain_generation reads logits (B, L, V) with L = {start + count} (every position) or "
                f"{count + 1} (the last {count + 1}: logits_to_keep), got {tuple(logits.shape)}; choose them with "
                "output="
            )
        if logits.shape[-1] <= largest:
            raise AttributionInputError(
                f"generated_ids must be token ids in [0, {logits.shape[-1]}), the model's vocabulary; got {largest}"
            )
        return logits[:, -count - 1: -1].transpose(1, 2).flatten(1)  # positions P - 1 .. P + T - 2

    for name, tokens in (("prompt_ids", prompt), ("generated_ids", generated)):
        if bool((tokens < 0).any()):
            raise AttributionInputError(f"{name} must be token ids >= 0, got {int(tokens.min())}")
        size = layer.num_embeddings if isinstance(layer, nn.Embedding) else None
        if size is not None and int(tokens.max()) >= size:
            raise AttributionInputError(
                f"{name} must be token ids in [0, {size}), the embedding's vocabulary; got {int(tokens.max())}"
            )
    largest = int(generated.max())
    columns = generated * count + torch.arange(count, device=generated.device)
    maps = attribute(model, torch.cat([prompt, generated], dim=1), columns, method, layer=layer,
                     output=generated_logits, forward_kwargs=forward_kwargs, **options)
    return sum_over(maps, -1)


def _token_ids(name: str, ids: Any) -> Tensor:
    if not isinstance(ids, Tensor) or ids.dim() != 2 or ids.is_floating_point() or ids.shape[1] < 1:
        got = f"shape {tuple(ids.shape)}, dtype {ids.dtype}" if isinstance(ids, Tensor) else type(ids).__name__
        raise AttributionInputError(f"{name} must be an integer tensor of token ids (B, length >= 1), got {got}")
    return ids


def _kept_logits(model: Callable, forward_kwargs: dict[str, Any] | None, count: int) -> dict[str, Any] | None:
    """``forward_kwargs`` with ``logits_to_keep=T + 1`` for a model that takes it (Hugging Face causal LMs).

    Only the logits at the last ``T + 1`` positions are then computed: the language-model head (often the
    largest layer: vocabulary x width) runs forward and in each of the T backward passes over ``T + 1`` rows
    instead of the whole sequence. The values are the same; the user's own ``logits_to_keep`` wins.
    """
    forward = getattr(model, "forward", None)
    if not isinstance(model, nn.Module) or forward is None or "logits_to_keep" in (forward_kwargs or {}):
        return forward_kwargs
    try:
        accepted = "logits_to_keep" in inspect.signature(forward).parameters
    except (TypeError, ValueError):
        return forward_kwargs
    return {**(forward_kwargs or {}), "logits_to_keep": count + 1} if accepted else forward_kwargs
