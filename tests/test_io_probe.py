"""probe(): facts of the real sample clips, counted and timed from the streams themselves."""

from fractions import Fraction

import av
import numpy as np
import pytest

from vmatte.errors import VmatteError
from vmatte.io import probe
from vmatte.io.probe import _best_effort_times, scan

R = "robustness_videos"
P = "portrait_videos"
# file: (display width, height, rotation, frames, rate, vfr, pix_fmt, audio codecs)
CLIPS = {
    f"{P}/androidx_face_htc_rotation_ac3.mkv": (1080, 720, 0, 30, Fraction(30), False, "yuv420p", ("ac3",)),
    f"{P}/androidx_face_portrait_720x1080.mp4": (720, 1080, 0, 30, Fraction(30000, 1001), False, "yuv420p", ("aac",)),
    f"{P}/androidx_face_rotate90_and_reflect.mp4": (720, 1080, 90, 30, Fraction(30000, 1001), False, "yuv420p", ("aac",)),
    f"{P}/androidx_webcam_face_640x428.mov": (640, 428, 0, 30, Fraction(30000, 1001), False, "yuv420p", ("aac",)),
    f"{P}/sam2_bedroom_child_960x540.mp4": (960, 540, 0, 200, Fraction(30), False, "yuv420p", ()),
    f"{P}/sam2_coffee_hands_2997_aac.mp4": (1280, 720, 0, 287, Fraction(30000, 1001), False, "yuv420p", ("aac",)),
    f"{R}/androidx_bear_odd_161x121.webm": (161, 121, 0, 30, Fraction(30000, 1001), False, "yuv420p", ()),
    f"{R}/androidx_birds_23976_mpeg4_mp3.avi": (960, 400, 0, 96, Fraction(24000, 1001), True, "yuv420p", ("mp3",)),
    f"{R}/androidx_hdr10_av1_10bit_portrait.mp4": (720, 1280, 0, 127, Fraction(30000, 1001), False, "yuv420p10le", ("aac",)),
    f"{R}/androidx_portrait_4k60_rot90_vfr.mp4": (2160, 3840, 90, 18, Fraction(810000, 13487), True, "yuvj420p", ("aac",)),
    f"{R}/androidx_roadtrip_vp9_10bit_23976.webm": (426, 240, 0, 72, Fraction(24000, 1001), False, "yuv420p10le", ()),
    f"{R}/androidx_samsung_sef_slowmo_320x240.mp4": (320, 240, 0, 63, Fraction(30), False, "yuv420p", ("aac",)),
    f"{R}/decord_corrupted.mp4": (1280, 720, 0, 50, Fraction(10), False, "yuv420p", ()),
    f"{R}/decord_rot0.mov": (568, 320, 0, 3, Fraction(30), False, "yuv420p", ()),
    f"{R}/decord_rot90.mov": (320, 568, 90, 3, Fraction(30), False, "yuv420p", ()),
    f"{R}/decord_rot180.mov": (568, 320, 180, 3, Fraction(30), False, "yuv420p", ()),
    f"{R}/decord_rot270.mov": (320, 568, 270, 3, Fraction(30), False, "yuv420p", ()),
    f"{R}/imageio_realshort_2997_aac.mp4": (320, 240, 0, 36, Fraction(45000, 1499), False, "yuv420p", ("aac",)),
    f"{R}/mmaction2_armwrestle_6fps_340x256.mp4": (340, 256, 0, 57, Fraction(6), False, "yuv420p", ()),
    f"{R}/mmaction2_basketball_2997_426x240.mp4": (426, 240, 0, 300, Fraction(30000, 1001), False, "yuv420p", ()),
    f"{R}/moviepy_fire2_rot180_vfr_phone.mp4": (1280, 720, 180, 25, Fraction(750000, 71393), True, "yuv420p", ("aac",)),
    f"{R}/moviepy_no_duration_vp9alpha.webm": (1280, 720, 0, 74, Fraction(15000, 1001), True, "yuv420p", ("opus",)),
    f"{R}/moviepy_transparent_vp9alpha_200x200.webm": (200, 200, 0, 150, Fraction(30), False, "yuv420p", ("vorbis",)),
}


@pytest.mark.parametrize("name", sorted(CLIPS))
def test_probe_facts(samples_dir, name):
    width, height, rotation, frames, rate, vfr, pix_fmt, audio = CLIPS[name]
    info = probe(samples_dir / name)
    assert (info.width, info.height, info.rotation) == (width, height, rotation)
    assert info.frame_count == frames
    assert info.frame_rate == rate and isinstance(info.frame_rate, Fraction)
    assert info.is_vfr is vfr
    assert info.pix_fmt == pix_fmt
    assert tuple(a.codec for a in info.audio) == audio
    assert info.start_pts == 0


