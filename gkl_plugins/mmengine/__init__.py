"""mmengine pieces shared by the mmrazor and mmpretrain adapters.

Importing this package registers :class:`GKLPriorHook` in mmengine's root ``HOOKS``
registry (found from every OpenMMLab scope) and lets ``torch.load(weights_only=True)``
read mmengine checkpoints (see :mod:`gkl_plugins.mmengine.checkpoint`). In a config::

    custom_imports = dict(imports=['gkl_plugins.mmengine'], allow_failed_imports=False)
    custom_hooks = [dict(type='GKLPriorHook')]
"""
from .checkpoint import allow_mmengine_checkpoints
from .hooks import GKLPriorHook, find_modules

allow_mmengine_checkpoints()

__all__ = ['GKLPriorHook', 'allow_mmengine_checkpoints', 'find_modules']
