"""A short adversarial-training run of the shipped Fashion-MNIST GKL config with the real
Runner: robustness improves, the evaluator's robust accuracies are those of torchattacks
called directly, and the class prior is closed every epoch and checkpointed."""
import json
import os

import pytest
import torch

from tests.conftest import require, require_fashion_mnist
from tests.mmpretrain.helpers import CONFIG_DIR

EPS = 0.1
VAL_SAMPLES = 200
AUTOATTACK_SAMPLES = 12
EPOCHS = 3


class UnitImageModel(torch.nn.Module):
    """The classifier as a function of [0, 1] images, with the config's statistics."""

    def __init__(self, classifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, images):
        return self.classifier((images * 255.0 - 72.94) / 90.02, mode='tensor')


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    # Each run names its experiment: mmengine reuses the logger and visualizer of an earlier
    # runner of the same config started within the same second.
    require('mmpretrain')
    require('gkl_plugins.mmpretrain')
    from mmengine.runner import Runner

    from gkl_plugins.mmengine.train import build_config, parse_args
    require_fashion_mnist('test')
    torch.set_num_threads(1)
    work_dir = str(tmp_path_factory.mktemp('fmnist_at'))
    # The options the demo passes, through gkl-train's own config handling.
    args = parse_args([
        os.path.join(CONFIG_DIR, 'fashion_mnist', 'at_gkl.py'), '--work-dir', work_dir,
        '--cfg-options', 'experiment_name=fmnist_at_trained',
        f'train_cfg.max_epochs={EPOCHS}', f'train_cfg.val_interval={EPOCHS}',
        'train_dataloader.dataset.num_samples=640', 'train_dataloader.batch_size=64',
        f'val_dataloader.dataset.num_samples={VAL_SAMPLES}',
        f'val_dataloader.batch_size={VAL_SAMPLES}',
        f'model.eval_attacks.autoattack.num_samples={AUTOATTACK_SAMPLES}',
        'optim_wrapper.optimizer.lr=0.2'])
    runner = Runner.from_cfg(build_config(args))
    before = runner.val()
    runner.train()
    after = runner.val()
    return runner, before, after, work_dir


def test_short_gkl_run_improves_pgd_accuracy(trained):
    _, before, after, _ = trained
    keys = {'robust/clean', 'robust/pgd20', 'robust/clean_pgd20', 'robust/autoattack',
            'robust/clean_autoattack'}
    assert keys <= set(after)
    assert after['robust/clean'] > before['robust/clean'] + 10.0
    assert after['robust/pgd20'] > before['robust/pgd20'] + 5.0
    assert after['robust/autoattack'] <= after['robust/clean_autoattack']


def test_evaluator_matches_torchattacks_called_directly(trained):
    torchattacks = require('torchattacks')
    runner, _, after, _ = trained
    model = runner.model
    model.eval()
    data = model.data_preprocessor(next(iter(runner.val_dataloader)), False)
    images = data['inputs'] / 255.0
    labels = torch.cat([s.gt_label for s in data['data_samples']])
    assert images.shape[0] == VAL_SAMPLES
    unit_model = UnitImageModel(model.classifier).eval()

    with torch.no_grad():
        clean = (unit_model(images).argmax(1) == labels).double().mean() * 100
    torch.manual_seed(0)
    pgd = torchattacks.PGD(unit_model, eps=EPS, alpha=EPS / 4, steps=20, random_start=True)
    adversarial = pgd(images, labels)
    with torch.no_grad():
        robust = (unit_model(adversarial).argmax(1) == labels).double().mean() * 100
    assert after['robust/clean'] == pytest.approx(float(clean))
    assert after['robust/pgd20'] == pytest.approx(float(robust))
    assert float(robust) < float(clean)

    # AutoAttack ran on the samples with dataset index below its num_samples.
    subset = [i for i, s in enumerate(data['data_samples'])
              if int(s.sample_idx) < AUTOATTACK_SAMPLES]
    assert len(subset) == AUTOATTACK_SAMPLES
    torch.manual_seed(0)
    autoattack = torchattacks.AutoAttack(unit_model, norm='Linf', eps=EPS, version='standard',
                                         n_classes=10, seed=0)
    adversarial = autoattack(images[subset], labels[subset])
    with torch.no_grad():
        robust_aa = (unit_model(adversarial).argmax(1) == labels[subset]).double().mean() * 100
    assert after['robust/autoattack'] == pytest.approx(float(robust_aa))
    assert float(robust_aa) <= float(robust) + 100.0 / AUTOATTACK_SAMPLES


