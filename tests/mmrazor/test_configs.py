"""Every shipped distillation config loads, builds, and trains on real or ImageNet-sized
data; the reference hyperparameters are checked against the table of the GKL paper."""
import copy
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import require
from tests.mmrazor.helpers import OutputRecorder, load_config, read_scalars

mmengine = require('mmengine')
require('gkl_plugins.mmrazor')
from mmengine.registry import DefaultScope  # noqa: E402
from mmengine.runner import Runner  # noqa: E402
from mmpretrain.datasets import BaseDataset  # noqa: E402
from mmpretrain.registry import DATASETS  # noqa: E402

from gkl_plugins.core import GKLLoss, gkl_loss  # noqa: E402
from gkl_plugins.mmpretrain.datasets import foolbox_data_dir  # noqa: E402

# (config, GKL options or None for KD, CE weight, lr, epochs, batch per GPU)
REFERENCE = {
    'mmrazor/cifar100/gkl_resnet32x4_resnet8x4.py': (
        dict(alpha=1, beta=16, gamma=0.05, temperature=4, weight_temperature=4, warmup=20,
             num_classes=100), 1.0, 0.05, 240, 64),
    'mmrazor/cifar100/kd_resnet32x4_resnet8x4.py': (None, 0.1, 0.05, 240, 64),
    'mmrazor/imagenet/gkl_resnet34_resnet18.py': (
        dict(alpha=1, beta=0.5, gamma=0.6, temperature=1, weight_temperature=1, warmup=5,
             num_classes=1000), 1.0, 0.2, 100, 64),
    'mmrazor/imagenet/kd_resnet34_resnet18.py': (None, 0.5, 0.2, 100, 64),
    'mmrazor/fashion_mnist/gkl.py': (
        dict(alpha=1, beta=16, gamma=0.05, temperature=4, weight_temperature=4, warmup=1,
             num_classes=10), 1.0, 0.05, 5, 64),
    'mmrazor/fashion_mnist/kd.py': (None, 0.1, 0.05, 5, 64),
}
# Parameter counts published for these networks: torchvision's ResNet-18/34 and the CIFAR
# resnet8x4/resnet32x4 of the CRD benchmark (1.23M and 7.43M).
PARAMETERS = {'resnet18': 11_689_512, 'resnet34': 21_797_672,
              'resnet8x4': 1.23e6, 'resnet32x4': 7.43e6}


def _count(module):
    return sum(p.numel() for p in module.parameters())


def _build(cfg):
    from mmrazor.registry import MODELS
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return MODELS.build(cfg.model)


@pytest.mark.parametrize('path', sorted(REFERENCE))
def test_config_builds_with_the_reference_settings(path):
    cfg = load_config(path)
    cfg.model.teacher_ckpt = None  # no download in tests
    gkl, ce_weight, lr, epochs, batch = REFERENCE[path]
    model = _build(cfg)

    assert cfg.optim_wrapper.optimizer.lr == lr
    assert cfg.train_cfg.max_epochs == epochs
    assert cfg.train_dataloader.batch_size == batch
    assert model.architecture.head.loss_module.loss_weight == ce_weight
    losses = [m for m in model.modules() if isinstance(m, GKLLoss)]
    hooks = [h['type'] for h in cfg.get('custom_hooks', [])]
    if gkl is None:
        assert losses == [] and 'GKLPriorHook' not in hooks
    else:
        assert len(losses) == 1 and hooks == ['GKLPriorHook']
        loss = losses[0]
        for name, value in gkl.items():
            got = loss.prior.num_classes if name == 'num_classes' else getattr(loss, name)
            assert got == value, name
        assert loss.prior.temperature == gkl['weight_temperature']

    if 'imagenet' in path:
        assert _count(model.architecture) == PARAMETERS['resnet18']
        assert _count(model.teacher) == PARAMETERS['resnet34']
        assert cfg.auto_scale_lr.base_batch_size == 512
    elif 'cifar100' in path:
        assert _count(model.architecture) == pytest.approx(PARAMETERS['resnet8x4'], rel=5e-3)
        assert _count(model.teacher) == pytest.approx(PARAMETERS['resnet32x4'], rel=5e-3)


def test_fashion_mnist_teacher_config_builds():
    cfg = load_config('mmpretrain/fashion_mnist/teacher.py')
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    out = model(torch.zeros(2, 1, 28, 28), mode='tensor')
    assert out.shape == (2, 10)


