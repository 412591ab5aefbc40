"""Batches on a local Ray instance (``--ray local``) write exactly what a local batch writes: the same report,
the same decoded frames; a worker process killed mid-clip costs at most a segment and changes nothing.

One Ray instance serves the whole module (it takes seconds to start); every test keeps its clips tiny.
"""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import media
import numpy as np
import pytest
from test_batch import trim

from vmatte.batch import DONE, FAILED, NOT_VIDEO, run_batch
from vmatte.errors import VmatteError
from vmatte.resume import load_checkpoint, work_dir_for
from vmatte.temporal import TemporalOptions

if os.environ.get("CI", "").lower() != "true":
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'vmatte[ray]' (CI installs it)")

from vmatte.cluster import connect, run_batch_on_ray  # noqa: E402

TEMPLATES = {"alpha": "{stem}.alpha.mov", "comp": "{stem}_comp/%06d.png"}
OPTIONS = {"downsample_ratio": 0.25}
FACE = "portrait_videos/androidx_webcam_face_640x428.mov"
BEDROOM = "portrait_videos/sam2_bedroom_child_960x540.mp4"
LONG_CLIP = "robustness_videos/mmaction2_basketball_2997_426x240.mp4"  # 300 frames


@pytest.fixture(scope="module")
def ray_local(weights_dir):
    """A local Ray instance for the module. Its worker processes inherit this environment, so the weights
    are set before it starts."""
    import ray

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VMATTE_WEIGHTS", str(weights_dir))
        patch.setenv("VMATTE_OFFLINE", "1")
        assert connect("local")
        yield
        ray.shutdown()


