"""GKL distillation for Detectron2.

Importing this package imports detectron2 and registers ``GKLDistillationRCNN`` in its
``META_ARCH_REGISTRY``. Typical use, as in ``gkl-d2-train``::

    from gkl_plugins.detectron2 import GKLTrainer, load_gkl_config, register_default_datasets

    register_default_datasets()  # the Fashion-MNIST canvas sets the shipped configs name
    cfg = load_gkl_config('configs/detectron2/faster_rcnn_R18_FPN_gkl_distill.yaml')
    trainer = GKLTrainer(cfg)  # adds GKLHook for the class prior and the warm-up
    trainer.resume_or_load(resume=False)
    trainer.train()
"""
from .config import (
    add_gkl_config,
    build_gkl_loss,
    check_softmax_box_head,
    get_teacher_cfg,
    load_gkl_config,
)
from .data import (
    make_fashion_mnist_detection,
    register_default_datasets,
    register_fashion_mnist_detection,
    register_sized_datasets,
)
from .hooks import GKLHook
from .modeling import GKLDistillationRCNN
from .train_net import GKLTrainer

__all__ = ['GKLDistillationRCNN', 'GKLHook', 'GKLTrainer', 'add_gkl_config', 'build_gkl_loss',
           'check_softmax_box_head', 'get_teacher_cfg', 'load_gkl_config',
           'make_fashion_mnist_detection', 'register_default_datasets',
           'register_fashion_mnist_detection', 'register_sized_datasets']
