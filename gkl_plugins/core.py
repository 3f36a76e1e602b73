"""The GKL loss family in plain PyTorch: no host framework is imported here.

Everything the adapters need is defined in this module:

* :func:`gkl_loss`: the Generalized KL loss (and IKL through ``normalize='batch'``).
* :func:`dkl_loss`: the exact decoupling of KL into a weighted MSE and a soft-label
  cross-entropy, whose gradients equal those of :func:`kl_loss`.
* :func:`kl_loss`: ``KL(softmax(t / T) || softmax(z / T))``, for the KD and TRADES baselines.
* :class:`ClassPrior`: the class-wise average teacher prediction gathered over an epoch.
* :class:`GKLLoss`: a module holding the options and, optionally, a :class:`ClassPrior`.

The weighted MSE over all pairs of classes is evaluated in O(B*C) time and memory through
the identity ``sum_jk u_j u_k (d_j - d_k)^2 = 2 U sum_j u_j (d_j - dbar)^2`` with
``U = sum_j u_j`` and ``dbar = sum_j u_j d_j / U``. The centred form is used because the
expanded one cancels catastrophically for large logits.
"""
import math
from typing import NamedTuple, Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    'GKLOutput', 'gkl_loss', 'dkl_loss', 'kl_loss', 'warmup_factor', 'ClassPrior', 'GKLLoss'
]

_NORMALIZE = ('weights', 'batch')
_REDUCTION = ('mean', 'sum', 'none')
_VARIANTS = ('gkl', 'ikl', 'dkl')


class GKLOutput(NamedTuple):
    """A loss and its two weighted parts, ``loss == mse + ce``.

    Each field is a scalar, or a ``(B,)`` tensor with ``reduction='none'``.
    """
    loss: Tensor
    mse: Tensor
    ce: Tensor


def _check_logits(student_logits: Tensor, teacher_logits: Tensor) -> None:
    if student_logits.dim() != 2 or teacher_logits.dim() != 2:
        raise ValueError(
            'student and teacher logits must be 2-D tensors of shape (B, C), got shapes '
            f'{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}; flatten extra '
            'dimensions into the batch dimension first')
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f'student logits {tuple(student_logits.shape)} and teacher logits '
            f'{tuple(teacher_logits.shape)} must have the same shape (B, C): check that both '
            'models predict the same classes for the same samples')
    if not (student_logits.is_floating_point() and teacher_logits.is_floating_point()):
        raise ValueError('logits must be floating-point tensors')
    if student_logits.shape[1] == 0:
        raise ValueError('logits have no class (shape (B, 0)): a model must predict at least '
                         'one class')


def _check_choice(name: str, value: str, choices) -> None:
    if value not in choices:
        raise ValueError(f'{name} must be one of {choices}, got {value!r}')


def _check_temperature(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f'{name} must be a positive number, got {value!r}')


def _check_gamma(gamma: float) -> None:
    # A negative power would give the rarest classes the largest weights.
    if not (math.isfinite(gamma) and gamma >= 0):
        raise ValueError(f'gamma must be a non-negative number (it smooths the weights, '
                         f'typically in (0, 1]), got {gamma!r}')


def _compute_dtype(*tensors: Tensor) -> torch.dtype:
    # Half-precision inputs are evaluated in float32, like softmax and losses under autocast.
    dtype = torch.promote_types(tensors[0].dtype, tensors[1].dtype)
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _as(tensor: Tensor, dtype: torch.dtype) -> Tensor:
    # Skipping the no-op cast saves a dispatch, which shows at small C.
    return tensor if tensor.dtype == dtype else tensor.to(dtype)


def _raise_if_not_finite(value: Tensor, inputs, class_weights: Optional[Tensor] = None) -> None:
    """Explain a non-finite loss; inputs are only scanned when the loss is not finite."""
    finite = math.isfinite(value.item()) if value.dim() == 0 else bool(value.isfinite().all())
    if finite:
        return
    for name, tensor in inputs:
        if tensor is not None and not bool(torch.isfinite(tensor).all()):
            raise ValueError(
                f'{name} contain NaN or inf: check the model outputs (a diverged run, a '
                'too-high learning rate or a division by zero upstream)')
    if class_weights is not None and bool((class_weights < 0).any()):
        raise ValueError('class weights must be non-negative (rows of a class prior, '
                         'e.g. ClassPrior.class_weights(labels))')
    raise ValueError(
        'the loss overflowed although its inputs are finite: the logits are too large for '
        'their dtype; compute them in float32 or float64')


