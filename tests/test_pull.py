"""Ranges and pulls (docs/pulls.md): a range mattes as a full run does at the same frames, and ``vmatte pull``
mattes the shots of an edit and hands the edit back.

Media: three camera-like .mov files made from real footage (tests/media.py: MPEG-4, a timecode track, AAC):
a close-up, a full figure and a moving camera. Edits are built with OpenTimelineIO itself and written as .otio,
CMX 3600 EDL and Final Cut Pro 7 XML: cuts, a dissolve, a gap, a retimed clip, two shots from one file, a shot
whose in-handle runs past the start of its media, and a clip whose media is missing. The pull commands are read
from docs/pulls.md, so the documented command is the tested one. Every shot's frames are checked by pixels
against a full run of its media (which the range rule makes exact).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import media
import numpy as np
import opentimelineio as otio
import pytest
from typer.testing import CliRunner

from vmatte.cli import app, with_command
from vmatte.pipeline import JobSettings, load_engine, run_job

REPO = Path(__file__).resolve().parents[1]
DOCS = (REPO / "docs" / "pulls.md").read_text()
RATE = 25
RT, TR = otio.opentime.RationalTime, otio.opentime.TimeRange
# Media: name -> (sample it is made from, kind of shot, start timecode); 50 frames each, 128x72 at 25 fps.
MEDIA = {
    "A001": ("portrait_videos/sam2_coffee_hands_2997_aac.mp4", "close-up", "01:00:00:00"),
    "B002": ("portrait_videos/sam2_bedroom_child_960x540.mp4", "full figure", "02:00:00:00"),
    "C003": ("robustness_videos/mmaction2_basketball_2997_426x240.mp4", "moving camera", "03:00:00:00"),
}
FRAMES = 50
HANDLES = 8


def docs_commands() -> list[list[str]]:
    """The ``vmatte`` lines of docs/pulls.md's first bash block, as arguments (comments dropped)."""
    block = re.search(r"```bash\n(.*?)```", DOCS, re.S).group(1)
    return [shlex.split(re.sub(r"\s+#.*$", "", line.strip()))[1:] for line in block.splitlines()
            if line.strip().startswith("vmatte ")]


def vmatte(args: list[str]):
    return CliRunner().invoke(app, with_command([str(a) for a in args]))


def unwrapped(result) -> str:
    """The report's text with the terminal's line wrapping undone (runs of blanks and line ends as one blank)."""
    return " ".join(result.stderr.split())


def tc_frames(name: str) -> int:
    """The media's start timecode as a frame count (01:00:00:00 for media that does not exist)."""
    return otio.opentime.from_timecode(MEDIA[name][2] if name in MEDIA else "01:00:00:00", RATE).to_frames()


def clip(name: str, first: int, frames: int, folder: str = "/elsewhere/day1") -> otio.schema.Clip:
    """A clip of media ``name`` from its frame ``first``, referenced where the edit was made (another machine)."""
    reference = otio.schema.ExternalReference(target_url=f"{folder}/{name}.mov",
                                              available_range=TR(RT(tc_frames(name), RATE), RT(FRAMES, RATE)))
    return otio.schema.Clip(name=name, media_reference=reference,
                            source_range=TR(RT(tc_frames(name) + first, RATE), RT(frames, RATE)))


def build_edit() -> otio.schema.Timeline:
    """The cut: A001 10-19, a 4-frame dissolve to B002 20-29, a gap, A001 30-37 at double speed (two shots from
    one file, overlapping with handles), C003 5-14 (3 frames of in-handle only), Z999 (no such media)."""
    timeline = otio.schema.Timeline(name="cut", global_start_time=RT(otio.opentime.from_timecode(
        "10:00:00:00", RATE).to_frames(), RATE))
    track = otio.schema.Track(name="V1")
    timeline.tracks.append(track)
    track.append(clip("A001", 10, 10))
    track.append(otio.schema.Transition(transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
                                        in_offset=RT(2, RATE), out_offset=RT(2, RATE)))
    track.append(clip("B002", 20, 10))
    track.append(otio.schema.Gap(source_range=TR(RT(0, RATE), RT(5, RATE))))
    retimed = clip("A001", 30, 8)
    retimed.effects.append(otio.schema.LinearTimeWarp(time_scalar=2.0))
    track.append(retimed)
    track.append(clip("C003", 5, 10))
    track.append(clip("Z999", 0, 10))
    return timeline