def _expected_distill(path, student, teacher, num_classes, warmup_scale):
    """The distillation term of a config recomputed from logits: GKL through the core with a
    uniform prior (first epoch), KD as T^2 * weight * KL written out here."""
    cfg = load_config(path)
    losses = cfg.model.distiller.distill_losses
    if 'loss_gkl' in losses:
        o = losses.loss_gkl
        rows = torch.full_like(student, 1.0 / num_classes)
        value = gkl_loss(student, teacher, alpha=o.alpha, beta=o.beta, gamma=o.gamma,
                         temperature=o.tau, weight_temperature=o.weight_tau,
                         class_weights=rows)
        return 'distill.loss_gkl', warmup_scale * float(value)
    o = losses.loss_kl
    log_q = F.log_softmax(student / o.tau, dim=1)
    p = F.softmax(teacher / o.tau, dim=1)
    kl = (p * (p.log() - log_q)).sum(dim=1).mean()
    return 'distill.loss_kl', o.loss_weight * o.tau ** 2 * float(kl)


def _close(value):
    # float32 KL between close distributions cancels: allow its rounding in absolute terms
    return pytest.approx(value, rel=1e-5, abs=2e-6)


def _run(cfg, path):
    runner = Runner.from_cfg(cfg)
    student = OutputRecorder(runner.model.architecture.head.fc)
    teacher = OutputRecorder(runner.model.teacher.head.fc)
    runner.train()
    return runner, student.outputs, teacher.outputs


def _small(cfg, tmp_path, name):
    cfg = copy.deepcopy(cfg)
    cfg.model.teacher_ckpt = None
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
    cfg.default_hooks.logger.interval = 1
    cfg.log_processor = dict(window_size=1)
    cfg.env_cfg.dist_cfg = dict(backend='gloo')
    cfg.work_dir = str(tmp_path / name)
    cfg.experiment_name = name
    return cfg


@pytest.mark.parametrize('path', ['mmrazor/cifar100/gkl_resnet32x4_resnet8x4.py',
                                  'mmrazor/cifar100/kd_resnet32x4_resnet8x4.py'])
def test_cifar_config_trains_on_real_cifar_images(path, tmp_path):
    torch.set_num_threads(1)
    cfg = _small(load_config(path), tmp_path, path.split('/')[-1][:-3])
    for name in ('train_dataloader', 'val_dataloader'):
        loader = cfg[name]
        loader.dataset = dict(type='CIFARPNGFolder', subset='cifar100',
                              pipeline=loader.dataset.pipeline)
        loader.batch_size = 10
        loader.num_workers = 0
    cfg.train_dataloader.dataset.pipeline = [dict(type='PackInputs')]
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    runner, students, teachers = _run(cfg, path)

    records = read_scalars(cfg.work_dir)
    assert len(records) == 2
    for record, student, teacher in zip(records, students, teachers):
        key, value = _expected_distill(path, student.double(), teacher.double(), 100, 1 / 20)
        assert record[key] == _close(value)
    priors = [m for m in runner.model.modules() if isinstance(m, GKLLoss)]
    if priors:
        # rows renewed exactly for the classes named in the image files
        import os
        labels = {int(re.match(r'cifar100_\d+_(\d+)\.png$', f).group(1))
                  for f in os.listdir(foolbox_data_dir()) if f.startswith('cifar100_')}
        prior = priors[0].prior.prior
        uniform = torch.isclose(prior, torch.full_like(prior, 0.01)).all(dim=1)
        assert set(torch.nonzero(~uniform).flatten().tolist()) == labels


@DATASETS.register_module(name='GKLTestRandomImageNet', force=True)
class _RandomImageNet(BaseDataset):
    """Two random ImageNet-sized RGB images."""

    def __init__(self, **kwargs):
        super().__init__(ann_file='', metainfo={'classes': [str(i) for i in range(1000)]},
                         **kwargs)

    def load_data_list(self):
        rng = np.random.default_rng(0)
        return [{'img': rng.integers(0, 256, (224, 224, 3), dtype=np.uint8), 'gt_label': c}
                for c in (3, 917)]


@pytest.mark.parametrize('path', ['mmrazor/imagenet/gkl_resnet34_resnet18.py',
                                  'mmrazor/imagenet/kd_resnet34_resnet18.py'])
def test_imagenet_config_trains_one_step(path, tmp_path):
    torch.set_num_threads(1)
    cfg = _small(load_config(path), tmp_path, path.split('/')[-1][:-3])
    cfg.train_dataloader.dataset = dict(type='GKLTestRandomImageNet',
                                        pipeline=[dict(type='PackInputs')])
    cfg.train_dataloader.batch_size = 2
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.pop('persistent_workers', None)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    runner, students, teachers = _run(cfg, path)

    records = read_scalars(cfg.work_dir)
    assert len(records) == 1 and len(students) == 1
    key, value = _expected_distill(path, students[0].double(), teachers[0].double(), 1000,
                                   1 / 5)
    assert records[0][key] == _close(value)
