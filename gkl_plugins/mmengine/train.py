"""``gkl-train``: train an OpenMMLab config (mmpretrain or mmrazor) with mmengine's Runner.

Usage::

    gkl-train CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
              [--cfg-options key=value ...] [--launcher {none,pytorch}]

The config names its registries through ``default_scope`` and its plugins through
``custom_imports``, as with OpenMMLab's own ``tools/train.py``. This command additionally
imports :mod:`gkl_plugins.mmengine` (the prior hook, weights-only checkpoint loading) and,
for configs that use mmrazor, :mod:`gkl_plugins.mmrazor` before mmrazor is imported.
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

from ..data import DataNotFoundError


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(
        prog='gkl-train', description='Train a model from an OpenMMLab config.')
    parser.add_argument('config', help='path of the config file')
    parser.add_argument('--work-dir', help='folder for logs and checkpoints; defaults to '
                        './work_dirs/<config name>')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or from the latest checkpoint of the work '
                        'folder when no CKPT is given')
    parser.add_argument('--amp', action='store_true',
                        help="train with automatic mixed precision (mmengine's "
                        'AmpOptimWrapper; needs a GPU)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. train_cfg.max_epochs=2')
    parser.add_argument('--launcher', choices=['none', 'pytorch'], default='none',
                        help='job launcher; pytorch for torchrun')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0,
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # torch.distributed.launch passes the rank as an argument, torchrun as a variable.
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def build_config(args: argparse.Namespace):
    """The config of ``args.config`` with the command-line settings merged in."""
    from mmengine.config import Config

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if optim_wrapper == 'AmpOptimWrapper':
            print('AMP is already enabled in the config.')
        elif optim_wrapper != 'OptimWrapper':
            raise ValueError(f'--amp needs an OptimWrapper, the config uses {optim_wrapper}')
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def _uses_mmrazor(cfg) -> bool:
    model = cfg.get('model') or {}
    return ('mmrazor' in (cfg.get('default_scope'), model.get('_scope_'))
            or str(model.get('type', '')).startswith('mmrazor.'))


def _warn_without_teacher_weights(cfg) -> None:
    """A distiller whose teacher has no weights distils from random logits: say so."""
    model = cfg.get('model') or {}
    if 'teacher' in model and 'teacher_ckpt' in model and not model.get('teacher_ckpt') \
            and not cfg.get('resume'):
        print('gkl-train: warning: model.teacher_ckpt is not set, so the teacher keeps its '
              'random initial weights and the student learns nothing useful from it; pass '
              '--cfg-options model.teacher_ckpt=PATH', file=sys.stderr)


def _init_cpu_distributed(cfg) -> None:
    """Make ``--launcher pytorch`` work without GPUs.

    mmengine's launcher selects a CUDA device and its default wrapper passes that device to
    DistributedDataParallel, both of which fail on a CPU-only machine. There, the process
    group is created here with gloo from torchrun's variables (the runner then uses it) and
    the wrapper is given no device.
    """
    import torch
    import torch.distributed as dist

    if torch.cuda.is_available() or dist.is_initialized():
        return
    dist.init_process_group(backend='gloo')
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``gkl-train``; returns the exit status."""
    args = parse_args(argv)
    try:
        from mmengine.runner import Runner

        from .. import mmengine as _plugin  # noqa: F401

        cfg = build_config(args)
        _warn_without_teacher_weights(cfg)
        if args.launcher != 'none':
            _init_cpu_distributed(cfg)
        if _uses_mmrazor(cfg):
            # mmrazor needs its torch names restored before the runner imports it.
            from .. import mmrazor  # noqa: F401
        runner = Runner.from_cfg(cfg)
        runner.train()
    except DataNotFoundError as exc:
        print(f'gkl-train: data not found.\n{exc}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
