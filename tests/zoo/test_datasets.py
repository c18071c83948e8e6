import numpy as np
import pytest
import torch

from taylorlens import zoo
from taylorlens.zoo.datasets import FASHION_MNIST_INSTALL, MissingDataError, fashion_mnist
from taylorlens.zoo.idx import write_idx

from .test_idx import needs_fashion_mnist


def test_digits_split_is_fixed_stratified_and_scaled_to_minus_one_one():
    x_train, y_train = zoo.dataset("digits", "train")
    x_test, y_test = zoo.dataset("digits", "test")
    assert x_train.shape == (1347, 1, 8, 8) and x_test.shape == (450, 1, 8, 8)
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.int64
    # sklearn's digits are integers 0..16; x / 8 - 1 maps 0 -> -1 (background) and 16 -> 1 (stroke).
    assert x_test.min() == -1.0 and x_test.max() == 1.0
    assert set(torch.unique(x_test * 8 + 8).tolist()) <= set(range(17))
    test_counts = torch.bincount(y_test, minlength=10)
    all_counts = test_counts + torch.bincount(y_train, minlength=10)
    assert all_counts.tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]  # load_digits' classes
    assert ((test_counts - all_counts * 0.25).abs() <= 1).all()  # stratified 25 % test split
    again_x, again_y = zoo.dataset("digits", "test")
    assert torch.equal(again_x, x_test) and torch.equal(again_y, y_test)


@needs_fashion_mnist
def test_fashion_mnist_official_split_in_minus_one_one():
    x, y = zoo.dataset("fashion_mnist", "test")
    assert x.shape == (10000, 1, 28, 28) and x.dtype == torch.float32
    assert x.min() == -1.0 and x.max() == 1.0
    assert y[:4].tolist() == [9, 2, 1, 1]
    x_train, _ = zoo.dataset("fashion_mnist", "train")
    assert x_train.shape == (60000, 1, 28, 28)


def test_missing_fashion_mnist_names_the_apt_package(tmp_path):
    with pytest.raises(MissingDataError) as error:
        fashion_mnist("test", directory=tmp_path)
    assert FASHION_MNIST_INSTALL == "apt-get install dataset-fashion-mnist"
    assert FASHION_MNIST_INSTALL in str(error.value) and str(tmp_path) in str(error.value)


def test_datasets_without_offline_source_explain_why():
    with pytest.raises(MissingDataError, match="not shipped by any Debian or PyPI package"):
        zoo.dataset("cifar10")


def test_unknown_dataset_and_split_are_rejected_by_name():
    with pytest.raises(ValueError, match="'mnist_full'"):
        zoo.dataset("mnist_full")
    with pytest.raises(ValueError, match="'valid'"):
        zoo.dataset("digits", "valid")


def test_mnist_idx_reads_user_files_with_dot_names_and_scales_pixels(tmp_path):
    images = np.array([[[0, 255], [51, 204]]] * 3, dtype=np.uint8)
    write_idx(tmp_path / "t10k-images.idx3-ubyte", images)
    write_idx(tmp_path / "t10k-labels.idx1-ubyte", np.array([4, 0, 9], dtype=np.uint8))
    x, y = zoo.mnist_idx(tmp_path, "test")
    assert x.shape == (3, 1, 2, 2) and y.tolist() == [4, 0, 9]
    torch.testing.assert_close(x[0, 0], torch.tensor([[-1.0, 1.0], [-0.6, 0.6]]))
    with pytest.raises(MissingDataError, match="train-images/labels"):
        zoo.mnist_idx(tmp_path, "train")


def test_npz_dataset_round_trip_and_missing_array(tmp_path):
    path = tmp_path / "user.npz"
    np.savez(path, x=np.ones((2, 3, 4, 4), dtype=np.float64), y=np.array([1, 0]))
    x, y = zoo.npz_dataset(path)
    assert x.dtype == torch.float32 and x.shape == (2, 3, 4, 4) and y.tolist() == [1, 0]
    np.savez(path, x=np.ones(2))
    with pytest.raises(KeyError, match=r"\['y'\]"):
        zoo.npz_dataset(path)
