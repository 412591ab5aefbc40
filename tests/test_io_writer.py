"""open_writer(): ProRes 4444, PNG sequences and the H.264 preview, read back with PyAV."""

import dataclasses
from fractions import Fraction
from itertools import islice

import av
import numpy as np
import pytest

from vmatte.errors import VmatteError
from vmatte.io import open_source, open_writer, probe

R = "robustness_videos"
P = "portrait_videos"


@pytest.fixture(scope="module")
def webcam(samples_dir):
    """Six real frames (BT.601-tagged, AAC audio) as float RGB, with a smooth synthetic matte."""
    with open_source(samples_dir / P / "androidx_webcam_face_640x428.mov") as source:
        frames = list(islice(source.frames(), 6))
        info = source.info
    height, width = info.height, info.width
    ramp = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    alpha = np.broadcast_to(ramp, (height, width, 1)).copy()
    return info, [(f.rgb.astype(np.float32) / 255, f.pts) for f in frames], alpha


def image_for(kind, rgb, alpha):
    return {"alpha": alpha, "fgr": np.concatenate([rgb, alpha], axis=-1), "comp": rgb}[kind]


def write_all(kind, path, info, frames, alpha, **options):
    with open_writer(kind, path, info, **options) as writer:
        for rgb, pts in frames:
            writer.write(image_for(kind, rgb, alpha), pts)


def planes(frame):
    """yuv(a)444p12le planes of a decoded ProRes frame as float arrays in [0, 1] of 12-bit code values."""
    return [np.frombuffer(p, np.uint16).reshape(p.height, -1)[:, : p.width] / 4095.0 for p in frame.planes]


@pytest.mark.parametrize("kind", ["alpha", "fgr", "comp"])
def test_prores_round_trip(tmp_path, webcam, kind):
    info, frames, alpha = webcam
    path = tmp_path / f"{kind}.mov"
    write_all(kind, path, info, frames, alpha)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        context = stream.codec_context
        assert context.name == "prores" and context.profile == "4444"
        assert context.codec_tag == "ap4h"
        assert context.pix_fmt.startswith("yuv444p" if kind == "comp" else "yuva444p")
        # The source is tagged BT.601, so that is kept (and written as limited range).
        assert (context.colorspace, context.color_primaries, context.color_range) == (6, 6, 1)
        decoded = list(container.decode(stream))
    assert [Fraction(f.pts) * f.time_base for f in decoded] == [Fraction(pts) * info.time_base for _, pts in frames]
    assert probe(path).frame_rate == info.frame_rate
    if kind == "alpha":
        y, cb, _, _ = planes(decoded[0])
        # Y = 64 + 876 * matte on the 10-bit scale, read back at 12 bits.
        assert np.abs((y * 4095 / 4 - 64) / 876 - alpha[..., 0]).max() <= 1 / 876 + 1e-6
        assert np.abs(cb * 4095 / 4 - 512).max() <= 1
    if kind != "comp":  # the matte .mov carries the matte in its (lossless) alpha channel too
        read_alpha = planes(decoded[0])[3]
        assert np.abs(read_alpha - alpha[..., 0]).max() <= 1 / 1023
    if kind != "alpha":
        with open_source(path) as source:
            read = [f.rgb / 65535 for f in source.frames()]
        error = np.abs(read[0] - frames[0][0])
        # 10-bit quantisation and the matrix round trip are well under a level; ProRes itself is lossy.
        assert error.mean() < 0.002 and np.percentile(error, 99.9) < 0.02


def test_premultiplied_foreground(tmp_path, webcam):
    info, frames, alpha = webcam
    path = tmp_path / "fgr.mov"
    write_all("fgr", path, info, frames[:1], alpha, premultiplied=True)
    with open_source(path) as source:
        rgb = next(source.frames()).rgb / 65535
    # Left edge has alpha 0: premultiplied colour is black there; straight colour would not be.
    assert rgb[:, :4].max() < 0.01
    assert np.abs(rgb - frames[0][0] * alpha).mean() < 0.003


@pytest.mark.parametrize(
    "name", [f"{R}/moviepy_fire2_rot180_vfr_phone.mp4", f"{R}/androidx_birds_23976_mpeg4_mp3.avi"]
)
def test_timestamps_survive_vfr_and_gaps(tmp_path, samples_dir, name):
    """Real timestamps (VFR phone clip; AVI with dropped frames in a 1001/24000 time base), small pictures."""
    info = dataclasses.replace(probe(samples_dir / name), width=32, height=18)
    with open_source(samples_dir / name) as source:
        pts = list(source._timeline.pts)
    path = tmp_path / "out.mov"
    with open_writer("comp", path, info) as writer:
        for value in pts:
            writer.write(np.full((18, 32, 3), 0.5, np.float32), value)
    written = probe(path)
    assert written.frame_count == info.frame_count
    with av.open(str(path)) as container:
        times = [Fraction(f.pts) * f.time_base for f in container.decode(video=0)]
    assert times == [Fraction(value) * info.time_base for value in pts]
    assert written.is_vfr == info.is_vfr


