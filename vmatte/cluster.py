"""Batches on a Ray cluster: the plan, options, skip/resume and report of ``batch.py``, with the clips run by
workers on every node of the cluster.

Ray (the optional extra ``vmatte[ray]``) schedules the work. Each worker is a Ray actor: one process that loads
the model once and runs clip after clip with it; on GPU nodes one per GPU, on CPU nodes ``jobs`` per node,
sharing the node's CPUs. Inputs and outputs live on storage every node sees under the same path (NFS, a
cluster file system): workers read the clips and write the outputs, work folders and checkpoints themselves;
only small messages (plans, progress, results) travel through Ray.

Faults: a worker process that dies is restarted by Ray, which runs its clip again; the clip resumes from its
last checkpoint (``resume.py``), so at most one segment is lost. A clip that fails for its own reasons (a
corrupt file) returns a failed result like in a local batch and is not retried. Ctrl-C asks every worker to
stop at its next chunk (their progress stays in their work folders), then gives up on them.
"""

import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from rich.progress import Progress

from . import interrupts
from .batch import (
    BATCH_INTERRUPTED,
    DONE,
    FAILED,
    SKIPPED,
    BatchPlan,
    BatchReport,
    ClipPlan,
    ClipResult,
    output_complete,
    plan_batch,
    run_clip,
)
from .errors import VmatteError
from .interrupts import Interrupted, making_outputs
from .io import open_source
from .io.writer import sequence_pattern, writer_class
from .outputs import OutputTrack, segment_path
from .pipeline import JobSettings, load_engine
from .presets import job_settings
from .resume import CHECKPOINT, remove_work_dir, work_dir_for
from .temporal import cut_flags

RESTARTS = 3  # a worker that dies more often than this on one clip is given up, and the clip reported failed
POLL_SECONDS = 0.2  # how often the driver refreshes the progress display
STOP_GRACE_SECONDS = 30  # after Ctrl-C, how long running clips get to reach their next chunk and stop
# What torch uses by default on a node, asked of a fresh interpreter: Ray sets OMP_NUM_THREADS to a task's CPU
# request (1), and a convolution's last bits depend on the thread count; workers use what a local run uses.
THREADS_PROBE = "import torch; print(torch.get_num_threads())"


def _ray():
    try:
        import ray
    except ImportError:
        raise VmatteError("--ray needs Ray: pip install 'vmatte[ray]'") from None
    return ray


def connect(address: str) -> bool:
    """Connects this process to Ray: ``local`` starts Ray on this machine, ``auto`` joins the cluster that
    ``ray start`` or RAY_ADDRESS names, ``host:port`` or ``ray://host:port`` connects there. A process already
    connected keeps its connection. True when this call connected (the caller then disconnects)."""
    ray = _ray()
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reports leave the machine
    extra = {"include_dashboard": False} if address == "local" else {}
    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False, **extra)
    except (ConnectionError, RuntimeError, ValueError, SystemExit) as exc:  # Ray exits when no cluster answers
        raise VmatteError(f"--ray {address}: cannot connect ({exc or 'no Ray cluster answered there'})") from None
    interrupts.reclaim()
    return True


def run_batch_on_ray(input_dir: Path, out_dir: Path, templates: Mapping[str, str], options: Mapping[str, object], *,
                     address: str = "local", recursive: bool = False, glob: str | None = None, jobs: int = 1,
                     split: str | None = None, progress: Progress | None = None,
                     notice: Callable[[str], None] = print) -> BatchReport:
    """``batch.run_batch`` on a Ray cluster (see the module's description); ``jobs``: workers per CPU node, or
    per GPU on GPU nodes. ``split="shots"`` cuts each clip at its hard cuts into shots that run as separate
    units: the state is reset at a cut anyway, so the outputs are those of a sequential run."""
    if jobs < 1:
        raise VmatteError(f"--jobs {jobs}: run at least 1 clip at a time per node")
    if split not in (None, "shots"):
        raise VmatteError(f"--split {split}: the only split is 'shots'")
    temporal = options.get("temporal")
    if split and temporal is not None and temporal.smooth:
        raise VmatteError(f"--split shots: smoothing ({temporal.smooth}) looks across cuts, so shots cannot run "
                          "apart; add --smooth none or leave out --split")
    start = time.perf_counter()
    # Workers run elsewhere, in other folders: every path they get is absolute.
    plan = plan_batch(Path(os.path.abspath(input_dir)), Path(os.path.abspath(out_dir)), templates, options,
                      recursive, glob)
    return run_plan_on_ray(plan, Path(os.path.abspath(out_dir)), options, start, address=address, jobs=jobs,
                           split=bool(split), progress=progress, notice=notice)


