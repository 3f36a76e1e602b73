"""GKL distillation of the box classifier with the real DefaultTrainer (GKLTrainer) on CPU.

Every iteration's student and teacher logits and proposal labels are recorded with forward
hooks; the expected prior is computed here from the definition (per-class mean teacher
probability over the interval's proposals, previous row kept for a class without any) and
the expected loss with the core function on the recorded logits.
"""
import math

import pytest
import torch

from tests.conftest import require

ALPHA, BETA, GAMMA, T, T2, LOSS_WEIGHT = 0.5, 2.0, 0.6, 2.0, 3.0, 1.5


def _gkl_opts(**extra):
    opts = dict(MODEL__GKL__ALPHA=ALPHA, MODEL__GKL__BETA=BETA, MODEL__GKL__GAMMA=GAMMA,
                MODEL__GKL__TEMPERATURE=T, MODEL__GKL__WEIGHT_TEMPERATURE=T2,
                MODEL__GKL__LOSS_WEIGHT=LOSS_WEIGHT, MODEL__GKL__PRIOR_INTERVAL=2,
                MODEL__GKL__WARMUP_ITERS=0)
    opts.update(extra)
    return opts


def _record(model, monkeypatch):
    """Per iteration: proposal labels, student and teacher logits, teacher mode."""
    records = []
    heads = model.roi_heads
    sample = heads.label_and_sample_proposals

    def recording_sample(*args, **kwargs):
        proposals = sample(*args, **kwargs)
        records.append({'labels': torch.cat([p.gt_classes for p in proposals])})
        return proposals

    def keep(name):
        def hook(module, inputs, outputs):
            records[-1][name] = outputs[0].detach().double().clone()
            records[-1][name + '_training'] = module.training
        return hook

    monkeypatch.setattr(heads, 'label_and_sample_proposals', recording_sample)
    heads.box_predictor.register_forward_hook(keep('student'))
    model.teacher.roi_heads.box_predictor.register_forward_hook(keep('teacher'))
    return records


def _oracle_prior(previous, records, num_classes):
    """Rows: mean of softmax(t / T2) over the proposals of each class; others unchanged."""
    prior = previous.clone()
    for c in range(num_classes):
        probs = []
        for r in records:
            t = r['teacher'][r['labels'] == c] / T2
            e = torch.exp(t - t.max(dim=1, keepdim=True).values) if len(t) else t
            probs.append(e / e.sum(dim=1, keepdim=True))
        probs = torch.cat(probs)
        if len(probs):
            prior[c] = probs.mean(dim=0)
    return prior


def _classes_seen(records):
    return set(torch.cat([r['labels'] for r in records]).tolist())


def _expected_parts(record, prior, iteration, warmup):
    from gkl_plugins.core import gkl_loss
    out = gkl_loss(record['student'], record['teacher'], alpha=ALPHA, beta=BETA, gamma=GAMMA,
                   temperature=T, class_weights=prior[record['labels']], return_parts=True)
    scale = LOSS_WEIGHT * min((iteration + 1) / warmup, 1.0)
    return float(out.mse) * scale, float(out.ce) * scale


def _history(trainer, name):
    return dict((it, v) for v, it in trainer.storage.history(name).values())


