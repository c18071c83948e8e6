import gzip

import numpy as np
import pytest

from taylorlens.zoo.datasets import FASHION_MNIST_DIR
from taylorlens.zoo.idx import read_idx, write_idx

FASHION_INSTALLED = (FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file()
needs_fashion_mnist = pytest.mark.skipif(
    not FASHION_INSTALLED, reason="Fashion-MNIST not installed: apt-get install dataset-fashion-mnist"
)


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
        np.array([-5, 0, 7], dtype=np.int8),
        np.array([[1, -70000], [3, 2**31 - 1]], dtype=np.int32),
        np.array([0.5, -1.25, 3e-8]),
    ],
)
def test_idx_round_trip_plain_and_gzip(tmp_path, array, suffix):
    path = tmp_path / f"data-idx{suffix}"
    write_idx(path, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")
    loaded = read_idx(path)
    assert loaded.dtype == array.dtype.newbyteorder("=")
    np.testing.assert_array_equal(loaded, array)


def test_idx_header_is_the_documented_byte_layout(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    write_idx(path, np.array([3, 1, 4], dtype=np.uint8))
    assert path.read_bytes() == b"\x00\x00\x08\x01" + b"\x00\x00\x00\x03" + b"\x03\x01\x04"


def test_idx_gzip_detected_by_content_not_name(tmp_path):
    path = tmp_path / "no-suffix"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x02\x00\x00\x00\x01\x00\x00\x00\x02\x07\x09"))
    np.testing.assert_array_equal(read_idx(path), np.array([[7, 9]], dtype=np.uint8))


def test_idx_rejects_truncated_and_foreign_files(tmp_path):
    truncated = tmp_path / "truncated"
    truncated.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02")
    with pytest.raises(ValueError, match="5 bytes"):
        read_idx(truncated)
    foreign = tmp_path / "foreign.png"
    foreign.write_bytes(b"\x89PNG\r\n")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(foreign)


@needs_fashion_mnist
def test_idx_reads_real_fashion_mnist_test_files():
    images = read_idx(FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert images.max() == 255 and images.min() == 0
    # Fashion-MNIST's test set is balanced (1,000 per class); its first items are an ankle boot, a pullover
    # and two trousers (labels 9, 2, 1, 1).
    np.testing.assert_array_equal(np.bincount(labels), np.full(10, 1000))
    np.testing.assert_array_equal(labels[:4], [9, 2, 1, 1])
