"""How local is the electron count at fixed mu? The floor a radius-R model meets on the canonical mu* (issue 22).

In canonical mode a mu-conditioned model finds ``mu*`` from its count ``N(S, mu) = sum_i c_i(env_i, mu)``, so a
count error ``dN`` becomes a ``mu*`` error ``dN / (dN/dmu)``. This script measures how well *any* sum of local
terms can know the count, with the local densities as the terms: for a labelled frame ``S`` at its ED ``mu``
(``mu*`` of a canonical dataset) and every site ``i``, the spins farther than ``R`` from ``i`` are replaced by those
of an independent frame of the same kind (another trajectory of the dataset at the nearest time, randomly
translated: one draw each), and ``n_i`` is computed at the same ``mu``. The mean over draws estimates what the
local environment alone says about ``n_i`` (``E[n_i | env_R(i)]``), and

    dN_R / N = < mean_draws n_i(mixed) - n_i(S) >_i        (per site)

is the count error of that local decomposition, with its statistical error from the spread of the draws; ``dN_R /
(dN/dmu)`` (the frame's ED compressibility) is the ``mu*`` error it implies. The RMS per-site change of ``n_i`` is
printed beside it. A small ``dN_R`` says the count is local at that radius (a model can in principle reach the
bar); one at the size of the bar says the radius is too short, whatever the network. It is an estimate, not a
bound: another decomposition of ``N`` into local terms could do better, and the seam at ``R`` is part of it (as in
``nearsight locality`` for fields).

``n_i`` comes from a Chebyshev expansion of the Fermi function on the vectors of site ``i`` (both spins), all sites'
mixed configurations in one batch (nearsight.electrons.chebyshev); ``R = inf`` (the frame itself) checks it
against the dataset's ED ``site_density`` (printed: max abs difference).

    OMP_NUM_THREADS=1 python benchmarks/count_locality.py data/canon/test16_puddle.h5 --frames 5,10,16,21 \
        --radii 3,4.24,6 --draws 2
"""
from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch

from nearsight import Lattice
from nearsight.analysis.locality import mixed_configuration
from nearsight.electrons.chebyshev import Operator, chebyshev_coefficients, hop_offsets, weyl_bounds
from nearsight.hamiltonian import SDModel, exchange_blocks
from nearsight.io import read_dataset


def site_densities(lat: Lattice, model: SDModel, spins: np.ndarray, mu: float, moments: int) -> np.ndarray:
    """``n_i`` of configuration ``spins[i]`` at site ``i`` (``[N]``), at ``mu`` and the model's kT."""
    lo, hi = weyl_bounds(lat, model)
    a, b = 1.01 * (hi - lo) / 2, (hi + lo) / 2
    N = lat.N
    S = torch.as_tensor(spins, dtype=torch.float64)
    op = Operator(lat, hop_offsets(lat, model.t, model.t2), exchange_blocks(S, model.J), a, b)
    sites = torch.arange(N)
    v = torch.zeros(N, 1, 2, N, 2, dtype=torch.complex128)
    for s in (0, 1):
        v[sites, 0, s, sites, s] = 1.0
    c = chebyshev_coefficients("count", np.array([mu]), model.kT, a, b, moments)[0]

    def moment(T):
        return (T[sites, 0, 0, sites, 0] + T[sites, 0, 1, sites, 1]).real.numpy()

    prev, cur = v, torch.zeros_like(v)
    op.add_2x(cur, v)
    cur *= 0.5                                   # T_1 v = x v
    n = c[0] * moment(prev) + c[1] * moment(cur)
    for k in range(2, moments):
        nxt = -prev
        op.add_2x(nxt, cur)                      # T_{k+1} = 2 x T_k - T_{k-1}
        prev, cur = cur, nxt
        n += c[k] * moment(cur)
    return n


def frame_profile(path: str, frame: int, radii, draws: int, moments: int, seed: int) -> dict:
    arrays, attrs = read_dataset(path)
    lat = Lattice(attrs["lattice"], int(attrs["L1"]), int(attrs.get("L2") or attrs["L1"]))
    model = SDModel.from_dict({**attrs, "filling": None, "mu": float(arrays["mu"][frame])})
    S, t, traj = arrays["spins"], arrays["time"], arrays["trajectory"]
    mu, N = float(arrays["mu"][frame]), lat.N
    others = np.flatnonzero(traj != traj[frame])
    if len(others) == 0:
        raise SystemExit(f"{path}: one trajectory only; the far region needs another")
    other = others[np.argmin(np.abs(t[others] - t[frame]))]
    rng = np.random.default_rng(seed + frame)
    D = np.stack([lat.distances_from(i) for i in range(N)])
    out = {"dataset": path, "frame": int(frame), "time": float(t[frame]), "trajectory": int(traj[frame]),
           "far_from": {"frame": int(other), "time": float(t[other])}, "mu": mu,
           "dn_dmu_per_site": float(arrays["dn_dmu"][frame]) / N, "moments": moments, "draws": draws}
    t0 = time.perf_counter()
    n_self = site_densities(lat, model, np.repeat(S[frame][None], N, 0), mu, moments)
    out["chebyshev_vs_ed_max"] = float(np.abs(n_self - arrays["site_density"][frame]).max())
    n_ref = arrays["site_density"][frame]
    rows = []
    for R in radii:
        per = np.empty((draws, N))
        for k in range(draws):
            far = S[other][lat.shift((int(rng.integers(lat.L1)), int(rng.integers(lat.L2))))]
            mixed = np.stack([mixed_configuration(S[frame], far, D[i], R) for i in range(N)])
            per[k] = site_densities(lat, model, mixed, mu, moments) - n_ref
        dN = float(per.mean(0).mean())
        se = float(math.sqrt((per.var(0, ddof=1) / draws).sum()) / N) if draws > 1 else float("nan")
        rows.append({"R": R, "count_err_per_site": dN, "count_err_se": se,
                     "implied_mu_err": dN / out["dn_dmu_per_site"],
                     "site_change_rms": float(np.sqrt((per ** 2).mean()))})
    out["radii"] = rows
    out["seconds"] = time.perf_counter() - t0
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset")
    p.add_argument("--frames", required=True, help="comma-separated frame indices")
    p.add_argument("--radii", default="3,4.24,6")
    p.add_argument("--draws", type=int, default=2)
    p.add_argument("--moments", type=int, default=800, help="Chebyshev moments (the R = inf check says if enough)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    radii = [float(r) for r in a.radii.split(",")]
    for f in (int(x) for x in a.frames.split(",")):
        r = frame_profile(a.dataset, f, radii, a.draws, a.moments, a.seed)
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
