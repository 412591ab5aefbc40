"""Looking before and after a render: ``vmatte preview``'s contact sheet, the review report (``--report``) and its
per-frame statistics, and every command docs/review.md shows (read from the page itself, so an edited command is
the tested one). The browser test is in test_review_browser.py."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import media
import numpy as np
import pytest
from typer.testing import CliRunner

from vmatte import pipeline
from vmatte.cli import app, with_command
from vmatte.errors import VmatteError
from vmatte.frame_stats import FLOORS, FrameStats
from vmatte.io import SourceFrame
from vmatte.pipeline import load_engine, run_job
from vmatte.presets import job_settings
from vmatte.preview import preview_frames
from vmatte.report import review_data
from vmatte.temporal import MattedFrame

REPO = Path(__file__).resolve().parents[1]
DOC = (REPO / "docs" / "review.md").read_text()
SOURCE = "portrait_videos/sam2_bedroom_child_960x540.mp4"
# The preview's bound against a full run (docs/review.md, "How close a preview is"): MAD x1e3 per frame.
PREVIEW_MAD_BOUND = 9.0


def doc_commands(program: str) -> list[str]:
    """Each line of the page's ```bash blocks that runs ``program``, without its comment."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", DOC, re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line.strip())
            if re.match(rf"(\w+=\S+ )*{re.escape(program)} ", line):
                lines.append(line)
    assert lines, f"docs/review.md shows no {program} command"
    return lines


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory, samples_dir) -> Path:
    return media.write_scaled_clip(tmp_path_factory.mktemp("clip") / "kids.mp4", samples_dir / SOURCE, 40, 192, 108,
                                   start=60)


def invoke(args: list[str]):
    result = CliRunner().invoke(app, with_command(args))
    assert "Traceback" not in result.output, result.output
    return result


# --- the statistics, on made-up mattes (no model) -------------------------------------------------------------

def disc(width: int, height: int, centre: tuple[float, float], radius: float) -> np.ndarray:
    ys, xs = np.indices((height, width), dtype=np.float32)
    distance = np.hypot(xs - centre[0], ys - centre[1])
    return np.clip(radius + 0.5 - distance, 0, 1).astype(np.float32)  # one pixel of soft edge


def feed(stats: FrameStats, pictures: list[np.ndarray], mattes: list[np.ndarray]) -> None:
    for index, (picture, matte) in enumerate(zip(pictures, mattes)):
        stats.see([SourceFrame(index, index, index / 25, picture)])
        stats.add(MattedFrame(index, index, matte, None))


def scene(alpha: np.ndarray, shift: int = 0) -> np.ndarray:
    """A bright textured subject (its texture moved ``shift`` px right) over a still, dark textured background,
    composited as the matte says."""
    rng = np.random.default_rng(0)
    height, width = alpha.shape
    texture = cv2.GaussianBlur(rng.random((height, width, 3)).astype(np.float32), (0, 0), 2) * 300
    foreground = 160 + np.roll(texture, shift, axis=1)
    background = 10 + texture[::-1]
    return np.clip(np.rint(alpha[..., None] * foreground + (1 - alpha[..., None]) * background), 0, 255).astype(
        np.uint8)


def test_chatter_on_a_still_picture_is_flagged_and_motion_is_not():
    still = disc(160, 96, (80, 48), 30)
    mattes = [still.copy() for _ in range(30)]
    mattes[12] = disc(160, 96, (80, 48), 33)  # the edge jumps out for one frame while the picture holds still
    stats = FrameStats(0, 30)
    feed(stats, [scene(still)] * 30, mattes)
    assert stats.flagged()["chatter"] == [12, 13]  # out, and back in
    assert max(stats.chatter[:12]) == 0.0 and min(stats.chatter[12:14]) > 2 * FLOORS["chatter"]
    spike = min(stats.chatter[12:14])

    moving = [disc(160, 96, (40 + 3 * t, 48), 30) for t in range(30)]  # the subject moves, the matte follows
    stats = FrameStats(0, 30)
    feed(stats, [scene(m, 3 * t) for t, m in enumerate(moving)], moving)
    assert stats.flagged()["chatter"] == [] and max(stats.chatter) < spike / 3


