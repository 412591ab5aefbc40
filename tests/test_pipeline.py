"""End-to-end acceptance of the pipeline on the real footage in ../shared/samples.

Every clip of ``portrait_videos/`` and ``robustness_videos/`` is matted once (in-process, one engine for the
module, small downsample ratios) and its outputs are read back with PyAV directly (``tests/media.py``):

* frame count and every frame's time (exact, as Fractions of a second) equal what the source decodes to,
  both by vmatte's own reader and by a plain PyAV decode;
* rotation is applied (output size = display size);
* the .mov files are ProRes 4444 (tag ap4h), the fgr .mov carries an alpha plane;
* the source's audio is in the fgr .mov with the source's duration, and never in the alpha .mov;
* exact rational frame rates (30000/1001, 24000/1001) survive, VFR timestamps stay variable.

On one portrait clip, ProRes alpha is compared with the 16-bit PNG alpha of the same run, and the composite
is checked to be fgr * alpha + bg * (1 - alpha) per pixel. The corrupt clip must fail naming frame and time,
leave no finished-looking output, and complete with ``skip_corrupt``.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import media
import numpy as np
import pytest
import torch

from vmatte.errors import VmatteError
from vmatte.inference import MattingEngine
from vmatte.io import open_source
from vmatte.io.probe import scan
from vmatte.pipeline import FrameRate, JobSettings, load_engine, run_job
from vmatte.settings import TemporalOptions

CORRUPT = "robustness_videos/decord_corrupted.mp4"
# Every clip the acceptance covers, with the downsample ratio it is run at (small: the check is the plumbing,
# not the matte quality; big frames get the smallest ratios).
CLIPS = {
    "portrait_videos/androidx_face_htc_rotation_ac3.mkv": 0.25,
    "portrait_videos/androidx_face_portrait_720x1080.mp4": 0.25,
    "portrait_videos/androidx_face_rotate90_and_reflect.mp4": 0.25,
    "portrait_videos/androidx_webcam_face_640x428.mov": 0.25,
    "portrait_videos/sam2_bedroom_child_960x540.mp4": 0.125,
    "portrait_videos/sam2_coffee_hands_2997_aac.mp4": 0.125,
    "robustness_videos/androidx_bear_odd_161x121.webm": 0.5,
    "robustness_videos/androidx_birds_23976_mpeg4_mp3.avi": 0.25,
    "robustness_videos/androidx_hdr10_av1_10bit_portrait.mp4": 0.125,
    "robustness_videos/androidx_portrait_4k60_rot90_vfr.mp4": 0.0625,
    "robustness_videos/androidx_roadtrip_vp9_10bit_23976.webm": 0.5,
    "robustness_videos/androidx_samsung_sef_slowmo_320x240.mp4": 0.5,
    "robustness_videos/decord_rot0.mov": 0.5,
    "robustness_videos/decord_rot180.mov": 0.5,
    "robustness_videos/decord_rot270.mov": 0.5,
    "robustness_videos/decord_rot90.mov": 0.5,
    "robustness_videos/imageio_realshort_2997_aac.mp4": 0.5,
    "robustness_videos/mmaction2_armwrestle_6fps_340x256.mp4": 0.5,
    "robustness_videos/mmaction2_basketball_2997_426x240.mp4": 0.25,
    "robustness_videos/moviepy_fire2_rot180_vfr_phone.mp4": 0.125,
    "robustness_videos/moviepy_no_duration_vp9alpha.webm": 0.125,
    "robustness_videos/moviepy_transparent_vp9alpha_200x200.webm": 0.5,
}
# Long at full resolution: several seconds of 720p, or 4K. Still run by default; ``-m "not slow"`` skips them.
HEAVY = {
    "portrait_videos/sam2_bedroom_child_960x540.mp4",
    "portrait_videos/sam2_coffee_hands_2997_aac.mp4",
    "robustness_videos/androidx_hdr10_av1_10bit_portrait.mp4",
    "robustness_videos/androidx_portrait_4k60_rot90_vfr.mp4",
    "robustness_videos/moviepy_no_duration_vp9alpha.webm",
}
# Long clips whose audio codec (AAC) other clips cover: matted to the alpha .mov only, to save time.
ALPHA_ONLY = {
    "portrait_videos/sam2_coffee_hands_2997_aac.mp4",
    "robustness_videos/androidx_hdr10_av1_10bit_portrait.mp4",
    "robustness_videos/androidx_portrait_4k60_rot90_vfr.mp4",
}
# Facts about the sources stated independently of any decoder (samples/SOURCES.md).
DISPLAY_SIZES = {  # (width, height) after the display matrix
    "robustness_videos/androidx_portrait_4k60_rot90_vfr.mp4": (2160, 3840),
    "robustness_videos/decord_rot90.mov": (320, 568),
    "robustness_videos/decord_rot270.mov": (320, 568),
    "robustness_videos/decord_rot180.mov": (568, 320),
    "portrait_videos/androidx_face_rotate90_and_reflect.mp4": (720, 1080),
}
EXACT_RATES = {
    "robustness_videos/mmaction2_basketball_2997_426x240.mp4": Fraction(30000, 1001),
    "robustness_videos/androidx_birds_23976_mpeg4_mp3.avi": Fraction(24000, 1001),
    "robustness_videos/androidx_roadtrip_vp9_10bit_23976.webm": Fraction(24000, 1001),
    "portrait_videos/sam2_coffee_hands_2997_aac.mp4": Fraction(30000, 1001),
    "portrait_videos/androidx_face_portrait_720x1080.mp4": Fraction(30000, 1001),
    "robustness_videos/androidx_hdr10_av1_10bit_portrait.mp4": Fraction(30000, 1001),
}
VFR = {
    "robustness_videos/androidx_portrait_4k60_rot90_vfr.mp4",
    "robustness_videos/moviepy_fire2_rot180_vfr_phone.mp4",
}


def clip_params(names):
    return [pytest.param(name, id=Path(name).stem, marks=[pytest.mark.slow] if name in HEAVY else [])
            for name in names]


@pytest.fixture(scope="module")
def engine(weights_dir, offline_env):
    return MattingEngine.load("rvm-mobilenetv3", device=torch.device("cpu"), precision="fp32", notice=lambda m: None)


class Runs:
    """Each clip matted once per module; the tests below share the outputs."""

    def __init__(self, samples_dir: Path, engine: MattingEngine, root: Path):
        self.samples_dir, self.engine, self.root = samples_dir, engine, root
        self._done: dict[str, dict] = {}

    def __call__(self, name: str) -> dict:
        if name not in self._done:
            source = self.samples_dir / name
            folder = self.root / Path(name).stem
            source_track = media.read_track(source)
            outputs = {"alpha": str(folder / "alpha.mov")}
            if source_track.audio and name not in ALPHA_ONLY:  # the audio goes into the fgr .mov
                outputs["fgr"] = str(folder / "fgr.mov")
            result = run_job(JobSettings(input=source, outputs=outputs, downsample_ratio=CLIPS[name]),
                             engine=self.engine, notice=lambda m: None)
            self._done[name] = {
                "source": source, "source_track": source_track, "result": result, "folder": folder,
                "outputs": {kind: Path(path) for kind, path in outputs.items()},
                "tracks": {kind: media.read_track(path) for kind, path in outputs.items()},
            }
        return self._done[name]


@pytest.fixture(scope="module")
def runs(samples_dir, engine, tmp_path_factory):
    return Runs(samples_dir, engine, tmp_path_factory.mktemp("clips"))


def test_every_sample_clip_is_covered(samples_dir):
    """A clip added to the sample folders must be added here too (or the acceptance silently shrinks)."""
    present = {f"{folder}/{p.name}" for folder in ("portrait_videos", "robustness_videos")
               for p in (samples_dir / folder).iterdir()}
    assert present == set(CLIPS) | {CORRUPT}


def test_default_model_is_the_float32_onnx_release_named_in_one_line(weights_dir):
    notices = []
    engine = load_engine(JobSettings(Path("x"), {}), notice=notices.append)
    assert engine.model_name == "rvm-mobilenetv3-onnx" and engine.model.refiner_name == "deep_guided_filter"
    assert notices == [f"model: {engine.describe()}"]
    assert "rvm_mobilenetv3_fp32.onnx" in notices[0] and "deep guided filter" in notices[0]


def test_default_model_falls_back_to_int8_with_one_line_notice(weights_dir, tmp_path, monkeypatch):
    (tmp_path / "rvm_mobilenetv3_tfjs_int8").symlink_to(weights_dir / "rvm_mobilenetv3_tfjs_int8")
    monkeypatch.setenv("VMATTE_WEIGHTS", str(tmp_path))
    notices = []
    engine = MattingEngine.load("rvm-mobilenetv3", device=torch.device("cpu"), notice=notices.append)
    assert engine.model_name == "rvm-mobilenetv3-int8"
    assert len(notices) == 1 and "\n" not in notices[0] and "rvm-mobilenetv3-int8" in notices[0], notices


@pytest.mark.parametrize("name", clip_params(CLIPS))
def test_frames_and_timestamps_equal_the_source(runs, name):
    run = runs(name)
    info, timeline = scan(run["source"])
    # What vmatte's reader yields (frames() yields exactly the timeline's pts, in order) ...
    vmatte_times = [pts * info.time_base for pts in timeline.pts]
    # ... agrees with a plain PyAV decode of the source, frame for frame.
    assert vmatte_times == run["source_track"].times
    assert run["result"].frames == len(vmatte_times)
    assert run["result"].repeated_frames == 0
    expected = vmatte_times
    if info.output_time_base != info.time_base:
        # A constant rate its container rounded (Matroska and WebM keep milliseconds) comes out on the rate's grid,
        # within half a tick of the source's times (docs/robustness.md); every other clip keeps its times exactly.
        assert not info.is_vfr and Path(run["source"]).suffix in (".mkv", ".webm")
        expected = [round(time * info.frame_rate) / info.frame_rate for time in vmatte_times]
        assert all(abs(grid - time) <= info.time_base / 2 for grid, time in zip(expected, vmatte_times))
    for kind, track in run["tracks"].items():
        assert len(track.times) == len(vmatte_times), kind
        assert track.times == expected, f"{kind}: frame times differ from the source's"


@pytest.mark.parametrize("name", clip_params(CLIPS))
def test_rotation_is_applied(runs, name):
    run = runs(name)
    source = run["source_track"]
    _, _, rotation = media.decoded_times(run["source"])
    expected = (source.height, source.width) if (rotation or 0) % 180 else (source.width, source.height)
    assert DISPLAY_SIZES.get(name, expected) == expected  # PyAV and SOURCES.md agree on the display size
    for kind, track in run["tracks"].items():
        assert (track.width, track.height) == expected, kind


@pytest.mark.parametrize("name", clip_params(CLIPS))
def test_prores_4444(runs, name):
    run = runs(name)
    for kind, track in run["tracks"].items():
        assert track.codec == "prores", kind
        # 4:4:4; the fgr .mov has an alpha plane (the matte .mov may carry the matte in one as well).
        assert track.pix_fmt.startswith(("yuva444p",) if kind == "fgr" else ("yuv444p", "yuva444p")), \
            (kind, track.pix_fmt)
        assert track.codec_tag == "ap4h", f"{kind}: tag {track.codec_tag!r} ({track.profile}), not ProRes 4444"


@pytest.mark.parametrize("name", clip_params(CLIPS))
def test_colour_tags_reach_the_decoder(runs, name):
    """Decoders read ProRes colour from each frame's header before the container's colr atom: a decoded frame
    must state the source's colour when the source stated it, else BT.709 (what vmatte converts to)."""
    run = runs(name)
    stated = not scan(run["source"])[0].colour_assumed
    expected = run["source_track"].colour[:3] if stated else (1, 1, 1)
    for kind, track in run["tracks"].items():
        assert track.colour == (*expected, 1), (kind, track.colour, expected)


