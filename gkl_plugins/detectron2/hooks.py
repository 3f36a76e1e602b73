"""The trainer hook that drives the GKL loss across iterations."""
import logging
from typing import Optional

from detectron2.engine import HookBase
from torch.nn.parallel import DistributedDataParallel

from ..core import GKLLoss

__all__ = ['GKLHook']

logger = logging.getLogger(__name__)


class GKLHook(HookBase):
    """Renews the GKL class prior every ``prior_interval`` iterations and applies the warm-up.

    Detectron2 trains in iterations, so the prior's "epoch" is an interval: after iteration
    ``i`` with ``(i + 1) % prior_interval == 0`` the hook calls
    :meth:`~gkl_plugins.core.ClassPrior.close_epoch` (which all-reduces the sums when
    ``torch.distributed`` is initialised; the hook runs on every process). Before each
    iteration it calls :meth:`~gkl_plugins.core.GKLLoss.set_progress` with ``iter + 1``, so
    a loss built with ``warmup=W`` is scaled by ``min((iter + 1) / W, 1)``. It puts
    ``gkl/warmup`` and, at each renewal, ``gkl/prior_rows_renewed`` into the EventStorage.

    The prior, its running sums and counts are buffers of the model, so the model checkpoint
    carries them; the warm-up follows the trainer's iteration. The hook's own state, the
    iteration of the last renewal, goes into the trainer's checkpoint through
    :meth:`state_dict`. If a checkpoint was written after an iteration that was due to renew
    the prior but before the hook did so (hook registered after the checkpointer), the
    renewal happens when training resumes.

    Args:
        prior_interval (int): Iterations between two renewals of the prior.

    Note:
        Place the hook before ``PeriodicCheckpointer`` (``GKLTrainer`` does) so that
        checkpoints hold the renewed prior. The model must hold exactly one
        :class:`~gkl_plugins.core.GKLLoss`, e.g. ``GKLDistillationRCNN.gkl_loss``.
    """

    def __init__(self, *, prior_interval: int):
        if prior_interval < 1:
            raise ValueError(f'prior_interval must be at least 1 iteration, got '
                             f'{prior_interval}')
        self.prior_interval = int(prior_interval)
        self._last_renewal = -1
        self._loss: Optional[GKLLoss] = None

    @property
    def loss(self) -> GKLLoss:
        """The model's :class:`GKLLoss`."""
        if self._loss is None:
            model = self.trainer.model
            if isinstance(model, DistributedDataParallel):
                model = model.module
            losses = [m for m in model.modules() if isinstance(m, GKLLoss)]
            if len(losses) != 1:
                raise ValueError(
                    f'GKLHook needs a model holding exactly one GKLLoss, found {len(losses)} '
                    f'in {type(model).__name__}: use MODEL.META_ARCHITECTURE '
                    '"GKLDistillationRCNN" or do not register the hook')
            self._loss = losses[0]
        return self._loss

    def before_train(self):
        if self.loss.prior is None:
            return
        # The last iteration that was due to renew the prior before this run starts.
        due = (self.trainer.start_iter // self.prior_interval) * self.prior_interval - 1
        if due > self._last_renewal:
            logger.info('Renewing the GKL class prior due after iteration %d: the checkpoint '
                        'was saved before the renewal', due)
            self._renew(due)

    def before_step(self):
        loss = self.loss
        loss.set_progress(self.trainer.iter + 1)
        self.trainer.storage.put_scalar('gkl/warmup', loss.warmup_scale, smoothing_hint=False)

    def after_step(self):
        iteration = self.trainer.iter
        if self.loss.prior is not None and (iteration + 1) % self.prior_interval == 0:
            self._renew(iteration)

    def _renew(self, iteration: int) -> None:
        prior = self.loss.prior
        renewed = int(prior.close_epoch().sum())
        self._last_renewal = iteration
        self.trainer.storage.put_scalar('gkl/prior_rows_renewed', renewed,
                                        smoothing_hint=False)
        logger.info('GKL class prior renewed after iteration %d: %d of %d class rows had '
                    'proposals', iteration, renewed, prior.num_classes)

    def state_dict(self):
        return {'last_renewal': self._last_renewal}

    def load_state_dict(self, state_dict):
        self._last_renewal = int(state_dict['last_renewal'])
