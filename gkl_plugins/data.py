"""Readers for the real data sets that ship offline; torch and numpy only."""
import gzip
import os
from typing import Optional, Tuple

import numpy as np

FASHION_MNIST_CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
                         'Shirt', 'Sneaker', 'Bag', 'Ankle boot')
# Debian's dataset-fashion-mnist package installs the standard idx files here.
DEFAULT_FASHION_MNIST_ROOT = '/usr/share/datasets/fashion-mnist'
_FILES = {
    'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
    'test': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'),
}
_MISSING_HELP = (
    'Fashion-MNIST was not found in {root}. Install it with\n'
    '    sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist\n'
    'or download the four idx .gz files of Fashion-MNIST into a folder and point '
    'GKL_FASHION_MNIST_ROOT (or the data_root option) at it.')


class DataNotFoundError(FileNotFoundError):
    """A data set is missing; the message says how to get it."""


def fashion_mnist_root(root: Optional[str] = None) -> str:
    """The folder holding Fashion-MNIST: ``root``, ``$GKL_FASHION_MNIST_ROOT`` or Debian's."""
    return root or os.environ.get('GKL_FASHION_MNIST_ROOT') or DEFAULT_FASHION_MNIST_ROOT


def _read_idx(path: str) -> np.ndarray:
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rb') as f:
        data = f.read()
    magic = int.from_bytes(data[:4], 'big')
    if magic >> 8 != 0x08:
        raise ValueError(f'{path} is not an idx file of unsigned bytes (magic {magic:#x})')
    ndim = magic & 0xFF
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_fashion_mnist(split: str = 'train',
                       root: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Load Fashion-MNIST from its idx files.

    The files are read and checked by content, not by checksum, so re-compressed copies
    (such as Debian's) are accepted.

    Args:
        split (str): ``'train'`` (60,000 images) or ``'test'`` (10,000).
        root (str, optional): Folder with the idx files. Defaults to
            :func:`fashion_mnist_root`.

    Returns:
        tuple: ``(N, 28, 28)`` uint8 images and ``(N,)`` int64 labels in ``[0, 9]``.

    Raises:
        DataNotFoundError: If the files are missing, with instructions.
    """
    if split not in _FILES:
        raise ValueError(f'split must be "train" or "test", got {split!r}')
    root = fashion_mnist_root(root)
    paths = []
    for name in _FILES[split]:
        candidates = [os.path.join(root, name), os.path.join(root, name[:-3])]
        found = next((p for p in candidates if os.path.exists(p)), None)
        if found is None:
            raise DataNotFoundError(_MISSING_HELP.format(root=root))
        paths.append(found)
    images, labels = (_read_idx(p) for p in paths)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f'unexpected Fashion-MNIST file contents in {root}')
    return images, labels.astype(np.int64)
