"""Maxwell construction for the phase separation of the square-lattice double-exchange model (issue 22).

At filling ``n = 0.485`` (``rho = 2n = 0.97`` electrons per site, 1.5% holes of the ``2N`` states) and large ``J``
the homogeneous states are unstable: the system separates into the Néel insulator at ``n = 1/2`` and a hole-rich
ferromagnetic metal. In the grand-canonical picture the two phases coexist at the ``mu_c`` where their grand
potentials per site cross, ``Omega_FM(mu_c) = Omega_AF(mu_c)``; their densities there are
``rho = -dOmega/dmu`` and the lever rule gives the ferromagnetic fraction
``x_FM = (rho_AF - rho) / (rho_AF - rho_FM)``. The same numbers are the common tangent of the free energy per site
``f(rho) = Omega + mu rho`` (printed as a check: ``(f_AF - f_FM) / (rho_AF - rho_FM) = mu_c``).

Energies are analytic band sums over an ``L x L`` periodic k mesh (``t = 1``, ``t2 = 0``, ``B = 0``), which equal
ED of the same periodic lattice (checked here against :class:`~nearsight.electrons.EDProvider` at ``--ed-size``):

* FM (all spins along z): levels ``e_k - J`` and ``e_k + J``, ``e_k = -2 (cos kx + cos ky)``;
* Néel: levels ``-sqrt(e_k^2 + J^2)`` and ``+sqrt(e_k^2 + J^2)`` (k over the full zone, each once);
* canted (two sublattices, ``S_A,B = (sin th, 0, +-cos th)``; ``th = 0`` Néel, ``pi/2`` FM): the 4x4 Bloch
  Hamiltonian, minimised over ``th`` at each ``mu`` — de Gennes' alternative to phase separation, checked too.

    python benchmarks/maxwell_construction.py --J 6 --filling 0.485 --kT 0 0.1 --sizes 30 40 64 256 1024 --ed-size 40

``--frames RUN/mu_star.npz ...`` (written by ``examples/canonical_reference.py``) compares the construction with
the last frame of canonical quenches: the fraction of ferromagnetic sites (mean ``S_i . S_j`` over neighbours > 0)
and of hole-rich sites (canonical ED ``n_i / 2`` below the midpoint of the two coexisting densities), at the
electronic kT of the last ``--kT``.
"""
import argparse
import json
import os
import time

import numpy as np
import torch
from scipy.optimize import brentq, minimize_scalar

from nearsight import Lattice, SDModel
from nearsight.electrons import EDProvider
from nearsight.states import make_state


def band(L: int) -> np.ndarray:
    k = 2 * np.pi * np.arange(L) / L
    return (-2 * (np.cos(k)[:, None] + np.cos(k)[None, :])).reshape(-1)


def levels(state: str, L: int, J: float, theta: float = 0.0) -> np.ndarray:
    """All ``2N`` one-electron levels of ``state`` on the periodic ``L x L`` lattice (ferro, neel, canted)."""
    e = band(L)
    if state == "ferro":
        return np.concatenate([e - J, e + J])
    if state == "neel":
        E = np.sqrt(e ** 2 + J ** 2)
        return np.concatenate([-E, E])
    # canted: basis (A up, A down, B up, B down); every k of the full zone twice (k and k + Q), so weight 1/2
    sx, sz = np.sin(theta), np.cos(theta)
    H = np.zeros((len(e), 4, 4))
    H[:, 0:2, 0:2] = -J * np.array([[sz, sx], [sx, -sz]])
    H[:, 2:4, 2:4] = -J * np.array([[-sz, sx], [sx, sz]])
    H[:, 0, 2] = H[:, 2, 0] = H[:, 1, 3] = H[:, 3, 1] = e
    return np.linalg.eigvalsh(H).reshape(-1)


def weight(state: str) -> float:
    return 0.5 if state == "canted" else 1.0


def omega(eps: np.ndarray, mu: float, kT: float, n_sites: int, w: float = 1.0) -> float:
    """Grand potential per site."""
    x = eps - mu
    if kT == 0:
        return w * np.minimum(x, 0.0).sum() / n_sites
    return w * (-kT * np.logaddexp(0.0, -x / kT)).sum() / n_sites


def density(eps: np.ndarray, mu: float, kT: float, n_sites: int, w: float = 1.0) -> float:
    """Electrons per site ``rho = -dOmega/dmu``."""
    x = eps - mu
    if kT == 0:
        return w * ((x < 0).sum() + 0.5 * (x == 0).sum()) / n_sites
    return w * (0.5 * (1 - np.tanh(x / (2 * kT)))).sum() / n_sites


