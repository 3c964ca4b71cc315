"""Drawing helpers: site maps with axes and colour bars, S(q) in Cartesian q with the Brillouin zone and its
high-symmetry points, log-log L(t) with reference slopes and readable ticks, local slopes, histograms, snapshot
grids and movies (matplotlib.animation: FFMpegWriter MP4 when ffmpeg is installed, else PillowWriter GIF)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import animation  # noqa: E402
from matplotlib.colors import LogNorm, Normalize  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from ..lattice import Lattice  # noqa: E402
from . import structure as st  # noqa: E402

POINT_LABELS = {"Gamma": "Γ", "K'": "K′"}


def log_ticks(ax, axes: str = "xy") -> None:
    """Readable log-axis labels: major ticks at 1-2-5 (or decades / finer, by the span), plain numbers, no minor
    labels (matplotlib's default labels minor ticks on short spans, and they overprint)."""
    for name in axes:
        axis = ax.xaxis if name == "x" else ax.yaxis
        lo, hi = ax.get_xlim() if name == "x" else ax.get_ylim()
        if lo <= 0 or hi <= 0:
            continue
        span = np.log10(hi / lo)
        subs = (1.0,) if span > 3 else (1.0, 2.0, 5.0) if span > 1.2 else (1.0, 1.5, 2.0, 3.0, 5.0, 7.0) \
            if span > 0.5 else tuple(np.arange(1.0, 10.0))
        axis.set_major_locator(LogLocator(base=10, subs=subs, numticks=15))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_locator(LogLocator(base=10, subs=np.arange(2, 10) * 1.0, numticks=15))
        axis.set_minor_formatter(NullFormatter())


def draw_map(ax, lattice: Lattice, values, title: str, *, cmap: str = "RdBu_r", vlim: float | None = None,
             label: str = "", symmetric: bool = True):
    """A site field over the sample (Gouraud-shaded triangulation of the site positions) with axes in lattice
    spacings and a labelled colour bar."""
    xy = lattice.positions
    v = np.asarray(values, dtype=np.float64)
    if symmetric:
        vlim = vlim or float(np.abs(v).max() or 1.0)
        lo, hi = -vlim, vlim
    else:
        lo, hi = (0.0, vlim) if vlim else (float(v.min()), float(v.max()) or 1.0)
    tp = ax.tripcolor(xy[:, 0], xy[:, 1], v, cmap=cmap, vmin=lo, vmax=hi, shading="gouraud")
    ax.set_aspect("equal")
    ax.set(title=title, xlabel="x (lattice spacings)", ylabel="y (lattice spacings)")
    cb = plt.colorbar(tp, ax=ax, shrink=0.8)
    cb.set_label(label)
    return tp


def draw_sq(ax, sq, lattice: Lattice, title: str, *, log: bool = True, label: str = "S(q)", marks=True):
    """``S(q) [L2, L1]`` on Cartesian momenta with every image inside 1.15x the first Brillouin zone, the zone's
    boundary and its high-symmetry points (Γ, M, K, K′ / X)."""
    q, v = st.zone_samples(sq, lattice)
    pos = v[v > 0]
    norm = (LogNorm(vmin=max(pos.min() if len(pos) else 1e-3, pos.max() * 1e-4 if len(pos) else 1e-3),
                    vmax=pos.max() if len(pos) else 1.0) if log else Normalize(vmin=0, vmax=v.max() or 1.0))
    tp = ax.tripcolor(q[:, 0], q[:, 1], np.maximum(v, norm.vmin if log else 0.0), cmap="magma", norm=norm,
                      shading="gouraud")
    bz = st.brillouin_zone(lattice)
    ax.plot(*np.vstack([bz, bz[:1]]).T, "-", c="w", lw=0.8)
    if marks:
        for name, pts in st.zone_points(lattice).items():
            for p in pts:
                ax.plot(p[0], p[1], "o", ms=3, mfc="none", mec="c")
            p = pts[np.lexsort((pts[:, 0], pts[:, 1]))[-1]]                # label the top-right image
            ax.annotate(POINT_LABELS.get(name, name), p, xytext=(4, 4), textcoords="offset points", color="c",
                        fontsize=9, fontweight="bold")
    ax.set_aspect("equal")
    ax.set(title=title, xlabel="q_x (1/lattice spacing)", ylabel="q_y (1/lattice spacing)")
    cb = plt.colorbar(tp, ax=ax, shrink=0.8)
    cb.set_label(label)
    return tp


def plot_lengths(t, curves: dict, path: str, *, system_length: float | None = None, window=None,
                 refs=(1.0, 0.5, 1 / 3), title: str = "domain length") -> str:
    """Log-log ``L(t)``: ``curves`` maps a label to ``(mean [F], error [F] or None)``; reference slopes ``t^a``
    through the first curve's middle, the fit window shaded, the system size as a line."""
    t = np.asarray(t, dtype=np.float64)
    ok = t > 0
    fig, ax = plt.subplots(figsize=(5.8, 4.4))
    first = None
    for label, (m, e) in curves.items():
        m = np.asarray(m, dtype=np.float64)
        if e is None:
            ax.plot(t[ok], m[ok], "o-", ms=3, label=label)
        else:
            ax.errorbar(t[ok], m[ok], yerr=np.asarray(e)[ok], fmt="o-", ms=3, capsize=2, label=label)
        first = m if first is None else first
    if first is not None and ok.sum() >= 2:
        tm = np.sqrt(t[ok].min() * t[ok].max())
        Lm = float(np.interp(np.log(tm), np.log(t[ok]), first[ok]))
        tt = np.geomspace(t[ok].min(), t[ok].max(), 20)
        for a, ls in zip(refs, (":", "--", "-.")):
            ax.plot(tt, Lm * (tt / tm) ** a, ls, c="gray", lw=1, label=f"t^{a:.3g}")
    if window is not None:
        ax.axvspan(window[0], window[1], color="y", alpha=0.15, label="fit window")
    if system_length:
        ax.axhline(system_length, c="k", lw=0.8, ls="--", label="system size")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set(xlabel="t (hbar/t)", ylabel="L (lattice spacings)", title=title)
    log_ticks(ax)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def plot_local_slope(t, slopes: dict, path: str, refs=(1.0, 0.5, 1 / 3)) -> str:
    """``d ln L / d ln t`` against ``t``: ``slopes`` maps a label to ``(slope [F], band_lo, band_hi)``."""
    t = np.asarray(t, dtype=np.float64)
    ok = t > 0
    fig, ax = plt.subplots(figsize=(5.8, 4))
    for label, (s, lo, hi) in slopes.items():
        ax.plot(t[ok], np.asarray(s)[ok], "o-", ms=3, label=label)
        if lo is not None:
            ax.fill_between(t[ok], np.asarray(lo)[ok], np.asarray(hi)[ok], alpha=0.25)
    for a, ls in zip(refs, (":", "--", "-.")):
        ax.axhline(a, ls=ls, c="gray", lw=1, label=f"{a:.3g}")
    ax.set_xscale("log")
    ax.set(xlabel="t (hbar/t)", ylabel="d ln L / d ln t", title="local growth exponent")
    log_ticks(ax, "x")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def plot_size_distribution(hist, edges, times, path: str, n_curves: int = 6) -> str:
    """Cluster-size distributions (number of clusters per logarithmic bin, per bin width) at a few times."""
    hist = np.asarray(hist, dtype=np.float64)
    centres = np.sqrt(edges[1:] * edges[:-1])
    widths = np.diff(edges)
    pick = np.unique(np.linspace(0, len(times) - 1, min(n_curves, len(times))).astype(int))
    fig, ax = plt.subplots(figsize=(5.8, 4.2))
    cmap = plt.get_cmap("viridis")
    for k, f in enumerate(pick):
        y = hist[f] / widths
        m = y > 0
        if m.any():
            ax.loglog(centres[m], y[m], "o-", ms=3, c=cmap(k / max(len(pick) - 1, 1)), label=f"t = {times[f]:.4g}")
    ax.set(xlabel="cluster size s (sites)", ylabel="clusters per unit size (pooled replicas)",
           title="ferromagnetic cluster sizes")
    log_ticks(ax)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def plot_orientation(hist, edges, principal, path: str, title: str = "wall orientation") -> str:
    """Polar histogram of wall tangent angles (length per bin), mirrored to 360 degrees, principal directions
    marked."""
    hist = np.asarray(hist, dtype=np.float64)
    c = np.radians((edges[1:] + edges[:-1]) / 2)
    w = np.radians(np.diff(edges))
    fig = plt.figure(figsize=(4.6, 4.6))
    ax = fig.add_subplot(projection="polar")
    tot = hist.sum() or 1.0
    ax.bar(np.concatenate([c, c + np.pi]), np.concatenate([hist, hist]) / tot, width=np.concatenate([w, w]),
           alpha=0.7)
    for d in principal:
        for s in (0, 180):
            ax.plot([np.radians(d + s)] * 2, [0, (hist / tot).max() * 1.1 if tot else 1], "--", c="r", lw=0.8)
    ax.set_title(title + "\n(length fraction per bin; dashed: lattice directions)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def snapshot_grid(lattice: Lattice, maps, times, path: str, *, label: str, cmap: str = "RdBu_r",
                  vlim: float = 1.0, symmetric: bool = True, ncols: int = 4) -> str:
    """A grid of site maps ``maps [K, N]`` at ``times [K]`` with a shared colour scale."""
    K = len(maps)
    ncols = min(ncols, K)
    nrows = int(np.ceil(K / ncols))
    xy = lattice.positions
    aspect = float(np.ptp(xy[:, 1]) / max(np.ptp(xy[:, 0]), 1e-9))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols + 1.0, 3.4 * aspect * nrows + 0.6), squeeze=False,
                             layout="constrained")
    lo, hi = (-vlim, vlim) if symmetric else (0.0, vlim)
    tp = None
    for k, ax in enumerate(axes.flat):
        if k >= K:
            ax.axis("off")
            continue
        tp = ax.tripcolor(xy[:, 0], xy[:, 1], np.asarray(maps[k]), cmap=cmap, vmin=lo, vmax=hi, shading="gouraud")
        ax.set_aspect("equal")
        ax.set_title(f"t = {times[k]:.4g}", fontsize=9)
        ax.tick_params(labelsize=7)
        if k % ncols == 0:
            ax.set_ylabel("y", fontsize=8)
        if k >= K - ncols:
            ax.set_xlabel("x (lattice spacings)", fontsize=8)
    cb = fig.colorbar(tp, ax=axes.ravel().tolist(), shrink=0.8)
    cb.set_label(label)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def movie(lattice: Lattice, maps, times, path: str, *, label: str, cmap: str = "RdBu_r", vlim: float = 1.0,
          symmetric: bool = True, fps: int = 5) -> str:
    """An animation of site maps ``maps [F, N]``: MP4 (FFMpegWriter) if ffmpeg is available and ``path`` ends in
    .mp4, else a GIF (PillowWriter; the suffix is changed to .gif). Returns the path written."""
    use_ffmpeg = path.endswith(".mp4") and animation.writers.is_available("ffmpeg")
    if not use_ffmpeg:
        path = path.rsplit(".", 1)[0] + ".gif"
    xy = lattice.positions
    lo, hi = (-vlim, vlim) if symmetric else (0.0, vlim)
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    fig.colorbar(plt.cm.ScalarMappable(norm=Normalize(lo, hi), cmap=cmap), ax=ax, shrink=0.8).set_label(label)

    def draw(k):
        ax.clear()
        ax.tripcolor(xy[:, 0], xy[:, 1], np.asarray(maps[k]), cmap=cmap, vmin=lo, vmax=hi, shading="gouraud")
        ax.set_aspect("equal")
        ax.set(title=f"t = {times[k]:.4g}", xlabel="x (lattice spacings)", ylabel="y (lattice spacings)")
        return []

    anim = animation.FuncAnimation(fig, draw, frames=len(maps), blit=False)
    writer = animation.FFMpegWriter(fps=fps) if use_ffmpeg else animation.PillowWriter(fps=fps)
    anim.save(path, writer=writer, dpi=90)
    plt.close(fig)
    return path
