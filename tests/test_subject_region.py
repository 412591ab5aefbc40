"""The region pass of --quality best: the window follows the subject like a camera, is kept exactly in any
precision a state is saved in, and its result is pasted back where it belongs, through the ensemble engine and
a stream saved and resumed mid-shot."""

import numpy as np
import pytest
import torch
from test_ensemble import StandIn

from vmatte.ensemble import EnsembleEngine
from vmatte.io import SourceFrame
from vmatte.settings import Ensemble, Pass, TemporalOptions
from vmatte.subject_region import FRAME_SHAPE, Window, crop, follow, paste, subject_box, working_size
from vmatte.temporal import Boundary, MattedFrame, MattingStream

WIDTH, HEIGHT = 320, 180


def person(x0: int, y0: int, x1: int, y1: int, frames: int = 2) -> torch.Tensor:
    """Mattes (T, 1, H, W) with a solid subject in the box."""
    mattes = torch.zeros(frames, 1, HEIGHT, WIDTH)
    mattes[..., y0:y1, x0:x1] = 1
    return mattes


def holds(window: Window, box: tuple) -> bool:
    x0, y0, x1, y1 = window.bounds(WIDTH, HEIGHT)
    return x0 <= box[0] and y0 <= box[1] and x1 >= box[2] and y1 >= box[3]


def test_subject_box_and_a_first_window_around_a_small_subject():
    mattes = person(40, 60, 80, 140)
    assert subject_box(mattes) == (40, 60, 80, 140)
    assert subject_box(torch.zeros(1, 1, HEIGHT, WIDTH)) is None
    window = follow(None, mattes, zoom=2)
    assert holds(window, (40, 60, 80, 140))
    x0, y0, x1, y1 = window.bounds(WIDTH, HEIGHT)
    assert x1 - x0 < WIDTH / 1.5 and window.shape != FRAME_SHAPE  # a tall subject: a narrow window, enlarged
    # Enlarged to as many pixels as the frame has, in the window's own shape.
    width, height = working_size(window.aspect, WIDTH, HEIGHT)
    assert abs(width * height - WIDTH * HEIGHT) < 0.02 * WIDTH * HEIGHT
    assert abs(width / height - window.aspect) < 0.02


def test_window_magnifies_at_most_zoom_times():
    tiny = follow(None, person(150, 80, 154, 84), zoom=2)
    width, height = working_size(tiny.aspect, WIDTH, HEIGHT)
    x0, y0, x1, y1 = tiny.bounds(WIDTH, HEIGHT)
    assert height / (y1 - y0) == pytest.approx(2, rel=0.05)


def test_window_follows_smoothly_grows_at_once_and_shrinks_slowly():
    window = follow(None, person(40, 60, 80, 140), zoom=2)
    moved = follow(window, person(120, 60, 160, 140), zoom=2)
    assert holds(moved, (120, 60, 160, 140))  # never loses the subject
    assert window.centre_x < moved.centre_x < 140  # but moves only part of the way
    grown = follow(moved, person(100, 40, 160, 140), zoom=2)
    assert holds(grown, (100, 40, 160, 140)) and grown.shape == window.shape  # the shape holds for the shot
    shrunk = follow(grown, person(120, 60, 160, 140), zoom=2)
    assert moved.height < shrunk.height < grown.height


def test_no_subject_keeps_the_window_or_takes_the_whole_frame():
    empty = torch.zeros(2, 1, HEIGHT, WIDTH)
    first = follow(None, empty, zoom=2)
    assert first.bounds(WIDTH, HEIGHT) == (0, 0, WIDTH, HEIGHT) and first.shape == FRAME_SHAPE
    window = follow(None, person(40, 60, 80, 140), zoom=2)
    assert follow(window, empty, zoom=2) == window


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_window_survives_the_state_precisions(dtype):
    window = follow(None, person(37, 61, 83, 139), zoom=2)
    saved = window.as_tensor(WIDTH, HEIGHT).to(dtype).float()
    assert Window.from_tensor(saved, WIDTH, HEIGHT) == window


