"""open_background(): colours, a still image scaled to cover, and a looped video."""

import cv2
import numpy as np
import pytest

from vmatte.errors import VmatteError
from vmatte.io import open_background, open_source


@pytest.mark.parametrize(
    "spec, rgb",
    [("green", (0, 1, 0)), ("Blue", (0, 0, 1)), ("grey", (128 / 255,) * 3), ("#ff8000", (1, 128 / 255, 0)),
     ("00ff00", (0, 1, 0))],
)
def test_colours(spec, rgb):
    frame = open_background(spec, 6, 4).frame(0)
    assert frame.shape == (4, 6, 3) and frame.dtype == np.float32
    np.testing.assert_allclose(frame[2, 3], rgb, atol=1e-6)


@pytest.mark.parametrize("spec", ["chartreuse-ish", "#12345", "/no/such/background.png"])
def test_bad_spec(spec):
    with pytest.raises(VmatteError, match="neither a colour"):
        open_background(spec, 6, 4)


def test_image_covers_without_distortion(samples_dir):
    path = samples_dir / "backgrounds" / "skimage_rocket.jpg"  # 640x427 landscape
    with open_source(path) as source:
        original = next(source.frames()).rgb
    frame = open_background(path, 100, 200).frame(7)  # portrait: scaled to 200 high, centre-cropped
    assert frame.shape == (200, 100, 3) and frame.dtype == np.float32
    scaled = cv2.resize(original, (round(640 * 200 / 427), 200), interpolation=cv2.INTER_AREA) / 255
    left = (scaled.shape[1] - 100) // 2
    assert np.abs(frame - scaled[:, left : left + 100]).mean() < 0.01
    assert np.abs(frame - scaled[:, :100]).mean() > 0.05  # an off-centre crop would be caught
    squashed = cv2.resize(original, (100, 200), interpolation=cv2.INTER_AREA) / 255
    assert np.abs(frame - squashed).mean() > 0.05  # and so would a distorting resize


def test_video_streams_and_loops(samples_dir):
    path = samples_dir / "robustness_videos" / "decord_rot0.mov"  # 3 frames
    background = open_background(path, 284, 160)
    first = [background.frame(i) for i in range(3)]
    assert first[0].shape == (160, 284, 3)
    assert not np.array_equal(first[0], first[2])
    np.testing.assert_array_equal(background.frame(3), first[0])  # looped
    np.testing.assert_array_equal(background.frame(5), first[2])
    np.testing.assert_array_equal(background.frame(1), first[1])  # a jump back restarts at that frame
    background.close()


def test_jpeg_with_side_data_pyav_cannot_name(samples_dir):
    """This photo carries side data (EXIF) that PyAV 18 has no name for; it must still open, upright."""
    path = samples_dir / "backgrounds" / "moviepy_vacation_2017.jpg"
    background = open_background(str(path), 320, 180)
    picture = background.frame(0)
    reference = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)  # 2560x1440: same aspect, plain scale
    expected = cv2.resize(reference, (320, 180), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    assert picture.shape == (180, 320, 3)
    assert np.abs(picture - expected).mean() < 0.02
