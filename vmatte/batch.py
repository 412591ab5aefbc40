"""Batch runs: every video in a folder (optionally its subfolders) through one set of options and one model.

Outputs mirror the input folder's structure under the output folder, named by templates (see presets.py).
A clip whose outputs are all complete (present, with no hidden work folder pending beside them) is skipped
after a few file checks, so running the same batch again after an interruption only does what is left; an
interrupted clip resumes by itself inside ``run_job``. A clip that fails does not stop the others; the report
says what happened to each. ``--overwrite`` redoes every clip.

``jobs > 1`` runs that many clips at once on threads that share the one loaded model. Each keeps torch's
usual CPU thread count rather than a share of it (cores // jobs): a convolution's result depends, in its last
bits, on how many threads compute it, so only this keeps the outputs identical to one-at-a-time runs. The gain
comes from overlapping one clip's decoding and encoding (ProRes, PNG), which use few cores, with another's
model work; the cost is that the threads compete for the cores during model work, so on a small CPU there
may be no gain (2 shared cores, four 48-frame 480x270 clips: 22-32 s for jobs=1 and jobs=2 alike). It pays
where one clip leaves the machine idle part of the time: many cores, or a GPU, where the clips' model calls
interleave on the device.
"""

from __future__ import annotations

import fnmatch
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Group
from rich.markup import escape
from rich.progress import Progress, TaskID
from rich.table import Table
from rich.text import Text

from .errors import VmatteError
from .interrupts import Interrupted, making_outputs
from .io.sequence import is_pattern
from .outputs import existing_output
from .presets import job_settings, render_outputs
from .resume import work_dir_for
from .settings import JobSettings

if TYPE_CHECKING:  # the pipeline (and PyTorch) loads when clips run, so a batch's options are checked at once
    from .frame_stats import FrameStats
    from .inference import MattingEngine
    from .pipeline import JobResult

# Container extensions taken as videos (compared case-insensitively); other files are listed as skipped.
VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".m4v", ".mov", ".qt", ".mkv", ".webm", ".avi", ".mxf", ".mts", ".m2ts", ".ts", ".mpg", ".mpeg",
    ".m2v", ".vob", ".wmv", ".asf", ".flv", ".3gp", ".3g2", ".ogv", ".dv", ".y4m",
})

DONE, SKIPPED, FAILED, NOT_VIDEO = "done", "skipped", "failed", "not a video"
BATCH_INTERRUPTED = ("batch interrupted; run the same command again to resume: finished clips are skipped and "
                     "interrupted ones continue where they stopped")


@dataclass
class ClipResult:
    input: Path
    name: str  # the input's path relative to the batch's input folder
    status: str  # DONE, SKIPPED, FAILED or NOT_VIDEO
    outputs: dict[str, str] = field(default_factory=dict)
    frames: int = 0
    seconds: float = 0.0
    fps: float = 0.0  # of the frames this run did (a resumed clip did only the rest)
    message: str = ""  # the error of a failed clip; why a clip was skipped; notes from the run
    stats: FrameStats | None = None  # of a clip this run mattes, for a review report
    described: dict[str, str] = field(default_factory=dict)  # the settings that shaped its mattes


@dataclass
class BatchReport:
    clips: list[ClipResult]
    seconds: float

    def with_status(self, status: str) -> list[ClipResult]:
        return [clip for clip in self.clips if clip.status == status]

    @property
    def failed(self) -> bool:
        return any(clip.status == FAILED for clip in self.clips)


