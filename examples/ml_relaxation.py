"""ML-LLG relaxation on a lattice far beyond ED: a thermal quench from random spins with a shipped model, and
the structure-factor weight at the ordering momenta against time.

    python examples/ml_relaxation.py --model triangular-120 --size 48 --steps 3000
    python examples/ml_relaxation.py --model triangular-tetrahedral --size 48 --steps 3000

For each recorded frame it prints the nearest-neighbour correlation, the mean |scalar chirality| and the
fraction of the spin structure factor, sum_q S(q) = N, that sits at the ordering momenta: the K points for 120°
order (a perfect 120° state has S(K) + S(K') = N: fraction 1), the three M points for the tetrahedral triple-Q
state (perfect: 1), Gamma and M for the square lattice (ferromagnetic puddles, Neel order). The run writes an
HDF5 trajectory (resumable) and the standard plots (time series, maps, S(q)).
"""
import argparse
import os

import numpy as np
from tqdm import tqdm

from nearsight import Lattice
from nearsight.analysis import observables as obs
from nearsight.analysis.plots import plot_trajectory
from nearsight.dynamics import run_llg
from nearsight.ml.cards import load_card
from nearsight.ml.provider import MLProvider
from nearsight.states import make_state

ORDERING = {"triangular": {"K": ("K", "K'"), "M": ("M1", "M2", "M3")}, "square": {"Gamma": ("Gamma",), "M": ("M",)}}


def weights(spins: np.ndarray, lat: Lattice) -> dict:
    """Fraction of sum_q S(q) at each group of ordering momenta, replica-averaged."""
    sq = obs.structure_factor(spins, lat)                       # [B, L2, L1] (or [L2, L1])
    sq = sq.reshape(-1, *sq.shape[-2:])
    total = sq.sum((-1, -2))
    out = {}
    for name, pts in ORDERING[lat.kind].items():
        w = 0.0
        for p in pts:
            i, j = obs.momentum_index(lat.high_symmetry_points()[p], lat)
            w = w + sq[:, i, j]
        out[name] = float((w / total).mean())
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="triangular-120")
    ap.add_argument("--size", type=int, default=48)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--dt", type=float, default=0.05)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--bath-kT", dest="bath_kT", type=float, default=0.002)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=None, help="output directory (default out/relax_MODEL_SIZE)")
    a = ap.parse_args()
    card = load_card(a.model)
    lat = Lattice(card["lattice"], a.size)
    out = a.out or f"out/relax_{os.path.basename(a.model).replace('.pt', '')}_{a.size}"
    os.makedirs(out, exist_ok=True)
    traj = os.path.join(out, "trajectory.h5")
    ml = MLProvider(a.model, lat)
    print(f"{a.model}: {lat!r}, {lat.N} spins, {a.steps} steps dt={a.dt} alpha={a.alpha} bath kT={a.bath_kT}")
    rows = []

    def observe(step, t, s, res):
        s = s.cpu().numpy()
        w = weights(s, lat)
        rows.append((t, float(obs.nn_correlation(s, lat).mean()),
                     float(np.abs(obs.triangle_chirality(s, lat)).mean()), w))
        tqdm.write(f"t = {t:7.1f}  <S.S>_nn = {rows[-1][1]:+.4f}  <|chi|> = {rows[-1][2]:.4f}  " +
              "  ".join(f"S({k})/N = {v:.3f}" for k, v in w.items()))
        return {}

    run_llg(ml, make_state("random", lat, seed=a.seed), steps=a.steps, dt=a.dt, alpha=a.alpha, kT=a.bath_kT,
            seed=a.seed, every=a.every, out=traj, resume=os.path.exists(traj + ".partial"), observers=[observe],
            save_fields=False, progress=True)
    for p in plot_trajectory(traj, out):
        print("plot ->", p)


if __name__ == "__main__":
    main()
