"""decode -> infer -> write, as three concurrent stages joined by bounded queues.

Frames stream through in chunks, so memory stays flat however long the clip. The decoder and the writer run
in threads (PyAV, NumPy and PyTorch release the GIL for their heavy work) while the model runs on the calling
thread. Outputs are built in hidden work folders, segment by segment, with a checkpoint after each segment
(see ``resume.py``): an interrupted run picks up where it stopped, and the finished files appear only when
the whole run has succeeded.
"""

import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .backends import load_on_backend
from .ensemble import EnsembleEngine, for_quality
from .errors import VmatteError, disk_full_cause
from .frame_stats import FrameStats
from .heap import reuse_large_blocks
from .inference import MattingEngine, choose_device
from .interrupts import Interrupted, check, making_outputs
from .io import VideoInfo, open_background, open_source
from .io.clip_range import FrameRange, RangeSource, resolve_range
from .io.frame_writer import partial_path
from .io.png import SINGLE_PNG_HOLDS_ONE
from .io.sequence import is_sequence, sequence_files
from .io.writer import is_single_png
from .outputs import OutputTrack, check_outputs
from .resume import (
    Checkpoint,
    CorruptCheckpoint,
    fingerprint_differences,
    load_checkpoint,
    locked_work_dirs,
    save_checkpoint,
)
from .settings import OUTPUT_KINDS, JobSettings, quality_level
from .temporal import Boundary, MattedFrame, MattingStream, chunks

QUEUE_CHUNKS = 2  # chunks in flight between stages: enough to keep every stage busy, little memory
SEGMENT_FRAMES = 64  # frames per segment (rounded up to whole chunks): the most work a crash can lose


@dataclass
class JobResult:
    frames: int
    seconds: float
    outputs: dict[str, str]
    resumed_from: int = 0
    repeated_frames: int = 0
    notes: list[str] = field(default_factory=list)
    stats: FrameStats | None = None  # per-frame statistics of the mattes, for a review report
    described: dict[str, str] = field(default_factory=dict)  # the settings that shaped the mattes, for a report

    @property
    def fps(self) -> float:
        done = self.frames - self.resumed_from
        return done / self.seconds if self.seconds > 0 else 0.0


class _Stopped(Exception):
    """The run is stopping (another stage failed, or the user interrupted); the reason is raised elsewhere."""


class _Stage(threading.Thread):
    """A worker thread whose exception is handed back to the calling thread instead of being printed."""

    def __init__(self, name: str, target: Callable[[], None]):
        super().__init__(name=name, daemon=True)
        self._work = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._work()
        except _Stopped:
            pass
        except BaseException as exc:
            self.error = exc


def _check(stages: list[_Stage]) -> None:
    for stage in stages:
        if stage.error is not None:
            raise stage.error


