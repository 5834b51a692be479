"""Flushing float denormals to zero on every CPU thread torch computes on.

Adam's moments of weights that get no gradient (masked, or behind dead ReLUs) and
weight-decayed unused weights shrink through the denormal range (below 1.2e-38 in float32),
where each CPU operation on them is about 20 times slower. ``torch.set_flush_denormal`` sets
the flush-to-zero and denormals-are-zero flags of the *calling* thread only: the OpenMP
workers of torch's intra-op pool (and MKL's, which shares that pool) keep their own flags, so
with two threads half of every elementwise op and GEMM still ran on denormals. Here the flags
are also set inside one OpenMP parallel region of the runtime torch loaded, which runs on
those very workers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from ._openmp import openmp_runtime, run_chunks


def set_flush_denormal_everywhere(on: bool) -> bool:
    """Set (or clear) flushing of denormals on this thread and on torch's OpenMP workers.

    Returns False where the CPU cannot flush denormals, like ``torch.set_flush_denormal``.
    """
    if not torch.set_flush_denormal(on):
        return False
    if openmp_runtime() is not None:  # one chunk per worker, run by that worker
        run_chunks(lambda _: torch.set_flush_denormal(on), torch.get_num_threads())
    return True


@contextlib.contextmanager
def flush_denormals(device: torch.device) -> Iterator[None]:
    """Flush float denormals to zero on all CPU threads for the duration (then back to the default).

    Flushing changes values only below the normal range of the dtype.
    """
    if device.type != "cpu" or not set_flush_denormal_everywhere(True):
        yield
        return
    try:
        yield
    finally:
        set_flush_denormal_everywhere(False)
