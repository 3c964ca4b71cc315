"""Spin configurations: the ordered states of the s-d model and random / noisy ones.

All functions return float64 unit spins ``[N, 3]`` (or ``[B, N, 3]`` with ``batch``), reproducibly from a seed.
"""
from __future__ import annotations

import numpy as np

from .errors import NearsightError
from .lattice import Lattice

STATES = ("random", "ferro", "neel", "puddle", "stripe", "120", "tetrahedral", "wall")


def normalize(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def random_spins(n: int, rng: np.random.Generator, batch: int | None = None) -> np.ndarray:
    shape = (n, 3) if batch is None else (batch, n, 3)
    return normalize(rng.standard_normal(shape))


def ferro(lattice: Lattice) -> np.ndarray:
    s = np.zeros((lattice.N, 3))
    s[:, 2] = 1.0
    return s


def neel(lattice: Lattice) -> np.ndarray:
    """Checkerboard antiferromagnet along z (square lattice; needs even sizes)."""
    if lattice.kind != "square":
        raise NearsightError("the Néel state is bipartite order on the square lattice; on 'triangular' use '120'")
    s = ferro(lattice)
    s[:, 2] = 1 - 2 * lattice.sublattice(2)
    return s


def puddle(lattice: Lattice) -> np.ndarray:
    """The two-phase state of the lightly hole-doped double-exchange model (square lattice): a Néel background
    with one ferromagnetic (``+z``) disk of radius ``min(L1, L2) / 5`` at the centre (minimum-image distance), which
    covers ``pi / 25 = 12.6%`` of the sites — about the Maxwell fraction of ``n = 0.485`` at ``J = 6``
    (docs/canonical.md)."""
    s = neel(lattice)
    L = np.array([lattice.L1, lattice.L2], dtype=np.float64)
    d = np.asarray(lattice.xy, dtype=np.float64) - L / 2
    d -= L * np.round(d / L)
    inside = (d ** 2).sum(1) <= (min(lattice.L1, lattice.L2) / 5.0) ** 2
    s[inside] = (0.0, 0.0, 1.0)
    return s


def stripe(lattice: Lattice) -> np.ndarray:
    """Collinear single-Q stripe: ``S = z (-1)^x`` (Q = M1 on the triangular lattice, (pi, 0) on the square)."""
    if lattice.L1 % 2:
        raise NearsightError(f"the stripe state needs an even size (L1), got {lattice.L1}")
    s = ferro(lattice)
    s[:, 2] = 1 - 2 * (lattice.xy[:, 0] % 2)
    return s


def state_120(lattice: Lattice) -> np.ndarray:
    """Coplanar 120° order on the triangular lattice (three sublattices; sizes divisible by 3)."""
    if lattice.kind != "triangular":
        raise NearsightError("the 120° state lives on the triangular lattice; use 'neel' on 'square'")
    phi = 2 * np.pi / 3 * lattice.sublattice(3)
    return np.stack([np.cos(phi), np.sin(phi), np.zeros_like(phi)], 1)


def tetrahedral(lattice: Lattice) -> np.ndarray:
    """Non-coplanar triple-Q (tetrahedral) order: ``S = (cos(M1.r), cos(M2.r), cos(M3.r)) / sqrt(3)``.

    The four sublattices of the 2x2 cell point to the corners of a regular tetrahedron; every elementary
    triangle carries scalar chirality of magnitude ``4/(3 sqrt 3) = 0.770``. Sizes must be even.
    """
    if lattice.L1 % 2 or lattice.L2 % 2:
        raise NearsightError(f"the tetrahedral state needs even sizes, got {lattice.L1}x{lattice.L2}")
    x, y = lattice.xy[:, 0], lattice.xy[:, 1]
    return np.stack([(-1.0) ** x, (-1.0) ** y, (-1.0) ** (x + y)], 1) / np.sqrt(3)


def domain_wall(geometry, x0: float, width: float, *, phi: float = 0.0) -> np.ndarray:
    """A 180° wall along ``x`` between an up (``+z``, left) and a down (``-z``, right) domain: the polar angle
    ``theta(x) = 2 arctan(exp((x - x0)/width))`` (the profile of an easy-axis wall), the wall's spins turning through
    ``(cos phi, sin phi, 0)`` (``phi = 0``: a Néel wall in the x-z plane; ``pi/2``: a Bloch wall). Any geometry with
    site coordinates ``xy`` (a :class:`Lattice` or a :class:`~nearsight.lattice.Strip`); uniform along y."""
    width = float(width)
    if not (np.isfinite(width) and width > 0) or not np.isfinite(float(x0)) or not np.isfinite(float(phi)):
        raise NearsightError(f"domain_wall needs a finite centre x0, a width > 0 and a finite phi, got x0={x0!r}, "
                             f"width={width!r}, phi={phi!r}")
    x = np.asarray(geometry.xy)[:, 0].astype(np.float64)
    th = 2.0 * np.arctan(np.exp((x - float(x0)) / width))
    return np.stack([np.sin(th) * np.cos(phi), np.sin(th) * np.sin(phi), np.cos(th)], 1)


def make_state(name: str, lattice: Lattice, *, seed: int = 0, noise: float = 0.0, batch: int | None = None
               ) -> np.ndarray:
    """A named initial state, optionally with Gaussian noise of width ``noise`` added and renormalized."""
    name = str(name)  # YAML reads "120" as an integer
    rng = np.random.default_rng(seed)
    builders = {"ferro": ferro, "neel": neel, "puddle": puddle, "stripe": stripe, "120": state_120, "tetrahedral": tetrahedral,
                "wall": lambda lat: domain_wall(lat, lat.L1 / 2 - 0.5, 2.0)}
    if name == "random":
        return random_spins(lattice.N, rng, batch)
    if name not in builders:
        raise NearsightError(f"unknown initial state {name!r}; choose one of {', '.join(STATES)} or a .npy file")
    s = builders[name](lattice)
    if batch is not None:
        s = np.broadcast_to(s, (batch,) + s.shape).copy()
    if noise < 0:
        raise NearsightError(f"noise must be >= 0, got {noise}")
    if noise > 0:
        s = normalize(s + noise * rng.standard_normal(s.shape))
    return s


def load_spins(path: str, lattice: Lattice) -> np.ndarray:
    """Spins from a ``.npy`` file, checked to be ``[N, 3]`` / ``[B, N, 3]`` unit vectors for the lattice."""
    import os

    from .errors import as_spins
    if not os.path.exists(path):
        raise NearsightError(f"spins file {path!r} does not exist; pass a .npy array of shape [{lattice.N}, 3]")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:  # numpy raises many types for corrupt files
        raise NearsightError(f"cannot read spins file {path!r} ({type(exc).__name__}); it must be a .npy array "
                             f"of shape [{lattice.N}, 3]") from None
    s, batched = as_spins(arr, lattice.N)
    out = s.numpy()
    return out if batched else out[0]
