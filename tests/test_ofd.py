"""One-frame-delay smoothing on a real matte moving steadily, with single-frame glitches added."""

import io

import cv2
import numpy as np
import pytest
import torch

from vmatte.smoothing import DEFAULT_THRESHOLD, OneFrameDelaySmoother, remove_one_frame_flicker

FRAMES = 10
SHIFT_PX = 2  # steady horizontal motion per frame
GLITCH_SIZE = 16
BLOB_FRAMES = (0, 3, FRAMES - 1)  # a spurious opaque blob in the background (first and last stay: no neighbours)
HOLE_FRAMES = (6,)  # a transparent hole inside the person


def run(smoother: OneFrameDelaySmoother, mattes, payloads):
    out = []
    for matte, payload in zip(mattes, payloads):
        out += smoother.push(matte, payload)
    return out + smoother.flush()


def window_inside(mask: np.ndarray) -> tuple[slice, slice]:
    """A GLITCH_SIZE square window lying entirely inside ``mask``."""
    kernel = np.ones((GLITCH_SIZE, GLITCH_SIZE), np.uint8)
    # erode with the anchor at the top-left corner: a surviving pixel starts a window that fits in the mask
    inside = cv2.erode(mask.astype(np.uint8), kernel, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    corners = np.argwhere(inside)
    y, x = corners[len(corners) // 2]
    return slice(y, y + GLITCH_SIZE), slice(x, x + GLITCH_SIZE)


@pytest.fixture(scope="module")
def sequences(samples_dir):
    """(clean, glitched, glitch regions per frame) for a real P3M matte moving SHIFT_PX per frame."""
    # This portrait's edges are all wider than the motion, so a correct OFD leaves the clean motion untouched.
    # (A hair strand thinner than its per-frame motion is, by OFD's own rule, indistinguishable from flicker.)
    alpha = cv2.imread(str(samples_dir / "image_alpha_pseudogt_p3m" / "p_0865636e.alpha.png"), cv2.IMREAD_GRAYSCALE)
    alpha = cv2.resize(alpha, (alpha.shape[1] // 6, alpha.shape[0] // 6), interpolation=cv2.INTER_AREA)
    alpha = alpha.astype(np.float32) / 255
    clean = [np.roll(alpha, SHIFT_PX * t, axis=1) for t in range(FRAMES)]
    background = window_inside(np.max(clean, axis=0) == 0)
    body = window_inside(np.min(clean, axis=0) == 1)
    glitched = [frame.copy() for frame in clean]
    regions = {}
    for t in BLOB_FRAMES:
        glitched[t][background] = 1.0
        regions[t] = background
    for t in HOLE_FRAMES:
        glitched[t][body] = 0.0
        regions[t] = body
    return clean, glitched, regions


def test_glitches_removed_and_steady_motion_untouched(sequences):
    clean, glitched, regions = sequences
    payloads = [{"pts": 1000 * t} for t in range(FRAMES)]
    out = run(OneFrameDelaySmoother(), glitched, payloads)

    assert len(out) == FRAMES
    assert all(payload is expected for (_, payload), expected in zip(out, payloads))
    for t, (matte, _) in enumerate(out):
        if t in (0, FRAMES - 1):
            assert matte is glitched[t], "first and last frames must pass through unchanged"
        elif t in regions:
            region = regions[t]
            assert np.abs(glitched[t][region] - clean[t][region]).max() == 1.0  # the glitch was there
            assert np.array_equal(matte[region], clean[t][region])  # and is gone
            outside = np.ones(matte.shape, bool)
            outside[region] = False
            assert np.array_equal(matte[outside], glitched[t][outside])
        else:
            assert np.array_equal(matte, glitched[t]), f"frame {t} has no glitch and must be bit-exact"


def test_torch_mattes_give_the_numpy_result(sequences):
    _, glitched, _ = sequences
    numpy_out = run(OneFrameDelaySmoother(), glitched, range(FRAMES))
    torch_out = run(OneFrameDelaySmoother(), [torch.from_numpy(m)[None] for m in glitched], range(FRAMES))
    assert [p for _, p in torch_out] == list(range(FRAMES))
    for (expected, _), (matte, _) in zip(numpy_out, torch_out):
        assert matte.shape == (1, *expected.shape)
        assert np.array_equal(matte[0].numpy(), expected)


@pytest.mark.parametrize("split", range(FRAMES + 1))
def test_resume_from_state_dict_is_bit_identical(sequences, split):
    _, glitched, _ = sequences
    payloads = [{"pts": t} for t in range(FRAMES)]
    reference = run(OneFrameDelaySmoother(), glitched, payloads)

    first = OneFrameDelaySmoother()
    out = []
    for matte, payload in zip(glitched[:split], payloads[:split]):
        out += first.push(matte, payload)
    checkpoint = io.BytesIO()  # as a resume checkpoint would store it
    torch.save(first.state_dict(), checkpoint)
    checkpoint.seek(0)
    resumed = OneFrameDelaySmoother(threshold=0.5)  # the saved threshold must win
    resumed.load_state_dict(torch.load(checkpoint, weights_only=False))
    out += run(resumed, glitched[split:], payloads[split:])

    assert [p for _, p in out] == payloads
    assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(out, reference))


def test_stream_edges():
    smoother = OneFrameDelaySmoother()
    assert smoother.flush() == []
    single = np.full((4, 4), 0.5, np.float32)
    assert smoother.push(single, "only") == []
    assert smoother.flush() == [(single, "only")]


def test_flicker_rule_on_single_pixels():
    previous = np.array([0.0, 0.0, 0.0, 0.5, 0.2], np.float32)
    current = np.array([0.9, 0.05, 0.9, 0.5, 0.9], np.float32)
    following = np.array([0.0, 0.0, 0.9, 0.0, 0.25], np.float32)
    smoothed = remove_one_frame_flicker(previous, current, following, DEFAULT_THRESHOLD)
    # 0: flicker -> neighbours' mean; 1: within threshold; 2: agrees with the next frame (motion);
    # 3: neighbours disagree; 4: flicker again.
    expected = current.copy()
    expected[[0, 4]] = ((previous + following) / 2)[[0, 4]]
    np.testing.assert_array_equal(smoothed, expected)
