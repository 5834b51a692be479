"""Chunks of work on torch's CPU threads (``ardens._openmp``): every chunk once, in parallel,
errors raised in the caller; the same without an OpenMP runtime."""

from __future__ import annotations

import threading

import pytest
import torch

from ardens import _openmp


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("runtime", ["openmp", "thread pool"])
@pytest.mark.parametrize("chunks", [1, 2, 5])
def test_every_chunk_runs_once(runtime, chunks, two_threads, monkeypatch):
    if runtime == "openmp" and _openmp.openmp_runtime() is None:
        pytest.skip("torch loaded no OpenMP runtime here")
    if runtime == "thread pool":
        monkeypatch.setattr(_openmp, "openmp_runtime", lambda: None)
    seen: list[tuple[int, int]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(min(chunks, 2), timeout=10)

    def fn(t: int) -> None:
        if t < 2:
            barrier.wait()  # the first two chunks can only both pass if they run at once
        with lock:
            seen.append((t, threading.get_ident()))

    _openmp.run_chunks(fn, chunks)
    assert sorted(t for t, _ in seen) == list(range(chunks))
    assert len({ident for _, ident in seen}) == min(chunks, 2)


@pytest.mark.parametrize("runtime", ["openmp", "thread pool"])
def test_an_error_in_a_chunk_is_raised_in_the_caller(runtime, two_threads, monkeypatch):
    if runtime == "openmp" and _openmp.openmp_runtime() is None:
        pytest.skip("torch loaded no OpenMP runtime here")
    if runtime == "thread pool":
        monkeypatch.setattr(_openmp, "openmp_runtime", lambda: None)
    done: list[int] = []

    def fn(t: int) -> None:
        if t == 1:
            raise ValueError("chunk 1 failed")
        done.append(t)

    with pytest.raises(ValueError, match="chunk 1 failed"):
        _openmp.run_chunks(fn, 3)
    assert sorted(done) == [0, 2]  # the other chunks still ran to their end


def test_split_rows():
    assert _openmp.split_rows(100, 2, min_rows=8) == [0, 50, 100]
    assert _openmp.split_rows(10, 4, min_rows=8) == [0, 10]
    assert _openmp.split_rows(0, 2) == [0, 0]
    assert _openmp.split_rows(7, 3) == [0, 2, 4, 7]
