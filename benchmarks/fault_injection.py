"""Fault injection: kill ``nearsight simulate`` at random moments, resume, and check that nothing is lost.

    OMP_NUM_THREADS=1 python benchmarks/fault_injection.py [--n 100] [--steps 300] [--seed 0] [--dir DIR]

A 6x6 triangular ED run (``--every 1``, seed 7) is made once without interruption (the reference). Then, for
SIGKILL and for SIGINT in turn, runs are started and sent the signal: in 30% of the cases at a moment drawn
uniformly between the start of the process and the reference's wall time (start-up, file creation, the loop,
the final rename), otherwise once the run loop is writing (its checkpoint file updated since the start) plus a
moment drawn uniformly over the reference's loop time. After each kill the run is continued, with ``--resume``
when a ``.partial`` exists and from scratch when nothing was written, and may be killed again, until ``--n``
signals per kind have hit a live process. Every run that ends is compared with the reference, bit for bit (spins, fields, energy, time, step),
and must be marked complete. Printed counts:

* ``delivered``: signals that hit a running process; ``finished_first``: runs that ended before their signal;
* ``resumed``: continuations with ``--resume``; ``restarted``: fresh starts after a kill before anything was
  written; ``runs_completed`` / ``identical``: finished trajectories, and how many equal the reference;
* SIGINT only: ``clean_stop`` (exit 130 with "interrupted at step K; resume with --resume"), ``before_start``
  (exit 130 "interrupted while starting", or Python's own KeyboardInterrupt in the first instants of the
  interpreter, before nearsight's code runs; nothing is written then), ``completed_anyway`` (exit 0: the signal came after the last step),
  ``swallowed`` (still running 30 s after the signal);
* ``lost``: a continuation that failed (a run that could not be resumed); ``bad_exit``: any other exit status.

A correct package has ``lost = swallowed = bad_exit = 0`` and ``identical = runs_completed``.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

ARGS = ["--lattice", "triangular", "--size", "6", "--J", "3", "--filling", "0.5", "--kT", "0.01", "--solver", "ed",
        "--every", "1", "--seed", "7", "--bath-kT", "0.05", "--dt", "0.05", "--alpha", "0.3", "--replicas", "2"]
KEYS = ("spins", "fields", "energy", "time", "step")


def _cmd(out: str, steps: int, resume: bool) -> list[str]:
    return [sys.executable, "-m", "nearsight", "simulate", *ARGS, "--steps", str(steps), "--out", out] + (
        ["--resume"] if resume else [])


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TQDM_DISABLE": "1"}


def _written_since(out: str, start: float) -> bool:
    try:
        return os.stat(out + ".partial.ckpt").st_mtime >= start
    except FileNotFoundError:
        return False


def _read(path: str) -> tuple[dict, bool]:
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in KEYS}, bool(f.attrs.get("complete"))


def run(n: int = 100, steps: int = 300, seed: int = 0, workdir: str | None = None, log=print,
        signals=("SIGKILL", "SIGINT")) -> dict:
    rng = random.Random(seed)
    own = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="nearsight-faults-")
    try:
        ref = os.path.join(workdir, "ref.h5")
        t0 = time.perf_counter()
        r = subprocess.run(_cmd(ref, steps, False), env=_env(), check=True, capture_output=True, text=True)
        t_ref = time.perf_counter() - t0
        t_loop = float(r.stdout.split(" steps in ")[1].split(" s")[0])
        ref_arrays, ref_complete = _read(ref)
        assert ref_complete, "the reference run is not marked complete"
        log(f"reference: {steps} steps, {len(ref_arrays['step'])} frames, {t_ref:.2f} s wall, {t_loop:.2f} s loop")
        counts = {}
        for sig in (getattr(signal, name) for name in signals):
            c = dict(delivered=0, finished_first=0, resumed=0, restarted=0, runs_completed=0, identical=0, lost=0,
                     bad_exit=0)
            if sig == signal.SIGINT:
                c.update(clean_stop=0, before_start=0, completed_anyway=0, swallowed=0)
            run_id = 0
            while c["delivered"] < n:
                run_id += 1
                out = os.path.join(workdir, f"{sig.name}-{run_id}.h5")
                resume = False
                while True:
                    start = time.time()
                    proc = subprocess.Popen(_cmd(out, steps, resume), env=_env(), stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, text=True)
                    hit = False
                    if c["delivered"] < n:
                        delay = rng.uniform(0.0, t_ref)
                        if rng.random() > 0.3:              # into the loop: wait for a checkpoint of this process
                            while proc.poll() is None and not _written_since(out, start):
                                time.sleep(0.002)
                            delay = rng.uniform(0.0, t_loop)
                        try:
                            proc.wait(timeout=delay)
                        except subprocess.TimeoutExpired:
                            proc.send_signal(sig)
                            hit = True
                            c["delivered"] += 1
                    try:
                        _, err = proc.communicate(timeout=30)
                    except subprocess.TimeoutExpired:
                        c["swallowed"] += 1
                        proc.kill()
                        _, err = proc.communicate()
                    rc = proc.returncode
                    last = (err.strip().splitlines() or [""])[-1]
                    if not hit:
                        if rc != 0:
                            c["lost" if resume else "bad_exit"] += 1
                            log(f"  {sig.name} run {run_id}: {'resume' if resume else 'start'} failed ({rc}): {last}")
                            break
                        c["finished_first"] += 1
                    elif sig == signal.SIGKILL:
                        if rc != -signal.SIGKILL:
                            c["bad_exit" if rc != 0 else "finished_first"] += 1
                    elif rc == 0 or (rc == 130 and os.path.exists(out)):
                        c["completed_anyway"] += 1     # the signal came after the last step
                    elif rc == 130 and "interrupted at step" in last and "--resume" in last:
                        c["clean_stop"] += 1
                    elif (rc == 130 and "interrupted while starting" in err) or (
                            rc == -signal.SIGINT and err.strip().endswith("KeyboardInterrupt")):
                        c["before_start"] += 1
                    else:
                        c["bad_exit"] += 1
                        log(f"  SIGINT run {run_id}: exit {rc}: {last}")
                    if os.path.exists(out):
                        arrays, complete = _read(out)
                        c["runs_completed"] += 1
                        same = complete and all(np.array_equal(arrays[k], ref_arrays[k]) for k in KEYS)
                        c["identical"] += int(same)
                        if not same:
                            log(f"  {sig.name} run {run_id}: differs from the reference (complete={complete})")
                        break
                    resume = os.path.exists(out + ".partial")
                    c["resumed" if resume else "restarted"] += 1
                for p in (out, out + ".partial", out + ".partial.ckpt", out + ".lock"):
                    if os.path.exists(p):
                        os.remove(p)
            counts[sig.name] = c
            log(f"{sig.name}: " + ", ".join(f"{k}={v}" for k, v in c.items()))
        return counts
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="signals of each kind that hit a running process")
    ap.add_argument("--steps", type=int, default=300, help="LLG steps of each run (one frame per step)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    ap.add_argument("--dir", default=None, help="work directory (default: a temporary one, removed)")
    ap.add_argument("--signals", default="SIGKILL,SIGINT", help="which signals, comma separated")
    a = ap.parse_args()
    t0 = time.perf_counter()
    counts = run(a.n, a.steps, a.seed, a.dir, log=lambda s: print(s, flush=True), signals=a.signals.split(","))
    bad = sum(c["lost"] + c["bad_exit"] + c.get("swallowed", 0) + c["runs_completed"] - c["identical"]
              for c in counts.values())
    print(f"{'OK' if bad == 0 else 'FAILED'}: {bad} problem(s) in {time.perf_counter() - t0:.0f} s")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
