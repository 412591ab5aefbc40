"""Matting metrics: hand-made cases with known answers, and a real matte moving across frames."""

import cv2
import numpy as np
import pytest

from vmatte.errors import VmatteError
from vmatte.metrics import METRIC_NAMES, conn, dtssd, evaluate_sequences, grad, mad, mse, plot_per_frame


@pytest.fixture(scope="module")
def portrait_alpha(samples_dir) -> np.ndarray:
    alpha = cv2.imread(str(samples_dir / "image_alpha_pseudogt_p3m" / "p_015cd10e.alpha.png"), cv2.IMREAD_GRAYSCALE)
    return cv2.resize(alpha, (alpha.shape[1] // 6, alpha.shape[0] // 6), interpolation=cv2.INTER_AREA)


def test_constant_offset_gives_exact_mad_and_mse():
    gt = np.linspace(0, 0.75, 64 * 48).reshape(48, 64)
    assert mad(gt + 0.25, gt) == pytest.approx(250.0)
    assert mse(gt + 0.25, gt) == pytest.approx(62.5)
    assert mad(gt - 0.25, gt) == pytest.approx(250.0)


def test_uint8_and_channel_axis_are_accepted():
    gt = np.zeros((1, 8, 8), np.uint8)
    pred = np.full((8, 8, 1), 51, np.uint8)  # 51 / 255 = 0.2
    assert mad(pred, gt) == pytest.approx(200.0)


def test_grad_of_a_step_edge_matches_the_gaussian_derivative_response():
    height, width, edge = 24, 40, 20
    gt = np.zeros((height, width))
    gt[:, edge:] = 1.0
    pred = np.zeros_like(gt)  # a flat prediction has no gradient at all
    # Along a row, the x-response of the separable kernel g(y) * g'(x) (unit L2 norm, sigma 1.4, 9 taps) to a
    # 0 -> 1 step is sum(g) * sum of g' over the taps that fall on the 1 side; the y-response is 0.
    sigma, offsets = 1.4, np.arange(-4, 5)
    gaussian = np.exp(-offsets ** 2 / (2 * sigma ** 2)) / (sigma * np.sqrt(2 * np.pi))
    derivative = -offsets * gaussian / sigma ** 2
    norm = np.sqrt((np.outer(gaussian, derivative) ** 2).sum())
    response = [gaussian.sum() * derivative[x + offsets >= edge].sum() / norm for x in range(width)]
    expected = height * np.sum(np.square(response)) / 1e3
    assert grad(pred, gt) == pytest.approx(expected, rel=1e-12)
    assert grad(pred, gt) == pytest.approx(grad(gt, pred), rel=1e-12)
    # the gradient magnitude ignores the edge's direction, and each matte is min-max normalised first
    assert grad(1 - gt, gt) == pytest.approx(0.0, abs=1e-12)
    assert grad(0.5 * gt, gt) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("pred, gt, expected", [
    # Pixel 1 leaves the largest connected region above level 0.5, so its connected level is 0.5: gt's distance
    # 0.5 counts (phi 0.5), pred's 0 does not (phi 1). Error 0.5.
    ([[1.0, 0.5, 0.0, 0.0]], [[1.0, 1.0, 0.0, 0.0]], 0.5),
    # Pixel 0 is cut off from the larger region {2, 3} already at level 0.1: connected level 0, so gt's
    # distance 1 gives phi 0 and pred's 0.2 gives phi 0.8. Error 0.8.
    ([[0.2, 0.0, 1.0, 1.0]], [[1.0, 0.0, 1.0, 1.0]], 0.8),
    # As above but pred's distance 0.1 is under the 0.15 cut: phi 1. Error 1.
    ([[0.1, 0.0, 1.0, 1.0]], [[1.0, 0.0, 1.0, 1.0]], 1.0),
    # 8-bit 153 / 255 is exactly 0.6, so it still reaches level 0.6: connected level 0.6 for pixel 1, where gt's
    # distance 0.4 gives phi 0.6. Error 0.4.
    ([[1.0, 0.6, 0.0]], [[1.0, 1.0, 0.0]], 0.4),
])
def test_conn_small_cases_by_hand(pred, gt, expected):
    assert conn(np.array(pred), np.array(gt)) == pytest.approx(expected / 1e3, abs=1e-15)


def test_conn_on_8bit_levels_matches_the_exact_level():
    pred = np.array([[255, 153, 0]], np.uint8)
    gt = np.array([[255, 255, 0]], np.uint8)
    assert conn(pred, gt) == pytest.approx(0.4 / 1e3, abs=1e-15)


def test_dtssd_known_temporal_change():
    gt = np.full((10, 10), 0.5)
    # gt is static while pred brightens by 0.1 everywhere: sqrt(mean(0.1^2)) * 1e2 = 10
    assert dtssd(gt + 0.1, gt, gt, gt) == pytest.approx(10.0)
    # a prediction that follows the ground truth's change, even with a constant error, is temporally perfect
    assert dtssd(gt + 0.3, gt + 0.1, gt + 0.2, gt) == pytest.approx(0.0, abs=1e-12)
    # a change on a quarter of the pixels: sqrt(0.25 * 0.4^2) * 1e2 = 20
    pred = gt.copy()
    pred[:5, :5] += 0.4
    assert dtssd(pred, gt, gt, gt) == pytest.approx(20.0)


def moving_sequence(alpha: np.ndarray, frames: int = 6, shift: int = 3) -> list[np.ndarray]:
    return [np.roll(alpha, shift * t, axis=1) for t in range(frames)]


def test_identical_sequences_score_zero(portrait_alpha):
    gt = moving_sequence(portrait_alpha)
    result = evaluate_sequences(gt, [frame.copy() for frame in gt])
    assert result.summary == {"frames": len(gt), **{name: 0.0 for name in METRIC_NAMES}}
    assert [row["frame"] for row in result.rows] == list(range(len(gt)))


def test_perturbed_composite_gives_the_expected_errors(portrait_alpha):
    gt = moving_sequence(portrait_alpha)
    pixels = gt[0].size
    background = np.max(gt, axis=0) == 0  # transparent in every frame
    ys, xs = np.nonzero(background)
    block = (slice(ys[0], ys[0] + 1), slice(xs[0], xs[0] + 10))
    assert background[block].all()
    veil_mask = background.copy()
    veil_mask[block] = False
    pred = [frame.copy() for frame in gt]
    for frame in pred:
        frame[block] = 255  # a fully opaque 10-pixel error in every frame, in a static place
    pred[3][veil_mask] = 51  # and a faint 0.2 veil over the rest of the background in frame 3 only
    veil = veil_mask.sum()

    result = evaluate_sequences(pred, gt, metrics=("mad", "mse", "dtssd"))
    mad_values = [row["mad"] for row in result.rows]
    expected_mad = [10 / pixels * 1e3] * len(gt)
    expected_mad[3] += 0.2 * veil / pixels * 1e3
    assert mad_values == pytest.approx(expected_mad)
    assert result.rows[3]["mse"] == pytest.approx((10 + 0.04 * veil) / pixels * 1e3)
    # the static error is temporally consistent; the veil appears at frame 3 and leaves at frame 4
    dtssd_values = [row["dtssd"] for row in result.rows]
    veil_change = np.sqrt(0.04 * veil / pixels) * 1e2
    assert dtssd_values == pytest.approx([0, 0, 0, veil_change, veil_change, 0], abs=1e-9)
    assert result.summary["mad"] == pytest.approx(np.mean(expected_mad))
    assert set(result.summary) == {"frames", "mad", "mse", "dtssd"}


def test_evaluate_sequences_rejects_mismatched_input(portrait_alpha):
    with pytest.raises(VmatteError, match="ground truth sequence ends after 1"):
        evaluate_sequences([portrait_alpha] * 2, [portrait_alpha])
    with pytest.raises(VmatteError, match="frame 0"):
        evaluate_sequences([portrait_alpha], [portrait_alpha[:-1]])
    with pytest.raises(VmatteError, match="unknown metric"):
        evaluate_sequences([portrait_alpha], [portrait_alpha], metrics=("sad",))
    with pytest.raises(VmatteError, match="no frames"):
        evaluate_sequences([], [])


def test_plot_per_frame_writes_a_png(portrait_alpha, tmp_path):
    gt = moving_sequence(portrait_alpha)
    pred = [np.roll(frame, 1, axis=0) for frame in gt]
    result = evaluate_sequences(pred, gt, metrics=("mad", "dtssd"))
    path = tmp_path / "per_frame.png"
    plot_per_frame(result.rows, path, width=640, panel_height=200)
    image = cv2.imread(str(path))
    assert image.shape == (400, 640, 3)
    assert (image != 255).any()
