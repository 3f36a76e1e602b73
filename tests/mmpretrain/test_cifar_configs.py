"""The reference CIFAR configs: their settings, and two real training iterations each."""
import math

import pytest
import torch

from tests.conftest import require
from tests.mmpretrain.helpers import load_config, shrink_cifar_config

CONFIGS = {
    'cifar10/at_gkl_wrn34_10.py': ('cifar10', 10),
    'cifar10/at_trades_wrn34_10.py': ('cifar10', 10),
    'cifar100/at_gkl_wrn34_10.py': ('cifar100', 100),
    'cifar100/at_trades_wrn34_10.py': ('cifar100', 100),
}
# GKL_MATH.md section 5.
GKL_SETTINGS = {
    'cifar10': dict(alpha=4.0, beta=20.0, gamma=1.0, temperature=1.0, weight_temperature=4.0),
    'cifar100': dict(alpha=4.0, beta=20.0, gamma=0.4, temperature=1.0, weight_temperature=1.0),
}


@pytest.mark.parametrize('path', sorted(CONFIGS))
def test_reference_settings(path):
    require('mmengine')
    cfg = load_config(path)
    subset, num_classes = CONFIGS[path]
    model = cfg.model
    assert model.classifier.backbone == dict(type='WideResNetCIFAR', depth=34, widen_factor=10)
    assert model.classifier.head.num_classes == num_classes
    loss = dict(model.robust_loss)
    if 'gkl' in path:
        assert loss.pop('type') == 'gkl' and loss == GKL_SETTINGS[subset]
        assert any(h['type'] == 'GKLPriorHook' for h in cfg.custom_hooks)
    else:
        assert loss == dict(type='trades', beta=6.0)
    assert math.isclose(model.train_attack.eps, 8 / 255)
    assert model.train_attack.budget == 'high' and model.train_attack.ramp
    assert model.awp == dict(gamma=0.005, begin_epoch=10)
    ema = next(h for h in cfg.custom_hooks if h['type'] == 'EMAHook')
    assert math.isclose(1 - ema['momentum'], 0.9996)
    assert ema['begin_epoch'] == 150 and cfg.train_cfg.max_epochs == 200
    assert cfg.param_scheduler[0]['type'] == 'CosineAnnealingLR'
    attack = model.eval_attacks.autoattack
    assert (attack.type, attack.norm, attack.version) == ('AutoAttack', 'Linf', 'standard')
    assert math.isclose(attack.eps, 8 / 255)
    assert cfg.randomness.seed == 0
    assert cfg.visualizer.vis_backends == [dict(type='LocalVisBackend')]


@pytest.mark.parametrize('path', sorted(CONFIGS))
def test_two_iterations_on_real_cifar_images(path, tmp_path):
    require('mmpretrain')
    require('gkl_plugins.mmpretrain')
    from mmengine.runner import Runner
    torch.set_num_threads(1)
    subset, num_classes = CONFIGS[path]
    cfg = shrink_cifar_config(load_config(path), str(tmp_path), subset=subset)
    cfg.model.eval_attacks.pgd20.steps = 3
    runner = Runner.from_cfg(cfg)

    logged = []
    original_train_step = runner.model.train_step

    def recording_train_step(data, optim_wrapper):
        log_vars = original_train_step(data, optim_wrapper)
        logged.append({k: float(v) for k, v in log_vars.items()})
        return log_vars

    runner.model.train_step = recording_train_step
    runner.train()

    assert len(logged) == 2
    parts = ({'loss_ce', 'loss_gkl_mse', 'loss_gkl_ce'} if 'gkl' in path
             else {'loss_ce', 'loss_kl'})
    for log_vars in logged:
        assert set(log_vars) == parts | {'loss'}
        assert all(math.isfinite(v) for v in log_vars.values())
        assert log_vars['loss'] == pytest.approx(sum(log_vars[k] for k in parts), rel=1e-5)
        # An untrained network's natural CE sits near log(C).
        assert 0.3 * math.log(num_classes) < log_vars['loss_ce'] < 3 * math.log(num_classes)
    metrics = runner.val_loop.run()
    assert {'robust/clean', 'robust/pgd20'} <= set(metrics)
    assert metrics['robust/pgd20'] <= metrics['robust/clean']
    if 'gkl' in path:
        assert int(runner.model.gkl.prior.num_epochs) == 1
        assert int(runner.model.gkl.prior.prior.shape[0]) == num_classes
