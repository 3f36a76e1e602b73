"""The offline Fashion-MNIST and CIFAR-PNG data sets, against the raw files."""
import os
import re

import numpy as np
import pytest

from tests.conftest import require

require('mmpretrain')
from mmpretrain.registry import DATASETS  # noqa: E402

from gkl_plugins.data import load_fashion_mnist  # noqa: E402
from gkl_plugins.mmpretrain.datasets import (  # noqa: E402
    CIFARPNGFolder,
    OfflineFashionMNIST,
    balanced_subset,
    foolbox_data_dir,
)


def test_registered():
    assert DATASETS.get('OfflineFashionMNIST') is OfflineFashionMNIST
    assert DATASETS.get('CIFARPNGFolder') is CIFARPNGFolder


def test_balanced_subset_is_fixed_and_balanced():
    _, labels = load_fashion_mnist('train')
    subset = balanced_subset(labels, 25, num_classes=10, seed=0)
    counts = np.bincount(labels[subset], minlength=10)
    assert counts.tolist() == [3] * 5 + [2] * 5
    assert len(set(subset.tolist())) == 25 and (np.diff(subset) > 0).all()
    np.testing.assert_array_equal(subset, balanced_subset(labels, 25, num_classes=10, seed=0))
    assert not np.array_equal(subset, balanced_subset(labels, 25, num_classes=10, seed=1))
    with pytest.raises(ValueError, match='num_samples'):
        balanced_subset(labels, 0, num_classes=10)


def test_fashion_mnist_items_are_the_raw_images():
    images, labels = load_fashion_mnist('test')
    full = OfflineFashionMNIST('test')
    assert len(full) == 10_000 and len(full.CLASSES) == 10
    subset = OfflineFashionMNIST('train', num_samples=30, subset_seed=3)
    train_images, train_labels = load_fashion_mnist('train')
    chosen = balanced_subset(train_labels, 30, num_classes=10, seed=3)
    for i, index in enumerate(chosen):
        info = subset.get_data_info(i)
        np.testing.assert_array_equal(info['img'], train_images[index])
        assert info['gt_label'] == train_labels[index]
    np.testing.assert_array_equal(full.get_data_info(9_999)['img'], images[9_999])


def test_missing_files_raise_with_instructions(tmp_path):
    from gkl_plugins.data import DataNotFoundError
    with pytest.raises(DataNotFoundError, match='apt-get install'):
        OfflineFashionMNIST('train', data_root=str(tmp_path))


@pytest.mark.parametrize('subset, classes', [('cifar10', 10), ('cifar100', 100)])
def test_cifar_pngs_with_labels_from_file_names(subset, classes):
    require('foolbox')  # the files are read, the package is never imported
    from PIL import Image
    folder = foolbox_data_dir()
    names = sorted(f for f in os.listdir(folder) if re.match(rf'{subset}_\d+_\d+\.png$', f))
    dataset = CIFARPNGFolder(subset, pipeline=[dict(type='PackInputs')])
    assert len(dataset) == len(names) == 20 and len(dataset.CLASSES) == classes
    for i, name in enumerate(names):
        info = dataset.get_data_info(i)
        assert info['gt_label'] == int(name[:-4].split('_')[-1])
        rgb = np.asarray(Image.open(os.path.join(folder, name)).convert('RGB'))
        np.testing.assert_array_equal(info['img'], rgb)
    packed = dataset[0]
    assert tuple(packed['inputs'].shape) == (3, 32, 32)
