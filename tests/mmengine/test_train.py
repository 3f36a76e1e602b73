"""The gkl-train command: options, a clear message for missing data, and end-to-end runs of
the Fashion-MNIST teacher, KD and GKL configs."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.conftest import require

mmengine = require('mmengine')
from gkl_plugins.data import load_fashion_mnist  # noqa: E402
from gkl_plugins.mmengine import train  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), '..', '..')
TEACHER = os.path.join(ROOT, 'configs', 'mmpretrain', 'fashion_mnist', 'teacher.py')
TINY = ['train_cfg.max_epochs=1', 'train_dataloader.dataset.num_samples=40',
        'train_dataloader.batch_size=10', 'val_dataloader.dataset.num_samples=50']


def _scalars(work_dir):
    for root, _, names in os.walk(str(work_dir)):
        if 'scalars.json' in names:
            with open(os.path.join(root, 'scalars.json')) as f:
                return [json.loads(line) for line in f if line.strip()]
    raise AssertionError(f'no scalars.json under {work_dir}')


def _accuracy(state_dict, prefix, cfg):
    """Top-1 accuracy of the saved classifier on the validation subset, computed here."""
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    import gkl_plugins.mmpretrain.datasets as datasets
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    model.load_state_dict({k[len(prefix):]: v for k, v in state_dict.items()
                           if k.startswith(prefix)})
    model.eval()
    images, labels = load_fashion_mnist('test')
    subset = datasets.balanced_subset(labels, 50, num_classes=10)
    x = (torch.from_numpy(images[subset]).float().unsqueeze(1) - 72.94) / 90.02
    with torch.no_grad():
        predictions = model(x, mode='tensor').argmax(dim=1).numpy()
    return 100.0 * float(np.mean(predictions == labels[subset]))


@pytest.fixture(scope='module')
def teacher_run(tmp_path_factory):
    torch.set_num_threads(1)
    work_dir = tmp_path_factory.mktemp('teacher')
    # mmengine names a runner's logger and visualizer '<config>_<time in seconds>' and hands
    # an existing instance back by name: a runner built earlier in this process within the
    # same second (the missing-data test) would lend this one its closed log stream and
    # its output folder.
    status = train.main([TEACHER, '--work-dir', str(work_dir), '--cfg-options',
                         'experiment_name=teacher_fixture'] + TINY)
    return status, work_dir


def test_options_follow_the_openmmlab_convention():
    args = train.parse_args([TEACHER, '--amp', '--resume', '--cfg-options',
                             'train_cfg.max_epochs=3'])
    cfg = train.build_config(args)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.resume is True and cfg.load_from is None
    assert cfg.train_cfg.max_epochs == 3
    assert cfg.work_dir == os.path.join('./work_dirs', 'teacher')
    assert cfg.launcher == 'none'
    cfg = train.build_config(train.parse_args([TEACHER, '--resume', 'x.pth', '--work-dir', 'd']))
    assert cfg.resume is True and cfg.load_from == 'x.pth' and cfg.work_dir == 'd'


def test_missing_data_gives_a_message_not_a_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv('GKL_FASHION_MNIST_ROOT', str(tmp_path / 'nowhere'))
    status = train.main([TEACHER, '--work-dir', str(tmp_path / 'work'), '--cfg-options']
                        + TINY)
    err = capsys.readouterr().err
    assert status == 2
    assert 'Fashion-MNIST was not found' in err and 'apt-get install' in err
    assert 'Traceback' not in err


def test_a_distiller_without_teacher_weights_is_warned_about(capsys):
    kd = os.path.join(ROOT, 'configs', 'mmrazor', 'fashion_mnist', 'kd.py')
    train._warn_without_teacher_weights(train.build_config(train.parse_args([kd])))
    assert 'model.teacher_ckpt is not set' in capsys.readouterr().err
    cfg = train.build_config(train.parse_args(
        [kd, '--cfg-options', 'model.teacher_ckpt=teacher.pth']))
    train._warn_without_teacher_weights(cfg)
    train._warn_without_teacher_weights(train.build_config(train.parse_args([TEACHER])))
    assert capsys.readouterr().err == ''


def test_teacher_trains_and_logs_its_true_accuracy(teacher_run):
    status, work_dir = teacher_run
    assert status == 0
    checkpoint = torch.load(str(work_dir / 'epoch_1.pth'))
    from mmengine.config import Config
    cfg = Config.fromfile(TEACHER)
    logged = [r['accuracy/top1'] for r in _scalars(work_dir) if 'accuracy/top1' in r]
    assert logged == [pytest.approx(_accuracy(checkpoint['state_dict'], '', cfg), abs=1e-6)]


@pytest.mark.parametrize('config', ['kd.py', 'gkl.py'])
def test_console_script_distils_from_the_teacher(teacher_run, config, tmp_path):
    require('gkl_plugins.mmrazor')
    status, teacher_dir = teacher_run
    assert status == 0
    script = os.path.join(os.path.dirname(sys.executable), 'gkl-train')
    assert os.path.exists(script), 'gkl-train is declared in setup.py: reinstall the package'
    teacher_ckpt = str(teacher_dir / 'epoch_1.pth')
    work_dir = tmp_path / config[:-3]
    out = subprocess.run(
        [script, os.path.join(ROOT, 'configs', 'mmrazor', 'fashion_mnist', config),
         '--work-dir', str(work_dir), '--cfg-options', f'model.teacher_ckpt={teacher_ckpt}']
        + TINY, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert out.returncode == 0, out.stderr[-3000:]

    # the distilled checkpoint carries the given teacher, and the teacher's logged
    # accuracy is the one of the teacher run
    teacher = torch.load(teacher_ckpt)['state_dict']
    distilled = torch.load(str(work_dir / 'epoch_1.pth'))['state_dict']
    for key, value in teacher.items():
        torch.testing.assert_close(distilled['teacher.' + key], value, rtol=0, atol=0)
    records = _scalars(work_dir)
    teacher_accuracy = [r['accuracy/top1'] for r in _scalars(teacher_dir)
                        if 'accuracy/top1' in r]
    assert [r['teacher.accuracy/top1'] for r in records if 'teacher.accuracy/top1' in r] == \
        pytest.approx(teacher_accuracy)
    losses = [r for r in records if 'loss' in r]
    assert len(losses) == 1  # one record, at the end of the 4-step epoch (interval 20)
    if config == 'gkl.py':
        assert 'renewed after epoch 1: 10/10 classes' in out.stdout + out.stderr
        assert {'distill.loss_gkl_mse', 'distill.loss_gkl_ce'} <= set(losses[0])
