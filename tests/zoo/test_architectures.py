import pytest
import torch
import torch.nn.functional as F
from torch import nn

from taylorlens import zoo
from taylorlens.zoo.architectures import ACTIVATIONS, AnconaCNN, QuadraticModel
from taylorlens.zoo.efficientnet_lite import SamePaddingConv2d
from taylorlens.zoo.text import ImdbLanguageModel, ImdbLSTM, ImdbMLP

SMALL_MODELS = [name for name, info in zoo.models().items() if name != "efficientnet_lite0"]


@pytest.mark.parametrize("name", SMALL_MODELS)
def test_every_architecture_maps_its_input_shape_to_its_classes(name):
    info = zoo.models()[name]
    torch.manual_seed(0)
    model = zoo.build(name).eval()
    if info.dataset == "imdb":
        x = torch.randint(0, 5000, (2, *info.input_shape))
    else:
        x = torch.rand(2, *info.input_shape) * 2 - 1
    assert model(x).shape == (2, info.n_classes)


@pytest.mark.parametrize("name", SMALL_MODELS)
def test_nonlinearities_are_separate_non_inplace_modules(name):
    model = zoo.build(name)
    activations = [m for m in model.modules() if isinstance(m, tuple(ACTIVATIONS.values()))]
    assert len({id(m) for m in activations}) == len(activations)
    assert not any(getattr(m, "inplace", False) for m in model.modules())


def test_ancona_cnn_on_28x28_keeps_the_papers_valid_convolutions():
    # Keras "valid" 3x3 convolutions: 28 -> 26 -> 24, pool -> 12, so the dense layer sees 64 * 12 * 12.
    assert AnconaCNN(1, 28, "relu", padding=0).dense.in_features == 9216
    assert AnconaCNN(1, 8, "relu", padding=1).dense.in_features == 64 * 4 * 4


def test_quadratic_model_hessian_is_the_closed_form_one():
    torch.manual_seed(0)
    model = QuadraticModel(in_features=6, n_classes=3, rank=2)
    x = torch.randn(6)
    for c in range(3):
        hessian = torch.autograd.functional.hessian(lambda v, c=c: model(v[None])[0, c], x)
        torch.testing.assert_close(hessian, model.hessian(c))
        # second-order Taylor expansion is exact: f(x + d) = f(x) + g.d + d.H.d / 2
        d = torch.randn(6)
        gradient = torch.autograd.functional.jacobian(lambda v, c=c: model(v[None])[0, c], x)
        expected = model(x[None])[0, c] + gradient @ d + d @ model.hessian(c) @ d / 2
        torch.testing.assert_close(model((x + d)[None])[0, c], expected)


@pytest.mark.parametrize("architecture", [ImdbMLP, ImdbLSTM, ImdbLanguageModel])
def test_imdb_models_classify_their_embeddings_and_embed_padding_to_zero(architecture):
    torch.manual_seed(0)
    model = architecture().eval()
    tokens = torch.randint(0, 5000, (2, 500))
    assert isinstance(model.embed, nn.Embedding)
    torch.testing.assert_close(model.classify_embeddings(model.embed(tokens)), model(tokens))
    assert not model.embed(torch.zeros(1, 3, dtype=torch.long)).any()


def test_same_padding_puts_the_extra_row_bottom_right_like_tensorflow():
    torch.manual_seed(0)
    conv = SamePaddingConv2d(2, 3, 3, stride=2, bias=False)
    x = torch.randn(1, 2, 224, 224)
    expected = F.conv2d(F.pad(x, (0, 1, 0, 1)), conv.weight, stride=2)
    assert conv(x).shape == (1, 3, 112, 112)
    torch.testing.assert_close(conv(x), expected)


def test_models_registry_describes_paper_and_data():
    models = zoo.models()
    info = models["fashion_mnist_cnn_relu"]
    assert info.dataset == "fashion_mnist" and info.input_shape == (1, 28, 28) and info.n_classes == 10
    assert info.paper_accuracy == pytest.approx(0.991) and "Ancona" in info.paper
    assert models["digits_mlp_sigmoid"].paper_accuracy == pytest.approx(0.981)
    assert (
        models["cifar10_cnn"].paper_accuracy == pytest.approx(0.805) and not models["cifar10_cnn"].trainable
    )
    assert "Deng" in models["digits_c_sp"].paper and models["digits_c_sp"].paper_accuracy is None
    expected = {
        f"{p}_{kind}_{a}"
        for p in ("digits", "mnist5k", "fashion_mnist")
        for kind in ("mlp", "cnn")
        for a in ACTIVATIONS
    }
    expected |= {
        f"{p}_{m}" for p in ("digits", "mnist5k", "fashion_mnist") for m in ("poly", "m_sg", "c_sg", "c_sp")
    }
    expected |= {"cifar10_cnn", "imdb_mlp", "imdb_lstm", "imdb_language_model"}
    expected |= {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"}
    expected |= {"digits_cnn_relu_shuffled_labels"}
    assert set(models) == expected
    assert "Adebayo" in models["digits_cnn_relu_shuffled_labels"].paper
    models.clear()
    assert "digits_poly" in zoo.models()


def test_unknown_model_lists_known_names():
    with pytest.raises(KeyError, match="digits_mlp_relu"):
        zoo.build("resnet50")


def test_old_mnist_names_are_deprecated_aliases_of_the_fashion_mnist_models():
    assert "mnist_cnn_relu" not in zoo.models()
    with pytest.warns(DeprecationWarning, match="'mnist_cnn_relu'.*'fashion_mnist_cnn_relu'"):
        old = zoo.build("mnist_cnn_relu")
    with pytest.warns(FutureWarning):  # visible to users outside __main__ too
        zoo.build("mnist_poly")
    assert type(old) is type(zoo.build("fashion_mnist_cnn_relu"))
    assert not hasattr(zoo.datasets, "FASHION_MNIST_CLASSES")


def test_build_returns_plain_modules():
    assert isinstance(zoo.build("digits_cnn_softplus"), nn.Module)