def test_first_pts_not_zero_is_kept(tmp_path, webcam):
    info, frames, alpha = webcam
    offset = 5005  # 0.1668 s: not a whole number of milliseconds
    path = tmp_path / "late.mov"
    write_all("comp", path, info, [(rgb, pts + offset) for rgb, pts in frames[:3]], alpha)
    with av.open(str(path)) as container:
        times = [Fraction(f.pts) * f.time_base for f in container.decode(video=0)]
    assert times == [Fraction(pts + offset) * info.time_base for _, pts in frames[:3]]


@pytest.mark.parametrize(
    "name, codec",
    [
        (f"{P}/sam2_coffee_hands_2997_aac.mp4", "aac"),  # stream copy
        (f"{P}/androidx_face_htc_rotation_ac3.mkv", "ac3"),  # stream copy from Matroska, starts at 62 ms
        # Vorbis cannot go into MOV; it decodes to float samples, kept as 24-bit PCM.
        (f"{R}/moviepy_transparent_vp9alpha_200x200.webm", "pcm_s24le"),
    ],
)
def test_audio_is_carried_over(tmp_path, samples_dir, name, codec):
    source = probe(samples_dir / name)
    info = dataclasses.replace(source, width=32, height=18)
    path = tmp_path / "with_audio.mov"
    with open_writer("comp", path, info, audio_from=samples_dir / name) as writer:
        for index in range(3):
            writer.write(np.zeros((18, 32, 3), np.float32), source.start_pts + index * 1001)
    (audio,) = probe(path).audio
    (original,) = source.audio
    assert audio.codec == codec and audio.sample_rate == original.sample_rate
    frame_seconds = 2048 / original.sample_rate  # generous: one AAC/AC-3 frame
    assert audio.duration == pytest.approx(original.duration, abs=frame_seconds)
    assert audio.start == pytest.approx(original.start, abs=frame_seconds)


