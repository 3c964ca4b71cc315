"""Benchmark of the KPM field provider: accuracy against ED, linear scaling, and the ED/KPM crossover.

    python benchmarks/bench_kpm.py [--quick] [--device cuda] [--threads 1]

(a) Convergence table at kT = 0.01, canonical (and fixed mu at the defaults) for the two systems of the project,
    triangular J = 2, n = 1/4 and square J = 6, n = 0.485, on random spins and an ordered state plus noise 0.3
    (tetrahedral / Neel): energy error per site and transverse-field error ``RMS(h_perp(kpm) - h_perp(ed)) /
    RMS(h_perp(ed))`` against moments (exact probing, so the expansion alone is measured) and against the probing
    distance (default moments), on lattices up to 24x24.
(b) Time per field evaluation for N = 32^2 ... 256^2 at the default probing distance, and the fitted exponent.
    On CPU the full default (2000 moments) at 256^2 takes many minutes, so by default the time is measured at
    two small moment counts and extrapolated to the default: the cost is exactly linear in M (M/2 forward and
    M/2 backward steps of identical cost), so t(M) = t0 + M * t1 is fitted per N.
(c) ED vs KPM (defaults) time at equal N, 64 ... 1024 sites, and the crossover size from power-law fits.

Timings use one thread by default (the development machine is a shared 2-core box); pass --threads to change.
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from nearsight.fields import transverse
from nearsight.electrons.ed import EDProvider
from nearsight.electrons.kpm import DEFAULT_MOMENTS, KPMProvider
from nearsight.hamiltonian import SDModel
from nearsight.lattice import Lattice
from nearsight.states import make_state

KT = 0.01
SYSTEMS = [("triangular", 2.0, 0.25, "tetrahedral"), ("square", 6.0, 0.485, "neel")]


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device):
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t


def errors(kpm, ed, spins, N):
    de = float((kpm.energy - ed.energy).abs().max()) / N
    hp = transverse(ed.fields, spins)
    dh = float((transverse(kpm.fields, spins) - hp).pow(2).sum(-1).mean().sqrt() / hp.pow(2).sum(-1).mean().sqrt())
    return de, dh


def convergence(args):
    L_big, L_small = (12, 8) if args.quick else (24, 12)
    moments = (500, 1000, 2000)
    distances = (4, 6)  # the default (8) is the 'default' row
    print(f"\n(a) accuracy vs ED at kT = {KT} (canonical unless marked 'fixed mu'); dE = |E_kpm - E_ed| / N, "
          f"dh = RMS transverse-field error / RMS transverse field")
    print(f"{'system':22s} {'config':12s} {'L':>3s} {'moments':>7s} {'probing':>14s} {'kernel':>7s} {'R':>5s} "
          f"{'dE/site':>9s} {'dh':>8s} {'t_kpm':>7s}")
    dev = args.device
    for kind, J, n, order in SYSTEMS:
        for cfg in ("random", order):
            for L, rows in ((L_small, [dict(moments=M, probe_distance="exact") for M in moments]),
                            (L_big, [dict(probe_distance=d, realizations=1) for d in distances]
                             + [dict(realizations=1), dict(vectors="ones"), dict()])):
                lat = Lattice(kind, L)
                spins = torch.as_tensor(make_state(cfg, lat, seed=3, noise=0.0 if cfg == "random" else 0.3),
                                        device=dev)[None]
                can = SDModel(J=J, kT=KT, filling=n)
                ed_can = EDProvider(lat, can, device=dev)(spins)
                fixed = SDModel(J=J, kT=KT, mu=float(ed_can.extras["mu"][0]))
                jobs = [(can, ed_can, kw) for kw in rows]
                if L == L_big:
                    jobs.append((fixed, EDProvider(lat, fixed, device=dev)(spins), {}))
                for model, ed, kw in jobs:
                    kpm = KPMProvider(lat, model, device=dev, **kw)
                    res, t = timed(lambda: kpm(spins), dev)
                    de, dh = errors(res, ed, spins, lat.N)
                    dsc = kpm.describe()
                    probing = "exact" if dsc["probe_distance"] == "exact" else \
                        f"d={float(dsc['probe_distance']):g}>{dsc['colour_separation']:.1f}"
                    tag = "default (realizations auto: K = %d)" % kpm.realizations if not kw else \
                        ("unit-amplitude colouring" if "vectors" in kw else "")
                    name = f"{kind} J={J:g} n={n:g}" + (" fixed mu" if not model.canonical else "")
                    print(f"{name:22s} {cfg:12s} {L:3d} {kpm.moments:7d} {probing:>14s} {kpm.kernel:>7s} "
                          f"{kpm.n_vectors:5d} {de:9.1e} {100 * dh:7.2f}% {t:6.1f}s {tag}", flush=True)


def zero_temperature(args):
    """The kT = 0 step is resolved only to the Jackson width pi a / M: ordered states with a small gap at mu."""
    L = 8 if args.quick else 12
    print(f"\n(a') kT = 0, canonical, ordered + noise 0.3, {L}x{L}, exact probing, Jackson kernel")
    print(f"{'system':22s} {'gap at mu':>9s} {'moments':>7s} {'pi a/M':>7s} {'dE/site':>9s} {'dh':>8s}")
    dev = args.device
    for kind, J, n, order in SYSTEMS:
        lat = Lattice(kind, L)
        spins = torch.as_tensor(make_state(order, lat, seed=3, noise=0.3), device=dev)[None]
        model = SDModel(J=J, kT=0.0, filling=n)
        ed = EDProvider(lat, model, observables=True, device=dev)(spins)
        eps, ne = ed.extras["eigenvalues"][0], model.n_electrons(lat.N)
        gap = float(eps[ne] - eps[ne - 1])
        for M in (1000, 2000, 4000):
            kpm = KPMProvider(lat, model, moments=M, probe_distance="exact", device=dev)
            de, dh = errors(kpm(spins), ed, spins, lat.N)
            print(f"{kind + ' J=' + format(J, 'g') + ' n=' + format(n, 'g'):22s} {gap:9.3f} {M:7d} "
                  f"{math.pi * kpm.a / M:7.3f} {de:9.1e} {100 * dh:7.2f}%", flush=True)


def fit_exponent(N, t):
    return float(np.polyfit(np.log(N), np.log(t), 1)[0])


def scaling(args):
    dev = args.device
    sizes = (32, 64, 128) if args.quick else (32, 64, 128, 256)
    on_cpu = torch.device(dev).type == "cpu"
    Ms = (args.bench_moments // 2, args.bench_moments) if on_cpu else (DEFAULT_MOMENTS,)
    kind, J, n, _ = SYSTEMS[0]
    model = SDModel(J=J, kT=KT, filling=n)
    print(f"\n(b) time per field evaluation, {kind} J={J:g} n={n:g} kT={KT} canonical, random spins, default "
          f"probing; " + (f"measured at M = {Ms} and extrapolated to M = {DEFAULT_MOMENTS} (t = t0 + M t1)"
                          if on_cpu else f"M = {DEFAULT_MOMENTS}"))
    print(f"{'L':>5s} {'N':>7s} {'R':>5s} " + " ".join(f"{'t(M=' + str(M) + ')':>11s}" for M in Ms)
          + f" {'t(M=' + str(DEFAULT_MOMENTS) + ')':>12s} {'ns/(site*vec*moment)':>21s} {'vectors GB':>10s}")
    Ns, ts = [], []
    for L in sizes:
        lat = Lattice(kind, L)
        spins = torch.as_tensor(make_state("random", lat, seed=1), device=dev)[None]
        times = []
        for M in Ms:
            kpm = KPMProvider(lat, model, moments=M, realizations=1, device=dev)   # cost of one phase draw
            kpm(spins)  if not on_cpu else None  # warm-up (CUDA context, kernels)
            times.append(timed(lambda: kpm(spins), dev)[1])
        if on_cpu:
            t1 = (times[1] - times[0]) / (Ms[1] - Ms[0])
            t_def = times[1] + (DEFAULT_MOMENTS - Ms[1]) * t1
        else:
            t_def = times[0]
            t1 = t_def / DEFAULT_MOMENTS
        R = kpm.n_vectors
        gb = 10 * lat.N * 2 * R * 16 / 1e9  # ~10 probe blocks live in the backward pass
        Ns.append(lat.N)
        ts.append(t_def)
        print(f"{L:5d} {lat.N:7d} {R:5d} " + " ".join(f"{t:10.2f}s" for t in times)
              + f" {t_def:11.1f}s {1e9 * t1 / (lat.N * R):21.2f} {gb:10.2f}", flush=True)
    print(f"fitted exponent t ~ N^p over N = {Ns[0]}..{Ns[-1]}: p = {fit_exponent(Ns, ts):.3f}; over "
          f"N = {Ns[1]}..{Ns[-1]}: p = {fit_exponent(Ns[1:], ts[1:]):.3f} (the smallest lattice partly fits in "
          f"cache: compare the cost per site, vector and moment)")
    Mdef = DEFAULT_MOMENTS
    print(f"(autograd through the recursion would keep ~M/2 = {Mdef // 2} probe blocks alive: "
          f"{Mdef // 2 * Ns[-1] * 2 * R * 16 / 1e9:.0f} GB at N = {Ns[-1]}, vs ~{gb:.1f} GB for the adjoint "
          f"recursion)")


def crossover(args):
    dev = args.device
    sizes = (16, 24, 32) if args.quick else (8, 12, 16, 24, 32)
    kind, J, n, _ = SYSTEMS[0]
    model = SDModel(J=J, kT=KT, filling=n)
    print(f"\n(c) ED vs KPM (defaults) time per evaluation, {kind} J={J:g} n={n:g} kT={KT} canonical, random spins")
    print(f"{'L':>4s} {'N':>6s} {'t_ED':>9s} {'t_KPM':>9s} {'R':>5s} {'probing':>8s}")
    Ns, ted, tkpm = [], [], []
    for L in sizes:
        lat = Lattice(kind, L)
        spins = torch.as_tensor(make_state("random", lat, seed=1), device=dev)[None]
        ed = EDProvider(lat, model, device=dev)
        ed(spins) if not torch.device(dev).type == "cpu" else None
        t_ed = timed(lambda: ed(spins), dev)[1]
        kpm = KPMProvider(lat, model, realizations=1, device=dev)
        t_k = timed(lambda: kpm(spins), dev)[1]
        Ns.append(lat.N)
        ted.append(t_ed)
        tkpm.append(t_k)
        print(f"{L:4d} {lat.N:6d} {t_ed:8.2f}s {t_k:8.2f}s {kpm.n_vectors:5d} {kpm.describe()['probe_distance']:>8s}",
              flush=True)
    # power laws on the two largest sizes: ED is in its N^3 regime there, and KPM past exact probing (at the
    # default distance, lattices up to ~16x16 give every site its own colour, R = 2N, cost ~N^2)
    pe = np.polyfit(np.log(Ns[-2:]), np.log(ted[-2:]), 1)
    pk = np.array([1.0, math.log(tkpm[-1] / Ns[-1])])
    print(f"ED ~ N^{pe[0]:.2f} (two largest sizes); KPM ~ N^1 from the largest (fixed colouring, see (b))")
    idx = [i for i in range(len(Ns)) if tkpm[i] < ted[i]]
    if idx:
        print(f"crossover: KPM is faster from N = {Ns[idx[0]]} sites on (measured)")
    elif pe[0] > pk[0]:
        Nx = math.exp((pk[1] - pe[1]) / (pe[0] - pk[0]))
        print(f"crossover (extrapolated from these power laws): N ~ {Nx:.0f} sites (L ~ {math.sqrt(Nx):.0f})")
    else:
        print("no crossover within the fitted power laws")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller lattices, fewer settings (about a minute)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads on CPU")
    ap.add_argument("--bench-moments", type=int, default=64,
                    help="CPU only: the scaling series is timed at M/2 and M moments and extrapolated")
    ap.add_argument("--only", choices=("a", "b", "c"), default=None, help="run one part")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"device {args.device}, threads {torch.get_num_threads()}, torch {torch.__version__}, "
          f"default moments {DEFAULT_MOMENTS}")
    for part, fn in (("a", convergence), ("a", zero_temperature), ("b", scaling), ("c", crossover)):
        if args.only in (None, part):
            fn(args)


if __name__ == "__main__":
    main()