@pytest.mark.parametrize("name", clip_params(CLIPS))
def test_audio_kept_in_fgr_and_absent_from_alpha(runs, name):
    run = runs(name)
    assert run["tracks"]["alpha"].audio == []
    source_audio = run["source_track"].audio
    if not source_audio or name in ALPHA_ONLY:
        assert "fgr" not in run["tracks"]
        return
    output_audio = run["tracks"]["fgr"].audio
    assert len(output_audio) == 1
    want, got = source_audio[0], output_audio[0]
    tolerance = max(want.packet_seconds, Fraction(25, 1000))
    assert abs(got.duration - want.duration) <= tolerance, (float(got.duration), float(want.duration))
    assert abs(got.start - want.start) <= tolerance, (float(got.start), float(want.start))


@pytest.mark.parametrize("name", clip_params(CLIPS))
def test_frame_rate_kept(runs, name):
    run = runs(name)
    source_times = run["source_track"].times
    deltas = {b - a for a, b in zip(source_times, source_times[1:])}
    if name in EXACT_RATES:
        assert run["source_track"].guessed_rate == EXACT_RATES[name]
        for kind, track in run["tracks"].items():
            assert track.guessed_rate == EXACT_RATES[name], kind
    if name in VFR:
        jitter = max(deltas) - min(deltas)
        assert jitter > 2 * run["source_track"].time_base, "the source is not variable-rate after all"
        for kind, track in run["tracks"].items():
            assert [b - a for a, b in zip(track.times, track.times[1:])] == \
                   [b - a for a, b in zip(source_times, source_times[1:])], kind


