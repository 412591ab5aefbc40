"""Crash-safe progress: the work folder kept beside an output, and the checkpoint that lets a run resume.

A checkpoint is taken at segment boundaries, after every output's segment is safely on disk. It holds the
frame reached, the recurrent state, any smoothing buffer, the review statistics so far, and a fingerprint of
everything that shapes the result; a run resumes only when its fingerprint is the same, so results of two
settings never mix. Checkpoints are written atomically (temporary file, fsync, rename): a kill at any instant
leaves either the old or the new one.

A run holds a lock (``flock``) on a file in each of its work folders for as long as it runs, so a second run
writing the same output is refused instead of mixing its segments in. The kernel drops the lock when the
process ends, however it ends: a crashed run never blocks the next one.
"""

import fcntl
import io
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .errors import VmatteError

CHECKPOINT = "checkpoint.pt"
LOCK = "lock"
FORMAT_VERSION = 2  # 2: with the review statistics


def work_dir_for(output: str | Path) -> Path:
    """The hidden work folder of an output: ``clip/alpha.mov`` -> ``clip/.alpha.mov.vmatte``; for a PNG
    sequence (``frames/%06d.png`` or ``frames/``), beside its folder."""
    path = Path(str(output).rstrip("/\\"))
    if "%" in path.name:
        path = path.parent
    return path.parent / f".{path.name}.vmatte"


@dataclass
class Checkpoint:
    fingerprint: dict
    next_frame: int  # the first frame not yet through the model: decoding resumes here
    written: int  # frames [0, written) are in finished segments (fewer than next_frame while smoothing delays)
    segments: int  # finished segments per output
    stream: dict = field(default_factory=dict)  # what the matting stream carries: recurrent state, buffers
    stats: dict = field(default_factory=dict)  # the review statistics of frames [0, written) (frame_stats.py)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not every platform can open a directory
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    """Temporary file, fsync, rename, fsync the folder: the file is either the old or the new, never torn."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def save_checkpoint(work_dir: Path, checkpoint: Checkpoint) -> None:
    import torch  # here, not at the top: the command line checks outputs (existing_output) before PyTorch loads

    buffer = io.BytesIO()
    torch.save({"format": FORMAT_VERSION, "fingerprint": json.dumps(checkpoint.fingerprint, sort_keys=True),
                "next_frame": checkpoint.next_frame, "written": checkpoint.written, "segments": checkpoint.segments,
                "stream": checkpoint.stream, "stats": checkpoint.stats}, buffer)
    write_atomically(work_dir / CHECKPOINT, buffer.getvalue())


def load_checkpoint(work_dir: Path) -> Checkpoint | None:
    """The saved checkpoint, or None when there is none. A damaged one raises ``CorruptCheckpoint``."""
    import torch

    path = work_dir / CHECKPOINT
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("format") != FORMAT_VERSION:
            raise ValueError(f"format {saved.get('format')!r}")
        return Checkpoint(json.loads(saved["fingerprint"]), int(saved["next_frame"]), int(saved["written"]),
                          int(saved["segments"]), saved["stream"], saved["stats"])
    except Exception as exc:  # any damage: truncated zip, bad pickle data, missing keys
        raise CorruptCheckpoint(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from None


class CorruptCheckpoint(VmatteError):
    pass


def fingerprint_differences(saved: dict, current: dict) -> list[str]:
    """Settings whose values differ, as 'name: saved -> now' lines."""
    keys = sorted(set(saved) | set(current))
    return [f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in keys if saved.get(k) != current.get(k)]


def remove_work_dir(work_dir: Path) -> None:
    shutil.rmtree(work_dir, ignore_errors=True)


def clear_work_dir(work_dir: Path) -> None:
    """Everything in the work folder but its lock, which the running job holds."""
    if work_dir.is_dir():
        for entry in work_dir.iterdir():
            if entry.name != LOCK:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


@contextmanager
def locked_work_dirs(outputs: dict[Path, str]) -> Iterator[None]:
    """Holds the lock of each work folder (work folder -> its output, for the message) while the block runs.
    A work folder left holding only its lock (the job failed before writing anything) is removed after."""
    with ExitStack() as held:
        for work_dir, output in outputs.items():
            held.enter_context(_locked(work_dir, output))
        yield


@contextmanager
def _locked(work_dir: Path, output: str) -> Iterator[None]:
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VmatteError(f"{output}: cannot create the work folder {work_dir} ({exc.strerror})") from None
    path = work_dir / LOCK
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise VmatteError(f"{output}: another vmatte run is writing it right now (it holds {path}); wait for "
                              "it to finish, or stop it first") from None
        try:  # the run that held it may have finished and removed its work folder since we opened the file
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
        work_dir.mkdir(parents=True, exist_ok=True)
    try:
        yield
    finally:
        if work_dir.is_dir() and [entry.name for entry in work_dir.iterdir()] == [LOCK]:
            remove_work_dir(work_dir)
        os.close(fd)
