"""vmatte.evaluate: reading mattes from PNG sequences and ProRes files, and scoring them against ground truth.

Inputs are written here with OpenCV (PNGs) and vmatte's own ProRes writer; expected values come from numpy
on the arrays that were written, never from the code under test.
"""

import csv

import av
import cv2
import numpy as np
import pytest

from vmatte.errors import VmatteError
from vmatte.evaluate import evaluate, format_summary, read_alpha_sequence
from vmatte.io import open_writer, probe
from vmatte.metrics import METRIC_NAMES

FRAMES = 5
PEAK16 = 65535


def write_pngs(folder, frames):
    """Write integer arrays as 000000.png, ... (uint16 -> 16-bit, uint8 -> 8-bit; HxWx3/4 in OpenCV's BGR(A))."""
    folder.mkdir(parents=True)
    for index, frame in enumerate(frames):
        assert cv2.imwrite(str(folder / f"{index:06d}.png"), frame)
    return folder


def synthetic_gt(height=48, width=64, frames=FRAMES):
    """16-bit codes in [0, 0.8 * PEAK16]: a ramp with a soft disc that moves one pixel right per frame."""
    y, x = np.mgrid[:height, :width]
    result = []
    for index in range(frames):
        disc = np.clip(1.0 - np.hypot(x - 20 - index, y - 24) / 12.0, 0.0, 1.0)
        matte = 0.8 * np.maximum(x / (width - 1) * 0.5, disc)
        result.append(np.rint(matte * PEAK16).astype(np.uint16))
    return result


