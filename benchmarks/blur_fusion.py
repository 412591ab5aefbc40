"""Foreground colour from the matte and the picture: blur-fusion estimation.

RVM predicts the foreground itself, but at soft edges (hair, motion blur) its colours keep some of the
background (halos). Given a good matte, the picture already fixes the foreground: I = a*F + (1-a)*B. Blur
fusion (Forte and Pitie, "Approximate Fast Foreground Colour Estimation", ICIP 2021) estimates F and B as
alpha-weighted local means of themselves, then moves both along the compositing equation so that they
explain I exactly where the matte is soft. Two rounds: a wide window first (colours from far inside the
person and the background, starting from F = B = I), then a narrow one (local detail). Each round is a few
box filters, so the cost does not depend on the window size.

Measured on ``benchmarks/quality.py`` ("BF edge" against "Fgr edge"), it is further from the true foreground at
soft edges than RVM's own foreground under RVM's mattes, so no quality level uses it; the benchmark keeps
measuring it (README, "Quality settings").
"""

import cv2
import numpy as np

ROUNDS = (90, 6)  # box-filter radii in pixels, wide then narrow (the paper's values)
EPSILON = 1e-5  # keeps the weighted means finite where a window holds no foreground (or no background)


def _box(image: np.ndarray, radius: int) -> np.ndarray:
    size = 2 * radius + 1
    return cv2.blur(image, (size, size), borderType=cv2.BORDER_REFLECT)


def _fuse(image: np.ndarray, alpha: np.ndarray, foreground: np.ndarray, background: np.ndarray,
          radius: int) -> tuple[np.ndarray, np.ndarray]:
    a = alpha[..., None]
    blurred_alpha = _box(alpha, radius)[..., None]
    mean_fg = _box(foreground * a, radius) / (blurred_alpha + EPSILON)
    mean_bg = _box(background * (1 - a), radius) / (1 - blurred_alpha + EPSILON)
    residual = image - a * mean_fg - (1 - a) * mean_bg  # what the two means fail to explain of the picture
    foreground = np.clip(mean_fg + a * residual, 0, 1)
    background = np.clip(mean_bg + (1 - a) * residual, 0, 1)
    return foreground, background


def estimate_foreground(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Straight foreground colours (HxWx3 float32 in [0, 1]) of ``image`` (HxWx3 float32 in [0, 1]) under
    ``alpha`` (HxW float32 in [0, 1])."""
    image = np.ascontiguousarray(image, dtype=np.float32)
    alpha = np.ascontiguousarray(alpha, dtype=np.float32)
    foreground, background = image, image
    for radius in ROUNDS:
        foreground, background = _fuse(image, alpha, foreground, background, radius)
    return foreground
