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
from pathlib import Path

from rich.progress import Progress

from .batch import BATCH_INTERRUPTED, FAILED, BatchPlan, BatchReport, ClipPlan, ClipResult, plan_batch, run_clip
from .errors import VmatteError
from .pipeline import Interrupted, JobSettings, load_engine

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
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise VmatteError(f"--ray {address}: cannot connect ({exc})") from None
    return True


def run_batch_on_ray(input_dir: Path, out_dir: Path, templates: Mapping[str, str], options: Mapping[str, object], *,
                     address: str = "local", recursive: bool = False, glob: str | None = None, jobs: int = 1,
                     progress: Progress | None = None, notice: Callable[[str], None] = print) -> BatchReport:
    """``batch.run_batch`` on a Ray cluster (see the module's description); ``jobs``: workers per CPU node, or
    per GPU on GPU nodes."""
    if jobs < 1:
        raise VmatteError(f"--jobs {jobs}: run at least 1 clip at a time per node")
    start = time.perf_counter()
    # Workers run elsewhere, in other folders: every path they get is absolute.
    plan = plan_batch(Path(os.path.abspath(input_dir)), Path(os.path.abspath(out_dir)), templates, options,
                      recursive, glob)
    results = dict(plan.results)
    overall = progress.add_task("clips", total=len(plan.clips), completed=len(results), fps=0.0) if progress else None
    if plan.to_run:
        connected = connect(address)
        try:
            for result in _run_clips(plan, Path(os.path.abspath(out_dir)), options, jobs, progress, notice):
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


def _run_clips(plan: BatchPlan, out_dir: Path, options: Mapping[str, object], jobs: int,
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

    queue, idle, running = list(plan.to_run), list(workers), {}
    display = _Display(progress, board, notice)
    try:
        while queue or running:
            while queue and idle:
                clip, worker = queue.pop(0), idle.pop(0)
                running[worker.run.remote(clip, options)] = (clip, worker)
            if not running:  # every worker is lost
                for clip in queue:
                    yield ClipResult(clip.input, clip.name, FAILED, clip.outputs, message="no Ray worker left")
                break
            done, _ = ray.wait(list(running), num_returns=1, timeout=POLL_SECONDS)
            display.refresh()
            for ref in done:
                clip, worker = running.pop(ref)
                try:
                    result = ray.get(ref)
                    idle.append(worker)
                except ray.exceptions.RayError as exc:  # the worker died more often than RESTARTS
                    result = ClipResult(clip.input, clip.name, FAILED, clip.outputs,
                                        message=f"Ray worker lost ({type(exc).__name__}); run again to resume")
                display.finished(clip.name)
                yield result
        display.refresh()
    except KeyboardInterrupt:
        board.stop.remote()
        ray.wait(list(running), num_returns=len(running), timeout=STOP_GRACE_SECONDS)
        raise Interrupted(BATCH_INTERRUPTED) from None
    finally:
        display.close()
        for actor in (*workers, board):
            ray.kill(actor)


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
        for name, (done, total) in clips.items():
            if name not in self.tasks:
                self.tasks[name] = self.progress.add_task(name, total=total, fps=0.0)
                self.started[name] = time.perf_counter()
            elapsed = time.perf_counter() - self.started[name]
            self.progress.update(self.tasks[name], completed=done, total=total, fps=done / elapsed if elapsed else 0)

    def finished(self, name: str) -> None:
        if self.progress and name in self.tasks:
            self.progress.remove_task(self.tasks.pop(name))

    def close(self) -> None:
        for name in list(self.tasks):
            self.finished(name)