@pytest.fixture(scope="module")
def real_gt(samples_dir):
    """A real portrait matte (8-bit, 162x108) shifted 4 px right per frame, as GT frames."""
    alpha = cv2.imread(str(samples_dir / "image_alpha_pseudogt_p3m" / "p_015cd10e.alpha.png"), cv2.IMREAD_GRAYSCALE)
    alpha = cv2.resize(alpha, (alpha.shape[1] // 10, alpha.shape[0] // 10), interpolation=cv2.INTER_AREA)
    return [np.roll(alpha, 4 * index, axis=1) for index in range(FRAMES)]


def perturbed(gt8, seed=0):
    """A plausible prediction for 8-bit GT frames: blurred, noisy, with a spurious blob; 16-bit codes."""
    rng = np.random.default_rng(seed)
    result = []
    for frame in gt8:
        pred = cv2.GaussianBlur(frame.astype(np.float64) / 255, (5, 5), 1.5)
        pred += rng.normal(0, 0.03, pred.shape)
        pred[5:20, 5:25] += 0.4
        result.append(np.rint(np.clip(pred, 0, 1) * PEAK16).astype(np.uint16))
    return result


# --- reading ---------------------------------------------------------------------------------------------


def test_16_bit_grey_pngs_read_exactly(tmp_path):
    gt = synthetic_gt()
    mattes = list(read_alpha_sequence(write_pngs(tmp_path / "gt", gt)))
    assert len(mattes) == FRAMES
    for matte, codes in zip(mattes, gt):
        assert matte.dtype == np.float32 and matte.shape == codes.shape
        np.testing.assert_allclose(matte, codes / PEAK16, atol=1e-7)


def test_rgba_uses_alpha_and_rgb_uses_the_first_channel(tmp_path):
    matte = synthetic_gt(frames=1)[0]
    junk = np.full_like(matte, 12345)
    # OpenCV writes BGR(A): the colour channels hold unrelated values so reading the wrong one fails.
    rgba = np.dstack([junk, junk // 2, junk // 3, matte])
    rgb = np.dstack([junk, junk // 2, matte])  # red (the first channel of the file) is the matte
    pattern = write_pngs(tmp_path / "rgba", [rgba]) / "%06d.png"
    (from_rgba,) = read_alpha_sequence(pattern)
    (from_rgb,) = read_alpha_sequence(write_pngs(tmp_path / "rgb", [rgb]))
    np.testing.assert_allclose(from_rgba, matte / PEAK16, atol=1e-7)
    np.testing.assert_allclose(from_rgb, matte / PEAK16, atol=1e-7)


def test_8_bit_grey_pngs_read_as_value_over_255(tmp_path, real_gt):
    mattes = list(read_alpha_sequence(write_pngs(tmp_path / "gt", real_gt)))
    np.testing.assert_allclose(mattes[2], real_gt[2] / 255, atol=1e-7)


@pytest.mark.parametrize("kind", ["alpha", "fgr", "comp"])
def test_prores_reads_back_the_written_matte(tmp_path, real_gt, kind):
    """vmatte's matte and fgr .mov files carry the matte in their alpha plane (lossless); an opaque grey
    picture (here a comp .mov of the matte itself) is read from its limited-range luma."""
    info = probe(write_pngs(tmp_path / "gt", real_gt))
    rng = np.random.default_rng(1)
    path = tmp_path / f"{kind}.mov"
    with open_writer(kind, path, info) as writer:
        for index, frame in enumerate(real_gt):
            alpha = (frame / 255).astype(np.float32)[..., None]
            # A colour picture unrelated to the matte, so reading luma instead of alpha would fail.
            rgb = rng.uniform(0.2, 0.9, (*frame.shape, 3)).astype(np.float32)
            image = {"alpha": alpha, "fgr": np.concatenate([rgb, alpha], axis=-1), "comp": np.repeat(alpha, 3, -1)}
            writer.write(image[kind], index)
    with av.open(str(path)) as container:
        decoded = list(container.decode(video=0))
    assert decoded[0].format.name.startswith("yuv444p" if kind == "comp" else "yuva444p")  # the case under test
    mattes = list(read_alpha_sequence(path))
    assert len(mattes) == FRAMES
    for matte, frame, picture in zip(mattes, real_gt, decoded):
        assert matte.dtype == np.float32 and matte.shape == frame.shape
        assert matte.min() >= 0 and matte.max() <= 1
        error = np.abs(matte - frame / 255)
        if kind != "comp":  # ProRes codes alpha losslessly: only the 10-bit rounding (and 10 -> 12 bits) is left
            assert error.max() <= 2 / 1023
        else:
            # Luma is DCT-coded, so sharp matte edges pick up a few codes of error; the rest is 10-bit rounding.
            assert np.percentile(error, 99) <= 2 / 1023 and error.max() <= 5 / 1023
            # Exactly the limited-range reading of the decoded luma, whatever depth the decoder gave it.
            plane = picture.planes[0]
            bits = picture.format.components[0].bits
            luma = np.frombuffer(plane, np.uint16).reshape(plane.height, -1)[:, : plane.width].astype(np.float64)
            k = 2 ** (bits - 8)
            np.testing.assert_allclose(matte, np.clip((luma - 16 * k) / (219 * k), 0, 1), atol=1e-6)
    # Scoring the .mov against the PNGs it was made from only sees 10-bit rounding.
    rows, summary = evaluate(path, tmp_path / "gt")
    assert len(rows) == FRAMES and summary["mad"] < 1.0


def test_vp9_alpha_is_rejected_with_a_reason(tmp_path):
    path = tmp_path / "alpha.webm"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libvpx-vp9", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuva420p"
        for index in range(2):
            frame = av.VideoFrame(32, 32, "yuva420p")
            for plane in frame.planes:
                np.frombuffer(plane, np.uint8)[:] = 100
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(VmatteError, match="VP9 alpha is not supported.*native decoder"):
        read_alpha_sequence(path)


def test_an_image_of_another_size_mid_sequence_is_an_error(tmp_path):
    frames = synthetic_gt(frames=3)
    frames[1] = frames[1][:, :60]
    with pytest.raises(VmatteError, match="000001.png: 60x48.*64x48"):
        list(read_alpha_sequence(write_pngs(tmp_path / "gt", frames)))


# --- scoring ---------------------------------------------------------------------------------------------


def test_identical_sequences_score_zero(tmp_path):
    gt = synthetic_gt()
    rows, summary = evaluate(write_pngs(tmp_path / "pred", gt), write_pngs(tmp_path / "gt", gt))
    assert [row["frame"] for row in rows] == list(range(FRAMES))
    assert all(row[name] == 0.0 for row in rows for name in METRIC_NAMES)
    assert summary == {"frames": FRAMES, **{name: 0.0 for name in METRIC_NAMES}}


def test_constant_offset_gives_exact_mad_and_mse(tmp_path):
    gt = synthetic_gt()
    offset = PEAK16 // 5  # 13107 codes: exactly 0.2, and gt + offset stays within 16 bits
    pred = [codes + offset for codes in gt]
    rows, summary = evaluate(write_pngs(tmp_path / "pred", pred), write_pngs(tmp_path / "gt", gt))
    for row in rows:
        assert row["mad"] == pytest.approx(200.0, rel=1e-5)
        assert row["mse"] == pytest.approx(40.0, rel=1e-5)
        assert row["dtssd"] == pytest.approx(0.0, abs=1e-3)  # both change the same way between frames
    assert summary["mad"] == pytest.approx(200.0, rel=1e-5)


def test_real_matte_scores_match_numpy(tmp_path, real_gt):
    pred = perturbed(real_gt)
    rows, summary = evaluate(write_pngs(tmp_path / "pred", pred), write_pngs(tmp_path / "gt", real_gt))
    pred_f = [codes / PEAK16 for codes in pred]
    gt_f = [codes / 255 for codes in real_gt]
    expected_mad = [np.abs(p - g).mean() * 1e3 for p, g in zip(pred_f, gt_f)]
    expected_mse = [((p - g) ** 2).mean() * 1e3 for p, g in zip(pred_f, gt_f)]
    expected_dtssd = [0.0] + [
        np.sqrt((((pred_f[i] - pred_f[i - 1]) - (gt_f[i] - gt_f[i - 1])) ** 2).mean()) * 1e2
        for i in range(1, FRAMES)
    ]
    assert [row["mad"] for row in rows] == pytest.approx(expected_mad, rel=1e-5)
    assert [row["mse"] for row in rows] == pytest.approx(expected_mse, rel=1e-5)
    assert [row["dtssd"] for row in rows] == pytest.approx(expected_dtssd, rel=1e-4)
    assert min(expected_mad) > 10  # the perturbation is real, so the check above is not 0 == 0
    assert summary["mad"] == pytest.approx(np.mean(expected_mad), rel=1e-5)
    assert all(row["grad"] > 0 and row["conn"] > 0 for row in rows)


def test_mismatched_frame_counts_name_both_inputs(tmp_path):
    gt = synthetic_gt()
    pred_dir = write_pngs(tmp_path / "pred", gt[:3])
    gt_dir = write_pngs(tmp_path / "gt", gt)
    with pytest.raises(VmatteError) as failure:
        evaluate(pred_dir, gt_dir)
    message = str(failure.value)
    assert str(pred_dir) in message and str(gt_dir) in message
    assert "3 frames of 64x48" in message and "5 frames of 64x48" in message and "frame counts differ" in message


def test_mismatched_frame_sizes_name_both_sizes(tmp_path):
    pred_dir = write_pngs(tmp_path / "pred", synthetic_gt(height=40))
    gt_dir = write_pngs(tmp_path / "gt", synthetic_gt())
    with pytest.raises(VmatteError, match=r"5 frames of 64x40\).*5 frames of 64x48\).*frame sizes differ"):
        evaluate(pred_dir, gt_dir)


def test_csv_and_plot_are_written(tmp_path, real_gt):
    csv_path, plot_path = tmp_path / "report" / "metrics.csv", tmp_path / "plot.png"
    rows, _ = evaluate(write_pngs(tmp_path / "pred", perturbed(real_gt)), write_pngs(tmp_path / "gt", real_gt),
                       csv_path=csv_path, plot_path=plot_path)
    with csv_path.open(newline="") as file:
        table = list(csv.reader(file))
    assert table[0] == ["frame", *METRIC_NAMES]
    assert len(table) == 1 + FRAMES
    for line, row in zip(table[1:], rows):
        assert int(line[0]) == row["frame"]
        assert [float(value) for value in line[1:]] == pytest.approx([row[name] for name in METRIC_NAMES])
    plot = cv2.imread(str(plot_path))
    assert plot is not None and plot.shape == (480, 960, 3)  # two 240-px panels: MAD and dtSSD
    assert (plot < 255).any()


def test_format_summary_is_an_aligned_table():
    summary = {"frames": 12, "mad": 12.3456789, "mse": 0.5, "grad": 1234.5, "conn": 3.0, "dtssd": 0.25}
    lines = format_summary(summary).splitlines()
    assert lines[0].split() == ["metric", "mean", "scale"]
    assert [line.split()[:2] for line in lines[1:6]] == [
        ["MAD", "12.3457"], ["MSE", "0.5000"], ["Grad", "1234.5000"], ["Conn", "3.0000"], ["dtSSD", "0.2500"]]
    assert lines[-1].split() == ["frames", "12"]
    # Right-aligned numbers: every value ends in the same column.
    ends = {line.index(line.split()[1]) + len(line.split()[1]) for line in lines}
    assert len(ends) == 1
