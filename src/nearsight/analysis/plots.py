"""Plots a physicist needs from a trajectory: energy, order parameters, maps, structure factor, domain size."""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..io import read_trajectory  # noqa: E402
from ..lattice import Lattice  # noqa: E402
from . import observables as obs  # noqa: E402


def trajectory_series(spins: np.ndarray, lattice: Lattice) -> dict[str, np.ndarray]:
    """Per-frame, per-replica observables of ``spins [F, B, N, 3]``."""
    chi_site = obs.site_chirality(spins, lattice)
    sign = np.sign(chi_site)
    return {"nn_correlation": obs.nn_correlation(spins, lattice),
            "chirality": obs.mean_chirality(spins, lattice),
            "abs_chirality": np.abs(obs.triangle_chirality(spins, lattice)).mean(-1),
            "domain_size": obs.domain_size(sign, lattice),
            "spin_domain_size": obs.spin_domain_size(spins, lattice),
            "site_nn_correlation": obs.site_nn_correlation(spins, lattice)}


def _map(ax, lattice: Lattice, values: np.ndarray, title: str, cmap="RdBu_r", vlim=None):
    """A site field drawn over the sample (Gouraud-shaded triangulation of the site positions)."""
    xy = lattice.positions
    vlim = vlim or float(np.abs(values).max() or 1.0)
    tp = ax.tripcolor(xy[:, 0], xy[:, 1], values, cmap=cmap, vmin=-vlim, vmax=vlim, shading="gouraud")
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    plt.colorbar(tp, ax=ax, shrink=0.8)


def plot_trajectory(path: str, outdir: str, replica: int = 0) -> list[str]:
    """Write energy/order/domain-size curves, the final chirality and correlation maps and S(q) as PNG."""
    arrays, attrs = read_trajectory(path)
    lat = Lattice(attrs["lattice"], int(attrs["L1"]), int(attrs["L2"]))
    os.makedirs(outdir, exist_ok=True)
    spins, t = arrays["spins"], arrays["time"]
    ser = trajectory_series(spins, lat)
    written = []

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(t, arrays["energy"].mean(1) / lat.N)
    axes[0].set(xlabel="t (hbar/t)", ylabel="E / N", title="energy (replica mean)")
    for k, lab in (("nn_correlation", "<S_i.S_j>_nn"), ("abs_chirality", "<|chi|>"), ("chirality", "<chi>")):
        axes[1].plot(t, ser[k].mean(1), label=lab)
    axes[1].set(xlabel="t (hbar/t)", title="order parameters")
    axes[1].legend()
    axes[2].loglog(t[1:], ser["domain_size"][1:].mean(1), "o-", ms=3, label="chirality-sign domains")
    axes[2].loglog(t[1:], ser["spin_domain_size"][1:].mean(1), "s-", ms=3, label="spin order (S(q) peaks)")
    axes[2].set(xlabel="t (hbar/t)", ylabel="L(t) (lattice spacings)", title="domain size")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    written.append(os.path.join(outdir, "time_series.png"))
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)

    final = spins[-1, replica]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    _map(axes[0], lat, obs.site_chirality(final, lat), f"site chirality, t = {t[-1]:.4g}")
    _map(axes[1], lat, obs.site_nn_correlation(final, lat), "local <S_i.S_j>_nn", cmap="PuOr_r", vlim=1.0)
    sq = np.fft.fftshift(obs.structure_factor(final, lat))
    im = axes[2].imshow(sq / lat.N, origin="lower", cmap="magma",
                        extent=[-0.5, 0.5, -0.5, 0.5])
    axes[2].set(title="S(q)/N (q in units of b1, b2)", xlabel="m1/L1", ylabel="m2/L2")
    plt.colorbar(im, ax=axes[2], shrink=0.8)
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
