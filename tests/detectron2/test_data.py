"""The Fashion-MNIST canvas detection set: exact boxes, valid COCO json, COCOEvaluator."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import require


@pytest.fixture(scope='module')
def canvas_set(tmp_path_factory):
    require('detectron2')
    from gkl_plugins.detectron2 import register_fashion_mnist_detection
    cache = tmp_path_factory.mktemp('canvas_cache')
    json_path = register_fashion_mnist_detection(
        'gkl_test_canvas', 'test', 24, cache_dir=str(cache), image_size=96, max_items=3,
        min_item_size=16, max_item_size=40, seed=11)
    return json_path, cache


def _load(json_path):
    with open(json_path) as f:
        return json.load(f)


def test_coco_json_is_valid(canvas_set):
    pycocotools_coco = require('pycocotools.coco')
    from gkl_plugins.data import FASHION_MNIST_CLASSES, load_fashion_mnist

    json_path, _ = canvas_set
    coco = pycocotools_coco.COCO(json_path)
    data = _load(json_path)
    assert len(coco.getImgIds()) == 24
    assert len({a['id'] for a in data['annotations']}) == len(data['annotations'])
    assert [(c['id'], c['name']) for c in data['categories']] == [
        (i + 1, name) for i, name in enumerate(FASHION_MNIST_CLASSES)]
    _, labels = load_fashion_mnist('test')
    for image in data['images']:
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image['id']))
        assert 1 <= len(anns) <= 3
        assert (image['width'], image['height']) == (96, 96)
    for ann in data['annotations']:
        assert ann['category_id'] == labels[ann['source_index']] + 1
        assert ann['iscrowd'] == 0 and ann['area'] == ann['bbox'][2] * ann['bbox'][3]
    # More than one item per canvas occurs, and more than one class.
    assert len(data['annotations']) > len(data['images'])
    assert len({a['category_id'] for a in data['annotations']}) > 3


def test_boxes_tightly_enclose_the_pasted_items(canvas_set):
    json_path, _ = canvas_set
    data = _load(json_path)
    folder = json_path.rsplit('/', 1)[0]
    by_image = {}
    for ann in data['annotations']:
        by_image.setdefault(ann['image_id'], []).append(ann['bbox'])
    for image in data['images']:
        pixels = np.asarray(Image.open(f"{folder}/{image['file_name']}"))
        assert pixels.shape == (96, 96) and pixels.dtype == np.uint8
        covered = np.zeros_like(pixels, dtype=bool)
        for x, y, w, h in by_image[image['id']]:
            assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= 96 and y + h <= 96
            crop = pixels[y:y + h, x:x + w]
            # Every edge of the box touches the item ...
            assert crop[0].any() and crop[-1].any() and crop[:, 0].any() and crop[:, -1].any()
            # ... and the one-pixel ring around it is background.
            y0, x0 = max(y - 1, 0), max(x - 1, 0)
            ring = pixels[y0:y + h + 1, x0:x + w + 1].copy()
            ring[y - y0:y - y0 + h, x - x0:x - x0 + w] = 0
            assert not ring.any()
            covered[y:y + h, x:x + w] = True
        # No item pixel lies outside the boxes.
        assert not pixels[~covered].any()


def test_generation_is_deterministic_by_seed(canvas_set, tmp_path):
    require('detectron2')
    from gkl_plugins.detectron2 import make_fashion_mnist_detection

    json_path, _ = canvas_set
    options = dict(split='test', num_images=24, image_size=96, max_items=3, min_item_size=16,
                   max_item_size=40)
    again = make_fashion_mnist_detection(str(tmp_path / 'a'), seed=11, **options)
    other = make_fashion_mnist_detection(str(tmp_path / 'b'), seed=12, **options)
    assert _load(again) == _load(json_path)
    assert _load(other)['annotations'] != _load(json_path)['annotations']
    first = np.asarray(Image.open(f"{json_path.rsplit('/', 1)[0]}/images/000005.png"))
    second = np.asarray(Image.open(str(tmp_path / 'a' / 'images' / '000005.png')))
    assert np.array_equal(first, second)


def _predictions(record, shift=0.0):
    from detectron2.structures import Boxes, BoxMode, Instances
    boxes = torch.tensor([BoxMode.convert(a['bbox'], a['bbox_mode'], BoxMode.XYXY_ABS)
                          for a in record['annotations']], dtype=torch.float32) + shift
    instances = Instances((record['height'], record['width']))
    instances.pred_boxes = Boxes(boxes)
    instances.scores = torch.ones(len(boxes))
    instances.pred_classes = torch.tensor([a['category_id'] for a in record['annotations']])
    return {'instances': instances}


def test_registered_set_evaluates_with_coco_evaluator(canvas_set):
    require('detectron2')
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.evaluation import COCOEvaluator

    from gkl_plugins.data import FASHION_MNIST_CLASSES

    records = DatasetCatalog.get('gkl_test_canvas')
    assert len(records) == 24
    assert MetadataCatalog.get('gkl_test_canvas').thing_classes == list(FASHION_MNIST_CLASSES)
    assert {a['category_id'] for r in records for a in r['annotations']} <= set(range(10))

    def evaluate(shift):
        evaluator = COCOEvaluator('gkl_test_canvas', output_dir=None, use_fast_impl=False)
        evaluator.reset()
        for record in records:
            evaluator.process([record], [_predictions(record, shift)])
        return evaluator.evaluate()['bbox']['AP']

    # The ground truth as predictions is perfect; boxes moved by 8 pixels are not.
    assert evaluate(0.0) == pytest.approx(100.0)
    assert evaluate(8.0) < 60.0


def test_sized_names_register_a_default_set_with_that_many_canvases(tmp_path):
    require('detectron2')
    from detectron2.data import DatasetCatalog

    from gkl_plugins.detectron2.data import register_sized_datasets

    paths = register_sized_datasets(
        ['fashion_mnist_det_val_3', 'fashion_mnist_det_train_0', 'coco_2017_val',
         'fashion_mnist_det_val'], cache_dir=str(tmp_path))
    assert list(paths) == ['fashion_mnist_det_val_3']
    with open(paths['fashion_mnist_det_val_3']) as f:
        coco = json.load(f)
    assert len(coco['images']) == 3
    records = DatasetCatalog.get('fashion_mnist_det_val_3')
    assert [r['file_name'].rsplit('/', 1)[-1] for r in records] == \
        [image['file_name'].rsplit('/', 1)[-1] for image in coco['images']]
