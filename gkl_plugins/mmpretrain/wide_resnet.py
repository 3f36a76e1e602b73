"""The CIFAR-style Wide ResNet (WRN-depth-k) used by adversarial-training benchmarks.

mmpretrain ships ImageNet-style wide ResNets only (bottleneck blocks and a 7x7 stem), so the
pre-activation CIFAR family, whose WRN-34-10 is the standard robustness benchmark, is
registered here as a backbone.
"""
from typing import Tuple

from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from torch import Tensor, nn


class _PreActBlock(nn.Module):
    """BN-ReLU-conv twice, with a 1x1 projection on the shortcut when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride, 0, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        activated = self.relu(self.bn1(x))
        # A projected shortcut starts from the activated input, an identity one from the raw.
        identity = x if self.shortcut is None else self.shortcut(activated)
        out = self.conv1(activated)
        out = self.conv2(self.relu(self.bn2(out)))
        return out + identity


@MODELS.register_module()
class WideResNetCIFAR(BaseModule):
    """Pre-activation Wide ResNet for small images (Zagoruyko and Komodakis, 2016).

    Three stages of ``(depth - 4) / 6`` blocks with ``16k``, ``32k`` and ``64k`` channels
    (strides 1, 2, 2) after a 3x3 stem of 16 channels, then BN and ReLU. WRN-34-10 has
    depth 34 and ``widen_factor`` 10 (46M parameters, 640 output channels).

    Args:
        depth (int): ``6n + 4``. Defaults to 34.
        widen_factor (int): Channel multiplier ``k``. Defaults to 10.
        in_channels (int): Input channels (1 for grey images). Defaults to 3.
        init_cfg (dict or list[dict], optional): mmengine initialisation config.
            Defaults to Kaiming for convolutions and constant for BN.

    Returns (forward):
        tuple[Tensor]: One ``(B, 64k, H / 4, W / 4)`` feature map, for a neck such as
        ``GlobalAveragePooling`` and a ``LinearClsHead`` with ``in_channels=64k``.
    """

    def __init__(self, depth: int = 34, widen_factor: int = 10, *, in_channels: int = 3,
                 init_cfg=(dict(type='Kaiming', layer='Conv2d', mode='fan_out',
                                nonlinearity='relu'),
                           dict(type='Constant', layer='BatchNorm2d', val=1.0))):
        super().__init__(init_cfg=list(init_cfg) if init_cfg is not None else None)
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f'depth must be 6n + 4 with n >= 1 (10, 16, 28, 34, ...), got {depth}')
        if widen_factor < 1:
            raise ValueError(f'widen_factor must be a positive integer, got {widen_factor}')
        blocks = (depth - 4) // 6
        widths = (16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
        self.out_channels = widths[-1]
        self.stem = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        stages = []
        channels = 16
        for width, stride in zip(widths, (1, 2, 2)):
            layers = []
            for i in range(blocks):
                layers.append(_PreActBlock(channels, width, stride if i == 0 else 1))
                channels = width
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.final_bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tuple[Tensor]:
        return (self.relu(self.final_bn(self.stages(self.stem(x)))), )
