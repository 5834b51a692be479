"""Running work on torch's own CPU threads: the OpenMP runtime torch loaded, and its workers.

The numba kernels (NADE's likelihood, gradient and sampler, MADE's sampler) run their chunks
of rows inside one parallel region of this runtime, on the very workers torch's intra-op ops
use. With a thread pool of their own (numba's), torch's workers, which spin for several
milliseconds after each torch op before they sleep, took half a core from the kernel on a
2-core machine: NADE's likelihood ran in 12 ms instead of 6.5 (BENCHMARKS.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import torch

__all__ = ["openmp_runtime", "run_chunks", "run_on_bounds", "split_rows"]

REGION = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


@cache
def openmp_runtime() -> ctypes.CDLL | None:
    """The OpenMP runtime loaded in this process (torch's), or None where there is none."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "/libgomp" in line or "/libiomp" in line}
    except OSError:
        return None
    # torch's own runtime first: another library (scikit-learn's wheel, say) may have loaded
    # a second libgomp, whose parallel regions run on its own workers, not torch's
    torch_lib = os.path.join(os.path.dirname(os.path.realpath(torch.__file__)), "lib")
    for path in sorted(paths, key=lambda p: (not os.path.realpath(p).startswith(torch_lib), p)):
        with contextlib.suppress(OSError):
            runtime = ctypes.CDLL(path)
            if all(hasattr(runtime, f) for f in ("GOMP_parallel", "omp_get_thread_num", "omp_get_num_threads")):
                return runtime
    return None


def split_rows(rows: int, parts: int | None = None, *, min_rows: int = 1) -> list[int]:
    """Bounds ``[0, ..., rows]`` of at most ``parts`` (by default, one per torch thread)
    near-equal chunks of at least ``min_rows`` rows each (one chunk where ``rows`` is small)."""
    parts = torch.get_num_threads() if parts is None else parts
    parts = max(1, min(parts, rows // max(1, min_rows)))
    return [rows * p // parts for p in range(parts + 1)]


def run_chunks(fn: Callable[[int], None], chunks: int) -> None:
    """Call ``fn(t)`` for ``t`` in ``range(chunks)``, in parallel on torch's CPU threads.

    ``fn`` should release the GIL for its work (a ``nogil`` numba kernel). The chunks run in
    one parallel region of torch's OpenMP runtime (thread ``i`` of a team of ``k`` takes
    chunks ``i, i + k, ...``); where there is no such runtime, on a Python thread pool. The
    first exception raised by any chunk is raised here, after all chunks end.
    """
    threads = min(chunks, torch.get_num_threads())
    if threads <= 1:
        for t in range(chunks):
            fn(t)
        return
    runtime = openmp_runtime()
    if runtime is None:
        with ThreadPoolExecutor(threads) as pool:
            for future in [pool.submit(fn, t) for t in range(chunks)]:
                future.result()
        return
    errors: list[BaseException] = []

    def region(_: int | None) -> None:
        try:
            team, me = runtime.omp_get_num_threads(), runtime.omp_get_thread_num()
            for t in range(me, chunks, team):
                fn(t)
        except BaseException as error:  # noqa: BLE001 - raised again in the calling thread
            errors.append(error)

    runtime.GOMP_parallel(REGION(region), None, ctypes.c_uint(threads), ctypes.c_uint(0))
    if errors:
        raise errors[0]


def run_on_bounds(fn: Callable[[int, int, int], None], bounds: Sequence[int]) -> None:
    """``fn(t, bounds[t], bounds[t + 1])`` for every chunk ``t``, by :func:`run_chunks`."""
    run_chunks(lambda t: fn(t, bounds[t], bounds[t + 1]), len(bounds) - 1)
