"""GKLPriorHook in mmengine's real Runner: warm-up, prior closing, logging and resume.

The model is a linear student distilled from a fixed linear teacher, so the teacher's
predictions, and with them the prior, can be recomputed here with numpy.
"""
import glob
import itertools
import os

import numpy as np
import pytest
import torch

from tests.conftest import require

mmengine = require('mmengine')
from mmengine.model import BaseModel  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from gkl_plugins.core import GKLLoss  # noqa: E402
from gkl_plugins.mmengine import GKLPriorHook  # noqa: E402

NUM_CLASSES = 3
FEATURES = 4
WEIGHT_T = 2.0
WARMUP = 3
BATCH = 4
# distinct experiment names: mmengine keys its loggers by name
_RUN_IDS = itertools.count()


def make_data(n=12, seed=0):
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(n, FEATURES)).astype(np.float32)
    labels = np.repeat(np.arange(NUM_CLASSES), n // NUM_CLASSES)  # sorted: one class a batch
    teacher = rng.normal(scale=2.0, size=(FEATURES, NUM_CLASSES)).astype(np.float32)
    return inputs, labels, teacher


class LinearDistill(BaseModel):
    """A linear student and a frozen linear teacher; remembers each step's warm-up factor."""

    def __init__(self, teacher: np.ndarray, warmup: float = WARMUP):
        super().__init__()
        self.student = torch.nn.Linear(FEATURES, NUM_CLASSES)
        self.register_buffer('teacher', torch.from_numpy(teacher))
        self.gkl = GKLLoss(num_classes=NUM_CLASSES, weight_temperature=WEIGHT_T,
                           warmup=warmup)
        self.seen_scales = []
        self.seen_losses = []

    def forward(self, inputs, labels=None, mode='loss'):
        student = self.student(inputs)
        if mode != 'loss':
            return student
        self.seen_scales.append(self.gkl.warmup_scale)
        loss = self.gkl(student, inputs @ self.teacher, labels)
        self.seen_losses.append(float(loss.detach()))
        return {'loss': loss}


def build_runner(work_dir, *, by_epoch=True, interval=1, max_steps=2, resume=False,
                 load_from=None, checkpoint=None, seed=0, extra_hooks=(), **runner_args):
    inputs, labels, teacher = make_data()
    dataset = [dict(inputs=torch.from_numpy(x), labels=int(y)) for x, y in zip(inputs, labels)]
    torch.manual_seed(seed)
    if by_epoch:
        train_cfg = dict(by_epoch=True, max_epochs=max_steps)
    else:
        train_cfg = dict(by_epoch=False, max_iters=max_steps)
    return Runner(
        model=LinearDistill(teacher),
        work_dir=str(work_dir),
        train_dataloader=dict(dataset=dataset, batch_size=BATCH,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        train_cfg=train_cfg,
        default_hooks=dict(checkpoint=checkpoint or dict(type='CheckpointHook', interval=1,
                                                         by_epoch=by_epoch),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='GKLPriorHook', by_epoch=by_epoch, interval=interval),
                      *extra_hooks],
        randomness=dict(seed=seed),
        resume=resume,
        load_from=load_from,
        experiment_name=f'{os.path.basename(str(work_dir))}_{next(_RUN_IDS)}',
        **runner_args,
    )


def teacher_probs(inputs, teacher):
    logits = inputs.astype(np.float64) @ teacher.astype(np.float64) / WEIGHT_T
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def oracle_prior(batches, interval, steps):
    """The prior after ``steps`` batches, closing every ``interval`` batches (numpy)."""
    inputs, labels, teacher = make_data()
    probs = teacher_probs(inputs, teacher)
    prior = np.full((NUM_CLASSES, NUM_CLASSES), 1.0 / NUM_CLASSES)
    sums = np.zeros_like(prior)
    for step in range(steps):
        for i in batches[step]:
            sums[labels[i]] += probs[i]
        if (step + 1) % interval == 0:
            for c in range(NUM_CLASSES):
                if sums[c].sum() > 0:
                    prior[c] = sums[c] / sums[c].sum()
            sums[:] = 0
    return prior, sums


def batch_order(steps):
    n = len(make_data()[1])
    order = [i % n for i in range(steps * BATCH)]
    return [order[s * BATCH:(s + 1) * BATCH] for s in range(steps)]


def log_text(work_dir):
    return '\n'.join(open(p).read() for p in glob.glob(os.path.join(work_dir, '*', '*.log')))


def test_registered_in_root_registry():
    from mmengine.registry import HOOKS
    assert HOOKS.get('GKLPriorHook') is GKLPriorHook
    with pytest.raises(ValueError, match='interval'):
        GKLPriorHook(interval=0)


def test_epoch_mode_warmup_and_prior(tmp_path):
    runner = build_runner(tmp_path / 'epochs', max_steps=2)
    runner.train()
    model = runner.model

    # three steps an epoch: warm-up 1/3 in the first epoch, 2/3 in the second
    assert model.seen_scales == pytest.approx([1 / 3] * 3 + [2 / 3] * 3)
    # both epochs see the same samples, so both priors are the per-class mean
    prior, _ = oracle_prior(batch_order(6), interval=3, steps=6)
    inputs, labels, teacher = make_data()
    probs = teacher_probs(inputs, teacher)
    class_means = np.stack([probs[labels == c].mean(axis=0) for c in range(NUM_CLASSES)])
    np.testing.assert_allclose(prior, class_means, rtol=1e-12)
    np.testing.assert_allclose(model.gkl.prior.prior.double().numpy(), class_means, rtol=1e-6)
    assert int(model.gkl.prior.num_epochs) == 2
    assert 'renewed after epoch 2: 3/3 classes' in log_text(str(tmp_path / 'epochs'))


def test_iteration_mode_interval_and_missing_classes(tmp_path):
    runner = build_runner(tmp_path / 'iters', by_epoch=False, interval=2, max_steps=6)
    runner.train()
    model = runner.model

    assert model.seen_scales == pytest.approx([min((i + 1) / WARMUP, 1.0) for i in range(6)])
    prior, sums = oracle_prior(batch_order(6), interval=2, steps=6)
    np.testing.assert_allclose(model.gkl.prior.prior.double().numpy(), prior, rtol=1e-6)
    assert int(model.gkl.prior.num_epochs) == 3
    # sorted labels: the first two batches hold classes 0 and 1 only
    text = log_text(str(tmp_path / 'iters'))
    assert 'renewed after iteration 2: 2/3 classes' in text
    assert 'kept their previous rows: [2]' in text


def test_iteration_resume_mid_interval_is_exact(tmp_path):
    every_2 = dict(type='CheckpointHook', interval=2, by_epoch=False)
    straight = build_runner(tmp_path / 'straight', by_epoch=False, interval=4, max_steps=6,
                            checkpoint=every_2)
    straight.train()

    first = build_runner(tmp_path / 'split', by_epoch=False, interval=4, max_steps=2,
                         checkpoint=every_2)
    first.train()
    # the checkpoint holds the running sums of an unfinished interval
    saved = torch.load(str(tmp_path / 'split' / 'iter_2.pth'))['state_dict']
    assert float(saved['gkl.prior.counts'].sum()) == 2 * BATCH
    resumed = build_runner(tmp_path / 'split', by_epoch=False, interval=4, max_steps=6,
                           checkpoint=every_2, resume=True)
    resumed.train()

    prior, sums = oracle_prior(batch_order(6), interval=4, steps=6)
    for runner in (straight, resumed):
        state = runner.model.gkl.prior
        np.testing.assert_allclose(state.prior.double().numpy(), prior, rtol=1e-6)
        np.testing.assert_allclose(state.sums.numpy(), sums, rtol=1e-6)
    np.testing.assert_allclose(resumed.model.seen_losses, straight.model.seen_losses[2:],
                               rtol=1e-5)
    assert resumed.model.seen_scales == pytest.approx(straight.model.seen_scales[2:])


def test_epoch_resume_from_mid_epoch_checkpoint_drops_replayed_sums(tmp_path):
    every_2 = dict(type='CheckpointHook', interval=2, by_epoch=False)
    first = build_runner(tmp_path / 'a', max_steps=1, checkpoint=every_2)
    first.train()
    # mmengine's epoch loop runs epoch 1 again from its first batch after this resume
    replay = build_runner(tmp_path / 'b', max_steps=1, checkpoint=every_2, resume=True,
                          load_from=str(tmp_path / 'a' / 'iter_2.pth'))
    replay.train()

    prior, _ = oracle_prior(batch_order(3), interval=3, steps=3)
    np.testing.assert_allclose(replay.model.gkl.prior.prior.double().numpy(), prior, rtol=1e-6)
    assert int(replay.model.gkl.prior.num_epochs) == 1
    assert 'dropping the class-prior sums' in log_text(str(tmp_path / 'b'))


@pytest.mark.parametrize('update_buffers', [True, False])
def test_averaged_model_in_the_checkpoint_carries_the_live_prior(tmp_path, update_buffers):
    work_dir = tmp_path / f'ema_{update_buffers}'
    ema = dict(type='EMAHook', momentum=0.5, update_buffers=update_buffers)
    runner = build_runner(work_dir, max_steps=2, extra_hooks=[ema])
    runner.train()

    # EMAHook saves the averaged model as the checkpoint's state_dict (what load_from and
    # inference read) and the trained one as ema_state_dict (what resume reads).
    checkpoint = torch.load(str(work_dir / 'epoch_2.pth'), weights_only=False)
    prior, _ = oracle_prior(batch_order(6), interval=3, steps=6)
    for state, prefix in ((checkpoint['state_dict'], ''),
                          (checkpoint['ema_state_dict'], 'module.')):
        np.testing.assert_allclose(state[prefix + 'gkl.prior.prior'].double().numpy(), prior,
                                   rtol=1e-6)
        assert int(state[prefix + 'gkl.prior.num_epochs']) == 2
        assert float(state[prefix + 'gkl.prior.counts'].abs().sum()) == 0


def test_refuses_ddp_that_broadcasts_the_prior_sums(tmp_path, monkeypatch):
    import torch.distributed as dist
    for name, value in dict(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(_free_port()), RANK='0',
                            LOCAL_RANK='0', WORLD_SIZE='1').items():
        monkeypatch.setenv(name, value)
    dist.init_process_group('gloo', rank=0, world_size=1)
    try:
        for broadcast in (True, False):
            wrapper = dict(type='MMDistributedDataParallel', device_ids=None,
                           broadcast_buffers=broadcast)
            runner = build_runner(tmp_path / f'ddp_{broadcast}', max_steps=1, launcher='pytorch',
                                  cfg=dict(model_wrapper_cfg=wrapper))
            if broadcast:
                with pytest.raises(ValueError, match='broadcast_buffers=False'):
                    runner.train()
            else:
                runner.train()
                prior, _ = oracle_prior(batch_order(3), interval=3, steps=3)
                np.testing.assert_allclose(
                    runner.model.module.gkl.prior.prior.double().numpy(), prior, rtol=1e-6)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]
