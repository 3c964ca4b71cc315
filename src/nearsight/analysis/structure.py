"""Structure factors of site fields, and domain lengths from their peaks.

For a site field ``f_i`` (scalar ``[..., N]`` or vector ``[..., N, c]``) on the ``L1 x L2`` lattice,

    S(q) = (1/N) sum_c |sum_i f_i^c exp(-i q . r_i)|^2,     q = m1 b1 / L1 + m2 b2 / L2

(the spin structure factor is the case ``f = S``). A domain pattern puts its weight in a peak around the ordering
momenta ``Q`` (Gamma for a domain variable, the Bragg points for the spins) whose width is the inverse domain size.
With ``d(q)`` the distance from ``q`` to the nearest ``Q + G`` (``G`` a reciprocal lattice vector), two lengths:

* first moment: ``L_1 = 2 pi sum_{q != Q} S(q) / sum_{q != Q} d(q) S(q)``; for a single Fourier mode of wavelength
  ``lambda`` it is ``lambda``;
* inverse width: ``L_w = pi / k_half``, with ``k_half`` the half width at half maximum of the shell average
  ``P(k) = < S(q) >_{d(q) ~ k}`` (shells of the grid spacing ``delta = min |b_i| / L_i``, the point ``q = Q``
  left out: it holds the net magnetization of the pattern, not its width), found by linear interpolation where
  ``P`` first falls below half its maximum; ``L_w = 2 pi / (full width)``. A profile that never falls to half its
  maximum (no peak yet, e.g. random spins) gives NaN; one with all weight at ``q = Q`` the lattice size.

Both are linear in ``S``: :func:`peak_sums` returns, per configuration, the sums that make them, so an ensemble's
``L(t)`` is computed from the ensemble-averaged ``S(q)`` (sum the per-replica sums), and a bootstrap over replicas
resamples those sums (:mod:`.growth`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..lattice import Lattice


def field_structure_factor(field: np.ndarray, lattice: Lattice) -> np.ndarray:
    """``S(q)`` of a scalar ``[..., N]`` or vector ``[..., N, c]`` site field, shape ``[..., L2, L1]``."""
    f = np.asarray(field, dtype=np.float64)
    vector = f.ndim >= 2 and f.shape[-2] == lattice.N and f.shape[-1] != lattice.N
    if vector:
        f = np.moveaxis(f, -1, -2)                                     # [..., c, N]
    g = np.fft.fft2(f.reshape(f.shape[:-1] + (lattice.L2, lattice.L1)), axes=(-2, -1))
    s = np.abs(g) ** 2 / lattice.N
    return s.sum(-3) if vector else s


def grid_momenta(lattice: Lattice) -> np.ndarray:
    """Cartesian ``q [L2, L1, 2]`` of the FFT grid (index ``[m2, m1]``, ``m`` in ``0..L-1``)."""
    m2, m1 = np.meshgrid(np.arange(lattice.L2) / lattice.L2, np.arange(lattice.L1) / lattice.L1, indexing="ij")
    return m1[..., None] * lattice.reciprocal[0] + m2[..., None] * lattice.reciprocal[1]


def distance_to_peaks(lattice: Lattice, peaks) -> np.ndarray:
    """``d(q) = min_{Q, G} |q - Q - G|`` on the grid, ``[L2, L1]``."""
    q = grid_momenta(lattice)
    b = lattice.reciprocal
    d = np.full(q.shape[:-1], np.inf)
    for Q in np.atleast_2d(np.asarray(list(peaks), dtype=np.float64)):
        for n1 in (-2, -1, 0, 1, 2):
            for n2 in (-2, -1, 0, 1, 2):
                d = np.minimum(d, np.linalg.norm(q - Q - n1 * b[0] - n2 * b[1], axis=-1))
    return d


def grid_spacing(lattice: Lattice) -> float:
    return float(min(np.linalg.norm(lattice.reciprocal[0]) / lattice.L1,
                     np.linalg.norm(lattice.reciprocal[1]) / lattice.L2))


@dataclass
class PeakGeometry:
    """Shells around the peaks for one lattice: ``d [L2, L1]``, shell index ``shell [L2, L1]`` (-1 at ``q = Q``)."""
    d: np.ndarray
    shell: np.ndarray
    n_shells: int
    counts: np.ndarray                           # [n_shells] grid points per shell
    delta: float
    cap: float                                   # largest length a finite lattice can show (its linear size)


def peak_geometry(lattice: Lattice, peaks) -> PeakGeometry:
    d = distance_to_peaks(lattice, peaks)
    delta = grid_spacing(lattice)
    shell = np.rint(d / delta).astype(np.int64)
    shell[d < 1e-9] = -1
    cap = float(max(lattice.L1 * np.linalg.norm(lattice.a[0]), lattice.L2 * np.linalg.norm(lattice.a[1])))
    n = int(shell.max()) + 1
    counts = np.bincount(shell[shell >= 0], minlength=n).astype(np.float64)
    return PeakGeometry(d=d, shell=shell, n_shells=n, counts=counts, delta=delta, cap=cap)


def peak_sums(sq: np.ndarray, geom: PeakGeometry) -> dict[str, np.ndarray]:
    """Linear statistics of ``S(q) [..., L2, L1]``: ``weight = sum_{q!=Q} S``, ``moment = sum_{q!=Q} d S`` and the
    shell sums ``shells [..., n_shells]`` (their counts in ``counts``)."""
    off = geom.shell >= 0
    w = sq[..., off]
    sh = geom.shell[off]
    flat = w.reshape(-1, w.shape[-1])
    shells = np.stack([np.bincount(sh, weights=row, minlength=geom.n_shells) for row in flat])
    return {"weight": w.sum(-1), "moment": (w * geom.d[off]).sum(-1),
            "shells": shells.reshape(w.shape[:-1] + (geom.n_shells,)),
            "counts": geom.counts}


def length_first_moment(weight, moment, cap: float) -> np.ndarray:
    """``L_1 = 2 pi weight / moment`` (capped at the lattice size ``cap`` when all weight sits at the peak)."""
    weight, moment = np.asarray(weight, dtype=np.float64), np.asarray(moment, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        L = 2 * np.pi * weight / moment
    return np.where(moment > 1e-12 * np.maximum(weight, 1e-300), np.minimum(L, cap), cap)


def half_width(profile: np.ndarray, delta: float) -> np.ndarray:
    """HWHM ``k_half`` of shell-averaged profiles ``[..., n_shells]`` (shell ``n`` at ``k = n delta``), NaN if the
    profile never falls to half its maximum."""
    p = np.asarray(profile, dtype=np.float64)
    flat = p.reshape(-1, p.shape[-1])
    out = np.full(len(flat), np.nan)
    for r, row in enumerate(flat):
        if not np.isfinite(row).any() or np.nanmax(row) <= 0:
            continue
        top = int(np.nanargmax(row))
        half = row[top] / 2
        below = np.nonzero(row[top:] < half)[0]
        if len(below) == 0:
            continue
        n = top + int(below[0])
        k0, k1, p0, p1 = (n - 1) * delta, n * delta, row[n - 1], row[n]
        out[r] = k0 + (p0 - half) / (p0 - p1) * (k1 - k0)
    return out.reshape(p.shape[:-1])


def length_inverse_width(shells, counts, delta: float, cap: float) -> np.ndarray:
    """``L_w = pi / k_half`` from shell sums ``[..., n_shells]`` and their counts (capped at ``cap``)."""
    shells = np.asarray(shells, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        prof = np.where(counts > 0, shells / np.where(counts > 0, counts, 1), np.nan)
        kh = half_width(prof, delta)
        L = np.pi / kh
    empty = ~(np.nan_to_num(prof) > 0).any(-1)              # all weight at the peak itself: one domain
    return np.where(empty, cap, np.minimum(L, cap))


def lengths(sq: np.ndarray, lattice: Lattice, peaks) -> dict[str, np.ndarray]:
    """First-moment and inverse-width lengths of ``S(q) [..., L2, L1]`` about ``peaks``."""
    g = peak_geometry(lattice, peaks)
    s = peak_sums(sq, g)
    return {"L_moment": length_first_moment(s["weight"], s["moment"], g.cap),
            "L_width": length_inverse_width(s["shells"], s["counts"], g.delta, g.cap)}


# ------------------------------------------------------------------------------ Cartesian q and the zone
def brillouin_zone(lattice: Lattice) -> np.ndarray:
    """Vertices ``[V, 2]`` of the first Brillouin zone (Wigner-Seitz cell of the reciprocal lattice), in order."""
    from scipy.spatial import Voronoi
    b = lattice.reciprocal
    n = np.arange(-2, 3)
    pts = np.array([i * b[0] + j * b[1] for i in n for j in n])
    vor = Voronoi(pts)
    origin = int(np.argmin(np.linalg.norm(pts, axis=1)))
    v = vor.vertices[vor.regions[vor.point_region[origin]]]
    return v[np.argsort(np.arctan2(v[:, 1], v[:, 0]))]


def _inside(points: np.ndarray, poly: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Points inside the convex polygon ``poly`` (counter-clockwise, around the origin) scaled by ``scale``."""
    p = poly * scale
    ok = np.ones(len(points), bool)
    for k in range(len(p)):
        a, c = p[k], p[(k + 1) % len(p)]
        ok &= (c[0] - a[0]) * (points[:, 1] - a[1]) - (c[1] - a[1]) * (points[:, 0] - a[0]) >= -1e-9
    return ok


