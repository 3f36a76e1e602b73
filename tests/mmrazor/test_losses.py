"""GKLDivergence: the variants equal the core functions, its parts reach the message hub,
and soft labels from Mixup build the prior in mmengine's real Runner."""
import pytest
import torch

from tests.conftest import require
from tests.mmrazor.helpers import OutputRecorder, tiny_gkl_config

mmengine = require('mmengine')
require('gkl_plugins.mmrazor')
from mmengine.logging import MessageHub  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from gkl_plugins.core import dkl_loss, gkl_loss  # noqa: E402
from gkl_plugins.mmrazor import GKLDivergence  # noqa: E402


def _logits(seed=0, batch=6, classes=5):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, classes, generator=g, dtype=torch.float64) * 3,
            torch.randn(batch, classes, generator=g, dtype=torch.float64) * 3,
            torch.randint(0, classes, (batch, ), generator=g))


@pytest.mark.parametrize('variant', ['gkl', 'ikl', 'dkl'])
def test_variants_equal_the_core_functions(variant):
    student, teacher, _ = _logits()
    gamma = 0.5 if variant == 'gkl' else 1.0
    # dkl's weights are the teacher softmax at tau itself
    weight_tau = 2.0 if variant == 'dkl' else 1.5
    loss = GKLDivergence(variant, alpha=2.0, beta=3.0, gamma=gamma, tau=2.0,
                         weight_tau=weight_tau, loss_weight=0.7, log_name=None)
    if variant == 'dkl':
        expected = dkl_loss(student, teacher, alpha=2.0, beta=3.0, temperature=2.0)
    else:
        expected = gkl_loss(student, teacher, alpha=2.0, beta=3.0, gamma=gamma,
                            temperature=2.0, weight_temperature=1.5,
                            normalize='batch' if variant == 'ikl' else 'weights')
    assert float(loss(student, teacher)) == pytest.approx(0.7 * float(expected), rel=1e-12)


def test_parts_go_to_the_message_hub_in_training_only():
    student, teacher, labels = _logits(1)
    hub = MessageHub.get_instance('gkl_divergence_parts')
    loss = GKLDivergence(num_classes=5, beta=4.0, gamma=0.5, tau=2.0, weight_tau=2.0)
    value = loss(student, teacher, labels)
    parts = gkl_loss(student, teacher, beta=4.0, gamma=0.5, temperature=2.0,
                     weight_temperature=2.0, class_weights=torch.full_like(student, 0.2),
                     return_parts=True)
    assert float(value) == pytest.approx(float(parts.loss), rel=1e-12)
    assert hub.get_scalar('train/distill.loss_gkl_mse').current() == pytest.approx(
        float(parts.mse), rel=1e-12)
    assert hub.get_scalar('train/distill.loss_gkl_ce').current() == pytest.approx(
        float(parts.ce), rel=1e-12)

    loss.eval()
    loss(student * 2, teacher, labels)
    assert hub.get_scalar('train/distill.loss_gkl_mse').current() == pytest.approx(
        float(parts.mse), rel=1e-12)
    with pytest.raises(ValueError, match='pass the labels'):
        loss(student, teacher)


def test_teacher_is_detached_and_student_gets_both_parts():
    student, teacher, labels = _logits(2)
    student.requires_grad_(True)
    teacher.requires_grad_(True)
    GKLDivergence(num_classes=5, log_name=None)(student, teacher, labels).backward()
    assert teacher.grad is None
    reference = student.detach().clone().requires_grad_(True)
    gkl_loss(reference, teacher.detach(), class_weights=torch.full_like(student, 0.2)).backward()
    torch.testing.assert_close(student.grad, reference.grad, rtol=1e-12, atol=1e-15)


def test_mixup_soft_labels_build_the_prior(tmp_path):
    torch.set_num_threads(1)
    cfg = tiny_gkl_config(tmp_path / 'mixup', max_epochs=1)
    cfg.model.data_preprocessor.batch_augments = dict(augments=[dict(type='Mixup', alpha=1.0)])
    runner = Runner.from_cfg(cfg)
    teacher = OutputRecorder(runner.model.teacher.head.fc)
    targets = []
    runner.model.architecture.head.loss_module.register_forward_pre_hook(
        lambda module, args: targets.append(args[1].detach().clone()))
    runner.train()

    soft = torch.cat(targets).double()
    assert soft.shape == (40, 10)
    assert bool(((soft > 0) & (soft < 1)).any())  # mixed, not one-hot
    probs = torch.softmax(torch.cat(teacher.outputs).double() / 4.0, dim=1)
    sums = soft.t() @ probs
    expected = sums / sums.sum(dim=1, keepdim=True)
    prior = runner.model.distiller.distill_losses.loss_gkl.gkl.prior.prior
    torch.testing.assert_close(prior.double(), expected, rtol=1e-5, atol=1e-7)
