"""load_fashion_mnist on the real Fashion-MNIST files (Debian's dataset-fashion-mnist)."""
import gzip
import os
import shutil

import numpy as np
import pytest

from gkl_plugins.data import DataNotFoundError, fashion_mnist_root, load_fashion_mnist
from tests.conftest import IN_CI

FILES = {
    'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
    'test': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'),
}


@pytest.fixture(scope='module')
def real_root():
    root = fashion_mnist_root()
    if not all(os.path.exists(os.path.join(root, name)) for names in FILES.values()
               for name in names):
        message = (f'Fashion-MNIST is not in {root}: run scripts/get_data.sh or '
                   'apt-get install dataset-fashion-mnist')
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return root


@pytest.fixture(scope='module')
def test_split(real_root):
    return load_fashion_mnist('test', root=real_root)


def test_train_split_is_the_real_balanced_data(real_root):
    images, labels = load_fashion_mnist('train', root=real_root)
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (60000,) and labels.dtype == np.int64
    assert labels.min() == 0 and labels.max() == 9
    assert np.bincount(labels, minlength=10).tolist() == [6000] * 10
    # The published per-pixel mean of the training images is 0.2860.
    assert abs(images.mean() / 255 - 0.2860) < 5e-4


def test_test_split_is_the_real_balanced_data(test_split):
    images, labels = test_split
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == [1000] * 10
    assert 0 < int(images.max()) <= 255 and len(np.unique(images[:100])) > 200


def test_uncompressed_copy_gives_the_same_arrays(real_root, test_split, tmp_path):
    for name in FILES['test']:
        with gzip.open(os.path.join(real_root, name), 'rb') as src, \
                open(tmp_path / name[:-3], 'wb') as dst:
            shutil.copyfileobj(src, dst)
    images, labels = load_fashion_mnist('test', root=str(tmp_path))
    assert np.array_equal(images, test_split[0]) and np.array_equal(labels, test_split[1])


def test_root_from_the_environment(real_root, test_split, tmp_path, monkeypatch):
    for name in FILES['test']:
        os.symlink(os.path.join(real_root, name), tmp_path / name)
    monkeypatch.setenv('GKL_FASHION_MNIST_ROOT', str(tmp_path))
    images, _ = load_fashion_mnist('test')
    assert np.array_equal(images, test_split[0])


def test_missing_folder_says_how_to_install(tmp_path):
    missing = tmp_path / 'nowhere'
    with pytest.raises(DataNotFoundError) as info:
        load_fashion_mnist('train', root=str(missing))
    message = str(info.value)
    assert 'apt-get install -y dataset-fashion-mnist' in message
    assert str(missing) in message and 'GKL_FASHION_MNIST_ROOT' in message
    assert isinstance(info.value, FileNotFoundError)


def test_bad_split_and_bad_file(tmp_path):
    with pytest.raises(ValueError, match='split must be'):
        load_fashion_mnist('val', root=str(tmp_path))
    for name in FILES['test']:
        (tmp_path / name[:-3]).write_bytes(b'\x00\x00\x0c\x03' + bytes(16))
    with pytest.raises(ValueError, match='not an idx file of unsigned bytes'):
        load_fashion_mnist('test', root=str(tmp_path))
