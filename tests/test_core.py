"""Values and gradients of ``gkl_plugins.core`` against oracles written from GKL_MATH.md.

The oracles below build the ``(B, C, C)`` tensors of all class pairs explicitly, term by
term as the math states them; the core module never builds them. Everything runs in float64
unless a test is about precision, so agreement is expected to about 1e-12.
"""
import itertools

import pytest
import torch
import torch.nn.functional as F

from gkl_plugins.core import ClassPrior, GKLLoss, GKLOutput, dkl_loss, gkl_loss, kl_loss

RTOL = 1e-9
ATOL = 1e-14


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny tensors: threads only add scheduling noise, and the machine is shared.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _logits(*shape, scale=3.0, seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(*shape, generator=generator, dtype=torch.float64)).to(dtype)


def _rows(batch, classes, seed):
    """Positive rows that sum to one, like class-prior rows."""
    return torch.softmax(_logits(batch, classes, seed=seed), dim=1)


def _reduce(per_sample_mse, per_sample_ce, norm, batch, alpha, beta, reduction):
    """The reductions as documented: 'none' gives a (B,) tensor whose mean is 'mean'."""
    if reduction == 'none':
        mse = beta * per_sample_mse * batch / norm
        ce = alpha * per_sample_ce
    else:
        scale = 1 if reduction == 'mean' else batch
        mse = scale * beta * per_sample_mse.sum() / norm
        ce = scale * alpha * per_sample_ce.sum() / batch
    return mse + ce, mse, ce


def pairwise_gkl(student, teacher, *, alpha=1.0, beta=1.0, gamma=1.0, temperature=1.0,
                 weight_temperature=1.0, class_weights=None, normalize='weights',
                 reduction='mean'):
    """GKL with explicit pair tensors: returns (loss, wMSE part, CE part)."""
    batch = student.shape[0]
    fixed_teacher = teacher.detach()
    if class_weights is None:
        u = torch.softmax(fixed_teacher / weight_temperature, dim=1) ** gamma
    else:
        u = class_weights.detach() ** gamma
    w = u[:, :, None] * u[:, None, :]
    teacher_gaps = teacher[:, :, None] - teacher[:, None, :]
    student_gaps = student[:, :, None] - student[:, None, :]
    pair_sums = 0.25 * (w * (teacher_gaps - student_gaps) ** 2).sum(dim=(1, 2))
    norm = w.sum() if normalize == 'weights' else batch

    target = torch.softmax(fixed_teacher / temperature, dim=1)
    ce = -(target * torch.log_softmax(student / temperature, dim=1)).sum(dim=1)
    return _reduce(pair_sums, ce, norm, batch, alpha, beta, reduction)


def pairwise_dkl(student, teacher, *, alpha=1.0, beta=1.0, temperature=1.0, reduction='mean'):
    """DKL with explicit pair tensors on the scaled logits; student gaps are detached."""
    batch = student.shape[0]
    z, t = student / temperature, teacher / temperature
    s = torch.softmax(t.detach(), dim=1)
    w = s[:, :, None] * s[:, None, :]
    gaps = (t[:, :, None] - t[:, None, :]) - (z[:, :, None] - z[:, None, :]).detach()
    pair_sums = 0.25 * (w * gaps ** 2).sum(dim=(1, 2))
    ce = -(s * torch.log_softmax(z, dim=1)).sum(dim=1)
    return _reduce(pair_sums, ce, batch, batch, alpha, beta, reduction)


def _grads(output, inputs, seed=7):
    """Gradients of a random projection of ``output`` (a scalar or a (B,) tensor)."""
    if output.dim():
        output = (output * _logits(*output.shape, scale=1.0, seed=seed)).sum()
    return torch.autograd.grad(output, inputs, allow_unused=True, retain_graph=True)


def _assert_close(actual, expected, rtol=RTOL, atol=ATOL):
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol)


