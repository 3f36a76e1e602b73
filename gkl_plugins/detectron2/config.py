"""GKL options in Detectron2's config system and the checks that go with them."""
import os
from typing import Optional

from detectron2.config import CfgNode as CN
from detectron2.config import get_cfg

from ..core import GKLLoss

__all__ = ['add_gkl_config', 'build_gkl_loss', 'check_softmax_box_head', 'get_teacher_cfg',
           'load_gkl_config', 'resolve_teacher_config_file']

# Options that later detectron2 releases offer for the box classifier; the GKL loss needs a
# softmax over K + 1 classes, which neither provides.
_UNSUPPORTED_HEAD_OPTIONS = {
    'USE_SIGMOID_CE': 'a sigmoid classifier (independent per-class probabilities)',
    'USE_FED_LOSS': 'the federated loss (a sigmoid classifier over sampled classes)',
}


def add_gkl_config(cfg: CN) -> CN:
    """Add the GKL distillation options to a detectron2 config, under ``cfg.MODEL.GKL``.

    Keys (defaults in brackets):

    * ``VARIANT`` (``'gkl'``): ``'gkl'``, ``'ikl'`` or ``'dkl'``, as in
      :class:`gkl_plugins.core.GKLLoss`.
    * ``ALPHA`` (1.0), ``BETA`` (1.0), ``GAMMA`` (1.0): weights of the soft-label CE part and
      of the weighted MSE part, and the power on the weights.
    * ``TEMPERATURE`` (1.0), ``WEIGHT_TEMPERATURE`` (1.0): temperatures of the CE part and of
      the weights (and the class prior).
    * ``USE_PRIOR`` (True): weigh class pairs with the class-wise prior over the K + 1
      classes, gathered from the teacher on the sampled proposals.
    * ``PRIOR_INTERVAL`` (100): iterations between two renewals of the prior.
    * ``WARMUP_ITERS`` (0): length of the linear warm-up of the loss, in iterations.
    * ``LOSS_WEIGHT`` (1.0): factor on the whole GKL loss.
    * ``TEACHER.CONFIG_FILE`` (``''``): the teacher's detectron2 config file.
    * ``TEACHER.WEIGHTS`` (``''``): the teacher's weights; empty leaves it randomly
      initialised, which only makes sense in tests.

    Args:
        cfg (CfgNode): A config from ``detectron2.config.get_cfg()``; changed in place.

    Returns:
        CfgNode: ``cfg`` itself.
    """
    cfg.MODEL.GKL = CN()
    cfg.MODEL.GKL.VARIANT = 'gkl'
    cfg.MODEL.GKL.ALPHA = 1.0
    cfg.MODEL.GKL.BETA = 1.0
    cfg.MODEL.GKL.GAMMA = 1.0
    cfg.MODEL.GKL.TEMPERATURE = 1.0
    cfg.MODEL.GKL.WEIGHT_TEMPERATURE = 1.0
    cfg.MODEL.GKL.USE_PRIOR = True
    cfg.MODEL.GKL.PRIOR_INTERVAL = 100
    cfg.MODEL.GKL.WARMUP_ITERS = 0
    cfg.MODEL.GKL.LOSS_WEIGHT = 1.0
    cfg.MODEL.GKL.TEACHER = CN()
    cfg.MODEL.GKL.TEACHER.CONFIG_FILE = ''
    cfg.MODEL.GKL.TEACHER.WEIGHTS = ''
    return cfg


def check_softmax_box_head(cfg: CN, *, role: str = 'student') -> None:
    """Raise a ``ValueError`` unless the box classifier is a softmax over K + 1 classes.

    Args:
        cfg (CfgNode): The model's config.
        role (str): ``'student'`` or ``'teacher'``, for the message. Defaults to 'student'.
    """
    head = cfg.MODEL.ROI_BOX_HEAD
    for key, what in _UNSUPPORTED_HEAD_OPTIONS.items():
        if getattr(head, key, False):
            raise ValueError(
                f'GKL distillation does not support {what}: the {role} config sets '
                f'MODEL.ROI_BOX_HEAD.{key} = True, but the GKL loss compares softmax '
                'distributions over the K + 1 classes (background last). Set '
                f'MODEL.ROI_BOX_HEAD.{key} to False for the {role}.')