# --- alpha precision and the composite identity, on a real portrait -------------------------------------------

PORTRAIT = "portrait_videos/androidx_webcam_face_640x428.mov"
BG = (0x33, 0x66, 0xCC)


@pytest.fixture(scope="module")
def portrait_runs(samples_dir, engine, tmp_path_factory):
    """Two runs of one portrait clip: A writes the alpha .mov with 16-bit PNG fgr and comp; B writes 16-bit PNG
    alpha with the fgr .mov and comp .mov."""
    root = tmp_path_factory.mktemp("portrait")
    source = samples_dir / PORTRAIT
    a = {"alpha": str(root / "a" / "alpha.mov"), "fgr": str(root / "a" / "fgr") + "/",
         "comp": str(root / "a" / "comp") + "/"}
    b = {"alpha": str(root / "b" / "alpha") + "/", "fgr": str(root / "b" / "fgr.mov"),
         "comp": str(root / "b" / "comp.mov")}
    for outputs in (a, b):
        run_job(JobSettings(input=source, outputs=outputs, downsample_ratio=0.5, png_depth=16,
                            background="#{:02x}{:02x}{:02x}".format(*BG)), engine=engine, notice=lambda m: None)
    return source, a, b


def _soft(alpha: np.ndarray) -> float:
    return float(((alpha > 0.05) & (alpha < 0.95)).mean())