def _assert_parity(got, expected, inputs):
    """Each part and the gradients of each part (and of the loss) match."""
    assert isinstance(got, GKLOutput)
    for got_part, expected_part in zip(got, expected):
        _assert_close(got_part, expected_part)
    _assert_close(got.loss, got.mse + got.ce)
    for index in range(3):
        got_grads = _grads(got[index], inputs)
        expected_grads = _grads(expected[index], inputs)
        for got_grad, expected_grad in zip(got_grads, expected_grads):
            if expected_grad is None:
                assert got_grad is None or not got_grad.abs().max() > 0
            else:
                _assert_close(got_grad, expected_grad)


TEMPERATURES = [(1.0, 1.0), (4.0, 4.0), (4.0, 1.0), (1.0, 4.0)]


@pytest.mark.parametrize('reduction', ['mean', 'sum', 'none'])
@pytest.mark.parametrize('normalize', ['weights', 'batch'])
@pytest.mark.parametrize('with_class_weights', [False, True])
@pytest.mark.parametrize('temperature,weight_temperature', TEMPERATURES)
@pytest.mark.parametrize('gamma', [0.05, 0.6, 1.0])
def test_gkl_loss_matches_pairwise_oracle(gamma, temperature, weight_temperature,
                                          with_class_weights, normalize, reduction):
    student = _logits(5, 7, seed=1).requires_grad_()
    # The teacher requires grad, as the natural logits do in adversarial training.
    teacher = _logits(5, 7, seed=2).requires_grad_()
    class_weights = _rows(5, 7, seed=3) if with_class_weights else None
    options = dict(alpha=1.7, beta=3.0, gamma=gamma, temperature=temperature,
                   weight_temperature=weight_temperature, class_weights=class_weights,
                   normalize=normalize, reduction=reduction)

    inputs = [x for x in (student, teacher, class_weights) if x is not None]
    before = [x.detach().clone() for x in inputs]
    got = gkl_loss(student, teacher, return_parts=True, **options)
    expected = pairwise_gkl(student, teacher, **options)

    _assert_parity(got, expected, (student, teacher))
    _assert_close(gkl_loss(student, teacher, **options), expected[0])
    # The core works in place on its own buffers only.
    assert all(torch.equal(x, y) for x, y in zip(inputs, before))


@pytest.mark.parametrize('normalize', ['weights', 'batch'])
def test_all_zero_class_weight_row_adds_no_wmse(normalize):
    student = _logits(4, 6, seed=38).requires_grad_()
    teacher = _logits(4, 6, seed=39).requires_grad_()
    class_weights = _rows(4, 6, seed=40)
    class_weights[2] = 0.0
    options = dict(beta=2.0, gamma=0.6, class_weights=class_weights, normalize=normalize)
    got = gkl_loss(student, teacher, return_parts=True, **options)
    _assert_parity(got, pairwise_gkl(student, teacher, **options), (student, teacher))
    assert bool(torch.isfinite(got.loss))


def test_frozen_teacher_gets_no_gradient_and_student_gradient_matches():
    student = _logits(6, 9, seed=4).requires_grad_()
    teacher = _logits(6, 9, seed=5)
    loss = gkl_loss(student, teacher, beta=16.0, gamma=0.05, temperature=4.0,
                    weight_temperature=4.0)
    expected = pairwise_gkl(student, teacher, beta=16.0, gamma=0.05, temperature=4.0,
                            weight_temperature=4.0)[0]
    _assert_close(loss, expected)
    _assert_close(torch.autograd.grad(loss, student)[0],
                  torch.autograd.grad(expected, student)[0])


@pytest.mark.parametrize('batch,classes', [(4, 1), (4, 2), (1, 3)])
def test_gkl_loss_small_class_counts_match_oracle(batch, classes):
    student = _logits(batch, classes, seed=6).requires_grad_()
    teacher = _logits(batch, classes, seed=7).requires_grad_()
    for normalize, reduction in itertools.product(['weights', 'batch'], ['mean', 'none']):
        options = dict(beta=2.0, gamma=0.6, temperature=4.0, weight_temperature=1.0,
                       normalize=normalize, reduction=reduction)
        got = gkl_loss(student, teacher, return_parts=True, **options)
        _assert_parity(got, pairwise_gkl(student, teacher, **options), (student, teacher))
    if classes == 1:
        # One class: no pair and a certain prediction, so nothing to learn.
        assert float(gkl_loss(student, teacher).detach()) == 0.0


