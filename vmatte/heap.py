"""How the process's C heap treats the large buffers a run allocates and frees for every chunk.

glibc hands blocks above its mmap threshold (at most 32 MiB) straight back to the kernel when they are freed,
so the next chunk's frames, tensors and full-resolution intermediates (a chunk of 1080p frames in float32 is
100 MB) come back as fresh pages: a page fault and a zero-fill per 4 KiB, on every chunk. Measured at 1080p
(README, "Speed and memory"), that about doubled the cost of the full-resolution steps. Keeping such
blocks in the heap lets the next chunk reuse them; memory stays flat because every chunk needs the same sizes.

NumPy also asks the kernel for transparent huge pages on every large array. Where the kernel then compacts memory
to find them (THP defrag "madvise", a common default), the first chunks' arrays stall in that compaction: 0.25-0.35 s
for each of the first two 100 MB chunks of 1080p floats, against 0.05 s without asking (docs/speed.md). Once the
heap keeps its blocks nothing is faulted in again, so huge pages buy nothing later: the run does not ask for them.
"""

import ctypes
import ctypes.util
import functools
import sys

import numpy as np

M_TRIM_THRESHOLD = -1  # mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
KEEP = 1 << 30  # blocks up to 1 GiB come from the heap, and up to 1 GiB of free heap is kept


@functools.cache  # a setting of the process: once is enough, however many jobs it runs
def reuse_large_blocks() -> bool:
    """Keep freed large blocks for reuse (glibc only; elsewhere nothing changes). True when applied."""
    if not sys.platform.startswith("linux"):
        return False
    # The call behind NumPy's NUMPY_MADVISE_HUGEPAGE=0, which is read only when NumPy is first imported.
    core = getattr(np, "_core", None) or np.core  # NumPy 2 / 1.x
    set_madvise = getattr(core.multiarray, "_set_madvise_hugepage", None)
    if set_madvise is not None:
        set_madvise(False)
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, KEEP)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP))
