"""Deep guided filter refiner: the guided filter's coefficients come from a small learned 1x1 network."""

import torch
from torch import nn

from .semantics import Semantics


class DeepGuidedFilterRefiner(nn.Module):
    def __init__(self, hid_channels: int = 16):
        super().__init__()
        self.box_filter = nn.Conv2d(4, 4, kernel_size=3, padding=1, bias=False, groups=4)
        self.conv = nn.Sequential(
            nn.Conv2d(4 * 2 + hid_channels, hid_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(hid_channels),
            nn.ReLU(True),
            nn.Conv2d(hid_channels, hid_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(hid_channels),
            nn.ReLU(True),
            nn.Conv2d(hid_channels, 4, kernel_size=1, bias=True),
        )

    def forward(self, base_src: torch.Tensor, base_fgr: torch.Tensor, base_pha: torch.Tensor,
                base_hid: torch.Tensor, semantics: Semantics, need_fgr: bool = True):
        """Low-resolution coefficients (A, b) with output = A * guide + b at full resolution; the guide is RGB
        for the foreground residual and grey for alpha. The coefficients need all four channels; without
        ``need_fgr`` only alpha's are returned."""
        base_x = torch.cat([base_src, base_src.mean(1, keepdim=True)], dim=1)
        base_y = torch.cat([base_fgr, base_pha], dim=1)
        mean_x = self.box_filter(base_x)
        mean_y = self.box_filter(base_y)
        cov_xy = self.box_filter(base_x * base_y) - mean_x * mean_y
        var_x = self.box_filter(base_x * base_x) - mean_x * mean_x
        a = self.conv(torch.cat([cov_xy, var_x, base_hid], dim=1))
        b = mean_y - a * mean_x
        return (a, b) if need_fgr else (a[:, 3:], b[:, 3:])