@pytest.mark.parametrize('reduction', ['mean', 'sum', 'none'])
@pytest.mark.parametrize('temperature', [1.0, 4.0])
def test_dkl_loss_matches_pairwise_oracle(temperature, reduction):
    student = _logits(5, 7, seed=8).requires_grad_()
    teacher = _logits(5, 7, seed=9).requires_grad_()
    options = dict(alpha=1.3, beta=0.7, temperature=temperature, reduction=reduction)
    got = dkl_loss(student, teacher, return_parts=True, **options)
    _assert_parity(got, pairwise_dkl(student, teacher, **options), (student, teacher))


def _direct_kl(student, teacher, temperature):
    """KL(softmax(t / T) || softmax(z / T)) per sample, from its definition."""
    log_s = torch.log_softmax(teacher / temperature, dim=1)
    log_q = torch.log_softmax(student / temperature, dim=1)
    return (log_s.exp() * (log_s - log_q)).sum(dim=1)


@pytest.mark.parametrize('temperature', [1.0, 4.0])
def test_dkl_gradients_equal_kl_gradients(temperature):
    # The decomposition theorem: same gradients for both inputs, though not the same value.
    student = _logits(8, 11, seed=10).requires_grad_()
    teacher = _logits(8, 11, seed=11).requires_grad_()
    got = torch.autograd.grad(dkl_loss(student, teacher, temperature=temperature),
                              (student, teacher))
    expected = torch.autograd.grad(_direct_kl(student, teacher, temperature).mean(),
                                   (student, teacher))
    for got_grad, expected_grad in zip(got, expected):
        assert expected_grad.abs().max() > 1e-3
        _assert_close(got_grad, expected_grad, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize('temperature', [1.0, 4.0])
def test_kl_loss_equals_direct_kl(temperature):
    student = _logits(6, 10, seed=12).requires_grad_()
    teacher = _logits(6, 10, seed=13).requires_grad_()
    per_sample = _direct_kl(student, teacher, temperature)
    cases = {'none': per_sample, 'sum': per_sample.sum(), 'mean': per_sample.mean()}
    for reduction, expected in cases.items():
        got = kl_loss(student, teacher, temperature=temperature, reduction=reduction)
        _assert_close(got, expected)
        for got_grad, expected_grad in zip(_grads(got, (student, teacher)),
                                           _grads(expected, (student, teacher))):
            _assert_close(got_grad, expected_grad)


# GKLLoss: the module holding the options, the prior and the warm-up.

def _class_means(labels, teacher, temperature, classes):
    """P[y]: the mean of softmax(t / T2) over the samples of class y, by explicit loops."""
    probs = torch.softmax(teacher.double() / temperature, dim=1)
    rows = []
    for y in range(classes):
        members = [probs[i] for i in range(len(labels)) if int(labels[i]) == y]
        rows.append(torch.stack(members).mean(dim=0) if members else None)
    return rows


def test_gkl_module_without_prior_matches_oracle_with_loss_weight_and_warmup():
    student = _logits(6, 8, seed=14).requires_grad_()
    teacher = _logits(6, 8, seed=15).requires_grad_()
    options = dict(alpha=2.0, beta=5.0, gamma=0.6, temperature=4.0, weight_temperature=2.0)
    module = GKLLoss('gkl', loss_weight=0.5, warmup=4, **options)
    expected = pairwise_gkl(student, teacher, **options)

    for progress, factor in [(1, 0.25), (3, 0.75), (4, 1.0), (40, 1.0)]:
        module.set_progress(progress)
        scaled = GKLOutput(*(0.5 * factor * part for part in expected))
        _assert_parity(module(student, teacher, return_parts=True), scaled, (student, teacher))
    _assert_close(module(student, teacher), 0.5 * expected[0])


def test_gkl_module_with_prior_uses_uniform_then_epoch_means():
    classes, temperature_2 = 5, 2.0
    options = dict(alpha=1.0, beta=4.0, gamma=0.6, temperature=4.0)
    module = GKLLoss('gkl', num_classes=classes, weight_temperature=temperature_2, **options)
    labels = torch.tensor([0, 1, 2, 3, 4, 0, 2, 2])
    student = _logits(8, classes, seed=16).requires_grad_()
    teacher = _logits(8, classes, seed=17).requires_grad_()

    # Before the first closed epoch the prior is uniform.
    got = module(student, teacher, labels, return_parts=True)
    uniform = torch.full((8, classes), 1.0 / classes, dtype=torch.float64)
    expected = pairwise_gkl(student, teacher, class_weights=uniform, **options)
    _assert_parity(got, expected, (student, teacher))

    module.prior.close_epoch()
    means = torch.stack(_class_means(labels, teacher.detach(), temperature_2, classes))
    _assert_close(module.prior.prior.double(), means, rtol=1e-6, atol=1e-7)

    labels_2 = torch.tensor([4, 4, 1, 0, 3, 2])
    student_2 = _logits(6, classes, seed=18).requires_grad_()
    teacher_2 = _logits(6, classes, seed=19).requires_grad_()
    module.eval()  # evaluation must not add to the running sums
    got = module(student_2, teacher_2, labels_2, return_parts=True)
    assert float(module.prior.sums.abs().sum()) == 0.0
    weights = module.prior.prior.double()[labels_2]
    expected = pairwise_gkl(student_2, teacher_2, class_weights=weights, **options)
    _assert_parity(got, expected, (student_2, teacher_2))


@pytest.mark.parametrize('with_prior', [False, True])
def test_ikl_module_matches_oracle(with_prior):
    classes = 6
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 1])
    student = _logits(7, classes, seed=20).requires_grad_()
    teacher = _logits(7, classes, seed=21).requires_grad_()
    options = dict(alpha=1.5, beta=2.5, temperature=4.0, weight_temperature=4.0)
    module = GKLLoss('ikl', num_classes=classes if with_prior else None, **options)
    if with_prior:
        module.prior.update(labels, teacher.detach())
        module.prior.close_epoch()
        module.eval()
        weights = module.prior.prior.double()[labels]
    else:
        weights = None
    got = module(student, teacher, labels, return_parts=True)
    expected = pairwise_gkl(student, teacher, class_weights=weights, normalize='batch',
                            gamma=1.0, **options)
    _assert_parity(got, expected, (student, teacher))


