"""Canonical ED-LLG quenches from random spins: the chemical potential mu*(t) that holds the electron count fixed.

This measures the window of ``mu`` that labels for a mu-conditioned model must cover (issue 22): a model trained
on fixed-mu labels drawn from ``[lo, hi]`` meets, in canonical dynamics at filling ``n``, exactly the ``mu*`` of
the frames it drives, and those are the values printed here.

    python examples/canonical_reference.py --lattice square --size 16 --J 6 --filling 0.485 --kT 0.1 \\
        --steps 1500 --replicas 2 --out out/canonical/sq16_kT0.1

Per recorded frame (every ``--every`` steps) it prints the replica values of ``mu*``, the electron count ``N``
(checked against ``N_e``), the nearest-neighbour spin correlation and the fraction of ferromagnetic sites, and
writes ``mu_star.npz`` under ``--out``: arrays step, time [F], mu, n_electrons, nn, fm_fraction [F, B] and the
spins [F, B, N, 3] of every recorded frame (float64; canonical ED-LLG frames for held-out tests).
A site counts as ferromagnetic when the mean of ``S_i . S_j`` over its nearest neighbours is positive (square
lattice; Néel sites have it near -1).
Settings default to the issue's: bath kT 0.005, alpha 0.5, dt 0.05 (LL form with the 1/(1+alpha^2) factor).
"""
import argparse
import json
import os

import numpy as np
import torch

from nearsight import Lattice, SDModel
from nearsight.analysis.observables import site_nn_correlation
from nearsight.dynamics import run_llg
from nearsight.electrons import EDProvider
from nearsight.states import make_state


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lattice", default="square", choices=("square", "triangular"))
    ap.add_argument("--size", type=int, default=12)
    ap.add_argument("--J", type=float, default=6.0)
    ap.add_argument("--filling", type=float, default=0.485)
    ap.add_argument("--kT", type=float, default=0.1, help="electronic temperature")
    ap.add_argument("--bath-kT", type=float, default=0.005)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--dt", type=float, default=0.05)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--device", default=None, help="torch device of the ED (cpu, cuda)")
    ap.add_argument("--progress", action="store_true", help="show a progress bar")
    ap.add_argument("--out", default="out/canonical/run")
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    os.makedirs(a.out, exist_ok=True)
    lat = Lattice(a.lattice, a.size)
    model = SDModel(J=a.J, filling=a.filling, kT=a.kT)
    ed = EDProvider(lat, model, device=a.device)
    ne = model.n_electrons(lat.N)
    rec = {k: [] for k in ("step", "time", "mu", "n_electrons", "nn", "fm_fraction", "spins")}

    def observe(step, t, spins, res):
        s = spins.cpu().numpy()
        loc = site_nn_correlation(s, lat)
        for k, v in (("step", step), ("time", t), ("mu", res.extras["mu"].cpu().numpy()),
                     ("n_electrons", res.extras["n_electrons"].cpu().numpy()), ("nn", loc.mean(-1)),
                     ("fm_fraction", (loc > 0).mean(-1)), ("spins", s)):
            rec[k].append(np.array(v, dtype=np.float64))
        if len(rec["step"]) % 25 == 0:   # a run stopped early still leaves its mu*(t) so far
            np.savez(os.path.join(a.out, "mu_star.npz"), **{k: np.stack(v) for k, v in rec.items()})
        return {"mu*": float(res.extras["mu"].mean())}

    r = run_llg(ed, make_state("random", lat, seed=a.seed, batch=a.replicas), steps=a.steps, dt=a.dt, alpha=a.alpha,
                kT=a.bath_kT, seed=a.seed, every=a.every, observers=[observe], progress=a.progress)
    arr = {k: np.stack(v) for k, v in rec.items()}
    np.savez(os.path.join(a.out, "mu_star.npz"), **arr)
    mu = arr["mu"]
    dev = float(np.abs(arr["n_electrons"] - ne).max())
    print(f"{lat.kind} {lat.L1}x{lat.L2} J={a.J} n={a.filling} (N_e={ne}) kT_el={a.kT} bath={a.bath_kT} "
          f"alpha={a.alpha} dt={a.dt} steps={a.steps} replicas={a.replicas} seed={a.seed} device={ed.device}; "
          f"wall {r.wall_time:.0f} s; max |N - N_e| = {dev:.1e}")
    print(f"{'step':>6} {'time':>7} " + " ".join(f"{'mu*_' + str(b):>9}" for b in range(a.replicas))
          + f" {'nn':>7} {'fm_frac':>7}")
    for k in range(0, len(arr["step"]), max(1, len(arr["step"]) // 30)):
        print(f"{int(arr['step'][k]):6d} {arr['time'][k]:7.1f} " + " ".join(f"{m:9.4f}" for m in mu[k])
              + f" {arr['nn'][k].mean():7.3f} {arr['fm_fraction'][k].mean():7.3f}")
    late = arr["step"] >= a.steps // 2
    summary = {"lattice": lat.kind, "size": a.size, "J": a.J, "filling": a.filling, "kT": a.kT,
               "bath_kT": a.bath_kT, "alpha": a.alpha, "dt": a.dt, "steps": a.steps, "replicas": a.replicas,
               "seed": a.seed, "device": str(ed.device), "wall_s": r.wall_time,
               "mu_min": float(mu.min()), "mu_max": float(mu.max()),
               "mu_min_after_step0": float(mu[1:].min()), "mu_max_after_step0": float(mu[1:].max()),
               "mu_late_mean": float(mu[late].mean()), "mu_late_min": float(mu[late].min()),
               "mu_late_max": float(mu[late].max()), "fm_fraction_final": arr["fm_fraction"][-1].tolist(),
               "nn_final": arr["nn"][-1].tolist(), "max_count_error": dev}
    print(json.dumps(summary))
    with open(os.path.join(a.out, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=1)


if __name__ == "__main__":
    main()