class _Spec(NamedTuple):
    """The options of one fused evaluation (see :class:`_GKLParts`)."""
    temperature: float
    weight_temperature: float
    gamma: float
    mse_scale: float  # 1 / T^2 for DKL, whose wMSE is taken on the scaled logits
    mse_to_student: bool
    alpha: float
    beta: float
    normalize: str
    reduction: str
    check_finite: bool


def _scaled(logits: Tensor, inv_temperature: float) -> Tensor:
    """``logits * inv_temperature`` in a fresh buffer, shifted by a constant per row.

    Scaling by a power of two is exact. Any other factor would round a large common offset
    into every entry, so each row's max is subtracted first, which is exact there (the
    values are close); log_softmax does not see the shift.
    """
    if math.frexp(inv_temperature)[0] == 0.5:
        return logits * inv_temperature
    return logits.sub(logits.amax(dim=1, keepdim=True)).mul_(inv_temperature)


class _GKLParts(torch.autograd.Function):
    """The reduced, weighted wMSE and soft-label CE parts and their sum, in one node.

    The log-probabilities stand in for the logits: ``log q - log p`` differs from
    ``(z - t) / T`` by a constant per row, which the centring removes, so the wMSE is taken
    on them and multiplied back by ``T^2``. This layout keeps the cost close to that of
    plain KD: few operations (what counts at small ``C``), and at large ``C`` few passes
    over ``(B, C)`` and few fresh ``(B, C)`` buffers, the scaled inputs being reused as
    scratch space. Saved for backward: both softmaxes and the weighted centred differences.
    """

    @staticmethod
    def forward(ctx, student, teacher, class_weights, spec: _Spec, parts: bool):
        ctx.set_materialize_grads(False)
        batch = student.shape[0]
        temperature = spec.temperature
        if temperature == 1:
            log_q = F.log_softmax(student, dim=1)
            log_p = F.log_softmax(teacher, dim=1)
            scratch, spare = torch.empty_like(log_q), None
        else:
            scratch = _scaled(student, 1.0 / temperature)
            spare = _scaled(teacher, 1.0 / temperature)
            log_q = F.log_softmax(scratch, dim=1)
            log_p = F.log_softmax(spare, dim=1)
        p = log_p.exp()

        if class_weights is not None:
            weights = class_weights if spec.gamma == 1 else class_weights.pow(spec.gamma)
        elif spec.weight_temperature == temperature:
            # softmax ** gamma as exp(gamma * log softmax): the tiny probabilities that
            # rounding would flush to zero are lifted as they should be.
            weights = p if spec.gamma == 1 else torch.mul(log_p, spec.gamma, out=spare).exp_()
        else:
            weights = F.log_softmax(_scaled(teacher, 1.0 / spec.weight_temperature), dim=1)
            weights = weights.mul_(spec.gamma).exp_()

        # sum_j p_j log q_j, the CE part with its sign flipped (put back by the coefficient).
        if spec.reduction == 'none':
            neg_ce = torch.mul(p, log_q, out=scratch).sum(dim=1)
        else:
            neg_ce = torch.mul(p, log_q, out=scratch).sum()

        # (1/4) sum_jk u_j u_k (d_j - d_k)^2 == (1/2) U sum_j u_j (d_j - dbar)^2
        centred = torch.sub(log_q, log_p, out=log_p)
        q = log_q.exp_()
        total = weights.sum(dim=1)
        tiny = torch.finfo(total.dtype).tiny
        # Softmax weights always have U > 0. An all-zero row of class weights adds 0 to the
        # wMSE; the floor only avoids 0 / 0 there, as it does for an empty batch below.
        safe_total = total if class_weights is None else total.clamp_min(tiny)
        mean = torch.mul(weights, centred, out=scratch).sum(dim=1).div_(safe_total)
        centred.sub_(mean.unsqueeze(1))
        weighted = torch.mul(weights, centred, out=scratch)
        spread = centred.mul_(weighted).sum(dim=1)

        mse_coef = 0.5 * spec.mse_scale * temperature ** 2 * spec.beta
        ce_coef = spec.alpha
        if spec.reduction != 'mean':
            mse_coef *= batch
        if spec.reduction != 'none':
            ce_coef *= (batch if spec.reduction == 'sum' else 1.0) / max(batch, 1)
        if spec.normalize == 'weights':
            norm = torch.dot(total, total)
            if class_weights is not None or batch == 0:
                # A zero normaliser means every weight is zero, and so is the weighted sum it
                # divides: any positive stand-in gives the right 0, but 1 keeps the
                # coefficient finite (a tiny floor would overflow it to inf, and 0 * inf).
                norm = torch.where(norm > 0, norm, torch.ones_like(norm))
            mse_coef = mse_coef / norm
        else:
            mse_coef = mse_coef / max(batch, 1)
        if spec.reduction == 'none':
            mse = spread.mul_(total).mul_(mse_coef)
        else:
            mse = torch.dot(total, spread) * mse_coef
        ce = neg_ce * -ce_coef
        loss = mse + ce
        if spec.check_finite:
            _raise_if_not_finite(loss, [('student logits', student),
                                        ('teacher logits', teacher),
                                        ('class weights', class_weights)],
                                 class_weights=class_weights)

        ctx.save_for_backward(q, p, weighted, total)
        # Gradients are taken with respect to the unscaled logits, hence 1 / T.
        ctx.coefs = (2.0 / temperature * mse_coef, ce_coef / temperature)
        ctx.mse_to_student = spec.mse_to_student
        # Each output costs autograd bookkeeping, noticeable at small C: the parts only on
        # request.
        return (loss, mse, ce) if parts else loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss, grad_mse=None, grad_ce=None):
        q, p, weighted, total = ctx.saved_tensors
        mse_coef, ce_coef = ctx.coefs
        grad_mse = _add_grads(grad_loss, grad_mse)
        grad_ce = _add_grads(grad_loss, grad_ce)

        grad_student = grad_teacher = None
        # d mse_b / d(z_bj - t_bj) = 2 U_b u_bj (d_bj - dbar_b), times the reduction's factor.
        grad_d = None if grad_mse is None else (total * mse_coef).mul_(grad_mse).unsqueeze(1)
        if ctx.needs_input_grad[0]:
            if grad_ce is not None:
                grad_ce = grad_ce * ce_coef
                grad_student = torch.sub(q, p).mul_(
                    grad_ce.unsqueeze(1) if grad_ce.dim() else grad_ce)
            if ctx.mse_to_student and grad_d is not None:
                grad_student = (weighted * grad_d if grad_student is None
                                else grad_student.addcmul_(weighted, grad_d))
        if ctx.needs_input_grad[1] and grad_d is not None:
            grad_teacher = weighted * grad_d.neg_()
        return grad_student, grad_teacher, None, None, None


