"""Process-level settings that make many-step CPU runs faster.

:func:`keep_freed_memory` asks glibc's allocator to keep freed blocks for reuse. A field evaluation allocates
and frees the same few-MB temporaries (features, activations and their gradients) at every call; by default
glibc serves blocks above 128 kB with fresh ``mmap`` pages and returns them on ``free``, so every evaluation
pays the page faults again. Keeping them made an ML field evaluation 10-15% faster on one CPU thread (900 and
10^4 sites; ``benchmarks/bench_ml.py``), at the cost of the process keeping its peak heap. It is what the
PyTorch CPU performance guide achieves by swapping in jemalloc/tcmalloc, done with the system allocator.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_MAX = 32 << 20          # glibc's largest accepted mmap threshold (HEAP_MAX_SIZE / 2 on 64-bit)
_done = False


def keep_freed_memory() -> bool:
    """Serve allocations up to 32 MiB from the heap and never trim it (glibc ``mallopt``). Idempotent; a
    no-op returning False off Linux/glibc."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_MAX) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30) == 1
    except (OSError, AttributeError):     # not glibc (musl has no mallopt)
        return False
    _done = ok
    return ok