def run_plan_on_ray(plan: BatchPlan, out_dir: Path, options: Mapping[str, object], start: float, *,
                    address: str = "local", jobs: int = 1, split: bool = False, progress: Progress | None = None,
                    notice: Callable[[str], None] = print) -> BatchReport:
    """Runs a planned batch (``run_batch_on_ray``; a pull's shots, pull.py) on Ray; every path in the plan
    absolute; ``start``: when the batch began."""
    results = dict(plan.results)
    overall = progress.add_task("clips", total=len(plan.clips), completed=len(results), fps=0.0) if progress else None
    # From here a Ctrl-C stops the batch through Ray (ending at once would leave a local Ray running).
    with making_outputs():
        if plan.to_run:
            connected = connect(address)
            try:
                for result in _run_clips(plan, Path(os.path.abspath(out_dir)), options, jobs, split, progress,
                                         notice):
                    results[result.name] = result
                    if progress:
                        progress.advance(overall)
            finally:
                if connected:
                    _ray().shutdown()
    return plan.report(results, time.perf_counter() - start)


class ProgressBoard:
    """A small actor the workers report to: frames done per running clip, notices, and the stop request."""

    def __init__(self):
        self.clips: dict[str, tuple[int, int]] = {}
        self.notices: list[str] = []
        self.stopping = False

    def update(self, name: str, done: int, total: int) -> bool:
        """Records a clip's progress; True when the batch is stopping."""
        self.clips[name] = (done, total)
        return self.stopping

    def finished(self, name: str) -> None:
        self.clips.pop(name, None)

    def notice(self, message: str) -> None:
        self.notices.append(message)

    def snapshot(self, notices_seen: int) -> tuple[dict[str, tuple[int, int]], list[str]]:
        return dict(self.clips), self.notices[notices_seen:]

    def stop(self) -> None:
        self.stopping = True


class ClipWorker:
    """A worker process: the model, loaded once, with the thread count of a local run on this node."""

    def __init__(self, base: JobSettings, threads: int, board: str):
        import torch

        torch.set_num_threads(threads)
        # Looked up by name: an actor handle among the arguments would keep a restarted worker from starting.
        self.board = _ray().get_actor(board)
        self.engine = load_engine(base, notice=self.notice)

    def notice(self, message: str) -> None:
        self.board.notice.remote(message)

    def run(self, clip: ClipPlan, options: Mapping[str, object]) -> ClipResult:
        ray = _ray()

        def on_progress(done: int, total: int) -> None:
            if ray.get(self.board.update.remote(clip.name, done, total)):
                raise KeyboardInterrupt  # the driver is stopping the batch: stop at this chunk, resumable

        try:
            return run_clip(clip, self.engine, options, on_progress, self.notice)
        finally:
            self.board.finished.remote(clip.name)

    def find_shots(self, clip: ClipPlan, options: Mapping[str, object]) -> list[tuple[int, int]] | ClipResult:
        """The clip's shots as frame ranges, or its failure."""
        for path in clip.to_write.values():  # a sequential run's segments are not shots: start over
            if (work_dir_for(path) / CHECKPOINT).is_file():
                remove_work_dir(work_dir_for(path))
        try:
            return find_shots(job_settings(clip.input, clip.to_write, options))
        except VmatteError as exc:
            return ClipResult(clip.input, clip.name, FAILED, clip.outputs, message=str(exc))

    def run_shot(self, clip: ClipPlan, options: Mapping[str, object], index: int, shots: int,
                 frames: tuple[int, int]) -> ClipResult:
        """One shot of a split clip, into its own outputs in the clip's work folders (done already: skipped)."""
        outputs = shot_outputs(clip, index)
        if all(output_complete(path) for path in outputs.values()):
            return ClipResult(clip.input, clip.name, SKIPPED, outputs)
        unit = replace(clip, name=f"{clip.name} shot {index + 1}/{shots}", to_write=outputs)
        return self.run(unit, {**options, "shot": frames})

    def join_shots(self, clip: ClipPlan, options: Mapping[str, object], shots: int) -> ClipResult:
        try:
            join_shots(job_settings(clip.input, clip.to_write, options), clip, shots)
        except VmatteError as exc:
            return ClipResult(clip.input, clip.name, FAILED, clip.outputs, message=str(exc))
        return ClipResult(clip.input, clip.name, DONE, clip.outputs)


