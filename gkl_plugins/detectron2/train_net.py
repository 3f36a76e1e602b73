"""Train and evaluate detectors with GKL distillation: the ``gkl-d2-train`` command.

It follows detectron2's ``train_net.py`` convention and takes the same arguments::

    # 1. the teacher, 2. the distilled student, 3. the plain student to compare with
    gkl-d2-train --config-file configs/detectron2/faster_rcnn_R50_FPN_teacher.yaml
    gkl-d2-train --config-file configs/detectron2/faster_rcnn_R18_FPN_gkl_distill.yaml
    gkl-d2-train --config-file configs/detectron2/faster_rcnn_R18_FPN_student.yaml
    # shorter runs and other options through the usual overrides
    gkl-d2-train --config-file ... SOLVER.MAX_ITER 20 MODEL.GKL.BETA 2.0
    gkl-d2-train --config-file ... --eval-only MODEL.WEIGHTS path/to/model_final.pth

The Fashion-MNIST canvas data sets of
:data:`gkl_plugins.detectron2.data.DEFAULT_DATASETS` are made (once, in ``$GKL_CACHE_DIR``)
and registered before the config is read. A relative ``MODEL.GKL.TEACHER.CONFIG_FILE`` is
looked up relative to the student's config file when it does not exist relative to the
working directory.
A default name with a size appended (``fashion_mnist_det_val_50``) names the same set with
that many canvases, e.g. ``DATASETS.TEST "('fashion_mnist_det_val_50',)"`` for a quick run.
"""
import os

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.engine import DefaultTrainer, default_argument_parser, default_setup, hooks, launch
from detectron2.evaluation import COCOEvaluator
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger
from torch.nn.parallel import DistributedDataParallel

from ..core import GKLLoss
from .config import load_gkl_config
from .data import register_default_datasets, register_sized_datasets
from .hooks import GKLHook

__all__ = ['GKLTrainer', 'setup', 'main']


class GKLTrainer(DefaultTrainer):
    """``DefaultTrainer`` that adds :class:`GKLHook` when the model holds a GKL loss, and
    evaluates with ``COCOEvaluator`` (the pure-Python implementation, which works without
    detectron2's compiled operators)."""

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, 'inference')
        return COCOEvaluator(dataset_name, output_dir=output_folder, use_fast_impl=False)

    def build_hooks(self):
        ret = super().build_hooks()
        model = self.model
        if isinstance(model, DistributedDataParallel):
            model = model.module
        if not any(isinstance(m, GKLLoss) for m in model.modules()):
            return ret
        # Before the checkpointer, so that a checkpoint holds the prior renewed at its
        # iteration; before evaluation and writers, which only read.
        position = next((i for i, h in enumerate(ret)
                         if isinstance(h, (hooks.PeriodicCheckpointer, hooks.EvalHook))),
                        len(ret))
        ret.insert(position, GKLHook(prior_interval=self.cfg.MODEL.GKL.PRIOR_INTERVAL))
        return ret


def setup(args):
    """The config from ``args`` (with the GKL options), after detectron2's default setup."""
    cfg = load_gkl_config(args.config_file, args.opts)
    cfg.freeze()
    default_setup(cfg, args)
    # This package's loggers (the hook reports prior renewals) write where detectron2's do.
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name='gkl_plugins',
                 abbrev_name='gkl')
    return cfg


def run(args):
    """Train, or evaluate with ``--eval-only``, in one process of a launch."""
    register_default_datasets()
    cfg = setup(args)
    register_sized_datasets(cfg.DATASETS.TRAIN + cfg.DATASETS.TEST)
    if args.eval_only:
        model = GKLTrainer.build_model(cfg)
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(
            cfg.MODEL.WEIGHTS, resume=args.resume)
        return GKLTrainer.test(cfg, model)
    trainer = GKLTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def main(argv=None):
    """Entry point of ``gkl-d2-train``.

    Args:
        argv (list[str], optional): Arguments; defaults to ``sys.argv[1:]``.
    """
    args = default_argument_parser().parse_args(argv)
    # Made here, once, before worker processes start; each worker only registers them.
    register_default_datasets()
    launch(run, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))


if __name__ == '__main__':
    main()
