"""``nearsight analyze``: coarsening analysis of one trajectory or an ensemble (replicas inside files, several files).

    res = analyze(["run1.h5", "run2.h5"], "out/analysis")      # -> dict; writes CSV, JSON, PNG, GIF, OVF, VTK

All files must hold the same lattice and the same frame times; their replicas are pooled. Per frame it computes
the domain variable of the order (:mod:`.order`), its structure factor and the spin structure factor (summed over
replicas: the ensemble average), the lengths of both peaks (first moment and inverse width, :mod:`.structure`),
the scalar chirality (site and triangle), ferromagnetic clusters (:mod:`.clusters`, square-lattice orders or
when a threshold is given), and wall length and orientation (:mod:`.interfaces`); it fits the growth exponents over
a window with bootstrap intervals across replicas (:mod:`.growth`) and draws the pictures (:mod:`.figures`).
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import NearsightError
from ..trajectory import read_trajectory
from ..lattice import Lattice
from ..runtime import provenance
from . import clusters as cl
from . import growth as gr
from . import observables as obs
from . import order as od
from . import structure as st
from .interfaces import interface_stats

DEFAULT_THRESHOLD = 0.5      # FM cluster: every nn bond S_i.S_j above this


@dataclass
class Ensemble:
    lattice: Lattice
    time: np.ndarray                  # [F]
    spins: np.ndarray                 # [F, R, N, 3]
    attrs: dict
    sources: list
    extra: dict = field(default_factory=dict)

    @property
    def n_replicas(self) -> int:
        return int(self.spins.shape[1])


def load_ensemble(paths) -> Ensemble:
    """Read trajectories (``nearsight.trajectory.read_trajectory``) and pool their replicas; a clear error if lattices or
    frame times differ."""
    paths = [paths] if isinstance(paths, str) else list(paths)
    if not paths:
        raise NearsightError("give at least one trajectory file")
    spins, extra, ref = [], {}, None
    for p in paths:
        arrays, attrs = read_trajectory(p)
        lat = Lattice(attrs["lattice"], int(attrs["L1"]), int(attrs["L2"]))
        if ref is None:
            ref = (lat, np.asarray(arrays["time"]), attrs)
        elif lat != ref[0]:
            raise NearsightError(f"{p!r} is on {lat!r} but {paths[0]!r} on {ref[0]!r}; analyze one lattice at a time")
        elif len(arrays["time"]) != len(ref[1]) or not np.allclose(arrays["time"], ref[1]):
            raise NearsightError(f"{p!r} has other frame times than {paths[0]!r}; an ensemble needs the same "
                                 f"times (same steps, dt and every)")
        spins.append(np.asarray(arrays["spins"]))
        for k in ("density", "n_i"):
            if k in arrays:
                extra.setdefault(k, []).append(arrays[k])
    extra = {k: np.concatenate(v, axis=1) for k, v in extra.items() if len(v) == len(paths)}
    return Ensemble(ref[0], ref[1], np.concatenate(spins, axis=1), ref[2], paths, extra)


def _ratio_estimator(num, den, fn):
    """``estimator(idx) = fn(sum_r num[:, idx], sum_r den[:, idx])`` for the bootstrap."""
    return lambda idx: fn(num[:, idx].sum(1), den[:, idx].sum(1))


def _boot_err(estimator, R: int, n: int = 200, seed: int = 1) -> np.ndarray:
    if R < 2:
        return np.zeros_like(estimator(np.arange(R)))
    rng = np.random.default_rng(seed)
    return np.std([estimator(rng.integers(0, R, R)) for _ in range(n)], axis=0, ddof=1)


def compute(ens: Ensemble, *, order: str = "auto", threshold: float | None = None) -> dict:
    """Every per-frame quantity of the ensemble (no files written)."""
    lat, S = ens.lattice, ens.spins
    F, R = S.shape[:2]
    order = od.detect_order(S[-1], lat, ens.attrs.get("model")) if order in (None, "auto") else \
        od.check_order(order, lat)
    gd = st.peak_geometry(lat, [np.zeros(2)])
    gs = st.peak_geometry(lat, list(od.bragg_points(lat, order).values()))
    sums = {k: [] for k in ("dw", "dm", "dsh", "sw", "sm", "ssh")}
    sq_dom, sq_spin, maps = np.zeros((F,) + (lat.L2, lat.L1)), np.zeros((F, lat.L2, lat.L1)), []
    chi_t, abs_chi, nn, kappa, wall_len, aligned, hists = ([] for _ in range(7))
    for f in range(F):
        s = S[f]
        dom = od.domain_field(s, lat, order)
        sd, ss = st.field_structure_factor(dom, lat), obs.structure_factor(s, lat)
        sq_dom[f], sq_spin[f] = sd.mean(0), ss.mean(0)
        a, b = st.peak_sums(sd, gd), st.peak_sums(ss, gs)
        for k, v in (("dw", a["weight"]), ("dm", a["moment"]), ("dsh", a["shells"]),
                     ("sw", b["weight"]), ("sm", b["moment"]), ("ssh", b["shells"])):
            sums[k].append(v)
        tri = obs.triangle_chirality(s, lat)
        chi_t.append(tri.mean(-1))
        abs_chi.append(np.abs(tri).mean(-1))
        nn.append(obs.nn_correlation(s, lat))
        if order == "120":
            kappa.append(np.linalg.norm(od.staggered_vector_chirality(s, lat), axis=-1).mean(-1))
        signed = np.stack([od.signed_map(dom[r], order) for r in range(R)])
        maps.append(signed[0])
        ist = interface_stats(signed[None], lat)
        wall_len.append(ist["length"][0])
        aligned.append(ist["aligned_fraction"][0])
        hists.append(ist["hist"][0])
    sums = {k: np.stack(v) for k, v in sums.items()}                     # [F, R(, shells)]
    res = {"order": order, "lattice": lat, "time": ens.time, "n_replicas": R, "sq_domain": sq_dom,
           "sq_spin": sq_spin, "maps": np.stack(maps), "mean_chirality": np.stack(chi_t),
           "abs_chirality": np.stack(abs_chi), "nn_correlation": np.stack(nn), "wall_length": np.stack(wall_len),
           "aligned_fraction": np.asarray(aligned), "orientation_hist": np.stack(hists),
           "orientation_edges": ist["bin_edges"], "isotropic_fraction": ist["isotropic_fraction"],
           "system_length": gd.cap, "geometry": {"domain": gd, "spin": gs}}
    if kappa:
        res["abs_kappa"] = np.stack(kappa)
    cd, cs = gd.counts, gs.counts
    est = {
        "domain_moment": _ratio_estimator(sums["dw"], sums["dm"], lambda w, m: st.length_first_moment(w, m, gd.cap)),
        "domain_width": lambda idx: st.length_inverse_width(sums["dsh"][:, idx].sum(1), cd, gd.delta, gd.cap),
        "spin_moment": _ratio_estimator(sums["sw"], sums["sm"], lambda w, m: st.length_first_moment(w, m, gs.cap)),
        "spin_width": lambda idx: st.length_inverse_width(sums["ssh"][:, idx].sum(1), cs, gs.delta, gs.cap),
    }
    if order == "fm-afm" or threshold is not None:
        thr = DEFAULT_THRESHOLD if threshold is None else float(threshold)
        c = cl.cluster_series(S, lat, thr)
        area = cl.cell_area(lat)
        est["cluster"] = _ratio_estimator(c["count"], c["fm_fraction"] * lat.N,
                                          lambda n, tot: cl.cluster_length(n, tot, area))
        res["clusters"], res["cluster_threshold"] = c, thr
    res["estimators"] = est
    res["lengths"] = {k: e(np.arange(R)) for k, e in est.items()}
    res["length_errors"] = {k: _boot_err(e, R) for k, e in est.items()}
    holes, note = cl.hole_density(ens.extra)
    res["hole_density"], res["hole_note"] = holes, note
    return res


PRIMARY = {"tetrahedral": "domain_width", "120": "spin_width", "fm-afm": "cluster"}
LABELS = {"domain_moment": "domain variable S(q), first moment", "domain_width": "domain variable S(q), inverse width",
          "spin_moment": "spin S(q) at Bragg points, first moment", "spin_width": "spin S(q), inverse width",
          "cluster": "FM clusters, sqrt(mean area)"}


def fit_all(res: dict, *, window=None, n_boot: int = 1000, max_fraction: float = 0.25, span: float = 8.0,
            t_min: float = 0.0, seed: int = 0) -> dict:
    """Growth fits of every length: the window is given, or chosen on the primary length (:func:`growth.auto_window`)
    and shared by all lengths."""
    t, R = res["time"], res["n_replicas"]
    primary = PRIMARY[res["order"]] if PRIMARY[res["order"]] in res["lengths"] else "domain_moment"
    if window is None:
        try:
            window = gr.auto_window(t, res["lengths"][primary], res["system_length"], max_fraction=max_fraction,
                                    span=span, t_min=t_min)
        except NearsightError as exc:
            return {"primary": primary, "window": None, "fits": {k: {"error": str(exc)} for k in res["estimators"]},
                    "slope_bands": {}}
    fits, bands = {}, {}
    for k, e in res["estimators"].items():
        try:
            fit, slopes = gr.bootstrap_growth(t, e, R, window, n_boot=n_boot, seed=seed)
        except NearsightError as exc:
            fits[k] = {"error": str(exc)}
            continue
        fits[k] = fit.as_dict()
        L = res["lengths"][k]
        ok = np.isfinite(L)
        L_lo, L_hi = (float(np.interp(w, t[ok], L[ok])) for w in window)
        fits[k]["L_end_of_window"] = L_hi
        fits[k]["L_over_system"] = L_hi / res["system_length"]
        fits[k]["growth_factor_in_window"] = L_hi / L_lo
        bands[k] = slopes
    return {"primary": primary, "window": list(window), "fits": fits, "slope_bands": bands}


def _write_csv(path: str, columns: dict) -> str:
    keys = list(columns)
    n = len(next(iter(columns.values())))
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(keys)
        for i in range(n):
            w.writerow([f"{float(columns[k][i]):.8g}" for k in keys])
    return path


def analyze(paths, out: str, *, order: str = "auto", window=None, threshold: float | None = None,
            n_boot: int = 1000, make_movie: bool = True, export: bool = True, max_fraction: float = 0.25,
            span: float = 8.0, t_min: float = 0.0, seed: int = 0) -> dict:
    """Analyze trajectories and write ``series.csv``, ``fits.json``, pictures and exports into ``out``."""
    ens = paths if isinstance(paths, Ensemble) else load_ensemble(paths)
    os.makedirs(out, exist_ok=True)
    res = compute(ens, order=order, threshold=threshold)
    fit = fit_all(res, window=window, n_boot=n_boot, max_fraction=max_fraction, span=span, t_min=t_min, seed=seed)
    from .report import write_outputs
    files = write_outputs(ens, res, fit, out, make_movie=make_movie, export=export)
    summary = {"sources": [os.path.abspath(p) for p in ens.sources], "order": res["order"],
               "domain_variable": od.ORDERS[res["order"]][2], "lattice": repr(ens.lattice),
               "system_length": res["system_length"], "n_replicas": ens.n_replicas, "n_frames": len(ens.time),
               "t_max": float(ens.time[-1]), "model": ens.attrs.get("model"), "provider": ens.attrs.get("provider"),
               "physics": {k: ens.attrs.get(k) for k in ("J", "t", "kT", "filling", "mu", "ensemble")},
               "llg": {k: ens.attrs.get(k) for k in ("dt", "alpha", "kT_llg", "scheme")},
               **fit, "hole_density": res["hole_note"], "files": files}
    summary.pop("slope_bands")
    if "clusters" in res:
        summary["cluster_threshold"] = res["cluster_threshold"]
    summary["final"] = {"abs_chirality": float(res["abs_chirality"][-1].mean()),
                        "nn_correlation": float(res["nn_correlation"][-1].mean()),
                        "aligned_wall_fraction": float(res["aligned_fraction"][-1]),
                        "isotropic_wall_fraction": float(res["isotropic_fraction"]),
                        **{f"L_{k}": float(v[-1]) for k, v in res["lengths"].items()}}
    with open(os.path.join(out, "fits.json"), "w") as fh:
        json.dump({**summary, "provenance": provenance()}, fh, indent=1, default=float)
    summary["result"] = res
    return summary
