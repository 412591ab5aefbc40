"""Hardening (docs/robustness.md): Ctrl-C and SIGTERM at every moment of a real ``python -m vmatte`` process
(start-up imports, model load, the first chunk, a second signal, a batch, a batch on Ray) end in one line with exit
130/143, and the same command then resumes to exactly the uninterrupted output; errors that need no model come
before PyTorch is imported; outputs keep what the source was (constant or variable rate, MP4-playable audio, WebM
alpha seen); the page's commands run."""

import importlib.util
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import media
import numpy as np
import pytest
from typer.testing import CliRunner

from vmatte import interrupts
from vmatte.batch import BATCH_INTERRUPTED
from vmatte.cli import app, with_command
from vmatte.compiled_cache import graphs, prune
from vmatte.io import open_source, open_writer, probe
from vmatte.io.audio import AudioCut
from vmatte.io.segments import join_segments
from vmatte.resume import LOCK

REPO = Path(__file__).resolve().parents[1]
DOCS = (REPO / "docs" / "robustness.md").read_text()
ARGS = ["clip.mov", "--out", "alpha.mov", "--chunk", "2", "-q"]
NOTICE = re.compile(r"^(model: |note: )")  # lines a run may print before it is stopped


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vmatte", *map(str, args)], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=media.env_for_cli())


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vmatte", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env=media.env_for_cli(), timeout=300)


def wait_until(condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def handlers_installed(process: subprocess.Popen) -> bool:
    """Whether the process catches SIGTERM yet (Python alone does not): vmatte's handlers are in."""
    if process.poll() is not None:
        return True
    status = Path(f"/proc/{process.pid}/status").read_text()
    caught = int(re.search(r"^SigCgt:\s*([0-9a-f]+)", status, re.M).group(1), 16)
    return bool(caught >> (signal.SIGTERM - 1) & 1)


def holds_work_folder(process: subprocess.Popen, work_folder: Path) -> bool:
    """Whether this run has opened its work folder's lock file (the folder itself may be left from an earlier,
    interrupted run, so its existence says nothing about this one); looked up in /proc, never by locking."""
    if process.poll() is not None:
        return True
    lock = str(work_folder / LOCK)
    fds = Path(f"/proc/{process.pid}/fd")
    try:
        return any(os.readlink(fd) == lock for fd in fds.iterdir())
    except OSError:  # a descriptor closed while looking
        return False


def interrupt(process: subprocess.Popen, signum: int, again: bool = False) -> bool:
    """Sends ``signum`` (twice with ``again``) and checks the process ends as promised; False when it had already
    finished (the moment came too late)."""
    if process.poll() is not None:
        process.communicate()
        return False
    process.send_signal(signum)
    if again:
        time.sleep(0.02)
        if process.poll() is None:
            process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    lines = [line for line in stderr.splitlines() if line.strip() and not NOTICE.match(line)]
    assert process.returncode == 128 + signum, stderr
    assert len(lines) == 1, stderr  # one line, no traceback, no internal error
    assert lines[0] in (interrupts.BEFORE_WORK, interrupts.SECOND, interrupts.AFTER_WORK) or \
        lines[0].startswith("error: interrupted at frame ") or BATCH_INTERRUPTED in lines[0], stderr
    return True


def alpha_and_times(path: Path):
    return media.matte_from_prores(path), media.decoded_times(path)[0]


@pytest.fixture(scope="module", autouse=True)
def home(tmp_path_factory):
    """A cache of the module's own, so the first run builds its CPU graph (and says so)."""
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("home")
        patch.setenv("VMATTE_HOME", str(folder))
        yield folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory, home) -> Path:
    """A 96x64 clip of 48 frames, and its uninterrupted alpha matte (reference/alpha.mov): long enough for the
    moments below to land while it is matted."""
    folder = tmp_path_factory.mktemp("clip")
    media.write_numbered_clip(folder / "clip.mov", "mpeg4", 48)
    (folder / "reference").mkdir()
    (folder / "reference" / "clip.mov").symlink_to(folder / "clip.mov")
    result = run(ARGS, folder / "reference")
    assert result.returncode == 0, result.stderr
    assert "preparing the CPU graph for the model, once (every frame size reuses it)" in result.stderr
    # One graph for the run (its pre-roll included), and the release's imported weights.
    assert sorted(graph.path.name.split("-")[1] for graph in graphs(home / "compiled")) == ["refine", "weights"]
    return folder