def find_shots(settings: JobSettings) -> list[tuple[int, int]]:
    """Frame ranges of the shots of a clip, cut where the matting stream resets its state: the same test on the
    same thumbnails (temporal.py), so a shot matted on its own starts exactly as in a sequential run."""
    with open_source(settings.input, skip_corrupt=settings.skip_corrupt, sequence_fps=settings.sequence_fps) as source:
        options = settings.temporal.for_source(source.info.is_image_sequence)
        starts, count = [0], 0
        for index, cut in cut_flags(source.frames(0), options.cut_threshold) if options.cuts else ():
            starts += [index] if cut else []
            count = index + 1
        count = count or source.info.frame_count
    return list(zip(starts, [*starts[1:], count]))


def shot_outputs(clip: ClipPlan, index: int) -> dict[str, str]:
    """Where shot ``index`` of a split clip is written: as segment ``index`` of each movie output (joined as a
    resumed run joins its segments), or into its own folder of frames (PNG, EXR)."""
    outputs = {}
    for kind, path in clip.to_write.items():
        if writer_class(kind, path).is_sequence:
            outputs[kind] = str(work_dir_for(path) / "shots" / f"{index:06d}" / sequence_pattern(path).name)
        else:
            outputs[kind] = str(segment_path(work_dir_for(path), index, Path(path).suffix.lower()))
    return outputs


def join_shots(settings: JobSettings, clip: ClipPlan, shots: int) -> None:
    """Puts a split clip's outputs in place from its shots' outputs, with the clip's audio."""
    with open_source(settings.input, skip_corrupt=settings.skip_corrupt, sequence_fps=settings.sequence_fps) as source:
        info = source.info
    audio_from = Path(settings.input) if info.audio and not info.is_image_sequence else None
    tracks = [OutputTrack(kind, path, info, png_depth=settings.png_depth, premultiplied=settings.premultiplied,
                          number_from=settings.number_from, exr_display_encoded=settings.exr_display_encoded)
              for kind, path in settings.outputs.items()]
    for track in tracks:
        if track.is_sequence:
            frames = track.work_dir / "frames"
            frames.mkdir(exist_ok=True)
            for index in range(shots):
                folder = Path(shot_outputs(clip, index)[track.kind]).parent
                for frame in sorted(folder.iterdir()) if folder.is_dir() else ():
                    os.replace(frame, frames / frame.name)
        track.finalize(shots, info.frame_count, audio_from)
    for track in tracks:
        track.remove_work_dir()