def _put(q: queue.Queue, item, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue
    raise _Stopped


def _get(q: queue.Queue, stop: threading.Event, stages: list[_Stage] = ()):
    """Blocking get that raises a failed stage's error, or gives up when the run is stopping."""
    while not stop.is_set():
        _check(stages)
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            continue
    raise _Stopped


def fingerprint(settings: JobSettings, info: VideoInfo, engine: MattingEngine, ratio: float,
                segment_frames: int) -> dict:
    """Everything that shapes the result; a saved run resumes only under the same fingerprint."""
    return {
        "vmatte": __version__,
        **_input_identity(Path(settings.input)),
        "frames": info.frame_count,
        **engine.settings(), "weights_sha256": engine.weights_sha256,
        "downsample_ratio": ratio,
        "chunk": settings.chunk, "segment_frames": segment_frames,
        "outputs": {k: os.path.abspath(p) for k, p in settings.outputs.items()},
        "png_depth": settings.png_depth, "premultiplied": settings.premultiplied,
        "background": settings.background if "comp" in settings.outputs else None,
        "temporal": asdict(settings.temporal.for_source(info.is_image_sequence)),
        "frame_rate": str(info.frame_rate),
        "range": [info.first_frame, info.first_frame + info.frame_count], "number_from": settings.number_from,
        "exr_display_encoded": settings.exr_display_encoded,
        "shot": list(settings.shot) if settings.shot else None,
    }


def job_range(settings: JobSettings, source) -> FrameRange:
    """The frames a job mattes, the one range mechanism of every run: ``--start``/``--end`` (also a pull's shot,
    pull.py), a shot of a clip split at its cuts (cluster.py), or the whole clip."""
    if settings.shot:
        return FrameRange(*settings.shot, in_place=True)
    if settings.start is None and settings.end is None:
        return FrameRange(0, source.info.frame_count, in_place=True)
    return resolve_range(source.info, source.pts, settings.start, settings.end)


def _input_identity(path: Path) -> dict:
    """Where the input is, and its size and modification time (summed and latest over a sequence's images):
    saved progress is never resumed onto changed footage."""
    stats = [file.stat() for file in (sequence_files(path) if is_sequence(path) else [path])]
    return {"input": str(path.resolve()), "input_size": sum(stat.st_size for stat in stats),
            "input_mtime_ns": max(stat.st_mtime_ns for stat in stats)}


def load_engine(settings: JobSettings, notice: Callable[[str], None] = print) -> MattingEngine | EnsembleEngine:
    """The model a job asks for, on its device, precision and backend, run as its quality level says (a batch
    loads it once for all its clips)."""
    level = quality_level(settings.quality)
    engine = load_on_backend(settings.model, settings.weights, device=choose_device(settings.device),
                                precision=settings.precision, semantics=settings.semantics,
                                refiner=settings.refiner or level.refiner, backend=settings.backend, notice=notice)
    engine = for_quality(engine, level.ensemble)
    notice(f"model: {engine.describe()}")
    return engine


def _resume_point(tracks: list[OutputTrack], current: dict, fresh: bool, notice) -> Checkpoint | None:
    """The checkpoint to continue from, or None for a clean start (with the work folders cleared)."""
    primary = tracks[0].work_dir  # the checkpoint lives in the first output's work folder
    checkpoint = None
    if not fresh:
        try:
            checkpoint = load_checkpoint(primary)
        except CorruptCheckpoint as exc:
            notice(f"{exc}; starting over")
    if checkpoint is not None:
        differences = fingerprint_differences(checkpoint.fingerprint, current)
        if differences:
            raise VmatteError(
                f"saved progress in {primary} was made with other settings ({'; '.join(differences)}); "
                "run with the same settings to resume, or add --fresh to start over")
        return checkpoint
    for track in tracks:
        track.clear_work_dir()
    return None


def run_job(settings: JobSettings, *, engine: MattingEngine | None = None,
            on_progress: Callable[[int, int], None] | None = None, notice: Callable[[str], None] = print) -> JobResult:
    """Mattes one input into the requested outputs, resuming saved progress when there is some.

    ``on_progress(done, total)`` is called when the frames start flowing (``done`` is where a resumed run
    starts), after each chunk, and at the end.
    """
    reuse_large_blocks()
    check_outputs(settings.input, settings.outputs, settings.overwrite, settings.fresh)
    source = open_source(settings.input, skip_corrupt=settings.skip_corrupt, sequence_fps=settings.sequence_fps)
    source = RangeSource(source, job_range(settings, source))
    info = source.info
    if settings.number_from == "timecode" and info.timecode is None:
        raise VmatteError(f"--number-from timecode: {settings.input} states no start timecode")
    single = [path for path in settings.outputs.values() if is_single_png(path)]
    if single and info.frame_count > 1:
        source.close()
        raise VmatteError(f"{single[0]}: {SINGLE_PNG_HOLDS_ONE}; {Path(settings.input).name} has "
                          f"{info.frame_count} frames")
    engine = engine or load_engine(settings, notice)
    ratio = job_ratio(settings, info)
    segment_frames = -(-SEGMENT_FRAMES // settings.chunk) * settings.chunk
    tracks = [OutputTrack(kind, settings.outputs[kind], info, png_depth=settings.png_depth,
                          premultiplied=settings.premultiplied, number_from=settings.number_from,
                          exr_display_encoded=settings.exr_display_encoded)
              for kind in OUTPUT_KINDS if kind in settings.outputs]
    current = fingerprint(settings, info, engine, ratio, segment_frames)
    with making_outputs(), locked_work_dirs({track.work_dir: track.path for track in tracks}):
        checkpoint = _resume_point(tracks, current, settings.fresh, notice)
        temporal = settings.temporal.for_source(info.is_image_sequence)
        first, end = source.first, source.end
        stats = FrameStats(first, end, info.timecode, info.frame_rate)
        stream = MattingStream(engine, ratio, temporal, settings.chunk,
                               need_fgr="fgr" in settings.outputs or "comp" in settings.outputs,
                               boundary_every=segment_frames, first_frame=first)
        start_frame = checkpoint.next_frame if checkpoint else first
        if checkpoint:
            stats.restore(checkpoint.stats)
            if checkpoint.stream:
                stream.restore(checkpoint.next_frame, checkpoint.stream)
            else:  # empty once every frame is in segments: only the final step is left
                stream.next_frame = checkpoint.next_frame
            notice(f"resuming {Path(settings.input).name} from frame {checkpoint.written} of {info.frame_count}")
        elif not settings.shot:  # a split shot begins at a cut: nothing before it counts
            stream.warm_up(source.context_frames, source.earliest)
        segments_done = checkpoint.segments if checkpoint else 0
        for track in tracks:
            track.discard_segments_from(segments_done)

        background = (open_background(settings.background, info.width, info.height)
                      if "comp" in settings.outputs else None)
        # A shot's outputs get no audio: they are joined into the clip's, with its audio, afterwards.
        audio_from = Path(settings.input) if info.audio and not info.is_image_sequence and not settings.shot else None
        stop = threading.Event()
        decoded: queue.Queue = queue.Queue(QUEUE_CHUNKS)
        matted: queue.Queue = queue.Queue(QUEUE_CHUNKS)
        # Kept by the writer stage: finished segments, frames in them, frames written so far.
        progress = {"segments": segments_done, "written": checkpoint.written if checkpoint else first}
        progress["in_segments"] = progress["written"]

        def decode() -> None:
            for chunk in chunks(source.frames(start_frame), settings.chunk):
                stats.see(chunk)
                _put(decoded, (chunk, stream.thumbnails(chunk)), stop)
            _put(decoded, None, stop)

        def write() -> None:
            writers: dict = {}
            try:
                while (items := _get(matted, stop)) is not None:
                    for item in items:
                        if isinstance(item, Boundary):
                            _finish_segment(writers, item)
                            continue
                        if not writers:
                            writers.update({t.kind: t.open_segment(progress["segments"], item.index) for t in tracks})
                        _write_frame(writers, item, background)
                        stats.add(item)
                        progress["written"] = item.index + 1
                _finish_segment(writers, None)
            finally:
                for writer in writers.values():
                    writer.abort()

        def _finish_segment(writers: dict, boundary: Boundary | None) -> None:
            """Closes the segment in every output, then records it in a checkpoint (the order matters for a crash)."""
            for writer in writers.values():
                writer.close()
            if writers:
                progress["segments"] += 1
                progress["in_segments"] = progress["written"]
            writers.clear()
            # At the end (no boundary) everything is in segments: a kill from then on only repeats the final step.
            next_frame, saved = (boundary.next_frame, boundary.saved) if boundary else (end, {})
            save_checkpoint(tracks[0].work_dir, Checkpoint(current, next_frame, progress["written"],
                                                           progress["segments"], saved, stats.save(next_frame)))

        stages = [_Stage("decode", decode), _Stage("write", write)]
        start = time.perf_counter()
        if on_progress:
            on_progress(stream.next_frame - first, end - first)
        try:
            for stage in stages:
                stage.start()
            while (frames := _get(decoded, stop, stages)) is not None:
                _put(matted, stream.push(*frames), stop)
                check()
                if on_progress:
                    on_progress(stream.next_frame - first, end - first)
            _put(matted, stream.finish(), stop)
            if on_progress:
                on_progress(stream.next_frame - first, end - first)
            _put(matted, None, stop)
            while stages[1].is_alive():
                stages[1].join(0.1)
                _check(stages)
            _check(stages)
            if progress["in_segments"] == first:
                raise VmatteError(f"{settings.input}: no frames could be decoded")
            for track in tracks:
                track.finalize(progress["segments"], progress["in_segments"], audio_from)
        except KeyboardInterrupt:
            stop.set()
            _join(stages)
            raise Interrupted(f"interrupted at frame {progress['in_segments']} of {info.frame_count} (progress saved); "
                              "run the same command again to resume, or add --fresh to start over") from None
        except Exception as exc:
            if (full := disk_full_cause(exc)) is None:
                raise
            raise VmatteError(f"{_output_of(full.filename, tracks)}: no space left to write it ({full.strerror}) "
                              f"after frame {progress['in_segments']} of {info.frame_count}; progress is saved: free "
                              "some space and run the same command again to resume") from None
        finally:
            stop.set()
            _join(stages)
            source.close()
            if background is not None:
                background.close()
        for track in tracks:
            track.remove_work_dir()
        result = JobResult(progress["in_segments"] - first, time.perf_counter() - start, dict(settings.outputs),
                           (checkpoint.written if checkpoint else first) - first, source.repeated_frames,
                           stats=stats, described=_described(engine, ratio, temporal))
        if result.repeated_frames:
            result.notes.append(f"{result.repeated_frames} corrupt frame(s) replaced by the last good frame")
        if info.undecodable_leading_frames:
            result.notes.append(f"{info.undecodable_leading_frames} picture(s) before the first keyframe cannot be "
                                "decoded (the stream starts mid-GOP) and were left out, as players do")
        return result


def job_ratio(settings: JobSettings, info: VideoInfo) -> float:
    """The downsample ratio a job runs at: the one given, else its quality level's automatic one."""
    return settings.downsample_ratio or quality_level(settings.quality).auto_ratio(info.height, info.width)


def _described(engine: MattingEngine | EnsembleEngine, ratio: float, temporal) -> dict[str, str]:
    return {"model": engine.describe(), "downsample ratio": f"{ratio:.3g}",
            "pre-roll": f"{temporal.preroll} frames", "cuts": "reset at hard cuts" if temporal.cuts else "off",
            "smoothing": temporal.smooth or "none"}


def _output_of(filename: str | bytes | None, tracks: list[OutputTrack]) -> str:
    """The output a file being written belongs to (its work folder's, or the output itself); any other file
    (a compiled model in the cache) by its own path."""
    if not filename:
        return ", ".join(track.path for track in tracks)
    path = Path(os.fsdecode(filename)).absolute()
    for track in tracks:
        if path == partial_path(Path(track.path)).absolute() or track.work_dir.absolute() in path.parents:
            return track.path
    return str(path)


class FrameRate:
    """Frames per second since the first reading: the frames a run did itself (a resumed one only the rest),
    over the time since its frames started flowing (model loading and probing left out)."""

    def __init__(self) -> None:
        self._first: tuple[int, float] | None = None

    def __call__(self, done: int) -> float:
        now = time.perf_counter()
        if self._first is None:
            self._first = (done, now)
        frames, seconds = done - self._first[0], now - self._first[1]
        return frames / seconds if seconds > 0 else 0.0


def _join(stages: list[_Stage]) -> None:
    for stage in stages:
        if stage.is_alive():
            stage.join()


def _write_frame(writers: dict, frame: MattedFrame, background) -> None:
    alpha = frame.pha[..., None]
    if "alpha" in writers:
        writers["alpha"].write(alpha, frame.pts)
    if "fgr" in writers:
        writers["fgr"].write(np.concatenate([frame.fgr, alpha], axis=2), frame.pts)
    if "comp" in writers:
        bg = background.frame(frame.index)
        writers["comp"].write(frame.fgr * alpha + bg * (1.0 - alpha), frame.pts)
