"""Deep guided filter refiner: the guided filter's coefficients come from a small learned 1x1 network."""

import torch
from torch import nn
from torch.nn import functional as F

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

    def forward(self, fine_src: torch.Tensor, base_src: torch.Tensor, base_fgr: torch.Tensor,
                base_pha: torch.Tensor, base_hid: torch.Tensor, semantics: Semantics, need_fgr: bool = True):
        """Without ``need_fgr`` only alpha is upsampled (the coefficients still need all four channels) and the
        returned foreground is None."""
        base_x = torch.cat([base_src, base_src.mean(1, keepdim=True)], dim=1)
        base_y = torch.cat([base_fgr, base_pha], dim=1)
        mean_x = self.box_filter(base_x)
        mean_y = self.box_filter(base_y)
        cov_xy = self.box_filter(base_x * base_y) - mean_x * mean_y
        var_x = self.box_filter(base_x * base_x) - mean_x * mean_x
        a = self.conv(torch.cat([cov_xy, var_x, base_hid], dim=1))
        b = mean_y - a * mean_x
        size = fine_src.shape[2:]
        if not need_fgr:
            a, b = a[:, 3:], b[:, 3:]
            fine_x = fine_src.mean(1, keepdim=True)
        else:
            fine_x = torch.cat([fine_src, fine_src.mean(1, keepdim=True)], dim=1)
        a = F.interpolate(a, size, mode="bilinear", align_corners=False)
        b = F.interpolate(b, size, mode="bilinear", align_corners=False)
        out = a * fine_x + b
        if not need_fgr:
            return None, out
        return out.split([3, 1], dim=1)
