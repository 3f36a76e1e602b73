"""The mmengine hook that drives the GKL warm-up and closes the class prior."""
from typing import Dict, Iterator, List, Optional, Type, TypeVar

from mmengine.hooks import EMAHook, Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from torch import nn

from ..core import ClassPrior, GKLLoss

_Module = TypeVar('_Module', bound=nn.Module)
# classes listed by name in the log when some had no sample; more are only counted
_MAX_LISTED = 20


def find_modules(model: nn.Module, kind: Type[_Module]) -> Iterator[_Module]:
    """Yield every submodule of ``model`` (unwrapped from DDP and the like) of type ``kind``."""
    if is_model_wrapper(model):
        model = model.module
    for module in model.modules():
        if isinstance(module, kind):
            yield module


@HOOKS.register_module()
class GKLPriorHook(Hook):
    """Warm up every :class:`~gkl_plugins.core.GKLLoss` and close every
    :class:`~gkl_plugins.core.ClassPrior` found in the model.

    With ``by_epoch=True`` (the default) the hook calls ``set_progress(epoch + 1)`` on each
    GKL loss before every training epoch, so a loss with ``warmup=W`` ramps up over ``W``
    epochs, and it calls ``close_epoch()`` on each prior after every ``interval`` training
    epochs. With ``by_epoch=False`` it does the same per iteration, for iteration-based
    loops: ``set_progress(iter + 1)`` before every iteration (the warm-up is then counted in
    iterations) and ``close_epoch()`` after every ``interval`` iterations.

    ``close_epoch`` all-reduces the running sums across processes, so every rank ends with
    the same prior. The sums are per-rank buffers, so a DistributedDataParallel wrapper must
    not broadcast buffers (mmengine's default wrapper does not; the hook raises otherwise).
    Being buffers, the prior and its sums go into the runner's checkpoints, and a resumed
    run continues with them. With mmengine's ``EMAHook``, whose averaged model becomes the
    checkpoint's ``state_dict``, the averaged model is given the renewed prior at every
    closing instead of an average of past priors.

    Args:
        by_epoch (bool): Work per epoch (True) or per iteration (False). Defaults to True.
        interval (int): Close the priors every ``interval`` epochs or iterations.
            Defaults to 1.

    Note:
        mmengine's epoch-based loop restarts an epoch from its first batch when it resumes
        from a checkpoint saved in the middle of that epoch. The hook therefore drops the
        running sums it finds at the start of an interval, which makes such a resume exact
        for ``interval=1``; with a longer interval, the sums of the partly replayed interval
        are kept as they are. Iteration-based loops skip the batches already seen, so their
        running sums are kept and the resume is exact.

    Example:
        >>> custom_hooks = [dict(type='GKLPriorHook')]
        >>> # iteration-based training, prior renewed every 500 iterations
        >>> custom_hooks = [dict(type='GKLPriorHook', by_epoch=False, interval=500)]
    """

    priority = 'NORMAL'

    def __init__(self, *, by_epoch: bool = True, interval: int = 1):
        if interval < 1:
            raise ValueError(f'interval must be a positive integer, got {interval}')
        self.by_epoch = by_epoch
        self.interval = int(interval)

    def before_train(self, runner) -> None:
        if not any(True for _ in find_modules(runner.model, (GKLLoss, ClassPrior))):
            runner.logger.warning(
                'GKLPriorHook found no GKLLoss or ClassPrior in the model; it does nothing. '
                'Remove the hook or check that the GKL loss is part of the model.')
        if (_syncs_buffers_at_forward(runner.model)
                and any(True for _ in find_modules(runner.model, ClassPrior))):
            raise ValueError(
                'the model is wrapped in DistributedDataParallel with broadcast_buffers=True, '
                "which copies rank 0's buffers to every rank at each forward, including the "
                "class prior's running sums: the prior would be built from rank 0's samples "
                'only. Set model_wrapper_cfg=dict(type="MMDistributedDataParallel", '
                "broadcast_buffers=False) in the config (mmengine's default wrapper already "
                'does).')

    def before_train_epoch(self, runner) -> None:
        if not self.by_epoch:
            return
        self._set_progress(runner, runner.epoch + 1)
        if runner.epoch % self.interval == 0:
            self._drop_replayed_sums(runner)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if not self.by_epoch:
            self._set_progress(runner, runner.iter + 1)

    def after_train_epoch(self, runner) -> None:
        if self.by_epoch and self.every_n_epochs(runner, self.interval):
            self._close(runner, f'epoch {runner.epoch + 1}')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        if not self.by_epoch and self.every_n_train_iters(runner, self.interval):
            self._close(runner, f'iteration {runner.iter + 1}')

    @staticmethod
    def _set_progress(runner, progress: int) -> None:
        for loss in find_modules(runner.model, GKLLoss):
            loss.set_progress(progress)

    @staticmethod
    def _drop_replayed_sums(runner) -> None:
        for prior in find_modules(runner.model, ClassPrior):
            if bool(prior.counts.any()):
                # Only a checkpoint saved mid-epoch leaves sums here, and the loop is about
                # to run that epoch again from its first batch.
                runner.logger.info(
                    'GKLPriorHook: dropping the class-prior sums of a partly run epoch that '
                    'the resumed loop runs again from its start')
                prior.sums.zero_()
                prior.counts.zero_()

    @staticmethod
    def _close(runner, when: str) -> None:
        averaged = _averaged_priors(runner)
        for name, prior in _named_priors(runner.model):
            renewed = prior.close_epoch()
            missing = (~renewed).nonzero().flatten().tolist()
            message = (f'GKL class prior {name or "(model)"} renewed after {when}: '
                       f'{int(renewed.sum())}/{prior.num_classes} classes')
            if missing:
                shown = ', '.join(map(str, missing[:_MAX_LISTED]))
                if len(missing) > _MAX_LISTED:
                    shown += f', ... ({len(missing)} in all)'
                message += f'; classes without samples kept their previous rows: [{shown}]'
            runner.logger.info(message)
            # The prior is training state, not a weight to average: an averaged copy of the
            # model (EMAHook) carries the live one, so that the checkpoint's averaged
            # state_dict, which load_from and inference read, holds the renewed prior.
            for copy in averaged.get(name, ()):
                copy.load_state_dict(prior.state_dict())


def _syncs_buffers_at_forward(model: nn.Module) -> bool:
    # torch 2.14 renamed DistributedDataParallel's broadcast_buffers to forward_sync_buffers.
    for name in ('forward_sync_buffers', 'broadcast_buffers'):
        if hasattr(model, name):
            return bool(getattr(model, name))
    return False


def _averaged_priors(runner) -> Dict[str, List[ClassPrior]]:
    """The priors inside the averaged models of the runner's EMA hooks, by module name."""
    copies: Dict[str, List[ClassPrior]] = {}
    for hook in runner.hooks:
        averaged = getattr(hook, 'ema_model', None) if isinstance(hook, EMAHook) else None
        if averaged is not None:
            for name, prior in _named_priors(averaged.module):
                copies.setdefault(name, []).append(prior)
    return copies


def _named_priors(model: nn.Module):
    if is_model_wrapper(model):
        model = model.module
    for name, module in model.named_modules():
        if isinstance(module, ClassPrior):
            yield name, module
