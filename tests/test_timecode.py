"""Timecode: counting to and from HH:MM:SS:FF (drop-frame too), reading a source's tmcd track, writing it into
every .mov (directly and through the segment join of a resumable run), and ``vmatte info``."""

from fractions import Fraction
from pathlib import Path

import media
import numpy as np
import pytest
from typer.testing import CliRunner

from vmatte.cli import app
from vmatte.io import open_writer, probe
from vmatte.io.segments import join_segments
from vmatte.io.timecode import frames_to_timecode, offset_timecode, timecode_to_frames

NTSC = Fraction(30000, 1001)
CLIP = "robustness_videos/mmaction2_basketball_2997_426x240.mp4"


@pytest.mark.parametrize(("timecode", "rate", "frames"), [
    ("00:00:01:00", Fraction(25), 25),
    ("01:00:10:05", Fraction(25), 90255),
    ("00:00:01:00", Fraction(24000, 1001), 24),
    ("00:01:00;02", NTSC, 1800),  # drop-frame: ;00 and ;01 of minute 1 do not exist
    ("00:10:00;00", NTSC, 17982),  # every tenth minute keeps them
    ("01:00:00;00", NTSC, 107892),
    ("00:01:00;04", Fraction(60000, 1001), 3600),
])
def test_timecode_counts(timecode, rate, frames):
    assert timecode_to_frames(timecode, rate) == frames
    assert frames_to_timecode(frames, rate, drop_frame=";" in timecode) == timecode


def test_drop_frame_round_trips_every_frame_of_an_hour():
    for count in range(0, 107892 + 1):
        assert timecode_to_frames(frames_to_timecode(count, NTSC, True), NTSC) == count


def test_offset_keeps_the_counting():
    assert offset_timecode("01:00:10:05", 30, Fraction(25)) == "01:00:11:10"
    assert offset_timecode("00:00:59;29", 1, NTSC) == "00:01:00;02"


@pytest.mark.parametrize("bad", ["1:2:3", "00:00:00:25", "00:61:00:00", "00:01:00;00", "tc"])
def test_malformed_timecodes_are_refused(bad):
    with pytest.raises(ValueError):
        timecode_to_frames(bad, NTSC if ";" in bad else Fraction(25))


@pytest.fixture(scope="module")
def timecoded(samples_dir, tmp_path_factory):
    """Two camera-like sources: 25 fps non-drop-frame, and 29.97 drop-frame."""
    folder = tmp_path_factory.mktemp("timecoded")
    media.write_timecoded_clip(folder / "ndf.mov", samples_dir / CLIP, 12, "01:00:10:05")
    media.write_timecoded_clip(folder / "df.mov", samples_dir / CLIP, 12, "00:59:59;28", rate=NTSC)
    return folder


def test_probe_reads_the_tmcd_track(timecoded):
    assert media.mov_timecodes(timecoded / "ndf.mov") == ["01:00:10:05"]  # the source really has one
    assert probe(timecoded / "ndf.mov").timecode == "01:00:10:05"
    assert probe(timecoded / "df.mov").timecode == "00:59:59;28"


def test_info_shows_the_timecode(timecoded):
    ndf = CliRunner().invoke(app, ["info", str(timecoded / "ndf.mov")])
    df = CliRunner().invoke(app, ["info", str(timecoded / "df.mov")])
    assert ndf.exit_code == df.exit_code == 0
    assert "timecode: 01:00:10:05 (non-drop-frame)" in ndf.stdout
    assert "timecode: 00:59:59;28 (drop-frame)" in df.stdout


def test_no_timecode_is_said(samples_dir):
    assert probe(samples_dir / CLIP).timecode is None
    assert "timecode: none" in CliRunner().invoke(app, ["info", str(samples_dir / CLIP)]).stdout


@pytest.mark.parametrize("name", ["ndf.mov", "df.mov"])
def test_every_mov_and_the_segment_join_carry_the_timecode(timecoded, tmp_path, name):
    info = probe(timecoded / name)
    segments = []
    for kind in ("alpha", "fgr", "comp"):
        path = tmp_path / f"{kind}.mov"
        with open_writer(kind, path, info, audio_from=timecoded / name) as writer:
            for index in range(3):
                writer.write(np.full((info.height, info.width, {"alpha": 1, "fgr": 4, "comp": 3}[kind]), 0.5,
                                     np.float32), info.start_pts + index)
        assert media.mov_timecodes(path) == [info.timecode], kind
        segments.append(path)
    joined = tmp_path / "joined.mov"
    join_segments([segments[1]], Path(joined), info, timecoded / name)
    assert media.mov_timecodes(joined) == [info.timecode]
