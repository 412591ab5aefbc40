"""ResNet-50 encoder in RVM's form: torchvision's layout (so ``backbone.*`` keys load as they are), the last
stage dilated instead of strided (output stride 16), features tapped at 1/2, 1/4, 1/8 and 1/16."""

import torch
from torch import nn


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1, dilation: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        # After the main branch, as torchvision runs it: the ONNX importer matches convolutions in running order.
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet50Encoder(nn.Module):
    feature_channels = (64, 256, 512, 2048)

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self._cin = 64
        self._dilation = 1
        self.layer1 = self._make_layer(64, 3)
        self.layer2 = self._make_layer(128, 4, stride=2)
        self.layer3 = self._make_layer(256, 6, stride=2)
        self.layer4 = self._make_layer(512, 3, stride=2, dilate=True)

    def _make_layer(self, width: int, blocks: int, stride: int = 1, dilate: bool = False) -> nn.Sequential:
        first_dilation = self._dilation
        if dilate:  # torchvision's replace_stride_with_dilation: the stride becomes dilation from the 2nd block
            self._dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self._cin != width * Bottleneck.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self._cin, width * Bottleneck.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(width * Bottleneck.expansion),
            )
        layers = [Bottleneck(self._cin, width, stride, first_dilation, downsample)]
        self._cin = width * Bottleneck.expansion
        layers += [Bottleneck(self._cin, width, dilation=self._dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Normalised images (N, 3, H, W) -> features at 1/2, 1/4, 1/8 and 1/16."""
        f1 = self.relu(self.bn1(self.conv1(x)))
        f2 = self.layer1(self.maxpool(f1))
        f3 = self.layer2(f2)
        f4 = self.layer4(self.layer3(f3))
        return [f1, f2, f3, f4]
