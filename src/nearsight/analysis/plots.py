"""Plots a physicist needs from a trajectory: energy, order parameters, maps, structure factor, domain size."""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..trajectory import read_trajectory  # noqa: E402
from ..lattice import Lattice  # noqa: E402
from . import figures as fg  # noqa: E402
from . import observables as obs  # noqa: E402
from . import order as od  # noqa: E402
from . import structure as st  # noqa: E402
from .report import MAP_LABEL as REPORT_LABEL  # noqa: E402


def trajectory_series(spins: np.ndarray, lattice: Lattice, order: str | None = None) -> dict[str, np.ndarray]:
    """Per-frame, per-replica observables of ``spins [F, B, N, 3]``; ``domain_size`` is the first-moment length of
    the order's domain variable (:mod:`.order`: scalar chirality for tetrahedral, staggered vector chirality for
    120, local correlation on the square lattice)."""
    order = order or od.detect_order(spins[-1], lattice)
    dom = od.domain_field(spins, lattice, order)
    geo = st.peak_geometry(lattice, [np.zeros(2)])
    sums = st.peak_sums(st.field_structure_factor(dom, lattice), geo)
    out = {"nn_correlation": obs.nn_correlation(spins, lattice),
           "chirality": obs.mean_chirality(spins, lattice),
           "abs_chirality": np.abs(obs.triangle_chirality(spins, lattice)).mean(-1),
           "domain_size": st.length_first_moment(sums["weight"], sums["moment"], geo.cap),
           "spin_domain_size": obs.spin_domain_size(spins, lattice),
           "site_nn_correlation": obs.site_nn_correlation(spins, lattice)}
    if order == "120":
        out["abs_kappa"] = np.linalg.norm(od.staggered_vector_chirality(spins, lattice), axis=-1).mean(-1)
    return out


def _map(ax, lattice: Lattice, values: np.ndarray, title: str, cmap="RdBu_r", vlim=None, label=""):
    """A site field drawn over the sample with axes and a labelled colour bar."""
    return fg.draw_map(ax, lattice, values, title, cmap=cmap, vlim=vlim, label=label)


def plot_trajectory(path: str, outdir: str, replica: int = 0, order: str | None = None) -> list[str]:
    """Write energy/order/domain-size curves (``time_series.png``), the last frame's domain map, local
    correlation map and replica-averaged S(q) in Cartesian q with the Brillouin zone (``maps.png``)."""
    arrays, attrs = read_trajectory(path)
    lat = Lattice(attrs["lattice"], int(attrs["L1"]), int(attrs["L2"]))
    os.makedirs(outdir, exist_ok=True)
    spins, t = arrays["spins"], arrays["time"]
    order = od.detect_order(spins[-1], lat, attrs.get("model")) if order in (None, "auto") else order
    ser = trajectory_series(spins, lat, order)
    written = []

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    axes[0].plot(t, arrays["energy"].mean(1) / lat.N)
    axes[0].set(xlabel="t (hbar/t)", ylabel="E / N", title="energy (replica mean)")
    lines = [("nn_correlation", "<S_i.S_j>_nn"), ("abs_chirality", "<|chi|> (scalar)"), ("chirality", "<chi>")]
    if "abs_kappa" in ser:
        lines.append(("abs_kappa", "<|kappa|> (staggered vector chirality)"))
    for k, lab in lines:
        axes[1].plot(t, ser[k].mean(1), label=lab)
    axes[1].set(xlabel="t (hbar/t)", title="order parameters")
    axes[1].legend(fontsize=7)
    ok = t > 0
    dom_label = {"tetrahedral": "chirality domains", "120": "vector-chirality domains",
                 "fm-afm": "FM/AFM regions (local correlation)"}[order]
    if ok.sum() >= 1:
        axes[2].plot(t[ok], ser["domain_size"][ok].mean(1), "o-", ms=3, label=dom_label)
        axes[2].plot(t[ok], ser["spin_domain_size"][ok].mean(1), "s-", ms=3, label="spin order (S(q) peaks)")
        axes[2].set_xscale("log")
        axes[2].set_yscale("log")
        fg.log_ticks(axes[2])
    axes[2].set(xlabel="t (hbar/t)", ylabel="L(t) (lattice spacings)", title="domain size (replica mean)")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    written.append(os.path.join(outdir, "time_series.png"))
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)

    final = spins[-1, replica]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    dom = od.domain_field(final, lat, order)
    titles = {"tetrahedral": "scalar chirality chi / 0.770", "120": "staggered vector chirality kappa . n",
              "fm-afm": "local <S_i.S_j>_nn"}
    _map(axes[0], lat, od.signed_map(dom, order), f"{titles[order]}, t = {t[-1]:.4g}", vlim=1.0,
         label=REPORT_LABEL[order])
    if order == "120":
        _map(axes[1], lat, np.linalg.norm(dom, axis=-1), "|kappa| (1: perfect 120° order)", cmap="viridis",
             vlim=1.0, label="|kappa|")
        axes[1].collections[0].set_clim(0.0, 1.0)
    else:
        _map(axes[1], lat, obs.site_nn_correlation(final, lat), "local <S_i.S_j>_nn", cmap="PuOr_r", vlim=1.0,
             label="<S_i.S_j>_nn")
    fg.draw_sq(axes[2], obs.structure_factor(spins[-1], lat).mean(0) / lat.N, lat,
               f"spin S(q)/N, t = {t[-1]:.4g} (replica mean)", label="S(q)/N")
    fig.tight_layout()
    written.append(os.path.join(outdir, "maps.png"))
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)
    return written


def plot_locality(results: dict, path: str, floor: float | None = None) -> str:
    """eta(R) curves (one per label in ``results``: name -> LocalityResult) on a log scale."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, r in results.items():
        ax.semilogy(r.radii, np.maximum(r.ratio, 1e-6), "o-", label=name)
    if floor is not None:
        ax.axhline(floor, ls="--", c="gray")
    ax.set(xlabel="R (lattice spacings)", ylabel="rms dh_perp / rms h_perp", title="nearsightedness of the field")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