# (signal, what to wait for, then seconds): from the handlers going in (typer, rich and PyTorch imports follow),
# through loading the model, to the work folder appearing (the first chunk, the graph build), and a second signal.
MOMENTS = [(signal.SIGINT, "handlers", 0.0, False), (signal.SIGINT, "handlers", 0.3, False),
           (signal.SIGTERM, "handlers", 0.7, False), (signal.SIGINT, "handlers", 1.2, False),
           (signal.SIGINT, "work folder", 0.0, False), (signal.SIGTERM, "work folder", 0.3, False),
           (signal.SIGINT, "work folder", 0.0, True)]


def test_a_signal_at_any_moment_is_one_line_and_the_same_command_resumes_exactly(folder, tmp_path):
    (tmp_path / "clip.mov").symlink_to(folder / "clip.mov")
    work_folder = tmp_path / ".alpha.mov.vmatte"
    stopped = 0
    for signum, wait_for, seconds, again in MOMENTS:
        process = start(ARGS, tmp_path)
        if wait_for == "handlers":
            wait_until(lambda p=process: handlers_installed(p))
        else:
            wait_until(lambda p=process: holds_work_folder(p, work_folder.resolve()))
        time.sleep(seconds)
        if not interrupt(process, signum, again):
            break
        stopped += 1
        assert not (tmp_path / "alpha.mov").exists() or process.returncode == 0
    assert stopped >= 4, "the clip ran out before the moments did"
    if not (tmp_path / "alpha.mov").exists():
        result = run(ARGS, tmp_path)
        assert result.returncode == 0, result.stderr
    expected, actual = alpha_and_times(folder / "reference" / "alpha.mov"), alpha_and_times(tmp_path / "alpha.mov")
    assert np.array_equal(expected[0], actual[0]) and expected[1] == actual[1]
    assert not work_folder.exists()


def test_a_batch_interrupted_after_its_first_clip_finishes_the_rest_when_run_again(folder, tmp_path):
    args = [two_clips(folder, tmp_path), "--out-dir", tmp_path / "mattes", "--out-template", "alpha={stem}.mov",
            "--chunk", "2", "-q"]
    process = start(args, tmp_path)
    wait_until(lambda: (tmp_path / "mattes" / "a.mov").exists() or process.poll() is not None, timeout=300)
    interrupt(process, signal.SIGINT)
    assert_batch_finishes_exactly(args, folder, tmp_path / "mattes")


def two_clips(folder: Path, tmp_path: Path) -> Path:
    """A folder of two clips (a.mov, b.mov), each the module's clip."""
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in ("a.mov", "b.mov"):
        (clips / name).symlink_to(folder / "clip.mov")
    return clips


def assert_batch_finishes_exactly(args: list, folder: Path, mattes: Path) -> None:
    """The same command, run again, finishes the batch: each clip's matte is the uninterrupted reference."""
    result = run(args, mattes.parent)
    assert result.returncode == 0, result.stderr
    expected = alpha_and_times(folder / "reference" / "alpha.mov")
    for name in ("a.mov", "b.mov"):
        actual = alpha_and_times(mattes / name)
        assert np.array_equal(expected[0], actual[0]) and expected[1] == actual[1]


def anyone_holds(lock: Path) -> bool:
    """Whether any process has ``lock`` open: on Ray the clip runs in a worker process, not the one started."""
    for fds in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(os.readlink(fd) == str(lock) for fd in fds.iterdir()):
                return True
        except OSError:  # another user's process, or one that ended while looking
            continue
    return False


# On a local Ray instance: during start-up (imports, Ray starting), and once the first clip runs in a worker (a
# SIGTERM, which Ray's own handler had turned into a stack dump and exit 1, and a second Ctrl-C).
RAY_MOMENTS = [(signal.SIGINT, 4.0, False), (signal.SIGTERM, None, False), (signal.SIGINT, None, True)]


@pytest.mark.skipif(os.environ.get("CI", "").lower() != "true" and not importlib.util.find_spec("ray"),
                    reason="Ray is not installed: pip install 'vmatte[ray]' (CI installs it)")
