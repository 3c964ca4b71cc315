"""Domain variables: the local field whose domains coarsen, for each kind of order.

* ``tetrahedral`` (triangular, triple-Q at the M points): the scalar chirality ``chi = S_a . (S_b x S_c)``, per
  triangle and per site; its two signs are the two chiral domains (Ising order parameter).
* ``120`` (triangular, coplanar, Bragg peaks at K and K'): the *staggered vector chirality*
  ``kappa_t = 2/(3 sqrt 3) (S_a x S_b + S_b x S_c + S_c x S_a)`` of each counter-clockwise triangle, with the sign of
  the down triangles flipped. A perfect 120° state has ``kappa = n`` on every triangle (``|kappa| = 1``, ``n`` the
  normal of its spin plane with its handedness), so the domains of the coplanar order are regions of uniform
  ``kappa``; walls and Z2 vortices show up as ``|kappa| < 1`` or a turning ``kappa``. The scalar chirality of a
  coplanar state is zero up to noise: its map is speckle, not domains.
* ``fm-afm`` (square, double exchange, phase separation): the local nearest-neighbour correlation
  ``C_i = <S_i . S_j>_nn`` (+1 ferromagnetic puddles where the holes sit, -1 antiferromagnetic background).

:func:`domain_field` returns the per-site field ``[..., N]`` (scalar) or ``[..., N, 3]`` (vector) whose structure
factor peaks at Gamma when domains form; :data:`ORDERS` names the momenta where each order puts its spin Bragg
weight; :func:`detect_order` picks the order from a model name or, failing that, from the spin structure factor.
"""
from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix

from ..errors import NearsightError
from ..lattice import Lattice
from . import observables as obs

#: order -> (lattice kind, spin Bragg points (names in Lattice.high_symmetry_points), domain variable label)
ORDERS = {
    "tetrahedral": ("triangular", ("M1", "M2", "M3"), "scalar chirality chi"),
    "120": ("triangular", ("K", "K'"), "staggered vector chirality kappa"),
    "fm-afm": ("square", ("Gamma", "M"), "local correlation <S_i.S_j>_nn"),
}
#: shipped model -> its order
MODEL_ORDER = {"triangular-tetrahedral": "tetrahedral", "triangular-120": "120",
               "square-double-exchange": "fm-afm"}
#: perfect-order magnitude of the domain variable (used to scale colour maps and wall thresholds)
ORDER_SCALE = {"tetrahedral": 4 / (3 * np.sqrt(3)), "120": 1.0, "fm-afm": 1.0}


def check_order(order: str, lattice: Lattice) -> str:
    order = str(order)
    if order not in ORDERS:
        raise NearsightError(f"unknown order {order!r}; choose one of {', '.join(ORDERS)} (or 'auto')")
    if ORDERS[order][0] != lattice.kind:
        raise NearsightError(f"order {order!r} lives on the {ORDERS[order][0]} lattice, but the trajectory is "
                             f"{lattice.kind}; choose another --order")
    return order


def _incidence(lattice: Lattice, weights: np.ndarray | None = None):
    """Sparse ``[N, T]`` matrix averaging triangle values onto the sites they touch (with optional signs)."""
    t = lattice.triangles
    w = np.ones(len(t)) if weights is None else np.asarray(weights, dtype=np.float64)
    per_site = 3 * len(t) / lattice.N
    return coo_matrix((np.repeat(w, 3) / per_site, (t.reshape(-1), np.repeat(np.arange(len(t)), 3))),
                      shape=(lattice.N, len(t))).tocsr()


def triangle_vector_chirality(spins: np.ndarray, lattice: Lattice) -> np.ndarray:
    """``kappa_t = 2/(3 sqrt 3) (S_a x S_b + S_b x S_c + S_c x S_a)`` per counter-clockwise triangle, ``[..., T, 3]``."""
    t = lattice.triangles
    a, b, c = spins[..., t[:, 0], :], spins[..., t[:, 1], :], spins[..., t[:, 2], :]
    return (np.cross(a, b) + np.cross(b, c) + np.cross(c, a)) * (2 / (3 * np.sqrt(3)))