def test_distillation_logs_core_loss_and_renews_prior(make_cfg, monkeypatch):
    require('detectron2')
    from gkl_plugins.detectron2 import GKLHook, GKLTrainer

    cfg = make_cfg(SOLVER__MAX_ITER=4, **_gkl_opts(MODEL__GKL__WARMUP_ITERS=3))
    trainer = GKLTrainer(cfg)
    trainer.resume_or_load(resume=False)
    model = trainer.model
    assert sum(isinstance(h, GKLHook) for h in trainer._hooks) == 1
    teacher_before = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    records = _record(model, monkeypatch)
    trainer.train()

    assert len(records) == 4
    num_classes = cfg.MODEL.ROI_HEADS.NUM_CLASSES + 1
    uniform = torch.full((num_classes, num_classes), 1.0 / num_classes, dtype=torch.float64)
    first = _oracle_prior(uniform, records[:2], num_classes)
    second = _oracle_prior(first, records[2:], num_classes)

    mse, ce = _history(trainer, 'loss_gkl_mse'), _history(trainer, 'loss_gkl_ce')
    for i, record in enumerate(records):
        assert not record['teacher_training'] and record['student_training']
        assert (record['labels'] >= 0).all() and (record['labels'] == num_classes - 1).any()
        expected = _expected_parts(record, uniform if i < 2 else first, i, warmup=3)
        assert mse[i] == pytest.approx(expected[0], rel=1e-5, abs=1e-8)
        assert ce[i] == pytest.approx(expected[1], rel=1e-5, abs=1e-8)
        assert _history(trainer, 'gkl/warmup')[i] == pytest.approx(min((i + 1) / 3, 1.0))
    assert ce[3] > 0 and mse[3] > 0

    prior = model.gkl_loss.prior
    torch.testing.assert_close(prior.prior.double(), second, rtol=1e-6, atol=1e-7)
    unseen = set(range(num_classes)) - _classes_seen(records[2:])
    assert unseen, 'the test data must leave some class without proposals'
    for c in unseen:
        torch.testing.assert_close(prior.prior[c].double(), first[c], rtol=1e-6, atol=1e-7)
    never_seen = set(range(num_classes)) - _classes_seen(records)
    for c in never_seen:
        assert torch.allclose(prior.prior[c].double(), uniform[c])
    renewed = _history(trainer, 'gkl/prior_rows_renewed')
    assert renewed == {1: len(_classes_seen(records[:2])), 3: len(_classes_seen(records[2:]))}
    assert prior.sums.abs().sum() == 0 and int(prior.num_epochs) == 2

    # The teacher is frozen, outside the optimizer, and stayed in eval mode.
    optimized = {id(p) for group in trainer.optimizer.param_groups for p in group['params']}
    assert not optimized & {id(p) for p in model.teacher.parameters()}
    assert {id(p) for n, p in model.named_parameters() if not n.startswith('teacher.')} \
        <= optimized
    assert all(p.grad is None for p in model.teacher.parameters())
    assert not model.teacher.training and model.training
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, teacher_before[key]), key


def _save_teacher(cfg, path):
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    from gkl_plugins.detectron2 import get_teacher_cfg
    teacher = build_model(get_teacher_cfg(cfg))
    DetectionCheckpointer(teacher, save_dir=str(path)).save('teacher')
    return str(path / 'teacher.pth'), teacher.state_dict()


def test_resume_restores_prior_sums_and_warmup(make_cfg, monkeypatch, tmp_path):
    require('detectron2')
    from gkl_plugins.detectron2 import GKLHook, GKLTrainer

    weights, teacher_state = _save_teacher(make_cfg(), tmp_path)
    opts = _gkl_opts(MODEL__GKL__WARMUP_ITERS=5, MODEL__GKL__TEACHER__WEIGHTS=weights)
    first = GKLTrainer(make_cfg(SOLVER__MAX_ITER=3, **opts))
    first.resume_or_load(resume=False)
    records = _record(first.model, monkeypatch)
    first.train()  # renews after iteration 1, saves model_final after iteration 2
    state = {k: v.clone() for k, v in first.model.gkl_loss.prior.state_dict().items()}
    assert state['sums'].abs().sum() > 0  # iteration 2 is in the open interval

    second = GKLTrainer(make_cfg(SOLVER__MAX_ITER=5, **opts))
    second.resume_or_load(resume=True)
    assert second.start_iter == 3
    model = second.model
    for key, value in model.gkl_loss.prior.state_dict().items():
        assert torch.equal(value, state[key]), key
    hook = next(h for h in second._hooks if isinstance(h, GKLHook))
    assert hook.state_dict() == {'last_renewal': 1}
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, teacher_state[key]), key
    resumed = _record(model, monkeypatch)
    second.train()
    records = records + resumed

    num_classes = second.cfg.MODEL.ROI_HEADS.NUM_CLASSES + 1
    uniform = torch.full((num_classes, num_classes), 1.0 / num_classes, dtype=torch.float64)
    after_1 = _oracle_prior(uniform, records[:2], num_classes)
    # Iteration 2 (first run) and 3 (resumed run) form one interval.
    after_3 = _oracle_prior(after_1, records[2:4], num_classes)
    torch.testing.assert_close(model.gkl_loss.prior.prior.double(), after_3, rtol=1e-6,
                               atol=1e-7)
    warmup = _history(second, 'gkl/warmup')
    assert warmup == pytest.approx({3: 4 / 5, 4: 1.0})
    mse = _history(second, 'loss_gkl_mse')
    assert mse[3] == pytest.approx(_expected_parts(records[3], after_1, 3, warmup=5)[0],
                                   rel=1e-5, abs=1e-8)


