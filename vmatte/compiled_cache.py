"""The cache of prepared models (``$VMATTE_HOME/compiled``), one folder each: the CPU graphs the OpenVINO backend
converts once per model and settings, for every working size (``inference_openvino.py``), and weights imported
from another format as a PyTorch state dict (``models/imported.py``).

Each is about 15 MB and other weights, semantics or library versions add one, so the cache is bounded:
after a build, the graphs used least recently go until the cache fits ``VMATTE_COMPILED_CACHE_MB`` (default 500).
A graph's use is its folder's modification time, renewed whenever a run loads it. ``vmatte cache`` lists and clears
it. Nothing here imports PyTorch or OpenVINO, so the command answers at once.
"""

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import VmatteError
from .models.weights import cache_dir

DEFAULT_LIMIT_MB = 500
GRAPH_PREFIX = "rvm-"  # cached folders; one being written is a hidden ".build-" folder beside them


@dataclass(frozen=True)
class Graph:
    path: Path  # its folder
    size: int  # bytes
    used: float  # seconds since the epoch: when a run last loaded it


def compiled_dir() -> Path:
    return cache_dir() / "compiled"


def limit_bytes() -> int:
    value = os.environ.get("VMATTE_COMPILED_CACHE_MB", str(DEFAULT_LIMIT_MB))
    try:
        megabytes = float(value)
    except ValueError:
        raise VmatteError(f"VMATTE_COMPILED_CACHE_MB={value}: give a size in MB") from None
    return int(megabytes * 1e6)


def graphs(folder: Path | None = None) -> list[Graph]:
    """The graphs in the cache, least recently used first."""
    folder = folder or compiled_dir()
    found = []
    for path in folder.glob(f"{GRAPH_PREFIX}*"):
        try:
            size = sum(file.stat().st_size for file in path.iterdir())
            found.append(Graph(path, size, path.stat().st_mtime))
        except OSError:  # removed meanwhile by another run
            continue
    return sorted(found, key=lambda graph: graph.used)


def put_in_place(folder: Path, write: Callable[[Path], None]) -> None:
    """Makes ``folder`` whole or not at all: ``write`` fills a hidden folder beside it, which is then renamed."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=folder.parent))
    try:
        write(tmp)
        tmp.rename(folder)
    except OSError:
        if not folder.is_dir():  # another process may have put the same folder in place first
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def mark_used(graph_folder: Path) -> None:
    try:
        os.utime(graph_folder)
    except OSError:  # a read-only cache still works; it is just not reordered
        pass


def prune(folder: Path, keep: Path) -> list[Graph]:
    """Removes the least recently used graphs until the cache fits its limit, never ``keep`` (the graph in use);
    returns what it removed."""
    present = graphs(folder)
    excess = sum(graph.size for graph in present) - limit_bytes()
    removed = []
    for graph in present:
        if excess <= 0:
            break
        if graph.path == keep:
            continue
        shutil.rmtree(graph.path, ignore_errors=True)
        excess -= graph.size
        removed.append(graph)
    return removed


def clear(folder: Path | None = None) -> list[Graph]:
    present = graphs(folder)
    for graph in present:
        shutil.rmtree(graph.path, ignore_errors=True)
    return present


def describe(graph: Graph) -> str:
    """One line: the folder's name (model, working size, outputs, key), its size, and when it was last used."""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(graph.used))
    return f"{graph.path.name}  {graph.size / 1e6:6.1f} MB  used {when}"
