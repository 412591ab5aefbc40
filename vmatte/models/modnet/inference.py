"""MODNet inference with the official pre-processing (``demo/image_matting/colab/inference.py``)."""

import torch
from torch.nn import functional as F

from vmatte.errors import VmatteError

from .modnet import MODNet

REFERENCE_SIZE = 512  # the official demo's ``ref_size``: the short side the model was trained around
SIZE_MULTIPLE = 32  # the backbone's output stride


def inference_size(height: int, width: int, reference: int = REFERENCE_SIZE) -> tuple[int, int]:
    """The (height, width) the official demo feeds MODNet for a frame of the given size.

    A frame smaller than ``reference`` on both sides, or larger on both sides, is scaled so its short side is
    ``reference`` (the long side truncated); a frame straddling it keeps its size. Both sides are then
    rounded down to a multiple of 32.
    """
    if max(height, width) < reference or min(height, width) > reference:
        # Same float expressions and truncation as the official code, so the sizes agree to the pixel.
        if width >= height:
            height, width = reference, int(width / height * reference)
        else:
            height, width = int(height / width * reference), reference
    height -= height % SIZE_MULTIPLE
    width -= width % SIZE_MULTIPLE
    if height == 0 or width == 0:
        raise VmatteError(f"frame too narrow for MODNet: each side needs at least {SIZE_MULTIPLE} pixels "
                          f"after resizing, got {height}x{width}")
    return height, width


@torch.inference_mode()
def predict_matte(model: MODNet, rgb: torch.Tensor) -> torch.Tensor:
    """Alpha matte (N, 1, H, W) in [0, 1] for RGB frames ``rgb`` (N, 3, H, W) in [0, 1].

    ``rgb`` must already be on the model's device and dtype; the model should be in eval mode.
    """
    height, width = rgb.shape[-2:]
    x = (rgb - 0.5) / 0.5
    x = F.interpolate(x, size=inference_size(height, width), mode="area")
    _, _, matte = model(x, inference=True)
    return F.interpolate(matte, size=(height, width), mode="area")
