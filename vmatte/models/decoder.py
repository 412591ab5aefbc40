"""RVM's recurrent decoder: ConvGRU on half the channels at 1/16, 1/8, 1/4 and 1/2, then the output block.

Tensors arrive time-flattened, (B*T, C, H, W): every non-recurrent layer runs over all T frames of a chunk at
once, and only the ConvGRU steps through time, carrying its state frame by frame.
"""

import torch
from torch import nn
from torch.nn import functional as F


class ConvGRU(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.ih = nn.Sequential(nn.Conv2d(channels * 2, channels * 2, 3, padding=1), nn.Sigmoid())
        self.hh = nn.Sequential(nn.Conv2d(channels * 2, channels, 3, padding=1), nn.Tanh())

    def step(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """One frame: the new state."""
        r, z = self.ih(torch.cat([x, h], dim=1)).split(self.channels, dim=1)
        c = self.hh(torch.cat([x, r * h], dim=1))
        return (1 - z) * h + z * c

    def forward(self, x: torch.Tensor, h: torch.Tensor | None, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        if h is None:
            h = torch.zeros_like(x[:batch])
        if x.shape[0] == batch:
            # One frame per sequence: no time loop and no writes into views (which tracers do not follow), so
            # a traced graph (OpenVINO) is plain tensor ops.
            h = self.step(x, h)
            return h, h
        frames = x.unflatten(0, (batch, -1))
        out = torch.empty_like(x)  # keeps the input's memory layout (channels-last convolutions are faster)
        steps = out.unflatten(0, (batch, -1))
        for t in range(frames.shape[1]):
            h = self.step(frames[:, t], h)
            steps[:, t] = h
        return out, h


def _upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """x2 bilinear upsampling, cropped top-left to the skip connection's size (odd sizes round up on the way down)."""
    x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
    return x[:, :, : like.shape[2], : like.shape[3]]


class BottleneckBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.gru = ConvGRU(channels // 2)

    def forward(self, x: torch.Tensor, r: torch.Tensor | None, batch: int):
        a, b = x.split(self.channels // 2, dim=1)
        b, r = self.gru(b, r, batch)
        return torch.cat([a, b], dim=1), r


class UpsamplingBlock(nn.Module):
    def __init__(self, cin: int, skip_channels: int, src_channels: int, cout: int):
        super().__init__()
        self.cout = cout
        self.conv = nn.Sequential(
            nn.Conv2d(cin + skip_channels + src_channels, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(True),
        )
        self.gru = ConvGRU(cout // 2)

    def forward(self, x, skip, src, r, batch: int):
        x = self.conv(torch.cat([_upsample_to(x, src), skip, src], dim=1))
        a, b = x.split(self.cout // 2, dim=1)
        b, r = self.gru(b, r, batch)
        return torch.cat([a, b], dim=1), r


class OutputBlock(nn.Module):
    def __init__(self, cin: int, src_channels: int, cout: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(cin + src_channels, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(True),
        )

    def forward(self, x: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([_upsample_to(x, src), src], dim=1))


class RecurrentDecoder(nn.Module):
    def __init__(self, feature_channels: tuple[int, int, int, int], decoder_channels: tuple[int, int, int, int]):
        super().__init__()
        self.avgpool = nn.AvgPool2d(2, 2, count_include_pad=False, ceil_mode=True)
        self.decode4 = BottleneckBlock(feature_channels[3])
        self.decode3 = UpsamplingBlock(feature_channels[3], feature_channels[2], 3, decoder_channels[0])
        self.decode2 = UpsamplingBlock(decoder_channels[0], feature_channels[1], 3, decoder_channels[1])
        self.decode1 = UpsamplingBlock(decoder_channels[1], feature_channels[0], 3, decoder_channels[2])
        self.decode0 = OutputBlock(decoder_channels[2], 3, decoder_channels[3])

    def forward(self, s0, f1, f2, f3, f4, state: list, batch: int):
        """Returns the hidden features at full (downsampled-input) resolution and the new state [r1, r2, r3, r4]."""
        s1 = self.avgpool(s0)
        s2 = self.avgpool(s1)
        s3 = self.avgpool(s2)
        r1, r2, r3, r4 = state
        x4, r4 = self.decode4(f4, r4, batch)
        x3, r3 = self.decode3(x4, f3, s3, r3, batch)
        x2, r2 = self.decode2(x3, f2, s2, r2, batch)
        x1, r1 = self.decode1(x2, f1, s1, r1, batch)
        return self.decode0(x1, s0), [r1, r2, r3, r4]
