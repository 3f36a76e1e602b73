"""Shared set-up of the mmpretrain tests: small versions of the shipped configs."""
import copy
import os

from tests.conftest import require

CONFIG_DIR = os.path.join(os.path.dirname(__file__), '..', '..', 'configs', 'mmpretrain')
# CIFAR-10 channel statistics in 0..255 pixel units, written here independently of the code.
CIFAR_MEAN = (125.307, 122.961, 113.866)
CIFAR_STD = (62.993, 62.089, 66.705)


def load_config(relative_path: str):
    """A shipped config, loaded through mmengine."""
    mmengine_config = require('mmengine.config')
    return mmengine_config.Config.fromfile(os.path.join(CONFIG_DIR, relative_path))


def shrink_cifar_config(cfg, work_dir: str, *, subset: str, batch_size: int = 10):
    """A WRN-10-1 version of a CIFAR config on the real CIFAR images shipped with foolbox.

    One epoch over the 20 images is two iterations at the default batch size. Weight
    averaging starts at once, since its reference start epoch lies beyond a one-epoch run.
    """
    cfg = copy.deepcopy(cfg)
    cfg.model.classifier.backbone.update(depth=10, widen_factor=1)
    cfg.model.classifier.head.in_channels = 64
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[name]
        loader.dataset = dict(type='CIFARPNGFolder', subset=subset,
                              pipeline=loader.dataset.pipeline)
        loader.batch_size = batch_size
        loader.num_workers = 0
    cfg.model.eval_attacks.autoattack.num_samples = 0
    cfg.train_cfg.max_epochs = 1
    cfg.train_cfg.val_interval = 1
    for hook in cfg.custom_hooks:
        if hook['type'] == 'EMAHook':
            hook['begin_epoch'] = 1
    cfg.default_hooks.logger.interval = 1
    cfg.env_cfg.dist_cfg = dict(backend='gloo')
    cfg.work_dir = work_dir
    return cfg
