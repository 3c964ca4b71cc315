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

``--ed-cache FILE.npz``: the ED ensemble (which dominates the cost: 52 min for 8 replicas of 16x16 square) is read
from FILE when FILE was written for the same physics, lattice and run settings, and written there otherwise, so
a retrained model is compared with the same ED runs at the cost of its own runs only.
"""
import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nearsight import Lattice, SDModel  # noqa: E402
from nearsight.analysis import observables as obs  # noqa: E402
from nearsight.dynamics import run_llg  # noqa: E402
from nearsight.electrons import EDProvider  # noqa: E402
from nearsight.io import atomic_path, check_writable  # noqa: E402
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


def ed_series(path, settings, compute):
    """The ED ensemble's (t, nn, |chi|): from the cache file ``path`` if it holds these ``settings``, else computed
    and written there (atomically, with nearsight.io.atomic_path)."""
    key = json.dumps(settings, sort_keys=True)
    if path:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        check_writable(path)      # before the ED runs, not after them
    if path and os.path.exists(path):
        try:
            with np.load(path) as f:
                if str(f["settings"]) == key:
                    print(f"ED ensemble read from {path}")
                    return f["t"], f["nn"], f["chi"]
                print(f"{path} holds ED runs of other settings; recomputing and replacing it")
        except (OSError, KeyError, ValueError) as exc:
            print(f"{path} is not a readable ED cache ({type(exc).__name__}); recomputing and replacing it")
    t, nn, chi = compute()
    if path:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, settings=key, t=t, nn=nn, chi=chi)
        print(f"ED ensemble written to {path}")
    return t, nn, chi


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
    ap.add_argument("--ed-cache", dest="ed_cache", default=None,
                    help="npz file that stores the ED ensemble for reuse with the same settings")
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
    for k, name in enumerate(("ED", X)):
        seed = a.seed + 1000 * k     # independent noise; independent starts unless --paired
        s0 = make_state("random", lat, seed=a.seed if a.paired else seed, batch=a.replicas)
        if name == "ED":             # its starts and noise depend on a.seed only, paired or not
            settings = {"physics": model.to_dict(), "lattice": [lat.kind, lat.L1, lat.L2], "seed": a.seed,
                        **{opt: getattr(a, opt) for opt in ("replicas", "steps", "every", "dt", "alpha", "bath_kT")}}
            out[name] = ed_series(a.ed_cache, settings,
                                  lambda: series(EDProvider(lat, model), s0, a, lat, seed))  # noqa: B023
        else:
            out[name] = series(tested, s0, a, lat, seed)
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
