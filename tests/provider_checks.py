"""Reusable property checks for any field provider (NequIP-style model tests every provider can inherit).

Each function returns a number (a worst-case deviation) so the calling test asserts it against a tolerance it
justifies for its own provider and precision.
"""
from __future__ import annotations

import numpy as np
import torch

from nearsight.lattice import Lattice


def random_orthogonal(rng: np.random.Generator, improper: bool = False) -> np.ndarray:
    """A random 3x3 rotation (det +1), or an improper one (det -1) when ``improper``."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return -q if improper else q


def symmetry_permutations(lattice: Lattice) -> dict[str, np.ndarray]:
    """Site permutations ``perm`` (spins ``S'[perm[i]] = S[i]``) of lattice symmetries: two translations,
    the generating rotation (C4 / C6 about site 0) and a mirror."""
    x, y = lattice.xy[:, 0], lattice.xy[:, 1]
    ops = {"translate_a1": (x + 1, y), "translate_a2+2a1": (x + 2, y + 1)}
    if lattice.kind == "square":
        ops["rotate_C4"] = (-y, x)
        ops["mirror_diagonal"] = (y, x)
    else:  # integer coordinates of n1 a1 + n2 a2; C6 maps a1 -> a2, a2 -> a2 - a1
        ops["rotate_C6"] = (-y, x + y)
        ops["mirror_a1_a2"] = (y, x)
    return {k: lattice.index(*v) for k, v in ops.items()}


def permute(spins: np.ndarray, perm: np.ndarray) -> np.ndarray:
    out = np.empty_like(spins)
    out[..., perm, :] = spins
    return out


def batched_vs_single(provider, spins: np.ndarray) -> float:
    """Max |difference| between a batched evaluation and one-by-one evaluations (energy and fields)."""
    res = provider.compute(spins)
    worst = 0.0
    for b in range(len(spins)):
        one = provider.compute(spins[b])
        worst = max(worst, float((res.energy[b] - one.energy).abs()), float((res.fields[b] - one.fields).abs().max()))
    return worst


def rotation_deviation(provider, spins: np.ndarray, R: np.ndarray) -> tuple[float, float]:
    """(|E(RS) - E(S)|, max |h(RS) - R h(S)|): the energy is invariant and the fields co-rotate."""
    a = provider.compute(spins)
    b = provider.compute(spins @ R.T)
    h_rot = a.fields.numpy() @ R.T
    return float(np.abs(b.energy.numpy() - a.energy.numpy()).max()), float(np.abs(b.fields.numpy() - h_rot).max())


def symmetry_deviation(provider, spins: np.ndarray, perm: np.ndarray) -> tuple[float, float]:
    """(|E(gS) - E(S)|, max |h(gS) - g h(S)|) for a site permutation ``g`` of the lattice."""
    a = provider.compute(spins)
    b = provider.compute(permute(spins, perm))
    return (float(np.abs(b.energy.numpy() - a.energy.numpy()).max()),
            float(np.abs(b.fields.numpy() - permute(a.fields.numpy(), perm)).max()))


def locality_change(provider, spins: np.ndarray, site: int, radius: float, rng: np.random.Generator
                    ) -> tuple[float, float]:
    """Replace every spin farther than ``radius`` from ``site`` by a random one; return
    (max |change of h_site|, max |change of h_j| over sites j that were not replaced), the second for scale."""
    d = provider.lattice.distances_from(site)
    far = d > radius + 1e-9
    new = spins.copy()
    r = rng.standard_normal((int(far.sum()), 3))
    new[far] = r / np.linalg.norm(r, axis=1, keepdims=True)
    a, b = provider.compute(spins).fields.numpy(), provider.compute(new).fields.numpy()
    diff = np.abs(a - b).max(-1)
    return float(diff[site]), float(diff[~far].max())


def tangent_fd_error(provider, spins: np.ndarray, rng: np.random.Generator, theta: float = 1e-4,
                     n_dirs: int = 4) -> float:
    """Relative mismatch of ``dE/dtheta`` and ``-sum_i h_i . u_i`` when every spin turns by ``theta`` along a
    random tangent direction ``u_i`` (staying on the unit sphere) — valid for any provider.

    Central differences at ``theta`` and ``theta/2`` combined by Richardson extrapolation: the ``theta^2``
    truncation term cancels, leaving ``O(theta^4)``. Energies with structure on an angular scale ``a`` have
    fourth derivatives ~ ``a^-4``: the nearsight descriptor's reference floor ``eps = 0.02`` makes ``a`` small,
    measured ~2e-6 relative at ``theta = 1e-3``, so ``theta = 1e-4`` leaves ~1e-10, plus rounding
    ``~ eps_64 |E| / theta`` (~1e-10 for |E| ~ 100).
    """
    S = np.asarray(spins, dtype=np.float64)
    h = provider.compute(S).fields.numpy()

    def central(u, t):
        plus = S * np.cos(t) + u * np.sin(t)
        minus = S * np.cos(t) - u * np.sin(t)
        return (float(provider.compute(plus).energy) - float(provider.compute(minus).energy)) / (2 * t)

    worst = 0.0
    for _ in range(n_dirs):
        u = rng.standard_normal(S.shape)
        u -= (u * S).sum(-1, keepdims=True) * S
        u /= np.linalg.norm(u, axis=-1, keepdims=True)
        num = (4 * central(u, theta / 2) - central(u, theta)) / 3
        ana = -float((h * u).sum())
        worst = max(worst, abs(num - ana) / max(abs(ana), 1e-12))
    return worst


def tile(spins: np.ndarray, small: Lattice, big: Lattice) -> np.ndarray:
    """Periodic continuation of a configuration of ``small`` onto ``big`` (sizes must be multiples)."""
    x, y = big.xy[:, 0], big.xy[:, 1]
    return spins[..., small.index(x, y), :]


def as_tensor(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=torch.float64)