def canted_omega(L: int, J: float, mu: float, kT: float) -> tuple[float, float]:
    """min over the canting angle of the canted state's Omega per site at ``mu``: (Omega, theta)."""
    N = L * L
    r = minimize_scalar(lambda th: omega(levels("canted", L, J, th), mu, kT, N, 0.5), bounds=(0.0, np.pi / 2),
                        method="bounded", options={"xatol": 1e-6})
    return float(r.fun), float(r.x)


def construction(L: int, J: float, filling: float, kT: float) -> dict:
    N = L * L
    fm, af = levels("ferro", L, J), levels("neel", L, J)
    diff = lambda mu: omega(fm, mu, kT, N) - omega(af, mu, kT, N)  # noqa: E731
    # the crossing on the hole side: between the bottom of the FM band and the Néel gap centre (mu = 0)
    grid = np.linspace(-J - 4 + 1e-3, 0.0, 401)
    d = np.array([diff(m) for m in grid])
    idx = np.nonzero(np.sign(d[:-1]) != np.sign(d[1:]))[0]
    if len(idx) == 0:
        raise RuntimeError(f"no crossing of Omega_FM and Omega_AF for mu in [{grid[0]}, 0]")
    k = idx[-1]                           # the one nearest the gap: FM below it in Omega for lower mu
    mu_c = brentq(diff, grid[k], grid[k + 1], xtol=1e-13)
    if kT == 0:                           # kT = 0: Omega is piecewise linear; densities just either side of mu_c
        rho_f = density(fm, mu_c - 1e-9, 0, N)
        rho_a = density(af, mu_c + 1e-9, 0, N)
    else:
        rho_f, rho_a = density(fm, mu_c, kT, N), density(af, mu_c, kT, N)
    rho = 2 * filling
    x_fm = (rho_a - rho) / (rho_a - rho_f)
    f_f = omega(fm, mu_c, kT, N) + mu_c * rho_f
    f_a = omega(af, mu_c, kT, N) + mu_c * rho_a
    out = {"L": L, "J": J, "kT": kT, "filling": filling, "mu_c": mu_c, "n_FM": rho_f / 2, "n_AF": rho_a / 2,
           "x_FM": x_fm, "omega_c": omega(fm, mu_c, kT, N), "f_FM": f_f, "f_AF": f_a,
           "tangent_slope": (f_a - f_f) / (rho_a - rho_f)}
    # homogeneous states at the filling itself (canonical energy per site at rho), for comparison
    for name, lev in (("ferro", fm), ("neel", af)):
        if kT == 0:
            s = np.sort(lev)
            ne = rho * N
            out[f"e_{name}_uniform"] = (s[:int(np.floor(ne))].sum() + (ne - np.floor(ne)) * s[int(np.floor(ne))]) / N
        else:
            m = brentq(lambda mu: density(lev, mu, kT, N) - rho, lev.min() - 1, lev.max() + 1, xtol=1e-13)
            out[f"e_{name}_uniform"] = omega(lev, m, kT, N) + m * rho
    out["e_phase_separated"] = x_fm * f_f + (1 - x_fm) * f_a
    return out


def ed_check(L: int, J: float, mu: float, kT: float) -> dict:
    """ED Omega per site and count of the FM and Néel states on an L x L lattice against the band sums."""
    lat = Lattice("square", L)
    ed = EDProvider(lat, SDModel(J=J, mu=mu, kT=kT))
    r = ed(np.stack([make_state("ferro", lat), make_state("neel", lat)]))
    band_om = [omega(levels(s, L, J), mu, kT, lat.N) for s in ("ferro", "neel")]
    band_n = [density(levels(s, L, J), mu, kT, lat.N) for s in ("ferro", "neel")]
    return {"L": L, "mu": mu, "kT": kT, "ed_omega": (r.energy / lat.N).tolist(), "band_omega": band_om,
            "ed_rho": (r.extras["n_electrons"] / lat.N).tolist(), "band_rho": band_n,
            "max_abs_diff_omega": float(np.abs(r.energy.numpy() / lat.N - band_om).max())}


