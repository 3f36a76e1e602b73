"""AdversarialClassifier: the attack in pixel units, mode handling, the losses and AWP.

The model comes from the real mmengine Runner built from the shipped CIFAR-10 config
(shrunk to WRN-10-1, on the real CIFAR images shipped with foolbox), with CIFAR mean/std
normalisation in the data preprocessor so that pixel units and normalised units differ.
"""
import copy
import socket

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import require
from tests.mmpretrain.helpers import CIFAR_MEAN, CIFAR_STD, load_config, shrink_cifar_config

EPS = 8 / 255


@pytest.fixture(scope='module')
def runner(tmp_path_factory):
    require('mmpretrain')
    require('gkl_plugins.mmpretrain')
    from mmengine.runner import Runner
    torch.set_num_threads(1)
    cfg = shrink_cifar_config(load_config('cifar10/at_gkl_wrn34_10.py'),
                              str(tmp_path_factory.mktemp('adv')), subset='cifar10')
    cfg.data_preprocessor.update(mean=list(CIFAR_MEAN), std=list(CIFAR_STD))
    return Runner.from_cfg(cfg)


@pytest.fixture
def batch(runner):
    model = runner.model
    data = model.data_preprocessor(next(iter(runner.train_dataloader)), True)
    return data['inputs'], data['data_samples']


def normalise(pixels):
    mean = torch.tensor(CIFAR_MEAN, dtype=pixels.dtype).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD, dtype=pixels.dtype).view(1, 3, 1, 1)
    return (pixels - mean) / std


class UnitImageModel(torch.nn.Module):
    """The classifier as a function of [0, 1] images, written from the config's statistics."""

    def __init__(self, classifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, images):
        return self.classifier(normalise(images * 255.0), mode='tensor')


def test_preprocessor_yields_pixels_and_model_normalises(runner, batch):
    inputs, _ = batch
    assert inputs.min() >= 0 and inputs.max() <= 255 and inputs.max() > 1
    model = runner.model
    model.eval()
    expected = model.classifier(normalise(inputs), mode='tensor')
    torch.testing.assert_close(model(inputs, mode='tensor'), expected)


def test_adversarial_examples_stay_in_ball_and_pixel_range(runner, batch):
    inputs, _ = batch
    # Saturated images exercise the projection onto the pixel range.
    extremes = torch.zeros_like(inputs[:4])
    extremes[:2] = 255.0
    inputs = torch.cat([inputs, extremes])
    # The radius ramps up as eps * epoch / max_epochs: 4 grey levels in the 2nd of 4 epochs.
    from mmengine.logging import MessageHub
    hub = MessageHub.get_current_instance()
    saved = {key: hub.get_info(key) for key in ('epoch', 'max_epochs')}
    hub.update_info_dict(dict(epoch=1, max_epochs=4))
    try:
        torch.manual_seed(0)
        adversarial = runner.model.craft_adversarial(inputs)
    finally:
        hub.update_info_dict(saved)

    radius = EPS * 255.0 * 2 / 4
    distance = (adversarial - inputs).abs()
    assert adversarial.shape == inputs.shape
    assert float(distance.max()) <= radius + 1e-3
    # The ball is in pixel units: in normalised units it would be ~60 times smaller.
    assert float(distance.max()) >= 0.99 * radius
    assert float(adversarial.min()) >= 0.0 and float(adversarial.max()) <= 255.0
    assert float(distance[-4:].max()) > 0  # saturated pixels may still move inwards


def test_attack_runs_in_eval_mode_and_restores_the_mode(runner, batch):
    inputs, _ = batch
    model = runner.model
    seen = []
    handle = model.classifier.register_forward_pre_hook(
        lambda module, args: seen.append(module.training))
    try:
        model.train()
        model.craft_adversarial(inputs)
        assert seen and not any(seen)
        assert all(m.training for m in model.classifier.modules())
        seen.clear()
        # A part frozen in eval mode during training stays frozen.
        frozen = model.classifier.backbone.stem
        frozen.eval()
        model.craft_adversarial(inputs)
        assert not frozen.training
        assert all(m.training for m in model.classifier.modules() if m is not frozen)
        seen.clear()
        model.eval()
        model.craft_adversarial(inputs)
        assert seen and not any(seen)
        assert not any(m.training for m in model.classifier.modules())
    finally:
        handle.remove()
        model.train()


