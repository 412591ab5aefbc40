"""Ranges (--start/--end) on a camera-like source with a timecode track (made here from real footage):

* a full run's .mov outputs all carry the source's start timecode;
* ``--start 30 --end 90`` writes 60 frames starting at time 0, with timecode +30 frames and exactly 60 frames'
  worth of audio; the same range given as timecodes writes the same files; image-sequence outputs keep the
  source's frame numbers or, with ``--number-from timecode``, the timecode's frame count;
* a range's mattes equal a full run's at the same frames (the warm-up replays its shot from the shot's start);
* an interrupted range run resumes to exactly the uninterrupted result; image-sequence inputs and preset keys
  take ranges too; bad values are one clear line.
"""

from fractions import Fraction

import av
import cv2
import media
import numpy as np
import pytest
import torch
from test_resume import assert_same_outputs
from typer.testing import CliRunner

from vmatte.cli import app
from vmatte.errors import VmatteError
from vmatte.inference import MattingEngine
from vmatte.io import open_source
from vmatte.io.clip_range import FrameRange, resolve_range
from vmatte.pipeline import Interrupted, JobSettings, run_job
from vmatte.presets import load_preset
from vmatte.temporal import TemporalOptions

CLIP = "robustness_videos/mmaction2_basketball_2997_426x240.mp4"
START_TC = "01:00:10:05"  # 25 fps: frame 30 is 01:00:11:10, frame 90 is 01:00:13:20
# The README's commands.
RANGE_ARGS = ["--start", "30", "--end", "90", "--out", "alpha.mov", "--fgr", "fgr.mov", "--comp", "matte/%07d.png",
              "--number-from", "timecode"]


def vmatte(*args):
    """``vmatte run ARGS`` in-process."""
    return CliRunner().invoke(app, ["run", *map(str, args)])


@pytest.fixture(scope="module")
def camera(samples_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("camera") / "cam.mov"
    media.write_timecoded_clip(path, samples_dir / CLIP, 110, START_TC)
    return path


@pytest.fixture(scope="module")
def engine(weights_dir, offline_env):
    return MattingEngine.load("rvm-mobilenetv3", device=torch.device("cpu"), precision="fp32", notice=lambda m: None)


@pytest.fixture(scope="module")
def frame_range_run(camera, tmp_path_factory):
    folder = tmp_path_factory.mktemp("frames")
    result = vmatte(camera, *[folder / a if a.endswith((".mov", ".png")) else a for a in RANGE_ARGS])
    assert result.exit_code == 0, result.stderr
    return folder


def test_full_run_every_mov_carries_the_source_timecode(camera, tmp_path):
    result = vmatte(camera, "--out", tmp_path / "alpha.mov", "--fgr", tmp_path / "fgr.mov", "--comp",
                    tmp_path / "comp.mov")
    assert result.exit_code == 0, result.stderr
    for name in ("alpha.mov", "fgr.mov", "comp.mov"):
        assert media.mov_timecodes(tmp_path / name) == [START_TC], name


def test_range_writes_its_frames_timecode_and_audio(frame_range_run):
    for name in ("alpha.mov", "fgr.mov"):
        track = media.read_track(frame_range_run / name)
        assert len(track.times) == 60 and track.times[0] == 0, name
        assert track.times[-1] == Fraction(59, 25), name
        assert media.mov_timecodes(frame_range_run / name) == ["01:00:11:10"], name
    assert media.audio_samples(frame_range_run / "fgr.mov") == 60 * 48000 // 25  # 60 frames' worth, exactly
    assert not media.read_track(frame_range_run / "alpha.mov").audio
    # Numbered by timecode: 01:00:11:10 is frame 90285 of the day at 25 fps.
    assert media.visible_entries(frame_range_run / "matte") == [f"{n:07d}.png" for n in range(90285, 90345)]


def test_range_as_timecodes_writes_the_same(camera, frame_range_run, tmp_path):
    args = ["--start", "01:00:11:10", "--end", "01:00:13:20",
            *[tmp_path / a if a.endswith((".mov", ".png")) else a for a in RANGE_ARGS[4:]]]
    result = vmatte(camera, *args)
    assert result.exit_code == 0, result.stderr
    assert_same_outputs(frame_range_run, tmp_path, ["alpha.mov", "fgr.mov", "matte"])


def test_every_form_names_the_same_frames(camera):
    with open_source(camera) as source:
        for start, end in (("30", "90"), ("1.2s", "3.6s"), ("01:00:11:10", "01:00:13:20")):
            assert resolve_range(source.info, source.pts, start, end) == FrameRange(30, 90), (start, end)
        assert resolve_range(source.info, source.pts, None, "0.5s") == FrameRange(0, 13)  # 12.5 frames: 13 shown


@pytest.mark.parametrize(("args", "needle"), [
    (["--start", "50", "--end", "50"], "must come after --start 50"),
    (["--start", "60", "--end", "20"], "must come after"),
    (["--end", "500"], "beyond the clip, which has 110 frames"),
    (["--start", "5s"], "beyond the clip"),
    (["--start", "1:2"], "--start '1:2': give a frame number"),
    (["--end", "-3"], "give a frame number"),
    (["--start", "00:59:00:00"], "before the clip, which starts at timecode 01:00:10:05"),
    (["--start", "01:00:11:30"], "not a timecode at 25.000 fps"),
])
def test_bad_ranges_are_one_clear_line(camera, tmp_path, args, needle):
    result = vmatte(camera, "--out", tmp_path / "alpha.mov", *args)
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "alpha.mov").exists()