def check_storage(input_dir: str, out_dir: str, first_clip: str) -> tuple[str, str | None, int]:
    """Runs on each node: (host, what is wrong with the shared folders there or None, torch's default thread
    count there)."""
    host = os.uname().nodename
    try:
        os.listdir(input_dir)
        with open(first_clip, "rb") as clip:
            clip.read(1)
    except OSError as exc:
        return host, f"cannot read the input folder ({exc})", 0
    try:
        os.makedirs(out_dir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".vmatte-check-"):
            pass
    except OSError as exc:
        return host, f"cannot write in the output folder ({exc})", 0
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    probe = subprocess.run([sys.executable, "-c", THREADS_PROBE], env=env, capture_output=True, text=True)
    return host, None, int(probe.stdout) if probe.returncode == 0 else os.cpu_count() or 1


def _run_clips(plan: BatchPlan, out_dir: Path, options: Mapping[str, object], jobs: int, split: bool,
               progress: Progress | None, notice: Callable[[str], None]):
    """Yields each clip's result as workers finish it."""
    ray = _ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [node for node in ray.nodes() if node["Alive"]]
    use_gpus = plan.base.device in ("auto", "cuda") and any(node["Resources"].get("GPU") for node in nodes)
    if use_gpus:
        nodes = [node for node in nodes if node["Resources"].get("GPU")]
    nodes = [node for node in nodes if node["Resources"].get("CPU", 0) > 0]
    if not nodes:
        raise VmatteError("the Ray cluster has no node with CPUs to run workers on")

    def on_node(node, soft: bool):
        return NodeAffinitySchedulingStrategy(node["NodeID"], soft=soft)

    check = ray.remote(num_cpus=0)(check_storage)
    checks = ray.get([check.options(scheduling_strategy=on_node(node, False)).remote(
        str(plan.input_dir), str(out_dir), str(plan.to_run[0].input)) for node in nodes])
    for (host, problem, _), node in zip(checks, nodes):
        if problem:
            raise VmatteError(f"Ray node {host} ({node['NodeManagerAddress']}) {problem}; inputs and outputs "
                              "must be on storage every node sees under the same path")

    board_name = f"vmatte-progress-{uuid.uuid4().hex}"
    board = ray.remote(num_cpus=0)(ProgressBoard).options(name=board_name).remote()
    worker_class = ray.remote(ClipWorker)
    workers = []
    for node, (_, _, threads) in zip(nodes, checks):
        cpus, gpus = node["Resources"]["CPU"], int(node["Resources"].get("GPU", 0)) if use_gpus else 0
        count = jobs * max(gpus, 1)
        resources = {"num_cpus": cpus / count, "num_gpus": 1 / jobs if gpus else 0}
        # Soft affinity: a worker whose node is lost restarts elsewhere.
        workers += [worker_class.options(**resources, max_restarts=RESTARTS, max_task_retries=RESTARTS,
                                         scheduling_strategy=on_node(node, True)).remote(plan.base, threads, board_name)
                    for _ in range(count)]

    # A unit of work: (worker method, clip, its further arguments). Split clips start with finding their shots.
    units = [("find_shots" if split else "run", clip, ()) for clip in plan.to_run]
    idle, running, splits = list(workers), {}, {}
    display = _Display(progress, board, notice)
    try:
        while units or running:
            while units and idle:
                unit, worker = units.pop(0), idle.pop(0)
                method, clip, args = unit
                running[getattr(worker, method).remote(clip, options, *args)] = (unit, worker)
            if not running:  # every worker is lost
                for clip in {clip.name: clip for _, clip, _ in units}.values():
                    yield ClipResult(clip.input, clip.name, FAILED, clip.outputs, message="no Ray worker left")
                break
            done, _ = ray.wait(list(running), num_returns=1, timeout=POLL_SECONDS)
            display.refresh()
            for ref in done:
                (method, clip, args), worker = running.pop(ref)
                try:
                    result = ray.get(ref)
                    idle.append(worker)
                except ray.exceptions.RayTaskError as exc:  # an unforeseen error in the worker's code: it lives on
                    idle.append(worker)
                    result = ClipResult(clip.input, clip.name, FAILED, clip.outputs,
                                        message=f"{type(exc.cause).__name__}: {exc.cause}")
                except ray.exceptions.RayError as exc:  # the worker died more often than RESTARTS
                    result = ClipResult(clip.input, clip.name, FAILED, clip.outputs,
                                        message=f"Ray worker lost ({type(exc).__name__}); run again to resume")
                if method == "find_shots" and not isinstance(result, ClipResult):
                    if len(result) == 1:
                        units.insert(0, ("run", clip, ()))
                    else:  # a clip's shots go first, so that it is joined and finished early
                        splits[clip.name] = _Split(result)
                        units[:0] = [("run_shot", clip, (index, len(result), frames))
                                     for index, frames in enumerate(result)]
                    continue
                if method == "run_shot":
                    shots = splits[clip.name]
                    shots.results.append(result)
                    if len(shots.results) < len(shots.frames):
                        continue
                    result = shots.failure(clip)
                    if result is None:
                        units.insert(0, ("join_shots", clip, (len(shots.frames),)))
                        continue
                elif method == "join_shots" and result.status == DONE:
                    result = splits[clip.name].result(clip)
                yield result
        display.refresh()
    except KeyboardInterrupt:
        try:
            board.stop.remote()
            ray.wait(list(running), num_returns=len(running), timeout=STOP_GRACE_SECONDS)
        except (ray.exceptions.RayError, ConnectionError):  # a local Ray got the same Ctrl-C and is going down
            pass
        raise Interrupted(BATCH_INTERRUPTED) from None
    finally:
        display.close()
        for actor in (*workers, board):
            try:
                ray.kill(actor)
            except (ray.exceptions.RayError, ConnectionError):
                pass