def test_resume_renews_prior_missed_by_checkpoint(make_cfg, monkeypatch, tmp_path):
    """A checkpoint written before the hook renewed the prior is completed on resume."""
    require('detectron2')
    from detectron2.engine import hooks

    from gkl_plugins.detectron2 import GKLHook, GKLTrainer

    class HookLastTrainer(GKLTrainer):
        def build_hooks(self):
            ret = [h for h in super().build_hooks() if not isinstance(h, GKLHook)]
            position = next(i for i, h in enumerate(ret)
                            if isinstance(h, hooks.PeriodicCheckpointer))
            return ret[:position + 1] + [GKLHook(prior_interval=2)] + ret[position + 1:]

    weights, _ = _save_teacher(make_cfg(), tmp_path)
    opts = _gkl_opts(MODEL__GKL__TEACHER__WEIGHTS=weights)
    first = HookLastTrainer(make_cfg(SOLVER__MAX_ITER=2, **opts))
    first.resume_or_load(resume=False)
    records = _record(first.model, monkeypatch)
    first.train()
    second = GKLTrainer(make_cfg(SOLVER__MAX_ITER=2, **opts))
    second.resume_or_load(resume=True)
    prior = second.model.gkl_loss.prior
    # Saved before the renewal: the checkpoint still holds the interval's sums.
    assert prior.sums.abs().sum() > 0 and int(prior.num_epochs) == 0
    second.train()  # no iteration left: only before_train runs

    num_classes = prior.num_classes
    uniform = torch.full((num_classes, num_classes), 1.0 / num_classes, dtype=torch.float64)
    expected = _oracle_prior(uniform, records, num_classes)
    torch.testing.assert_close(prior.prior.double(), expected, rtol=1e-6, atol=1e-7)
    assert int(prior.num_epochs) == 1


def test_no_sampled_proposal_gives_zero_loss(make_cfg, monkeypatch):
    require('detectron2')
    from gkl_plugins.detectron2 import GKLTrainer

    cfg = make_cfg(SOLVER__MAX_ITER=2, MODEL__ROI_HEADS__BATCH_SIZE_PER_IMAGE=0,
                   **_gkl_opts(MODEL__GKL__PRIOR_INTERVAL=1))
    trainer = GKLTrainer(cfg)
    trainer.resume_or_load(resume=False)
    records = _record(trainer.model, monkeypatch)
    trainer.train()

    assert [len(r['labels']) for r in records] == [0, 0]
    assert [r['student'].shape[0] for r in records] == [0, 0]
    assert not any('teacher' in r for r in records)  # nothing to distil, no teacher pass
    for name in ('loss_gkl_mse', 'loss_gkl_ce'):
        assert _history(trainer, name) == {0: 0.0, 1: 0.0}
    assert all(math.isfinite(v) for v in _history(trainer, 'total_loss').values())
    prior = trainer.model.gkl_loss.prior
    assert torch.equal(prior.prior, torch.full_like(prior.prior, 1 / prior.num_classes))
    assert _history(trainer, 'gkl/prior_rows_renewed') == {0: 0, 1: 0}


@pytest.mark.parametrize('key, what', [('USE_SIGMOID_CE', 'a sigmoid classifier'),
                                       ('USE_FED_LOSS', 'the federated loss')])