def test_dkl_module_matches_oracle():
    student = _logits(5, 6, seed=22).requires_grad_()
    teacher = _logits(5, 6, seed=23).requires_grad_()
    module = GKLLoss('dkl', alpha=1.0, beta=1.0, temperature=4.0, loss_weight=2.0,
                     reduction='sum')
    expected = pairwise_dkl(student, teacher, temperature=4.0, reduction='sum')
    _assert_parity(module(student, teacher, return_parts=True),
                   GKLOutput(*(2.0 * part for part in expected)), (student, teacher))


# Precision: shift invariance in float32 and half-precision inputs.

@pytest.mark.parametrize('shift_teacher', [True, False])
@pytest.mark.parametrize('temperature', [1.0, 3.0, 4.0])
def test_wmse_is_shift_invariant_in_float32(shift_teacher, temperature):
    student = _logits(16, 50, seed=24, dtype=torch.float32)
    teacher = _logits(16, 50, seed=25, dtype=torch.float32)
    shifted_student = student + 1e4
    shifted_teacher = teacher + 1e4 if shift_teacher else teacher
    options = dict(beta=1.0, gamma=0.6, temperature=temperature,
                   weight_temperature=temperature)

    got = gkl_loss(shifted_student, shifted_teacher, return_parts=True, **options)
    # Reference: float64 on exactly the same (already float32-rounded) inputs. The offset
    # costs nothing: the error stays at float32 rounding level, well inside 1e-4. (Scaling
    # by 1 / 3 before removing the offset would already cost about 1e-6 here.)
    expected = pairwise_gkl(shifted_student.double(), shifted_teacher.double(), **options)
    assert got.mse.dtype == torch.float32
    torch.testing.assert_close(got.mse.double(), expected[1], rtol=1e-6, atol=0)
    torch.testing.assert_close(got.ce.double(), expected[2], rtol=1e-6, atol=0)
    # The shift itself changes nothing beyond the rounding of the inputs.
    unshifted = pairwise_gkl(student.double(), teacher.double(), **options)
    torch.testing.assert_close(expected[1], unshifted[1], rtol=1e-2, atol=0)


