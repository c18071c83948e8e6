"""Word-level attributions of token-id models (Ancona et al., ICLR 2018, App. C.4; Sundararajan et al. 2017,
Sec. 3.2).

Token ids are not differentiable, so the attribution is taken at the output of the model's embedding layer
``model.embed`` and a word's score is the sum over its embedding components (Ancona et al.: "attribution
per word = sum over its embedding components"). The explained function is ``model.classify_embeddings``
on ``model.embed(ids)``, which equals ``model(ids)``; a word's reference ("absent") value is the zero
embedding, which is what padding embeds to. Occlusion-1 over words occludes a word's whole embedding
(window ``(1, D)``), so every component holds the same drop ``f(x) - f(x with word i's embedding = 0)``
and the word's score is that drop, not D times it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from taylorlens.methods import attribute


def embedding_split(model: nn.Module, ids: Tensor) -> tuple[Callable[[Tensor], Tensor], Tensor]:
    """``(model.classify_embeddings, model.embed(ids))``: the function and input attributions are taken on."""
    if not hasattr(model, "embed") or not hasattr(model, "classify_embeddings"):
        raise TypeError(
            f"model {type(model).__name__} must have an embedding submodule `embed` and a method "
            "`classify_embeddings(embeddings)` to be explained per word"
        )
    with torch.no_grad():
        embeddings = model.embed(ids)
    return model.classify_embeddings, embeddings


def word_attributions(
    model: nn.Module, ids: Tensor, target: Any = None, method: str = "integrated_gradients", **options: Any
) -> Tensor:
    """Per-word scores ``(N, T)`` of ``model``'s output ``target`` on token ids ``(N, T)``.

    ``method`` and ``options`` are those of :func:`taylorlens.methods.attribute`, applied at the embedding
    output; ``occlusion`` defaults to Occlusion-1 over words (``window=(1, D)``).
    """
    classify, embeddings = embedding_split(model, ids)
    if method == "occlusion":
        options.setdefault("window", (1, embeddings.shape[-1]))
    maps = attribute(classify, embeddings, target, method, **options)
    return maps.mean(-1) if method == "occlusion" else maps.sum(-1)

