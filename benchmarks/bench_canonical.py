"""Cost of canonical ML-LLG with a mu-conditioned model: the secant solve against Newton by double backward, and
against one grand-canonical evaluation, side by side on the same spins.

    python benchmarks/bench_canonical.py                      # shipped square-double-exchange-canonical, 16x16
    python benchmarks/bench_canonical.py --size 32 --replicas 4 --steps 6 --model runs/.../model.pt

Each mode runs the same short Heun ML-LLG (same start, seed, bath) and times every field call: ``secant`` is the
provider as shipped (count and fields from one backward per evaluation, warm-started with the previous ``mu*`` and
``dN/dmu``); ``newton`` replaces only the solve by Newton with ``dN/dmu`` from a double backward and one more
backward for the fields at ``mu*`` (the method before the secant); ``grand`` is the same model grand-canonically at
the mean ``mu*`` of the first call (its own dtype, one backward per call). Printed: per site-step seconds (a step is
two field calls), evaluations per canonical call (first call cold, then warm), and the ratios. Starting spins: the
first frames of ``--frames`` (a dataset or trajectory with ``spins``), or random. One thread by default. Printed,
never asserted.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import nearsight.ml.provider as provider_module
from nearsight.dynamics import run_llg
from nearsight.lattice import Lattice
from nearsight.ml import MLProvider
from nearsight.ml.canonical import count_and_slope, evaluate_canonical, solve_count
from nearsight.states import random_spins


def evaluate_newton(model, spins, n_electrons, mu_start, *, slope_start=None, tol):
    """The baseline: Newton with the exact dN/dmu (double backward), then one backward for the fields at mu*."""
    ne = float(n_electrons)
    with torch.enable_grad():
        s = spins.detach().requires_grad_(True)
        f = model.energy_function(s)
        mu, n, dn, iters = solve_count(lambda m: count_and_slope(lambda x: f(x, detached=True), m), ne,
                                       model.window, mu_start, tol=tol)
        omega = f(mu)
        (g,) = torch.autograd.grad(omega.sum(), s)
    return omega.detach() + mu * ne, -g.detach(), mu, n, dn, iters + 1


def timed_run(prov, spins, steps: int, seed: int, kT: float, canonical: bool) -> dict:
    calls = []
    inner = prov._compute_mu

    def wrapped(s):
        t = time.perf_counter()
        r = inner(s)
        calls.append((time.perf_counter() - t, prov.last_evaluations if canonical else 1))
        return r
    prov._compute_mu = wrapped
    run_llg(prov, spins, steps=steps, dt=0.05, alpha=0.5, kT=kT, seed=seed, every=steps, progress=False)
    prov._compute_mu = inner
    sec = np.array([c[0] for c in calls])
    ev = np.array([c[1] for c in calls])
    # a Heun step is two field calls; the first (cold) call is left out of the per-step cost
    warm_steps = max(1, len(calls) - 1) / 2
    return {"calls": len(calls), "seconds": float(sec.sum()),
            "per_site_step_us": float(sec[1:].sum() / (spins.shape[0] * spins.shape[1] * warm_steps) * 1e6),
            "evaluations_cold": int(ev[0]), "evaluations_warm_mean": float(ev[1:].mean()) if len(ev) > 1 else None}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="square-double-exchange-canonical")
    ap.add_argument("--lattice", default="square")
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--replicas", type=int, default=8)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--filling", type=float, default=0.485)
    ap.add_argument("--frames", default=None, help="HDF5 with /spins [F, (B,) N, 3]: starting spins")
    ap.add_argument("--kT", type=float, default=0.005, help="bath temperature of the LLG")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--modes", nargs="+", default=["secant", "newton", "grand"],
                    choices=["secant", "newton", "grand"])
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    lat = Lattice(a.lattice, a.size)
    if a.frames:
        import h5py
        with h5py.File(a.frames, "r") as f:
            s = np.asarray(f["spins"]).reshape(-1, lat.N, 3)[:a.replicas]
        spins = torch.as_tensor(s, dtype=torch.float64)
    else:
        spins = torch.as_tensor(random_spins(lat.N, batch=a.replicas, seed=a.seed))
    out = {"model": a.model, "lattice": f"{a.lattice} {a.size}x{a.size}", "replicas": int(spins.shape[0]),
           "steps": a.steps, "threads": a.threads}
    mu_grand = None
    for mode in a.modes:
        if mode == "grand":
            if mu_grand is None:
                mu_grand = float(MLProvider(a.model, lat, filling=a.filling)(spins).extras["mu"].mean())
            prov = MLProvider(a.model, lat, mu=mu_grand)
            out[mode] = timed_run(prov, spins, a.steps, a.seed, a.kT, canonical=False)
            out[mode]["mu"] = mu_grand
            continue
        provider_module.evaluate_canonical = evaluate_newton if mode == "newton" else evaluate_canonical
        try:
            prov = MLProvider(a.model, lat, filling=a.filling)
            out[mode] = timed_run(prov, spins, a.steps, a.seed, a.kT, canonical=True)
        finally:
            provider_module.evaluate_canonical = evaluate_canonical
        if mu_grand is None:
            mu_grand = float(prov.warm_state()["mu"].mean())
    for a_, b_ in (("newton", "secant"), ("secant", "grand")):
        if a_ in out and b_ in out:
            out[f"{a_}/{b_}"] = round(out[a_]["per_site_step_us"] / out[b_]["per_site_step_us"], 2)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