def test_a_signal_to_a_batch_on_ray_is_one_line_and_the_same_command_finishes_it_exactly(folder, tmp_path):
    args = [two_clips(folder, tmp_path), "--out-dir", tmp_path / "mattes", "--out-template", "alpha={stem}.mov",
            "--chunk", "2", "--ray", "local", "-q"]
    lock = (tmp_path / "mattes" / ".a.mov.vmatte" / LOCK).resolve()
    for signum, seconds, again in RAY_MOMENTS:
        process = start(args, tmp_path)
        if seconds is None:
            wait_until(lambda p=process: p.poll() is not None or anyone_holds(lock), timeout=300)
        else:
            wait_until(lambda p=process: handlers_installed(p))
            time.sleep(seconds)
        assert interrupt(process, signum, again), "the batch finished before the signal"
    assert_batch_finishes_exactly(args, folder, tmp_path / "mattes")


NEEDS_NO_TORCH = """
import sys
from vmatte.cli import main
for argv in map(str.split, sys.argv[1:]):
    sys.argv = ["vmatte", *argv]
    try:
        main()
    except SystemExit as exit:
        assert exit.code == 1, (argv, exit.code)
    else:
        raise AssertionError(f"{argv}: no error")
    assert "torch" not in sys.modules, f"'vmatte {' '.join(argv)}' imported torch"
"""


def test_errors_that_need_no_model_come_before_pytorch_loads(folder, tmp_path):
    (tmp_path / "alpha.mov").write_bytes(b"an earlier output")
    (tmp_path / "empty").mkdir()
    cases = {"clip.mov --out alpha.mov": "alpha.mov already exists",
             "clip.mov --out new.mov --weights /nonexistent.pth": "/nonexistent.pth: weight file not found",
             "clip.mov --out new.mov --weights clip.mov": "clip.mov: not a weight file",
             "clip.mov --out /proc/vmatte/alpha.mov": "cannot write in /proc",
             "missing.mov --out new.mov": "missing.mov: no such file",
             "empty --out-dir mattes --out-template alpha={stem}.mov": "empty: no videos to matte here"}
    (tmp_path / "clip.mov").symlink_to(folder / "clip.mov")
    result = subprocess.run([sys.executable, "-c", NEEDS_NO_TORCH, *cases], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, env=media.env_for_cli())
    assert result.returncode == 0, result.stderr
    for message in cases.values():
        assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_the_page_commands_run(folder, tmp_path):
    """Each ``vmatte`` line of the page's bash blocks, on the small clip (named as the page names it)."""
    commands = [shlex.split(re.sub(r"\s+#.*$", "", line.strip()))[1:]
                for block in re.findall(r"```bash\n(.*?)```", DOCS, re.S) for line in block.splitlines()
                if line.strip().startswith("vmatte ")]
    assert commands
    (tmp_path / "clip.mp4").symlink_to(folder / "clip.mov")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for args in commands:
            result = CliRunner().invoke(app, with_command(args))
            assert result.exit_code == 0, f"vmatte {shlex.join(args)}\n{result.output}"
    finally:
        os.chdir(cwd)


def write_blank(kind: str, path: Path, source: Path, **changes) -> None:
    """``kind`` frames at the source's timestamps (small and black: only the timing and audio matter here), with
    the source's audio where the kind has any, written as a run writes it (a segment, then joined)."""
    clip = open_source(source)
    info = replace(clip.info, width=32, height=18, **changes)
    segment = path.with_name(f"segment-{path.name}")
    with open_writer(kind, segment, info) as writer:
        for pts in clip.pts:
            writer.write(np.zeros((18, 32, 4 if kind == "fgr" else 3 if kind == "comp" else 1), np.float32), pts)
    clip.close()
    join_segments([segment], path, info, source if kind != "alpha" else None)


