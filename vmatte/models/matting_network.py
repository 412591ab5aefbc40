"""RVM's MattingNetwork: encoder -> LR-ASPP -> recurrent decoder -> projection -> guided-filter refiner.

The state-dict layout is exactly the official one, so the release files load with ``strict=True``. Recurrent
state is explicit: ``forward`` takes the state [r1, r2, r3, r4] (or None for a fresh start) and returns the
new one. A chunk of T frames runs every non-recurrent layer over all T at once; the output equals running
the frames one by one.
"""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .decoder import RecurrentDecoder
from .deep_guided_filter import DeepGuidedFilterRefiner
from .fast_guided_filter import FastGuidedFilterRefiner
from .lraspp import LRASPP
from .mobilenetv3 import MobileNetV3LargeEncoder
from .resnet import ResNet50Encoder
from .semantics import TORCH, Semantics

VARIANTS = {
    # variant: (encoder, ASPP channels, decoder channels)
    "mobilenetv3": (MobileNetV3LargeEncoder, 128, (80, 40, 32, 16)),
    "resnet50": (ResNet50Encoder, 256, (128, 64, 32, 16)),
}
REFINERS = {"deep_guided_filter": DeepGuidedFilterRefiner, "fast_guided_filter": FastGuidedFilterRefiner}


class Projection(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


@dataclass
class MattingOutput:
    fgr: torch.Tensor | None  # (B, T, 3, H, W) in [0, 1]; None when not asked for
    pha: torch.Tensor  # (B, T, 1, H, W) in [0, 1]
    state: list[torch.Tensor]  # [r1, r2, r3, r4] after the last frame


class MattingNetwork(nn.Module):
    def __init__(self, variant: str = "mobilenetv3", refiner: str = "deep_guided_filter",
                 semantics: Semantics = TORCH):
        super().__init__()
        encoder, aspp_channels, decoder_channels = VARIANTS[variant]
        self.variant = variant
        self.refiner_name = refiner
        self.semantics = semantics
        self.backbone = encoder()
        feature_channels = encoder.feature_channels
        self.aspp = LRASPP(feature_channels[3], aspp_channels)
        self.decoder = RecurrentDecoder((*feature_channels[:3], aspp_channels), decoder_channels)
        self.project_mat = Projection(decoder_channels[3], 4)
        # Segmentation head: part of the official layout (trained jointly), unused for matting.
        self.project_seg = Projection(decoder_channels[3], 1)
        self.refiner = REFINERS[refiner]()

    def forward(self, src: torch.Tensor, state: list | None = None, downsample_ratio: float = 1.0,
                need_fgr: bool = True) -> MattingOutput:
        """src: (B, T, 3, H, W) RGB in [0, 1]."""
        batch, frames = src.shape[:2]
        fgr, pha, state = self.frames(src.flatten(0, 1), state or [None] * 4, downsample_ratio, need_fgr, batch)
        fgr = fgr.unflatten(0, (batch, frames)) if fgr is not None else None
        return MattingOutput(fgr, pha.unflatten(0, (batch, frames)), state)

    def frames(self, fine: torch.Tensor, state: list, downsample_ratio: float, need_fgr: bool, batch: int = 1):
        """The network on time-flattened frames (B*T, 3, H, W) -> (fgr or None, pha, state)."""
        base, refine = self.working_frames(fine, downsample_ratio)
        (x, y), state = self.low_resolution(base, state, refine, need_fgr, batch)
        fgr, pha = full_resolution(x, y, fine, refine, need_fgr)
        return fgr, pha, state

    def working_frames(self, fine: torch.Tensor, downsample_ratio: float) -> tuple[torch.Tensor, bool]:
        """The frames at the working size, and whether the refiner brings the result back to full size."""
        base = self.semantics.downsample(fine, downsample_ratio) if downsample_ratio != 1 else fine
        return base, self.semantics.refines(downsample_ratio)

    def low_resolution(self, base: torch.Tensor, state: list, refine: bool, need_fgr: bool, batch: int = 1):
        """Everything at the working size, on downsampled frames: ((x, y), state), where (x, y) are the guided
        filter's coefficients (A, b) when ``refine``, else the foreground residual and alpha themselves. With
        one frame per sequence (B*T == B) this is a plain feed-forward graph of the frame and the state tensors:
        the part a compiled backend runs (``inference_openvino.py``); ``full_resolution`` does the rest."""
        f1, f2, f3, f4 = self.backbone(self.semantics.normalize(base))
        f4 = self.aspp(f4)
        hid, state = self.decoder(base, f1, f2, f3, f4, state, batch)
        fgr_residual, pha = self.project_mat(hid).split([3, 1], dim=1)
        if not refine:
            return (fgr_residual, pha), state
        # The guided filter runs in float32 whatever the network's precision: its variances come from
        # differences of nearly equal box means, and in float16 or bfloat16 that cancellation left mattes
        # wrong by up to 1.0 on edge pixels (0.1 % of pixels in fp16, 3 % in bf16, at ratio 0.5).
        return self.refiner(base.float(), fgr_residual.float(), pha.float(), hid.float(), self.semantics,
                            need_fgr), state


def full_resolution(x: torch.Tensor, y: torch.Tensor, fine: torch.Tensor, refine: bool, need_fgr: bool):
    """(fgr or None, pha) at the input's size from ``low_resolution``'s (x, y) and the full-size frames."""
    if not refine:
        return ((x + fine).clamp(0.0, 1.0) if need_fgr else None), y.clamp(0.0, 1.0)
    return _apply_coefficients(x, y, fine, need_fgr)


def _apply_coefficients(a: torch.Tensor, b: torch.Tensor, fine: torch.Tensor, need_fgr: bool):
    """The guided filter's full-resolution step, fgr = clamp(A * src + b + src) and pha = clamp(A * grey + b),
    written as few passes over full-size memory as possible: at 1080p these dominate the run time."""
    size = fine.shape[2:]
    # The channel mean as mean() sums it, (r + g) + b: the same values, 3x faster than mean() over the
    # channels-last layout frames arrive in.
    gray = (fine[:, :1].to(a.dtype) + fine[:, 1:2]).add_(fine[:, 2:3]).div_(3)
    if not need_fgr:
        ab = F.interpolate(torch.cat([a, b], dim=1), size, mode="bilinear", align_corners=False)
        return None, torch.addcmul(ab[:, 1:], ab[:, :1], gray).clamp_(0.0, 1.0)
    # The residual's "+ src" folds into A: (A + 1) * src + b. Bilinear interpolation commutes with "+ 1".
    a = torch.cat([a[:, :3] + 1, a[:, 3:]], dim=1)
    ab = F.interpolate(torch.cat([a, b], dim=1), size, mode="bilinear", align_corners=False)
    fgr = torch.addcmul(ab[:, 4:7], ab[:, :3], fine).clamp_(0.0, 1.0)
    pha = torch.addcmul(ab[:, 7:], ab[:, 3:4], gray).clamp_(0.0, 1.0)
    return fgr, pha
