"""GKL distillation for Detectron2.

Importing this package imports detectron2 and registers ``GKLDistillationRCNN`` in its
``META_ARCH_REGISTRY``. Typical use, as in ``gkl-d2-train``::

    from detectron2.config import get_cfg
    from gkl_plugins.detectron2 import GKLTrainer, add_gkl_config

    cfg = add_gkl_config(get_cfg())
    cfg.merge_from_file('configs/detectron2/faster_rcnn_R18_FPN_gkl_distill.yaml')
    trainer = GKLTrainer(cfg)  # adds GKLHook for the class prior and the warm-up
    trainer.resume_or_load(resume=False)
    trainer.train()
"""
from .config import add_gkl_config, build_gkl_loss, check_softmax_box_head, get_teacher_cfg
from .data import (
    make_fashion_mnist_detection,
    register_default_datasets,
    register_fashion_mnist_detection,
)
from .hooks import GKLHook
from .modeling import GKLDistillationRCNN
from .train_net import GKLTrainer

__all__ = ['GKLDistillationRCNN', 'GKLHook', 'GKLTrainer', 'add_gkl_config', 'build_gkl_loss',
           'check_softmax_box_head', 'get_teacher_cfg', 'make_fashion_mnist_detection',
           'register_default_datasets', 'register_fashion_mnist_detection']