def test_crop_and_paste_round_trip():
    frames = torch.rand(2, 3, HEIGHT, WIDTH)
    window = follow(None, person(100, 40, 150, 150), zoom=2)
    picture = crop(frames, window)
    assert picture.shape[-2:] == working_size(window.aspect, WIDTH, HEIGHT)[::-1]
    whole = torch.zeros(1, 2, 1, HEIGHT, WIDTH)
    pasted = paste(whole, torch.ones(1, 2, 1, *picture.shape[-2:]), window)
    x0, y0, x1, y1 = window.bounds(WIDTH, HEIGHT)
    assert pasted[..., :, :x0].abs().max() == 0 and pasted[..., :, x1:].abs().max() == 0  # outside: untouched
    assert pasted[..., (y0 + y1) // 2, (x0 + x1) // 2].min() == 1  # inside: the region's
    assert 0 < pasted[..., (y0 + y1) // 2, x0].max() < 1  # a side inside the frame: feathered
    # The whole frame as the window: its result as it is.
    everything = follow(None, torch.zeros(1, 1, HEIGHT, WIDTH), zoom=2)
    assert torch.equal(crop(frames, everything), frames)
    assert torch.equal(paste(whole, torch.ones(1, 2, 1, HEIGHT, WIDTH), everything), torch.ones_like(whole))


def subject_frames(count: int) -> list[SourceFrame]:
    """A bright square walking across a dark frame: the stand-in's alpha follows the red channel."""
    frames = []
    for index in range(count):
        rgb = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        x = 30 + 15 * index
        rgb[70:130, x:x + 30] = 255
        frames.append(SourceFrame(index, index, 0.0, rgb))
    return frames


def test_region_pass_state_carries_its_window_and_resumes_exactly():
    ensemble = Ensemble((Pass(), Pass(mirror=True), Pass(zoom=2)), "median")
    options = TemporalOptions(preroll=2, cuts=False)
    frames = subject_frames(8)

    def stream():
        engine = EnsembleEngine(StandIn(gain=1.0, slope=0.05), ensemble)
        return MattingStream(engine, 1.0, options, chunk=2, boundary_every=4)

    whole = stream()
    expected = [m for m in whole.push(frames) + whole.finish() if isinstance(m, MattedFrame)]
    assert len(whole.state) == 3 * 2 + 1  # three passes' two tensors, then the region pass's window
    window = Window.from_tensor(whole.state[-1], WIDTH, HEIGHT)
    assert window.centre_x > 100 and window.bounds(WIDTH, HEIGHT)[2] - window.bounds(WIDTH, HEIGHT)[0] < WIDTH
    first = stream()
    boundary = next(m for m in first.push(frames[:4]) if isinstance(m, Boundary))
    resumed = stream()
    resumed.restore(boundary.next_frame, boundary.saved)
    rest = [m for m in resumed.push(frames[4:]) + resumed.finish() if isinstance(m, MattedFrame)]
    for a, b in zip(expected[4:], rest, strict=True):
        assert np.array_equal(a.pha, b.pha) and np.array_equal(a.fgr, b.fgr)


def test_region_merge_takes_the_region_pass_inside_its_window():
    frames = torch.from_numpy(np.stack([f.rgb for f in subject_frames(8)[6:]])).permute(0, 3, 1, 2).float() / 255
    out = EnsembleEngine(StandIn(gain=1.0, slope=0.05), Ensemble((Pass(), Pass(zoom=2)), "region")).run(
        frames, None, 1.0)
    plain = StandIn(gain=1.0, slope=0.05).run(frames, None, 1.0)
    # The stand-in's faint ramp (below the subject's threshold) runs across the picture it sees: in the window it
    # starts again, so the mattes differ inside the window and agree outside it.
    differs = (out.pha - plain.pha).abs()[0, 0, 0] > 1e-6
    columns = differs.any(0).nonzero()
    assert len(columns) and columns.min() > 0 and columns.max() < WIDTH - 1