def _add_grads(first: Optional[Tensor], second: Optional[Tensor]) -> Optional[Tensor]:
    if first is None or second is None:
        return second if first is None else first
    return first + second


def gkl_loss(student_logits: Tensor,
             teacher_logits: Tensor,
             *,
             alpha: float = 1.0,
             beta: float = 1.0,
             gamma: float = 1.0,
             temperature: float = 1.0,
             weight_temperature: float = 1.0,
             class_weights: Optional[Tensor] = None,
             normalize: str = 'weights',
             reduction: str = 'mean',
             return_parts: bool = False,
             check_finite: bool = True):
    """Generalized Kullback-Leibler divergence loss.

    With ``z`` the student and ``t`` the teacher logits of a sample and ``u`` its weight
    vector, the loss is ``beta * wMSE + alpha * CE`` where::

        wMSE = (1/4) sum_b sum_jk u_bj u_bk ((t_bj - t_bk) - (z_bj - z_bk))^2 / N
        CE   = mean_b ( - sum_j softmax(t_b / T)_j * log softmax(z_b / T)_j )

    ``u = class_weights ** gamma`` when class weights are given (the class prior rows
    ``P[y]`` of the samples), else ``u = softmax(t / weight_temperature) ** gamma``. The
    weights and the CE target never carry gradient. ``N = sum_b (sum_j u_bj)^2`` for
    ``normalize='weights'`` (GKL) or ``N = B`` for ``normalize='batch'`` (IKL, with
    ``gamma=1``). The wMSE part sends gradients to both logits; the teacher receives them
    only if it requires grad (adversarial training). The CE part is not multiplied by T^2.

    Args:
        student_logits (Tensor): ``(B, C)`` student logits.
        teacher_logits (Tensor): ``(B, C)`` teacher logits.
        alpha (float): Weight of the soft-label CE part. Defaults to 1.0.
        beta (float): Weight of the wMSE part. Defaults to 1.0.
        gamma (float): Power that smooths the weights. Defaults to 1.0.
        temperature (float): Temperature ``T`` of the CE part. Defaults to 1.0.
        weight_temperature (float): Temperature of the teacher softmax that forms the weights
            when ``class_weights`` is None. Defaults to 1.0.
        class_weights (Tensor, optional): ``(B, C)`` non-negative per-sample weight rows
            before the power ``gamma``, e.g. ``ClassPrior.class_weights(labels)``.
            Defaults to None.
        normalize (str): ``'weights'`` or ``'batch'``. Defaults to ``'weights'``.
        reduction (str): ``'mean'`` (the formula above), ``'sum'`` (``B`` times the mean) or
            ``'none'`` (a ``(B,)`` tensor whose mean is the ``'mean'`` value).
            Defaults to ``'mean'``.
        return_parts (bool): Return a :class:`GKLOutput` with the weighted parts instead of
            the loss alone. Defaults to False.
        check_finite (bool): Raise a ``ValueError`` naming the bad input when the loss is
            not finite. This reads one value back to the host; switch it off inside
            compiled or graph-captured code. Defaults to True.

    Returns:
        Tensor or GKLOutput: The loss, in float32 for half-precision inputs.

    Shape:
        - student_logits, teacher_logits, class_weights: ``(B, C)``
        - output: scalar, or ``(B,)`` with ``reduction='none'``

    .. warning::
        ``alpha`` weighs the CE part and ``beta`` the wMSE part, as in the authors' code and
        the published hyperparameters; the paper's theorem uses the letters the other way.

    Example:
        >>> student, teacher = torch.randn(8, 100, requires_grad=True), torch.randn(8, 100)
        >>> loss = gkl_loss(student, teacher, beta=16.0, gamma=0.05, temperature=4.0,
        ...                 weight_temperature=4.0)
        >>> loss.backward()
    """
    _check_logits(student_logits, teacher_logits)
    _check_choice('normalize', normalize, _NORMALIZE)
    _check_choice('reduction', reduction, _REDUCTION)
    _check_temperature('temperature', temperature)
    _check_temperature('weight_temperature', weight_temperature)
    _check_gamma(gamma)
    if class_weights is not None and class_weights.shape != student_logits.shape:
        raise ValueError(
            f'class_weights must have the logits shape {tuple(student_logits.shape)}, got '
            f'{tuple(class_weights.shape)}: pass one prior row per sample, e.g. '
            'ClassPrior.class_weights(labels)')

    dtype = _compute_dtype(student_logits, teacher_logits)
    if class_weights is not None:
        class_weights = class_weights.detach().to(dtype)
    spec = _Spec(float(temperature), float(weight_temperature), float(gamma), 1.0, True,
                 float(alpha), float(beta), normalize, reduction, check_finite)
    out = _GKLParts.apply(_as(student_logits, dtype), _as(teacher_logits, dtype),
                          class_weights, spec, return_parts)
    return GKLOutput(*out) if return_parts else out