def test_prores_matte_equals_png_alpha(portrait_runs):
    """The matte .mov carries the matte in its alpha channel (lossless in ProRes): equal to the 16-bit PNG
    alpha of the same run within 10-bit precision. Its grey picture is DCT-coded, so sharp edges come back a
    few codes off; it stays close everywhere."""
    _, a, _ = portrait_runs
    assert media.read_track(a["alpha"]).pix_fmt.startswith("yuva")
    fgr_png, depth = media.read_png_sequence(a["fgr"])
    assert depth == 16 and fgr_png.shape[-1] == 4
    png_alpha = fgr_png[..., 3]
    assert png_alpha.shape == (30, 428, 640)
    assert png_alpha.max() > 0.99 and _soft(png_alpha) > 1e-3  # a real matte, soft edges included
    plane = media.alpha_plane_from_prores(a["alpha"])
    diff = np.abs(plane - png_alpha)
    assert diff.max() <= 2 / 1023, f"max |ProRes alpha - PNG alpha| = {diff.max() * 1023:.2f}/1023"
    picture = np.abs(media.matte_from_prores(a["alpha"]) - png_alpha)
    assert np.percentile(picture, 99.9) <= 2 / 1023 and picture.max() <= 8 / 1023


def test_prores_alpha_plane_equals_png_alpha(portrait_runs):
    _, _, b = portrait_runs
    plane = media.alpha_plane_from_prores(b["fgr"])
    png_alpha, depth = media.read_png_sequence(b["alpha"])
    assert depth == 16 and png_alpha.ndim == 3
    assert plane.shape == png_alpha.shape == (30, 428, 640)
    assert _soft(png_alpha) > 1e-3
    diff = np.abs(plane - png_alpha)
    assert diff.max() <= 2 / 1023, f"max |ProRes alpha - PNG alpha| = {diff.max() * 1023:.2f}/1023"