def test_sigmoid_or_federated_head_is_rejected(make_cfg, key, what):
    require('detectron2')
    from gkl_plugins.detectron2 import GKLTrainer

    cfg = make_cfg()
    cfg.defrost()
    # Later detectron2 releases have these keys; setting them here works on any version.
    setattr(cfg.MODEL.ROI_BOX_HEAD, key, True)
    with pytest.raises(ValueError, match=f'does not support {what}.*ROI_BOX_HEAD.{key} = '
                                         f'True.*Set MODEL.ROI_BOX_HEAD.{key} to False'):
        GKLTrainer.build_model(cfg)


def test_checkpoints_hold_student_and_prior_but_never_the_teacher(make_cfg, tmp_path):
    require('detectron2')
    from detectron2.checkpoint import DetectionCheckpointer

    from gkl_plugins.detectron2 import GKLTrainer

    model = GKLTrainer.build_model(make_cfg())
    state = model.state_dict()
    assert not [k for k in state if k.startswith('teacher.')]
    assert {'gkl_loss.prior.prior', 'gkl_loss.prior.sums', 'gkl_loss.prior.counts'} <= set(state)

    teacher = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    polluted = dict(state)
    polluted.update({'teacher.' + k: torch.full_like(v, 7) if v.is_floating_point() else v
                     for k, v in teacher.items()})
    polluted['gkl_loss.prior.prior'] = torch.eye(model.gkl_loss.prior.num_classes)
    torch.save({'model': polluted}, tmp_path / 'polluted.pth')
    DetectionCheckpointer(model).load(str(tmp_path / 'polluted.pth'))
    for key, value in model.teacher.state_dict().items():
        assert torch.equal(value, teacher[key]), key
    assert torch.equal(model.gkl_loss.prior.prior, polluted['gkl_loss.prior.prior'])

    # A student-only checkpoint loads strictly: the teacher is not reported missing.
    student_only = {k: v for k, v in state.items()}
    assert model.load_state_dict(student_only, strict=True).missing_keys == []


@pytest.mark.parametrize('variant', ['ikl', 'dkl'])
def test_variants_without_prior_log_core_loss(make_cfg, monkeypatch, variant):
    require('detectron2')
    from gkl_plugins.core import dkl_loss, gkl_loss
    from gkl_plugins.detectron2 import GKLTrainer

    # dkl weighs class pairs with the teacher softmax at TEMPERATURE itself
    weight_temperature = T if variant == 'dkl' else T2
    cfg = make_cfg(SOLVER__MAX_ITER=2, **_gkl_opts(
        MODEL__GKL__VARIANT=variant, MODEL__GKL__GAMMA=1.0, MODEL__GKL__USE_PRIOR=False,
        MODEL__GKL__WEIGHT_TEMPERATURE=weight_temperature))
    trainer = GKLTrainer(cfg)
    trainer.resume_or_load(resume=False)
    assert trainer.model.gkl_loss.prior is None
    records = _record(trainer.model, monkeypatch)
    trainer.train()

    mse, ce = _history(trainer, 'loss_gkl_mse'), _history(trainer, 'loss_gkl_ce')
    for i, r in enumerate(records):
        if variant == 'dkl':
            out = dkl_loss(r['student'], r['teacher'], alpha=ALPHA, beta=BETA, temperature=T,
                           return_parts=True)
        else:
            out = gkl_loss(r['student'], r['teacher'], alpha=ALPHA, beta=BETA, temperature=T,
                           weight_temperature=T2, normalize='batch', return_parts=True)
        assert mse[i] == pytest.approx(float(out.mse) * LOSS_WEIGHT, rel=1e-5, abs=1e-8)
        assert ce[i] == pytest.approx(float(out.ce) * LOSS_WEIGHT, rel=1e-5, abs=1e-8)


def test_dkl_with_prior_is_rejected(make_cfg):
    require('detectron2')
    from gkl_plugins.detectron2 import GKLTrainer

    cfg = make_cfg(MODEL__GKL__VARIANT='dkl', MODEL__GKL__USE_PRIOR=True)
    with pytest.raises(ValueError, match='set MODEL.GKL.USE_PRIOR to False'):
        GKLTrainer.build_model(cfg)
