"""Reusing large freed blocks instead of taking fresh pages from the kernel (glibc only).

glibc serves every allocation above its mmap threshold (128 KiB, raised dynamically up to
32 MiB) with freshly mapped pages and unmaps them when freed, so the kernel zero-fills each
page again on first touch. A MADE with 8000-unit layers allocates a 256 MB masked weight
matrix per layer and its gradient at every training step: on our 2-core CPU about a third of
the process's CPU time went to the kernel's page faults (720 million in its first 40
minutes). Inside ``reuse_freed_blocks`` blocks up to 1 GiB come from the heap and the heap
keeps its freed top, so the next step reuses the same memory. Values computed are unchanged
(torch never relies on fresh memory being zero). On exit glibc's documented defaults are
restored (the threshold then stays at 128 KiB instead of adapting) and ``malloc_trim`` is
asked to hand free pages back to the system.
"""

from __future__ import annotations

import contextlib
import ctypes
import platform
import threading
from collections.abc import Iterator
from functools import cache

__all__ = ["reuse_freed_blocks"]

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # <malloc.h>
_DEFAULT = 128 * 1024  # glibc's documented defaults of all three
_REUSE = {_M_MMAP_THRESHOLD: 1 << 30, _M_TRIM_THRESHOLD: (1 << 31) - 1, _M_TOP_PAD: 1 << 28}


@cache
def _glibc() -> ctypes.CDLL | None:
    """The C library of this process where it is glibc, else None (musl, macOS, Windows)."""
    if platform.system() != "Linux":
        return None
    libc = ctypes.CDLL(None)
    if not all(hasattr(libc, name) for name in ("gnu_get_libc_version", "mallopt", "malloc_trim")):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    return libc


def _set(values: dict[int, int]) -> bool:
    libc = _glibc()
    return libc is not None and all(libc.mallopt(param, value) == 1 for param, value in values.items())


_lock = threading.Lock()
_depth = 0  # nesting of active ``reuse_freed_blocks``: only the outermost one sets and restores


@contextlib.contextmanager
def reuse_freed_blocks(on: bool = True) -> Iterator[bool]:
    """Keep freed blocks of up to 1 GiB in the heap for reuse for the duration.

    Yields whether it is in effect (False where the C library is not glibc, or ``on`` is
    False). Nested uses share the outermost one's setting.
    """
    global _depth
    with _lock:
        active = on and (_depth > 0 or _set(_REUSE))
        if on and not active:
            _set(dict.fromkeys(_REUSE, _DEFAULT))  # undo a partial change (an older glibc refusing 1 GiB)
        _depth += active
    try:
        yield active
    finally:
        if active:
            with _lock:
                _depth -= 1
                if _depth == 0:
                    _set(dict.fromkeys(_REUSE, _DEFAULT))
                    _glibc().malloc_trim(0)  # hand the kept free pages back, wherever they lie in the heap