@dataclass
class _Split:
    """A clip split into shots, while its shots run."""

    frames: list[tuple[int, int]]  # each shot's frame range
    results: list[ClipResult] = field(default_factory=list)  # of the shots finished so far

    def failure(self, clip: ClipPlan) -> ClipResult | None:
        failed = [result for result in self.results if result.status == FAILED]
        return ClipResult(clip.input, clip.name, FAILED, clip.outputs, message="; ".join(
            f"{result.name}: {result.message}" for result in failed)) if failed else None

    def result(self, clip: ClipPlan) -> ClipResult:
        seconds = sum(result.seconds for result in self.results)
        done = sum(result.fps * result.seconds for result in self.results)  # frames matted by this run
        notes = [f"split into {len(self.frames)} shots"]
        notes += [f"{result.name}: {result.message}" for result in self.results if result.message]
        return ClipResult(clip.input, clip.name, DONE, clip.outputs, self.frames[-1][1], seconds,
                          done / seconds if seconds else 0.0, "; ".join(notes))


class _Display:
    """The driver's view of the workers' progress: a progress task per running clip, and their notices."""

    def __init__(self, progress: Progress | None, board, notice: Callable[[str], None]):
        self.progress, self.board, self.notice = progress, board, notice
        self.tasks: dict[str, int] = {}
        self.started: dict[str, float] = {}
        self.notices_seen = 0
        self.told: set[str] = set()  # every worker loads the model and says so: one line is enough

    def refresh(self) -> None:
        clips, notices = _ray().get(self.board.snapshot.remote(self.notices_seen))
        self.notices_seen += len(notices)
        for message in notices:
            if message not in self.told:
                self.told.add(message)
                self.notice(message)
        if not self.progress:
            return
        for name in [name for name in self.tasks if name not in clips]:
            self.progress.remove_task(self.tasks.pop(name))
        for name, (done, total) in clips.items():
            if name not in self.tasks:
                self.tasks[name] = self.progress.add_task(name, total=total, fps=0.0)
                self.started[name] = time.perf_counter()
            elapsed = time.perf_counter() - self.started[name]
            self.progress.update(self.tasks[name], completed=done, total=total, fps=done / elapsed if elapsed else 0)

    def close(self) -> None:
        if self.progress:
            for task in self.tasks.values():
                self.progress.remove_task(task)
