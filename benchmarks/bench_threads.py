"""Threads against the machine: a 6x6 ED field evaluation and steps of the main job (ML-LLG on 96x96, the
``configs/quickstart.yaml`` physics), with torch's own default thread count (before issue 20) and nearsight's
(:func:`nearsight.runtime.default_threads`, after), on the machine as it is and with one extra process keeping a
core busy.

    OMP_NUM_THREADS= python benchmarks/bench_threads.py [--repeat 30] [--steps 6]

(``OMP_NUM_THREADS`` must be unset, or nearsight's default is simply its value.) Prints the load average seen,
the thread counts each policy picks, and per-evaluation / per-step times (median of ``--repeat``).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import torch

from nearsight import Lattice, SDModel
from nearsight.dynamics import run_llg
from nearsight.electrons import EDProvider
from nearsight.runtime import default_threads, median_time, usable_cores
from nearsight.states import make_state


def _median_ms(fn, repeat: int) -> float:
    return 1e3 * median_time(fn, repeat)


def measure(threads: int, repeat: int, steps: int) -> tuple[float, float]:
    torch.set_num_threads(threads)
    lat = Lattice("triangular", 6, 6)
    ed = EDProvider(lat, SDModel(J=3.0, filling=0.5, kT=0.01))
    s = make_state("random", lat, seed=1)
    t_ed = _median_ms(lambda: ed(s), repeat)
    from nearsight.ml.provider import MLProvider
    big = Lattice("triangular", 96, 96)
    ml = MLProvider("triangular-120", big)
    s0 = make_state("random", big, seed=0)
    t_step = _median_ms(lambda: run_llg(ml, s0, steps=steps, dt=0.05, alpha=0.1, kT=0.002, every=steps,
                                        progress=False), 3) / steps
    return t_ed, t_step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--steps", type=int, default=6)
    a = ap.parse_args()
    torch_default = torch.get_num_threads()
    for busy in (False, True):
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            if busy:
                time.sleep(1.0)
            ours, why = default_threads()
            print(f"{'one extra busy process' if busy else 'as found'}: load {os.getloadavg()[0]:.2f}, usable cores "
                  f"{usable_cores()}; torch default {torch_default} thread(s), nearsight default {ours} ({why})")
            for label, n in (("before (torch default)", torch_default), ("after (nearsight default)", ours),
                             ("1 thread", 1)):
                t_ed, t_step = measure(n, a.repeat, a.steps)
                print(f"  {label:27s} threads={n}: 6x6 ED evaluation {t_ed:8.2f} ms   96x96 ML-LLG step "
                      f"{t_step:8.1f} ms", flush=True)
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()


if __name__ == "__main__":
    main()
