"""open_source(): decoded frames, colour conversion, orientation, seeking and corrupt input."""

import dataclasses
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


# --- awkward files FFmpeg decodes that the samples do not cover (made with PyAV, see media.py) --------------------

AWKWARD_FRAMES = 30  # at 25 fps
BFRAMES = {"bf": "2", "g": "12", "sc_threshold": "1000000000"}  # B-frame pairs; no scene-cut keyframes


def _awkward_clips(folder):
    """name: (path, field order, the file whose decoded pts are the expected frame times (None: k/25 s), the
    number of the first picture)."""
    def made(name, codec, container_format, **options):
        media.write_numbered_clip(folder / name, codec, AWKWARD_FRAMES, container_format=container_format, **options)
        return folder / name

    mpeg4_avi = made("mpeg4_bframes.avi", "mpeg4", "avi", options=BFRAMES, codec_tag="XVID", audio="mp3")
    for tag in ("XVID", "DX50"):
        media.pack_b_frames(mpeg4_avi, folder / f"{tag.lower()}_packed.avi", tag)
    h264_ts = made("h264.ts", "libx264", "mpegts", options={"bf": "2", "g": "12"}, audio="mp2")
    assert media.strip_leading_pts(h264_ts, folder / "h264_first_pts_missing.ts", 4) == 4
    mpeg2 = made("mpeg2.vob", "mpeg2video", "vob", size=(352, 288), options=BFRAMES, audio="mp2")
    media.drop_first_gop(mpeg2, folder / "mpeg2_open_gop.vob", "vob")
    interlaced = {"flags": "+ildct+ilme", "top": "0", **BFRAMES}
    bff = made("bff.mpg", "mpeg2video", "mpeg", options=interlaced)
    tff = made("tff.mp4", "libx264", "mp4", options={"bf": "2", "x264-params": "interlaced=1:tff=1"})
    return {
        "mpeg4_bframes.avi": (mpeg4_avi, "progressive", mpeg4_avi, 0),  # FFmpeg's own AVI muxing: unpacked
        "xvid_packed.avi": (folder / "xvid_packed.avi", "progressive", mpeg4_avi, 0),
        "dx50_packed.avi": (folder / "dx50_packed.avi", "progressive", mpeg4_avi, 0),
        "mpeg2_bframes.vob": (mpeg2, "progressive", mpeg2, 0),
        # Cut after 12 pictures; the open GOP's 2 leading B-pictures do not decode, as FFmpeg counts.
        "mpeg2_open_gop.vob": (folder / "mpeg2_open_gop.vob", "progressive", folder / "mpeg2_open_gop.vob", 12),
        "h264_first_pts_missing.ts": (folder / "h264_first_pts_missing.ts", "progressive", h264_ts, 0),
        "raw.h264": (made("raw.h264", "libx264", "h264", options={"bf": "2", "g": "12"}), "progressive", None, 0),
        "interlaced_bff.mpg": (bff, "bottom field first", bff, 0),
        "interlaced_tff.mp4": (tff, "top field first", tff, 0),
    }


@pytest.fixture(scope="module")
def awkward(tmp_path_factory):
    return _awkward_clips(tmp_path_factory.mktemp("awkward"))


AWKWARD = ["mpeg4_bframes.avi", "xvid_packed.avi", "dx50_packed.avi", "mpeg2_bframes.vob", "mpeg2_open_gop.vob",
           "h264_first_pts_missing.ts", "raw.h264", "interlaced_bff.mpg", "interlaced_tff.mp4"]


@pytest.mark.parametrize("name", AWKWARD)
def test_awkward_file_yields_every_decoded_frame_in_display_order_with_exact_times(awkward, name):
    path, field_order, reference, first = awkward[name]
    decoded, _ = media.decode_damage(path)
    with open_source(path) as source:
        info = source.info
        frames = list(source.frames())
    assert decoded == info.frame_count == len(frames) == AWKWARD_FRAMES - first
    assert [media.picture_number(frame.rgb) for frame in frames] == list(range(AWKWARD_FRAMES - len(frames), 30))
    times = [frame.pts * info.time_base for frame in frames]
    if reference is None:  # no timestamps at all: frames are 1/25 s apart from 0, as FFmpeg stamps them
        assert times == [Fraction(index, 25) for index in range(AWKWARD_FRAMES)]
    else:
        assert times == media.decoded_times(reference)[0]
    assert [frame.time for frame in frames] == [float(time) for time in times]
    assert (info.frame_rate, info.is_vfr, info.field_order, info.interlaced) == (
        25, False, field_order, field_order != "progressive")
    assert info.duration == pytest.approx(len(frames) / 25)
    assert info.undecodable_leading_frames == (2 if first else 0)