@pytest.fixture(scope="module")
def footage(tmp_path_factory, samples_dir) -> Path:
    folder = tmp_path_factory.mktemp("footage")
    trim(samples_dir / FACE, folder / "face.mp4", frames=6, size=(96, 64))
    trim(samples_dir / BEDROOM, folder / "day2" / "bedroom.mp4", frames=6, size=(96, 54))
    # The first half of a clip: its index (at the end) is lost, a failure of the clip's own, found quickly.
    trim(samples_dir / FACE, folder / "whole.mp4", frames=6, size=(96, 64))
    data = (folder / "whole.mp4").read_bytes()
    (folder / "broken.mp4").write_bytes(data[: len(data) // 2])
    (folder / "whole.mp4").unlink()
    (folder / "notes.txt").write_text("shot list\n")
    return folder


def decoded_outputs(folder: Path) -> dict[str, list[np.ndarray] | bytes]:
    """Every output under ``folder``: a movie as its decoded frames, any other file as its bytes."""
    outputs = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.suffix == ".mov":
            with av.open(str(path)) as container:
                outputs[path.relative_to(folder).as_posix()] = [
                    frame.to_ndarray(format="rgba64le") for frame in container.decode(video=0)]
        else:
            outputs[path.relative_to(folder).as_posix()] = path.read_bytes()
    return outputs


def assert_same_outputs(folder: Path, reference: Path) -> None:
    got, expected = decoded_outputs(folder), decoded_outputs(reference)
    assert sorted(got) == sorted(expected)
    for name, data in expected.items():
        if isinstance(data, list):
            assert len(got[name]) == len(data) and all(np.array_equal(a, b) for a, b in zip(got[name], data)), name
        else:
            assert got[name] == data, name


def test_ray_batch_writes_what_a_local_batch_writes(ray_local, footage, tmp_path):
    local = run_batch(footage, tmp_path / "local", TEMPLATES, OPTIONS, recursive=True, notice=lambda m: None)
    notices = []
    on_ray = run_batch_on_ray(footage, tmp_path / "ray", TEMPLATES, OPTIONS, address="local", recursive=True,
                              notice=notices.append)
    assert [(c.name, c.status, c.frames) for c in on_ray.clips] == [(c.name, c.status, c.frames) for c in local.clips]
    assert [c.status for c in on_ray.clips] == [FAILED, DONE, DONE, NOT_VIDEO]
    assert on_ray.clips[0].message == local.clips[0].message != ""  # failed for its own reasons, reported
    assert sum("model: rvm-mobilenetv3-onnx (rvm_mobilenetv3_fp32.onnx)" in n for n in notices) == 1
    assert_same_outputs(tmp_path / "ray", tmp_path / "local")

    # Run again: finished clips are skipped without starting any worker.
    again = run_batch_on_ray(footage, tmp_path / "ray", TEMPLATES, OPTIONS, address="local", recursive=True)
    assert [c.status for c in again.clips] == [FAILED, "skipped", "skipped", NOT_VIDEO]


def test_an_output_folder_workers_cannot_write_is_one_clear_error_before_any_work(ray_local, footage, tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the output folder should be")
    with pytest.raises(VmatteError, match=r"Ray node .* cannot write in the output folder .*every node sees"):
        run_batch_on_ray(footage, blocked / "out", TEMPLATES, OPTIONS, address="local", recursive=True)


def kill_worker_after_checkpoint(work_dir: Path, killed: list[int], batch_over: threading.Event) -> None:
    """Waits for the clip's first checkpoint mid-clip, then SIGKILLs the Ray worker process running it."""
    while not batch_over.is_set():
        try:
            checkpoint = load_checkpoint(work_dir)
        except Exception:  # being replaced right now
            checkpoint = None
        if checkpoint is not None and checkpoint.segments > 0:
            break
        time.sleep(0.02)
    else:
        return
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes()
            raylet = parent_of(int(pid))
        except OSError:
            continue
        # A worker of this module's Ray (its raylet is this process's child), not of another Ray on the machine.
        if title.startswith(b"ray::ClipWorker") and parent_of(raylet) == os.getpid():
            os.kill(int(pid), signal.SIGKILL)
            killed.append(int(pid))


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_a_worker_killed_mid_clip_costs_at_most_a_segment(ray_local, samples_dir, tmp_path):
    footage = tmp_path / "in"
    trim(samples_dir / LONG_CLIP, footage / "long.mp4", frames=160, size=(64, 36))
    templates = {"alpha": "{stem}.alpha.mov"}
    options = {"downsample_ratio": 0.5}
    killed: list[int] = []
    batch_over = threading.Event()
    killer = threading.Thread(target=kill_worker_after_checkpoint,
                              args=(work_dir_for(tmp_path / "ray" / "long.alpha.mov"), killed, batch_over))
    killer.start()
    try:
        report = run_batch_on_ray(footage, tmp_path / "ray", templates, options, address="local")
    finally:
        batch_over.set()
        killer.join()
    assert len(killed) == 1
    (clip,) = report.clips
    assert clip.status == DONE and clip.frames == 160
    assert clip.message == "resumed from frame 64"  # Ray ran the clip again; it went on from its checkpoint
    run_batch(footage, tmp_path / "local", templates, options, notice=lambda m: None)
    assert_same_outputs(tmp_path / "ray", tmp_path / "local")


def two_shot_clip(samples_dir: Path, path: Path, frames: int = 7, size: tuple[int, int] = (96, 64)) -> None:
    """A hard cut: the first frames of two sample clips back to back, as one small H.264 .mp4 at 25 fps."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        index = 0
        for source in (FACE, BEDROOM):
            with av.open(str(samples_dir / source)) as clip:
                for _, frame in zip(range(frames), clip.decode(video=0)):
                    small = frame.reformat(width=size[0], height=size[1], format="yuv420p")
                    small.pts, small.time_base = index, Fraction(1, 25)
                    out.mux(stream.encode(small))
                    index += 1
        out.mux(stream.encode(None))


def test_split_at_shots_writes_what_a_sequential_run_writes(ray_local, footage, samples_dir, tmp_path):
    folder = tmp_path / "in"
    two_shot_clip(samples_dir, folder / "cut.mp4")
    trim(samples_dir / FACE, folder / "single.mp4", frames=5, size=(96, 64))  # one shot: runs whole
    local = run_batch(folder, tmp_path / "local", TEMPLATES, OPTIONS, notice=lambda m: None)
    split = run_batch_on_ray(folder, tmp_path / "ray", TEMPLATES, OPTIONS, address="local", split="shots")
    assert [(c.name, c.status, c.frames) for c in split.clips] == [("cut.mp4", DONE, 14), ("single.mp4", DONE, 5)]
    assert split.clips[0].message == "split into 2 shots" and split.clips[1].message == ""
    assert_same_outputs(tmp_path / "ray", tmp_path / "local")
    assert [c.frames for c in local.clips] == [14, 5]


def test_split_refuses_smoothing_that_looks_across_cuts(footage, tmp_path):
    options = {**OPTIONS, "temporal": TemporalOptions(smooth="ofd")}
    with pytest.raises(VmatteError, match="--split shots: smoothing .* add --smooth none"):
        run_batch_on_ray(footage, tmp_path, TEMPLATES, options, address="local", split="shots")


def test_cli_joins_a_running_cluster_and_reports_like_a_local_batch(ray_local, footage, samples_dir, tmp_path):
    """``--ray auto`` joins the cluster RAY_ADDRESS names (here the module's instance), with --split shots."""
    import ray

    folder = tmp_path / "footage"
    folder.mkdir()
    for name in ("broken.mp4", "notes.txt"):
        shutil.copy(footage / name, folder / name)
    two_shot_clip(samples_dir, folder / "cut.mp4")
    env = {**os.environ, **media.offline_env(), "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    run = subprocess.run([sys.executable, "-m", "vmatte", folder, "--out-dir", tmp_path / "mattes", "--out-template",
                          "alpha={stem}.alpha.mov", "-r", "0.25", "--ray", "auto", "--split", "shots", "--quiet"],
                         capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert run.returncode == 1, run.stderr  # broken.mp4 failed, as in a local batch
    assert "Traceback" not in run.stderr
    assert "1 done, 1 failed, 1 not a video" in run.stderr
    assert "split into 2 shots" in run.stderr
    assert (tmp_path / "mattes" / "cut.alpha.mov").is_file()
    assert not list((tmp_path / "mattes").rglob(".*.vmatte"))  # no work folders left behind
