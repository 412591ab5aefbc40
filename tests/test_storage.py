"""Storage trouble while writing: a full disk, and two runs writing the same output.

* Full disk: the output's file system fills up (here: a file-size limit, RLIMIT_FSIZE, which fails writes
  with EFBIG exactly where a full disk fails them with ENOSPC). One line names the output, the exit is
  non-zero, no half-written output appears, and the work folder stays so the same command resumes.
* Concurrent runs: a run holds a lock on its work folder for its whole life; a second run on the same output
  is refused with a clear line, and a killed run leaves nothing that blocks the next one.
"""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
from pathlib import Path

import av
import media
import numpy as np
import pytest

from vmatte.resume import LOCK, locked_work_dirs, work_dir_for

FRAMES = 100  # two segments (64 + 36): the joined output is larger than either segment


@pytest.fixture(scope="module")
def textured_clip(tmp_path_factory, weights_dir) -> Path:  # every run here loads the shared weights
    """A 320x192 clip of moving noise: its ProRes foreground is large (~220 KB a frame) and predictable."""
    path = tmp_path_factory.mktemp("clip") / "texture.mp4"
    texture = np.random.default_rng(0).integers(0, 255, (192, 400, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 192, "yuv420p"
        for index in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(texture[:, index % 80:][:, :320]), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def run_vmatte(args, cwd, file_size_limit: int | None = None) -> subprocess.CompletedProcess:
    def limit_file_size():
        # Ignored, SIGXFSZ no longer kills the process: the write fails with EFBIG, as a full disk fails one.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    # A cache of its own: a compiled model already in the user's cache would leave nothing to write there.
    env = {**media.env_for_cli(), "VMATTE_HOME": str(Path(cwd) / "vmatte-home")}
    return subprocess.run([sys.executable, "-m", "vmatte", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=env, preexec_fn=limit_file_size if file_size_limit else None)


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


# PyTorch, so that the outputs are the only files written (OpenVINO would also write its compiled model to the cache).
OUTPUTS_ONLY = ["-r", "0.25", "--preroll", "0", "--backend", "torch"]


def test_full_disk_names_the_output_and_the_same_command_resumes(tmp_path, textured_clip):
    args = [textured_clip, "--fgr", "fgr.mov", *OUTPUTS_ONLY, "-q"]
    # Each 64-frame segment (about 14 MB) fits under the limit; the joined output (about 22 MB) does not.
    full = run_vmatte(args, tmp_path, file_size_limit=18 << 20)
    assert full.returncode != 0
    errors = error_lines(full)
    assert len(errors) == 1 and "fgr.mov" in errors[0] and "no space left" in errors[0], full.stderr
    assert "run the same command again to resume" in errors[0]
    assert not (tmp_path / "fgr.mov").exists(), "a half-written output was left under the finished name"
    assert (work_dir_for(tmp_path / "fgr.mov") / "checkpoint.pt").is_file(), "the work folder was not kept"

    resumed = run_vmatte(args[:-1], tmp_path)  # space freed: the same command, progress shown
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming texture.mp4 from frame" in resumed.stderr
    assert len(media.read_track(tmp_path / "fgr.mov").times) == FRAMES
    assert not work_dir_for(tmp_path / "fgr.mov").exists()


def test_full_disk_while_writing_a_segment(tmp_path, textured_clip):
    """The first segment itself does not fit: nothing is finished, the message still names the output."""
    full = run_vmatte([textured_clip, "--fgr", "fgr.mov", *OUTPUTS_ONLY, "-q"], tmp_path, file_size_limit=4 << 20)
    assert full.returncode != 0
    errors = error_lines(full)
    assert len(errors) == 1 and "fgr.mov: no space left" in errors[0], full.stderr
    assert not (tmp_path / "fgr.mov").exists()


def test_full_disk_while_caching_a_compiled_model_names_the_cache(tmp_path, textured_clip):
    """The OpenVINO backend writes its compiled model (about 15 MB) to the cache: that is the folder named."""
    full = run_vmatte([textured_clip, "--out", "alpha.mov", "-r", "0.25", "--backend", "openvino", "-q"], tmp_path,
                      file_size_limit=4 << 20)
    assert full.returncode != 0
    errors = error_lines(full)
    assert len(errors) == 1 and "cannot write the compiled model to" in errors[0], full.stderr
    assert "VMATTE_HOME" in errors[0] and "--backend torch" in errors[0]
    assert str(tmp_path / "vmatte-home") in errors[0]


def test_a_second_run_on_the_same_output_is_refused(tmp_path, textured_clip):
    output = tmp_path / "alpha.mov"
    work_dir = work_dir_for(output)
    with locked_work_dirs({work_dir: str(output)}):  # what a run in progress holds
        (work_dir / "checkpoint.pt").write_bytes(b"the other run's progress")
        second = run_vmatte([textured_clip, "--out", output, "-q"], tmp_path)
        assert second.returncode != 0
        errors = error_lines(second)
        assert len(errors) == 1 and "another vmatte run is writing it" in errors[0], second.stderr
        assert str(output) in errors[0]
        assert (work_dir / "checkpoint.pt").read_bytes() == b"the other run's progress", "the other run's work"
    assert not output.exists()


def test_a_killed_run_does_not_block_the_next(tmp_path, textured_clip):
    output = tmp_path / "alpha.mov"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from vmatte.resume import locked_work_dirs\n"
        f"with locked_work_dirs({{__import__('pathlib').Path({str(work_dir_for(output))!r}): 'x'}}):\n"
        "    print('locked', flush=True); time.sleep(600)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert (work_dir_for(output) / LOCK).exists()
    finally:
        holder.kill()  # SIGKILL: no clean-up runs
        holder.wait()
    result = run_vmatte([textured_clip, "--out", output, "-r", "0.25", "-q"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(media.read_track(output).times) == FRAMES
    assert not work_dir_for(output).exists()