def _down_sign(lattice: Lattice) -> np.ndarray:
    if lattice.kind != "triangular":
        raise NearsightError("the staggered vector chirality is defined on the triangular lattice")
    return np.concatenate([np.ones(lattice.N), -np.ones(lattice.N)])  # up triangles first, then down


def staggered_vector_chirality(spins: np.ndarray, lattice: Lattice) -> np.ndarray:
    """``kappa_t`` with the down triangles' sign flipped: uniform (``|kappa| = 1``) in a perfect 120° domain."""
    return triangle_vector_chirality(spins, lattice) * _down_sign(lattice)[:, None]


def site_staggered_vector_chirality(spins: np.ndarray, lattice: Lattice) -> np.ndarray:
    """Mean staggered vector chirality of the six triangles around each site, ``[..., N, 3]``."""
    k = staggered_vector_chirality(spins, lattice)                     # [..., T, 3]
    inc = _incidence(lattice)
    flat = np.moveaxis(k, -2, 0).reshape(k.shape[-2], -1)              # [T, prod(...) * 3]
    out = (inc @ flat).reshape((lattice.N,) + k.shape[:-2] + (3,))
    return np.moveaxis(out, 0, -2)


def principal_axis(vectors: np.ndarray) -> np.ndarray:
    """Unit eigenvector of ``sum_i v_i v_i^T`` with the largest eigenvalue (sign: along the mean if any)."""
    v = np.asarray(vectors).reshape(-1, 3)
    w, u = np.linalg.eigh(v.T @ v)
    ax = u[:, -1]
    return ax if v.sum(0) @ ax >= 0 else -ax


def projected(vectors: np.ndarray, axis=None) -> np.ndarray:
    """``v . n`` of a vector field ``[N, 3]`` with ``n`` its principal axis (or ``axis``): a signed domain map."""
    v = np.asarray(vectors)
    n = principal_axis(v) if axis is None else np.asarray(axis) / np.linalg.norm(axis)
    return v @ n


def domain_field(spins: np.ndarray, lattice: Lattice, order: str) -> np.ndarray:
    """The per-site domain variable of ``order``: ``[..., N]`` (tetrahedral, fm-afm) or ``[..., N, 3]`` (120)."""
    order = check_order(order, lattice)
    if order == "tetrahedral":
        return obs.site_chirality(spins, lattice)
    if order == "120":
        return site_staggered_vector_chirality(spins, lattice)
    return obs.site_nn_correlation(spins, lattice)


def signed_map(field: np.ndarray, order: str) -> np.ndarray:
    """A scalar, signed map of one configuration's domain field ``[N]`` / ``[N, 3]`` (vector: its projection on the
    principal axis), scaled so that perfect order is +-1."""
    f = np.asarray(field)
    if f.ndim == 2:
        f = projected(f)
    return f / ORDER_SCALE[order]


def bragg_points(lattice: Lattice, order: str) -> dict[str, np.ndarray]:
    """Cartesian momenta where ``order`` puts its spin Bragg weight."""
    hs = lattice.high_symmetry_points()
    return {k: hs[k] for k in ORDERS[check_order(order, lattice)][1]}


def detect_order(spins: np.ndarray, lattice: Lattice, model: str | None = None) -> str:
    """The order of a trajectory: from its shipped model's name if known, else from where the last frame's spin
    structure factor has more weight (K points: 120; M points: tetrahedral; square lattice: fm-afm)."""
    name = str(model or "").split("/")[-1].replace(".pt", "")
    if name in MODEL_ORDER and ORDERS[MODEL_ORDER[name]][0] == lattice.kind:
        return MODEL_ORDER[name]
    if lattice.kind == "square":
        return "fm-afm"
    p = obs.peaks(np.asarray(spins), lattice)
    k = np.mean(p["K"] + p["K'"])
    m = np.mean(p["M1"] + p["M2"] + p["M3"])
    return "120" if k > m else "tetrahedral"
