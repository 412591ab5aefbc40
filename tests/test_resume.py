"""Crash-safe resume: runs killed with SIGKILL at random frames (once, twice, and while the outputs are being
put in place) and then run again produce exactly what an uninterrupted run produces; Ctrl-C stops cleanly;
changed settings and damaged checkpoints are handled."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from backends import BACKENDS

from vmatte.resume import CHECKPOINT, load_checkpoint, work_dir_for

LONG_CLIP = "robustness_videos/mmaction2_basketball_2997_426x240.mp4"  # 300 frames
AUDIO_CLIP = "portrait_videos/sam2_coffee_hands_2997_aac.mp4"  # 287 frames, AAC: the longest sample with audio
# Dies (SIGKILL) in the middle of putting the second output in place, after the first is finished.
KILL_WHILE_JOINING = """
import os, signal, sys
import vmatte.outputs as outputs
real_join, calls = outputs.join_segments, []
def join_then_die(segments, path, *args, **kwargs):
    calls.append(path)
    if len(calls) == 2:
        path.with_name("." + path.stem + ".partial" + path.suffix).write_bytes(b"half a movie")
        os.kill(os.getpid(), signal.SIGKILL)
    real_join(segments, path, *args, **kwargs)
outputs.join_segments = join_then_die
from vmatte.cli import main
sys.argv = ["vmatte", *sys.argv[1:]]
main()
"""


def vmatte(args, cwd, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vmatte", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


def run_to_end(args, cwd, script=None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", script, *args] if script else [sys.executable, "-m", "vmatte", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)


def wait_for_checkpoint(work_dir: Path, after: int = -1, timeout: float = 300) -> int:
    """Waits until a checkpoint beyond frame ``after`` is on disk; returns its frame."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            checkpoint = load_checkpoint(work_dir)
        except Exception:  # being replaced right now
            checkpoint = None
        if checkpoint is not None and checkpoint.next_frame > after:
            return checkpoint.next_frame
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint in {work_dir} after {timeout} s")


def kill_at_random_frame(args, cwd, work_dir, rng, after=-1) -> int:
    process = vmatte(args, cwd)
    reached = wait_for_checkpoint(work_dir, after)
    time.sleep(rng.uniform(0.0, 1.0))
    process.kill()
    process.wait()
    return reached


