"""mmpretrain adapters; importing this package registers them in mmpretrain's registries."""
from . import datasets  # noqa: F401
from .adversarial import (
    AdversarialClassifier,
    AdversarialDistributedDataParallel,
    PixelSpaceClassifier,
    soft_ce_attack,
)
from .metrics import RobustAccuracy
from .wide_resnet import WideResNetCIFAR

__all__ = ['AdversarialClassifier', 'AdversarialDistributedDataParallel',
           'PixelSpaceClassifier', 'RobustAccuracy', 'WideResNetCIFAR', 'soft_ce_attack']
