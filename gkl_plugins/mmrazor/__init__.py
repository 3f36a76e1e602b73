"""mmrazor adapter: import it through a config's ``custom_imports``.

Importing this package first restores the torch names mmrazor 1.0.0 needs on torch >= 2
(see :mod:`gkl_plugins.mmrazor.torch2_compat`), then registers :class:`GKLDivergence` in
mmrazor's ``MODELS``, ``GKLPriorHook`` in mmengine's ``HOOKS``, and mmpretrain's offline
data sets::

    custom_imports = dict(imports=['gkl_plugins.mmrazor'], allow_failed_imports=False)
"""
from .torch2_compat import restore_torch_names_for_mmrazor

restore_torch_names_for_mmrazor()

from .. import mmengine as _mmengine  # noqa: E402,F401  (registers GKLPriorHook)
from ..mmpretrain import datasets as _datasets  # noqa: E402,F401  (registers the data sets)
from .backbones import CIFARResNet  # noqa: E402
from .losses import GKLDivergence  # noqa: E402

__all__ = ['CIFARResNet', 'GKLDivergence', 'restore_torch_names_for_mmrazor']