def test_expanded_variance_form_would_fail_in_float32():
    # Documents why the core centres the differences first: the textbook expansion
    # U * sum u d^2 - (sum u d)^2 loses every digit once the logits carry a 1e4 offset.
    student = _logits(16, 50, seed=24, dtype=torch.float32) + 1e4
    teacher = _logits(16, 50, seed=25, dtype=torch.float32)
    u = torch.softmax(teacher, dim=1)
    d = student - teacher
    total = u.sum(dim=1)
    expanded = 0.5 * (total * (u * d * d).sum(dim=1) - (u * d).sum(dim=1) ** 2)
    naive = expanded.sum() / total.square().sum()
    expected = pairwise_gkl(student.double(), teacher.double())[1]
    assert abs(float(naive) - float(expected)) > 1e-2 * float(expected)
    got = gkl_loss(student, teacher, return_parts=True).mse
    assert abs(float(got) - float(expected)) < 1e-4 * float(expected)


@pytest.mark.parametrize('dtype,rtol', [(torch.bfloat16, 3e-2), (torch.float16, 4e-3)])
def test_half_precision_inputs_give_finite_float32_results(dtype, rtol):
    student32 = _logits(32, 100, seed=26, dtype=torch.float32)
    teacher32 = _logits(32, 100, seed=27, dtype=torch.float32)
    student = student32.to(dtype).requires_grad_()
    teacher = teacher32.to(dtype).requires_grad_()
    options = dict(beta=16.0, gamma=0.05, temperature=4.0, weight_temperature=4.0)

    loss = gkl_loss(student, teacher, **options)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    # Exactly the float32 computation on the rounded inputs ...
    rounded = [x.detach().float().requires_grad_() for x in (student, teacher)]
    loss_rounded = gkl_loss(*rounded, **options)
    torch.testing.assert_close(loss, loss_rounded, rtol=1e-6, atol=0)
    # ... and close to the float32 value of the unrounded inputs.
    full = [x.clone().requires_grad_() for x in (student32, teacher32)]
    loss_full = gkl_loss(*full, **options)
    torch.testing.assert_close(loss, loss_full, rtol=rtol, atol=0)

    grads = torch.autograd.grad(loss, (student, teacher))
    grads_full = torch.autograd.grad(loss_full, full)
    for grad, grad_full in zip(grads, grads_full):
        assert grad.dtype == dtype and bool(torch.isfinite(grad).all())
        scale = float(grad_full.abs().max())
        torch.testing.assert_close(grad.float(), grad_full, rtol=0, atol=10 * rtol * scale)


# Edge cases.

def test_empty_batch_gives_zero_and_an_empty_gradient():
    student = torch.zeros(0, 10, dtype=torch.float64, requires_grad=True)
    teacher = torch.zeros(0, 10, dtype=torch.float64, requires_grad=True)
    for reduction in ('mean', 'sum'):
        for fn in (gkl_loss, dkl_loss, kl_loss):
            loss = fn(student, teacher, reduction=reduction)
            assert loss.shape == () and float(loss.detach()) == 0.0
            grads = torch.autograd.grad(loss, (student, teacher), allow_unused=True)
            assert all(g is None or g.shape == (0, 10) for g in grads)
    assert gkl_loss(student, teacher, reduction='none').shape == (0,)

    module = GKLLoss('gkl', num_classes=10, beta=2.0, gamma=0.6)
    loss = module(student, teacher, torch.zeros(0, dtype=torch.long))
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert student.grad.shape == (0, 10) and float(student.grad.abs().sum()) == 0.0


