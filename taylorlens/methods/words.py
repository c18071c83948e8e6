"""One score per word of a token-id model (Ancona et al., ICLR 2018, App. C.4; Sundararajan et al. 2017,
Sec. 3.2).

Token ids are not differentiable, so any method explains the output of the model's embedding layer
(``layer=``, :mod:`taylorlens.engine.layers`): the model is called on the ids themselves and the
attribution has the layer's shape ``(N, T, D)``. A word's score is the sum over its embedding components
(Ancona et al.: "summing up the attributions over the embedding vector components"),
``sum_over(attribute(model, ids, target, method, layer=...), -1)``. The reference ("absent word") value is
the zero embedding: the default baseline of IG and DeepLIFT and the occlusion value, and what the zoo's
padding id 0 embeds to.

Occlusion-1 over words occludes a word's whole embedding (window ``(1, D)``): every component of word
``i`` then holds the same drop ``f(x) - f(x with word i's embedding = 0)``, and the word's score is that
drop (the mean over its components, not D times it). Windows of several words (``window=(k, D)``) give each
word the mean drop of the windows covering it.

Recurrent models: DeepLIFT and epsilon-LRP refuse LSTMs/GRUs/RNNs with their papers' ``products="gradient"``
(the gates' products have no such rule), so on a model containing one of them ``products="symmetric"`` is
chosen unless the caller gave ``products`` (:class:`taylorlens.methods.modified.DeepLift`).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from taylorlens.engine import Request
from taylorlens.engine.checks import AttributionInputError
from taylorlens.engine.layout import sum_over
from taylorlens.methods.registry import attribute, method_class

#: The embedding layer of the zoo's text models (``taylorlens.zoo.text``).
ZOO_EMBEDDING = "embed"
#: Methods whose default ``products="gradient"`` refuses recurrent layers.
PRODUCT_RULE_METHODS = ("deeplift", "epsilon_lrp")
RECURRENT_LAYERS = (nn.RNNBase, nn.RNNCellBase)


def word_attributions(
    model: nn.Module,
    ids: Tensor,
    target: Any = None,
    method: str = "integrated_gradients",
    *,
    layer: Any = None,
    **options: Any,
) -> Tensor:
    """Per-word scores ``(N, T)`` of ``model``'s output ``target`` on token ids ``(N, T)``.

    ``layer`` is the embedding layer (a module or its dotted name); by default the submodule ``embed``
    (the zoo's text models) or ``model.get_input_embeddings()`` (Hugging Face models). ``method`` and
    ``options`` are those of :func:`taylorlens.attribute` (``forward_kwargs=``, ``output=``, a ``(N, K)``
    target giving ``(N, K, T)``, ... included); the choices of the module docstring apply to occlusion
    (``window=(1, D)``) and to DeepLIFT / epsilon-LRP on recurrent models (``products="symmetric"``).
    """
    layer = embedding_layer(model) if layer is None else layer
    name = method_class(method).name
    if name in PRODUCT_RULE_METHODS and "products" not in options and is_recurrent(model):
        options["products"] = "symmetric"
    whole_words = False
    if name == "occlusion":
        width = _embedding_width(model, ids, layer, options)
        window = options.setdefault("window", (1, width))
        whole_words = (window[-1] if isinstance(window, tuple | list) else window) == width
    maps = attribute(model, ids, target, name, layer=layer, **options)
    return maps.mean(-1) if whole_words else sum_over(maps, -1)


def embedding_layer(model: nn.Module) -> nn.Module:
    """The default embedding layer: ``model.embed``, else ``model.get_input_embeddings()``."""
    embed = getattr(model, ZOO_EMBEDDING, None)
    if isinstance(embed, nn.Module):
        return embed
    if callable(getattr(model, "get_input_embeddings", None)):
        return model.get_input_embeddings()
    raise AttributionInputError(
        f"model {type(model).__name__} has neither an embedding submodule `{ZOO_EMBEDDING}` nor "
        "get_input_embeddings(); give the embedding layer with layer= (a module or its dotted name)"
    )


def is_recurrent(model: nn.Module) -> bool:
    """Whether ``model`` contains an LSTM, GRU or RNN layer or cell."""
    return any(isinstance(module, RECURRENT_LAYERS) for module in model.modules())


def _embedding_width(model: nn.Module, ids: Tensor, layer: Any, options: dict[str, Any]) -> int:
    """``D``, the last dimension of the explained layer's value (read without a pass for ``nn.Embedding``)."""
    calling = {key: options[key] for key in ("layer_side", "layer_call", "forward_kwargs", "output") if key in options}
    module = layer if isinstance(layer, nn.Module) else dict(model.named_modules()).get(layer)
    if isinstance(module, nn.Embedding) and calling.get("layer_side", "output") == "output":
        return module.embedding_dim
    return Request.build(model, ids, None, options.get("batch_size"), layer=layer, **calling).inputs.shape[-1]
