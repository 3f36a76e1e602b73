"""Offline image-classification data sets registered in mmpretrain's ``DATASETS``.

* :class:`OfflineFashionMNIST`: Fashion-MNIST read from its idx files by
  :func:`gkl_plugins.data.load_fashion_mnist` (mmpretrain's own ``FashionMNIST`` checks the
  files against upstream checksums and refuses re-compressed copies such as Debian's), with
  an optional fixed, class-balanced subset.
* :class:`CIFARPNGFolder`: a folder of CIFAR images saved as PNG files whose names end with
  the label, such as the real CIFAR-10/100 test images shipped in the ``foolbox`` package.
"""
import os
import re
from typing import List, Optional

import numpy as np
from mmpretrain.datasets import BaseDataset
from mmpretrain.datasets.categories import CIFAR10_CATEGORIES, CIFAR100_CATEGORIES
from mmpretrain.registry import DATASETS

from ..data import FASHION_MNIST_CLASSES, load_fashion_mnist

__all__ = ['OfflineFashionMNIST', 'CIFARPNGFolder', 'balanced_subset', 'foolbox_data_dir']


def balanced_subset(labels: np.ndarray, num_samples: int, *, num_classes: int,
                    seed: int = 0) -> np.ndarray:
    """Indices of a fixed subset with (nearly) the same number of samples in every class.

    Each class gets ``num_samples // num_classes`` samples, and the first
    ``num_samples % num_classes`` classes one more, drawn by a generator seeded with
    ``seed``; the same arguments always give the same subset.

    Args:
        labels (np.ndarray): ``(N,)`` class indices in ``[0, num_classes)``.
        num_samples (int): Size of the subset.
        num_classes (int): Number of classes.
        seed (int): Seed of the draw. Defaults to 0.

    Returns:
        np.ndarray: ``(num_samples,)`` sorted indices into ``labels``.
    """
    if num_samples < 1 or num_samples > len(labels):
        raise ValueError(f'num_samples must lie in [1, {len(labels)}], got {num_samples}')
    rng = np.random.default_rng(seed)
    base, extra = divmod(num_samples, num_classes)
    chosen = []
    for cls in range(num_classes):
        members = np.flatnonzero(labels == cls)
        want = base + (1 if cls < extra else 0)
        if want > len(members):
            raise ValueError(
                f'class {cls} has only {len(members)} samples, {want} requested: lower '
                'num_samples')
        chosen.append(rng.permutation(members)[:want])
    return np.sort(np.concatenate(chosen))


@DATASETS.register_module()
class OfflineFashionMNIST(BaseDataset):
    """Fashion-MNIST from local idx files, optionally a fixed class-balanced subset.

    Each item holds ``img``, a ``(28, 28)`` uint8 array, and ``gt_label``; mmpretrain's
    ``PackInputs`` turns the image into a ``(1, 28, 28)`` tensor.

    Args:
        split (str): ``'train'`` (60,000 images) or ``'test'`` (10,000).
            Defaults to ``'train'``.
        data_root (str, optional): Folder with the idx files; see
            :func:`gkl_plugins.data.fashion_mnist_root`. Defaults to None.
        num_samples (int, optional): Keep only this many samples, balanced over the
            classes (see :func:`balanced_subset`). Defaults to None (all).
        subset_seed (int): Seed of the subset. Defaults to 0.
        **kwargs: Other arguments of mmpretrain's ``BaseDataset`` (``pipeline``,
            ``test_mode``, ...).

    Raises:
        gkl_plugins.data.DataNotFoundError: When the files are missing (with instructions).
    """

    METAINFO = {'classes': FASHION_MNIST_CLASSES}

    def __init__(self, split: str = 'train', *, data_root: Optional[str] = None,
                 num_samples: Optional[int] = None, subset_seed: int = 0, **kwargs):
        if split not in ('train', 'test'):
            raise ValueError(f'split must be "train" or "test", got {split!r}')
        self.split = split
        self.num_samples = num_samples
        self.subset_seed = subset_seed
        self._root = data_root
        super().__init__(ann_file='', data_root=data_root or '', **kwargs)

    def load_data_list(self) -> List[dict]:
        images, labels = load_fashion_mnist(self.split, root=self._root)
        indices = np.arange(len(labels))
        if self.num_samples is not None:
            indices = balanced_subset(labels, self.num_samples,
                                      num_classes=len(FASHION_MNIST_CLASSES),
                                      seed=self.subset_seed)
        return [{'img': images[i], 'gt_label': int(labels[i])} for i in indices]

    def extra_repr(self) -> List[str]:
        return [f'Split: \t{self.split}', f'Subset: \t{self.num_samples or "all"}']


def foolbox_data_dir() -> str:
    """The ``data`` folder of the installed ``foolbox`` package, found without importing it
    (foolbox's own imports are not needed to read its images)."""
    import importlib.util
    spec = importlib.util.find_spec('foolbox')
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            'foolbox is not installed; install the test extra (pip install '
            '"gkl-plugins[test]") or pass folder= to CIFARPNGFolder')
    return os.path.join(list(spec.submodule_search_locations)[0], 'data')


@DATASETS.register_module()
class CIFARPNGFolder(BaseDataset):
    """CIFAR images stored as PNG files named ``<subset>_<index>_<label>.png``.

    The default folder is the one shipped in the ``foolbox`` package: 20 real test images
    of CIFAR-10 and 20 of CIFAR-100. Each item holds ``img``, a ``(32, 32, 3)`` uint8 array
    in RGB order like mmpretrain's ``CIFAR10``/``CIFAR100`` items, so their pipelines and
    data preprocessors apply unchanged.

    Args:
        subset (str): ``'cifar10'`` or ``'cifar100'``. Defaults to ``'cifar10'``.
        folder (str, optional): Folder of the PNG files. Defaults to
            :func:`foolbox_data_dir`.
        **kwargs: Other arguments of mmpretrain's ``BaseDataset``.
    """

    _CLASSES = {'cifar10': CIFAR10_CATEGORIES, 'cifar100': CIFAR100_CATEGORIES}

    def __init__(self, subset: str = 'cifar10', *, folder: Optional[str] = None, **kwargs):
        if subset not in self._CLASSES:
            raise ValueError(f'subset must be one of {tuple(self._CLASSES)}, got {subset!r}')
        self.subset = subset
        self.folder = folder
        metainfo = kwargs.pop('metainfo', None) or {'classes': self._CLASSES[subset]}
        super().__init__(ann_file='', metainfo=metainfo, **kwargs)

    def load_data_list(self) -> List[dict]:
        import mmcv
        folder = self.folder or foolbox_data_dir()
        pattern = re.compile(rf'^{self.subset}_(\d+)_(\d+)\.png$')
        found = []
        for name in os.listdir(folder):
            match = pattern.match(name)
            if match:
                found.append((int(match.group(1)), int(match.group(2)), name))
        if not found:
            raise FileNotFoundError(f'no {self.subset}_<index>_<label>.png files in {folder}')
        data_list = []
        for _, label, name in sorted(found):
            path = os.path.join(folder, name)
            data_list.append({'img': mmcv.imread(path, channel_order='rgb'),
                              'gt_label': label, 'img_path': path})
        return data_list
