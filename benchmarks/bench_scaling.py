"""Strong and weak scaling of the domain-decomposed ML-LLG step with torchrun (gloo on CPU, NCCL on GPU).

    python benchmarks/bench_scaling.py                        # 1 and 2 processes, CPU, gloo (launches torchrun)
    python benchmarks/bench_scaling.py --procs 1 2 4 --L 128 --device cpu --out scaling.json

For each process count K the script launches ``python -m torch.distributed.run --nproc_per_node K`` on itself
(``--worker``), which builds a :class:`~nearsight.distributed.DomainDecomposedProvider` from the torchrun
environment and times Heun steps (2 field evaluations each, noise drawn per row):

* strong scaling: one ``L x L`` lattice over K ranks (speed-up, efficiency);
* weak scaling: ``L x (rows * K)`` — the same strip per rank (time per step should stay flat);
* the communication share of a step: time in the halo exchange, its reverse and the energy all-reduce (rank 0,
  synchronized), which on a shared machine also holds the wait for a slower rank (load imbalance);
* per-site cost, halo volume per rank and evaluation, and the extrapolation to 10^7 spins "on paper" from the
  measured per-site cost (printed with its assumptions).
Every number printed is measured here except the extrapolation, which says so.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.abspath(__file__)


def worker(a) -> None:
    import torch

    from nearsight import Lattice
    from nearsight.distributed import DomainDecomposedProvider, init_from_env, shutdown
    from nearsight.distributed.noise import RowNoise, make_integrator
    from nearsight.dynamics.integrators import LLGState
    from nearsight.ml.cards import load_card, load_model
    from nearsight.states import make_state

    torch.set_num_threads(a.threads)
    env = init_from_env(a.device)
    kind = load_card(a.model)["lattice"]
    out = []
    cases = [("strong", a.L, a.L)] + [("weak", a.L, a.rows * env.world)]
    for mode, L1, L2 in cases:
        lat = Lattice(kind, L1, L2)
        dd = DomainDecomposedProvider(load_model(a.model, lat), lat, env=env)
        s = torch.as_tensor(make_state("random", lat, seed=1)[None][:, dd.lattice.sites], device=env.device)
        integ = make_integrator("heun", dd, 0.05, 0.5, 0.01, env)
        noise = RowNoise(0, L1, L2, dd.lattice.y0, dd.lattice.y1, env.device)
        state = LLGState(s, 0.0, 0, noise)
        state = integ.step(state, dd.compute(state.spins))          # warm-up
        times, comm0, calls0 = [], dd.comm_seconds, dd.calls
        for _ in range(a.steps):
            if env.device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            state = integ.step(state, dd.compute(state.spins))
            times.append(time.perf_counter() - t0)
        step = sorted(times)[len(times) // 2]
        comm = (dd.comm_seconds - comm0) / a.steps
        halo_cost = None
        if env.world == 1 and mode == "strong":    # cost of a halo row relative to an owned row, measured
            from nearsight.ml.provider import MLProvider
            ml = MLProvider(load_model(a.model, lat), lat, device=str(env.device))
            ml.compute(state.spins)
            t_ml, t_dd = [], []
            for _ in range(a.steps):
                t0 = time.perf_counter()
                ml.compute(state.spins)
                t_ml.append(time.perf_counter() - t0)
                c0 = dd.compute_seconds
                dd.compute(state.spins)
                t_dd.append(dd.compute_seconds - c0)
            extra = min(t_dd) / min(t_ml) - 1.0
            halo_cost = extra * dd.lattice.L2 / (2 * dd.h)
        out.append({"mode": mode, "world": env.world, "L1": L1, "L2": L2, "N": lat.N, "rows_per_rank": dd.lattice.L2,
                    "halo_rows": dd.h, "patch_rows": dd.patch.L2, "halo_sites_per_eval": dd.halo_sites(),
                    "evals_per_step": (dd.calls - calls0) / a.steps, "step_s": step, "comm_s_per_step": comm,
                    "comm_share": comm / step, "s_per_site_step": step / lat.N * env.world,
                    "halo_row_relative_cost": halo_cost})
    if env.is_main:
        with open(a.result, "w") as f:
            json.dump(out, f)
    shutdown()


def launch(a, K: int) -> list:
    with tempfile.TemporaryDirectory() as tmp:
        res = os.path.join(tmp, "r.json")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={K}", HERE,
               "--worker", "--result", res, "--model", a.model, "--L", str(a.L), "--rows", str(a.rows),
               "--steps", str(a.steps), "--device", a.device, "--threads", str(a.threads)]
        env = {**os.environ, "OMP_NUM_THREADS": str(a.threads), "MKL_NUM_THREADS": str(a.threads)}
        subprocess.run(cmd, check=True, env=env, timeout=a.timeout)
        with open(res) as f:
            return json.load(f)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--procs", nargs="+", type=int, default=[1, 2])
    p.add_argument("--model", default="triangular-tetrahedral")
    p.add_argument("--L", type=int, default=64, help="strong scaling: L x L; weak scaling: width L")
    p.add_argument("--rows", type=int, default=32, help="weak scaling: rows per rank")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--out", default=None)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--result", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        return worker(a)
    rows = []
    for K in a.procs:
        rows += launch(a, K)
    base = {r["mode"]: r for r in rows if r["world"] == 1}
    print(f"{a.model}, {a.device}, {a.threads} thread(s) per process, os.cpu_count() = {os.cpu_count()}")
    print(f"{'mode':6s} {'K':>2s} {'lattice':>10s} {'rows/rank':>9s} {'halo':>4s} {'halo sites/eval':>15s} "
          f"{'step [s]':>9s} {'comm share':>10s} {'us/site/step':>12s} {'speed-up':>8s} {'eff.':>5s}")
    for r in rows:
        b = base.get(r["mode"])
        if b is None:
            sp = eff = float("nan")
        elif r["mode"] == "strong":
            sp = b["step_s"] / r["step_s"]
            eff = sp / r["world"]
        else:
            sp = float("nan")
            eff = b["step_s"] / r["step_s"]
        r["speedup"], r["efficiency"] = sp, eff
        print(f"{r['mode']:6s} {r['world']:2d} {r['L1']:4d}x{r['L2']:<5d} {r['rows_per_rank']:9d} {r['halo_rows']:4d} "
              f"{r['halo_sites_per_eval']:15d} {r['step_s']:9.3f} {100 * r['comm_share']:9.1f}% "
              f"{1e6 * r['s_per_site_step']:12.1f} {sp:8.2f} {eff:5.2f}")
    one = base["strong"]
    c = one["s_per_site_step"]
    h = one["halo_rows"]
    q = max(0.0, one["halo_row_relative_cost"])
    print(f"\nmeasured: a halo row costs {q:.2f} of an owned row (1 process, {one['L1']}x{one['L2']}: patch of "
          f"{one['patch_rows']} rows vs the plain provider; best of {a.steps})")
    N = 1e7
    W = int(round(math.sqrt(N)))
    print(f"On paper, 10^7 spins ({W} x {W}, {a.model}, halo {h} rows), from the measured 1-process cost "
          f"{1e6 * c:.1f} us per site and Heun step on this machine's core:")
    for K in (1, 16, 64, 256, 1024):
        rows_k = W / K
        compute = c * N / K * (1 + 2 * h / rows_k * q)      # the halo adds lattice terms only (measured share q)
        halo_bytes = 2 * 2 * (2 * h * W * 3 * 4)             # 2 evaluations x (spins + gradients) x both sides, fp32
        comm = halo_bytes / 10e9 + 2 * 4 * 20e-6           # assumed 10 GB/s links, 20 us per message
        print(f"  K = {K:5d}: {rows_k:8.1f} rows per rank, compute ~ {compute:9.3f} s/step, "
              f"halo {halo_bytes / 1e6:.2f} MB per rank and step -> ~ {1e3 * comm:.2f} ms at 10 GB/s (assumed), "
              f"step ~ {compute + comm:9.3f} s")
    print("  (per-site cost and halo-row cost as measured here on one CPU core; interconnect 10 GB/s and 20 us per "
          "message are assumptions, not measured; the global noise mode would add 3N normals per rank and step, "
          "the rows mode does not)")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
