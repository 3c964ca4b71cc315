"""Time one ED field evaluation against N (N = 64 ... 1024) and fit the exponent t ~ N^p (expect p ~ 3).

    python benchmarks/bench_ed.py [--sizes 8,12,16,24,32] [--repeat 2] [--device cpu]
"""
import argparse
import time

import numpy as np
import torch

from nearsight import Lattice, SDModel
from nearsight.electrons import EDProvider
from nearsight.states import make_state


def time_eval(provider, spins, repeat, device):
    provider.compute(spins)  # warm-up
    ts = []
    for _ in range(repeat):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        provider.compute(spins)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="8,12,16,24,32")
    ap.add_argument("--lattice", default="triangular")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    print(f"ED field evaluation, {a.lattice} J=2 n=1/4 kT=0.01, device {a.device}, torch threads "
          f"{torch.get_num_threads()}")
    print(f"{'L':>4} {'N':>6} {'time (s)':>10}")
    Ns, ts = [], []
    for L in (int(x) for x in a.sizes.split(",")):
        lat = Lattice(a.lattice, L)
        ed = EDProvider(lat, SDModel(J=2.0, filling=0.25, kT=0.01), device=a.device)
        t = time_eval(ed, make_state("random", lat, seed=0), a.repeat, a.device)
        Ns.append(lat.N)
        ts.append(t)
        print(f"{L:4d} {lat.N:6d} {t:10.4f}", flush=True)
    big = [k for k, n in enumerate(Ns) if n >= 256] or list(range(len(Ns)))
    p = np.polyfit(np.log(np.array(Ns)[big]), np.log(np.array(ts)[big]), 1)[0]
    print(f"fitted exponent (N >= 256): t ~ N^{p:.2f}")


if __name__ == "__main__":
    main()
