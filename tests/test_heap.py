"""``reuse_freed_blocks``: large freed blocks are reused instead of refaulted.

Measured by minor page faults in a fresh Python process for each case: how a 64 MiB block is
served depends on the heap's history (a heap left with large free chunks by earlier tests
serves it without faults whatever the setting, and a CI run inside the whole suite once saw
one block of six taken from fresh pages), so each case starts from a heap of its own.
"""

from __future__ import annotations

import ctypes
import resource
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ardens._heap import _glibc, reuse_freed_blocks


def _glibc_version() -> tuple[int, ...]:
    libc = _glibc()
    if libc is None:
        return ()
    libc.gnu_get_libc_version.restype = ctypes.c_char_p
    return tuple(int(part) for part in libc.gnu_get_libc_version().decode().split(".")[:2])


def _transparent_huge_pages_always() -> bool:
    """Whether the kernel backs large anonymous mappings with 2 MiB pages unasked (one fault
    per 512 pages), which hides fresh pages from this measure."""
    try:
        return "[always]" in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False


# Older glibc may refuse an mmap threshold above 32 MiB (reuse_freed_blocks then yields False
# and changes nothing); 2.36 is the version this was measured on.
pytestmark = pytest.mark.skipif(_glibc_version() < (2, 36), reason="needs glibc 2.36 or later")

BLOCK = 64 * 1024 * 1024  # above glibc's largest dynamic mmap threshold (32 MiB)
PAGES = BLOCK // resource.getpagesize()


def _faulted_pages_per_block(warmup: int = 8, repeats: int = 9) -> float:
    """Median over ``repeats`` freshly allocated and written 64 MiB blocks of the minor page
    faults each caused, in pages of the block, after ``warmup`` such blocks (the first ones
    are carved from the heap's untouched top padding). A block on fresh pages faults about
    once per page, a reused one not at all."""
    for _ in range(warmup):
        torch.empty(BLOCK // 4).fill_(1.0)
    per_block = []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        torch.empty(BLOCK // 4).fill_(1.0)
        per_block.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / PAGES)
    return statistics.median(per_block)


def _measure(case: str) -> float:
    """Run ``case`` of this module's ``__main__`` in a fresh interpreter; its measure."""
    done = subprocess.run([sys.executable, __file__, case], capture_output=True, text=True, timeout=300, check=True)
    return float(done.stdout.split()[-1])


def test_blocks_are_reused_inside():
    assert _measure("inside") < 0.05


def test_nested_use_keeps_the_outer_setting():
    assert _measure("nested") < 0.05


@pytest.mark.skipif(_transparent_huge_pages_always(), reason="transparent huge pages are 'always'")
@pytest.mark.parametrize("case", ["plain", "off"])
def test_without_it_blocks_come_from_fresh_pages(case):
    # The measure can fail: in a fresh process with glibc's defaults, or with on=False, each
    # 64 MiB block is mapped afresh and unmapped when freed.
    assert _measure(case) > 0.5


def test_off_changes_nothing():
    with reuse_freed_blocks(on=False) as active:
        assert not active


if __name__ == "__main__":
    case = sys.argv[1]
    if case == "plain":
        print(_faulted_pages_per_block())
    elif case in ("inside", "off"):
        with reuse_freed_blocks(on=case == "inside") as active:
            assert active == (case == "inside")
            print(_faulted_pages_per_block())
    elif case == "nested":
        with reuse_freed_blocks():
            with reuse_freed_blocks() as inner:
                assert inner
            print(_faulted_pages_per_block())
    else:
        raise SystemExit(f"unknown case {case!r}")