def frame_fractions(path: str, J: float, filling: float, kT: float, cut: float) -> dict:
    """Ferromagnetic-site and hole-rich-site fractions of the last frame of each replica in ``path``."""
    from nearsight.analysis.observables import site_nn_correlation
    d = np.load(path)
    S = d["spins"][-1]                                            # [B, N, 3]
    L = int(round(np.sqrt(S.shape[1])))
    lat = Lattice("square", L)
    r = EDProvider(lat, SDModel(J=J, filling=filling, kT=kT))(S)
    n_half = r.extras["site_density"].numpy() / 2
    out = {"path": path, "L": L, "step": int(d["step"][-1]), "time": float(d["time"][-1]),
           "fm_fraction": (site_nn_correlation(S, lat) > 0).mean(-1).tolist(),
           "hole_rich_fraction": (n_half < cut).mean(-1).tolist(), "mu": r.extras["mu"].tolist()}
    print(f"   {path}: {L}x{L} t = {out['time']:.1f}: FM sites {np.round(out['fm_fraction'], 4)}, hole-rich sites "
          f"{np.round(out['hole_rich_fraction'], 4)}, mu* {np.round(out['mu'], 4)}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--J", type=float, default=6.0)
    ap.add_argument("--filling", type=float, default=0.485)
    ap.add_argument("--kT", type=float, nargs="+", default=[0.0, 0.1])
    ap.add_argument("--sizes", type=int, nargs="+", default=[30, 40, 64, 256, 1024])
    ap.add_argument("--canted-size", type=int, default=256, help="k mesh of the canted-state check")
    ap.add_argument("--ed-size", type=int, default=16, help="ED cross-check lattice (0: none)")
    ap.add_argument("--frames", nargs="*", default=[], help="mu_star.npz files of canonical quenches to compare")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    res = {"constructions": [], "canted": [], "ed": []}
    print(f"square lattice, J = {a.J}, t = 1, filling n = {a.filling} (rho = {2 * a.filling} electrons per site)")
    print(f"{'kT':>5} {'L':>5} {'mu_c':>9} {'n_FM':>8} {'n_AF':>8} {'x_FM':>7} {'f_AF':>9} {'slope':>9} "
          f"{'e_FM(n)':>9} {'e_AF(n)':>9} {'e_PS(n)':>9}")
    for kT in a.kT:
        for L in a.sizes:
            c = construction(L, a.J, a.filling, kT)
            res["constructions"].append(c)
            print(f"{kT:5.2f} {L:5d} {c['mu_c']:9.5f} {c['n_FM']:8.5f} {c['n_AF']:8.5f} {c['x_FM']:7.4f} "
                  f"{c['f_AF']:9.5f} {c['tangent_slope']:9.5f} {c['e_ferro_uniform']:9.5f} "
                  f"{c['e_neel_uniform']:9.5f} {c['e_phase_separated']:9.5f}")
        # canted states: does any canting angle beat min(Omega_FM, Omega_AF) near mu_c?
        Lc = a.canted_size
        mu_c = next(c["mu_c"] for c in res["constructions"] if c["kT"] == kT and c["L"] == max(a.sizes))
        for dmu in (-0.5, -0.2, 0.0, 0.2, 0.5):
            mu = mu_c + dmu
            oc, th = canted_omega(Lc, a.J, mu, kT)
            of = omega(levels("ferro", Lc, a.J), mu, kT, Lc * Lc)
            oa = omega(levels("neel", Lc, a.J), mu, kT, Lc * Lc)
            res["canted"].append({"kT": kT, "L": Lc, "mu": mu, "omega_canted": oc, "theta": th, "omega_FM": of,
                                  "omega_AF": oa})
            print(f"   canted check kT={kT} L={Lc} mu={mu:8.4f}: Omega canted {oc:.6f} (theta {th:.4f}) "
                  f"FM {of:.6f} AF {oa:.6f} -> canted lower by {min(of, oa) - oc:.2e}")
        if a.ed_size:
            t0 = time.perf_counter()
            e = ed_check(a.ed_size, a.J, mu_c, kT)
            res["ed"].append(e)
            print(f"   ED {a.ed_size}x{a.ed_size} at mu_c: Omega/N FM, AF = {e['ed_omega']} (band sums "
                  f"{e['band_omega']}, max diff {e['max_abs_diff_omega']:.1e}); rho = {e['ed_rho']} "
                  f"({time.perf_counter() - t0:.0f} s)")
    if a.frames:
        c = res["constructions"][-1]
        cut = 0.5 * (c["n_FM"] + c["n_AF"])
        print(f"quench frames against x_FM = {c['x_FM']:.4f} (kT = {c['kT']}, L = {c['L']}); "
              f"hole-rich: n_i/2 < {cut:.4f}")
        res["frames"] = [frame_fractions(p, a.J, a.filling, c["kT"], cut) for p in a.frames]
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
