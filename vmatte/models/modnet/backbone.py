"""MobileNetV2 encoder in MODNet's form.

Module names mirror the official MODNet code (``model.features.<i>`` with ``conv.<j>`` inside each inverted
residual block) so the released checkpoints load as they are. The classifier head is absent, as in MODNet.
Features are tapped after blocks 1, 3, 6, 13 and 18: strides 2, 4, 8, 16 and 32.
"""

import torch
from torch import nn

# (expansion t, output channels c, repeats n, first stride s) per stage, as in the MobileNetV2 paper.
INVERTED_RESIDUAL_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STEM_CHANNELS = 32
LAST_CHANNELS = 1280
# features[i] index after which each encoder output is taken (exclusive end of each stage).
STAGE_ENDS = (2, 4, 7, 14, 19)
ENCODER_CHANNELS = (16, 24, 32, 96, LAST_CHANNELS)


def conv_bn_relu6(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(inplace=True),
    ]


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        hidden = round(cin * expansion)
        self.use_residual = stride == 1 and cin == cout
        # With expansion 1 there is no 1x1 expanding conv, so the indices inside ``conv`` shift (official layout).
        expand = conv_bn_relu6(cin, hidden, 1) if expansion != 1 else []
        self.conv = nn.Sequential(
            *expand,
            *conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(nn.Module):
    """The 19 feature layers of MobileNetV2 (width multiplier 1.0), without the classifier."""

    def __init__(self, in_channels: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Sequential(*conv_bn_relu6(in_channels, STEM_CHANNELS, 3, stride=2))]
        cin = STEM_CHANNELS
        for expansion, cout, repeats, stride in INVERTED_RESIDUAL_SETTINGS:
            for i in range(repeats):
                layers.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expansion))
                cin = cout
        layers.append(nn.Sequential(*conv_bn_relu6(cin, LAST_CHANNELS, 1)))
        self.features = nn.Sequential(*layers)


class MobileNetV2Backbone(nn.Module):
    """Runs MobileNetV2 and returns its features at strides 2, 4, 8, 16 and 32."""

    enc_channels = ENCODER_CHANNELS

    def __init__(self, in_channels: int = 3):
        super().__init__()
        self.model = MobileNetV2(in_channels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        start = 0
        for end in STAGE_ENDS:
            for layer in self.model.features[start:end]:
                x = layer(x)
            features.append(x)
            start = end
        return features