def test_training_attack_equals_torchattacks_tpgd(runner, batch):
    torchattacks = require('torchattacks')
    from gkl_plugins.mmpretrain import soft_ce_attack
    inputs, _ = batch
    # In float64, so that no gradient entry is close enough to zero for rounding to flip its
    # sign (the first step starts 0.001 away from the natural image).
    images = inputs.double() / 255.0
    unit_model = UnitImageModel(copy.deepcopy(runner.model.classifier).double()).eval()
    torch.manual_seed(3)
    ours = soft_ce_attack(unit_model, images, eps=EPS, steps=5, step_size=EPS / 2)
    torch.manual_seed(3)
    reference = torchattacks.TPGD(unit_model, eps=EPS, alpha=EPS / 2, steps=5)(images)
    assert float((ours - images).abs().max()) > 0.99 * EPS
    mismatch = ((ours - reference).abs() > 1e-9).double().mean()
    assert float(mismatch) < 1e-4


def oracle_gkl(student, teacher, weights, *, alpha, beta, temperature):
    """GKL from its definition, with the (B, C, C) pairwise tensor."""
    pair_t = teacher.unsqueeze(2) - teacher.unsqueeze(1)
    pair_s = student.unsqueeze(2) - student.unsqueeze(1)
    w = weights.unsqueeze(2) * weights.unsqueeze(1)
    mse = 0.25 * (w * (pair_t - pair_s) ** 2).sum() / w.sum()
    target = F.softmax(teacher / temperature, dim=1)
    ce = -(target * F.log_softmax(student / temperature, dim=1)).sum(dim=1).mean()
    return beta * mse, alpha * ce