def dkl_loss(student_logits: Tensor,
             teacher_logits: Tensor,
             *,
             alpha: float = 1.0,
             beta: float = 1.0,
             temperature: float = 1.0,
             reduction: str = 'mean',
             return_parts: bool = False,
             check_finite: bool = True):
    """Decoupled KL: the exact rewriting of KL as a weighted MSE plus a soft-label CE.

    With ``s = softmax(t / T)``, ``q = softmax(z / T)`` and the scaled logits
    ``t' = t / T``, ``z' = z / T``::

        DKL = beta * (1/4) sum_jk s_j s_k ((t'_j - t'_k) - S(z'_j - z'_k))^2
            + alpha * ( - sum_j S(s_j) log q_j )

    averaged over the batch. With ``alpha = beta = 1`` its gradients with respect to both
    logits equal those of :func:`kl_loss`; the wMSE part only moves the teacher, so in
    distillation with a frozen teacher it does nothing.

    Args:
        student_logits (Tensor): ``(B, C)`` student logits.
        teacher_logits (Tensor): ``(B, C)`` teacher logits.
        alpha (float): Weight of the soft-label CE part. Defaults to 1.0.
        beta (float): Weight of the wMSE part. Defaults to 1.0.
        temperature (float): Temperature ``T``. Defaults to 1.0.
        reduction (str): ``'mean'``, ``'sum'`` or ``'none'``, as in :func:`gkl_loss`.
            Defaults to ``'mean'``.
        return_parts (bool): Return a :class:`GKLOutput`. Defaults to False.
        check_finite (bool): As in :func:`gkl_loss`. Defaults to True.

    Returns:
        Tensor or GKLOutput: The loss. Its value is not KL's (the entropy of ``s`` and a
        constant are missing); its gradients are.
    """
    _check_logits(student_logits, teacher_logits)
    _check_choice('reduction', reduction, _REDUCTION)
    _check_temperature('temperature', temperature)
    dtype = _compute_dtype(student_logits, teacher_logits)
    # The wMSE of the scaled logits is that of the raw ones divided by T^2; the weights are
    # the soft targets themselves and the student's differences carry no gradient.
    spec = _Spec(float(temperature), float(temperature), 1.0, 1.0 / temperature ** 2, False,
                 float(alpha), float(beta), 'batch', reduction, check_finite)
    out = _GKLParts.apply(_as(student_logits, dtype), _as(teacher_logits, dtype), None,
                          spec, return_parts)
    return GKLOutput(*out) if return_parts else out


