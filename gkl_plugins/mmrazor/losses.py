"""The GKL distillation loss in mmrazor's ``MODELS`` registry."""
from typing import Optional

from mmengine.logging import MessageHub
from mmrazor.registry import MODELS
from torch import Tensor, nn

from ..core import GKLLoss

__all__ = ['GKLDivergence']


@MODELS.register_module()
class GKLDivergence(nn.Module):
    """Generalized KL divergence between student and teacher logits, for mmrazor distillers.

    A thin wrapper of :class:`gkl_plugins.core.GKLLoss` with mmrazor's argument names
    (``preds_S``, ``preds_T``, ``gt_labels``, ``tau``, ``loss_weight``): it returns the
    weighted loss to the distiller and writes its two weighted parts to mmengine's message
    hub as ``{log_name}_mse`` and ``{log_name}_ce`` (``distill.loss_gkl_mse`` and
    ``distill.loss_gkl_ce`` by default, next to the distiller's ``distill.loss_gkl``), so the
    runner's logger and visualizer show them. The student's own cross-entropy stays the
    student head's loss.

    Labels are needed with the class prior (``num_classes``): record the input of the
    student head's loss module (see the example), which is ``(B,)`` class indices or, with
    Mixup or CutMix (``gt_score`` in mmpretrain's data samples), ``(B, C)`` soft labels.
    Add ``GKLPriorHook`` to ``custom_hooks``: it closes the prior after every epoch and
    drives the warm-up.

    Args:
        variant (str): ``'gkl'``, ``'ikl'`` or ``'dkl'``. Defaults to ``'gkl'``.
        num_classes (int, optional): Enables the class-wise prior. Defaults to None.
        alpha (float): Weight of the soft-label CE part. Defaults to 1.0.
        beta (float): Weight of the wMSE part. Defaults to 1.0.
        gamma (float): Power on the weights (``gkl`` only). Defaults to 1.0.
        tau (float): Temperature of the CE part. Defaults to 1.0.
        weight_tau (float): Temperature of the teacher softmax that forms the weights and
            the prior. Defaults to 1.0.
        warmup (float): Linear warm-up length in epochs (in iterations with
            ``GKLPriorHook(by_epoch=False)``); 0 disables it. Defaults to 0.
        loss_weight (float): Factor on the whole loss. Defaults to 1.0.
        teacher_detach (bool): Detach the teacher logits. Defaults to True.
        log_name (str, optional): Prefix of the logged parts; None logs nothing.
            Defaults to ``'distill.loss_gkl'``.

    Example:
        >>> distill_losses = dict(loss_gkl=dict(
        ...     type='GKLDivergence', num_classes=100, alpha=1, beta=16, gamma=0.05, tau=4,
        ...     weight_tau=4, warmup=20))
        >>> student_recorders = dict(
        ...     fc=dict(type='ModuleOutputs', source='head.fc'),
        ...     gt_labels=dict(type='ModuleInputs', source='head.loss_module'))
        >>> loss_forward_mappings = dict(loss_gkl=dict(
        ...     preds_S=dict(from_student=True, recorder='fc'),
        ...     preds_T=dict(from_student=False, recorder='fc'),
        ...     gt_labels=dict(from_student=True, recorder='gt_labels', data_idx=1)))
    """

    def __init__(self, variant: str = 'gkl', *, num_classes: Optional[int] = None,
                 alpha: float = 1.0, beta: float = 1.0, gamma: float = 1.0, tau: float = 1.0,
                 weight_tau: float = 1.0, warmup: float = 0.0, loss_weight: float = 1.0,
                 teacher_detach: bool = True, log_name: Optional[str] = 'distill.loss_gkl'):
        super().__init__()
        self.gkl = GKLLoss(variant, num_classes=num_classes, alpha=alpha, beta=beta,
                           gamma=gamma, temperature=tau, weight_temperature=weight_tau,
                           loss_weight=loss_weight, warmup=warmup)
        self.teacher_detach = teacher_detach
        self.log_name = log_name

    def forward(self, preds_S: Tensor, preds_T: Tensor,
                gt_labels: Optional[Tensor] = None) -> Tensor:
        """Compute the loss.

        Args:
            preds_S (Tensor): ``(B, C)`` student logits.
            preds_T (Tensor): ``(B, C)`` teacher logits.
            gt_labels (Tensor, optional): ``(B,)`` class indices or ``(B, C)`` soft labels;
                required with ``num_classes``. Defaults to None.

        Returns:
            Tensor: The scalar loss, warm-up and ``loss_weight`` included.
        """
        if self.teacher_detach:
            preds_T = preds_T.detach()
        out = self.gkl(preds_S, preds_T, gt_labels, return_parts=True)
        if self.training and self.log_name:
            hub = MessageHub.get_current_instance()
            hub.update_scalar(f'train/{self.log_name}_mse', float(out.mse.detach()))
            hub.update_scalar(f'train/{self.log_name}_ce', float(out.ce.detach()))
        return out.loss