def test_gkl_training_loss_equals_independent_computation(runner, batch):
    inputs, samples = batch
    model = runner.model
    model.train()
    labels = torch.cat([s.gt_label for s in samples])
    prior = model.gkl.prior
    rows = torch.rand(10, 10, generator=torch.Generator().manual_seed(1)) + 0.05
    prior.prior.copy_(rows / rows.sum(dim=1, keepdim=True))
    prior.sums.zero_()
    prior.counts.zero_()
    state = copy.deepcopy(model.state_dict())

    # The runner's training path; a zero learning rate keeps the weights for the check.
    from mmengine.optim import OptimWrapper
    torch.manual_seed(11)
    losses = model.train_step(dict(inputs=list(inputs), data_samples=samples),
                              OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.0)))
    losses.pop('loss')
    sums_after = prior.sums.clone()
    model.load_state_dict(state)  # BN statistics as they were for the attack
    torch.manual_seed(11)
    adversarial = model.craft_adversarial(inputs)

    with torch.no_grad():
        natural_logits = model.classifier(normalise(inputs), mode='tensor').double()
        adversarial_logits = model.classifier(normalise(adversarial), mode='tensor').double()
    weights = prior.prior[labels].double() ** 1.0  # gamma 1 in the CIFAR-10 setting
    mse, ce = oracle_gkl(adversarial_logits, natural_logits, weights, alpha=4.0, beta=20.0,
                         temperature=1.0)
    assert set(losses) == {'loss_ce', 'loss_gkl_mse', 'loss_gkl_ce'}
    torch.testing.assert_close(losses['loss_ce'].double(),
                               F.cross_entropy(natural_logits, labels), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(losses['loss_gkl_mse'].double(), mse, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(losses['loss_gkl_ce'].double(), ce, rtol=1e-5, atol=1e-6)
    # The prior gathers softmax(natural / T2) per class, T2 = 4.
    expected_sums = torch.zeros(10, 10, dtype=torch.float64)
    expected_sums.index_add_(0, labels, F.softmax(natural_logits / 4.0, dim=1))
    torch.testing.assert_close(sums_after, expected_sums, rtol=1e-5, atol=1e-7)


def test_trades_loss_equals_independent_computation(runner, batch):
    from mmpretrain.registry import MODELS
    inputs, samples = batch
    cfg = copy.deepcopy(runner.cfg.model)
    cfg.robust_loss = dict(type='trades', beta=6.0)
    cfg.awp = None
    cfg.data_preprocessor = runner.cfg.data_preprocessor
    torch.manual_seed(0)
    model = MODELS.build(cfg).train()
    state = copy.deepcopy(model.state_dict())
    labels = torch.cat([s.gt_label for s in samples])

    torch.manual_seed(12)
    losses = model(inputs, samples, mode='loss')
    model.load_state_dict(state)
    torch.manual_seed(12)
    adversarial = model.craft_adversarial(inputs)
    with torch.no_grad():
        natural_logits = model.classifier(normalise(inputs), mode='tensor').double()
        adversarial_logits = model.classifier(normalise(adversarial), mode='tensor').double()
    p_nat = F.softmax(natural_logits, dim=1)
    kl = (p_nat * (p_nat.log() - F.log_softmax(adversarial_logits, dim=1))).sum(dim=1).mean()
    assert set(losses) == {'loss_ce', 'loss_kl'}
    assert float(kl) > 0
    torch.testing.assert_close(losses['loss_ce'].double(),
                               F.cross_entropy(natural_logits, labels), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(losses['loss_kl'].double(), 6.0 * kl, rtol=1e-4, atol=1e-7)


def test_awp_step_equals_sgd_at_perturbed_weights(runner):
    from mmengine.optim import OptimWrapper
    from mmpretrain.registry import MODELS
    cfg = copy.deepcopy(runner.cfg.model)
    cfg.robust_loss = dict(type='trades', beta=6.0)
    cfg.awp = dict(gamma=0.005, begin_epoch=1)
    cfg.train_attack = dict(eps=EPS, steps=1, step_ratio=1.0, ramp=False)
    cfg.data_preprocessor = runner.cfg.data_preprocessor
    torch.manual_seed(0)
    model = MODELS.build(cfg).train()
    reference = copy.deepcopy(model)
    data_batch = next(iter(runner.train_dataloader))
    lr = 0.1

    torch.manual_seed(21)
    model.train_step(data_batch, OptimWrapper(torch.optim.SGD(model.parameters(), lr=lr)))

    # The same step by hand: attack, perturb each weight by gamma * |w| * g / |g| along the
    # loss gradient, take the SGD gradient there, then remove the perturbation.
    data = reference.data_preprocessor(data_batch, True)
    inputs, labels = data['inputs'], torch.cat([s.gt_label for s in data['data_samples']])
    torch.manual_seed(21)
    adversarial = reference.craft_adversarial(inputs)
    classifier = reference.classifier

    def trades(net):
        natural = net(normalise(inputs), mode='tensor')
        adv = net(normalise(adversarial), mode='tensor')
        p_nat = F.softmax(natural, dim=1)
        kl = (p_nat * (F.log_softmax(natural, dim=1) - F.log_softmax(adv, dim=1))).sum(1)
        return F.cross_entropy(natural, labels) + 6.0 * kl.mean()

    named = dict(classifier.named_parameters())
    perturbed = {n: p for n, p in named.items() if p.dim() > 1 and n.endswith('weight')}
    buffers = {n: b.clone() for n, b in classifier.named_buffers()}
    grads = torch.autograd.grad(trades(classifier), list(perturbed.values()))
    with torch.no_grad():
        for (n, b) in classifier.named_buffers():
            b.copy_(buffers[n])
        steps = {n: 0.005 * p.norm() / (g.norm() + 1e-20) * g
                 for (n, p), g in zip(perturbed.items(), grads)}
        for n, step in steps.items():
            named[n].add_(step)
    full_grads = torch.autograd.grad(trades(classifier), list(named.values()))
    with torch.no_grad():
        expected = {n: p - lr * g - steps.get(n, 0.0)
                    for (n, p), g in zip(named.items(), full_grads)}

    assert len(steps) > 5
    for name, param in model.classifier.named_parameters():
        torch.testing.assert_close(param, expected[name], rtol=1e-4, atol=1e-6)
    for (name, buffer), (_, ref_buffer) in zip(model.classifier.named_buffers(),
                                               classifier.named_buffers()):
        torch.testing.assert_close(buffer, ref_buffer, rtol=1e-4, atol=1e-6)


def test_awp_under_a_wrapper_is_refused(runner, batch):
    from mmpretrain.registry import MODELS
    inputs, samples = batch
    cfg = copy.deepcopy(runner.cfg.model)
    cfg.awp = dict(gamma=0.005, begin_epoch=10)  # refused before AWP would even start
    cfg.data_preprocessor = runner.cfg.data_preprocessor
    model = MODELS.build(cfg).train()
    with pytest.raises(RuntimeError, match='AdversarialDistributedDataParallel'):
        model(inputs, samples, mode='loss')


def test_options_are_checked(runner):
    from mmpretrain.registry import MODELS
    cfg = copy.deepcopy(runner.cfg.model)
    cfg.data_preprocessor = runner.cfg.data_preprocessor
    for key, value, message in [
            ('robust_loss', dict(type='kl'), 'robust_loss type'),
            ('train_attack', dict(eps=8.0), 'fraction of the pixel range'),
            ('train_attack', dict(budget='medium'), 'budget'),
            ('eval_attacks', dict(bad=dict(type='NoSuchAttack')), 'torchattacks'),
            ('pixel_range', (1.0, 0.0), 'pixel_range')]:
        broken = copy.deepcopy(cfg)
        broken[key] = value
        with pytest.raises(ValueError, match=message):
            MODELS.build(broken)


def test_under_ddp_the_attack_bypasses_the_wrapper(runner, batch):
    import torch.distributed as dist
    from mmengine.model import MMDistributedDataParallel
    from mmengine.optim import OptimWrapper
    from mmpretrain.registry import MODELS
    cfg = copy.deepcopy(runner.cfg.model)
    cfg.data_preprocessor = runner.cfg.data_preprocessor
    cfg.train_attack = dict(eps=EPS, steps=3, step_ratio=0.5, ramp=False)
    cfg.awp = None  # mmengine's own wrapper bypasses the model's train step
    torch.manual_seed(0)
    model = MODELS.build(cfg).train()
    owned = not dist.is_initialized()
    if owned:
        with socket.socket() as probe:  # a free port for the single-process group
            probe.bind(('127.0.0.1', 0))
            port = probe.getsockname()[1]
        dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=0,
                                world_size=1)
    try:
        wrapper = MMDistributedDataParallel(module=model)
        wrapper_calls, classifier_modes = [], []
        wrapper.register_forward_pre_hook(lambda module, args: wrapper_calls.append(1))
        model.classifier.register_forward_pre_hook(
            lambda module, args: classifier_modes.append(module.training))
        optim_wrapper = OptimWrapper(torch.optim.SGD(wrapper.parameters(), lr=0.01))
        log_vars = wrapper.train_step(next(iter(runner.train_dataloader)), optim_wrapper)
    finally:
        if owned:
            dist.destroy_process_group()
    # One forward through DDP (the loss); the attack's natural pass and 3 steps ran on the
    # unwrapped classifier in eval mode, then the two training passes in training mode.
    assert len(wrapper_calls) == 1
    assert classifier_modes == [False] * 4 + [True] * 2
    assert {'loss', 'loss_ce', 'loss_gkl_mse', 'loss_gkl_ce'} <= set(log_vars)
    assert model.classifier.training


def test_awp_through_the_adversarial_ddp_wrapper_equals_the_plain_step(runner):
    import torch.distributed as dist
    from mmengine.optim import OptimWrapper
    from mmengine.registry import MODEL_WRAPPERS
    from mmpretrain.registry import MODELS
    cfg = copy.deepcopy(runner.cfg.model)
    cfg.data_preprocessor = runner.cfg.data_preprocessor
    cfg.awp = dict(gamma=0.005, begin_epoch=1)
    cfg.train_attack = dict(eps=EPS, steps=2, step_ratio=1.0, ramp=False)
    torch.manual_seed(0)
    plain = MODELS.build(cfg).train()
    wrapped = copy.deepcopy(plain)
    data_batch = next(iter(runner.train_dataloader))

    torch.manual_seed(5)
    plain_log = plain.train_step(
        data_batch, OptimWrapper(torch.optim.SGD(plain.parameters(), lr=0.1)))

    owned = not dist.is_initialized()
    if owned:
        with socket.socket() as probe:
            probe.bind(('127.0.0.1', 0))
            port = probe.getsockname()[1]
        dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=0,
                                world_size=1)
    try:
        wrapper = MODEL_WRAPPERS.build(dict(type='AdversarialDistributedDataParallel'),
                                       default_args=dict(module=wrapped))
        assert not wrapper.broadcast_buffers
        wrapper_calls = []
        wrapper.register_forward_pre_hook(lambda module, args: wrapper_calls.append(1))
        torch.manual_seed(5)
        wrapped_log = wrapper.train_step(
            data_batch, OptimWrapper(torch.optim.SGD(wrapper.parameters(), lr=0.1)))
    finally:
        if owned:
            dist.destroy_process_group()
    # One process: the synchronised gradients are the local ones, so both steps agree.
    assert len(wrapper_calls) == 1
    for key in plain_log:
        assert float(wrapped_log[key]) == pytest.approx(float(plain_log[key]), rel=1e-5)
    for (name, a), (_, b) in zip(plain.state_dict().items(), wrapped.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7, msg=name)


def test_prediction_attacks_a_fixed_subset_and_keeps_eval_mode(runner):
    model = runner.model
    model.eval()
    model.eval_attacks[0]['steps'] = 2  # pgd20 of the config, shortened
    model.eval_attacks[0]['num_samples'] = 7
    try:
        data = model.data_preprocessor(next(iter(runner.val_dataloader)), False)
        with torch.no_grad():  # as in mmengine's validation loop
            results = model(data['inputs'], data['data_samples'], mode='predict')
    finally:
        model.eval_attacks[0]['steps'] = 20
        model.eval_attacks[0]['num_samples'] = None
    assert not any(m.training for m in model.classifier.modules())
    attacked = [int(r.sample_idx) for r in results if 'pgd20' in r.adv_pred_label]
    assert attacked == list(range(7))
    assert all('autoattack' not in r.adv_pred_label for r in results)  # num_samples=0
    model.train()


def test_labels_out_of_range_are_named(runner, batch):
    inputs, samples = batch
    samples = copy.deepcopy(samples)
    samples[0].set_gt_label(12)
    with pytest.raises(ValueError, match=r'labels must lie in \[0, 9\].*got values in'):
        runner.model.robust_losses(inputs, inputs, samples)
