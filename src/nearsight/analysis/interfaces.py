"""Interfaces between domains: total length and orientation histogram.

For a sign field ``phi_i = sign(f_i)`` (``+-1``), blurred by two passes of nearest-neighbour averaging (without it
the gradient of a staircase takes only a few lattice-bound directions and biases the orientation histogram toward
them), the lattice gradient at each site is the least-squares fit over its nearest neighbours, ``grad phi_i = M^-1 sum_j (phi_j - phi_i) d_ij`` with ``M = sum_j d_ij d_ij^T`` (``2 I``
on the square lattice, ``3 I`` on the triangular). By the co-area formula the wall length is
``sum_i |grad phi_i| A / 2`` (``A`` the area per site, 2 the jump of ``phi``): a straight wall along a lattice
direction of length ``l`` gives exactly ``l`` (the central differences telescope across a monotonic profile,
blurred or not, as long as walls are farther apart than the blur). The wall's tangent at a site is perpendicular to the gradient; its
angle in ``[0, 180)`` degrees, weighted by the site's share of the length, makes the orientation histogram.
Straight walls along the principal directions (0, 60, 120 degrees on the triangular lattice; 0, 90 on the square)
show as peaks there; ``aligned_fraction`` is the share of wall length within ``tol`` degrees of them (the isotropic
value is ``n_directions * 2 tol / 180``).
"""
from __future__ import annotations

import numpy as np

from ..lattice import Lattice
from .clusters import cell_area


def principal_directions(lattice: Lattice) -> np.ndarray:
    """Tangent angles (degrees in [0, 180)) of the lattice's principal directions."""
    return np.array([0.0, 60.0, 120.0]) if lattice.kind == "triangular" else np.array([0.0, 90.0])


def sign_gradient(phi: np.ndarray, lattice: Lattice) -> np.ndarray:
    """Least-squares lattice gradient of a site field ``[..., N]``, shape ``[..., N, 2]``."""
    nb = lattice.neighbors(1.0)
    d = nb.vectors                                                    # [z, 2]
    Minv = np.linalg.inv(d.T @ d)
    diff = phi[..., nb.index] - phi[..., :, None]                     # [..., N, z]
    return (diff @ d) @ Minv.T


def smooth(phi: np.ndarray, lattice: Lattice, passes: int = 2) -> np.ndarray:
    """``passes`` rounds of ``phi_i <- (phi_i + sum_nn phi_j) / (z + 1)``: a short, lattice-isotropic blur."""
    nb = lattice.neighbors(1.0).index
    for _ in range(int(passes)):
        phi = (phi + phi[..., nb].sum(-1)) / (nb.shape[1] + 1)
    return phi


def interface_stats(field: np.ndarray, lattice: Lattice, *, bins: int = 36, tol: float = 7.5,
                    passes: int = 2) -> dict:
    """Wall length, orientation histogram and aligned fraction of the sign domains of ``field [..., N]`` (the
    histogram and fraction pooled over leading axes but the first; see the module docstring).

    Returns ``length [...]`` (lattice units), ``hist [F?, bins]`` (length per bin, pooled over the rest),
    ``bin_edges [bins+1]`` (degrees), ``aligned_fraction``, ``isotropic_fraction``.
    """
    phi = smooth(np.where(np.asarray(field) >= 0, 1.0, -1.0), lattice, passes)
    g = sign_gradient(phi, lattice)
    mag = np.linalg.norm(g, axis=-1)
    A = cell_area(lattice)
    length = mag.sum(-1) * A / 2
    ang = (np.degrees(np.arctan2(g[..., 1], g[..., 0])) + 90.0) % 180.0   # tangent = normal + 90 degrees
    w = mag * A / 2
    edges = np.linspace(0.0, 180.0, bins + 1)
    lead = phi.shape[:-1]
    first = lead[0] if len(lead) >= 1 else 1
    a2, w2 = ang.reshape(first, -1), w.reshape(first, -1)
    hist = np.stack([np.histogram(a2[k], bins=edges, weights=w2[k])[0] for k in range(first)])
    dirs = principal_directions(lattice)
    dist = np.abs((ang[..., None] - dirs + 90.0) % 180.0 - 90.0).min(-1)
    aligned = ((dist <= tol) * w).reshape(first, -1).sum(-1)
    total = w.reshape(first, -1).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(total > 0, aligned / np.where(total > 0, total, 1), np.nan)
    return {"length": length, "hist": hist, "bin_edges": edges, "aligned_fraction": frac,
            "isotropic_fraction": min(1.0, len(dirs) * 2 * tol / 180.0)}
