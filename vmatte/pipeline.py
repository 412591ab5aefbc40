"""decode -> infer -> write, as three concurrent stages joined by bounded queues.

Frames stream through in chunks, so memory stays flat however long the clip. The decoder and the writers
run in threads (PyAV and NumPy release the GIL for their heavy work) while the model runs on the calling
thread. Every output goes to a temporary name and is moved into place only when the whole run succeeded.
"""

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .errors import VmatteError
from .inference import MattingEngine, auto_downsample_ratio, choose_device
from .io import SourceFrame, open_background, open_source, open_writer

OUTPUT_KINDS = ("alpha", "fgr", "comp")
QUEUE_CHUNKS = 2  # chunks in flight between stages: enough to keep every stage busy, little memory


@dataclass
class JobSettings:
    input: Path
    outputs: dict[str, str]  # kind ("alpha", "fgr", "comp") -> output path
    model: str = "rvm-mobilenetv3"
    weights: Path | None = None
    downsample_ratio: float | None = None  # None: auto
    device: str = "auto"
    precision: str = "auto"
    semantics: str = "auto"
    refiner: str | None = None
    chunk: int = 4
    png_depth: int = 16
    premultiplied: bool = False
    background: str = "green"
    overwrite: bool = False
    skip_corrupt: bool = False


@dataclass
class JobResult:
    frames: int
    seconds: float
    outputs: dict[str, str]
    repeated_frames: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class _Stage(threading.Thread):
    """A worker thread whose exception is handed back to the caller instead of being printed."""

    def __init__(self, name: str, target: Callable[[], None]):
        super().__init__(name=name, daemon=True)
        self._target_fn = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._target_fn()
        except _Stopped:
            pass
        except BaseException as exc:  # re-raised on the calling thread by _check
            self.error = exc


_DONE = object()


def _put(q: queue.Queue, item, stop: threading.Event) -> None:
    """Blocking put that gives up (raising) when the run is being stopped."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue
    raise _Stopped


def _get(q: queue.Queue, stop: threading.Event, stages: list["_Stage"] = ()):
    """Blocking get that raises a failed stage's error, or gives up when the run is being stopped."""
    while not stop.is_set():
        _check(stages)
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            continue
    raise _Stopped


class _Stopped(Exception):
    """The run is stopping (another stage failed, or the user interrupted); the real reason is raised elsewhere."""


def _check(stages) -> None:
    for stage in stages:
        if stage.error is not None:
            raise stage.error


def frames_to_tensor(frames: list[SourceFrame]) -> torch.Tensor:
    """(T, 3, H, W) float32 in [0, 1]; the HWC frames are viewed, not transposed (channels-last strides)."""
    batch = np.stack([f.rgb for f in frames])
    scale = 255.0 if batch.dtype == np.uint8 else 65535.0
    tensor = torch.from_numpy(batch.astype(np.float32) if batch.dtype != np.uint8 else batch)
    return tensor.permute(0, 3, 1, 2).float().div_(scale)


def check_outputs(outputs: dict[str, str], overwrite: bool) -> None:
    if not outputs:
        raise VmatteError("nothing to write: give at least one of --out (alpha), --fgr or --comp")
    for kind, path in outputs.items():
        if kind not in OUTPUT_KINDS:
            raise VmatteError(f"unknown output kind {kind!r}")
        target = Path(path)
        exists = target.is_file() or (target.is_dir() and any(target.iterdir()))
        if "%" in path:  # printf pattern: the first frame's file tells whether a sequence is there
            exists = Path(path % 0).exists() or Path(path % 1).exists()
        if exists and not overwrite:
            raise VmatteError(f"{path} already exists; pass --overwrite to replace it")
    paths = [str(Path(p)) for p in outputs.values()]
    if len(set(paths)) != len(paths):
        raise VmatteError("two outputs have the same path")


