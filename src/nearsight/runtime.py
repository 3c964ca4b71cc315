"""Process-level settings: memory reuse, threads that fit the machine, and the provenance written into files.

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
import os
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


# ------------------------------------------------------------------------------------------------ threads
def usable_cores() -> int:
    """CPU cores this process may run on: its affinity mask (``taskset``, batch schedulers), capped by a cgroup
    CPU quota (containers: ``cpu.max``) where one is set."""
    import math
    import os
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as fh:
            quota, period = fh.read().split()[:2]
        if quota != "max":
            n = min(n, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def default_threads() -> tuple[int, str]:
    """``(threads, why)`` when none is asked for: ``OMP_NUM_THREADS`` if set, else the usable cores less those
    other processes keep busy (1-minute load average, which is read before this process has added any), at
    least 1. Oversubscribed OpenMP threads spin at every barrier waiting for a preempted sibling: on a 2-core box
    with other work running, two threads made a 96x96 ML-LLG step 7x slower than one, 24x with one more busy process
    (``benchmarks/bench_threads.py``; issue 20 saw a 6x6 ED evaluation 70x slower)."""
    import os
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env:
        try:
            return max(1, int(env.split(",")[0])), "OMP_NUM_THREADS"
        except ValueError:
            pass
    cores = usable_cores()
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    n = max(1, min(cores, int(cores - busy + 0.5)))
    return n, f"{cores} usable core(s), load {busy:.1f}"


_threads: int | None = None


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads (OpenMP and MKL) to ``threads`` or :func:`default_threads`, and export
    ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` for child processes. Returns the number set."""
    import os

    import torch
    global _threads
    if threads is None:
        threads = default_threads()[0]
    from .errors import NearsightError
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise NearsightError(f"threads must be an integer >= 1, got {threads!r}")
    torch.set_num_threads(threads)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    _threads = threads
    return threads


def worker_threads(n_workers: int) -> int:
    """Threads for each of ``n_workers`` processes sharing this machine: the usable cores split evenly, at least
    one (one thread per worker when there are as many workers as cores)."""
    return max(1, usable_cores() // max(1, int(n_workers)))


# --------------------------------------------------------------------------------------------- provenance
TIME_UNIT = "hbar/t"        # docs/conventions.md: t = 1 is the unit of energy, hbar = 1
ENERGY_UNIT = "t"
PROVENANCE_KEYS = ("nearsight_version", "torch_version", "numpy_version", "h5py_version", "python_version",
                   "git_revision", "command_line", "created", "threads", "time_unit", "energy_unit")
_git: list = []
_command_line: list = []


def set_command_line(argv: list[str]) -> None:
    """The command line provenance records (the CLI sets it to ``nearsight ARGS`` however it was invoked)."""
    _command_line[:] = [str(a) for a in argv]


def git_revision() -> str | None:
    """The commit of the checkout nearsight is imported from (``+dirty`` if tracked files differ), or None when it
    is installed from a wheel or git is unavailable."""
    if _git:
        return _git[0]
    import os
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    rev = None
    if os.path.exists(os.path.join(root, ".git")):
        try:
            kw = dict(cwd=root, capture_output=True, text=True, timeout=10)
            head = subprocess.run(["git", "rev-parse", "HEAD"], **kw)
            if head.returncode == 0:
                dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], **kw)
                rev = head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
        except (OSError, subprocess.SubprocessError):
            rev = None
    _git.append(rev)
    return rev


def provenance() -> dict:
    """What made a file: package versions, git revision (checkouts), command line, UTC timestamp, threads, and
    the units of time and energy. Written into every file nearsight writes."""
    import datetime
    import platform
    import shlex
    import sys

    import h5py
    import numpy
    import torch

    from . import __version__
    out = {"nearsight_version": __version__, "torch_version": str(torch.__version__), "numpy_version": numpy.__version__,
           "h5py_version": h5py.__version__, "python_version": platform.python_version(),
           "command_line": shlex.join(_command_line or [os.path.basename(sys.argv[0]) if sys.argv else "python",
                                                         *sys.argv[1:]]),
           "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "threads": int(torch.get_num_threads()), "time_unit": TIME_UNIT, "energy_unit": ENERGY_UNIT}
    rev = git_revision()
    if rev is not None:
        out["git_revision"] = rev
    return out


def file_sha256(path: str) -> str:
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def median_time(fn, repeat: int) -> float:
    """Median wall time in seconds of ``repeat`` calls of ``fn()`` after one warm-up call (for benchmarks)."""
    import statistics
    import time
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