def test_composite_is_fgr_over_background(portrait_runs):
    _, a, _ = portrait_runs
    fgr, _ = media.read_png_sequence(a["fgr"])
    comp, depth = media.read_png_sequence(a["comp"])
    assert depth == 16 and comp.shape == fgr.shape[:-1] + (3,)
    alpha = fgr[..., 3:]
    bg = np.array(BG, np.float64) / 255
    expected = fgr[..., :3] * alpha + bg * (1 - alpha)
    diff = np.abs(comp - expected)
    # Three 16-bit roundings (fgr, alpha, comp) of half a step each, plus float32 arithmetic.
    assert diff.max() <= 3 / 65535, f"max |comp - (fgr a + bg (1 - a))| = {diff.max() * 65535:.2f}/65535"
    # Not vacuous: the background really shows, and the person really covers it.
    assert (alpha == 0).mean() > 0.1 and np.abs(comp[alpha[..., 0] == 0] - bg).max() <= 1 / 65535
    assert np.abs(comp[alpha[..., 0] > 0.99] - bg).max(axis=-1).mean() > 0.05


def test_comp_mov_carries_audio_and_alpha_mov_none(portrait_runs):
    source, a, b = portrait_runs
    want = media.read_track(source).audio[0]
    comp = media.read_track(b["comp"])
    assert comp.codec == "prores" and comp.pix_fmt.startswith("yuv444p")
    assert len(comp.audio) == 1
    assert abs(comp.audio[0].duration - want.duration) <= max(want.packet_seconds, Fraction(25, 1000))
    assert media.read_track(a["alpha"]).audio == []


# --- the corrupt clip -------------------------------------------------------------------------------------------

def test_corrupt_clip_fails_naming_frame_and_time(samples_dir, engine, tmp_path, monkeypatch):
    """Stops at the bad frame with its index and time. With one segment per chunk, segments are finished and
    checkpointed before the failure, yet nothing finished-looking is left: only the hidden work folder."""
    monkeypatch.setattr("vmatte.pipeline.SEGMENT_FRAMES", 4)
    out = tmp_path / "alpha.mov"
    with pytest.raises(VmatteError) as failure:
        run_job(JobSettings(input=samples_dir / CORRUPT, outputs={"alpha": str(out)}, downsample_ratio=0.125,
                            chunk=4, temporal=TemporalOptions(preroll=0)), engine=engine, notice=lambda m: None)
    message = str(failure.value)
    assert "index 30" in message and "t=3.000 s" in message, message
    assert not out.exists()
    assert media.visible_entries(tmp_path) == []
    assert [p.name for p in tmp_path.iterdir()] == [".alpha.mov.vmatte"]
    # Finished segments may wait there for a resume, but only inside the hidden work folder.