# The OTIO pull's shots: name -> (media, first frame matted, frames, frames before the cut).
EXPECTED = {
    "A001": ("A001", 2, 28, 8),  # 10-19 and 2 frames of dissolve after, 8 handles each side
    "B002": ("B002", 10, 28, 10),  # 2 frames of dissolve before 20-29
    "A001_2": ("A001", 22, 28, 8),  # 8 frames at 2x read 30-45; the media ends 4 frames after
    "C003": ("C003", 0, 23, 5),  # the media starts 5 frames before the cut
}


@pytest.fixture(scope="module")
def footage(samples_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("footage")
    for name, (sample, _, timecode) in MEDIA.items():
        media.write_timecoded_clip(folder / f"{name}.mov", samples_dir / sample, FRAMES, timecode)
    return folder


@pytest.fixture(scope="module")
def engine(weights_dir):
    """The default model, as a run loads it."""
    return load_engine(JobSettings(input=Path("."), outputs={}), notice=lambda m: None)


@pytest.fixture(scope="module")
def full_runs(footage, engine, tmp_path_factory) -> dict[str, list[np.ndarray]]:
    """Each media file's 16-bit mattes from a run over the whole file, by source frame."""
    folder = tmp_path_factory.mktemp("full")
    mattes = {}
    for name in MEDIA:
        run_job(JobSettings(input=footage / f"{name}.mov", outputs={"alpha": str(folder / name / "%04d.png")}),
                engine=engine, notice=lambda m: None)
        mattes[name] = [media.read_png(path) for path in media.png_files(folder / name)]
        assert len(mattes[name]) == FRAMES
    return mattes


@pytest.mark.parametrize("name", list(MEDIA))
def test_a_range_mattes_as_the_full_run(name, footage, full_runs, engine, tmp_path):
    """The range rule's bound on three kinds of clip: a range's mattes equal the full run's, from its first
    frame (max difference 0), where the range starts mid-shot."""
    run_job(JobSettings(input=footage / f"{name}.mov", outputs={"alpha": str(tmp_path / "%04d.png")},
                        start="27", end="41"), engine=engine, notice=lambda m: None)
    ranged = [media.read_png(path) for path in media.png_files(tmp_path)]
    assert [path.name for path in media.png_files(tmp_path)] == [f"{n:04d}.png" for n in range(27, 41)]
    for offset, matte in enumerate(ranged):
        assert np.array_equal(matte, full_runs[name][27 + offset]), (MEDIA[name][1], 27 + offset)


@pytest.fixture(scope="module")
def edits(footage, tmp_path_factory) -> Path:
    """The cut as .otio (with an audio track and a generator more), .edl and .xml, in a scratch folder holding
    the footage as ``footage/``, where the documented commands run."""
    folder = tmp_path_factory.mktemp("edits")
    (folder / "footage").symlink_to(footage)
    otio.adapters.write_to_file(build_edit(), str(folder / "cut.edl"))  # (the writers change what they write)
    otio.adapters.write_to_file(build_edit(), str(folder / "cut.xml"))
    timeline = build_edit()
    timeline.tracks.append(otio.schema.Track(name="A1", kind=otio.schema.TrackKind.Audio))
    timeline.tracks[1].append(clip("A001", 0, 20))
    timeline.tracks[0].append(otio.schema.Clip(name="bars", media_reference=otio.schema.GeneratorReference(
        generator_kind="SMPTEBars", available_range=TR(RT(0, RATE), RT(5, RATE))), source_range=TR(
        RT(0, RATE), RT(5, RATE))))
    otio.adapters.write_to_file(timeline, str(folder / "cut.otio"))
    return folder


@pytest.fixture(scope="module")
def pulls(edits, full_runs, monkeypatch_module) -> dict[str, tuple[list[str], object]]:
    """Each documented pull, run in the edits' folder: edit suffix -> (arguments, result)."""
    monkeypatch_module.chdir(edits)
    runs = {}
    for args in docs_commands():
        if args[0] == "pull":
            runs[Path(args[1]).suffix] = (args, vmatte(args))
    assert set(runs) == {".otio", ".edl", ".xml"}, runs
    return runs


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def check_shot(out_dir: Path, shot: str, name: str, first: int, frames: int, full_runs, number: int) -> None:
    """A shot's outputs: the matte sequence (numbered from ``number``) and the foreground .mov hold exactly
    its frames, the first and last of them the full run's at the same source frames; the .mov's timecode is
    its first frame's."""
    files = media.png_files(out_dir / shot)
    assert [f.name for f in files] == [f"{shot}.alpha.{n:04d}.png" for n in range(number, number + frames)], shot
    for file, source_frame in ((files[0], first), (files[-1], first + frames - 1)):
        assert np.array_equal(media.read_png(file), full_runs[name][source_frame]), (shot, source_frame)
        neighbour = source_frame + 1 if source_frame + 1 < FRAMES else source_frame - 1
        assert not np.array_equal(media.read_png(file), full_runs[name][neighbour]), (shot, source_frame)
    movie = out_dir / f"{shot}.fgr.mov"
    assert len(media.read_track(movie).times) == frames, shot
    expected_tc = otio.opentime.to_timecode(RT(tc_frames(name) + first, RATE), RATE)
    assert media.mov_timecodes(movie) == [expected_tc], shot


def test_otio_pull(pulls, edits, full_runs):
    args, result = pulls[".otio"]
    out_dir = edits / option(args, "--out-dir")
    assert result.exit_code == 1 and "Traceback" not in result.output  # Z999 has no media; the others finish
    assert unwrapped(result).count("Z999: no media file found") == 1, result.stderr
    assert "Z999: no media file found for path /elsewhere/day1/Z999.mov, reel Z999, source 01:00:00:00 + 10 " \
        "frames" in unwrapped(result), result.stderr
    for shot, (name, first, frames, _) in EXPECTED.items():
        check_shot(out_dir, shot, name, first, frames, full_runs, 1001)
    assert "retimed (speed 2x): the 16 source frames it reads are matted" in unwrapped(result), result.stderr
    assert "C003: in handle 5 of 8 frames (the media starts there)" in unwrapped(result)
    assert "A001_2: out handle 4 of 8 frames (the media ends there)" in unwrapped(result)
    assert not (out_dir / "bars").exists() and not (out_dir / "Z999").exists()
    assert sorted(p.name for p in out_dir.iterdir() if p.is_dir()) == sorted(EXPECTED)


def test_otio_pull_hands_back_the_edit(pulls, edits):
    """The handed-back .otio holds the cut and, above it, each matte at its clip's record range, its source
    range the cut's frames (handles and dissolve inside the clip)."""
    args, _ = pulls[".otio"]
    handed = otio.adapters.read_from_file(str(edits / option(args, "--out-dir") / "cut.vmatte.otio"))
    source, matte = handed.video_tracks()
    assert matte.name == "V1 matte"
    plates = list(source.find_clips())
    mattes = {c.name: c for c in matte.find_clips()}
    assert sorted(mattes) == sorted(EXPECTED)
    edit = build_edit()
    assert [c.name for c in plates] == ["A001", "B002", "A001", "C003", "Z999", "bars"]
    for shot, plate, handed_plate in zip(["A001", "B002", "A001_2", "C003"], edit.tracks[0].find_clips(), plates):
        assert handed_plate.source_range == plate.source_range and handed_plate.range_in_parent() == \
            plate.range_in_parent()
        got = mattes[shot]
        name, first, frames, before = EXPECTED[shot]
        assert got.range_in_parent() == plate.range_in_parent(), shot
        available = got.media_reference.available_range
        assert available == TR(RT(tc_frames(name) + first, RATE), RT(frames, RATE)), shot
        assert got.source_range == TR(available.start_time + RT(before, RATE), plate.source_range.duration), shot
        assert got.media_reference.target_url.endswith(f"/{shot}.fgr.mov"), shot
    assert [type(e).__name__ for e in mattes["A001_2"].effects] == ["LinearTimeWarp"]


def test_edl_pull(pulls, edits, full_runs):
    """The EDL states no rate: it is read at its media's. Shots are named by --shot-template; the handed-back
    EDL lays the mattes at the cut's record timecodes."""
    args, result = pulls[".edl"]
    out_dir = edits / option(args, "--out-dir")
    assert result.exit_code == 1 and "read at 25.000 fps, the rate of its media" in unwrapped(result), result.stderr
    assert len(re.findall(r"sh0050: no media file found", result.stderr)) == 1, result.stderr
    check_shot(out_dir, "sh0040", "C003", 0, 23, full_runs, 1001)
    edit = otio.adapters.read_from_file(str(edits / "cut.edl"), rate=RATE)
    handed = otio.adapters.read_from_file(str(out_dir / "cut.vmatte.edl"), rate=RATE)
    plates = [c for c in edit.tracks[0].find_clips() if c.name != "Z999"]
    mattes = list(handed.tracks[0].find_clips())
    assert [c.name for c in mattes] == ["sh0010", "sh0020", "sh0030", "sh0040"]
    for plate, got in zip(plates, mattes):
        assert got.range_in_parent() == plate.range_in_parent(), got.name
        assert got.source_range.duration == plate.source_range.duration, got.name


def test_xml_pull(pulls, edits, full_runs):
    """FCP 7 XML, numbered with the cut's first frame at 1001 (--number-at cut)."""
    args, result = pulls[".xml"]
    out_dir = edits / option(args, "--out-dir")
    assert option(args, "--number-at") == "cut"
    assert result.exit_code == 1 and len(re.findall(r"Z999: no media file", result.stderr)) == 1
    check_shot(out_dir, "C003", "C003", 0, 23, full_runs, 1001 - 5)
    check_shot(out_dir, "A001", "A001", 2, 28, full_runs, 1001 - 8)
    handed = otio.adapters.read_from_file(str(out_dir / "cut.vmatte.xml"))
    source, matte = handed.video_tracks()
    assert [c.name for c in matte.find_clips()] == ["A001", "B002", "A001_2", "C003"]
    for plate, got in zip([c for c in source.find_clips() if c.name != "Z999"], matte.find_clips()):
        assert got.range_in_parent() == plate.range_in_parent(), got.name


def test_a_second_run_skips_finished_shots(pulls, edits):
    args, _ = pulls[".otio"]
    result = vmatte(args)
    assert result.exit_code == 1  # Z999 still has no media
    for shot in EXPECTED:
        assert re.search(rf"{shot}\s+│\s+skipped", result.stderr), result.stderr


@pytest.mark.parametrize(("name", "text", "extra", "needle"), [
    ("broken.xml", "<xmeml><sequence>", [], "cannot read the edit"),
    ("cut.txt", "not an edit", [], "not an edit vmatte reads"),
    ("lost.edl", "TITLE: lost\n\n001  NOWHERE  V     C        01:00:00:00 01:00:01:00 01:00:00:00 01:00:01:00\n",
     [], "an EDL states no frame rate and no media matched its clips; give --rate"),
    ("lost2.edl", "TITLE: lost\n\n001  NOWHERE  V     C        01:00:00:00 01:00:01:00 01:00:00:00 01:00:01:00\n",
     ["--rate", "25"], "001: no media file found for reel NOWHERE, clip 001, source 01:00:00:00 + 25 frames"),
])
def test_bad_edits_are_one_clear_line(footage, tmp_path, name, text, extra, needle):
    (tmp_path / name).write_text(text)
    result = vmatte(["pull", tmp_path / name, "--media", footage, "--out-dir", tmp_path / "out", *extra])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith(("error:", "001:"))]
    assert len(lines) == 1 and needle in unwrapped(result), result.stderr
