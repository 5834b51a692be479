"""``reuse_freed_blocks``: large freed blocks are reused instead of refaulted, and glibc's
defaults come back afterwards (measured by this process's minor page faults)."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest
import torch

from ardens._heap import _glibc, reuse_freed_blocks

pytestmark = pytest.mark.skipif(_glibc() is None, reason="mallopt tuning applies to glibc only")

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


def _huge_pages_always() -> bool:
    path = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    return path.exists() and "[always]" in path.read_text()


def test_blocks_are_reused_inside_and_refaulted_after():
    with reuse_freed_blocks() as active:
        assert active
        inside = _faulted_pages_per_block()
    assert inside < 0.05
    if _huge_pages_always():
        pytest.skip("transparent huge pages are always on: fresh mappings fault once per 2 MiB")
    assert _faulted_pages_per_block() > 0.5  # glibc's default: each block mapped afresh


def test_nested_use_keeps_the_outer_setting():
    with reuse_freed_blocks():
        with reuse_freed_blocks() as inner:
            assert inner
        assert _faulted_pages_per_block() < 0.05


def test_off_changes_nothing():
    with reuse_freed_blocks(on=False) as active:
        assert not active
