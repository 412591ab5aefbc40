"""Fast guided filter refiner (no weights): upsamples the low-resolution prediction guided by the full frame."""

import torch
from torch import nn
from torch.nn import functional as F

from .semantics import Semantics

EPS = 1e-5


def _box3(x: torch.Tensor, valid: bool) -> torch.Tensor:
    """3x3 mean; ``valid`` (TF.js) leaves the borders out, otherwise zeros pad them (PyTorch). Average
    pooling computes the same as the official two separable 1/3-tap convolutions, several times faster
    than depthwise convolutions on four channels."""
    if valid:
        return F.avg_pool2d(x, 3, stride=1)
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=True)


class FastGuidedFilterRefiner(nn.Module):
    def forward(self, base_src: torch.Tensor, base_fgr: torch.Tensor, base_pha: torch.Tensor,
                base_hid: torch.Tensor, semantics: Semantics, need_fgr: bool = True):
        """Low-resolution guided-filter coefficients (A, b): output = A * guide + b at full resolution.

        Each channel is guided by its own: the foreground residual by RGB, alpha by grey (the channel mean).
        Without ``need_fgr`` only alpha's coefficients are computed.
        """
        gray = base_src.mean(1, keepdim=True)
        if need_fgr:
            lr_x, lr_y = torch.cat([base_src, gray], dim=1), torch.cat([base_fgr, base_pha], dim=1)
        else:
            lr_x, lr_y = gray, base_pha
        valid = semantics.valid_box_filter
        mean_x = _box3(lr_x, valid)
        mean_y = _box3(lr_y, valid)
        cov_xy = _box3(lr_x * lr_y, valid) - mean_x * mean_y
        if valid:  # the graph's evaluation order
            var_x_eps = _box3(lr_x * lr_x, valid) + (EPS - mean_x * mean_x)
        else:
            var_x_eps = _box3(lr_x * lr_x, valid) - mean_x * mean_x + EPS
        a = cov_xy / var_x_eps
        return a, mean_y - a * mean_x
