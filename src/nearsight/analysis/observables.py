"""Order parameters and correlations of spin configurations (numpy; spins ``[..., N, 3]``).

* scalar chirality per elementary triangle, ``chi_t = S_a . (S_b x S_c)`` (counter-clockwise), and per site
  (mean over the triangles touching it);
* nearest-neighbour spin correlation ``<S_i . S_j>`` (mean over bonds) and its per-site map;
* the static structure factor ``S(q) = (1/N) sum_a |sum_i S_i^a exp(-i q.r_i)|^2`` on the lattice's
  discrete momenta, and its value at named high-symmetry points;
* the domain size ``L = 2 pi / <|q|>`` from the first moment of a scalar field's structure factor;
* clusters of sites where a scalar field has the same sign (periodic connectivity along bonds).
"""
from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..lattice import Lattice


def triangle_chirality(spins: np.ndarray, lattice: Lattice) -> np.ndarray:
    """``chi_t`` for every elementary triangle, shape ``[..., T]``."""
    t = lattice.triangles
    a, b, c = spins[..., t[:, 0], :], spins[..., t[:, 1], :], spins[..., t[:, 2], :]
    return np.einsum("...i,...i->...", a, np.cross(b, c))


def site_chirality(spins: np.ndarray, lattice: Lattice) -> np.ndarray:
    """Mean chirality of the triangles touching each site, shape ``[..., N]``."""
    chi = triangle_chirality(spins, lattice)
    t = lattice.triangles
    inc = coo_matrix((np.ones(t.size), (np.repeat(np.arange(len(t)), 3), t.reshape(-1))),
                     shape=(len(t), lattice.N)).tocsr()
    flat = chi.reshape(-1, len(t))
    out = np.asarray((inc.T @ flat.T).T) / (3 * len(t) / lattice.N)
    return out.reshape(chi.shape[:-1] + (lattice.N,))


def mean_chirality(spins: np.ndarray, lattice: Lattice) -> np.ndarray:
    return triangle_chirality(spins, lattice).mean(-1)


def nn_correlation(spins: np.ndarray, lattice: Lattice) -> np.ndarray:
    """Mean ``S_i . S_j`` over nearest-neighbour bonds, shape ``[...]``."""
    b = lattice.bonds
    return np.einsum("...i,...i->...", spins[..., b[:, 0], :], spins[..., b[:, 1], :]).mean(-1)


def site_nn_correlation(spins: np.ndarray, lattice: Lattice) -> np.ndarray:
    """Per-site mean of ``S_i . S_j`` over its nearest neighbours, shape ``[..., N]`` (FM > 0, AFM < 0)."""
    nb = lattice.neighbors(1.0).index
    return np.einsum("...ia,...ija->...i", spins, spins[..., nb, :]) / nb.shape[1]


def _grid(field: np.ndarray, lattice: Lattice) -> np.ndarray:
    return field.reshape(field.shape[:-1] + (lattice.L2, lattice.L1)) if field.ndim >= 1 else field


def structure_factor(spins: np.ndarray, lattice: Lattice) -> np.ndarray:
    """``S(q)`` on the grid ``q = m1 b1/L1 + m2 b2/L2``, shape ``[..., L2, L1]`` (index ``[m2, m1]``)."""
    s = np.moveaxis(spins, -1, -2)  # [..., 3, N]
    f = np.fft.fft2(s.reshape(s.shape[:-1] + (lattice.L2, lattice.L1)), axes=(-2, -1))
    return (np.abs(f) ** 2).sum(-3) / lattice.N


def scalar_structure_factor(field: np.ndarray, lattice: Lattice) -> np.ndarray:
    f = np.fft.fft2(_grid(field, lattice), axes=(-2, -1))
    return np.abs(f) ** 2 / lattice.N


def momentum_index(q: np.ndarray, lattice: Lattice) -> tuple[int, int]:
    """Grid index ``(m2, m1)`` of the allowed momentum nearest to ``q`` (Cartesian)."""
    m = np.linalg.solve(lattice.reciprocal.T, q)  # q = m1 b1 + m2 b2 in units of b
    return int(round(m[1] * lattice.L2)) % lattice.L2, int(round(m[0] * lattice.L1)) % lattice.L1