def test_timecode_range_of_a_source_without_timecode(samples_dir, tmp_path):
    result = vmatte(samples_dir / CLIP, "--out", tmp_path / "a.mov", "--start", "00:00:01:00")
    assert result.exit_code == 1 and "states no timecode" in result.stderr


def test_a_range_mattes_as_a_full_run(camera, engine, tmp_path):
    """Frames 30-89 of a range equal those of a run over the whole clip: the warm-up replays the shot the range
    begins in from its start (here the clip's first frame), pre-roll included; without it they do not."""
    def alpha_pngs(name, start, end=None, preroll=None):
        run_job(JobSettings(input=camera, outputs={"alpha": str(tmp_path / name / "%04d.png")}, downsample_ratio=0.5,
                            start=start, end=end, temporal=TemporalOptions(preroll=preroll)),
                engine=engine, notice=lambda m: None)
        return {int(p.stem): cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in (tmp_path / name).iterdir()}

    ranged, full = alpha_pngs("range", "30", "90"), alpha_pngs("full", None)
    assert sorted(ranged) == list(range(30, 90)) and sorted(full) == list(range(110))
    for number in range(30, 90):
        assert np.array_equal(ranged[number], full[number]), number
    cold = alpha_pngs("cold", "30", "90", preroll=0)  # another pre-roll: the full run's no longer
    assert not np.array_equal(ranged[30], cold[30])


def test_interrupted_range_resumes_exactly(camera, engine, tmp_path):
    def run(folder, stop_at=None):
        def on_progress(done, total):
            if stop_at is not None and done >= stop_at:
                raise KeyboardInterrupt
        settings = JobSettings(input=camera, outputs={"alpha": str(folder / "alpha.mov"),
                                                      "fgr": str(folder / "fgr.mov")},
                               downsample_ratio=0.5, start="10", end="100")
        return run_job(settings, engine=engine, on_progress=on_progress, notice=lambda m: None)

    with pytest.raises(Interrupted):
        run(tmp_path / "resumed", stop_at=68)  # past the first segment (64 frames)
    assert run(tmp_path / "resumed").resumed_from == 64
    run(tmp_path / "whole")
    assert_same_outputs(tmp_path / "whole", tmp_path / "resumed", ["alpha.mov", "fgr.mov"])
    assert media.mov_timecodes(tmp_path / "resumed" / "fgr.mov") == ["01:00:10:15"]
    assert media.audio_samples(tmp_path / "resumed" / "fgr.mov") == 90 * 48000 // 25


def test_image_sequence_range_keeps_the_source_numbers(samples_dir, engine, tmp_path):
    frames = tmp_path / "plates"
    frames.mkdir()
    with av.open(str(samples_dir / CLIP)) as container:
        for number, frame in zip(range(100, 112), container.decode(video=0)):
            cv2.imwrite(str(frames / f"plate.{number}.png"), cv2.resize(frame.to_ndarray(format="bgr24"), (64, 36)))
    run_job(JobSettings(input=frames, outputs={"alpha": str(tmp_path / "matte" / "%04d.png")}, start="2", end="6"),
            engine=engine, notice=lambda m: None)
    assert media.visible_entries(tmp_path / "matte") == ["0102.png", "0103.png", "0104.png", "0105.png"]


def test_preset_keys(tmp_path):
    preset = tmp_path / "range.toml"
    preset.write_text('description = "a range"\nstart = "01:00:11:10"\nend = 90\nnumber_from = "timecode"\n'
                      '[outputs]\nalpha = "{stem}.mov"\n')
    assert load_preset(preset).options == {"start": "01:00:11:10", "end": "90", "number_from": "timecode"}
    preset.write_text('description = "a range"\nstart = "soon"\n[outputs]\nalpha = "{stem}.mov"\n')
    with pytest.raises(VmatteError, match="line 2: start = 'soon' is not valid: expected a frame number"):
        load_preset(preset)
