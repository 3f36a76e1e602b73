"""GKL divergence loss for OpenMMLab and Detectron2.

``gkl_plugins.core`` holds all the math and needs only torch. Each host framework has its own
adapter package (``gkl_plugins.mmrazor``, ``gkl_plugins.mmpretrain``,
``gkl_plugins.detectron2``) that imports its host and registers components in the host's
registries; none of them is imported here, so the core works without any host installed.
"""
from .core import ClassPrior, GKLLoss, GKLOutput, dkl_loss, gkl_loss, kl_loss, warmup_factor

__version__ = '0.1.0'
__all__ = ['ClassPrior', 'GKLLoss', 'GKLOutput', 'dkl_loss', 'gkl_loss', 'kl_loss',
           'warmup_factor']