def build_gkl_loss(cfg: CN, num_classes: int) -> GKLLoss:
    """The :class:`GKLLoss` described by ``cfg.MODEL.GKL``.

    Args:
        cfg (CfgNode): A config with :func:`add_gkl_config` applied.
        num_classes (int): Classes of the logits, K + 1 for a Fast R-CNN box classifier.

    Returns:
        GKLLoss: The loss; with ``USE_PRIOR`` it holds a prior over ``num_classes`` classes.
    """
    gkl = cfg.MODEL.GKL
    if gkl.USE_PRIOR and gkl.VARIANT == 'dkl':
        raise ValueError('MODEL.GKL.VARIANT "dkl" weighs class pairs with each sample\'s own '
                         'teacher prediction and takes no class prior: set '
                         'MODEL.GKL.USE_PRIOR to False')
    if gkl.PRIOR_INTERVAL < 1:
        raise ValueError(f'MODEL.GKL.PRIOR_INTERVAL must be at least 1 iteration, got '
                         f'{gkl.PRIOR_INTERVAL}')
    return GKLLoss(gkl.VARIANT, num_classes=num_classes if gkl.USE_PRIOR else None,
                   alpha=gkl.ALPHA, beta=gkl.BETA, gamma=gkl.GAMMA,
                   temperature=gkl.TEMPERATURE, weight_temperature=gkl.WEIGHT_TEMPERATURE,
                   loss_weight=gkl.LOSS_WEIGHT, warmup=gkl.WARMUP_ITERS)


def get_teacher_cfg(cfg: CN) -> CN:
    """Load the teacher's config named by ``cfg.MODEL.GKL.TEACHER.CONFIG_FILE``.

    The teacher runs on the student's device and must see the same images, so
    ``MODEL.DEVICE`` is taken from the student and ``INPUT.FORMAT`` must agree.

    Args:
        cfg (CfgNode): The student's config. A relative ``TEACHER.CONFIG_FILE`` is read
            relative to the working directory; ``gkl-d2-train`` first resolves it against the
            folder of the student's config file (see :func:`resolve_teacher_config_file`).

    Returns:
        CfgNode: The teacher's config, frozen.
    """
    path = cfg.MODEL.GKL.TEACHER.CONFIG_FILE
    if not path:
        raise ValueError('MODEL.GKL.TEACHER.CONFIG_FILE is empty: name the teacher\'s '
                         'detectron2 config file (for example the config it was trained with)')
    if not os.path.exists(path):
        raise ValueError(f'the teacher config file {path!r} (MODEL.GKL.TEACHER.CONFIG_FILE) '
                         'does not exist; give an absolute path or one relative to the '
                         'working directory')
    teacher_cfg = add_gkl_config(get_cfg())
    teacher_cfg.merge_from_file(path)
    teacher_cfg.MODEL.DEVICE = cfg.MODEL.DEVICE
    teacher_cfg.MODEL.WEIGHTS = cfg.MODEL.GKL.TEACHER.WEIGHTS
    if teacher_cfg.INPUT.FORMAT != cfg.INPUT.FORMAT:
        raise ValueError(
            f'the teacher expects INPUT.FORMAT {teacher_cfg.INPUT.FORMAT!r} but the student '
            f'reads images as {cfg.INPUT.FORMAT!r}; both see the same images, so set the '
            'same INPUT.FORMAT in both configs')
    teacher_cfg.freeze()
    return teacher_cfg


def resolve_teacher_config_file(path: str, config_dir: Optional[str]) -> str:
    """A teacher config path as given if it exists (or is empty), else relative to
    ``config_dir`` (the folder of the student's config file) when it exists there."""
    if not path or os.path.isabs(path) or os.path.exists(path) or not config_dir:
        return path
    candidate = os.path.join(config_dir, path)
    return candidate if os.path.exists(candidate) else path


def load_gkl_config(config_file: str, opts: Optional[list] = None) -> CN:
    """A detectron2 config with the GKL options, read from ``config_file``.

    Like ``get_cfg()`` + :func:`add_gkl_config` + ``merge_from_file`` + ``merge_from_list``,
    and a relative ``MODEL.GKL.TEACHER.CONFIG_FILE`` is then looked up next to
    ``config_file`` too (see :func:`resolve_teacher_config_file`), as ``_BASE_`` files are.

    Args:
        config_file (str): The student's config file.
        opts (list, optional): ``KEY VALUE`` overrides, as on the command line.

    Returns:
        CfgNode: The config, not frozen.
    """
    cfg = add_gkl_config(get_cfg())
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts or []))
    teacher_file = resolve_teacher_config_file(
        cfg.MODEL.GKL.TEACHER.CONFIG_FILE, os.path.dirname(os.path.abspath(config_file)))
    if teacher_file and os.path.exists(teacher_file):
        teacher_file = os.path.abspath(teacher_file)
    cfg.MODEL.GKL.TEACHER.CONFIG_FILE = teacher_file
    return cfg
