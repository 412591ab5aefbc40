"""Hardening (docs/robustness.md): Ctrl-C and SIGTERM at every moment of a real ``python -m vmatte`` process
(start-up imports, model load, the first chunk, a second signal, a batch) end in one line with exit 130/143, and
the same command then resumes to exactly the uninterrupted output; errors that need no model come before PyTorch
is imported; the page's commands run."""

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import media
import numpy as np
import pytest
from typer.testing import CliRunner

from vmatte import interrupts
from vmatte.batch import BATCH_INTERRUPTED
from vmatte.cli import app, with_command

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


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A 96x64 clip of 12 frames, and its uninterrupted alpha matte (reference/alpha.mov)."""
    folder = tmp_path_factory.mktemp("clip")
    media.write_numbered_clip(folder / "clip.mov", "mpeg4", 12)
    (folder / "reference").mkdir()
    (folder / "reference" / "clip.mov").symlink_to(folder / "clip.mov")
    result = run(ARGS, folder / "reference")
    assert result.returncode == 0, result.stderr
    return folder


# (signal, what to wait for, then seconds): from the handlers going in (typer, rich and PyTorch imports follow),
# through loading the model, to the work folder appearing (the first chunk, the graph build), and a second signal.
MOMENTS = [(signal.SIGINT, "handlers", 0.0, False), (signal.SIGINT, "handlers", 0.3, False),
           (signal.SIGTERM, "handlers", 1.0, False), (signal.SIGINT, "handlers", 2.5, False),
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
            wait_until(lambda p=process: work_folder.exists() or p.poll() is not None)
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
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in ("a.mov", "b.mov"):
        (clips / name).symlink_to(folder / "clip.mov")
    args = [clips, "--out-dir", tmp_path / "mattes", "--out-template", "alpha={stem}.mov", "--chunk", "2", "-q"]
    process = start(args, tmp_path)
    wait_until(lambda: (tmp_path / "mattes" / "a.mov").exists() or process.poll() is not None, timeout=300)
    interrupt(process, signal.SIGINT)
    result = run(args, tmp_path)
    assert result.returncode == 0, result.stderr
    expected = alpha_and_times(folder / "reference" / "alpha.mov")
    for name in ("a.mov", "b.mov"):
        actual = alpha_and_times(tmp_path / "mattes" / name)
        assert np.array_equal(expected[0], actual[0]) and expected[1] == actual[1]


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