def test_empty_batch_with_class_weights_in_float32_gives_zero():
    # A floor of float32's smallest normal under the zero normaliser overflows the wMSE
    # coefficient to inf, and 0 * inf is NaN.
    for temperature, beta in ((1.0, 1.0), (2.0, 2.0), (4.0, 16.0)):
        student = torch.zeros(0, 11, requires_grad=True)
        loss = gkl_loss(student, torch.zeros(0, 11), class_weights=torch.zeros(0, 11),
                        beta=beta, temperature=temperature, weight_temperature=temperature)
        assert float(loss.detach()) == 0.0
        loss.backward()
        assert student.grad.shape == (0, 11)


def test_all_zero_class_weights_give_a_zero_wmse_and_the_plain_ce():
    student = _logits(4, 6, seed=3, dtype=torch.float32).requires_grad_()
    teacher = _logits(4, 6, seed=4, dtype=torch.float32)
    out = gkl_loss(student, teacher, beta=16.0, temperature=4.0, weight_temperature=4.0,
                   class_weights=torch.zeros(4, 6), return_parts=True)
    expected_ce = -(torch.softmax(teacher / 4, 1) * torch.log_softmax(student / 4, 1)).sum(1)
    assert float(out.mse.detach()) == 0.0
    assert torch.allclose(out.ce.detach(), expected_ce.mean().detach(), rtol=1e-6)
    out.loss.backward()
    assert torch.isfinite(student.grad).all()


def test_prior_after_an_epoch_is_the_class_mean_of_teacher_softmax():
    classes, temperature = 4, 3.0
    prior = ClassPrior(classes, temperature=temperature)
    labels = torch.tensor([0, 1, 1, 3, 0, 1, 3, 3, 3])  # class 2 never appears
    teacher = _logits(9, classes, seed=28, dtype=torch.float32)
    prior.update(labels[:4], teacher[:4])
    prior.update(labels[4:], teacher[4:])
    seen = prior.close_epoch()

    assert seen.tolist() == [True, True, False, True]
    means = _class_means(labels, teacher, temperature, classes)
    for y in (0, 1, 3):
        _assert_close(prior.prior[y].double(), means[y], rtol=1e-6, atol=1e-7)
    assert prior.prior[2].tolist() == [0.25] * 4
    assert int(prior.num_epochs) == 1


def test_absent_class_keeps_its_previous_row():
    classes = 3
    prior = ClassPrior(classes)
    prior.update(torch.tensor([0, 1, 2]), _logits(3, classes, seed=29, dtype=torch.float32))
    prior.close_epoch()
    before = prior.prior.clone()

    labels = torch.tensor([0, 0, 2])
    teacher = _logits(3, classes, seed=30, dtype=torch.float32)
    prior.update(labels, teacher)
    prior.close_epoch()

    assert torch.equal(prior.prior[1], before[1])
    means = _class_means(labels, teacher, 1.0, classes)
    _assert_close(prior.prior[0].double(), means[0], rtol=1e-6, atol=1e-7)
    _assert_close(prior.prior[2].double(), means[2], rtol=1e-6, atol=1e-7)
    assert bool(torch.isfinite(prior.prior).all())


def test_soft_labels_accumulate_a_weighted_class_mean():
    classes, batch = 4, 6
    generator = torch.Generator().manual_seed(31)
    # Mixup-style targets: each sample is a blend of two classes.
    first = torch.randint(classes, (batch,), generator=generator)
    second = torch.randint(classes, (batch,), generator=generator)
    lam = torch.rand(batch, generator=generator, dtype=torch.float64)
    soft = lam[:, None] * F.one_hot(first, classes) + (1 - lam[:, None]) * F.one_hot(
        second, classes)
    probs = torch.softmax(_logits(batch, classes, seed=32), dim=1)

    prior = ClassPrior(classes)
    prior.update(soft.float(), teacher_probs=probs)
    prior.close_epoch()

    for y in range(classes):
        mass = sum(float(soft[i, y]) for i in range(batch))
        if mass == 0:
            assert prior.prior[y].tolist() == [0.25] * classes
            continue
        mean = sum(float(soft[i, y]) * probs[i] for i in range(batch)) / mass
        _assert_close(prior.prior[y].double(), mean, rtol=1e-6, atol=1e-7)
    # Soft rows for the weights are the label-weighted blend of prior rows.
    _assert_close(prior.class_weights(soft), soft.to(prior.prior.dtype) @ prior.prior)