def test_corrupt_clip_with_skip_corrupt_completes(samples_dir, engine, tmp_path):
    source = samples_dir / CORRUPT
    out = tmp_path / "alpha.mov"
    result = run_job(JobSettings(input=source, outputs={"alpha": str(out)}, downsample_ratio=0.125,
                                 skip_corrupt=True), engine=engine, notice=lambda m: None)
    info, timeline = scan(source)
    # A plain PyAV loop (frame threading, as vmatte decodes) gets one picture less, and one more that the
    # decoder flags as damaged (error concealment after the bad one): both are stood in for.
    decodable, flagged = media.decode_damage(source)
    assert info.frame_count == 50 and decodable == 49 and flagged <= 1
    assert result.frames == 50
    repeated = info.frame_count - decodable + flagged
    assert result.repeated_frames == repeated
    assert any(f"{repeated} corrupt frame" in note for note in result.notes), result.notes
    track = media.read_track(out)
    assert track.times == [pts * info.time_base for pts in timeline.pts]
    assert media.visible_entries(tmp_path) == ["alpha.mov"]


def test_anamorphic_pixel_aspect_is_kept(samples_dir, engine, tmp_path):
    """The pool clip is 340x256 with 1024:765 pixels (shown 455x256): every video output must say so, or an
    editor sees it squeezed. ProRes has it only in the container ('pasp'), so the segment join must keep it."""
    source = samples_dir / "backgrounds/mmaction2_pool_340x256.mp4"
    assert media.read_track(source).pixel_aspect == Fraction(1024, 765)
    outputs = {"alpha": str(tmp_path / "alpha.mov"), "fgr": str(tmp_path / "fgr.mov"),
               "comp": str(tmp_path / "comp.mp4")}
    run_job(JobSettings(input=source, outputs=outputs, downsample_ratio=0.25), engine=engine, notice=lambda m: None)
    for kind, path in outputs.items():
        assert media.read_track(path).pixel_aspect == Fraction(1024, 765), kind


def test_stream_cut_mid_gop(samples_dir, engine, tmp_path):
    """A transport stream cut in the middle of a GOP (as recordings and stream segments are) opens with
    pictures that reference frames not in the file. Decoders output nothing for them: vmatte leaves them out
    too, says so, and mattes the rest, instead of failing on 'corrupt frame 0'."""
    with open_source(samples_dir / "robustness_videos/mmaction2_basketball_2997_426x240.mp4") as source:
        pictures = [frame.rgb for _, frame in zip(range(48), source.frames())]
    whole = tmp_path / "whole.ts"
    with av.open(str(whole), "w", format="mpegts") as container:
        stream = container.add_stream("libx264", rate=25, options={"g": "12", "bf": "2"})
        stream.width, stream.height, stream.pix_fmt = 426, 240, "yuv420p"
        for index, picture in enumerate(pictures):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    data = whole.read_bytes()
    cut = tmp_path / "cut.ts"
    cut.write_bytes(data[188 * (len(data) // 188 // 3):])  # whole 188-byte TS packets, from a third in
    decoded = media.read_track(cut).times
    info = scan(cut)[0]
    assert info.undecodable_leading_frames > 0 and info.frame_count == len(decoded)
    out = tmp_path / "alpha.mov"
    result = run_job(JobSettings(input=cut, outputs={"alpha": str(out)}, downsample_ratio=0.25),
                     engine=engine, notice=lambda m: None)
    assert media.read_track(out).times == decoded
    assert any("before the first keyframe" in note for note in result.notes), result.notes


def test_progress_starts_when_the_frames_flow_and_rates_count_from_there(samples_dir, engine, tmp_path, monkeypatch):
    """A 3-frame input once showed "707.8 fps": the rate counted from the first finished chunk. The first call
    now comes as the frames start (0 done), and FrameRate counts frames over the time since then."""
    calls = []
    clip = samples_dir / "robustness_videos/decord_rot0.mov"
    run_job(JobSettings(input=clip, outputs={"alpha": f"{tmp_path}/a/"},
                        downsample_ratio=0.25), engine=engine, on_progress=lambda done, total: calls.append(done),
            notice=lambda m: None)
    assert calls[0] == 0 and calls[-1] == 3
    clock = iter([100.0, 100.5, 101.0])
    monkeypatch.setattr("vmatte.pipeline.time.perf_counter", lambda: next(clock))
    rate = FrameRate()
    assert (rate(0), rate(4), rate(8)) == (0.0, 8.0, 8.0)
