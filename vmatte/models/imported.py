"""Weights imported from another format, kept in the cache as a PyTorch state dict for the next run.

Reading the official ONNX release needs the ``onnx`` package, and importing it alone takes 0.5-0.9 s (its
``ml_dtypes`` extension), which every run paid before its first frame; ``torch.load`` of the same tensors takes
milliseconds. The cached copy is keyed by the weight file's checksum and the network's source, so other weights or a
changed layer import again; it lives with the compiled graphs (``compiled_cache.py``: bounded, ``vmatte cache``).
"""

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from ..compiled_cache import compiled_dir, mark_used, prune, put_in_place
from .weights import network_code_digest, sha256_of

STATE_FILE = "state.pt"


def cached_import(path: Path, importer: Callable[[Path], tuple[dict, str]]) -> tuple[dict, str]:
    """``importer(path)`` (a state dict and its encoder variant), from the cache when this file was imported before.
    A cache that cannot be read or written only costs the import."""
    key = hashlib.sha256(f"{sha256_of(path)} {network_code_digest()} {torch.__version__}".encode()).hexdigest()[:24]
    folder = compiled_dir() / f"rvm-weights-{path.stem}-{key}"
    try:
        saved = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
        mark_used(folder)
        return saved["state"], saved["variant"]
    except Exception:  # absent, or damaged (torch raises many types): import it again, in its place
        shutil.rmtree(folder, ignore_errors=True)
    state, variant = importer(path)
    try:
        put_in_place(folder, lambda tmp: torch.save({"state": state, "variant": variant}, tmp / STATE_FILE))
        prune(folder.parent, keep=folder)
    except (OSError, RuntimeError):  # a read-only or full cache (torch.save raises RuntimeError on a short write)
        pass
    return state, variant