def test_holes_in_the_core_are_flagged_and_coverage_measured():
    whole = disc(160, 96, (80, 48), 30)
    mattes = [whole.copy() for _ in range(20)]
    mattes[7][40:56, 72:88] = 0  # a patch of the body goes missing
    stats = FrameStats(0, 20)
    feed(stats, [scene(whole)] * 20, mattes)
    assert stats.flagged()["holes"] == [7]
    assert stats.coverage[0] == pytest.approx(100 * np.pi * 30 ** 2 / (160 * 96), rel=0.05)
    assert 7 in stats.thumbnails() and set(stats.sheet_frames) <= set(stats.thumbnails())
    assert len(stats.sheet_frames) == 12 and (stats.sheet_frames[0], stats.sheet_frames[-1]) == (0, 19)


def test_statistics_survive_a_checkpoint_exactly():
    rng = np.random.default_rng(1)
    mattes = [disc(96, 64, (48 + t, 32), 18 + rng.random() * 2) for t in range(16)]
    pictures = [scene(m) for m in mattes]
    whole = FrameStats(0, 16, "01:00:00:00", Fraction(25))
    feed(whole, pictures, mattes)
    first = FrameStats(0, 16, "01:00:00:00", Fraction(25))
    for index in range(10):
        first.see([SourceFrame(index, index, index / 25, pictures[index])])
    for index in range(8):
        first.add(MattedFrame(index, index, mattes[index], None))
    saved = first.save(next_frame=9)  # decoding resumes at 9; frame 8 was decoded but not added yet
    second = FrameStats(0, 16, "01:00:00:00", Fraction(25))
    second.restore(saved)
    for index in range(9, 16):
        second.see([SourceFrame(index, index, index / 25, pictures[index])])
    for index in range(8, 16):
        second.add(MattedFrame(index, index, mattes[index], None))
    assert (second.coverage, second.chatter, second.holes) == (whole.coverage, whole.chatter, whole.holes)
    assert second.flagged() == whole.flagged() and sorted(second.thumbnails()) == sorted(whole.thumbnails())


# --- preview ----------------------------------------------------------------------------------------------------

def test_preview_frames_match_the_full_run_within_the_stated_bound(tmp_path, small_clip, weights_dir):
    settings = job_settings(small_clip, {"alpha": str(tmp_path / "alpha") + "/"}, {"png_depth": 16})
    engine = load_engine(settings, notice=lambda message: None)
    run_job(settings, engine=engine, notice=lambda message: None)
    full, _ = media.read_png_sequence(tmp_path / "alpha")
    _, frames, matted = preview_frames(settings, engine, count=4)
    previews = list(matted)
    assert frames == 40 and [p.source.index for p in previews] == [0, 13, 26, 39]
    errors = [np.abs(p.matte.pha - full[p.source.index]).mean() * 1e3 for p in previews]
    assert errors[0] < 0.1  # the first frame: pre-rolled as the full run does (only PNG rounding is left)
    assert max(errors) < PREVIEW_MAD_BOUND, errors
    assert f"{PREVIEW_MAD_BOUND:g}" in DOC  # the page states the bound this test holds it to