@pytest.mark.parametrize("name", AWKWARD)
def test_awkward_file_read_from_a_middle_frame_equals_a_full_decode(awkward, name):
    path = awkward[name][0]
    with open_source(path) as source:
        full = list(source.frames())
        for start in (1, 11, 13, len(full) - 2):
            resumed = list(source.frames(start))
            assert [frame.index for frame in resumed] == list(range(start, len(full)))
            for frame in resumed:
                assert frame.pts == full[frame.index].pts and np.array_equal(frame.rgb, full[frame.index].rgb)


@pytest.mark.parametrize("name, codec", [("xvid_packed.avi", "mp3"), ("dx50_packed.avi", "mp3"),
                                         ("mpeg2_bframes.vob", "mp2"), ("h264_first_pts_missing.ts", "mp2")])
def test_awkward_file_audio(awkward, name, codec):
    path = awkward[name][0]
    (audio,) = open_source(path).info.audio
    with av.open(str(path)) as container:
        (span,) = media.audio_spans(container)
    assert (audio.codec, audio.sample_rate, audio.channels) == (codec, 48000, 2)
    assert (audio.start, audio.duration) == (pytest.approx(float(span.start)), pytest.approx(float(span.duration)))
    # The encoders' priming delay and padding add at most one audio frame at each end.
    assert audio.duration == pytest.approx(AWKWARD_FRAMES / 25, abs=2 * 1152 / 48000)


def test_packed_b_frames_really_are_packed(awkward):
    """The made file has what real Xvid/DivX files have: decoder pts 1, 2, 4, 3, ... and 6-byte N-VOPs."""
    path = awkward["xvid_packed.avi"][0]
    with av.open(str(path)) as container:
        sizes = [packet.size for packet in container.demux(video=0) if packet.size]
    with av.open(str(path)) as container:
        reordered = [frame.pts for frame in container.decode(video=0)]
    assert len(sizes) == AWKWARD_FRAMES and sizes.count(6) >= 5
    assert reordered[:7] == [1, 2, 4, 3, 5, 7, 6]


def test_a_seek_that_stamps_pictures_differently_falls_back_to_a_full_decode(awkward):
    """After a seek, MPEG program stream demuxing pins a PES timestamp on another picture than a linear read does
    (so probing gives these no seek points); if a seek does that anyway, reading decodes from the start."""
    path = awkward["interlaced_bff.mpg"][0]
    with open_source(path) as source:
        full = list(source.frames())
        timeline = source._timeline
        assert timeline.keyframes == ()
        with av.open(str(path)) as container:
            keyframes = [(packet.pts, packet.dts) for packet in container.demux(video=0) if packet.is_keyframe]
        source._timeline = dataclasses.replace(timeline, keyframes=tuple(keyframes))
        with av.open(str(path)) as container:
            container.seek(keyframes[-1][1], stream=container.streams.video[0], backward=True)
            after_seek = [frame.pts for frame in container.decode(video=0)]
        assert not set(after_seek) <= set(timeline.pts)  # the demuxer's seek does stamp them differently
        resumed = list(source.frames(len(full) - 2))
    assert [(frame.index, frame.pts) for frame in resumed] == [(frame.index, frame.pts) for frame in full[-2:]]
    assert all(np.array_equal(frame.rgb, full[frame.index].rgb) for frame in resumed)


def test_picture_lost_in_a_damaged_avi_is_named_and_stood_in_for(awkward, tmp_path):
    """Where the timeline comes from decoding, a picture the decoder fails to output is still a frame of the clip
    (its slot shows as a gap in the AVI's times): named by index and time, repeated with --skip-corrupt."""
    with av.open(str(awkward["xvid_packed.avi"][0])) as container:
        sizes = [packet.size for packet in container.demux(video=0) if packet.size]
    chunk = next(index for index, size in enumerate(sizes) if index > 12 and size > 100)
    damaged = tmp_path / "damaged.avi"
    media.scramble_avi_chunk(awkward["xvid_packed.avi"][0], damaged, chunk)
    decoded, _ = media.decode_damage(damaged)
    assert decoded < AWKWARD_FRAMES  # the decoder drops a picture
    with pytest.raises(VmatteError, match=r"damaged\.avi: corrupt frame at index 1[0-9] \(t=0\.[4-9][0-9]0 s\)"):
        list(open_source(damaged).frames())
    with open_source(damaged, skip_corrupt=True) as source:
        frames = list(source.frames())
        assert source.repeated_frames >= AWKWARD_FRAMES - decoded
        assert [frame.pts * source.info.time_base for frame in frames] == [
            Fraction(index + 1, 25) for index in range(AWKWARD_FRAMES)]
        for start in range(10, 20):
            assert all(np.array_equal(frame.rgb, frames[frame.index].rgb) for frame in source.frames(start))
