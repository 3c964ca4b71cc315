"""Driven strips: NEGF vs the generalized-potential ML model, time per LLG step side by side in one run.

    python benchmarks/bench_driven.py [--model dw-strip] [--negf-max 64] [--quick]

For strips Lx x Ly (Ly and the physics from the model card; Lx = 16, 32, 64, ... doubling), each with a
180-degree wall in the middle, prints the time per Heun LLG step (2 field evaluations; the easy-axis anisotropy
of the card added to both) for NEGF (up to --negf-max) and for the ML model, their ratio, the fitted exponents
of time against Lx, and how long a strip ML drives in the time NEGF takes for one step of the shortest strip.
Timings are wall-clock minima of 2 runs on this machine (torch threads reported).
"""
import argparse
import time

import numpy as np
import torch

from nearsight.dynamics import run_llg
from nearsight.lattice import Strip
from nearsight.ml.cards import load_card
from nearsight.providers import build_provider
from nearsight.states import domain_wall


def per_step(provider, spins, steps):
    run = lambda: run_llg(provider, spins, steps=steps, dt=0.5, alpha=0.2, every=steps, progress=False)  # noqa
    run()  # warm-up
    best = np.inf
    for _ in range(2):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return best / steps


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="dw-strip")
    ap.add_argument("--bias", type=float, default=1.0)
    ap.add_argument("--negf-max", type=int, default=64)
    ap.add_argument("--ml-max", type=int, default=1024)
    ap.add_argument("--quick", action="store_true", help="NEGF to Lx = 32, ML to 256")
    a = ap.parse_args()
    card = load_card(a.model)
    Ly = card["geometry"]["Ly"]
    an = card.get("anisotropy") or {"K": 0.0}
    if list(an.get("axis", (0, 0, 1))) != [0, 0, 1]:
        raise SystemExit(f"the card's anisotropy axis {an['axis']} is not z, the axis of the spec's anisotropy")
    negf_max, ml_max = (32, 256) if a.quick else (a.negf_max, a.ml_max)
    print(f"model {card.get('name')}: J={card['J']:g} mu={card['mu']:g} kT={card['kT']:g} wide_band="
          f"{card.get('wide_band')} Ly={Ly}, bias {a.bias:g}, anisotropy K={an['K']:g}; torch threads "
          f"{torch.get_num_threads()}")
    print(f"{'Lx':>6s} {'N':>6s} {'NEGF s/step':>12s} {'ML s/step':>10s} {'NEGF/ML':>8s}")
    rows = []
    Lx = 16
    while Lx <= ml_max:
        st = Strip(Lx, Ly)
        s0 = domain_wall(st, Lx / 2 - 0.5, 2.0)
        spec = {"lattice": st, "bias": a.bias, "anisotropy": an["K"]}
        t_ml = per_step(build_provider({**spec, "solver": "ml", "model": card["path"]}), s0, 5)
        t_negf = np.nan
        if Lx <= negf_max:
            negf = build_provider({**spec, "solver": "negf", **{k: card[k] for k in ("t", "J", "mu", "kT")},
                                   "wide_band": card.get("wide_band"), "tol": 1e-6})
            t_negf = per_step(negf, s0, 2)
        rows.append((Lx, t_negf, t_ml))
        ratio = f"{t_negf / t_ml:8.0f}" if np.isfinite(t_negf) else f"{'-':>8s}"
        negf_s = f"{t_negf:12.3f}" if np.isfinite(t_negf) else f"{'-':>12s}"
        print(f"{Lx:6d} {Lx * Ly:6d} {negf_s} {t_ml:10.4f} {ratio}", flush=True)
        Lx *= 2
    r = np.array(rows)
    for name, col in (("NEGF", 1), ("ML", 2)):
        ok = np.isfinite(r[:, col])
        if ok.sum() >= 2:
            k = np.polyfit(np.log(r[ok, 0]), np.log(r[ok, col]), 1)[0]
            print(f"{name}: time per step ~ Lx^{k:.2f} over Lx = {int(r[ok, 0].min())}..{int(r[ok, 0].max())}")
    budget = r[0, 1]
    longest = r[r[:, 2] <= budget, 0]
    if np.isfinite(budget) and len(longest):
        print(f"in the time of one NEGF step at Lx = {int(r[0, 0])}, ML steps a strip of Lx = {int(longest.max())} "
              f"({int(longest.max() // r[0, 0])}x longer; the longest timed here)")


if __name__ == "__main__":
    main()
