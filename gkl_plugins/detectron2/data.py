"""A small detection data set made from real images: Fashion-MNIST items on black canvases.

Each canvas holds 1 to ``max_items`` Fashion-MNIST items, each resized to a random square size
and pasted where it does not touch another one. The box of an item is the tight box of its
non-zero pixels after resizing, so boxes are exact. Annotations are written in COCO format
to a cache folder (deterministic for a given seed and options) and registered in detectron2's
``DatasetCatalog`` / ``MetadataCatalog`` through ``load_coco_json``, so ``COCOEvaluator``
works on them (with ``use_fast_impl=False`` when detectron2 has no compiled operators).
"""
import json
import os
import re
from typing import Dict, Optional

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json
from PIL import Image

from ..data import FASHION_MNIST_CLASSES, load_fashion_mnist

__all__ = ['DEFAULT_DATASETS', 'default_cache_dir', 'make_fashion_mnist_detection',
           'register_default_datasets', 'register_fashion_mnist_detection',
           'register_sized_datasets']

# The data sets the shipped configs name; small enough to generate in a few seconds.
DEFAULT_DATASETS = {
    'fashion_mnist_det_train': dict(split='train', num_images=1000, seed=0),
    'fashion_mnist_det_val': dict(split='test', num_images=200, seed=1),
}
# A default name with a size appended, e.g. fashion_mnist_det_val_50: the same set with
# another number of canvases, for quick runs.
_SIZED_NAME = re.compile(r'^({})_([1-9][0-9]*)$'.format('|'.join(DEFAULT_DATASETS)))
_FORMAT_VERSION = 1
# Items are kept this many pixels apart, so every box is surrounded by background.
_GAP = 2
_PLACEMENT_TRIES = 50


def default_cache_dir() -> str:
    """``$GKL_CACHE_DIR/detectron2``, by default ``~/.cache/gkl_plugins/detectron2``."""
    root = os.environ.get('GKL_CACHE_DIR') or os.path.join(
        os.path.expanduser('~'), '.cache', 'gkl_plugins')
    return os.path.join(root, 'detectron2')


def _tight_box(patch: np.ndarray):
    rows = np.flatnonzero(patch.any(axis=1))
    cols = np.flatnonzero(patch.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


def _overlaps(rect, placed) -> bool:
    x, y, s = rect
    return any(x < px + ps + _GAP and px < x + s + _GAP and y < py + ps + _GAP
               and py < y + s + _GAP for px, py, ps in placed)


def make_fashion_mnist_detection(output_dir: str, *, split: str = 'train', num_images: int = 100,
                                 image_size: int = 128, max_items: int = 3,
                                 min_item_size: int = 20, max_item_size: int = 56,
                                 seed: int = 0, data_root: Optional[str] = None) -> str:
    """Write the canvases and their COCO annotations to ``output_dir`` unless already there.

    Args:
        output_dir (str): Folder for ``annotations.json`` and ``images/*.png``.
        split (str): Fashion-MNIST split the items come from, ``'train'`` or ``'test'``.
            Defaults to 'train'.
        num_images (int): Number of canvases. Defaults to 100.
        image_size (int): Side of the square grey-scale canvases. Defaults to 128.
        max_items (int): Most items per canvas; each canvas has at least one.
            Defaults to 3.
        min_item_size (int): Smallest side of a resized item. Defaults to 20.
        max_item_size (int): Largest side of a resized item. Defaults to 56.
        seed (int): Seed of the layout and of the choice of items. Defaults to 0.
        data_root (str, optional): Fashion-MNIST folder, see
            :func:`gkl_plugins.data.load_fashion_mnist`. Defaults to None.

    Returns:
        str: Path of the COCO json. Category ids are the Fashion-MNIST labels plus one; each
        annotation also records ``source_index``, the item's index in the split.
    """
    if not 1 <= min_item_size <= max_item_size <= image_size:
        raise ValueError(f'need 1 <= min_item_size <= max_item_size <= image_size, got '
                         f'{min_item_size}, {max_item_size}, {image_size}')
    if num_images < 1 or max_items < 1:
        raise ValueError('num_images and max_items must be at least 1')
    json_path = os.path.join(output_dir, 'annotations.json')
    if os.path.exists(json_path):
        return json_path

    sources, labels = load_fashion_mnist(split, root=data_root)
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(output_dir, 'images'), exist_ok=True)
    images, annotations = [], []
    for image_id in range(num_images):
        canvas = np.zeros((image_size, image_size), dtype=np.uint8)
        placed = []
        for _ in range(int(rng.integers(1, max_items + 1))):
            index = int(rng.integers(len(sources)))
            size = int(rng.integers(min_item_size, max_item_size + 1))
            item = np.asarray(Image.fromarray(sources[index]).resize((size, size),
                                                                     Image.BILINEAR))
            box = _tight_box(item)
            for _ in range(_PLACEMENT_TRIES):
                x, y = (int(v) for v in rng.integers(0, image_size - size + 1, size=2))
                if not _overlaps((x, y, size), placed):
                    break
            else:
                continue  # the canvas is too full for this item
            if box is None:
                continue
            placed.append((x, y, size))
            canvas[y:y + size, x:x + size] = item
            bx, by, bw, bh = box
            annotations.append({
                'id': len(annotations) + 1, 'image_id': image_id,
                'category_id': int(labels[index]) + 1,
                'bbox': [x + bx, y + by, bw, bh], 'area': float(bw * bh), 'iscrowd': 0,
                'source_index': index,
            })
        file_name = os.path.join('images', f'{image_id:06d}.png')
        Image.fromarray(canvas).save(os.path.join(output_dir, file_name))
        images.append({'id': image_id, 'file_name': file_name, 'width': image_size,
                       'height': image_size})

    coco = {
        'info': {'description': f'Fashion-MNIST {split} items pasted on {image_size}x'
                                f'{image_size} canvases', 'version': str(_FORMAT_VERSION)},
        'licenses': [],
        'images': images,
        'annotations': annotations,
        'categories': [{'id': i + 1, 'name': name, 'supercategory': 'clothing'}
                       for i, name in enumerate(FASHION_MNIST_CLASSES)],
    }
    # The json is written last and atomically: its presence means the set is complete.
    tmp_path = f'{json_path}.{os.getpid()}.tmp'
    with open(tmp_path, 'w') as f:
        json.dump(coco, f)
    os.replace(tmp_path, json_path)
    return json_path


