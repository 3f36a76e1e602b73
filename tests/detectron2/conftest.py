"""Tiny detectors and a tiny canvas data set for the detectron2 tests.

The shipped configs are used with overrides that shrink images to 64x64 and the models to
an R-18-FPN with narrow heads, so a training iteration takes a fraction of a second on CPU.
"""
import os

import pytest
import torch

from tests.conftest import require

CONFIG_DIR = os.path.join(os.path.dirname(__file__), '..', '..', 'configs', 'detectron2')
DISTILL_CONFIG = os.path.abspath(os.path.join(CONFIG_DIR, 'faster_rcnn_R18_FPN_gkl_distill.yaml'))
BASE_CONFIG = os.path.abspath(os.path.join(CONFIG_DIR, 'Base-FashionMNIST-RCNN-FPN.yaml'))
TRAIN_SET = 'gkl_test_fashion_mnist_det'

# Applies to student and teacher alike.
SHRINK = {
    'MODEL.RESNETS.DEPTH': 18, 'MODEL.RESNETS.RES2_OUT_CHANNELS': 64,
    'MODEL.FPN.OUT_CHANNELS': 16, 'MODEL.ROI_BOX_HEAD.FC_DIM': 32,
    'MODEL.ANCHOR_GENERATOR.SIZES': [[8], [16], [32], [64], [128]],
    'MODEL.RPN.PRE_NMS_TOPK_TRAIN': 200, 'MODEL.RPN.POST_NMS_TOPK_TRAIN': 32,
    'MODEL.RPN.PRE_NMS_TOPK_TEST': 100, 'MODEL.RPN.POST_NMS_TOPK_TEST': 32,
    'MODEL.RPN.BATCH_SIZE_PER_IMAGE': 32, 'MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE': 16,
}


@pytest.fixture(scope='session')
def tiny_dataset(tmp_path_factory):
    """Eight 64x64 canvases with one or two items, registered as ``TRAIN_SET``."""
    require('detectron2')
    from gkl_plugins.detectron2 import register_fashion_mnist_detection
    cache = tmp_path_factory.mktemp('d2_cache')
    return register_fashion_mnist_detection(
        TRAIN_SET, 'test', 8, cache_dir=str(cache), image_size=64, max_items=2,
        min_item_size=14, max_item_size=28, seed=3)


@pytest.fixture
def make_cfg(tmp_path, tiny_dataset):
    """``make_cfg(**overrides)``: a frozen tiny distillation config writing to ``tmp_path``."""
    require('detectron2')
    from detectron2.config import get_cfg

    from gkl_plugins.detectron2 import add_gkl_config

    torch.set_num_threads(1)
    teacher_cfg = get_cfg()
    teacher_cfg.merge_from_file(BASE_CONFIG)
    for key, value in SHRINK.items():
        teacher_cfg.merge_from_list([key, value])
    teacher_yaml = tmp_path / 'teacher.yaml'
    teacher_yaml.write_text(teacher_cfg.dump())

    def make(**overrides):
        cfg = add_gkl_config(get_cfg())
        cfg.merge_from_file(DISTILL_CONFIG)
        options = dict(SHRINK)
        options.update({
            'MODEL.GKL.TEACHER.CONFIG_FILE': str(teacher_yaml),
            'MODEL.GKL.TEACHER.WEIGHTS': '',
            'INPUT.MIN_SIZE_TRAIN': (64,), 'INPUT.MAX_SIZE_TRAIN': 64,
            'INPUT.MIN_SIZE_TEST': 64, 'INPUT.MAX_SIZE_TEST': 64,
            'DATASETS.TRAIN': (TRAIN_SET,), 'DATASETS.TEST': (),
            'DATALOADER.NUM_WORKERS': 0, 'SOLVER.IMS_PER_BATCH': 2, 'SOLVER.BASE_LR': 0.01,
            'SOLVER.STEPS': (), 'SOLVER.WARMUP_ITERS': 0, 'SOLVER.MAX_ITER': 4,
            'SOLVER.CHECKPOINT_PERIOD': 1000, 'OUTPUT_DIR': str(tmp_path / 'out'), 'SEED': 0,
        })
        options.update({key.replace('__', '.'): value for key, value in overrides.items()})
        for key, value in options.items():
            cfg.merge_from_list([key, value])
        cfg.freeze()
        return cfg

    return make

