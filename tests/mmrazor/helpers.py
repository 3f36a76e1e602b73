"""Small versions of the shipped distillation configs, and what the tests recompute."""
import copy
import itertools
import json
import os

import numpy as np
import torch

from tests.conftest import require

CONFIG_DIR = os.path.join(os.path.dirname(__file__), '..', '..', 'configs')
# Fashion-MNIST pixel statistics used by the configs, restated here.
FMNIST_MEAN, FMNIST_STD = 72.94, 90.02
NUM_SAMPLES = 40
BATCH = 10
_RUN_IDS = itertools.count()


def load_config(relative_path: str):
    config = require('mmengine.config')
    return config.Config.fromfile(os.path.join(CONFIG_DIR, relative_path))


def tiny_fashion_mnist(cfg, work_dir, *, max_epochs=2, num_samples=NUM_SAMPLES):
    """The config on a fixed 40-image subset, without augmentation, validation or shuffling,
    logging every step unsmoothed and keeping every checkpoint."""
    cfg = copy.deepcopy(cfg)
    cfg.train_dataloader.dataset.num_samples = num_samples
    cfg.train_dataloader.dataset.pipeline = [dict(type='PackInputs')]
    cfg.train_dataloader.batch_size = BATCH
    cfg.train_dataloader.sampler.shuffle = False
    cfg.train_cfg = dict(by_epoch=True, max_epochs=max_epochs)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.max_keep_ckpts = -1
    cfg.log_processor = dict(window_size=1)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'{os.path.basename(str(work_dir))}_{next(_RUN_IDS)}'
    return cfg


def tiny_gkl_config(work_dir, **kwargs):
    """configs/mmrazor/fashion_mnist/gkl.py, tiny, with a teacher whose predictions differ
    clearly between classes (its classifier is initialised with a large spread)."""
    cfg = tiny_fashion_mnist(load_config('mmrazor/fashion_mnist/gkl.py'), work_dir, **kwargs)
    cfg.model.teacher.head.init_cfg = dict(type='Normal', layer='Linear', std=3.0)
    cfg.model.distiller.distill_losses.loss_gkl.warmup = 4
    return cfg


def train_images(cfg):
    """``(N, 1, 28, 28)`` normalised images and ``(N,)`` labels of the training subset, in
    loader order, read through the data set class but normalised here."""
    datasets = require('gkl_plugins.mmpretrain.datasets')
    spec = dict(cfg.train_dataloader.dataset)
    spec.pop('type')
    spec['pipeline'] = []
    dataset = datasets.OfflineFashionMNIST(**spec)
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    images = np.stack([info['img'] for info in infos]).astype(np.float32)
    labels = np.array([info['gt_label'] for info in infos])
    images = (images - FMNIST_MEAN) / FMNIST_STD
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels)


def class_mean_probs(logits, labels, temperature, num_classes):
    """Per-class mean of ``softmax(logits / temperature)``, float64."""
    probs = torch.softmax(logits.double() / temperature, dim=1)
    return torch.stack([probs[labels == c].mean(dim=0) for c in range(num_classes)])


def read_scalars(work_dir):
    """The per-step records of scalars.json, in step order."""
    paths = [os.path.join(root, name) for root, _, names in os.walk(str(work_dir))
             for name in names if name == 'scalars.json']
    records = []
    for path in sorted(paths):
        with open(path) as f:
            records += [json.loads(line) for line in f if line.strip()]
    return [r for r in records if 'distill.loss_gkl' in r or 'distill.loss_kl' in r]


class OutputRecorder:
    """Records the outputs of a module at every call (a forward hook)."""

    def __init__(self, module):
        self.outputs = []
        self.handle = module.register_forward_hook(
            lambda mod, args, out: self.outputs.append(out.detach().clone()))
