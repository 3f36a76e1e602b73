"""GKL distillation with mmrazor's SingleTeacherDistill in mmengine's real Runner.

configs/mmrazor/fashion_mnist/gkl.py runs for two epochs of four steps on 40 real
Fashion-MNIST images. Every logged loss part is recomputed from the logits the student and
the teacher produced, with the prior rebuilt here from the teacher's predictions.
"""
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import require
from tests.mmrazor.helpers import (
    BATCH,
    NUM_SAMPLES,
    OutputRecorder,
    class_mean_probs,
    read_scalars,
    tiny_gkl_config,
    train_images,
)

mmengine = require('mmengine')
require('gkl_plugins.mmrazor')
from mmengine.hooks import Hook  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from gkl_plugins.core import gkl_loss  # noqa: E402

PRIOR_KEY = 'distiller.distill_losses.loss_gkl.gkl.prior.prior'
STEPS = NUM_SAMPLES // BATCH


class _PriorAtStart(Hook):
    """Copies the prior when training starts, i.e. right after the checkpoint is loaded."""

    def before_train(self, runner):
        prior = runner.model.distiller.distill_losses.loss_gkl.gkl.prior
        self.prior = prior.prior.clone()
        self.num_epochs = int(prior.num_epochs)
        self.count = float(prior.counts.sum())


class _StopAfterFirstEpoch(Hook):

    def after_train_epoch(self, runner):
        runner.train_loop.stop_training = True


def _train(cfg):
    runner = Runner.from_cfg(cfg)
    student = OutputRecorder(runner.model.architecture.head.fc)
    teacher = OutputRecorder(runner.model.teacher.head.fc)
    runner.train()
    return runner, student.outputs, teacher.outputs


@pytest.fixture(scope='module')
def straight(tmp_path_factory):
    torch.set_num_threads(1)
    work_dir = tmp_path_factory.mktemp('straight')
    cfg = tiny_gkl_config(work_dir)
    runner, student, teacher = _train(cfg)
    return dict(cfg=cfg, runner=runner, student=student, teacher=teacher, work_dir=work_dir)


def _loss_options(cfg):
    options = cfg.model.distiller.distill_losses.loss_gkl
    return dict(alpha=options.alpha, beta=options.beta, gamma=options.gamma,
                temperature=options.tau, weight_temperature=options.weight_tau), options


def test_prior_is_the_teacher_class_mean(straight):
    cfg, runner = straight['cfg'], straight['runner']
    images, labels = train_images(cfg)
    teacher = runner.model.teacher.eval()
    with torch.no_grad():
        logits = teacher(images, mode='tensor')
    _, options = _loss_options(cfg)
    expected = class_mean_probs(logits, labels, options.weight_tau, 10)

    # the teacher seen during training is this frozen, eval-mode teacher
    torch.testing.assert_close(torch.cat(straight['teacher'][:STEPS]), logits,
                               rtol=1e-5, atol=1e-5)
    after_first = torch.load(str(straight['work_dir'] / 'epoch_1.pth'))['state_dict']
    torch.testing.assert_close(after_first[PRIOR_KEY].double(), expected, rtol=1e-5, atol=1e-7)
    prior = runner.model.distiller.distill_losses.loss_gkl.gkl.prior
    torch.testing.assert_close(prior.prior.double(), expected, rtol=1e-5, atol=1e-7)
    assert int(prior.num_epochs) == 2
    # a teacher with clear preferences, so a uniform prior would not pass
    assert float((expected - 0.1).abs().max()) > 0.05


def test_logged_parts_equal_core_on_the_recorded_logits(straight):
    cfg = straight['cfg']
    options, raw = _loss_options(cfg)
    ce_weight = cfg.model.architecture.head.loss.loss_weight
    _, labels = train_images(cfg)
    records = read_scalars(straight['work_dir'])
    assert len(records) == 2 * STEPS
    first_epoch_teacher = torch.cat(straight['teacher'][:STEPS])
    prior = class_mean_probs(first_epoch_teacher, labels, raw.weight_tau, 10)

    for step, record in enumerate(records):
        epoch, batch = divmod(step, STEPS)
        student = straight['student'][step].double()
        teacher = straight['teacher'][step].double()
        target = labels[batch * BATCH:(batch + 1) * BATCH]
        rows = torch.full((BATCH, 10), 0.1, dtype=torch.float64) if epoch == 0 else prior[target]
        expected = gkl_loss(student, teacher, class_weights=rows, return_parts=True, **options)
        warmup = min((epoch + 1) / raw.warmup, 1.0)
        assert record['distill.loss_gkl_mse'] == pytest.approx(warmup * float(expected.mse),
                                                               rel=1e-5)
        assert record['distill.loss_gkl_ce'] == pytest.approx(warmup * float(expected.ce),
                                                              rel=1e-5)
        assert record['distill.loss_gkl'] == pytest.approx(warmup * float(expected.loss),
                                                           rel=1e-5)
        student_ce = ce_weight * F.cross_entropy(student, target)
        assert record['student.loss'] == pytest.approx(float(student_ce), rel=1e-5)
        assert record['loss'] == pytest.approx(
            record['student.loss'] + record['distill.loss_gkl'], rel=1e-6)


def test_resume_restores_the_prior_and_continues_identically(straight, tmp_path):
    # an interrupted run: stopped after its first epoch, with the schedule of two
    cfg = tiny_gkl_config(tmp_path / 'split', max_epochs=2)
    interrupted = Runner.from_cfg(cfg)
    interrupted.register_hook(_StopAfterFirstEpoch())
    interrupted.train()
    cfg = tiny_gkl_config(tmp_path / 'split', max_epochs=2)
    cfg.resume = True
    runner = Runner.from_cfg(cfg)
    snapshot = _PriorAtStart()
    runner.register_hook(snapshot)
    runner.train()
    straight_first = torch.load(str(straight['work_dir'] / 'epoch_1.pth'))['state_dict']
    torch.testing.assert_close(snapshot.prior, straight_first[PRIOR_KEY], rtol=0, atol=0)
    assert snapshot.num_epochs == 1 and snapshot.count == 0
    prior = runner.model.distiller.distill_losses.loss_gkl.gkl.prior

    resumed = read_scalars(tmp_path / 'split')[STEPS:]
    reference = read_scalars(straight['work_dir'])[STEPS:]
    assert len(resumed) == len(reference) == STEPS
    for got, want in zip(resumed, reference):
        for key in ('distill.loss_gkl_mse', 'distill.loss_gkl_ce', 'student.loss'):
            assert got[key] == pytest.approx(want[key], rel=1e-5)
    final = straight['runner'].model.distiller.distill_losses.loss_gkl.gkl.prior.prior
    torch.testing.assert_close(prior.prior, final, rtol=1e-6, atol=1e-8)