@pytest.mark.parametrize("sample_format, codec", [("s16", "pcm_s16le"), ("s32", "pcm_s24le")])
def test_flac_becomes_pcm_of_its_depth(tmp_path, webcam, sample_format, codec):
    """FLAC cannot go into MOV: 16-bit FLAC becomes 16-bit PCM, 24-bit FLAC 24-bit PCM, samples unchanged."""
    source = tmp_path / "flac.mka"
    samples = (np.sin(np.arange(4800) / 7.0) * 0.5 * (1 << (15 if sample_format == "s16" else 31)))
    samples = samples.astype(np.int16 if sample_format == "s16" else np.int32)[None]
    if sample_format == "s32":
        samples &= ~0xFF  # 24 significant bits, as a 24-bit FLAC decodes
    with av.open(str(source), "w") as container:
        stream = container.add_stream("flac", rate=48000, layout="mono")
        stream.format = sample_format
        frame = av.AudioFrame.from_ndarray(samples, format=sample_format, layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    info, frames, alpha = webcam
    path = tmp_path / "with_audio.mov"
    write_all("comp", path, info, frames[:2], alpha, audio_from=source)
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.name == codec
        decoded = np.concatenate([f.to_ndarray() for f in container.decode(stream)], axis=1)
    # pcm_s24le decodes to s32 with its 24 bits at the top, where the source's are.
    assert decoded.shape == samples.shape and np.array_equal(decoded, samples)


def test_alpha_output_has_no_audio(tmp_path, samples_dir, webcam):
    info, frames, alpha = webcam
    path = tmp_path / "alpha.mov"
    write_all("alpha", path, info, frames[:1], alpha, audio_from=info.path)
    assert probe(path).audio == ()


@pytest.mark.parametrize("depth", [8, 16])
@pytest.mark.parametrize("kind", ["alpha", "fgr", "comp"])
def test_png_round_trip_is_exact(tmp_path, webcam, kind, depth):
    info, frames, alpha = webcam
    info = dataclasses.replace(info, width=24, height=16)
    rng = np.random.default_rng(3)
    peak = (1 << depth) - 1
    images = [rng.integers(0, peak + 1, (16, 24, {"alpha": 1, "fgr": 4, "comp": 3}[kind])) for _ in range(2)]
    with open_writer(kind, tmp_path / "out" / "%06d.png", info, png_depth=depth) as writer:
        for pts, image in enumerate(images):
            writer.write((image / peak).astype(np.float32), pts)
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["000000.png", "000001.png"]
    expected_format = {
        ("alpha", 8): "gray", ("alpha", 16): "gray16be", ("fgr", 8): "rgba", ("fgr", 16): "rgba64be",
        ("comp", 8): "rgb24", ("comp", 16): "rgb48be",
    }[kind, depth]
    for name, image in zip(files, images):
        with av.open(str(tmp_path / "out" / name)) as container:
            frame = next(container.decode(video=0))
        assert frame.format.name == expected_format
        read = frame.to_ndarray()
        assert np.array_equal(read.reshape(image.shape), image)


def test_png_folder_spec_and_rounding(tmp_path, webcam):
    info = dataclasses.replace(webcam[0], width=2, height=1)
    folder = tmp_path / "mattes"
    with open_writer("alpha", f"{folder}/", info, png_depth=8) as writer:
        writer.write(np.array([[[0.499 / 255], [0.501 / 255]]], np.float32), 0)
    with av.open(str(folder / "000000.png")) as container:
        assert next(container.decode(video=0)).to_ndarray().tolist() == [[0, 1]]


def test_h264_preview_with_odd_size(tmp_path, samples_dir):
    path = samples_dir / R / "androidx_bear_odd_161x121.webm"
    with open_source(path) as source:
        frames = list(islice(source.frames(), 5))
        info = source.info
    out = tmp_path / "preview.mp4"
    with open_writer("comp", out, info) as writer:
        for frame in frames:
            writer.write(frame.rgb.astype(np.float32) / 255, frame.pts)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        context = stream.codec_context
        assert (context.name, context.pix_fmt, context.width, context.height) == ("h264", "yuv420p", 162, 122)
        assert (context.colorspace, context.color_primaries, context.color_trc, context.color_range) == (1, 1, 1, 1)
        decoded = list(container.decode(stream))
    # WebM keeps milliseconds; a constant rate comes out on its own grid (docs/robustness.md).
    assert not info.is_vfr and info.time_base == Fraction(1, 1000)
    assert [Fraction(f.pts) * f.time_base for f in decoded] == [index / info.frame_rate for index in range(5)]
    with open_source(out) as preview:
        first = next(preview.frames()).rgb.astype(int)
    assert np.abs(first[:121, :161] - frames[0].rgb).mean() < 4
    assert np.abs(first[:121, 161] - first[:121, 160]).mean() < 4  # padding repeats the last column


def test_abort_leaves_nothing(tmp_path, webcam):
    info, frames, alpha = webcam
    path = tmp_path / "out.mov"
    with pytest.raises(RuntimeError):
        with open_writer("fgr", path, info) as writer:
            writer.write(image_for("fgr", *frames[0][:1], alpha), frames[0][1])
            assert any(p.name.startswith(".out.partial") for p in tmp_path.iterdir())
            assert not path.exists()  # nothing that looks finished while writing
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_close_without_frames_is_an_error(tmp_path, webcam):
    writer = open_writer("comp", tmp_path / "empty.mov", webcam[0])
    with pytest.raises(VmatteError, match="no frames"):
        writer.close()
    assert list(tmp_path.iterdir()) == []


def test_unsupported_and_unwritable_outputs(tmp_path, webcam):
    info = webcam[0]
    with pytest.raises(VmatteError, match=r"alpha\.mp4.*supported: \.mov"):
        open_writer("alpha", tmp_path / "alpha.mp4", info)
    with pytest.raises(VmatteError, match=r"out\.avi"):
        open_writer("comp", tmp_path / "out.avi", info)
    with pytest.raises(VmatteError, match="unknown output kind"):
        open_writer("matte", tmp_path / "out.mov", info)
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(VmatteError, match="cannot create its folder"):
        open_writer("comp", blocker / "out.mov", info)
    with pytest.raises(VmatteError, match="cannot create its folder"):
        open_writer("alpha", blocker / "mattes" / "%06d.png", info)


def test_wrong_image_shape_is_refused(tmp_path, webcam):
    info = webcam[0]
    with open_writer("fgr", f"{tmp_path / 'out'}/", info) as writer:
        with pytest.raises(ValueError, match="HxWxC"):
            writer.write(np.zeros((info.height, info.width, 3), np.float32), 0)