def run_job(settings: JobSettings, *, engine: MattingEngine | None = None,
            on_progress: Callable[[int, int], None] | None = None, notice: Callable[[str], None] = print) -> JobResult:
    """Mattes one input into the requested outputs. ``on_progress(done, total)`` is called after each chunk."""
    check_outputs(settings.outputs, settings.overwrite)
    source = open_source(settings.input, skip_corrupt=settings.skip_corrupt)
    info = source.info
    if engine is None:
        engine = MattingEngine.load(settings.model, settings.weights, device=choose_device(settings.device),
                                    precision=settings.precision, semantics=settings.semantics,
                                    refiner=settings.refiner, notice=notice)
    ratio = settings.downsample_ratio or auto_downsample_ratio(info.height, info.width)
    need_fgr = "fgr" in settings.outputs or "comp" in settings.outputs
    background = open_background(settings.background, info.width, info.height) if "comp" in settings.outputs else None
    audio_from = Path(settings.input) if info.audio and not info.is_image_sequence else None
    writers = {}
    stop = threading.Event()
    decoded: queue.Queue = queue.Queue(QUEUE_CHUNKS)
    inferred: queue.Queue = queue.Queue(QUEUE_CHUNKS)

    def decode() -> None:
        for chunk in _chunks(source.frames(), settings.chunk):
            _put(decoded, (chunk, frames_to_tensor(chunk)), stop)
        _put(decoded, _DONE, stop)

    def write() -> None:
        while (item := _get(inferred, stop)) is not _DONE:
            frames, pha, fgr = item
            for t, frame in enumerate(frames):
                _write_frame(writers, frame, pha[t], None if fgr is None else fgr[t], background)

    stages = [_Stage("decode", decode), _Stage("write", write)]
    start = time.perf_counter()
    done = 0
    try:
        for kind, path in settings.outputs.items():
            writers[kind] = open_writer(kind, path, info, png_depth=settings.png_depth,
                                        premultiplied=settings.premultiplied,
                                        audio_from=audio_from if kind != "alpha" else None)
        for stage in stages:
            stage.start()
        state = None
        while (item := _get(decoded, stop, stages)) is not _DONE:
            frames, tensor = item
            out = engine.run(tensor, state, ratio, need_fgr=need_fgr)
            state = out.state
            pha = out.pha[0, :, 0].numpy()
            fgr = out.fgr[0].permute(0, 2, 3, 1).numpy() if out.fgr is not None else None
            _put(inferred, (frames, pha, fgr), stop)
            _check(stages)
            done += len(frames)
            if on_progress:
                on_progress(done, info.frame_count)
        _put(inferred, _DONE, stop)
        while stages[1].is_alive():
            stages[1].join(0.1)
            _check(stages)
        _check(stages)
        if done == 0:
            raise VmatteError(f"{settings.input}: no frames could be decoded")
        for writer in writers.values():
            writer.close()
    except BaseException:
        stop.set()
        _join(stages)
        for writer in writers.values():
            writer.abort()
        raise
    finally:
        stop.set()
        _join(stages)
        source.close()
    result = JobResult(done, time.perf_counter() - start, dict(settings.outputs), source.repeated_frames)
    if result.repeated_frames:
        result.notes.append(f"{result.repeated_frames} corrupt frame(s) replaced by the last good frame")
    return result


def _join(stages: list[_Stage]) -> None:
    for stage in stages:
        if stage.is_alive():
            stage.join()


def _chunks(frames: Iterator[SourceFrame], size: int) -> Iterator[list[SourceFrame]]:
    chunk: list[SourceFrame] = []
    for frame in frames:
        chunk.append(frame)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _write_frame(writers: dict, frame: SourceFrame, pha: np.ndarray, fgr: np.ndarray | None, background) -> None:
    alpha = pha[..., None]
    if "alpha" in writers:
        writers["alpha"].write(alpha, frame.pts)
    if "fgr" in writers:
        writers["fgr"].write(np.concatenate([fgr, alpha], axis=2), frame.pts)
    if "comp" in writers:
        bg = background.frame(frame.index)
        writers["comp"].write(fgr * alpha + bg * (1.0 - alpha), frame.pts)