def kl_loss(student_logits: Tensor,
            teacher_logits: Tensor,
            *,
            temperature: float = 1.0,
            reduction: str = 'mean',
            check_finite: bool = True) -> Tensor:
    """``KL(softmax(t / T) || softmax(z / T))`` summed over classes, averaged over samples.

    Gradients flow to both logits (the teacher's only if it requires grad, as for the
    natural logits in TRADES). Not multiplied by ``T^2``: classic KD callers scale it.

    Args:
        student_logits (Tensor): ``(B, C)`` student logits.
        teacher_logits (Tensor): ``(B, C)`` teacher logits.
        temperature (float): Temperature ``T``. Defaults to 1.0.
        reduction (str): ``'mean'`` (over samples), ``'sum'`` or ``'none'`` (``(B,)``).
            Defaults to ``'mean'``.
        check_finite (bool): As in :func:`gkl_loss`. Defaults to True.

    Returns:
        Tensor: The divergence.
    """
    _check_logits(student_logits, teacher_logits)
    _check_choice('reduction', reduction, _REDUCTION)
    _check_temperature('temperature', temperature)
    dtype = _compute_dtype(student_logits, teacher_logits)
    log_q = F.log_softmax(student_logits.to(dtype) / temperature, dim=1)
    log_s = F.log_softmax(teacher_logits.to(dtype) / temperature, dim=1)
    per_sample = F.kl_div(log_q, log_s, reduction='none', log_target=True).sum(dim=1)
    if reduction == 'none':
        out = per_sample
    elif reduction == 'sum':
        out = per_sample.sum()
    else:
        out = per_sample.sum() / max(per_sample.shape[0], 1)
    if check_finite:
        _raise_if_not_finite(out, [('student logits', student_logits),
                                   ('teacher logits', teacher_logits)])
    return out


def warmup_factor(progress: float, warmup: float) -> float:
    """``min(progress / warmup, 1)``: the linear warm-up of the distillation term.

    Args:
        progress (float): Epochs (or iterations) begun so far, counting the current one, so
            the first epoch gives ``1 / warmup``.
        warmup (float): Length of the warm-up in the same unit; ``0`` disables it.

    Returns:
        float: The factor in ``[0, 1]``.
    """
    if warmup <= 0:
        return 1.0
    return max(0.0, min(float(progress) / float(warmup), 1.0))


def _dist_world_size(group=None) -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(group)
    return 1


