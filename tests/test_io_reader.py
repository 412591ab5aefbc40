"""open_source(): decoded frames, colour conversion, orientation, seeking and corrupt input."""

from fractions import Fraction
from itertools import islice

import av
import media
import numpy as np
import pytest

from vmatte.errors import VmatteError
from vmatte.io import open_source
from vmatte.io.colour import Colour, frame_to_rgb

R = "robustness_videos"
P = "portrait_videos"


def first_frames(path, count, **options):
    with open_source(path, **options) as source:
        return list(islice(source.frames(), count))


def test_frames_carry_index_pts_and_time(samples_dir):
    frames = first_frames(samples_dir / R / "mmaction2_basketball_2997_426x240.mp4", 4)
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert [f.pts for f in frames] == [0, 1001, 2002, 3003]
    assert frames[3].time == pytest.approx(3003 / 30000)
    rgb = frames[0].rgb
    assert rgb.shape == (240, 426, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous


@pytest.mark.parametrize(
    "name", [f"{R}/androidx_roadtrip_vp9_10bit_23976.webm", f"{R}/androidx_hdr10_av1_10bit_portrait.mp4"]
)
def test_ten_bit_sources_give_full_scale_uint16(samples_dir, name):
    (frame,) = first_frames(samples_dir / name, 1)
    assert frame.rgb.dtype == np.uint16
    # Scaled to 0..65535, so a 10-bit picture uses the top of the range, not just 0..1023.
    assert frame.rgb.max() > 4 * 1023


def _yuv_frame(fmt, y, u, v, size=(4, 4)):
    frame = av.VideoFrame(size[0], size[1], fmt)
    dtype = np.uint8 if "10" not in fmt else np.uint16
    for plane, value in zip(frame.planes, (y, u, v)):
        rows = np.frombuffer(plane, dtype).reshape(plane.height, -1)
        rows[:] = value
    return frame


@pytest.mark.parametrize(
    "fmt, colour, yuv, rgb",
    [
        # Textbook values: BT.709 limited-range 75% red and full white/black.
        ("yuv420p", Colour("bt709", "tv", "bt709", "bt709"), (63, 102, 240), (1.0, 0.0, 0.0)),
        ("yuv420p", Colour("bt709", "tv", "bt709", "bt709"), (235, 128, 128), (1.0, 1.0, 1.0)),
        ("yuv420p", Colour("bt709", "tv", "bt709", "bt709"), (16, 128, 128), (0.0, 0.0, 0.0)),
        # BT.601 full-range (JPEG) red: Y = 0.299, Cr = +0.5.
        ("yuvj420p", Colour("smpte170m", "pc", "smpte170m", "smpte170m"), (76, 85, 255), (1.0, 0.0, 0.0)),
        # 10-bit BT.2020 limited-range pure green: Y' = 0.678, Cb = -0.3603, Cr = -0.4598.
        ("yuv420p10le", Colour("bt2020nc", "tv", "bt2020", "smpte2084"), (658, 189, 100), (0.0, 1.0, 0.0)),
    ],
)
def test_yuv_to_rgb_matches_hand_computation(fmt, colour, yuv, rgb):
    out = frame_to_rgb(_yuv_frame(fmt, *yuv), colour)
    peak = 255 if out.dtype == np.uint8 else 65535
    np.testing.assert_allclose(out[1, 1] / peak, rgb, atol=0.01)


def test_matrix_choice_changes_colours():
    """A saturated colour decoded with BT.601 instead of BT.709 comes out visibly different."""
    frame = _yuv_frame("yuv420p", 63, 102, 240)
    bt709 = frame_to_rgb(frame, Colour("bt709", "tv", "bt709", "bt709")).astype(int)
    bt601 = frame_to_rgb(frame, Colour("smpte170m", "tv", "smpte170m", "smpte170m")).astype(int)
    assert np.abs(bt709 - bt601).max() > 20


def test_decoding_agrees_with_independent_decoder_conversion(samples_dir):
    """Our conversion of a real tagged clip is within a few levels of swscale's (which is ~1 level biased)."""
    path = samples_dir / P / "androidx_webcam_face_640x428.mov"
    (ours,) = first_frames(path, 1)
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        theirs = frame.reformat(format="rgb24", src_colorspace="ITU601", src_color_range="MPEG").to_ndarray()
    difference = np.abs(ours.rgb.astype(int) - theirs)
    assert difference.mean() < 2.0 and np.percentile(difference, 99) <= 6


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_is_applied(samples_dir, rotation):
    """The decord clips are different shots, so compare with the same clip's raw (coded) pictures."""
    path = samples_dir / R / f"decord_rot{rotation}.mov"
    frames = first_frames(path, 3)
    with av.open(str(path)) as container:
        coded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    for frame, raw in zip(frames, coded):
        expected = np.rot90(raw, k=-rotation // 90)  # clockwise
        assert frame.rgb.shape == expected.shape
        assert np.abs(frame.rgb.astype(int) - expected).mean() < 3
        assert np.abs(frame.rgb.astype(int) - np.rot90(raw, k=rotation // 90)).mean() > 10 or rotation == 180


def test_rotate_and_reflect_matches_the_upright_recording(samples_dir):
    """The transposed clip shows the same picture as the unflagged portrait clip once mirrored correctly."""
    (reflected,) = first_frames(samples_dir / P / "androidx_face_rotate90_and_reflect.mp4", 1)
    (upright,) = first_frames(samples_dir / P / "androidx_face_portrait_720x1080.mp4", 1)
    assert reflected.rgb.shape == upright.rgb.shape == (1080, 720, 3)
    assert np.abs(reflected.rgb.astype(int) - upright.rgb).mean() < 8
    assert np.abs(reflected.rgb[:, ::-1].astype(int) - upright.rgb).mean() > 20  # rotation-only would be this


@pytest.mark.parametrize(
    "name, start",
    [
        (f"{R}/mmaction2_basketball_2997_426x240.mp4", 137),  # mid-GOP H.264 with B-frames
        (f"{R}/androidx_roadtrip_vp9_10bit_23976.webm", 40),  # VP9 with hidden alt-ref frames
        (f"{R}/androidx_birds_23976_mpeg4_mp3.avi", 50),  # MPEG-4 ASP in AVI
        (f"{R}/moviepy_fire2_rot180_vfr_phone.mp4", 13),  # VFR and rotated
    ],
)
def test_frames_from_start_equal_a_full_decode(samples_dir, name, start):
    with open_source(samples_dir / name) as source:
        full = list(source.frames())
        resumed = list(source.frames(start))
    assert len(full) == source.info.frame_count
    assert [f.index for f in resumed] == list(range(start, len(full)))
    for frame in resumed:
        assert frame.pts == full[frame.index].pts
        assert np.array_equal(frame.rgb, full[frame.index].rgb)
    assert not np.array_equal(resumed[0].rgb, full[start - 1].rgb)


def test_corrupt_frame_raises_with_index_and_time(samples_dir):
    path = samples_dir / R / "decord_corrupted.mp4"
    seen = []
    with pytest.raises(VmatteError, match=r"decord_corrupted\.mp4: corrupt frame at index 30 \(t=3\.000 s\)"):
        with open_source(path) as source:
            seen.extend(frame.index for frame in source.frames())
    assert seen == list(range(30))


def test_skip_corrupt_repeats_the_last_good_frame(samples_dir):
    with open_source(samples_dir / R / "decord_corrupted.mp4", skip_corrupt=True) as source:
        frames = list(source.frames())
        # Frame 30 is missing from the decoder output, frame 32 comes out concealed (flagged corrupt).
        assert source.repeated_frames == 2
    assert len(frames) == 50
    assert [f.pts for f in frames] == [index * 1024 for index in range(50)]
    assert np.array_equal(frames[30].rgb, frames[29].rgb)
    assert np.array_equal(frames[32].rgb, frames[31].rgb)
    assert not np.array_equal(frames[31].rgb, frames[30].rgb)


def test_resuming_onto_a_corrupt_frame_repeats_the_same_frame(samples_dir):
    path = samples_dir / R / "decord_corrupted.mp4"
    with open_source(path, skip_corrupt=True) as source:
        full = list(source.frames())
        resumed = list(source.frames(30))
    assert all(np.array_equal(frame.rgb, full[frame.index].rgb) for frame in resumed)


def test_vp9_alpha_without_container_duration(samples_dir):
    with open_source(samples_dir / R / "moviepy_no_duration_vp9alpha.webm") as source:
        assert source.info.has_alpha
        frames = list(source.frames())
    assert len(frames) == 74 and frames[-1].rgb.shape == (720, 1280, 3)


def save_png(path, image, fmt):
    """Encode with FFmpeg's PNG encoder (VideoFrame.save goes through PIL, which drops to 8 bits)."""
    encoder = av.CodecContext.create("png", "w")
    encoder.width, encoder.height, encoder.pix_fmt = image.shape[1], image.shape[0], fmt
    encoder.time_base = Fraction(1, 25)
    path.write_bytes(b"".join(bytes(p) for p in encoder.encode(av.VideoFrame.from_ndarray(image, format=fmt))))


def test_image_sequence_folder_and_pattern(tmp_path):
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 65536, (5, 7, 3), dtype=np.uint16) for _ in range(3)]
    for index, image in enumerate(images):
        save_png(tmp_path / f"{index:04d}.png", image, "rgb48be")
    for spec in (tmp_path, tmp_path / "%04d.png"):
        with open_source(spec) as source:
            frames = list(source.frames())
            assert [f.pts for f in frames] == [0, 1, 2]
            for frame, image in zip(frames, images):
                assert frame.rgb.dtype == np.uint16 and np.array_equal(frame.rgb, image)
            assert np.array_equal(next(source.frames(2)).rgb, images[2])


def test_image_sequence_with_mixed_sizes_is_refused(tmp_path):
    for index, width in enumerate((8, 10)):
        save_png(tmp_path / f"{index}.png", np.zeros((4, width, 3), np.uint8), "rgb24")
    with open_source(tmp_path) as source, pytest.raises(VmatteError, match="same size"):
        list(source.frames())


def test_unreadable_image_in_a_sequence(tmp_path):
    save_png(tmp_path / "0.png", np.full((4, 4, 3), 7, np.uint8), "rgb24")
    (tmp_path / "1.png").write_bytes(b"broken")
    with open_source(tmp_path) as source, pytest.raises(VmatteError, match="corrupt frame at index 1"):
        list(source.frames())
    with open_source(tmp_path, skip_corrupt=True) as source:
        frames = list(source.frames(1))
        assert source.repeated_frames == 1 and np.all(frames[0].rgb == 7)


def test_scene_linear_exr_is_read_srgb_encoded(samples_dir, tmp_path):
    """OpenEXR plates are scene-linear: they are handed on sRGB-encoded, as the 8-bit PNG they were made from
    (within half-float rounding), and described as sRGB; read as they are, the picture would be far darker."""
    png = samples_dir / "portrait_images/skimage_astronaut.png"
    with open_source(png) as source:
        encoded = next(source.frames()).rgb
    media.write_exr(tmp_path / "plate.0001.exr", media.srgb_to_linear(encoded / 255.0))
    with open_source(tmp_path) as source:
        assert source.info.colour_transfer == "iec61966-2-1"
        rgb = next(source.frames()).rgb
    assert rgb.dtype == np.uint16
    # Half-float rounding is ~0.04/255 here; swscale's half-float conversion was 0.76/255 off.
    assert np.abs(rgb / 65535.0 - encoded / 255.0).max() <= 0.1 / 255