@pytest.mark.parametrize("name", sorted(set(CLIPS) - {f"{R}/decord_corrupted.mp4"}))
def test_frame_count_equals_decoded_frames(samples_dir, name):
    """The demux-based count must match what FFmpeg actually decodes (VP9 hidden frames, edit lists)."""
    with av.open(str(samples_dir / name)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        decoded_pts = [frame.pts for frame in container.decode(stream)]
    info = probe(samples_dir / name)
    assert info.frame_count == len(decoded_pts)
    assert info.start_pts == decoded_pts[0]


def test_probe_details(samples_dir):
    hdr = probe(samples_dir / R / "androidx_hdr10_av1_10bit_portrait.mp4")
    assert (hdr.bit_depth, hdr.colour_matrix, hdr.colour_transfer, hdr.colour_assumed) == (
        10, "bt2020nc", "smpte2084", False,
    )
    reflected = probe(samples_dir / P / "androidx_face_rotate90_and_reflect.mp4")
    assert reflected.mirrored and (reflected.coded_width, reflected.coded_height) == (1080, 720)
    assert not probe(samples_dir / R / "decord_rot90.mov").mirrored

    full_range = probe(samples_dir / R / "androidx_portrait_4k60_rot90_vfr.mp4")
    assert full_range.colour_range == "pc"

    alpha = probe(samples_dir / R / "moviepy_transparent_vp9alpha_200x200.webm")
    assert alpha.has_alpha and alpha.duration == pytest.approx(5.0, abs=0.002)  # ms timestamps
    assert not probe(samples_dir / R / "decord_rot0.mov").has_alpha

    no_duration = probe(samples_dir / R / "moviepy_no_duration_vp9alpha.webm")
    assert no_duration.duration == pytest.approx(74 / 14.985, rel=0.01)

    coffee = probe(samples_dir / P / "sam2_coffee_hands_2997_aac.mp4")
    assert coffee.duration == pytest.approx(287 * 1001 / 30000)
    (audio,) = coffee.audio
    assert (audio.sample_rate, audio.channels) == (48000, 2)
    assert audio.duration == pytest.approx(458736 / 48000, abs=1024 / 48000)  # within one AAC frame


def test_untagged_colour_falls_back_by_size(samples_dir):
    small = probe(samples_dir / R / "mmaction2_basketball_2997_426x240.mp4")  # untagged, 240 lines
    assert (small.colour_matrix, small.colour_range, small.colour_assumed) == ("smpte170m", "tv", True)
    large = probe(samples_dir / R / "decord_corrupted.mp4")  # untagged, 720 lines
    assert (large.colour_matrix, large.colour_primaries, large.colour_assumed) == ("bt709", "bt709", True)
    tagged = probe(samples_dir / P / "androidx_webcam_face_640x428.mov")
    assert (tagged.colour_matrix, tagged.colour_assumed) == ("smpte170m", False)


def test_vfr_timestamps_are_irregular(samples_dir):
    """Cross-check is_vfr against the raw packet timestamps."""
    for name, vfr in [(f"{R}/moviepy_fire2_rot180_vfr_phone.mp4", True), (f"{R}/decord_rot0.mov", False)]:
        with av.open(str(samples_dir / name)) as container:
            pts = sorted(p.pts for p in container.demux(video=0) if p.size)
        assert bool(np.ptp(np.diff(pts)) > 1) is vfr
        assert probe(samples_dir / name).is_vfr is vfr


def test_image_sequence(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for index in (1, 2, 10):  # natural order: 2 before 10
        image = np.full((6, 8, 3), index, np.uint8)
        av.VideoFrame.from_ndarray(image, format="rgb24").save(str(frames / f"f{index}.png"))  # 8-bit is fine here
    info = probe(frames)
    assert (info.frame_count, info.frame_rate, info.width, info.height) == (3, Fraction(25), 8, 6)
    assert info.is_image_sequence and info.time_base == Fraction(1, 25)
    assert info.frame_numbers == (1, 2, 10)
    assert probe(frames / "f%d.png").frame_count == 3


@pytest.mark.parametrize("names, numbers", [
    (["shot_v2_1001.png", "shot_v2_1002.png", "shot_v2_1004.png"], (1001, 1002, 1004)),
    (["take.png", "take2.png"], ()),  # a name without a number: positions
    (["a_5.png", "b_1.png"], ()),  # numbers that do not rise in file order: positions
])
def test_sequence_frame_numbers(tmp_path, names, numbers):
    for name in names:
        av.VideoFrame.from_ndarray(np.zeros((4, 4, 3), np.uint8), format="rgb24").save(str(tmp_path / name))
    info = probe(tmp_path)
    assert info.frame_numbers == numbers
    assert [info.frame_number(index) for index in range(len(names))] == list(numbers or range(len(names)))


def test_bad_inputs_raise_vmatte_error(tmp_path):
    with pytest.raises(VmatteError, match="missing.mp4"):
        probe(tmp_path / "missing.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 100)
    with pytest.raises(VmatteError, match="notes.mp4"):
        probe(text)
    with pytest.raises(VmatteError, match="no images"):
        probe(tmp_path)  # an empty folder


def test_audio_only_file_raises(tmp_path):
    path = tmp_path / "tone.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(VmatteError, match=r"tone\.wav.*no video stream"):
        probe(path)


@pytest.mark.parametrize("name", sorted(CLIPS))
def test_packet_timed_clips_are_probed_without_decoding(samples_dir, name):
    """Every sample's packets carry trustworthy presentation times (MP4, MOV, Matroska, WebM, and an AVI without
    B-frames): probing must not decode them all (see the probe module docstring)."""
    timeline = scan(samples_dir / name)[1]
    assert not timeline.by_count and timeline.keyframes


@pytest.mark.parametrize("reordered, decode_order, expected", [
    # DivX packed B-frames: the pts come out of order, the releasing packets' dts do not.
    ([1, 2, 4, 3, 5, 7, 6, 8], [1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, 8]),
    # Trustworthy pts win a tie, as in FFmpeg's guess.
    ([0, 20, 30], [None, 10, 20], [0, 20, 30]),
    # No timestamps at all (raw elementary streams): one frame duration apart from 0.
    ([None] * 4, [None] * 4, [0, 10, 20, 30]),
    # The first pictures without any (a recording's first PES headers unstamped): counted back from the first known.
    ([None, None, 500, 510], [None, None, None, None], [480, 490, 500, 510]),
    # A restart (joined streams): carried on one frame duration at a time.
    ([100, 110, 0, 10], [100, 110, 0, 10], [100, 110, 120, 130]),
])
def test_best_effort_times(reordered, decode_order, expected):
    assert _best_effort_times(reordered, decode_order, 10) == tuple(expected)