def test_prior_closed_every_epoch_and_checkpointed(trained):
    runner, _, _, work_dir = trained
    prior = runner.model.gkl.prior
    assert int(prior.num_epochs) == EPOCHS
    torch.testing.assert_close(prior.prior.sum(dim=1), torch.ones(10))
    assert float((prior.prior - 0.1).abs().max()) > 1e-3  # no longer uniform
    checkpoint = torch.load(os.path.join(work_dir, f'epoch_{EPOCHS}.pth'), map_location='cpu',
                            weights_only=False)
    # With EMAHook the checkpoint's state_dict holds the averaged model, the raw one is kept
    # under ema_state_dict; the prior is a buffer of both.
    saved = [key for key in checkpoint['state_dict'] if key.endswith('gkl.prior.prior')]
    assert saved


def test_scalars_json_written_with_robust_metrics(trained):
    _, _, _, work_dir = trained
    found = []
    for root, _, files in os.walk(work_dir):
        if 'scalars.json' in files:
            with open(os.path.join(root, 'scalars.json')) as f:
                found.extend(json.loads(line) for line in f if line.strip())
    assert any('robust/pgd20' in entry for entry in found)
    assert any('loss_gkl_mse' in entry for entry in found)


def test_trades_config_trains_through_gkl_train(tmp_path):
    require('mmpretrain')
    require('gkl_plugins.mmpretrain')
    from gkl_plugins.mmengine.train import main
    require_fashion_mnist('test')
    torch.set_num_threads(1)
    status = main([
        os.path.join(CONFIG_DIR, 'fashion_mnist', 'at_trades.py'), '--work-dir', str(tmp_path),
        '--cfg-options', 'experiment_name=fmnist_at_trades', 'train_cfg.max_epochs=1',
        'default_hooks.logger.interval=1',
        'train_dataloader.dataset.num_samples=128',
        'train_dataloader.batch_size=64', 'val_dataloader.dataset.num_samples=50',
        'model.eval_attacks.autoattack.num_samples=0'])
    assert status == 0
    entries = []
    for root, _, files in os.walk(str(tmp_path)):
        if 'scalars.json' in files:
            with open(os.path.join(root, 'scalars.json')) as f:
                entries.extend(json.loads(line) for line in f if line.strip())
    losses = [e for e in entries if 'loss_kl' in e]
    assert len(losses) == 2 and all('loss_gkl_mse' not in e for e in entries)
    assert all(e['loss'] == pytest.approx(e['loss_ce'] + e['loss_kl'], rel=1e-4)
               for e in losses)
    metrics = [e for e in entries if 'robust/pgd20' in e]
    assert len(metrics) == 1 and 'robust/autoattack' not in metrics[0]
    assert 0.0 <= metrics[0]['robust/pgd20'] <= metrics[0]['robust/clean'] <= 100.0


def test_resume_continues_with_the_checkpointed_prior(tmp_path):
    require('mmpretrain')
    require('gkl_plugins.mmpretrain')
    from mmengine.runner import Runner

    from gkl_plugins.mmengine.train import build_config, parse_args
    require_fashion_mnist('test')
    torch.set_num_threads(1)
    options = ['train_dataloader.dataset.num_samples=64', 'train_dataloader.batch_size=32',
               'val_dataloader.dataset.num_samples=20', 'train_cfg.val_interval=10',
               'model.eval_attacks.autoattack.num_samples=0']

    def run(epochs, *extra):
        args = parse_args([os.path.join(CONFIG_DIR, 'fashion_mnist', 'at_gkl.py'),
                           '--work-dir', str(tmp_path), *extra, '--cfg-options',
                           f'experiment_name=fmnist_at_resume_{epochs}',
                           f'train_cfg.max_epochs={epochs}', *options])
        runner = Runner.from_cfg(build_config(args))
        runner.train()
        return runner

    first = run(1)
    prior_after_one = first.model.gkl.prior.prior.clone()
    # With EMAHook the raw weights and buffers are stored under ema_state_dict.
    checkpoint = torch.load(os.path.join(str(tmp_path), 'epoch_1.pth'), map_location='cpu',
                            weights_only=False)
    raw = {k[len('module.'):]: v for k, v in checkpoint['ema_state_dict'].items()
           if k.startswith('module.')}
    torch.testing.assert_close(raw['gkl.prior.prior'], prior_after_one)

    second = run(2, '--resume')
    prior = second.model.gkl.prior
    # One epoch closed before the resume and one after: the count came from the checkpoint.
    assert second.epoch == 2 and int(prior.num_epochs) == 2
    assert float((prior.prior - prior_after_one).abs().max()) > 0
