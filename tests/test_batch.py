"""Batch runs on a small folder of real clips: outputs, failures, skipping finished clips, parallel jobs."""

import shutil
import time
from fractions import Fraction
from pathlib import Path

import av
import pytest
from rich.console import Console
from rich.progress import Progress, TextColumn
from typer.testing import CliRunner

from vmatte.batch import (
    DONE,
    FAILED,
    NOT_VIDEO,
    SKIPPED,
    find_videos,
    output_complete,
    render_report,
    run_batch,
)
from vmatte.cli import app
from vmatte.errors import VmatteError
from vmatte.pipeline import JobSettings, load_engine

TEMPLATES = {"alpha": "{stem}.alpha.mov", "comp": "{stem}_comp/%06d.png"}
OPTIONS = {"downsample_ratio": 0.25}
GOOD = ["clip_face.mp4", "day2/clip_bedroom.mp4"]  # relative to the input folder


def trim(source: Path, target: Path, frames: int = 8, size: tuple[int, int] = (160, 90)) -> None:
    """The first frames of a real clip, scaled down, as a small H.264 .mp4 at 25 fps."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(source)) as src, av.open(str(target), "w") as dst:
        stream = dst.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        for index, frame in enumerate(src.decode(video=0)):
            if index == frames:
                break
            small = frame.reformat(width=size[0], height=size[1], format="yuv420p")
            small.pts, small.time_base = index, Fraction(1, 25)
            dst.mux(stream.encode(small))
        dst.mux(stream.encode(None))


@pytest.fixture(scope="module")
def footage(tmp_path_factory, samples_dir) -> Path:
    """clip_face.mp4, day2/clip_bedroom.mp4, broken.mp4 (a copy of a corrupt file) and notes.txt."""
    folder = tmp_path_factory.mktemp("footage")
    trim(samples_dir / "portrait_videos" / "androidx_webcam_face_640x428.mov", folder / GOOD[0])
    trim(samples_dir / "portrait_videos" / "sam2_bedroom_child_960x540.mp4", folder / GOOD[1])
    shutil.copy(samples_dir / "robustness_videos" / "decord_corrupted.mp4", folder / "broken.mp4")
    (folder / "notes.txt").write_text("shot list\n")
    return folder


@pytest.fixture(scope="module")
def first_run(footage, tmp_path_factory):
    out = tmp_path_factory.mktemp("matted")
    notices = []
    report = run_batch(footage, out, TEMPLATES, OPTIONS, recursive=True, notice=notices.append)
    return out, report, notices


def files_under(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def never_load(settings):
    raise AssertionError("the model was loaded although every clip was finished")


def test_find_videos_filters_by_extension_skips_hidden_and_honours_glob(tmp_path):
    for name in ("B.MOV", "a.mp4", "notes.txt", ".hidden.mp4", ".a.mp4.vmatte/part.mp4", "sub/c.mkv",
                 "sub/.d.mp4", "sub/readme"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert find_videos(tmp_path) == ([tmp_path / "B.MOV", tmp_path / "a.mp4"], [tmp_path / "notes.txt"])
    videos, others = find_videos(tmp_path, recursive=True)
    assert videos == [tmp_path / "B.MOV", tmp_path / "a.mp4", tmp_path / "sub/c.mkv"]
    assert others == [tmp_path / "notes.txt", tmp_path / "sub/readme"]
    assert find_videos(tmp_path, recursive=True, glob="*.mov") == ([tmp_path / "B.MOV"], [])
    with pytest.raises(VmatteError, match="not a folder"):
        find_videos(tmp_path / "a.mp4")


def test_batch_writes_good_clips_reports_the_corrupt_one_and_skips_other_files(first_run):
    out, report, notices = first_run
    by_name = {clip.name: clip for clip in report.clips}
    assert list(by_name) == ["broken.mp4", "clip_face.mp4", "day2/clip_bedroom.mp4", "notes.txt"]
    for name in GOOD:
        clip = by_name[name]
        assert clip.status == DONE and clip.frames == 8 and clip.fps > 0
        stem = Path(name).stem
        assert clip.outputs["alpha"] == str(out / Path(name).parent / f"{stem}.alpha.mov")
        assert Path(clip.outputs["alpha"]).stat().st_size > 0
        assert len(list((out / Path(name).parent / f"{stem}_comp").glob("*.png"))) == 8
    broken = by_name["broken.mp4"]
    assert broken.status == FAILED and "corrupt frame at index 30" in broken.message
    assert by_name["notes.txt"].status == NOT_VIDEO and "not a video (.txt)" in by_name["notes.txt"].message
    assert report.failed is True
    # The model is loaded (and told of) once; besides it only the CPU graph's one build.
    assert sum(n.startswith("model: rvm-mobilenetv3-onnx") for n in notices) == 1, notices
    assert sum("preparing the CPU graph" in n for n in notices) <= 1, notices
    assert all(n.startswith("model: ") or "preparing the CPU graph" in n for n in notices), notices

    console = Console(record=True, width=80)  # a plain terminal
    console.print(render_report(report))
    text = console.export_text()
    assert "2 done, 1 failed, 1 not a video" in text
    assert all(len(line) <= 80 for line in text.splitlines())
    table, details = text.split("\n└", 1)[0], text.split("┘\n", 1)[1]
    assert "day2/clip_bedroom.mp4" in table and "corrupt frame" not in table  # one row per clip
    assert "".join(f"broken.mp4: {broken.message}".split()) in "".join(details.split()), details  # all of it


def test_second_run_skips_finished_clips_quickly(first_run, footage):
    out, _, _ = first_run
    before = files_under(out)
    start = time.perf_counter()
    report = run_batch(footage, out, TEMPLATES, OPTIONS, recursive=True, glob="clip_*", engine_factory=never_load)
    assert time.perf_counter() - start < 2
    assert [(clip.name, clip.status) for clip in report.clips] == [(name, SKIPPED) for name in GOOD]
    assert not report.failed
    assert files_under(out) == before


def test_two_jobs_write_the_same_files_as_one(first_run, footage, tmp_path):
    sequential, _, _ = first_run
    progress = Progress(TextColumn("{task.description} {task.fields[fps]:.1f} fps"), disable=True)
    report = run_batch(footage, tmp_path, TEMPLATES, OPTIONS, recursive=True, glob="clip_*", jobs=2,
                       progress=progress)
    assert [clip.status for clip in report.clips] == [DONE, DONE]
    # Clip tasks removed; the batch's counts the clips and the frames matted (8 each), over the frames needed.
    assert [(task.description, task.completed, task.total) for task in progress.tasks] == [("clips 2/2", 16, 16)]
    expected = {name: data for name, data in files_under(sequential).items() if "clip_" in name}
    assert files_under(tmp_path) == expected


def test_outputs_beside_the_clips_are_not_taken_for_new_clips(tmp_path):
    (tmp_path / "take.mp4").write_bytes(b"")
    (tmp_path / "take.alpha.mov").write_bytes(b"finished")
    (tmp_path / "take_comp").mkdir()
    (tmp_path / "take_comp" / "000000.png").write_bytes(b"finished")
    report = run_batch(tmp_path, tmp_path, TEMPLATES, OPTIONS, recursive=True, engine_factory=never_load)
    assert [(clip.name, clip.status) for clip in report.clips] == [("take.mp4", SKIPPED)]


def test_clips_whose_outputs_would_collide_are_failed_not_overwritten(tmp_path):
    for name in ("take.mov", "take.mp4"):
        (tmp_path / "in" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "in" / name).write_bytes(b"")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "take.alpha.mov").write_bytes(b"finished")
    report = run_batch(tmp_path / "in", tmp_path / "out", {"alpha": "{stem}.alpha.mov"}, {},
                       engine_factory=never_load)
    first, second = report.clips
    assert (first.name, first.status) == ("take.mov", SKIPPED)
    assert second.status == FAILED and "would overwrite those of take.mov; put {name}" in second.message


def test_a_work_folder_means_the_output_is_not_finished(tmp_path):
    movie, frames = tmp_path / "a.alpha.mov", tmp_path / "a_comp" / "%06d.png"
    movie.write_bytes(b"x")
    (tmp_path / "a_comp").mkdir()
    (tmp_path / "a_comp" / "000000.png").write_bytes(b"x")
    assert output_complete(str(movie)) and output_complete(str(frames))
    (tmp_path / ".a.alpha.mov.vmatte").mkdir()
    (tmp_path / ".a_comp.vmatte").mkdir()
    assert not output_complete(str(movie)) and not output_complete(str(frames))
    assert not output_complete(str(tmp_path / "missing.mov"))


def test_an_unexpected_error_in_one_clip_is_reported_and_the_batch_goes_on(footage, tmp_path):
    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    def exploding_engine(settings):
        engine = load_engine(settings, notice=lambda message: None)
        engine.run = explode
        return engine

    report = run_batch(footage, tmp_path, {"alpha": "{stem}.mov"}, OPTIONS, recursive=True, glob="clip_*",
                       engine_factory=exploding_engine)
    assert [(clip.status, clip.message) for clip in report.clips] == [(FAILED, "RuntimeError: boom")] * 2
    assert report.failed
    with pytest.raises(VmatteError, match="--jobs 0"):
        run_batch(footage, tmp_path, {"alpha": "{stem}.mov"}, OPTIONS, jobs=0)


@pytest.mark.usefixtures("weights_dir")
def test_load_engine_uses_the_settings_model():
    engine = load_engine(JobSettings(Path("x"), {}, model="rvm-mobilenetv3-int8"), notice=print)
    assert engine.model_name == "rvm-mobilenetv3-int8"


def test_the_command_line_exits_1_when_a_clip_failed(footage, tmp_path):
    """The batch's own exit code, after its table: not an error of vmatte's."""
    result = CliRunner().invoke(app, ["run", str(footage), "--out-template", "alpha={stem}.alpha.mov", "--out-dir",
                                      str(tmp_path), "--glob", "*.mp4", "-r", "0.25", "-q"])
    assert result.exit_code == 1, result.output
    assert "1 done, 1 failed" in result.stderr and "unexpected" not in result.stderr, result.stderr