class ClassPrior(nn.Module):
    """Class-wise average teacher prediction, gathered over one epoch and used in the next.

    During an epoch, :meth:`update` adds each sample's teacher probabilities
    ``softmax(t / temperature)`` to the running sum of its class. :meth:`close_epoch` then
    sums these across processes (when ``torch.distributed`` is initialised) and normalises
    each row to sum 1, giving ``P``. Rows start uniform, and a class that received no sample
    keeps its previous row, so ``P`` never contains NaN. :meth:`class_weights` returns the
    rows of ``P`` for a batch of labels.

    The state (``prior``, the running ``sums`` and label ``counts``, and the number of
    closed epochs) consists of buffers, so it goes into checkpoints as plain tensors and a
    resumed run continues with the same prior.

    Args:
        num_classes (int): Number of classes ``C``.
        temperature (float): Temperature of the teacher softmax. Defaults to 1.0.

    Note:
        ``P`` is a ``(C, C)`` matrix: 4 MB for 1000 classes but quadratic in ``C``, so it is
        not meant for vocabularies of tens of thousands of classes.

    Example:
        >>> prior = ClassPrior(10, temperature=4.0)
        >>> prior.update(torch.tensor([0, 3]), torch.randn(2, 10))
        >>> prior.close_epoch()
        >>> prior.class_weights(torch.tensor([3])).shape
        torch.Size([1, 10])
    """

    def __init__(self, num_classes: int, *, temperature: float = 1.0):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f'num_classes must be at least 1, got {num_classes}')
        _check_temperature('temperature', temperature)
        self.num_classes = int(num_classes)
        self.temperature = float(temperature)
        c = self.num_classes
        self.register_buffer('prior', torch.full((c, c), 1.0 / c))
        # Sums are kept in float64: an epoch adds up to millions of probabilities.
        self.register_buffer('sums', torch.zeros(c, c, dtype=torch.float64))
        self.register_buffer('counts', torch.zeros(c, dtype=torch.float64))
        self.register_buffer('num_epochs', torch.zeros((), dtype=torch.long))

    def extra_repr(self) -> str:
        return f'num_classes={self.num_classes}, temperature={self.temperature}'

    def _check_labels(self, labels: Tensor, batch: Optional[int] = None) -> None:
        c = self.num_classes
        if labels.dim() == 2:
            if labels.shape[1] != c or (batch is not None and labels.shape[0] != batch):
                raise ValueError(
                    f'soft labels must have shape (B, {c})'
                    + (f' with B = {batch}' if batch is not None else '')
                    + f', got {tuple(labels.shape)}')
            return
        if labels.dim() != 1:
            raise ValueError(
                f'labels must be (B,) class indices or (B, {c}) soft labels, got shape '
                f'{tuple(labels.shape)}')
        if labels.is_floating_point():
            raise ValueError('hard labels must be an integer tensor of class indices')
        if batch is not None and labels.shape[0] != batch:
            raise ValueError(f'got {labels.shape[0]} labels for a batch of {batch} samples')
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= c):
            raise ValueError(
                f'labels must lie in [0, {c - 1}], got values in '
                f'[{int(labels.min())}, {int(labels.max())}]: remove ignored samples (e.g. '
                'label -1) before calling, or set num_classes to the model\'s class count')

    @torch.no_grad()
    def update(self, labels: Tensor, teacher_logits: Optional[Tensor] = None, *,
               teacher_probs: Optional[Tensor] = None) -> None:
        """Add a batch of teacher predictions to the running class sums.

        Args:
            labels (Tensor): ``(B,)`` class indices, or ``(B, C)`` soft labels (Mixup,
                CutMix): each sample then counts for every class in proportion.
            teacher_logits (Tensor, optional): ``(B, C)`` logits; softmax at ``temperature``
                is applied here.
            teacher_probs (Tensor, optional): ``(B, C)`` probabilities, used as they are.
                Give exactly one of ``teacher_logits`` and ``teacher_probs``.
        """
        if (teacher_logits is None) == (teacher_probs is None):
            raise ValueError('give exactly one of teacher_logits and teacher_probs')
        source = teacher_logits if teacher_logits is not None else teacher_probs
        if source.dim() != 2 or source.shape[1] != self.num_classes:
            raise ValueError(
                f'teacher predictions must have shape (B, {self.num_classes}), got '
                f'{tuple(source.shape)}')
        self._check_labels(labels, source.shape[0])
        if teacher_logits is not None:
            probs = F.softmax(teacher_logits.detach().double() / self.temperature, dim=1)
        else:
            probs = teacher_probs.detach().double()
        if labels.dim() == 2:
            mass = labels.detach().double()
            self.sums += mass.t() @ probs
            self.counts += mass.sum(dim=0)
        else:
            self.sums.index_add_(0, labels, probs)
            self.counts += torch.bincount(labels, minlength=self.num_classes).double()

    @torch.no_grad()
    def close_epoch(self, group=None) -> Tensor:
        """Turn the running sums into the prior and start a new epoch.

        All processes of ``group`` must call this together: their sums are all-reduced
        first, so every process ends with the same prior. Outside ``torch.distributed`` this
        is a purely local operation.

        Args:
            group (ProcessGroup, optional): Process group to reduce over. Defaults to the
                default group.

        Returns:
            Tensor: ``(C,)`` boolean mask of the classes whose row was renewed.
        """
        if _dist_world_size(group) > 1:
            packed = torch.cat([self.sums, self.counts.unsqueeze(1)], dim=1)
            dist.all_reduce(packed, group=group)
            self.sums.copy_(packed[:, :-1])
            self.counts.copy_(packed[:, -1])
        row_mass = self.sums.sum(dim=1, keepdim=True)
        seen = row_mass.squeeze(1) > 0
        fresh = (self.sums / torch.where(row_mass > 0, row_mass, torch.ones_like(row_mass)))
        self.prior.copy_(torch.where(seen.unsqueeze(1), fresh.to(self.prior.dtype), self.prior))
        self.sums.zero_()
        self.counts.zero_()
        self.num_epochs += 1
        return seen

    def class_weights(self, labels: Tensor) -> Tensor:
        """Prior rows for a batch: ``P[labels]``, or ``labels @ P`` for soft labels.

        Args:
            labels (Tensor): ``(B,)`` class indices or ``(B, C)`` soft labels.

        Returns:
            Tensor: ``(B, C)`` rows, without gradient.
        """
        self._check_labels(labels)
        if labels.dim() == 2:
            return labels.detach().to(self.prior.dtype) @ self.prior
        return self.prior[labels]


