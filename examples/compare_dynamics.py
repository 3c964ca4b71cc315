"""ML-LLG (or KPM-LLG) against ED-LLG: the same thermal quench from random spins, ensemble averages vs time.

    python examples/compare_dynamics.py --model triangular-120 --size 12 --replicas 8 --steps 600
    python examples/compare_dynamics.py --test kpm --model triangular-120 --size 8 --replicas 8 --moments 1000

Both ensembles use identical settings (lattice, physics — read from the model's card —, dt, alpha, bath kT,
number of replicas) and independent random initial spins and noise (different seeds), so the two replica means
are independent estimates and the combined standard error sqrt(se_ED^2 + se_X^2) is the right yardstick. For
each recorded time it prints the replica mean and standard error of the nearest-neighbour spin correlation and of
the mean |scalar chirality| for ED and the tested solver, and their difference in units of the combined
standard error. Saves a plot.

``--paired``: both ensembles start from the *same* random spins (replica r of ED and of the tested solver share
S(t=0)) with independent noise, and z is the mean of the per-replica differences over its own standard error.
Early on the two members of a pair are strongly correlated, so this test is much sharper than the independent one
there (the independent starts alone differ by ~1-2 SE at t = 0); later the noise decorrelates them.
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


def series(provider, s0, a, lat, seed):
    frames = []
    run_llg(provider, s0, steps=a.steps, dt=a.dt, alpha=a.alpha, kT=a.bath_kT, seed=seed, every=a.every,
            observers=[lambda step, t, s, res: frames.append((t, s.cpu().numpy()))])
    t = np.array([f[0] for f in frames])
    s = np.stack([f[1] for f in frames])
    return t, obs.nn_correlation(s, lat), np.abs(obs.triangle_chirality(s, lat)).mean(-1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="model name or file (its card gives the physics)")
    ap.add_argument("--test", choices=("ml", "kpm"), default="ml", help="the solver compared with ED")
    ap.add_argument("--moments", type=int, default=None, help="KPM moments (default: the provider's)")
    ap.add_argument("--probe-distance", dest="probe_distance", default=None, help="KPM probing distance")
    ap.add_argument("--size", type=int, default=12)
    ap.add_argument("--replicas", type=int, default=8)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--dt", type=float, default=0.05)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--bath-kT", dest="bath_kT", type=float, default=0.005)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--plot", default="out/compare_dynamics.png")
    ap.add_argument("--paired", action="store_true",
                    help="same initial spins for both ensembles (independent noise); z from paired differences")
    a = ap.parse_args()
    card = load_card(a.model)
    lat = Lattice(card["lattice"], a.size)
    model = SDModel.from_dict(card)
    X = a.test.upper()
    if a.test == "ml":
        tested = MLProvider(a.model, lat)
    else:
        from nearsight.electrons.kpm import KPMProvider
        kw = {k: v for k, v in (("moments", a.moments), ("probe_distance", a.probe_distance)) if v is not None}
        tested = KPMProvider(lat, model, **kw)
        print("KPM:", {k: v for k, v in tested.describe().items() if k in ("moments", "probe_distance", "kernel")})
    out = {}
    for k, (name, prov) in enumerate((("ED", EDProvider(lat, model)), (X, tested))):
        seed = a.seed + 1000 * k     # independent noise; independent starts unless --paired
        s0 = make_state("random", lat, seed=a.seed if a.paired else seed, batch=a.replicas)
        out[name] = series(prov, s0, a, lat, seed)
    t = out["ED"][0]
    print(f"{a.model} on {a.size}x{a.size}, {a.replicas} replicas, dt={a.dt}, alpha={a.alpha}, bath kT={a.bath_kT}"
          + (" — paired: same initial spins, independent noise; z from the paired differences" if a.paired else ""))
    print(f"{'t':>6} | {'nn ED':>16} {'nn ' + X:>16} {'z':>5} | {'|chi| ED':>16} {'|chi| ' + X:>16} {'z':>5}")
    R = a.replicas
    worst = 0.0
    for k in range(len(t)):
        row = f"{t[k]:6.1f} |"
        for q in (1, 2):
            e, m = out["ED"][q][k], out[X][q][k]
            se = (np.std(m - e, ddof=1) if a.paired else np.sqrt(e.var(ddof=1) + m.var(ddof=1))) / np.sqrt(R)
            z = (m.mean() - e.mean()) / se if se > 1e-12 else 0.0
            if k > 0:
                worst = max(worst, abs(z))
            row += f" {e.mean():8.4f}±{e.std(ddof=1) / np.sqrt(R):6.4f} {m.mean():8.4f}±{m.std(ddof=1) / np.sqrt(R):6.4f} {z:5.1f} |"
        print(row)
    print(f"largest |difference| / {'paired' if a.paired else 'combined'} standard error over t > 0: {worst:.1f} "
          f"({len(t) - 1} times x 2 observables; |z| < 3 expected for agreeing ensembles)")
    os.makedirs(os.path.dirname(a.plot) or ".", exist_ok=True)
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    for q, lab in ((1, "<S_i.S_j>_nn"), (2, "<|chi|>")):
        for name, st in (("ED", "o-"), (X, "s--")):
            v = out[name][q]
            ax[q - 1].errorbar(t, v.mean(1), v.std(1, ddof=1) / np.sqrt(R), fmt=st, ms=3, capsize=2, label=name)
        ax[q - 1].set(xlabel="t (hbar/t)", ylabel=lab)
        ax[q - 1].legend()
    fig.suptitle(f"{a.model}: {X}-LLG vs ED-LLG, {a.size}x{a.size}, {R} replicas")
    fig.tight_layout()
    fig.savefig(a.plot, dpi=120)
    print("plot ->", a.plot)


if __name__ == "__main__":
    main()