def test_preview_commands_of_the_page(tmp_path, small_clip, monkeypatch, weights_dir):
    (tmp_path / "footage").mkdir()
    for name in ("a.mp4", "b.mp4"):
        (tmp_path / "footage" / name).symlink_to(small_clip)
    (tmp_path / "clip.mp4").symlink_to(small_clip)
    monkeypatch.chdir(tmp_path)
    for line in doc_commands("vmatte preview"):
        args = shlex.split(line)[1:]
        args += ["--frames", "3"]  # the last value given wins: 3 frames a clip keep the test quick
        result = invoke(args)
        assert result.exit_code == 0, f"{line}\n{result.output}"
        sheets = [Path(p) for p in result.stdout.split() if p.endswith(".png")]
        assert sheets, result.output
        for sheet in sheets:
            picture = cv2.imread(str(sheet))
            assert picture is not None and picture.shape[1] > 3 * 192 and picture.std() > 10
        assert re.search(r"the full run of 40 frames will take about \d+", result.output), result.output


def test_preview_refuses_bad_output_before_any_work(tmp_path, small_clip):
    for out, message in (("sheet.jpg", "a contact sheet is a .png"), ("missing/sheet.png", "does not exist")):
        result = invoke(["preview", str(small_clip), "--out", str(tmp_path / out)])
        assert result.exit_code == 1 and message in result.output and len(result.output.strip().splitlines()) == 1


# --- report -----------------------------------------------------------------------------------------------------

def test_report_of_a_resumed_run_covers_every_frame(tmp_path, small_clip, monkeypatch, weights_dir):
    monkeypatch.setattr(pipeline, "SEGMENT_FRAMES", 8)
    settings = job_settings(small_clip, {"alpha": str(tmp_path / "whole.mov")}, {})
    engine = load_engine(settings, notice=lambda message: None)
    whole = run_job(settings, engine=engine, notice=lambda message: None).stats

    def stop_after_20(done: int, total: int) -> None:
        if done >= 20:
            raise KeyboardInterrupt

    settings = job_settings(small_clip, {"alpha": str(tmp_path / "resumed.mov")}, {})
    with pytest.raises(VmatteError, match="interrupted"):
        run_job(settings, engine=engine, on_progress=stop_after_20, notice=lambda message: None)
    resumed = run_job(settings, engine=engine, notice=lambda message: None)
    assert resumed.resumed_from > 0
    assert resumed.stats.frames == whole.frames == 40
    assert (resumed.stats.coverage, resumed.stats.chatter, resumed.stats.holes) == (whole.coverage, whole.chatter,
                                                                                    whole.holes)
    assert sorted(resumed.stats.thumbnails()) == sorted(whole.thumbnails())


def test_report_of_a_run(tmp_path, small_clip, weights_dir, monkeypatch):
    (line,) = [line for line in doc_commands("vmatte") if "--report" in line and "clip.mp4" in line]
    (tmp_path / "clip.mp4").symlink_to(small_clip)
    monkeypatch.chdir(tmp_path)
    result = invoke(shlex.split(line)[1:])
    assert result.exit_code == 0, result.output
    report = tmp_path / re.search(r"--report (\S+)", line).group(1)
    output = re.search(r"--out (\S+)", line).group(1)
    page = report.read_text()
    data = review_data_from(page)
    assert data["clips"][0]["frames"] == 40 and data["clips"][0]["status"] == "done"
    pictures = re.findall(r'<img[^>]* src="([^"]+)"', page)
    assert len(pictures) >= 2 and "http" not in " ".join(re.findall(r'(?:src|href)="([^"]+)"', page))
    for picture in pictures:
        assert cv2.imread(str(report.parent / picture)) is not None, picture
    assert f'href="{output}"' in page and "prefers-color-scheme: dark" in page


def review_data_from(page: str) -> dict:
    import json

    return json.loads(re.search(r'<script type="application/json" id="review-data">(.*?)</script>', page,
                                re.S).group(1).replace("<\\/", "</"))


def test_report_refuses_a_path_it_cannot_write_before_any_work(tmp_path, small_clip):
    (tmp_path / "file").write_text("")
    for report, message in (("r.txt", "a report is an .html file"), ("file/r.html", "cannot create the folder")):
        result = invoke([str(small_clip), "--out", str(tmp_path / "a.mov"), "--report", str(tmp_path / report)])
        assert result.exit_code == 1 and message in result.output and len(result.output.strip().splitlines()) == 1
        assert not (tmp_path / "a.mov").exists()