class GKLLoss(nn.Module):
    """The GKL loss as a module: holds the options and, with ``num_classes``, the prior.

    ``variant`` selects the member of the family:

    * ``'gkl'``: :func:`gkl_loss` with weights normalised by their sum.
    * ``'ikl'``: the NeurIPS version: ``gamma = 1`` and the wMSE divided by the batch size.
    * ``'dkl'``: :func:`dkl_loss`, the exact decoupling of KL (no prior, no ``gamma``).

    With ``num_classes`` set (``gkl`` and ``ikl`` only), the weights come from a
    :class:`ClassPrior` at ``weight_temperature``; in training mode each call also adds the
    batch's teacher predictions to it. Something outside must call
    ``loss.prior.close_epoch()`` at the end of each epoch (the hosts' hooks do).
    ``loss_weight`` multiplies the whole loss, and so does the warm-up factor
    ``min(progress / warmup, 1)`` once :meth:`set_progress` is called (the hosts' hooks call
    it at every epoch or iteration).

    Args:
        variant (str): ``'gkl'``, ``'ikl'`` or ``'dkl'``. Defaults to ``'gkl'``.
        num_classes (int, optional): Enables the class prior. Defaults to None.
        alpha (float): Weight of the soft-label CE part. Defaults to 1.0.
        beta (float): Weight of the wMSE part. Defaults to 1.0.
        gamma (float): Power on the weights (``gkl`` only). Defaults to 1.0.
        temperature (float): Temperature of the CE part. Defaults to 1.0.
        weight_temperature (float): Temperature of the weights and the prior.
            Defaults to 1.0.
        loss_weight (float): Factor on the whole loss. Defaults to 1.0.
        warmup (float): Length of the linear warm-up, in the unit of :meth:`set_progress`
            (epochs or iterations); 0 disables it. Defaults to 0.
        reduction (str): As in :func:`gkl_loss`. Defaults to ``'mean'``.
    """

    def __init__(self, variant: str = 'gkl', *, num_classes: Optional[int] = None,
                 alpha: float = 1.0, beta: float = 1.0, gamma: float = 1.0,
                 temperature: float = 1.0, weight_temperature: float = 1.0,
                 loss_weight: float = 1.0, warmup: float = 0.0, reduction: str = 'mean'):
        super().__init__()
        _check_choice('variant', variant, _VARIANTS)
        _check_choice('reduction', reduction, _REDUCTION)
        if variant == 'ikl' and gamma != 1:
            raise ValueError('the ikl variant has gamma = 1; use variant="gkl" to set gamma')
        if variant == 'dkl' and num_classes is not None:
            raise ValueError('the dkl variant uses per-sample weights and takes no class prior')
        if variant == 'dkl' and gamma != 1:
            raise ValueError('the dkl variant is the exact decoupling of KL, without gamma; '
                             'use variant="gkl" to set gamma')
        if variant == 'dkl' and weight_temperature not in (1.0, temperature):
            raise ValueError('the dkl variant weighs class pairs with the teacher softmax at '
                             '`temperature`; it has no separate weight_temperature')
        _check_gamma(gamma)
        _check_temperature('temperature', temperature)
        _check_temperature('weight_temperature', weight_temperature)
        self.variant = variant
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.gamma = float(gamma)
        self.temperature = float(temperature)
        self.weight_temperature = float(weight_temperature)
        self.loss_weight = float(loss_weight)
        self.warmup = float(warmup)
        self.reduction = reduction
        self.set_progress(1)
        self.prior = (ClassPrior(num_classes, temperature=weight_temperature)
                      if num_classes is not None else None)

    def set_progress(self, progress: float) -> None:
        """Set the warm-up factor from the epochs (or iterations) begun, the current one
        included; see :func:`warmup_factor`."""
        self.warmup_scale = warmup_factor(progress, self.warmup)

    def extra_repr(self) -> str:
        return (f'variant={self.variant!r}, alpha={self.alpha}, beta={self.beta}, '
                f'gamma={self.gamma}, temperature={self.temperature}, '
                f'weight_temperature={self.weight_temperature}')

    def forward(self, student_logits: Tensor, teacher_logits: Tensor,
                labels: Optional[Tensor] = None, *, return_parts: bool = False):
        """Compute the loss.

        Args:
            student_logits (Tensor): ``(B, C)`` student logits.
            teacher_logits (Tensor): ``(B, C)`` teacher logits.
            labels (Tensor, optional): ``(B,)`` class indices or ``(B, C)`` soft labels;
                required with a prior. Defaults to None.
            return_parts (bool): Return a :class:`GKLOutput`. Defaults to False.

        Returns:
            Tensor or GKLOutput: The loss times ``loss_weight`` and the warm-up factor.
        """
        # loss_weight and the warm-up multiply both parts: folded into alpha and beta they
        # cost no extra operation.
        scale = self.loss_weight * self.warmup_scale
        alpha, beta = self.alpha * scale, self.beta * scale
        if self.variant == 'dkl':
            return dkl_loss(student_logits, teacher_logits, alpha=alpha, beta=beta,
                            temperature=self.temperature, reduction=self.reduction,
                            return_parts=return_parts)
        class_weights = None
        if self.prior is not None:
            if labels is None:
                raise ValueError('this loss has a class prior: pass the labels too')
            _check_logits(student_logits, teacher_logits)
            if student_logits.shape[1] != self.prior.num_classes:
                raise ValueError(
                    f'this loss was built with num_classes={self.prior.num_classes} but the '
                    f'logits have {student_logits.shape[1]} classes: set num_classes to the '
                    "models' class count")
            self.prior._check_labels(labels, student_logits.shape[0])
            class_weights = self.prior.class_weights(labels)
        out = gkl_loss(student_logits, teacher_logits, alpha=alpha, beta=beta,
                       gamma=self.gamma, temperature=self.temperature,
                       weight_temperature=self.weight_temperature, class_weights=class_weights,
                       normalize='batch' if self.variant == 'ikl' else 'weights',
                       reduction=self.reduction, return_parts=return_parts)
        # Only after the loss has vetted the logits: a NaN teacher must not reach the sums.
        if self.prior is not None and self.training:
            self.prior.update(labels, teacher_logits)
        return out