def zone_samples(sq: np.ndarray, lattice: Lattice, scale: float = 1.15) -> tuple[np.ndarray, np.ndarray]:
    """Cartesian momenta and values of ``S(q) [L2, L1]`` with every periodic image inside the Brillouin zone
    enlarged by ``scale`` (for plots in Cartesian ``q``)."""
    q = grid_momenta(lattice).reshape(-1, 2)
    v = np.asarray(sq).reshape(-1)
    b = lattice.reciprocal
    bz = brillouin_zone(lattice)
    qs, vs = [], []
    for n1 in (-2, -1, 0, 1):
        for n2 in (-2, -1, 0, 1):
            p = q + n1 * b[0] + n2 * b[1]
            keep = _inside(p, bz, scale)
            qs.append(p[keep])
            vs.append(v[keep])
    return np.concatenate(qs), np.concatenate(vs)


def zone_points(lattice: Lattice) -> dict[str, np.ndarray]:
    """All images of the high-symmetry points on or inside the first Brillouin zone: name -> ``[k, 2]``."""
    b = lattice.reciprocal
    bz = brillouin_zone(lattice)
    out = {}
    for name, Q in lattice.high_symmetry_points().items():
        imgs = np.array([Q + i * b[0] + j * b[1] for i in range(-2, 3) for j in range(-2, 3)])
        imgs = imgs[_inside(imgs, bz, 1.0 + 1e-6)]
        key = "M" if name.startswith("M") and lattice.kind == "triangular" else name
        out[key] = np.concatenate([out[key], imgs]) if key in out else imgs
    return {k: np.unique(np.round(v, 9), axis=0) for k, v in out.items()}
