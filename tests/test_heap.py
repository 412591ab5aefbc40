"""vmatte.heap: large blocks a run frees come back without page faults."""

import ctypes
import resource
import sys

import pytest

from vmatte.heap import reuse_large_blocks

BLOCK = 64 << 20  # above glibc's largest automatic mmap threshold (32 MiB): a chunk of HD frames in float32


def faults_for_one_block(libc) -> int:
    """Minor page faults taken to allocate, fill and free one block."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = libc.malloc(BLOCK)
    assert block
    ctypes.memset(block, 1, BLOCK)
    libc.free(ctypes.c_void_p(block))
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_a_freed_large_block_is_reused_without_page_faults():
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    assert reuse_large_blocks()
    faults_for_one_block(libc)  # the first block grows the heap
    # Handed back to the kernel on free, each new block would fault in again page by page (16,384 of 4 KiB).
    assert faults_for_one_block(libc) < 256


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="transparent huge pages")
def test_numpy_asks_for_no_huge_pages_once_blocks_are_reused():
    """Their compaction stalled the first chunks (vmatte/heap.py)."""
    import numpy as np

    assert reuse_large_blocks()
    set_madvise = np._core.multiarray._set_madvise_hugepage
    assert set_madvise(False) is False  # it returns the setting it replaces