def test_prior_state_dict_round_trip_is_exact():
    prior = ClassPrior(5, temperature=2.0)
    prior.update(torch.tensor([0, 1, 2, 3, 4, 0]), _logits(6, 5, seed=33, dtype=torch.float32))
    prior.close_epoch()
    prior.update(torch.tensor([1, 2]), _logits(2, 5, seed=34, dtype=torch.float32))

    restored = ClassPrior(5, temperature=2.0)
    restored.load_state_dict(prior.state_dict())
    for name in ('prior', 'sums', 'counts', 'num_epochs'):
        assert torch.equal(getattr(restored, name), getattr(prior, name)), name
    assert not torch.equal(restored.prior, ClassPrior(5).prior)

    module = GKLLoss('gkl', num_classes=5)
    module.prior.load_state_dict(prior.state_dict())
    assert torch.equal(GKLLoss('gkl', num_classes=5).state_dict()['prior.prior'],
                       ClassPrior(5).prior)
    assert torch.equal(module.state_dict()['prior.prior'], prior.prior)


# Bad inputs: a ValueError that names the problem.

def test_logit_shape_errors():
    good = torch.zeros(4, 5)
    with pytest.raises(ValueError, match='same shape'):
        gkl_loss(good, torch.zeros(4, 6))
    with pytest.raises(ValueError, match='same shape'):
        dkl_loss(good, torch.zeros(3, 5))
    for bad in (torch.zeros(5), torch.zeros(2, 4, 5)):
        for fn in (gkl_loss, dkl_loss, kl_loss):
            with pytest.raises(ValueError, match='2-D'):
                fn(bad, bad)
    with pytest.raises(ValueError, match='floating-point'):
        gkl_loss(torch.zeros(4, 5, dtype=torch.long), good)


@pytest.mark.parametrize('bad_value', [float('nan'), float('inf'), -float('inf')])
@pytest.mark.parametrize('which', ['student', 'teacher'])
def test_non_finite_logits_are_named(which, bad_value):
    student, teacher = _logits(4, 5, seed=35), _logits(4, 5, seed=36)
    (student if which == 'student' else teacher)[1, 2] = bad_value
    for fn in (gkl_loss, dkl_loss):
        with pytest.raises(ValueError, match=f'{which} logits contain NaN or inf'):
            fn(student, teacher)
    # Switched off, the caller gets the non-finite value instead.
    if bad_value != bad_value:
        assert not torch.isfinite(gkl_loss(student, teacher, check_finite=False))


def test_non_finite_teacher_does_not_pollute_the_prior():
    module = GKLLoss('gkl', num_classes=5)
    teacher = _logits(4, 5, seed=37, dtype=torch.float32)
    teacher[0, 0] = float('nan')
    with pytest.raises(ValueError, match='teacher logits'):
        module(torch.zeros(4, 5), teacher, torch.tensor([0, 1, 2, 3]))
    assert float(module.prior.sums.abs().sum()) == 0.0


def test_label_and_weight_errors():
    module = GKLLoss('gkl', num_classes=5)
    logits = torch.zeros(3, 5)
    for labels in (torch.tensor([0, 5, 1]), torch.tensor([0, -1, 1])):
        with pytest.raises(ValueError, match=r'labels must lie in \[0, 4\]'):
            module(logits, logits, labels)
    with pytest.raises(ValueError, match='pass the labels'):
        module(logits, logits)
    with pytest.raises(ValueError, match=r'soft labels must have shape \(B, 5\)'):
        module(logits, logits, torch.full((3, 4), 0.25))
    with pytest.raises(ValueError, match='got 2 labels for a batch of 3'):
        module(logits, logits, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match='class_weights must have the logits shape'):
        gkl_loss(logits, logits, class_weights=torch.ones(3, 6))

    prior = ClassPrior(5)
    with pytest.raises(ValueError, match='exactly one of teacher_logits and teacher_probs'):
        prior.update(torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match='exactly one of teacher_logits and teacher_probs'):
        prior.update(torch.tensor([0, 1, 2]), logits, teacher_probs=logits.softmax(1))
    with pytest.raises(ValueError, match=r'teacher predictions must have shape \(B, 5\)'):
        prior.update(torch.tensor([0, 1, 2]), torch.zeros(3, 4))