def find_videos(folder: Path, recursive: bool = False, glob: str | None = None) -> tuple[list[Path], list[Path]]:
    """(videos, other files) in ``folder``, each sorted. Videos are files with a VIDEO_EXTENSIONS extension, or,
    when ``glob`` is given, files whose name matches it (case-insensitively; then nothing else is listed as
    'other'). Hidden files and folders (a leading '.', such as vmatte's work folders) are never looked at."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VmatteError(f"{folder}: not a folder (a batch takes a folder of videos)")
    videos, others = [], []
    for root, subfolders, files in os.walk(folder):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")] if recursive else []
        for name in files:
            if name.startswith("."):
                continue
            path = Path(root) / name
            if glob is not None:
                if fnmatch.fnmatchcase(name.lower(), glob.lower()):
                    videos.append(path)
            elif path.suffix.lower() in VIDEO_EXTENSIONS:
                videos.append(path)
            else:
                others.append(path)
    return sorted(videos), sorted(others)


def output_complete(path: str) -> bool:
    """An output is complete when it is there and no work folder beside it says a run is still under way."""
    return existing_output(path) and not work_dir_for(path).exists()


@dataclass
class ClipPlan:
    input: Path
    name: str
    outputs: dict[str, str]
    to_write: dict[str, str]  # the outputs not complete yet (all of them with overwrite)
    options: dict[str, object] = field(default_factory=dict)  # this clip's own options (a pull's shot range)


@dataclass
class BatchPlan:
    """What a batch has to do, before any work: every clip with its outputs, the results already known (clips
    skipped as finished, or failed for output clashes), and the clips left to run."""

    input_dir: Path
    base: JobSettings  # the batch's settings without an input: what loads the model
    clips: list[ClipPlan]
    others: list[Path]  # files that are not videos
    results: dict[str, ClipResult]  # clip name -> result known already
    to_run: list[ClipPlan]

    def report(self, results: Mapping[str, ClipResult], seconds: float) -> BatchReport:
        """The batch's report, in the order of the clips, given every clip's result."""
        report = [results[clip.name] for clip in self.clips]
        report += [ClipResult(path, _relative_name(path, self.input_dir), NOT_VIDEO,
                              message=f"skipped: not a video ({path.suffix or 'no extension'})")
                   for path in self.others]
        return BatchReport(report, seconds)


def plan_batch(input_dir: Path, out_dir: Path, templates: Mapping[str, str], options: Mapping[str, object],
               recursive: bool = False, glob: str | None = None) -> BatchPlan:
    """Finds the clips and what is left to do for each (see ``run_batch``)."""
    input_dir, out_dir = Path(input_dir), Path(out_dir)
    videos, others = find_videos(input_dir, recursive, glob)
    if not videos:
        raise VmatteError(f"{input_dir}: no videos to matte here ({glob or 'by extension'}"
                          f"{', subfolders included' if recursive else ''}; {len(others)} other file(s))")
    base = JobSettings(input=input_dir, outputs={}, **options)
    clips = [plan_clip(video, _relative_name(video, input_dir), render_outputs(
        templates, video, out_dir, video.parent.relative_to(input_dir)), base.overwrite) for video in videos]
    clips, others = _without_outputs(clips, others)
    results = known_results(clips, "{name}")
    return BatchPlan(input_dir, base, clips, others, results, [clip for clip in clips if clip.name not in results])


def known_results(clips: list[ClipPlan], name_field: str) -> dict[str, ClipResult]:
    """Clips whose result is known before any work: failed for output clashes (``name_field`` is the template
    field that tells the clips apart), skipped as finished."""
    results: dict[str, ClipResult] = {}
    owners: dict[str, str] = {}  # output path -> the clip that writes it
    for clip in clips:
        paths = [os.path.abspath(p) for p in clip.outputs.values()]
        if clash := next((owners[p] for p in paths if p in owners), None):
            results[clip.name] = ClipResult(clip.input, clip.name, FAILED, clip.outputs, message=(
                f"its outputs would overwrite those of {clash}; put {name_field} in the output templates"))
        elif not clip.to_write:
            results[clip.name] = ClipResult(clip.input, clip.name, SKIPPED, clip.outputs,
                                            message="outputs already complete")
        owners.update(dict.fromkeys(paths, clip.name))
    return results


def run_batch(input_dir: Path, out_dir: Path, templates: Mapping[str, str], options: Mapping[str, object], *,
              recursive: bool = False, glob: str | None = None, jobs: int = 1,
              engine_factory: Callable[[JobSettings], MattingEngine] | None = None,
              progress: Progress | None = None, notice: Callable[[str], None] = print) -> BatchReport:
    """Mattes every video in ``input_dir`` into ``out_dir``.

    ``templates``: output kind -> template (presets.render_outputs). ``options``: JobSettings keyword arguments
    other than input and outputs (``Preset.apply`` gives them). ``engine_factory(settings)`` loads the shared
    model (default: ``load_engine``); it is called once, and only when some clip has work to do. ``progress``
    gets the batch's task (``BatchBar``) and one task per running clip, each with an ``fps`` field.
    """
    if jobs < 1:
        raise VmatteError(f"--jobs {jobs}: run at least 1 clip at a time")
    start = time.perf_counter()
    plan = plan_batch(input_dir, out_dir, templates, options, recursive, glob)
    return run_plan(plan, options, start, jobs=jobs, engine_factory=engine_factory, progress=progress, notice=notice)


def run_plan(plan: BatchPlan, options: Mapping[str, object], start: float, *, jobs: int = 1,
             engine_factory: Callable[[JobSettings], MattingEngine] | None = None,
             progress: Progress | None = None, notice: Callable[[str], None] = print) -> BatchReport:
    """Runs a planned batch (``run_batch``; a pull's shots, pull.py); ``start``: when the batch began."""
    results, to_run = dict(plan.results), plan.to_run
    bar = BatchBar(progress, plan) if progress else None
    if to_run:
        from .pipeline import load_engine

        engine = engine_factory(plan.base) if engine_factory else load_engine(plan.base, notice)
        stop = threading.Event()

        def run_one(clip: ClipPlan) -> ClipResult:
            result = _run_clip(clip, engine, options, progress, bar, stop, notice)
            if bar and not stop.is_set():  # a clip stopped by Ctrl-C has not finished
                bar.clip_finished()
            return result

        with making_outputs(), ThreadPoolExecutor(max_workers=min(jobs, len(to_run)),
                                                  thread_name_prefix="vmatte-clip") as pool:
            try:
                for clip, result in zip(to_run, pool.map(run_one, to_run)):
                    results[clip.name] = result
            except KeyboardInterrupt:
                stop.set()  # running clips stop at their next chunk; their progress stays in their work folders
                pool.shutdown(wait=True, cancel_futures=True)
                raise Interrupted(BATCH_INTERRUPTED) from None
    return plan.report(results, time.perf_counter() - start)


def _relative_name(path: Path, input_dir: Path) -> str:
    return path.relative_to(input_dir).as_posix()


def plan_clip(input: Path, name: str, outputs: dict[str, str], overwrite: bool,
              options: dict[str, object] | None = None) -> ClipPlan:
    to_write = outputs if overwrite else {kind: p for kind, p in outputs.items() if not output_complete(p)}
    return ClipPlan(input, name, outputs, to_write, options or {})


def _without_outputs(clips: list[ClipPlan], others: list[Path]) -> tuple[list[ClipPlan], list[Path]]:
    """Drops files that are this batch's own outputs (an output folder inside the input folder, or outputs
    written beside their clips), so a second run does not take them for new clips."""
    files, folders = set(), set()
    for clip in clips:
        for path in clip.outputs.values():
            if is_pattern(path):
                folders.add(Path(path).parent.resolve())
            elif path.endswith(("/", "\\")):
                folders.add(Path(path).resolve())
            else:
                files.add(Path(path).resolve())

    def is_output(path: Path) -> bool:
        path = path.resolve()
        return path in files or any(parent in folders for parent in path.parents)

    return [clip for clip in clips if not is_output(clip.input)], [path for path in others if not is_output(path)]


class BatchBar:
    """The batch's own task: the frames this run has matted over the frames its clips need, so that its rate and
    time left are the batch's, with the clips finished so far in its description. A clip not started yet counts
    its frames as probed; a started one its exact range, less what a resumed clip had done before."""

    def __init__(self, progress: Progress, plan: BatchPlan):
        from .pipeline import FrameRate

        self._progress, self._clips, self._finished = progress, len(plan.clips), len(plan.results)
        self._needed = {clip.name: _frame_count(clip.input) for clip in plan.to_run}
        self._first: dict[str, int] = {}  # clip -> its first reading (where a resumed clip starts)
        self._done: dict[str, int] = {}  # clip -> frames matted in this run
        self._rate, self._lock = FrameRate(), threading.Lock()
        self.task = progress.add_task(self._label(), total=sum(self._needed.values()), fps=0.0)

    def _label(self) -> str:
        return f"clips {self._finished}/{self._clips}"

    def clip_at(self, name: str, done: int, total: int) -> None:
        with self._lock:
            first = self._first.setdefault(name, done)
            self._done[name], self._needed[name] = done - first, total - first
            completed = sum(self._done.values())
            self._progress.update(self.task, completed=completed, total=sum(self._needed.values()),
                                  fps=self._rate(completed))

    def clip_finished(self) -> None:
        with self._lock:
            self._finished += 1
            self._progress.update(self.task, description=self._label())


def _frame_count(path: Path) -> int:
    """The clip's frames as probed (0 for one that cannot be read: it fails when it runs)."""
    from .io import probe

    try:
        return probe(path).frame_count
    except VmatteError:
        return 0


def _run_clip(clip: ClipPlan, engine: MattingEngine, options: Mapping[str, object], progress: Progress | None,
              bar: BatchBar | None, stop: threading.Event, notice: Callable[[str], None]) -> ClipResult:
    from .pipeline import FrameRate

    task: TaskID | None = progress.add_task(clip.name, total=None, fps=0.0) if progress else None
    rate = FrameRate()

    def on_progress(done: int, total: int) -> None:
        if stop.is_set():
            raise KeyboardInterrupt  # the batch is being interrupted: stop this clip too
        if progress:
            progress.update(task, completed=done, total=total, fps=rate(done))
            bar.clip_at(clip.name, done, total)

    try:
        return run_clip(clip, engine, options, on_progress, notice)
    finally:
        if progress:
            progress.remove_task(task)


def run_clip(clip: ClipPlan, engine: MattingEngine, options: Mapping[str, object],
             on_progress: Callable[[int, int], None], notice: Callable[[str], None]) -> ClipResult:
    """Runs one planned clip; its failure becomes its result (the batch goes on). ``on_progress(done, total)``
    is called after each chunk (raising KeyboardInterrupt there stops the clip, resumable)."""
    from .pipeline import run_job

    try:
        settings = job_settings(clip.input, clip.to_write, {**options, **clip.options})
        job = run_job(settings, engine=engine, on_progress=on_progress, notice=lambda m: notice(f"{clip.name}: {m}"))
    except VmatteError as exc:
        return ClipResult(clip.input, clip.name, FAILED, clip.outputs, message=str(exc))
    except Exception as exc:  # an unexpected error in one clip must not end the batch; it is reported
        return ClipResult(clip.input, clip.name, FAILED, clip.outputs, message=f"{type(exc).__name__}: {exc}")
    return finished_clip(clip.input, clip.name, clip.outputs, job)


def finished_clip(input: Path, name: str, outputs: dict[str, str], job: JobResult) -> ClipResult:
    """A clip's result from its finished job."""
    notes = ([f"resumed from frame {job.resumed_from}"] if job.resumed_from else []) + job.notes
    return ClipResult(input, name, DONE, outputs, job.frames, job.seconds, job.fps, "; ".join(notes), job.stats,
                      job.described)


def render_report(report: BatchReport) -> Group:
    """A table that fits an 80-column terminal (one row per clip: status, frames, speed, time), then what went
    wrong with each failed clip, and the notes of finished ones, as lines of their own below it: error
    messages name paths and are long, and squeezed into a table column they broke into a dozen short lines."""
    styles = {DONE: "green", SKIPPED: "dim", FAILED: "bold red", NOT_VIDEO: "yellow"}
    counts = ", ".join(f"{len(report.with_status(s))} {s}" for s in styles if report.with_status(s))
    table = Table(title=f"{counts} in {report.seconds:.1f} s", title_justify="left")
    for column, justify in (("clip", "left"), ("status", "left"), ("frames", "right"), ("fps", "right"),
                            ("time", "right")):
        table.add_column(column, justify=justify, overflow="fold", no_wrap=column != "clip")
    for clip in report.clips:
        ran = clip.status == DONE
        table.add_row(escape(clip.name), f"[{styles[clip.status]}]{clip.status}[/]", str(clip.frames) if ran else "",
                      f"{clip.fps:.1f}" if ran else "", f"{clip.seconds:.1f} s" if ran else "")
    details = [Text.assemble((f"{clip.name}: ", styles[clip.status]), clip.message)
               for clip in report.clips if clip.message and clip.status in (FAILED, DONE)]
    return Group(table, *details)
