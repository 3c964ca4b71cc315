"""The electron count and mu*(t) of a canonical ML-LLG run, read from its trajectory (issue 22).

    nearsight simulate --lattice square --size 128 --solver ml --model square-double-exchange-canonical \
        --replicas 1 --steps 400 --every 1 --bath-kT 0.005 --seed 1 --out out/canon128.h5
    python benchmarks/canonical_count_check.py out/canon128.h5 --plot docs/figures/canonical_mu_128.png

The trajectory keeps each frame's ``mu`` and ``n_electrons`` per replica (what the provider solved for at that
frame's spins). Printed: N_e, the largest ``|N - N_e| / N_e`` over all frames and replicas, and mu* at the start,
minimum, maximum and end. With ``--every 1`` every step's first evaluation is a frame.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from nearsight.trajectory import read_trajectory


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trajectory")
    ap.add_argument("--plot", default=None, help="PNG of mu*(t) and the relative count error")
    a = ap.parse_args(argv)
    arr, attrs = read_trajectory(a.trajectory)
    if "mu" not in arr or "n_electrons" not in arr:
        raise SystemExit(f"{a.trajectory}: no per-frame mu / n_electrons (not a canonical run, or an old file)")
    n_e = attrs.get("n_electrons")
    if n_e is None:
        raise SystemExit(f"{a.trajectory}: the provider recorded no target electron count (not canonical)")
    t, mu, n = arr["time"], arr["mu"], arr["n_electrons"]
    rel = np.abs(n - n_e) / n_e
    out = {"trajectory": a.trajectory, "sites": int(arr["spins"].shape[2]), "replicas": int(mu.shape[1]),
           "frames": int(len(t)), "steps": [int(arr["step"][0]), int(arr["step"][-1])], "n_electrons": float(n_e),
           "max_rel_count_error": float(rel.max()), "mu_start": mu[0].tolist(), "mu_min": float(mu.min()),
           "mu_max": float(mu.max()), "mu_end": mu[-1].tolist(), "mu_tol": attrs.get("mu_tol")}
    print(json.dumps(out, indent=1))
    if a.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(6, 5), sharex=True, constrained_layout=True)
        ax1.plot(t, mu)
        ax1.set_ylabel("mu* (t)")
        ax1.set_title(f"canonical ML-LLG, {int(np.sqrt(out['sites']))}^2 sites, N_e = {n_e:g}")
        ax2.semilogy(t, np.maximum(rel, 1e-17))
        ax2.axhline(1e-8, color="k", ls="--", lw=0.8, label="1e-8 (issue 22)")
        ax2.set_ylabel("|N - N_e| / N_e")
        ax2.set_xlabel("t (hbar/t)")
        ax2.legend()
        fig.savefig(a.plot, dpi=110)
        print(f"plot -> {a.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
