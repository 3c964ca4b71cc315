"""Files of an analysis: ``series.csv`` (per-frame curves with bootstrap errors), ``clusters.csv`` and
``cluster_sizes.csv``, ``walls.csv``, and the pictures: L(t) log-log, local slopes, S(q) of the domain variable and
of the spins in Cartesian q, snapshot grid and movie of the domain map, cluster-size distributions, wall
orientation; OVF 2.0 and VTK exports of the last frame."""
from __future__ import annotations

import os

import numpy as np

from . import figures as fg
from . import order as od
from .export import write_ovf, write_vtk
from .interfaces import principal_directions

MAP_LABEL = {"tetrahedral": "chi / 0.770 (scalar chirality, site average)",
             "120": "kappa . n (staggered vector chirality on its principal axis n)",
             "fm-afm": "<S_i.S_j>_nn (FM > 0, AFM < 0)"}


def _pick(n: int, k: int) -> np.ndarray:
    """``k`` frame indices spread over ``n`` frames on a log-like scale (first and last included)."""
    if n <= k:
        return np.arange(n)
    return np.unique(np.round(np.geomspace(1, n, k)).astype(int) - 1)


def write_outputs(ens, res: dict, fit: dict, out: str, *, make_movie: bool = True, export: bool = True) -> dict:
    from .pipeline import LABELS, _write_csv
    lat, t, order = ens.lattice, res["time"], res["order"]
    files = {}
    cols = {"time": t}
    for k, L in res["lengths"].items():
        cols[f"L_{k}"], cols[f"L_{k}_err"] = L, res["length_errors"][k]
    for k in ("abs_chirality", "mean_chirality", "nn_correlation", "abs_kappa"):
        if k in res:
            cols[k], cols[k + "_err"] = res[k].mean(1), res[k].std(1, ddof=1) / np.sqrt(res[k].shape[1]) \
                if res[k].shape[1] > 1 else np.zeros(len(t))
    cols["wall_length_per_site"] = res["wall_length"].mean(1) / lat.N
    cols["aligned_wall_fraction"] = res["aligned_fraction"]
    files["series"] = _write_csv(os.path.join(out, "series.csv"), cols)

    # L(t) and local slopes
    sl = res["system_length"]
    curves = {LABELS[k]: (res["lengths"][k], res["length_errors"][k]) for k in res["lengths"]}
    prim = fit["primary"]
    order_first = {LABELS[prim]: curves.pop(LABELS[prim]), **curves}
    files["lengths"] = fg.plot_lengths(t, order_first, os.path.join(out, "lengths.png"), system_length=sl,
                                       window=fit["window"], title=f"{order} order: domain length L(t)")
    from .growth import local_slope
    slopes = {}
    for k in (prim, "domain_moment" if prim != "domain_moment" else "spin_moment"):
        if k in res["lengths"]:
            band = fit["slope_bands"].get(k)
            lo, hi = (np.nanpercentile(band, 16, axis=0), np.nanpercentile(band, 84, axis=0)) \
                if band is not None and len(band) else (None, None)
            slopes[LABELS[k]] = (local_slope(t, res["lengths"][k]), lo, hi)
    files["local_slope"] = fg.plot_local_slope(t, slopes, os.path.join(out, "local_slope.png"))

    # structure factors (ensemble averages) early, middle, last
    import matplotlib.pyplot as plt
    idx = _pick(len(t), 3)
    for name, sq, lab in (("sq_domain", res["sq_domain"], f"S(q) of {od.ORDERS[order][2]}"),
                          ("sq_spin", res["sq_spin"], "spin S(q)")):
        fig, axes = plt.subplots(1, len(idx), figsize=(4.8 * len(idx), 4.2), squeeze=False)
        for ax, f in zip(axes[0], idx):
            fg.draw_sq(ax, sq[f], lat, f"{lab}, t = {t[f]:.4g}\n(mean of {res['n_replicas']} replicas)")
        fig.tight_layout()
        files[name] = os.path.join(out, name + ".png")
        fig.savefig(files[name], dpi=120)
        plt.close(fig)

    # domain maps: snapshots and movie (replica 0)
    sym = True
    label = MAP_LABEL[order]
    files["snapshots"] = fg.snapshot_grid(lat, res["maps"][_pick(len(t), 8)], t[_pick(len(t), 8)],
                                          os.path.join(out, "snapshots.png"), label=label, symmetric=sym)
    if make_movie:
        k = _pick(len(t), 40)
        files["movie"] = fg.movie(lat, res["maps"][k], t[k], os.path.join(out, "domains.mp4"), label=label,
                                  symmetric=sym)

    # walls
    _write_csv(os.path.join(out, "walls.csv"), {"time": t, "wall_length_mean": res["wall_length"].mean(1),
                                                "aligned_fraction": res["aligned_fraction"]})
    files["walls"] = fg.plot_orientation(res["orientation_hist"][-1], res["orientation_edges"],
                                         principal_directions(lat), os.path.join(out, "wall_orientation.png"),
                                         title=f"wall orientation at t = {t[-1]:.4g}")

    # clusters
    if "clusters" in res:
        c = res["clusters"]
        files["clusters"] = _write_csv(os.path.join(out, "clusters.csv"), {
            "time": t, "count_mean": c["count"].mean(1), "mean_size": c["mean_size"].mean(1),
            "weighted_size": c["weighted_size"].mean(1), "largest": c["largest"].mean(1),
            "fm_fraction": c["fm_fraction"].mean(1)})
        e = c["bin_edges"]
        _write_csv(os.path.join(out, "cluster_sizes.csv"),
                   {"time": t, **{f"n_{int(e[i])}_{int(e[i + 1])}": c["histogram"][:, i] for i in range(len(e) - 1)}})
        files["cluster_sizes"] = fg.plot_size_distribution(c["histogram"], e, t,
                                                           os.path.join(out, "cluster_sizes.png"))
    if res.get("hole_density") is not None:
        h = res["hole_density"]
        files["holes"] = fg.snapshot_grid(lat, h[_pick(len(t), 8), 0], t[_pick(len(t), 8)],
                                          os.path.join(out, "hole_density.png"), label="hole density 1 - n_i",
                                          cmap="viridis", vlim=float(h.max() or 1), symmetric=False)

    if export:
        s = ens.spins[-1, 0]
        desc = f"frame t = {t[-1]:g}, replica 0 of {ens.sources[0]}"
        files["ovf"] = write_ovf(os.path.join(out, "last_frame.ovf"), s, lat, desc=desc)
        files["vtk"] = write_vtk(os.path.join(out, "last_frame.vtk"), s, lat,
                                 scalars={"domain_map": res["maps"][-1]})
    return files
