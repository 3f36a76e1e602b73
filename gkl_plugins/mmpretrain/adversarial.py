"""Adversarial training of an mmpretrain classifier with GKL (or TRADES) and robust prediction.

:class:`AdversarialClassifier` wraps any mmpretrain classifier config. In training it crafts
adversarial examples and returns ``CE(natural, y) + GKL(adversarial || natural)`` (or the
TRADES baseline) as mmengine loss parts; in prediction it adds, per sample, the labels
predicted under the configured torchattacks attacks, which :class:`RobustAccuracy` turns into
robust accuracies inside mmengine's usual validation and test loops.

Pixel units. Attack radii are fractions of the valid pixel range of the data preprocessor's
*input* (``pixel_range``, 0..255 for images loaded by mmpretrain's pipelines), so
``eps=8/255`` means 8 grey levels whatever mean/std normalisation the preprocessor applies.
The wrapper takes the normalisation out of the data preprocessor and applies it inside its
own forward; the attacks see images scaled to ``[0, 1]`` (the convention of torchattacks).
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.logging import MessageHub
from mmengine.model import BaseModel, MMDistributedDataParallel
from mmengine.optim import OptimWrapper
from mmengine.registry import MODEL_WRAPPERS
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import Tensor, nn

from .. import core

_LOSS_TYPES = ('gkl', 'trades')
# Training-attack budgets of the reference recipe: (steps, step size as a fraction of eps).
_BUDGETS = {'low': (2, 1.0), 'high': (5, 0.5)}


class PixelSpaceClassifier(nn.Module):
    """A classifier seen from ``[0, 1]`` images: rescale to the pixel range, normalise, logits.

    Args:
        classifier (nn.Module): An mmpretrain classifier (``mode='tensor'`` gives logits).
        mean (Tensor): ``(1, C, 1, 1)`` normalisation mean, in pixel units.
        std (Tensor): ``(1, C, 1, 1)`` normalisation std, in pixel units.
        pixel_range (tuple[float, float]): The values ``0`` and ``1`` are mapped to.
    """

    def __init__(self, classifier: nn.Module, mean: Tensor, std: Tensor,
                 pixel_range: Tuple[float, float]):
        super().__init__()
        self.classifier = classifier
        self.low, self.high = pixel_range
        self.register_buffer('mean', mean, persistent=False)
        self.register_buffer('std', std, persistent=False)
        # torchattacks restores the mode it finds on this wrapper, recursively: take the
        # classifier's, without touching the classifier's submodules here.
        self.training = classifier.training

    def forward(self, images: Tensor) -> Tensor:
        """``(B, C, H, W)`` images in ``[0, 1]`` -> ``(B, K)`` logits."""
        pixels = self.low + images * (self.high - self.low)
        return self.classifier((pixels - self.mean) / self.std, mode='tensor')


def soft_ce_attack(model: nn.Module, images: Tensor, *, eps: float, steps: int,
                   step_size: float, temperature: float = 1.0) -> Tensor:
    """The training attack of TRADES-style AT: sign-gradient ascent on a soft-label CE.

    Starting at ``images + 0.001 * N(0, 1)`` clipped to ``[0, 1]``, each step moves by
    ``step_size`` along the sign of the gradient of
    ``CE(softmax(natural / T), softmax(adversarial / T))``, computed by
    :func:`gkl_plugins.core.gkl_loss` with ``alpha=1, beta=0``, then projects onto the
    L-inf ball of radius ``eps`` around ``images`` and onto ``[0, 1]``. The natural logits
    are computed once, without gradient. With ``T = 1`` this is the KL objective of
    ``torchattacks.TPGD`` (both have the same gradient in the adversarial input).

    The model is run as it is given: put it in eval mode first (BN running statistics).

    Args:
        model (nn.Module): Maps ``(B, C, H, W)`` images in ``[0, 1]`` to ``(B, K)`` logits.
        images (Tensor): ``(B, C, H, W)`` natural images in ``[0, 1]``.
        eps (float): L-inf radius, in ``[0, 1]`` units.
        steps (int): Number of steps; 0 returns the images.
        step_size (float): Step length, in ``[0, 1]`` units.
        temperature (float): Temperature ``T`` of the soft-label CE. Defaults to 1.0.

    Returns:
        Tensor: ``(B, C, H, W)`` adversarial images, detached.
    """
    images = images.detach()
    if steps == 0 or eps == 0:
        return images.clone()
    with torch.no_grad():
        natural = model(images)
    adversarial = (images + 0.001 * torch.randn_like(images)).clamp(0, 1)
    low, high = (images - eps).clamp(min=0), (images + eps).clamp(max=1)
    with torch.enable_grad():
        for _ in range(steps):
            adversarial.requires_grad_(True)
            objective = core.gkl_loss(model(adversarial), natural, alpha=1.0, beta=0.0,
                                      temperature=temperature, check_finite=False)
            grad, = torch.autograd.grad(objective, adversarial)
            adversarial = adversarial.detach() + step_size * grad.sign()
            adversarial = torch.max(torch.min(adversarial, high), low)
    return adversarial.detach()


def _as_channel_tensor(values) -> Tensor:
    tensor = torch.as_tensor(values, dtype=torch.float32).flatten()
    return tensor.view(1, -1, 1, 1)


@MODELS.register_module()
class AdversarialClassifier(BaseModel):
    """TRADES-style adversarial training with GKL, around any mmpretrain classifier.

    Training loss, with ``x'`` the adversarial version of ``x`` (see :func:`soft_ce_attack`,
    crafted on the unwrapped classifier in eval mode) and both logits from the classifier
    in training mode:

    * ``robust_loss=dict(type='gkl', ...)``: ``loss_ce = CE(f(x), y)`` through the head's
      loss module, and ``GKL(student = f(x'), teacher = f(x))`` through a
      :class:`gkl_plugins.core.GKLLoss` with a class prior built from the natural logits,
      logged as ``loss_gkl_mse`` and ``loss_gkl_ce``. The other keys are ``GKLLoss``
      options; ``num_classes`` defaults to the head's.
    * ``robust_loss=dict(type='trades', beta=6.0)``: ``loss_ce`` and
      ``loss_kl = beta * KL(softmax(f(x)) || softmax(f(x')))``.

    The attack radius ramps up linearly as ``eps * epoch / max_epochs`` (epochs counted from
    1, read from mmengine's message hub; the full ``eps`` outside a runner). Put
    ``GKLPriorHook`` in ``custom_hooks`` so the prior closes at every epoch; it lives in
    this model's buffers, so checkpoints carry it.

    In prediction (``mode='predict'``), each attack of ``eval_attacks`` (a name mapped to a
    torchattacks class and its options) is run on the samples whose dataset index
    ``sample_idx`` is below its ``num_samples`` (all with None); the labels predicted on the
    adversarial images are stored in each
    :class:`DataSample` as ``adv_pred_label[name]`` for :class:`RobustAccuracy`. Every attack
    call starts from ``torch.manual_seed(seed)`` inside a forked RNG, so evaluation is
    repeatable and leaves the training RNG untouched.

    Args:
        classifier (dict): An mmpretrain classifier config, e.g. ``ImageClassifier``.
        robust_loss (dict): ``type`` ``'gkl'`` or ``'trades'`` and its options.
            Defaults to the reference CIFAR-10 GKL setting.
        train_attack (dict): ``eps`` (fraction of the pixel range), ``budget`` (``'low'``:
            2 steps of ``eps``; ``'high'``: 5 steps of ``eps / 2``) or explicit ``steps``
            and ``step_ratio`` (step size over eps), and ``ramp`` (bool, default True).
        awp (dict, optional): Adversarial weight perturbation: ``gamma`` (relative size,
            default 0.005) and ``begin_epoch`` (first epoch, counted from 1, with AWP,
            default 10). Defaults to None (off).
        eval_attacks (dict): Attacks for prediction: the metric name of each (e.g.
            ``pgd20``) mapped to a dict with ``type`` (a class of torchattacks, e.g.
            ``'PGD'``, ``'AutoAttack'``), optional ``num_samples`` and ``seed`` (default 0),
            and the attack's own options (radii in ``[0, 1]`` units), so a config option
            such as ``model.eval_attacks.autoattack.num_samples=100`` reaches it.
            Defaults to no attack.
        pixel_range (tuple[float, float]): Valid range of the data preprocessor's input.
            Defaults to ``(0, 255)``.
        data_preprocessor (dict, optional): An mmpretrain data preprocessor config; its
            mean/std normalisation is moved into this model. Defaults to
            ``ClsDataPreprocessor`` without normalisation.
        init_cfg (dict, optional): mmengine initialisation config. Defaults to None.

    Note:
        The attack always runs on the unwrapped classifier, never through a distributed
        wrapper. AWP runs in this model's ``train_step``, which mmengine's
        ``MMDistributedDataParallel`` bypasses: with AWP under DDP, use
        ``model_wrapper_cfg=dict(type='AdversarialDistributedDataParallel')``. Batch
        augmentations that produce soft labels (Mixup, CutMix) are not supported.
    """

    def __init__(self,
                 classifier: dict,
                 *,
                 robust_loss: Optional[dict] = None,
                 train_attack: Optional[dict] = None,
                 awp: Optional[dict] = None,
                 eval_attacks: Optional[Dict[str, dict]] = None,
                 pixel_range: Sequence[float] = (0.0, 255.0),
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='ClsDataPreprocessor')
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.classifier = MODELS.build(classifier) if isinstance(classifier, dict) else classifier

        if len(pixel_range) != 2 or not pixel_range[0] < pixel_range[1]:
            raise ValueError(f'pixel_range must be (low, high) with low < high, got {pixel_range}')
        self.pixel_range = (float(pixel_range[0]), float(pixel_range[1]))
        self._take_normalisation(self.data_preprocessor)

        self._build_robust_loss(dict(robust_loss or dict(
            type='gkl', alpha=4.0, beta=20.0, gamma=1.0, temperature=1.0,
            weight_temperature=4.0)))
        self._configure_train_attack(dict(train_attack or {}))
        self._configure_awp(awp)
        self.eval_attacks = [self._check_eval_attack(name, dict(cfg))
                             for name, cfg in (eval_attacks or {}).items()]

    # ----------------------------------------------------------------------------- set-up

    def _take_normalisation(self, preprocessor: nn.Module) -> None:
        mean = std = None
        if getattr(preprocessor, '_enable_normalize', False):
            mean, std = preprocessor.mean.detach().clone(), preprocessor.std.detach().clone()
            # The preprocessor now yields pixels; this model normalises after the attack.
            preprocessor._enable_normalize = False
        elif not hasattr(preprocessor, '_enable_normalize'):
            raise ValueError(
                f'{type(preprocessor).__name__} is not an mmpretrain data preprocessor with '
                'mean/std options; use ClsDataPreprocessor')
        self.register_buffer('pixel_mean', _as_channel_tensor(0.0 if mean is None else mean),
                             persistent=False)
        self.register_buffer('pixel_std', _as_channel_tensor(1.0 if std is None else std),
                             persistent=False)

    def _build_robust_loss(self, cfg: dict) -> None:
        kind = str(cfg.pop('type', 'gkl')).lower()
        if kind not in _LOSS_TYPES:
            raise ValueError(f'robust_loss type must be one of {_LOSS_TYPES}, got {kind!r}')
        self.loss_type = kind
        if kind == 'trades':
            self.trades_beta = float(cfg.pop('beta', 6.0))
            if cfg:
                raise ValueError(f'unknown TRADES options {sorted(cfg)}; only beta is accepted')
            self.gkl = None
            self.attack_temperature = 1.0
            return
        if 'num_classes' not in cfg:
            num_classes = getattr(getattr(self.classifier, 'head', None), 'num_classes', None)
            if num_classes is None:
                raise ValueError('set robust_loss.num_classes: the classifier head does not '
                                 'say how many classes it predicts')
            cfg['num_classes'] = num_classes
        self.gkl = core.GKLLoss(**cfg)
        self.attack_temperature = self.gkl.temperature

    def _configure_train_attack(self, cfg: dict) -> None:
        self.train_eps = float(cfg.pop('eps', 8 / 255))
        budget = cfg.pop('budget', 'high')
        if budget not in _BUDGETS:
            raise ValueError(f'train_attack.budget must be one of {sorted(_BUDGETS)}, got '
                             f'{budget!r}')
        steps, ratio = _BUDGETS[budget]
        self.train_steps = int(cfg.pop('steps', steps))
        self.train_step_ratio = float(cfg.pop('step_ratio', ratio))
        self.train_eps_ramp = bool(cfg.pop('ramp', True))
        if cfg:
            raise ValueError(f'unknown train_attack options {sorted(cfg)}; accepted: eps, '
                             'budget, steps, step_ratio, ramp')
        if not 0 <= self.train_eps <= 1:
            raise ValueError('train_attack.eps is a fraction of the pixel range, e.g. 8/255; '
                             f'got {self.train_eps}')

    def _configure_awp(self, cfg: Optional[dict]) -> None:
        cfg = dict(cfg or {})
        self.awp_enabled = bool(cfg)
        self.awp_gamma = float(cfg.pop('gamma', 0.005))
        self.awp_begin_epoch = int(cfg.pop('begin_epoch', 10))
        if cfg:
            raise ValueError(f'unknown awp options {sorted(cfg)}; accepted: gamma, begin_epoch')

    def _check_eval_attack(self, name: str, cfg: dict) -> dict:
        import torchattacks
        kind = cfg.get('type')
        if not isinstance(kind, str) or not hasattr(torchattacks, kind):
            raise ValueError(f'the type of eval attack {name!r} must name a torchattacks '
                             f'class (PGD, AutoAttack, ...), got {kind!r}')
        cfg['name'] = name
        cfg.setdefault('num_samples', None)
        cfg.setdefault('seed', 0)
        return cfg

    # ---------------------------------------------------------------------- pixel space

    def pixel_model(self) -> PixelSpaceClassifier:
        """The classifier as a function of ``[0, 1]`` images (shares this model's weights)."""
        return PixelSpaceClassifier(self.classifier, self.pixel_mean, self.pixel_std,
                                    self.pixel_range)

    def to_unit(self, inputs: Tensor) -> Tensor:
        """Preprocessor-input pixels -> ``[0, 1]`` images."""
        low, high = self.pixel_range
        return ((inputs.float() - low) / (high - low)).clamp(0, 1)

    def from_unit(self, images: Tensor) -> Tensor:
        """``[0, 1]`` images -> preprocessor-input pixels."""
        low, high = self.pixel_range
        return low + images * (high - low)

    def logits(self, inputs: Tensor) -> Tensor:
        """``(B, C, H, W)`` preprocessor-input pixels -> ``(B, K)`` logits."""
        return self.classifier((inputs - self.pixel_mean) / self.pixel_std, mode='tensor')

    def current_eps(self) -> float:
        """The training radius now: ``eps * epoch / max_epochs`` (epochs counted from 1)."""
        if not self.train_eps_ramp:
            return self.train_eps
        hub = MessageHub.get_current_instance()
        epoch, max_epochs = hub.get_info('epoch'), hub.get_info('max_epochs')
        if epoch is None or not max_epochs:
            return self.train_eps
        return self.train_eps * min((epoch + 1) / max_epochs, 1.0)

    def craft_adversarial(self, inputs: Tensor) -> Tensor:
        """Training adversarial examples for a preprocessed batch, in the input's pixel units.

        The unwrapped classifier is attacked in eval mode, and its previous mode restored.

        Args:
            inputs (Tensor): ``(B, C, H, W)`` preprocessor-input pixels.

        Returns:
            Tensor: ``(B, C, H, W)`` adversarial pixels within ``eps`` (times the pixel
            range) of ``inputs`` and inside ``pixel_range``.
        """
        eps = self.current_eps()
        # Each submodule gets its own mode back, so parts a user froze in eval mode stay so.
        modes = [(module, module.training) for module in self.classifier.modules()]
        self.classifier.eval()
        try:
            adversarial = soft_ce_attack(self.pixel_model(), self.to_unit(inputs), eps=eps,
                                         steps=self.train_steps,
                                         step_size=eps * self.train_step_ratio,
                                         temperature=self.attack_temperature)
        finally:
            for module, training in modes:
                module.training = training
        return self.from_unit(adversarial)

    # --------------------------------------------------------------------------- training

    @staticmethod
    def _hard_labels(data_samples: List[DataSample]) -> Tensor:
        if 'gt_score' in data_samples[0]:
            raise ValueError('adversarial training needs hard labels: remove batch '
                             'augmentations such as Mixup or CutMix from the data preprocessor')
        return torch.cat([sample.gt_label for sample in data_samples])

    def robust_losses(self, inputs: Tensor, adversarial: Tensor,
                      data_samples: List[DataSample]) -> Dict[str, Tensor]:
        """The loss parts for natural and adversarial pixels (both ``(B, C, H, W)``)."""
        labels = self._hard_labels(data_samples).to(inputs.device)
        natural_logits = self.logits(inputs)
        num_classes = natural_logits.shape[1]
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            raise ValueError(
                f'labels must lie in [0, {num_classes - 1}] for a classifier with '
                f'{num_classes} outputs, got values in [{int(labels.min())}, '
                f'{int(labels.max())}]: check the data set labels and the head\'s num_classes')
        adversarial_logits = self.logits(adversarial)
        head = getattr(self.classifier, 'head', None)
        if head is not None and hasattr(head, 'loss_module'):
            loss_ce = head.loss_module(natural_logits, labels,
                                       avg_factor=natural_logits.shape[0])
        else:
            loss_ce = nn.functional.cross_entropy(natural_logits, labels)
        losses = dict(loss_ce=loss_ce)
        if self.loss_type == 'trades':
            losses['loss_kl'] = self.trades_beta * core.kl_loss(adversarial_logits,
                                                                natural_logits)
        else:
            parts = self.gkl(adversarial_logits, natural_logits, labels, return_parts=True)
            losses['loss_gkl_mse'] = parts.mse
            losses['loss_gkl_ce'] = parts.ce
        return losses

    def loss(self, inputs: Tensor, data_samples: List[DataSample]) -> Dict[str, Tensor]:
        """Craft adversarial examples and return the loss parts (mmengine ``mode='loss'``)."""
        # Fail at the first step rather than when AWP would start, epochs later.
        if self.awp_enabled:
            raise RuntimeError(
                "AWP runs in AdversarialClassifier.train_step, which mmengine's "
                'MMDistributedDataParallel bypasses; under DDP set model_wrapper_cfg='
                'dict(type="AdversarialDistributedDataParallel") in the config')
        return self.robust_losses(inputs, self.craft_adversarial(inputs), data_samples)

    def _awp_active(self) -> bool:
        if not self.awp_enabled:
            return False
        # Outside a runner's training loop, count as the first epoch.
        epoch = MessageHub.get_current_instance().get_info('epoch') or 0
        return epoch + 1 >= self.awp_begin_epoch

    def awp_perturbation(self, inputs: Tensor, adversarial: Tensor,
                         data_samples: List[DataSample]) -> List[Tuple[nn.Parameter, Tensor]]:
        """Adversarial weight perturbation: one ascent step on the training loss per layer.

        For every weight matrix or kernel ``w``, the step is ``gamma * |w| * g / |g|`` with
        ``g`` the gradient of the training loss (Wu et al., 2020: a normalised step of a
        proxy copy, which reduces to this). BN statistics and the class prior are left as
        they were, so only the next forward counts.

        Returns:
            list: ``(parameter, step)`` pairs; add the steps before the forward and
            subtract them after the optimizer step.
        """
        params = [p for name, p in self.classifier.named_parameters()
                  if p.requires_grad and p.dim() > 1 and name.endswith('weight')]
        buffers = [(b, b.detach().clone()) for b in self.classifier.buffers()]
        loss_was_training = self.gkl.training if self.gkl is not None else False
        if self.gkl is not None:
            self.gkl.eval()  # the prior must see each batch once
        try:
            losses = self.robust_losses(inputs, adversarial, data_samples)
            grads = torch.autograd.grad(sum(losses.values()), params, allow_unused=True)
        finally:
            if self.gkl is not None:
                self.gkl.train(loss_was_training)
            with torch.no_grad():
                for buffer, saved in buffers:
                    buffer.copy_(saved)
        steps = []
        with torch.no_grad():
            for param, grad in zip(params, grads):
                if grad is None:
                    continue
                scale = self.awp_gamma * param.norm() / (grad.norm() + 1e-20)
                steps.append((param, scale * grad))
        return steps

    def train_step(self, data, optim_wrapper: OptimWrapper, *,
                   wrapper: Optional[nn.Module] = None) -> Dict[str, Tensor]:
        """mmengine's train step, with AWP around the optimizer update when enabled.

        Args:
            data (dict): A batch from the dataloader.
            optim_wrapper (OptimWrapper): Updates the parameters.
            wrapper (nn.Module, optional): The distributed wrapper of this model: the loss
                forward runs through it (gradient synchronisation), the attack and the AWP
                ascent on this model itself. Defaults to None.

        Returns:
            dict: The logged loss values.
        """
        loss_forward = self if wrapper is None else wrapper
        with optim_wrapper.optim_context(loss_forward):
            data = self.data_preprocessor(data, True)
            inputs, data_samples = data['inputs'], data['data_samples']
            adversarial = self.craft_adversarial(inputs)
            perturbation = []
            if self._awp_active():
                perturbation = self.awp_perturbation(inputs, adversarial, data_samples)
                with torch.no_grad():
                    for param, step in perturbation:
                        param.add_(step)
            losses = loss_forward(inputs, data_samples, mode='loss', adversarial=adversarial)
        parsed_loss, log_vars = self.parse_losses(losses)
        optim_wrapper.update_params(parsed_loss)
        with torch.no_grad():
            for param, step in perturbation:
                param.sub_(step)
        return log_vars

    # ------------------------------------------------------------------------- prediction

    def _selected(self, cfg: dict, data_samples: List[DataSample]) -> List[int]:
        limit = cfg['num_samples']
        if limit is None:
            return list(range(len(data_samples)))
        indices = []
        for i, sample in enumerate(data_samples):
            if 'sample_idx' not in sample:
                raise ValueError('num_samples of an eval attack needs the sample_idx meta key: '
                                 'keep it in PackInputs(meta_keys=...)')
            if int(sample.sample_idx) < limit:
                indices.append(i)
        return indices

    def _run_eval_attack(self, cfg: dict, images: Tensor, labels: Tensor) -> Tensor:
        import torchattacks
        options = {k: v for k, v in cfg.items() if k not in ('type', 'name', 'num_samples',
                                                               'seed')}
        if cfg['type'] == 'AutoAttack':
            options.setdefault('n_classes', self.gkl.prior.num_classes if self.gkl is not None
                               else self.classifier.head.num_classes)
            options.setdefault('seed', cfg['seed'])
        attack = getattr(torchattacks, cfg['type'])(self.pixel_model(), **options)
        with torch.random.fork_rng(devices=[]), torch.enable_grad():
            torch.manual_seed(cfg['seed'])
            return attack(images, labels)

    def predict(self, inputs: Tensor,
                data_samples: Optional[List[DataSample]] = None) -> List[DataSample]:
        """Clean predictions plus, per sample, the labels predicted under each eval attack."""
        results = self.classifier((inputs - self.pixel_mean) / self.pixel_std, data_samples,
                                  mode='predict')
        if not self.eval_attacks or data_samples is None or 'gt_label' not in data_samples[0]:
            return results
        labels = self._hard_labels(data_samples).to(inputs.device)
        images = self.to_unit(inputs)
        adv_labels = [dict() for _ in results]
        for cfg in self.eval_attacks:
            chosen = self._selected(cfg, results)
            if not chosen:
                continue
            index = torch.tensor(chosen, device=inputs.device)
            adversarial = self._run_eval_attack(cfg, images[index], labels[index])
            with torch.no_grad():
                predicted = self.pixel_model()(adversarial).argmax(dim=1)
            for position, i in enumerate(chosen):
                adv_labels[i][cfg['name']] = predicted[position].detach().cpu()
        for result, predicted in zip(results, adv_labels):
            result.set_field(predicted, 'adv_pred_label', field_type='data')
        return results

    def forward(self, inputs: Tensor, data_samples: Optional[List[DataSample]] = None,
                mode: str = 'tensor', adversarial: Optional[Tensor] = None):
        """mmengine's forward: ``'tensor'`` logits, ``'loss'`` loss parts, ``'predict'``.

        With ``mode='loss'``, ``adversarial`` (pixels like ``inputs``) skips the attack.
        """
        if mode == 'tensor':
            return self.logits(inputs)
        if mode == 'loss':
            if adversarial is not None:
                return self.robust_losses(inputs, adversarial, data_samples)
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise ValueError(f'mode must be "tensor", "loss" or "predict", got {mode!r}')


@MODEL_WRAPPERS.register_module()
class AdversarialDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's DDP wrapper, handing the train step to :class:`AdversarialClassifier`.

    The model crafts the attack and the AWP step on itself and runs only the loss forward
    through this wrapper, so gradients are synchronised once per step. Each process takes
    the AWP step of its own batch; it is removed after the optimizer step, so the weights
    stay identical across processes. Buffers are not broadcast (each process keeps its own
    class-prior sums, which :class:`GKLPriorHook` all-reduces).

    Example:
        >>> model_wrapper_cfg = dict(type='AdversarialDistributedDataParallel')
    """

    def __init__(self, module: nn.Module, **kwargs):
        kwargs.setdefault('broadcast_buffers', False)
        super().__init__(module=module, **kwargs)

    def train_step(self, data, optim_wrapper: OptimWrapper) -> Dict[str, Tensor]:
        return self.module.train_step(data, optim_wrapper, wrapper=self)