def peaks(spins: np.ndarray, lattice: Lattice) -> dict[str, np.ndarray]:
    """``S(q)/N`` at the high-symmetry points (fraction of the total weight sum_q S(q)/N = 1)."""
    sq = structure_factor(spins, lattice)
    return {k: sq[..., momentum_index(q, lattice)[0], momentum_index(q, lattice)[1]] / lattice.N
            for k, q in lattice.high_symmetry_points().items()}


def _qnorm(lattice: Lattice) -> np.ndarray:
    m2, m1 = np.meshgrid(np.fft.fftfreq(lattice.L2), np.fft.fftfreq(lattice.L1), indexing="ij")
    q = m1[..., None] * lattice.reciprocal[0] + m2[..., None] * lattice.reciprocal[1]
    return np.linalg.norm(q, axis=-1)


def domain_size(field: np.ndarray, lattice: Lattice) -> np.ndarray:
    """``L = 2 pi / <|q|>``, ``<|q|> = sum_{q!=0} |q| S(q) / sum_{q!=0} S(q)`` of a scalar site field.

    For a field of sign domains (chirality, local FM/AFM character) this grows as the domains coarsen; for a
    single domain filling the lattice it approaches the lattice size.
    """
    sq = scalar_structure_factor(field, lattice)
    qn = _qnorm(lattice)
    mask = qn > 0
    w = sq[..., mask]
    num, den = w.sum(-1), (w * qn[mask]).sum(-1)
    # a single domain (all weight at q = 0) has the size of the lattice
    single = den <= 1e-12 * (num + sq[..., 0, 0])
    return np.where(single, float(max(lattice.L1, lattice.L2)), 2 * np.pi * num / np.where(single, 1.0, den))


def spin_domain_size(spins: np.ndarray, lattice: Lattice) -> np.ndarray:
    """Coarsening length of spin order: ``L = 2 pi sum_q S(q) / sum_q S(q) d(q)``.

    ``d(q)`` is the distance from ``q`` to the nearest high-symmetry point (Gamma, M, K, ... and their
    reciprocal-lattice images), where ordered states put their Bragg weight. Random spins give ``L`` of
    a few lattice spacings (5-6 on a 12x12 lattice); as ordered domains coarsen the weight concentrates at those points and ``L`` grows (it
    is capped at the lattice size for a single domain).
    """
    sq = structure_factor(spins, lattice)
    m2, m1 = np.meshgrid(np.arange(lattice.L2) / lattice.L2, np.arange(lattice.L1) / lattice.L1, indexing="ij")
    q = m1[..., None] * lattice.reciprocal[0] + m2[..., None] * lattice.reciprocal[1]
    d = np.full(q.shape[:-1], np.inf)
    for Q in lattice.high_symmetry_points().values():
        for n1 in (-1, 0, 1):
            for n2 in (-1, 0, 1):
                G = Q + n1 * lattice.reciprocal[0] + n2 * lattice.reciprocal[1]
                d = np.minimum(d, np.linalg.norm(q - G, axis=-1))
    num, den = sq.sum((-2, -1)), (sq * d).sum((-2, -1))
    cap = float(max(lattice.L1, lattice.L2))
    return np.minimum(cap, 2 * np.pi * num / np.maximum(den, 2 * np.pi * num / cap))


def sign_clusters(field: np.ndarray, lattice: Lattice, threshold: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Clusters of sites with ``field > threshold`` connected along nearest-neighbour bonds (periodic).

    Returns ``(labels [N] with -1 outside, sizes sorted descending)`` for one configuration.
    """
    inside = np.asarray(field) > threshold
    b = lattice.bonds
    keep = inside[b[:, 0]] & inside[b[:, 1]]
    g = coo_matrix((np.ones(keep.sum()), (b[keep, 0], b[keep, 1])), shape=(lattice.N, lattice.N))
    _, lab = connected_components(g, directed=False)
    labels = np.where(inside, lab, -1)
    _, sizes = np.unique(labels[inside], return_counts=True)
    return labels, np.sort(sizes)[::-1]
