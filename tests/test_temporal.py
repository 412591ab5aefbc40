"""Pre-roll, shot-cut handling and smoothing over time, on real frames with the real model."""

import numpy as np
import pytest
import torch
from backends import BACKENDS

from vmatte.backends import load_on_backend
from vmatte.io import open_source
from vmatte.settings import DEFAULT_CUT_THRESHOLD, TemporalOptions
from vmatte.temporal import Boundary, MattedFrame, MattingStream, cut_score, matte_frames, thumbnail

CLIP_A = "portrait_videos/androidx_webcam_face_640x428.mov"
CLIP_B = "portrait_videos/sam2_bedroom_child_960x540.mp4"
SIZE = (160, 107)  # small frames keep these tests fast


@pytest.fixture(scope="module", params=BACKENDS)
def engine(request, weights_dir, compiled_cache):
    """The model on each backend: pre-roll, cuts and save/restore go through the engine's state API alike."""
    engine = load_on_backend("rvm-mobilenetv3-int8", weights_dir / "rvm_mobilenetv3_tfjs_int8",
                                semantics="torch", backend=request.param, notice=lambda m: None)
    if request.param != "torch":
        engine.cache = compiled_cache
    return engine


def small_frames(path, count):
    import cv2

    with open_source(path) as source:
        frames = [cv2.resize(f.rgb, SIZE, interpolation=cv2.INTER_AREA) for _, f in zip(range(count), source.frames())]
    return frames


@pytest.fixture(scope="module")
def two_shots(samples_dir):
    """Shot A (a face at a desk) then shot B (a child in a bedroom): a hard cut at frame 12."""
    return small_frames(samples_dir / CLIP_A, 12) + small_frames(samples_dir / CLIP_B, 12)


@pytest.mark.parametrize("need_fgr", [False, True])
def test_the_state_alone_is_the_state_a_run_carries(engine, two_shots, need_fgr):
    """Pre-roll and warm-up advance the state without the mattes (no full-resolution step): the same state."""
    frames, state = frames_to_tensor_arrays(two_shots[:4]), None
    for _ in range(2):
        alone = engine.state_after(frames, state, 0.5, need_fgr)
        state = engine.run(frames, state, 0.5, need_fgr).state
        assert all(torch.equal(a, b) for a, b in zip(alone, state, strict=True))


def test_cut_score_separates_cuts_from_motion(two_shots):
    scores = [cut_score(thumbnail(a), thumbnail(b)) for a, b in zip(two_shots, two_shots[1:])]
    cut = scores.pop(11)
    assert cut > DEFAULT_CUT_THRESHOLD
    assert max(scores) < DEFAULT_CUT_THRESHOLD / 2


def manual(engine, frames, start_state=None):
    """Reference: the model over frames one chunk at a time with the state carried, nothing else."""
    state, out = start_state, []
    for i in range(0, len(frames), 4):
        batch = frames_to_tensor_arrays(frames[i : i + 4])
        result = engine.run(batch, state, 1.0, need_fgr=False)
        state = result.state
        out += list(result.pha[0, :, 0].numpy())
    return out, state


def frames_to_tensor_arrays(arrays):
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255)


def test_no_preroll_no_cuts_is_plain_recurrence(engine, two_shots):
    got = list(matte_frames(engine, two_shots, 1.0, TemporalOptions(preroll=0, cuts=False)))
    expected, _ = manual(engine, two_shots)
    assert len(got) == len(two_shots)
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


def test_preroll_starts_each_shot_with_a_built_state(engine, two_shots):
    got = list(matte_frames(engine, two_shots, 1.0, TemporalOptions(preroll=8, cuts=True)))
    assert len(got) == len(two_shots)
    # Shot A: state built over its first 8 frames, then the shot from its first frame.
    _, state_a = manual(engine, two_shots[:8])
    expected_a, _ = manual(engine, two_shots[:12], state_a)
    # Shot B: state reset at the cut, built over B's first 8 frames.
    _, state_b = manual(engine, two_shots[12:20])
    expected_b, _ = manual(engine, two_shots[12:], state_b)
    for t, (a, b) in enumerate(zip(got, expected_a + expected_b)):
        np.testing.assert_array_equal(a, b, err_msg=f"frame {t}")
    # Without cut handling, shot B starts from shot A's state and its first frame comes out differently.
    carried = list(matte_frames(engine, two_shots, 1.0, TemporalOptions(preroll=8, cuts=False)))
    assert np.abs(carried[12] - got[12]).max() > 0.01


def run_stream(engine, frames, options, boundary_every, start=0, saved=None):
    stream = MattingStream(engine, 1.0, options, chunk=4, need_fgr=True, boundary_every=boundary_every)
    if saved is not None:
        stream.restore(start, saved)
    from vmatte.io import SourceFrame

    items = []
    for i in range(start, len(frames), 3):  # chunks from the decoder need not match the model's
        batch = [SourceFrame(j, 1000 + j, 0.0, frames[j]) for j in range(i, min(i + 3, len(frames)))]
        items += stream.push(batch)
    return items + stream.finish()


@pytest.mark.parametrize("smooth", [None, "ofd"])
def test_resuming_from_any_boundary_is_exact(engine, two_shots, smooth):
    options = TemporalOptions(preroll=4, cuts=True, smooth=smooth)
    full = run_stream(engine, two_shots, options, boundary_every=8)
    frames = [i for i in full if isinstance(i, MattedFrame)]
    assert [f.index for f in frames] == list(range(len(two_shots)))
    assert [f.pts for f in frames] == [1000 + i for i in range(len(two_shots))]
    boundaries = [i for i in full if isinstance(i, Boundary)]
    assert [b.next_frame for b in boundaries] == [8, 16, 24]
    for boundary in boundaries[:2]:
        written = [f.index for f in full[: full.index(boundary)] if isinstance(f, MattedFrame)]
        resumed = [i for i in run_stream(engine, two_shots, options, 8, boundary.next_frame, boundary.saved)
                   if isinstance(i, MattedFrame)]
        assert [f.index for f in resumed] == list(range(len(written), len(two_shots)))
        for a, b in zip(resumed, frames[len(written):]):
            np.testing.assert_array_equal(a.pha, b.pha)
            np.testing.assert_array_equal(a.fgr, b.fgr)
