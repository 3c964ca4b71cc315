"""ML-LLG against ED-LLG: the same thermal quench from random spins, ensemble-averaged observables vs time.

    python examples/compare_dynamics.py --model triangular-120 --size 12 --replicas 8 --steps 600

Both runs use identical settings (lattice, initial spins, dt, alpha, bath kT, seeds); the replicas differ in
their initial spins and noise. For each recorded time it prints the replica mean and standard error of the
nearest-neighbour spin correlation and of the mean |scalar chirality| for ED and for ML, and the difference in
units of the combined standard error. Saves a plot.
"""
import argparse
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nearsight import Lattice, SDModel  # noqa: E402
from nearsight.analysis import observables as obs  # noqa: E402
from nearsight.dynamics import run_llg  # noqa: E402
from nearsight.electrons import EDProvider  # noqa: E402
from nearsight.ml.cards import load_card  # noqa: E402
from nearsight.ml.provider import MLProvider  # noqa: E402
from nearsight.states import make_state  # noqa: E402


def series(provider, s0, a, lat):
    frames = []
    run_llg(provider, s0, steps=a.steps, dt=a.dt, alpha=a.alpha, kT=a.bath_kT, seed=a.seed, every=a.every,
            observers=[lambda step, t, s, res: frames.append((t, s.cpu().numpy()))])
    t = np.array([f[0] for f in frames])
    s = np.stack([f[1] for f in frames])
    return t, obs.nn_correlation(s, lat), np.abs(obs.triangle_chirality(s, lat)).mean(-1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--size", type=int, default=12)
    ap.add_argument("--replicas", type=int, default=8)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--dt", type=float, default=0.05)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--bath-kT", dest="bath_kT", type=float, default=0.005)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--plot", default="out/compare_dynamics.png")
    a = ap.parse_args()
    card = load_card(a.model)
    lat = Lattice(card["lattice"], a.size)
    model = SDModel.from_dict(card)
    s0 = make_state("random", lat, seed=a.seed, batch=a.replicas)
    out = {}
    for name, prov in (("ED", EDProvider(lat, model)), ("ML", MLProvider(a.model, lat))):
        out[name] = series(prov, s0, a, lat)
    t = out["ED"][0]
    print(f"{a.model} on {a.size}x{a.size}, {a.replicas} replicas, dt={a.dt}, alpha={a.alpha}, bath kT={a.bath_kT}")
    print(f"{'t':>6} | {'nn ED':>16} {'nn ML':>16} {'z':>5} | {'|chi| ED':>16} {'|chi| ML':>16} {'z':>5}")
    R = a.replicas
    worst = 0.0
    for k in range(len(t)):
        row = f"{t[k]:6.1f} |"
        for q in (1, 2):
            e, m = out["ED"][q][k], out["ML"][q][k]
            se = np.sqrt(e.var(ddof=1) / R + m.var(ddof=1) / R)
            z = (m.mean() - e.mean()) / se if se > 0 else 0.0
            if k > 0:
                worst = max(worst, abs(z))
            row += f" {e.mean():8.4f}±{e.std(ddof=1) / np.sqrt(R):6.4f} {m.mean():8.4f}±{m.std(ddof=1) / np.sqrt(R):6.4f} {z:5.1f} |"
        print(row)
    print(f"largest |difference| / combined standard error over t > 0: {worst:.1f}")
    os.makedirs(os.path.dirname(a.plot) or ".", exist_ok=True)
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    for q, lab in ((1, "<S_i.S_j>_nn"), (2, "<|chi|>")):
        for name, st in (("ED", "o-"), ("ML", "s--")):
            v = out[name][q]
            ax[q - 1].errorbar(t, v.mean(1), v.std(1, ddof=1) / np.sqrt(R), fmt=st, ms=3, capsize=2, label=name)
        ax[q - 1].set(xlabel="t (hbar/t)", ylabel=lab)
        ax[q - 1].legend()
    fig.suptitle(f"{a.model}: ML-LLG vs ED-LLG, {a.size}x{a.size}, {R} replicas")
    fig.tight_layout()
    fig.savefig(a.plot, dpi=120)
    print("plot ->", a.plot)


if __name__ == "__main__":
    main()
