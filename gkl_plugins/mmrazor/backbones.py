"""The CIFAR ResNets of the distillation literature (resnet8x4, resnet32x4, ...) as an
mmpretrain backbone.

mmpretrain's ``ResNet_CIFAR`` only knows the ImageNet depths (18 to 152, four stages);
the distillation benchmarks use the 6n+2-layer, three-stage CIFAR ResNets instead.
"""
from mmpretrain.models.backbones import ResNet_CIFAR
from mmpretrain.models.backbones.resnet import BasicBlock
from mmpretrain.registry import MODELS

__all__ = ['CIFARResNet']


@MODELS.register_module()
class CIFARResNet(ResNet_CIFAR):
    """Three-stage CIFAR ResNet of depth ``6n + 2`` with ``n`` basic blocks per stage.

    ``resnet8x4`` is ``CIFARResNet(depth=8, stem_channels=32, base_channels=64)`` and
    ``resnet32x4`` the same with ``depth=32``: a 3x3 stem, then stages of 64, 128 and 256
    channels at strides 1, 2 and 2. The plain ``resnet20`` is ``depth=20`` with the default
    16 channels. The output is the last stage's ``(B, 4 * base_channels, H / 4, W / 4)``
    feature map.

    Args:
        depth (int): One of 8, 14, 20, 32, 44, 56, 110.
        stem_channels (int): Channels of the stem. Defaults to 16.
        base_channels (int): Channels of the first stage. Defaults to 16.
        **kwargs: Other arguments of mmpretrain's ``ResNet`` (``in_channels``,
            ``norm_cfg``, ...), except the stage layout.
    """

    arch_settings = {depth: (BasicBlock, ((depth - 2) // 6, ) * 3)
                     for depth in (8, 14, 20, 32, 44, 56, 110)}

    def __init__(self, depth: int, *, stem_channels: int = 16, base_channels: int = 16,
                 **kwargs):
        if depth not in self.arch_settings:
            raise ValueError(f'depth must be one of {sorted(self.arch_settings)}, got {depth}')
        for fixed in ('num_stages', 'strides', 'dilations', 'out_indices'):
            if fixed in kwargs:
                raise ValueError(f'CIFARResNet has a fixed stage layout; remove {fixed!r}')
        super().__init__(depth, stem_channels=stem_channels, base_channels=base_channels,
                         num_stages=3, strides=(1, 2, 2), dilations=(1, 1, 1),
                         out_indices=(2, ), **kwargs)
