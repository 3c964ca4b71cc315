"""Ferromagnetic clusters and sign domains on the periodic lattice.

A site is *ferromagnetic* when every one of its nearest-neighbour bonds has ``S_i . S_j > threshold``; a
ferromagnetic cluster is a connected set of such sites (nearest-neighbour connectivity, periodic boundaries).
Labelling uses :func:`scipy.ndimage.label` on the ``L2 x L1`` index grid with the lattice's neighbour stencil,
then merges labels joined across the periodic edges (the wrap bonds) with a connected-components pass over the
label graph.

Per frame: the number of clusters, their mean size ``<s>`` (sites), the size-weighted mean ``<s^2>/<s>``, the
largest, and the cluster length ``L_c = sqrt(<s> * cell area)``; pooled size histograms on logarithmic bins.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..lattice import Lattice


def stencil(lattice: Lattice) -> np.ndarray:
    """3x3 ``ndimage`` structure (rows: ``dy = -1, 0, 1``; columns: ``dx``) of the nearest-neighbour offsets."""
    s = np.zeros((3, 3), dtype=bool)
    s[1, 1] = True
    for dx, dy in lattice.nn_offsets:
        s[dy + 1, dx + 1] = True
    return s


def cell_area(lattice: Lattice) -> float:
    return float(abs(np.linalg.det(lattice.a)))


def fm_sites(spins: np.ndarray, lattice: Lattice, threshold: float) -> np.ndarray:
    """Boolean ``[..., N]``: every nearest-neighbour bond of the site has ``S_i . S_j > threshold``."""
    nb = lattice.neighbors(1.0).index                                     # [N, z]
    dots = np.einsum("...ia,...ija->...ij", spins, spins[..., nb, :])
    return (dots > threshold).all(-1)


def label_periodic(mask: np.ndarray, lattice: Lattice) -> tuple[np.ndarray, int]:
    """Labels ``[N]`` (0 outside, 1..n inside) of the connected components of ``mask [N]`` with periodic wrap."""
    m = np.asarray(mask, dtype=bool)
    lab, n = ndimage.label(m.reshape(lattice.L2, lattice.L1), structure=stencil(lattice))
    lab = lab.reshape(-1)
    if n == 0:
        return lab, 0
    b = lattice.bonds
    la, lb = lab[b[:, 0]], lab[b[:, 1]]
    join = (la > 0) & (lb > 0) & (la != lb)                                # only wrap bonds can join two labels
    g = coo_matrix((np.ones(join.sum()), (la[join] - 1, lb[join] - 1)), shape=(n, n))
    k, comp = connected_components(g, directed=False)
    out = np.where(lab > 0, comp[np.maximum(lab - 1, 0)] + 1, 0)
    return out, int(k)


def cluster_sizes(mask: np.ndarray, lattice: Lattice) -> np.ndarray:
    """Sizes (sites) of the periodic clusters of ``mask [N]``, sorted descending."""
    lab, n = label_periodic(mask, lattice)
    return np.sort(np.bincount(lab, minlength=n + 1)[1:])[::-1]


def size_bins(n_sites: int) -> np.ndarray:
    """Logarithmic bin edges 1, 2, 4, ... covering ``n_sites``."""
    return 2.0 ** np.arange(0, int(np.ceil(np.log2(max(n_sites, 2)))) + 2)


def cluster_series(spins: np.ndarray, lattice: Lattice, threshold: float) -> dict[str, np.ndarray]:
    """Cluster statistics of ``spins [F, R, N, 3]``: per frame and replica ``count``, ``mean_size``,
    ``weighted_size``, ``largest``, ``fm_fraction`` (``[F, R]``), and the size histogram pooled over replicas
    ``histogram [F, bins]`` on the edges ``bin_edges``."""
    F, R = spins.shape[:2]
    edges = size_bins(lattice.N)
    out = {k: np.zeros((F, R)) for k in ("count", "mean_size", "weighted_size", "largest", "fm_fraction")}
    hist = np.zeros((F, len(edges) - 1))
    for f in range(F):
        fm = fm_sites(spins[f], lattice, threshold)
        for r in range(R):
            s = cluster_sizes(fm[r], lattice)
            out["count"][f, r] = len(s)
            out["fm_fraction"][f, r] = fm[r].mean()
            if len(s):
                out["mean_size"][f, r] = s.mean()
                out["weighted_size"][f, r] = (s.astype(float) ** 2).sum() / s.sum()
                out["largest"][f, r] = s[0]
            hist[f] += np.histogram(s, bins=edges)[0]
    out["histogram"], out["bin_edges"] = hist, edges
    return out


def cluster_length(count, fm_sites_total, area: float) -> np.ndarray:
    """``L_c = sqrt(area * (sites in clusters) / (number of clusters))`` from summed counts (0 where no cluster)."""
    count, tot = np.asarray(count, dtype=np.float64), np.asarray(fm_sites_total, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.sqrt(area * tot / np.where(count > 0, count, 1)), 0.0)


def hole_density(arrays: dict) -> tuple[np.ndarray | None, str]:
    """The local hole density ``1 - n_i`` if the trajectory stores the site occupation (``density`` or ``n_i``,
    ``[F, R, N]``, electrons per site), else ``None`` and a note saying why the maps are skipped."""
    for key in ("density", "n_i"):
        if key in arrays:
            return 1.0 - np.asarray(arrays[key], dtype=np.float64), f"hole density 1 - n_i from the stored '{key}'"
    return None, ("hole-density maps skipped: the trajectory stores no site occupation ('density' / 'n_i'); an "
                  "ML model predicts energies and fields only, so the occupation needs a model that outputs it or "
                  "an ED/KPM evaluation of the stored frames")
