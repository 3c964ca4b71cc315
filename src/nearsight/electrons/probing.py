"""Probing vectors for trace and density-matrix estimation on a periodic lattice.

A *distance-d colouring* gives every site a colour so that two distinct sites of the same colour are more than
``d`` apart (Euclidean distance on the torus, in lattice spacings). The colours are the cosets of a sublattice
``Lambda'`` of the Bravais lattice that contains the periodicity vectors ``L1 a1`` and ``L2 a2`` (so the colouring
is periodic) and whose shortest nonzero vector is longer than ``d``; among those we take one of smallest index
(fewest colours), the densest such packing the torus allows. Every sublattice of Z^2 has a unique Hermite basis
``(p, 0), (s, q)`` with ``0 <= s < p``, index ``P = p q``, which is what is enumerated.

One probing vector per (colour, spin): ``r_{c,s} = sum_{i in c} z_i |i, s>`` with ``z_i = 1`` (deterministic)
or a random phase ``exp(i theta_i)`` (``phases=True``). Then ``sum_r <r|A|r>`` is ``Tr A`` plus the elements
``A_{is,js}`` between same-colour sites, all farther apart than ``d``; for a matrix that decays with distance
(the density matrix at ``kT > 0`` or in an insulator, a polynomial of ``H``) the error falls quickly with ``d``.
When only the identity sublattice of the torus qualifies, every site has its own colour and probing is exact.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import NearsightError
from ..lattice import Lattice


def _divisors(n: int) -> list[int]:
    return [k for k in range(1, n + 1) if n % k == 0]


def _shortest(b1: np.ndarray, b2: np.ndarray) -> float:
    """Length of the shortest nonzero vector of the 2-D lattice spanned by ``b1, b2`` (Lagrange-Gauss)."""
    u, v = b1.astype(float), b2.astype(float)
    if u @ u > v @ v:
        u, v = v, u
    while True:
        m = round((u @ v) / (u @ u))
        v = v - m * u
        if v @ v >= u @ u:
            return float(math.sqrt(u @ u))
        u, v = v, u


def torus_length(lattice: Lattice) -> float:
    """Shortest periodicity vector of the torus: no colouring separates a site from its own image."""
    return _shortest(lattice.L1 * lattice.a[0], lattice.L2 * lattice.a[1])


def colouring(lattice: Lattice, distance: float) -> tuple[np.ndarray, float]:
    """Colours ``[N]`` (0..P-1) such that same-colour sites are more than ``distance`` apart, and the actual
    minimum same-colour separation. ``distance = inf`` (``'exact'``) gives every site its own colour."""
    L1, L2, a = lattice.L1, lattice.L2, lattice.a
    if distance == math.inf:
        return np.arange(lattice.N), torus_length(lattice)
    dmax = torus_length(lattice)
    if not distance < dmax - 1e-9:
        raise NearsightError(
            f"probe_distance {distance:g} cannot be held by a {L1}x{L2} {lattice.kind} lattice (a site meets its own "
            f"periodic image at distance {dmax:g}); use probe_distance < {dmax:g}, or probe_distance='exact'")
    best = None
    for p in _divisors(L1):
        for q in _divisors(L2):
            P = p * q
            if best is not None and P > best[0]:
                continue
            for s in range(p):
                if ((L2 // q) * s) % p:
                    continue
                dmin = _shortest(np.array([p, 0]) @ a, np.array([s, q]) @ a)
                if dmin > distance + 1e-9 and (best is None or (P, -dmin) < (best[0], -best[1])):
                    best = (P, dmin, p, q, s)
    P, dmin, p, q, s = best  # p = L1, q = L2, s = 0 always qualifies since distance < dmax
    x, y = lattice.xy[:, 0], lattice.xy[:, 1]
    j = y // q
    colour = ((x - j * s) % p) + p * (y - j * q)
    return colour.astype(np.int64), dmin


def probe_vectors(lattice: Lattice, colour: np.ndarray | None, *, n_random: int | None = None, phases: bool = False,
                  realizations: int = 1, seed: int = 0, device=None) -> tuple[torch.Tensor, float]:
    """Probing vectors ``[N, 2, R]`` (complex128) and the trace weight ``w`` with ``Tr A ~ w sum_r <r|A|r>``.

    From a colouring: ``R = 2 P`` vectors, weight 1; with ``phases`` and ``realizations = K > 1``, ``K``
    independent draws of the phases (``R = 2 P K``, weight ``1/K``): the same-colour cross terms, which carry
    random phase factors, then average down as ``1/sqrt(K)`` while the trace stays exact (a hybrid of probing and
    Hutchinson's estimator). Random (``n_random = R``): independent uniform phases on every site and spin, weight
    ``1/R`` (unbiased Hutchinson estimator).
    """
    N = lattice.N
    gen = np.random.default_rng(seed)
    if n_random is not None:
        th = gen.uniform(0, 2 * np.pi, size=(N, 2, n_random))
        return torch.as_tensor(np.exp(1j * th), device=device), 1.0 / n_random
    P = int(colour.max()) + 1
    K = int(realizations)
    if K < 1 or (K > 1 and not phases):
        raise NearsightError(f"realizations must be >= 1, and > 1 only with random phases; got {realizations!r}")
    r = np.zeros((N, 2, 2 * P * K), dtype=np.complex128)
    for k in range(K):
        z = np.exp(1j * gen.uniform(0, 2 * np.pi, size=N)) if phases else np.ones(N, dtype=np.complex128)
        for s in range(2):
            r[np.arange(N), s, 2 * P * k + 2 * colour + s] = z
    return torch.as_tensor(r, device=device), 1.0 / K