def test_report_data_lists_each_clips_flags():
    stats = FrameStats(0, 20)
    whole = disc(160, 96, (80, 48), 30)
    mattes = [whole.copy() for _ in range(20)]
    mattes[5][40:56, 72:88] = 0
    feed(stats, [scene(whole)] * 20, mattes)
    from vmatte.batch import DONE, ClipResult

    data = review_data([ClipResult(Path("a.mp4"), "a.mp4", DONE, stats=stats)])
    assert data["clips"][0]["flagged"] == {"chatter": [], "holes": [5]}


# --- the validation benchmark, as the page shows it, made small --------------------------------------------------

def run_benchmark(line: str, extra: list[str], replace: dict[str, str]) -> str:
    """A ``python benchmarks/...`` line of the page, run from the repository with its environment assignments
    (paths relative to the repository), its arguments in ``replace`` swapped, ``extra`` appended; its stdout."""
    args = shlex.split(line)
    environment = {name: str((REPO / value).resolve()) for name, value in
                   (part.split("=", 1) for part in args[: args.index("python")])}
    args = [replace.get(arg, arg) for arg in args[args.index("python") + 1:]]
    result = subprocess.run([sys.executable, *args, *extra], cwd=REPO, capture_output=True, text=True, timeout=900,
                            env={**media.env_for_cli(), **environment})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_chatter_benchmark_command_of_the_page(tmp_path, samples_dir, weights_dir):
    (line,) = doc_commands("python benchmarks/chatter.py")
    figure = re.search(r"--figure (\S+)", line).group(1)
    out = run_benchmark(line, ["--frames", "20", "--size", "160x90"], {figure: str(tmp_path / "figure.png")})
    assert re.search(r"all \d+ frames: Pearson -?[\d.]+, Spearman -?[\d.]+", out), out
    assert cv2.imread(str(tmp_path / "figure.png")) is not None


def test_preview_benchmark_commands_of_the_page(small_clip, weights_dir):
    """The page's clips swapped for a small one; its 1080p clip made 20 frames long."""
    samples, hd = doc_commands("python benchmarks/preview.py")
    clips = [arg for arg in shlex.split(samples) if arg.startswith("../shared/")]
    out = run_benchmark(samples, ["--frames", "3"], dict.fromkeys(clips, str(small_clip)))
    assert re.search(r"kids.mp4 \(192x108, 40 frames\): preview of 3 frames after \d+ warm-up frames MAD x1e3 "
                     r"max [\d.]+", out), out
    frames = re.search(r"--hd-frames (\d+)", hd).group(1)
    out = run_benchmark(hd, ["--frames", "3"], {frames: "20"})
    assert re.search(r"bedroom_1920x1080_20.mp4 \(1920x1080, 20 frames\): preview of 3 frames after 4 warm-up "
                     r"frames MAD x1e3 max [\d.]+", out), out
    assert re.search(r"bedroom_1920x1080_20.mp4: commands: vmatte preview [\d.]+ s, the full run [\d.]+ s", out), \
        out  # the page's command times the two commands (--commands)


def test_statistics_cross_a_process_boundary():
    """A Ray worker returns its clip's statistics pickled: everything but the optical flow and the lock travels."""
    import pickle


    stats = FrameStats(10, 50, "01:00:00:00")
    stats.coverage, stats.chatter, stats.holes = [12.5, 13.0], [0.1, 0.2], [0.0, 0.0]
    copy = pickle.loads(pickle.dumps(stats))
    assert (copy.coverage, copy.chatter, copy.holes, copy.sheet_frames, copy.timecode) == \
        (stats.coverage, stats.chatter, stats.holes, stats.sheet_frames, stats.timecode)
    assert copy._flow is not None and copy._lock is not stats._lock
