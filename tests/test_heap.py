"""``reuse_freed_blocks``: large freed blocks are reused instead of refaulted (measured by
this process's minor page faults)."""

from __future__ import annotations

import ctypes
import resource

import pytest
import torch

from ardens._heap import _glibc, reuse_freed_blocks


def _glibc_version() -> tuple[int, ...]:
    libc = _glibc()
    if libc is None:
        return ()
    libc.gnu_get_libc_version.restype = ctypes.c_char_p
    return tuple(int(part) for part in libc.gnu_get_libc_version().decode().split(".")[:2])


# Older glibc may refuse an mmap threshold above 32 MiB (reuse_freed_blocks then yields False
# and changes nothing); 2.36 is the version this was measured on.
pytestmark = pytest.mark.skipif(_glibc_version() < (2, 36), reason="needs glibc 2.36 or later")

BLOCK = 64 * 1024 * 1024  # above glibc's largest dynamic mmap threshold (32 MiB)
PAGES = BLOCK // resource.getpagesize()


def _faulted_pages_per_block(repeats: int = 6) -> float:
    """Minor page faults per freshly allocated and written 64 MiB block, in pages of the block,
    after 8 such blocks: the first ones are carved from the heap's untouched top padding."""
    for _ in range(8):
        torch.empty(BLOCK // 4).fill_(1.0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(repeats):
        torch.empty(BLOCK // 4).fill_(1.0)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / repeats / PAGES


def test_blocks_are_reused_inside():
    with reuse_freed_blocks() as active:
        assert active
        assert _faulted_pages_per_block() < 0.05
    # Outside, glibc maps each such block afresh (about 1 page fault per page); how much of
    # the kept memory malloc_trim returns varies from run to run, so that is not asserted.


def test_nested_use_keeps_the_outer_setting():
    with reuse_freed_blocks():
        with reuse_freed_blocks() as inner:
            assert inner
        assert _faulted_pages_per_block() < 0.05


def test_off_changes_nothing():
    with reuse_freed_blocks(on=False) as active:
        assert not active
