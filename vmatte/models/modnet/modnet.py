"""MODNet (Ke et al., "Is a Green Screen Really Necessary for Real-Time Portrait Matting?", AAAI 2022).

The graph follows the official code rather than the paper: there is no e-ASPP module, the semantic branch
has an SE block on the stride-32 features, and every upsampling is bilinear with a scale factor of 2
(``align_corners=False``). Module names reproduce the official ``state_dict`` keys.
"""

import torch
from torch import nn
from torch.nn import functional as F

from .backbone import MobileNetV2Backbone

HR_CHANNELS = 32


def resize_by(x: torch.Tensor, scale: float) -> torch.Tensor:
    # A scale factor (not a target size) keeps the sampling grid of the official graph for every input size.
    return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)


class IBNorm(nn.Module):
    """BatchNorm on the first half of the channels, affine-free InstanceNorm on the rest."""

    def __init__(self, channels: int):
        super().__init__()
        self.bnorm_channels = channels // 2
        self.bnorm = nn.BatchNorm2d(self.bnorm_channels, affine=True)
        self.inorm = nn.InstanceNorm2d(channels - self.bnorm_channels, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        split = self.bnorm_channels
        return torch.cat((self.bnorm(x[:, :split].contiguous()), self.inorm(x[:, split:].contiguous())), dim=1)


class Conv2dIBNormRelu(nn.Module):
    """Conv2d (with bias), then optionally IBNorm and ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0,
                 with_ibn: bool = True, with_relu: bool = True):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=True)]
        if with_ibn:
            layers.append(IBNorm(cout))
        if with_relu:
            layers.append(nn.ReLU(inplace=True))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def conv_output(cin: int, kernel: int, stride: int = 1) -> Conv2dIBNormRelu:
    """The single-channel logit layer that ends each branch."""
    return Conv2dIBNormRelu(cin, 1, kernel, stride=stride, padding=kernel // 2, with_ibn=False, with_relu=False)


class SEBlock(nn.Module):
    """Squeeze-and-excitation channel reweighting (linear layers without bias)."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(channels // reduction, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))
        return x * weights[:, :, None, None]


class LRBranch(nn.Module):
    """Semantic branch: encoder, SE block, decoding to stride 8 (and a stride-16 semantic mask in training)."""

    def __init__(self, backbone: MobileNetV2Backbone):
        super().__init__()
        enc = backbone.enc_channels
        self.backbone = backbone
        self.se_block = SEBlock(enc[4], reduction=4)
        self.conv_lr16x = Conv2dIBNormRelu(enc[4], enc[3], 5, padding=2)
        self.conv_lr8x = Conv2dIBNormRelu(enc[3], enc[2], 5, padding=2)
        self.conv_lr = conv_output(enc[2], 3, stride=2)

    def forward(self, img: torch.Tensor, inference: bool):
        enc2x, enc4x, _, _, enc32x = self.backbone(img)
        lr16x = self.conv_lr16x(resize_by(self.se_block(enc32x), 2))
        lr8x = self.conv_lr8x(resize_by(lr16x, 2))
        pred_semantic = None if inference else torch.sigmoid(self.conv_lr(lr8x))
        return pred_semantic, lr8x, enc2x, enc4x


class HRBranch(nn.Module):
    """Detail branch: full-resolution image plus shallow encoder features, refined at strides 4 and 2."""

    def __init__(self, hr: int, enc: tuple[int, ...]):
        super().__init__()
        self.tohr_enc2x = Conv2dIBNormRelu(enc[0], hr, 1)
        self.conv_enc2x = Conv2dIBNormRelu(hr + 3, hr, 3, stride=2, padding=1)
        self.tohr_enc4x = Conv2dIBNormRelu(enc[1], hr, 1)
        self.conv_enc4x = Conv2dIBNormRelu(2 * hr, 2 * hr, 3, padding=1)
        self.conv_hr4x = nn.Sequential(
            Conv2dIBNormRelu(3 * hr + 3, 2 * hr, 3, padding=1),
            Conv2dIBNormRelu(2 * hr, 2 * hr, 3, padding=1),
            Conv2dIBNormRelu(2 * hr, hr, 3, padding=1),
        )
        self.conv_hr2x = nn.Sequential(
            Conv2dIBNormRelu(2 * hr, 2 * hr, 3, padding=1),
            Conv2dIBNormRelu(2 * hr, hr, 3, padding=1),
            Conv2dIBNormRelu(hr, hr, 3, padding=1),
            Conv2dIBNormRelu(hr, hr, 3, padding=1),
        )
        self.conv_hr = nn.Sequential(
            Conv2dIBNormRelu(hr + 3, hr, 3, padding=1),
            conv_output(hr, 1),
        )

    def forward(self, img: torch.Tensor, enc2x: torch.Tensor, enc4x: torch.Tensor, lr8x: torch.Tensor,
                inference: bool):
        img2x = resize_by(img, 1 / 2)
        img4x = resize_by(img, 1 / 4)
        enc2x = self.tohr_enc2x(enc2x)
        # Named as in the official code: the stride-2 conv takes the stride-2 inputs down to stride 4.
        hr4x = self.conv_enc2x(torch.cat((img2x, enc2x), dim=1))
        hr4x = self.conv_enc4x(torch.cat((hr4x, self.tohr_enc4x(enc4x)), dim=1))
        hr4x = self.conv_hr4x(torch.cat((hr4x, resize_by(lr8x, 2), img4x), dim=1))
        hr2x = self.conv_hr2x(torch.cat((resize_by(hr4x, 2), enc2x), dim=1))
        pred_detail = None
        if not inference:
            pred_detail = torch.sigmoid(self.conv_hr(torch.cat((resize_by(hr2x, 2), img), dim=1)))
        return pred_detail, hr2x


class FusionBranch(nn.Module):
    """Fuses the semantic (stride 8) and detail (stride 2) features into the full-resolution matte."""

    def __init__(self, hr: int, enc: tuple[int, ...]):
        super().__init__()
        self.conv_lr4x = Conv2dIBNormRelu(enc[2], hr, 5, padding=2)
        self.conv_f2x = Conv2dIBNormRelu(2 * hr, hr, 3, padding=1)
        self.conv_f = nn.Sequential(
            Conv2dIBNormRelu(hr + 3, hr // 2, 3, padding=1),
            conv_output(hr // 2, 1),
        )

    def forward(self, img: torch.Tensor, lr8x: torch.Tensor, hr2x: torch.Tensor) -> torch.Tensor:
        lr2x = resize_by(self.conv_lr4x(resize_by(lr8x, 2)), 2)
        f2x = self.conv_f2x(torch.cat((lr2x, hr2x), dim=1))
        f = self.conv_f(torch.cat((resize_by(f2x, 2), img), dim=1))
        return torch.sigmoid(f)


class MODNet(nn.Module):
    """MODNet with a MobileNetV2 backbone. Input: RGB scaled to [-1, 1], height and width multiples of 32."""

    def __init__(self, in_channels: int = 3, hr_channels: int = HR_CHANNELS):
        super().__init__()
        # The official model registers the same backbone twice (here and inside lr_branch), so its checkpoints
        # carry both key sets; loading assigns ``backbone.*`` first and then ``lr_branch.backbone.*``, exactly as
        # the official model does, because the registration order is the same.
        self.backbone = MobileNetV2Backbone(in_channels)
        self.lr_branch = LRBranch(self.backbone)
        self.hr_branch = HRBranch(hr_channels, self.backbone.enc_channels)
        self.f_branch = FusionBranch(hr_channels, self.backbone.enc_channels)

    def forward(self, img: torch.Tensor, inference: bool):
        """Returns ``(pred_semantic, pred_detail, pred_matte)``; the first two are None when ``inference``."""
        pred_semantic, lr8x, enc2x, enc4x = self.lr_branch(img, inference)
        pred_detail, hr2x = self.hr_branch(img, enc2x, enc4x, lr8x, inference)
        pred_matte = self.f_branch(img, lr8x, hr2x)
        return pred_semantic, pred_detail, pred_matte