def decoded(path: Path):
    """Every video frame (as 16-bit arrays) with its pts, and the audio packets' bytes and pts."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        fmt = "rgba64le" if "a" in video.codec_context.pix_fmt.split("p")[0][3:] else "rgb48le"
        frames = [(f.pts, f.to_ndarray(format=fmt)) for f in container.decode(video)]
    with av.open(str(path)) as container:
        audio = [(p.pts, bytes(p)) for s in container.streams.audio for p in container.demux(s) if p.dts is not None]
    return frames, audio


def assert_same_outputs(expected_dir: Path, actual_dir: Path, names) -> None:
    for name in names:
        expected, actual = expected_dir / name, actual_dir / name
        if expected.is_dir():
            files = sorted(p.name for p in expected.iterdir())
            assert files == sorted(p.name for p in actual.iterdir()), name
            for file in files:
                assert (expected / file).read_bytes() == (actual / file).read_bytes(), f"{name}/{file}"
            continue
        (frames_a, audio_a), (frames_b, audio_b) = decoded(expected), decoded(actual)
        assert len(frames_a) == len(frames_b), name
        assert [p for p, _ in frames_a] == [p for p, _ in frames_b], f"{name}: timestamps differ"
        for t, ((_, a), (_, b)) in enumerate(zip(frames_a, frames_b)):
            assert np.array_equal(a, b), f"{name}: frame {t} differs (max {np.abs(a.astype(int) - b).max()})"
        assert audio_a == audio_b, f"{name}: audio differs"
    assert not list(actual_dir.glob(".*.vmatte")), "work folders left behind"


@pytest.fixture(scope="module")
def env():
    return dict(os.environ)


@pytest.fixture(scope="module")
def long_clip(samples_dir):
    return samples_dir / LONG_CLIP


@pytest.fixture(scope="module")
def references(tmp_path_factory, long_clip):
    """Uninterrupted runs (ProRes alpha, ProRes foreground and a PNG alpha sequence), one per backend asked."""
    made = {}

    def reference(backend: str = "auto") -> Path:
        if backend not in made:
            folder = tmp_path_factory.mktemp(f"reference-{backend}")
            result = run_to_end([str(long_clip), *LONG_ARGS, "--backend", backend], folder)
            assert result.returncode == 0, result.stdout + result.stderr
            made[backend] = folder
        return made[backend]

    return reference


@pytest.fixture(scope="module")
def reference(references):
    return references()


LONG_ARGS = ["--out", "alpha.mov", "--fgr", "fgr.mov", "--comp", "comp/", "--bg", "#2040ff", "-r", "0.5",
             "--png-depth", "16", "-q"]
LONG_OUTPUTS = ["alpha.mov", "fgr.mov", "comp"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_killed_once_resumes_exactly(tmp_path, long_clip, references, backend):
    rng = random.Random(1)
    reference = references(backend)
    args = [str(long_clip), *LONG_ARGS[:-1], "--backend", backend, "-q"]
    reached = kill_at_random_frame(args, tmp_path, tmp_path / ".alpha.mov.vmatte", rng)
    assert not (tmp_path / "alpha.mov").exists() and not (tmp_path / "comp").exists()
    result = run_to_end(args[:-1], tmp_path)  # not quiet: it says where it resumed
    assert result.returncode == 0, result.stdout + result.stderr
    resumed_at = [line for line in (result.stdout + result.stderr).splitlines() if "resuming" in line]
    assert resumed_at and "of 300" in resumed_at[0], result.stderr
    assert int(resumed_at[0].split("from frame ")[1].split()[0]) >= reached
    assert_same_outputs(reference, tmp_path, LONG_OUTPUTS)


def test_killed_twice_resumes_exactly(tmp_path, long_clip, reference):
    rng = random.Random(2)
    args = [str(long_clip), *LONG_ARGS]
    work = tmp_path / ".alpha.mov.vmatte"
    first = kill_at_random_frame(args, tmp_path, work, rng)
    kill_at_random_frame(args, tmp_path, work, rng, after=first)
    result = run_to_end(args, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_same_outputs(reference, tmp_path, LONG_OUTPUTS)


def test_killed_while_putting_outputs_in_place(tmp_path, long_clip, reference):
    args = [str(long_clip), *LONG_ARGS]
    killed = run_to_end(args, tmp_path, script=KILL_WHILE_JOINING)
    assert killed.returncode == -signal.SIGKILL
    assert (tmp_path / "alpha.mov").exists() and not (tmp_path / "fgr.mov").exists()
    result = run_to_end(args, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_same_outputs(reference, tmp_path, LONG_OUTPUTS)
    assert not list(tmp_path.glob(".*partial*"))


def test_foreground_with_audio_resumes_exactly(tmp_path, samples_dir):
    clip = samples_dir / AUDIO_CLIP
    args = [str(clip), "--fgr", "fgr.mov", "-r", "0.25", "-q"]
    expected = tmp_path / "expected"
    expected.mkdir()
    assert run_to_end(args, expected).returncode == 0
    actual = tmp_path / "actual"
    actual.mkdir()
    kill_at_random_frame(args, actual, actual / ".fgr.mov.vmatte", random.Random(3))
    result = run_to_end(args, actual)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_same_outputs(expected, actual, ["fgr.mov"])
    with av.open(str(actual / "fgr.mov")) as container:
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac"


def test_ctrl_c_stops_quickly_and_says_how_to_resume(tmp_path, long_clip, reference):
    args = [str(long_clip), *LONG_ARGS]
    process = vmatte(args, tmp_path)
    wait_for_checkpoint(tmp_path / ".alpha.mov.vmatte")
    start = time.monotonic()
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=30)
    assert time.monotonic() - start < 2.0
    assert process.returncode == 130
    assert "resume" in output and "--fresh" in output and "Traceback" not in output
    assert not (tmp_path / "alpha.mov").exists()
    result = run_to_end(args, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_same_outputs(reference, tmp_path, LONG_OUTPUTS)


def test_changed_settings_refuse_to_resume_until_fresh(tmp_path, long_clip):
    args = [str(long_clip), "--out", "alpha.mov", "-r", "0.5", "-q"]
    kill_at_random_frame(args, tmp_path, tmp_path / ".alpha.mov.vmatte", random.Random(4))
    changed = [str(long_clip), "--out", "alpha.mov", "-r", "0.4", "-q"]
    refused = run_to_end(changed, tmp_path)
    assert refused.returncode != 0
    assert "downsample_ratio: 0.5 -> 0.4" in refused.stderr and "--fresh" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "alpha.mov").exists()
    fresh = run_to_end([*changed, "--fresh"], tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    with av.open(str(tmp_path / "alpha.mov")) as container:
        assert container.streams.video[0].frames == 300


def test_damaged_checkpoint_restarts_cleanly(tmp_path, long_clip, reference):
    args = [str(long_clip), *LONG_ARGS]
    work = tmp_path / ".alpha.mov.vmatte"
    kill_at_random_frame(args, tmp_path, work, random.Random(5))
    checkpoint = work / CHECKPOINT
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    result = run_to_end(args[:-1], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "unreadable checkpoint" in result.stderr and "starting over" in result.stderr
    assert_same_outputs(reference, tmp_path, LONG_OUTPUTS)


def test_work_folder_names():
    assert work_dir_for("clips/alpha.mov") == Path("clips/.alpha.mov.vmatte")
    assert work_dir_for("plates/matte/") == Path("plates/.matte.vmatte")
    assert work_dir_for("plates/matte/%06d.png") == Path("plates/.matte.vmatte")


# Dies (SIGKILL) right after the first checkpoint is on disk: a kill at a known point, on a short clip.
KILL_AFTER_FIRST_CHECKPOINT = """
import os, signal, sys
import vmatte.pipeline as pipeline
real_save = pipeline.save_checkpoint
def save_then_die(*args, **kwargs):
    real_save(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
pipeline.save_checkpoint = save_then_die
from vmatte.cli import main
sys.argv = ["vmatte", *sys.argv[1:]]
main()
"""


def test_quality_best_resumes_exactly(tmp_path, samples_dir):
    """Every pass's recurrent state is in the checkpoint: a killed --quality best run resumes to the same frames;
    resuming it under another quality is refused."""
    clip = samples_dir / "robustness_videos/moviepy_transparent_vp9alpha_200x200.webm"  # 150 frames
    outputs = ["--out", "alpha.mov", "--fgr", "fgr.mov", "-r", "0.25", "-q"]
    args = [str(clip), "--quality", "best", *outputs]
    expected, actual = tmp_path / "expected", tmp_path / "actual"
    expected.mkdir()
    actual.mkdir()
    result = run_to_end(args, expected)
    assert result.returncode == 0, result.stdout + result.stderr
    killed = run_to_end(args, actual, script=KILL_AFTER_FIRST_CHECKPOINT)
    assert killed.returncode == -signal.SIGKILL
    saved = load_checkpoint(actual / ".alpha.mov.vmatte")
    # Three passes, four recurrent tensors each, and the region pass's window.
    assert saved.next_frame == 64 and len(saved.stream["state"]) == 13
    refused = run_to_end([str(clip), *outputs], actual)
    change = "passes: ['plain', 'mirror', 'plain@1.25 region x2'] -> None"
    assert refused.returncode != 0 and change in refused.stderr, refused.stderr
    result = run_to_end(args, actual)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_same_outputs(expected, actual, ["alpha.mov", "fgr.mov"])


def test_a_frame_pattern_input_resumes_exactly(tmp_path, long_clip):
    """``plates/shot_%04d.png`` resumes like a folder does (its images are the fingerprinted input)."""
    plates = tmp_path / "plates"
    plates.mkdir()
    with av.open(str(long_clip)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index == 80:
                break
            av.VideoFrame.from_ndarray(frame.reformat(width=160, height=96).to_ndarray(format="rgb24"),
                                       format="rgb24").save(str(plates / f"shot_{1001 + index:04d}.png"))
    args = [str(plates / "shot_%04d.png"), "--out", "alpha/matte.%04d.png", "--fgr", "fgr.mov", "-q"]
    for folder in ("reference", "resumed"):
        (tmp_path / folder).mkdir()
    assert run_to_end(args, tmp_path / "reference").returncode == 0
    killed = run_to_end(args, tmp_path / "resumed", script=KILL_AFTER_FIRST_CHECKPOINT)
    assert killed.returncode == -signal.SIGKILL
    finished = run_to_end(args, tmp_path / "resumed")
    assert finished.returncode == 0, finished.stderr
    assert "resuming shot_%04d.png from frame" in finished.stderr
    assert_same_outputs(tmp_path / "reference", tmp_path / "resumed", ["alpha", "fgr.mov"])
    assert sorted(p.name for p in (tmp_path / "resumed" / "alpha").iterdir())[0] == "matte.1001.png"