def test_option_errors():
    logits = torch.zeros(2, 3)
    with pytest.raises(ValueError, match='normalize must be one of'):
        gkl_loss(logits, logits, normalize='sum')
    with pytest.raises(ValueError, match='reduction must be one of'):
        gkl_loss(logits, logits, reduction='batchmean')
    with pytest.raises(ValueError, match='variant must be one of'):
        GKLLoss('kd')
    with pytest.raises(ValueError, match='ikl variant has gamma = 1'):
        GKLLoss('ikl', gamma=0.5)
    with pytest.raises(ValueError, match='dkl variant'):
        GKLLoss('dkl', num_classes=3)
    with pytest.raises(ValueError, match='dkl variant is the exact decoupling'):
        GKLLoss('dkl', gamma=0.5)
    with pytest.raises(ValueError, match='no separate weight_temperature'):
        GKLLoss('dkl', temperature=4.0, weight_temperature=2.0)
    GKLLoss('dkl', temperature=4.0, weight_temperature=4.0)  # the same softmax: accepted
    for bad in (-0.5, float('nan')):
        with pytest.raises(ValueError, match='gamma must be a non-negative number'):
            gkl_loss(logits, logits, gamma=bad)
        with pytest.raises(ValueError, match='gamma must be a non-negative number'):
            GKLLoss(gamma=bad)


def test_no_class_and_negative_class_weights_are_named():
    with pytest.raises(ValueError, match='at least one class'):
        gkl_loss(torch.zeros(2, 0), torch.zeros(2, 0))
    student, teacher = _logits(2, 4, seed=1), _logits(2, 4, seed=2)
    weights = torch.full((2, 4), 0.25)
    weights[1, 2] = -0.25
    with pytest.raises(ValueError, match='class weights must be non-negative'):
        gkl_loss(student, teacher, gamma=0.5, class_weights=weights)


@pytest.mark.parametrize('bad', [0.0, -1.0, float('nan'), float('inf')])
def test_temperatures_must_be_positive(bad):
    student, teacher = _logits(2, 4, seed=1), _logits(2, 4, seed=2)
    with pytest.raises(ValueError, match='temperature must be a positive number'):
        gkl_loss(student, teacher, temperature=bad)
    with pytest.raises(ValueError, match='weight_temperature must be a positive number'):
        gkl_loss(student, teacher, weight_temperature=bad)
    with pytest.raises(ValueError, match='temperature must be a positive number'):
        dkl_loss(student, teacher, temperature=bad)
    with pytest.raises(ValueError, match='temperature must be a positive number'):
        kl_loss(student, teacher, temperature=bad)
    with pytest.raises(ValueError, match='temperature must be a positive number'):
        GKLLoss(temperature=bad)
    with pytest.raises(ValueError, match='temperature must be a positive number'):
        ClassPrior(4, temperature=bad)


@pytest.mark.parametrize('which', ['student', 'teacher'])
def test_kl_loss_names_non_finite_logits(which):
    student, teacher = _logits(3, 5, seed=1), _logits(3, 5, seed=2)
    (student if which == 'student' else teacher)[1, 2] = float('nan')
    with pytest.raises(ValueError, match=f'{which} logits contain NaN or inf'):
        kl_loss(student, teacher)


def test_prior_class_count_mismatch_is_named():
    loss = GKLLoss(num_classes=6)
    with pytest.raises(ValueError, match='num_classes=6 but the logits have 5 classes'):
        loss(_logits(2, 5, seed=1), _logits(2, 5, seed=2), torch.tensor([0, 1]))
