"""The two numerical semantics RVM runs under.

The official TF.js export does three things differently from the official PyTorch code (measured in
``shared/golden/README.md``): quantised normalisation constants, the resize size rule, and an unpadded box
filter in the fast guided filter. The official ONNX export does one: it refines at ratio 1 too. Each weight
format is reproduced exactly under its own semantics.
"""

from dataclasses import dataclass, replace

import torch
from torch.nn import functional as F


@dataclass(frozen=True)
class Semantics:
    name: str
    mean: tuple[float, float, float]
    # The TF.js graph multiplies by a stored reciprocal of std; PyTorch divides by std. Kept as each does it.
    std: tuple[float, float, float] | None
    inv_std: tuple[float, float, float] | None
    tf_resize: bool
    valid_box_filter: bool
    # The ONNX export runs the refiner at every ratio, 1 included (its ratio is an input, not a branch);
    # the PyTorch code skips it at ratio 1.
    refine_at_ratio_one: bool = False

    def refines(self, ratio: float) -> bool:
        return ratio != 1 or self.refine_at_ratio_one

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.new_tensor(self.mean).view(1, 3, 1, 1)
        if self.inv_std is not None:
            return (x - mean) * x.new_tensor(self.inv_std).view(1, 3, 1, 1)
        return (x - mean) / x.new_tensor(self.std).view(1, 3, 1, 1)

    def downsampled_size(self, height: int, width: int, ratio: float) -> tuple[int, int]:
        if self.tf_resize:  # int(float32(H) * float32(r)): truncation in single precision
            r = torch.tensor(ratio, dtype=torch.float32)
            return (int(torch.tensor(float(height)) * r), int(torch.tensor(float(width)) * r))
        return int(height * ratio), int(width * ratio)

    def downsample(self, x: torch.Tensor, ratio: float) -> torch.Tensor:
        if self.tf_resize:  # sampling scale = input / output size
            size = self.downsampled_size(x.shape[2], x.shape[3], ratio)
            return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        # PyTorch keeps the given factor for sampling (scale 1/ratio) and floors the size.
        return F.interpolate(x, scale_factor=ratio, mode="bilinear", align_corners=False,
                             recompute_scale_factor=False)


TORCH = Semantics("torch", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), inv_std=None,
                  tf_resize=False, valid_box_filter=False)

# The official ONNX release: the PyTorch code's numerics as exported, so it is "torch" to the user (weights in
# this format run under it when torch semantics is asked for); only the refiner at ratio 1 differs.
ONNX_EXPORT = replace(TORCH, refine_at_ratio_one=True)


def tfjs_semantics(mean: tuple[float, float, float], inv_std: tuple[float, float, float]) -> Semantics:
    """TF.js semantics with the constants stored in the export (see ``tfjs.py``)."""
    return Semantics("tfjs", mean=mean, std=None, inv_std=inv_std, tf_resize=True, valid_box_filter=True)


# The constants the official TF.js export stores (uint8 copies of the ImageNet values); used when
# TF.js semantics is asked for with weights that do not carry their own.
TFJS = tfjs_semantics((0.48500001, 0.45587844, 0.40599999), (4.36681223, 4.46428537, 4.44440842))

BY_NAME = {"torch": TORCH, "tfjs": TFJS}  # keys: settings.SEMANTICS_NAMES
