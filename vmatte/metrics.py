"""Alpha matte quality metrics, as defined by the Robust Video Matting evaluation scripts.

Definitions and scaling follow ``evaluation/evaluate_lr.py`` of PeterL1n/RobustVideoMatting, the reference
that reports all five metrics (``evaluate_hr.py`` drops Conn and skips Grad's min-max normalisation):

- MAD   mean |pred - gt| x 1e3
- MSE   mean (pred - gt)^2 x 1e3
- Grad  sum of squared differences of Gaussian-derivative gradient magnitudes (sigma 1.4), / 1e3;
        each matte is min-max normalised to [0, 1] first
- Conn  connectivity error of Rhemann et al. (CVPR 2009), threshold step 0.1, / 1e3
- dtSSD sqrt(sum(((pred_t - pred_t-1) - (gt_t - gt_t-1))^2) / pixels) x 1e2; 0 for a sequence's first frame

Mattes are float arrays in [0, 1] (uint8 is read as value / 255), HxW or with a singleton channel axis.
Everything is computed in float64; the reference works in float32, which only changes float rounding.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path

import cv2
import numpy as np

from vmatte.errors import VmatteError

METRIC_NAMES = ("mad", "mse", "grad", "conn", "dtssd")
GRAD_SIGMA = 1.4
CONN_STEP = 0.1
CONN_MIN_DIFFERENCE = 0.15  # Rhemann et al.: distances below this count as fully connected


def as_alpha(matte: np.ndarray) -> np.ndarray:
    """A matte as an HxW float64 array in [0, 1]."""
    matte = np.asarray(matte)
    if matte.ndim == 3 and 1 in (matte.shape[0], matte.shape[-1]):
        matte = matte.reshape(matte.shape[1:] if matte.shape[0] == 1 else matte.shape[:-1])
    if matte.ndim != 2:
        raise VmatteError(f"expected a single-channel matte (HxW), got an array of shape {matte.shape}")
    if matte.dtype == np.uint8:
        return matte / 255.0
    return matte.astype(np.float64)


def mad(pred: np.ndarray, gt: np.ndarray) -> float:
    return float(np.abs(as_alpha(pred) - as_alpha(gt)).mean() * 1e3)


def mse(pred: np.ndarray, gt: np.ndarray) -> float:
    return float(((as_alpha(pred) - as_alpha(gt)) ** 2).mean() * 1e3)


def gaussian_derivative_kernels(sigma: float = GRAD_SIGMA, epsilon: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    """The (x, y) first-derivative-of-Gaussian kernels of the Grad metric, each with unit L2 norm.

    The half width is where the Gaussian falls to ``epsilon`` of its peak-normalised value (9x9 for sigma 1.4).
    """
    half = np.ceil(sigma * np.sqrt(-2 * np.log(np.sqrt(2 * np.pi) * sigma * epsilon)))
    offsets = np.arange(-half, half + 1)
    gaussian = np.exp(-offsets ** 2 / (2 * sigma ** 2)) / (sigma * np.sqrt(2 * np.pi))
    derivative = -offsets * gaussian / sigma ** 2
    kernel_x = np.outer(gaussian, derivative)  # rows vary along y (smoothing), columns along x (derivative)
    kernel_x /= np.sqrt((kernel_x ** 2).sum())
    return kernel_x, kernel_x.T


def _min_max_normalised(matte: np.ndarray) -> np.ndarray:
    low, high = matte.min(), matte.max()
    if high - low <= np.finfo(np.float64).eps:  # a flat matte maps to 0, as cv2.normalize(NORM_MINMAX) does
        return np.zeros_like(matte)
    return (matte - low) / (high - low)


def _gradient_magnitude(matte: np.ndarray, kernels: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    dx, dy = (cv2.filter2D(matte, cv2.CV_64F, kernel, borderType=cv2.BORDER_REPLICATE) for kernel in kernels)
    return np.sqrt(dx ** 2 + dy ** 2)


def grad(pred: np.ndarray, gt: np.ndarray, sigma: float = GRAD_SIGMA) -> float:
    kernels = gaussian_derivative_kernels(sigma)
    pred_grad = _gradient_magnitude(_min_max_normalised(as_alpha(pred)), kernels)
    gt_grad = _gradient_magnitude(_min_max_normalised(as_alpha(gt)), kernels)
    return float(((gt_grad - pred_grad) ** 2).sum() / 1e3)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=4)
    if count <= 1:  # background only
        return np.zeros_like(mask)
    largest = 1 + np.argmax(stats[1:, cv2.CC_STAT_AREA])
    return labels == largest


def conn(pred: np.ndarray, gt: np.ndarray, step: float = CONN_STEP) -> float:
    pred, gt = as_alpha(pred), as_alpha(gt)
    # For each pixel, the highest threshold at which it still belongs to the largest 4-connected region where
    # both mattes reach the threshold; pixels connected at every level keep 1.
    # i / count rather than i * step: an 8-bit value equal to a level (153 / 255 = 0.6) then compares equal
    # instead of falling below 0.6000000000000001, which is what the float32 reference does on 8-bit input.
    count = round(1 / step)
    levels = np.arange(count + 1) / count
    connected_level = np.ones_like(gt)
    unassigned = np.ones(gt.shape, dtype=bool)
    for lower, level in zip(levels[:-1], levels[1:]):
        dropped = unassigned & ~_largest_component((gt >= level) & (pred >= level))
        connected_level[dropped] = lower
        unassigned &= ~dropped

    def degree_of_connectivity(matte: np.ndarray) -> np.ndarray:
        distance = matte - connected_level
        return 1 - distance * (distance >= CONN_MIN_DIFFERENCE)

    return float(np.abs(degree_of_connectivity(gt) - degree_of_connectivity(pred)).sum() / 1e3)


def dtssd(pred: np.ndarray, pred_previous: np.ndarray, gt: np.ndarray, gt_previous: np.ndarray) -> float:
    pred_change = as_alpha(pred) - as_alpha(pred_previous)
    gt_change = as_alpha(gt) - as_alpha(gt_previous)
    return float(np.sqrt(((pred_change - gt_change) ** 2).mean()) * 1e2)


@dataclass
class SequenceMetrics:
    rows: list[dict[str, float]]  # one per frame: {"frame": index, <metric>: value, ...}
    summary: dict[str, float]  # {"frames": count, <metric>: mean over frames, ...}


def evaluate_sequences(pred_frames: Iterable[np.ndarray], gt_frames: Iterable[np.ndarray],
                       metrics: Sequence[str] = METRIC_NAMES) -> SequenceMetrics:
    """Per-frame metrics of a predicted matte sequence against its ground truth, and their means.

    As in the RVM scripts, dtSSD is 0 for the first frame and that 0 is part of the mean.
    """
    unknown = [name for name in metrics if name not in METRIC_NAMES]
    if unknown:
        raise VmatteError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRIC_NAMES)}")
    per_frame = {"mad": mad, "mse": mse, "grad": grad, "conn": conn}
    rows = []
    previous = None
    for index, (pred, gt) in enumerate(zip_longest(pred_frames, gt_frames)):
        if pred is None or gt is None:
            shorter = "prediction" if pred is None else "ground truth"
            raise VmatteError(f"the {shorter} sequence ends after {index} frames but the other goes on")
        pred, gt = as_alpha(pred), as_alpha(gt)
        if pred.shape != gt.shape:
            raise VmatteError(f"frame {index}: prediction is {pred.shape[1]}x{pred.shape[0]} "
                              f"but ground truth is {gt.shape[1]}x{gt.shape[0]}")
        row = {"frame": index}
        for name in metrics:
            if name == "dtssd":
                row[name] = 0.0 if previous is None else dtssd(pred, previous[0], gt, previous[1])
            else:
                row[name] = per_frame[name](pred, gt)
        rows.append(row)
        previous = pred, gt
    if not rows:
        raise VmatteError("no frames to evaluate")
    summary = {"frames": len(rows), **{name: float(np.mean([row[name] for row in rows])) for name in metrics}}
    return SequenceMetrics(rows, summary)


_PLOT_SERIES = (("mad", "MAD x1e3", (200, 90, 30)), ("dtssd", "dtSSD x1e2", (40, 120, 220)))  # BGR colours


def plot_per_frame(rows: Sequence[dict[str, float]], png_path: str | Path, width: int = 960,
                   panel_height: int = 240) -> None:
    """Draws per-frame MAD and dtSSD (one panel each) into a PNG, with OpenCV only."""
    series = [(key, label, colour) for key, label, colour in _PLOT_SERIES if rows and key in rows[0]]
    if not series:
        raise VmatteError("nothing to plot: the rows carry neither MAD nor dtSSD")
    margin_left, margin_right, margin_y = 70, 20, 30
    canvas = np.full((panel_height * len(series), width, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for panel, (key, label, colour) in enumerate(series):
        values = np.array([row[key] for row in rows], dtype=np.float64)
        top, bottom = panel * panel_height + margin_y, (panel + 1) * panel_height - margin_y
        left, right = margin_left, width - margin_right
        peak = values.max() if values.max() > 0 else 1.0
        xs = left + np.arange(len(values)) * (right - left) / max(len(values) - 1, 1)
        ys = bottom - values / peak * (bottom - top)
        cv2.rectangle(canvas, (left, top), (right, bottom), (160, 160, 160), 1)
        points = np.round(np.stack([xs, ys], axis=1)).astype(np.int32)
        cv2.polylines(canvas, [points], isClosed=False, color=colour, thickness=2, lineType=cv2.LINE_AA)
        cv2.putText(canvas, f"{label}   mean {values.mean():.3f}   max {values.max():.3f}", (left, top - 8),
                    font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(canvas, f"{peak:.3g}", (4, top + 12), font, 0.4, (80, 80, 80), 1, cv2.LINE_AA)
        cv2.putText(canvas, "0", (4, bottom), font, 0.4, (80, 80, 80), 1, cv2.LINE_AA)
        cv2.putText(canvas, f"frame {len(values) - 1}", (right - 90, bottom + 18), font, 0.4, (80, 80, 80), 1,
                    cv2.LINE_AA)
    if not cv2.imwrite(str(png_path), canvas):
        raise VmatteError(f"cannot write the plot to {png_path}")
