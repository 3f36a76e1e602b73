"""The front door: a reduced run of the demo, end to end, through the real train commands.

The run uses the ``quick`` preset (a few hundred images, one epoch, a handful of attacked
samples, a few detection iterations), so it checks the plumbing and the reported numbers,
not the quality of the models.
"""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

from tests.conftest import require

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _demo(*args, env=None, cwd=REPO):
    return subprocess.run([sys.executable, '-m', 'gkl_plugins.demo', *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=1800)


def _scalars(work_dir):
    """The last validation record of an mmengine run, read straight from its log."""
    files = []
    for root, _, names in os.walk(work_dir):
        files += [osp.join(root, n) for n in names if n == 'scalars.json']
    assert len(files) == 1, files
    with open(files[0]) as f:
        records = [json.loads(line) for line in f]
    return [r for r in records if 'loss' not in r and 'lr' not in r][-1]


@pytest.fixture(scope='module')
def quick_run(tmp_path_factory):
    for host in ('mmengine', 'mmpretrain', 'mmrazor', 'detectron2', 'torchattacks'):
        require(host)
    out = tmp_path_factory.mktemp('demo')
    env = dict(os.environ, GKL_CACHE_DIR=str(out / 'cache'))
    proc = _demo('--preset', 'quick', '--out', str(out), env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out / 'results.json') as f:
        summary = json.load(f)
    return out, env, proc, summary


def test_quick_run_reports_every_step_with_the_logged_numbers(quick_run):
    out, _, proc, summary = quick_run
    results = summary['results']
    assert set(results) == {'teacher', 'kd', 'gkl', 'at_trades', 'at_gkl', 'det_teacher',
                            'det_student', 'det_gkl'}
    # The table repeats what each run logged; read the logs independently here.
    for name in ('teacher', 'kd', 'gkl'):
        logged = _scalars(out / name)
        assert results[name]['metrics']['accuracy/top1'] == pytest.approx(
            logged['accuracy/top1'])
        assert f'| {name} |' in proc.stdout
        assert f'{logged["accuracy/top1"]:.2f}' in proc.stdout
    for name in ('at_trades', 'at_gkl'):
        logged = _scalars(out / name)
        for key in ('robust/clean', 'robust/pgd20', 'robust/autoattack'):
            assert 0.0 <= logged[key] <= 100.0
            assert results[name]['metrics'][key] == pytest.approx(logged[key])
    for name in ('det_teacher', 'det_student', 'det_gkl'):
        assert 'bbox/AP' in results[name]['metrics']
        assert osp.exists(results[name]['checkpoint'])
    with open(out / 'results.md') as f:
        assert f.read().strip() in proc.stdout
    assert summary['versions']['torch']


def test_quick_run_writes_figures_and_a_valid_prior(quick_run):
    out, _, _, summary = quick_run
    torch = require('torch')
    for name in ('curves_distillation.png', 'curves_adversarial_training.png',
                 'curves_detection.png', 'prior_gkl.png', 'prior_at_gkl.png'):
        assert name in summary['figures']
        with open(out / name, 'rb') as f:
            assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    # The heat maps read the checkpoints' state_dict (for adversarial training, the EMA
    # model's): it must hold the prior renewed after the one epoch, not the uniform start.
    for name in ('gkl', 'at_gkl'):
        checkpoint = torch.load(summary['results'][name]['checkpoint'], map_location='cpu',
                                weights_only=False)
        state = checkpoint['state_dict']
        key = next(k for k in state if k.endswith('prior.prior'))
        prior, epochs = state[key], state[key[:-len('prior')] + 'num_epochs']
        assert prior.shape == (10, 10) and int(epochs) == 1
        assert torch.allclose(prior.sum(dim=1), torch.ones(10), atol=1e-5)
        if 'ema_state_dict' in checkpoint:  # the trained model's own prior
            torch.testing.assert_close(prior, checkpoint['ema_state_dict']['module.' + key],
                                       rtol=0, atol=0)


def test_rerun_reuses_finished_steps(quick_run):
    out, env, _, summary = quick_run
    before = {n: os.path.getmtime(out / n / 'result.json') for n in summary['results']}
    proc = _demo('--preset', 'quick', '--out', str(out), '--steps', 'kd,gkl', env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ('teacher', 'kd', 'gkl'):
        assert f'{name}: reusing the finished run' in proc.stdout
        assert os.path.getmtime(out / name / 'result.json') == before[name]
    # the summary still covers the steps that were not asked for this time
    with open(out / 'results.json') as f:
        assert set(json.load(f)['results']) == set(summary['results'])
    assert '| at_gkl |' in proc.stdout and '| det_gkl |' in proc.stdout


def test_missing_data_stops_at_once_with_instructions(tmp_path):
    env = dict(os.environ, GKL_FASHION_MNIST_ROOT=str(tmp_path / 'nowhere'))
    proc = _demo('--out', str(tmp_path / 'out'), env=env)
    assert proc.returncode == 2
    assert 'apt-get install -y dataset-fashion-mnist' in proc.stderr
    assert 'Traceback' not in proc.stderr
    assert not (tmp_path / 'out' / 'teacher').exists()
