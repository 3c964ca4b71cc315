"""Descriptor feature count and per-site cost, per lattice and cutoff (forward, and forward + backward).

    python benchmarks/bench_descriptors.py                       # defaults: 96x96, both lattices, R_c = 4, 5, 6
    python benchmarks/bench_descriptors.py --size 64 --cutoffs 4 6 --dtype float64 --threads 2

Columns: R_c and R_loc requested, the true receptive radius (``cutoff``), the number of variables around a
site, the feature count F, the construction time, and the costs. Per-site cost = wall time of one call /
(batch * sites), the median of ``--repeat`` calls after a warm-up. One thread by default: on a machine
shared with other jobs, two OpenMP threads can be many times slower than one.
"Forward + backward" is the descriptor forward followed by the gradient of a scalar (sum of features times a
fixed random weight) with respect to the spins — the descriptor's share of one ML field evaluation.
"""
from __future__ import annotations

import argparse
import time

import torch

from nearsight.runtime import median_time
from nearsight.descriptors import DEFAULTS, Descriptor
from nearsight.lattice import Lattice


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--lattices", nargs="+", default=["square", "triangular"])
    p.add_argument("--cutoffs", nargs="+", type=float, default=[4.0, 5.0, 6.0])
    p.add_argument("--local-cutoff", type=float, default=None, help="default: the lattice default (capped at R_c)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: on a shared machine more threads can be much slower)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.dtype}, "
          f"{args.size}x{args.size}, batch {args.batch}")
    print(f"{'lattice':10s} {'R_c':>5s} {'R_loc':>5s} {'cutoff':>7s} {'vars':>5s} {'F':>5s} "
          f"{'build s':>7s} {'fwd us/site':>11s} {'f+b us/site':>11s} {'fwd ms':>8s} {'f+b ms':>8s}")
    for kind in args.lattices:
        lat = Lattice(kind, args.size)
        for rc in args.cutoffs:
            local = args.local_cutoff if args.local_cutoff is not None else min(DEFAULTS[kind]["local_cutoff"], rc)
            t0 = time.perf_counter()
            d = Descriptor(lat, rc, local_cutoff=local)
            build = time.perf_counter() - t0
            g = torch.Generator().manual_seed(0)
            s = torch.randn(args.batch, lat.N, 3, generator=g, dtype=dtype)
            s = s / s.norm(dim=-1, keepdim=True)
            w = torch.randn(d.n_features, generator=g, dtype=dtype)

            def fwd():
                with torch.no_grad():
                    d(s)

            def fwd_bwd():
                x = s.detach().requires_grad_(True)
                (d(x) @ w).sum().backward()

            tf, tb = median_time(fwd, args.repeat), median_time(fwd_bwd, args.repeat)
            n = args.batch * lat.N
            summ = d.summary()
            print(f"{kind:10s} {rc:5.1f} {local:5.1f} {d.cutoff:7.3f} {sum(summ['variables'].values()):5d} "
                  f"{d.n_features:5d} {build:7.2f} {1e6 * tf / n:11.2f} "
                  f"{1e6 * tb / n:11.2f} {1e3 * tf:8.1f} {1e3 * tb:8.1f}")


if __name__ == "__main__":
    main()