def test_a_constant_rate_clip_in_milliseconds_comes_out_constant_and_a_variable_rate_one_keeps_its_times(
        tmp_path, samples_dir):
    media.write_numbered_clip(tmp_path / "30fps.mkv", "mpeg4", 12, rate=30, container_format="matroska")
    source_times = media.decoded_times(tmp_path / "30fps.mkv")[0]
    assert {b - a for a, b in zip(source_times, source_times[1:])} == {Fraction(33, 1000), Fraction(34, 1000)}
    write_blank("alpha", tmp_path / "alpha.mov", tmp_path / "30fps.mkv")
    info = probe(tmp_path / "alpha.mov")
    assert (info.frame_rate, info.is_vfr) == (30, False)
    assert media.decoded_times(tmp_path / "alpha.mov")[0] == [Fraction(index, 30) for index in range(12)]
    phone = samples_dir / "robustness_videos/moviepy_fire2_rot180_vfr_phone.mp4"
    assert probe(phone).is_vfr
    write_blank("alpha", tmp_path / "phone.mov", phone)
    assert probe(tmp_path / "phone.mov").is_vfr
    assert media.decoded_times(tmp_path / "phone.mov")[0] == media.decoded_times(phone)[0]


def audio_codec(path: Path) -> str:
    with av.open(str(path)) as container:
        decoded = sum(frame.samples for frame in container.decode(audio=0))
        assert decoded > 0
        return container.streams.audio[0].codec_context.name


def test_mp4_outputs_carry_aac_and_mov_outputs_keep_pcm(tmp_path):
    media.write_numbered_clip(tmp_path / "pcm.mov", "mpeg4", 12, audio="pcm_s16le")
    media.write_numbered_clip(tmp_path / "aac.mp4", "mpeg4", 12, audio="aac")
    write_blank("comp", tmp_path / "from_pcm.mp4", tmp_path / "pcm.mov")
    write_blank("comp", tmp_path / "from_pcm.mov", tmp_path / "pcm.mov")
    write_blank("comp", tmp_path / "cut.mp4", tmp_path / "aac.mp4", audio_cut=AudioCut(0.08, 0.4, 0.08))
    assert audio_codec(tmp_path / "from_pcm.mp4") == "aac"
    assert audio_codec(tmp_path / "from_pcm.mov") == "pcm_s16le"
    assert audio_codec(tmp_path / "cut.mp4") == "aac"
    (cut,) = probe(tmp_path / "cut.mp4").audio
    assert cut.duration == pytest.approx(0.32, abs=2048 / 48000)  # the cut, give or take an AAC frame


def test_info_sees_the_alpha_of_a_webm_vmatte_wrote(tmp_path):
    media.write_numbered_clip(tmp_path / "clip.mov", "mpeg4", 3)
    write_blank("fgr", tmp_path / "fgr.webm", tmp_path / "clip.mov")
    result = CliRunner().invoke(app, ["info", str(tmp_path / "fgr.webm")])
    assert result.exit_code == 0 and re.search(r"pixel format: \S+ \(8-bit, alpha\)", result.output), result.output


def fake_graph(folder: Path, name: str, megabytes: float, used: float) -> Path:
    path = folder / f"rvm-{name}"
    path.mkdir(parents=True)
    (path / "model.bin").write_bytes(bytes(int(megabytes * 1e6)))
    os.utime(path, (used, used))
    return path


def test_the_graph_cache_keeps_to_its_limit_least_recently_used_out_and_the_cache_command_lists_and_clears(
        tmp_path, monkeypatch):
    monkeypatch.setenv("VMATTE_HOME", str(tmp_path))
    monkeypatch.setenv("VMATTE_COMPILED_CACHE_MB", "2.5")
    compiled = tmp_path / "compiled"
    old, in_use, recent = (fake_graph(compiled, name, 1, used) for name, used in
                           (("old", 1000), ("in-use", 500), ("recent", 3000)))
    fake_graph(compiled, "older", 1, 2000)  # 4 MB in all; 2.5 allowed: two go, the one in use stays
    removed = prune(compiled, keep=in_use)
    assert [graph.path for graph in removed] == [old, compiled / "rvm-older"]
    assert [graph.path for graph in graphs(compiled)] == [in_use, recent]
    listed = CliRunner().invoke(app, ["cache"])
    assert listed.exit_code == 0 and "rvm-recent" in listed.output and "2 entries, 2.0 MB" in listed.output
    cleared = CliRunner().invoke(app, ["cache", "clear"])
    assert cleared.exit_code == 0 and "removed 2 entries" in cleared.output and not graphs(compiled)
