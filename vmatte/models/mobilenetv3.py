"""MobileNetV3-Large encoder in RVM's form.

The layout follows torchvision's MobileNetV3 (so the official state dict keys ``backbone.features.*`` load as
they are), with the last three blocks dilated instead of strided: output stride 16, features tapped at
1/2, 1/4, 1/8 and 1/16 of the input.
"""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

BN_EPS = 0.001  # torchvision's MobileNetV3 BatchNorm epsilon; the official weights were trained with it


def _make_divisible(value: float, divisor: int = 8) -> int:
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_bn_act(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, dilation: int = 1,
                activation: type[nn.Module] | None = nn.Hardswish) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2 * dilation, dilation=dilation, groups=groups,
                  bias=False),
        nn.BatchNorm2d(cout, eps=BN_EPS),
    ]
    if activation is not None:
        layers.append(activation())
    return nn.Sequential(*layers)


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, squeeze_channels: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = F.adaptive_avg_pool2d(x, 1)
        scale = F.hardsigmoid(self.fc2(F.relu(self.fc1(scale))))
        return x * scale


@dataclass(frozen=True)
class BlockConfig:
    cin: int
    kernel: int
    expanded: int
    cout: int
    use_se: bool
    hardswish: bool
    stride: int
    dilation: int


class InvertedResidual(nn.Module):
    def __init__(self, cfg: BlockConfig):
        super().__init__()
        activation = nn.Hardswish if cfg.hardswish else nn.ReLU
        # A dilated block keeps its resolution: dilation replaces the stride (output stride 16).
        stride = 1 if cfg.dilation > 1 else cfg.stride
        layers: list[nn.Module] = []
        if cfg.expanded != cfg.cin:
            layers.append(conv_bn_act(cfg.cin, cfg.expanded, 1, activation=activation))
        layers.append(conv_bn_act(cfg.expanded, cfg.expanded, cfg.kernel, stride, groups=cfg.expanded,
                                  dilation=cfg.dilation, activation=activation))
        if cfg.use_se:
            layers.append(SqueezeExcitation(cfg.expanded, _make_divisible(cfg.expanded // 4)))
        layers.append(conv_bn_act(cfg.expanded, cfg.cout, 1, activation=None))
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and cfg.cin == cfg.cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return out + x if self.use_residual else out


# (cin, kernel, expanded, cout, SE, hardswish, stride, dilation): MobileNetV3-Large, last stage dilated.
LARGE_BLOCKS = [
    BlockConfig(16, 3, 16, 16, False, False, 1, 1),
    BlockConfig(16, 3, 64, 24, False, False, 2, 1),    # -> 1/4
    BlockConfig(24, 3, 72, 24, False, False, 1, 1),
    BlockConfig(24, 5, 72, 40, True, False, 2, 1),     # -> 1/8
    BlockConfig(40, 5, 120, 40, True, False, 1, 1),
    BlockConfig(40, 5, 120, 40, True, False, 1, 1),
    BlockConfig(40, 3, 240, 80, False, True, 2, 1),    # -> 1/16
    BlockConfig(80, 3, 200, 80, False, True, 1, 1),
    BlockConfig(80, 3, 184, 80, False, True, 1, 1),
    BlockConfig(80, 3, 184, 80, False, True, 1, 1),
    BlockConfig(80, 3, 480, 112, True, True, 1, 1),
    BlockConfig(112, 3, 672, 112, True, True, 1, 1),
    BlockConfig(112, 5, 672, 160, True, True, 2, 2),   # dilated: stays at 1/16
    BlockConfig(160, 5, 960, 160, True, True, 1, 2),
    BlockConfig(160, 5, 960, 160, True, True, 1, 2),
]


class MobileNetV3LargeEncoder(nn.Module):
    feature_channels = (16, 24, 40, 960)

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_act(3, 16, 3, stride=2),
            *(InvertedResidual(cfg) for cfg in LARGE_BLOCKS),
            conv_bn_act(160, 960, 1),
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Normalised images (N, 3, H, W) -> features at 1/2, 1/4, 1/8 and 1/16."""
        f = self.features
        f1 = f[1](f[0](x))
        f2 = f[3](f[2](f1))
        f3 = f[6](f[5](f[4](f2)))
        f4 = f[7:](f3)
        return [f1, f2, f3, f4]