def register_fashion_mnist_detection(name: str, split: str, num_images: int, *,
                                     cache_dir: Optional[str] = None, image_size: int = 128,
                                     max_items: int = 3, min_item_size: int = 20,
                                     max_item_size: int = 56, seed: int = 0,
                                     data_root: Optional[str] = None) -> str:
    """Make (or reuse) a canvas data set and register it under ``name``.

    The set lives in a sub-folder of ``cache_dir`` named after its options. A name
    registered before is replaced, so calling this again is harmless.

    Args:
        name (str): Data set name for ``DATASETS.TRAIN`` / ``DATASETS.TEST``.
        split (str): Fashion-MNIST split, ``'train'`` or ``'test'``.
        num_images (int): Number of canvases.
        cache_dir (str, optional): Where generated sets are kept. Defaults to
            :func:`default_cache_dir`.
        image_size, max_items, min_item_size, max_item_size, seed, data_root: As in
            :func:`make_fashion_mnist_detection`.

    Returns:
        str: Path of the COCO json.
    """
    options = dict(split=split, num_images=num_images, image_size=image_size,
                   max_items=max_items, min_item_size=min_item_size,
                   max_item_size=max_item_size, seed=seed)
    folder = ('v{}-{split}-n{num_images}-s{image_size}-k{max_items}-{min_item_size}to'
              '{max_item_size}-seed{seed}').format(_FORMAT_VERSION, **options)
    output_dir = os.path.join(cache_dir or default_cache_dir(), folder)
    json_path = make_fashion_mnist_detection(output_dir, data_root=data_root, **options)

    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    DatasetCatalog.register(name, lambda: load_coco_json(json_path, output_dir, name))
    MetadataCatalog.get(name).set(
        json_file=json_path, image_root=output_dir, evaluator_type='coco',
        thing_classes=list(FASHION_MNIST_CLASSES),
        thing_dataset_id_to_contiguous_id={i + 1: i for i in range(len(FASHION_MNIST_CLASSES))})
    return json_path


def register_default_datasets(cache_dir: Optional[str] = None) -> Dict[str, str]:
    """Register the data sets of :data:`DEFAULT_DATASETS`; returns their json paths."""
    return {name: register_fashion_mnist_detection(name, cache_dir=cache_dir, **spec)
            for name, spec in DEFAULT_DATASETS.items()}


def register_sized_datasets(names, cache_dir: Optional[str] = None) -> Dict[str, str]:
    """Register the names among ``names`` that are a default name with a size appended.

    ``fashion_mnist_det_train_200`` is :data:`DEFAULT_DATASETS`'s ``fashion_mnist_det_train``
    with 200 canvases. Other names are left alone.

    Args:
        names (Iterable[str]): Data set names, e.g. ``cfg.DATASETS.TRAIN + cfg.DATASETS.TEST``.
        cache_dir (str, optional): As in :func:`register_fashion_mnist_detection`.

    Returns:
        dict: The json path of each name registered.
    """
    registered = {}
    for name in names:
        match = _SIZED_NAME.match(name)
        if match:
            spec = dict(DEFAULT_DATASETS[match.group(1)], num_images=int(match.group(2)))
            registered[name] = register_fashion_mnist_detection(name, cache_dir=cache_dir,
                                                                **spec)
    return registered
