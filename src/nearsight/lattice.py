"""The geometries: periodic square and triangular lattices, and the open strip of the driven (NEGF) runs.

Conventions (docs/conventions.md): ``L1 x L2`` sites with periodic boundaries, site index ``i = x + L1*y``.
Square: ``a1 = (1, 0), a2 = (0, 1)``. Triangular: ``a1 = (1, 0), a2 = (1/2, sqrt(3)/2)``; the six nearest
neighbours of ``(x, y)`` are ``(x±1, y), (x, y±1), (x+1, y-1), (x-1, y+1)``.

Neighbour tables are built from integer offsets ``(n1, n2)`` (displacement ``n1*a1 + n2*a2``), grouped into
distance shells. Because the lattice is translation invariant, the table of offsets is shared by all sites
and only the index table ``[N, M]`` depends on the site.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .errors import NearsightError

LATTICES = ("square", "triangular")
_EPS = 1e-9


def _primitive_vectors(kind: str) -> np.ndarray:
    if kind == "square":
        return np.array([[1.0, 0.0], [0.0, 1.0]])
    if kind == "triangular":
        return np.array([[1.0, 0.0], [0.5, np.sqrt(3) / 2]])
    raise NearsightError(f"unknown lattice {kind!r}; choose one of {', '.join(LATTICES)}")


@dataclass(frozen=True)
class Neighbors:
    """Neighbours of every site within a cutoff, ordered by distance.

    ``index[i, m]`` is the site at ``offsets[m]`` from site ``i``; ``vectors[m]`` its Cartesian displacement,
    ``distance[m]`` its length, and ``shell[m]`` the 1-based rank of that length among distinct distances.
    """

    index: np.ndarray      # [N, M] int64
    offsets: np.ndarray    # [M, 2] int64 (n1, n2)
    vectors: np.ndarray    # [M, 2] float64
    distance: np.ndarray   # [M] float64
    shell: np.ndarray      # [M] int64, 1 = nearest neighbours
    shell_radii: np.ndarray  # [n_shells] float64


class Lattice:
    """An ``L1 x L2`` periodic lattice of kind ``'square'`` or ``'triangular'``."""

    def __init__(self, kind: str, L1: int, L2: int | None = None):
        self.kind = str(kind)
        self.a = _primitive_vectors(self.kind)
        L2 = L1 if L2 is None else L2
        for name, L in (("size", L1), ("size2", L2)):
            if not isinstance(L, (int, np.integer)) or isinstance(L, bool) or L < 2:
                raise NearsightError(f"lattice {name} must be an integer >= 2, got {L!r}")
        self.L1, self.L2 = int(L1), int(L2)
        self.N = self.L1 * self.L2

    # ------------------------------------------------------------------ geometry
    def __repr__(self) -> str:
        return f"Lattice({self.kind!r}, {self.L1}, {self.L2})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Lattice) and (self.kind, self.L1, self.L2) == (other.kind, other.L1, other.L2)

    def __hash__(self) -> int:
        return hash((self.kind, self.L1, self.L2))

    @property
    def coordination(self) -> int:
        return 4 if self.kind == "square" else 6

    @cached_property
    def xy(self) -> np.ndarray:
        """Integer coordinates ``[N, 2]`` with ``i = x + L1*y``."""
        i = np.arange(self.N)
        return np.stack([i % self.L1, i // self.L1], axis=1)

    @cached_property
    def positions(self) -> np.ndarray:
        """Cartesian positions ``[N, 2]`` (inside the primitive cell of the supercell)."""
        return self.xy @ self.a

    def index(self, x, y) -> np.ndarray:
        """Site index of (possibly out-of-range) integer coordinates, wrapped periodically."""
        return (np.asarray(x) % self.L1) + self.L1 * (np.asarray(y) % self.L2)

    def shift(self, offset: tuple[int, int]) -> np.ndarray:
        """``j[i]``: the site at integer offset ``(n1, n2)`` from each site ``i``."""
        return self.index(self.xy[:, 0] + offset[0], self.xy[:, 1] + offset[1])

    @cached_property
    def reciprocal(self) -> np.ndarray:
        """Reciprocal primitive vectors ``b`` with ``a_i . b_j = 2 pi delta_ij`` (rows)."""
        return 2 * np.pi * np.linalg.inv(self.a).T

    def distances_from(self, i: int) -> np.ndarray:
        """Minimal-image distance from site ``i`` to every site, ``[N]``."""
        d = self.xy - self.xy[i]
        d = (d + np.array([self.L1, self.L2]) // 2) % np.array([self.L1, self.L2]) - np.array([self.L1, self.L2]) // 2
        best = np.full(self.N, np.inf)
        for k1 in (-1, 0, 1):
            for k2 in (-1, 0, 1):
                v = (d + np.array([k1 * self.L1, k2 * self.L2])) @ self.a
                best = np.minimum(best, np.linalg.norm(v, axis=1))
        return best

    # --------------------------------------------------------------- neighbours
    def offsets_within(self, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
        """Integer offsets (excluding 0) with ``|n1 a1 + n2 a2| <= cutoff``, sorted by distance, and distances."""
        n = int(np.ceil(cutoff / 0.8)) + 2
        r = np.arange(-n, n + 1)
        o = np.stack(np.meshgrid(r, r, indexing="ij"), -1).reshape(-1, 2)
        d = np.linalg.norm(o @ self.a, axis=1)
        keep = (d <= cutoff + _EPS) & (d > _EPS)
        o, d = o[keep], d[keep]
        ang = np.arctan2(*(o @ self.a)[:, ::-1].T)
        order = np.lexsort((ang, np.round(d, 9)))
        return o[order], d[order]

    def check_cutoff(self, cutoff: float) -> None:
        """Raise if a disk of radius ``cutoff`` would wrap onto itself on this periodic lattice."""
        if self._wraps(cutoff, self.L1, self.L2):
            need = self.min_size(cutoff)
            raise NearsightError(
                f"lattice {self.L1}x{self.L2} is too small for cutoff {cutoff:g}: a neighbour shell wraps onto "
                f"itself; use size >= {need} (or a smaller cutoff)")

    def min_size(self, cutoff: float) -> int:
        """Smallest ``L`` such that an ``L x L`` lattice of this kind holds a disk of radius ``cutoff``."""
        L = 2
        while self._wraps(cutoff, L, L):
            L += 1
        return L

    def _wraps(self, cutoff: float, L1: int, L2: int) -> bool:
        """True if two offsets of the disk (the centre included) land on the same site of an L1 x L2 torus."""
        o, _ = self.offsets_within(cutoff)
        allo = np.concatenate([np.zeros((1, 2), dtype=o.dtype), o])
        keys = (allo[:, 0] % L1) + L1 * (allo[:, 1] % L2)
        return len(np.unique(keys)) != len(keys)

    def neighbors(self, cutoff: float) -> Neighbors:
        """Neighbour table of every site within ``cutoff`` (a clear error if the lattice is too small)."""
        self.check_cutoff(cutoff)
        o, d = self.offsets_within(cutoff)
        radii = np.unique(np.round(d, 9))
        shell = np.searchsorted(radii, np.round(d, 9)) + 1
        index = np.stack([self.shift(tuple(off)) for off in o], axis=1) if len(o) else np.zeros((self.N, 0), int)
        return Neighbors(index=index.astype(np.int64), offsets=o.astype(np.int64), vectors=o @ self.a,
                         distance=d, shell=shell.astype(np.int64), shell_radii=radii)

    @cached_property
    def nn_offsets(self) -> np.ndarray:
        """The nearest-neighbour offsets (4 or 6), counter-clockwise from +a1."""
        o, d = self.offsets_within(1.0)
        return o

    @cached_property
    def bonds(self) -> np.ndarray:
        """Nearest-neighbour bonds ``[N * z/2, 2]``, each once (offsets with positive angle-half)."""
        half = self.nn_offsets[: self.coordination // 2]
        return np.concatenate([np.stack([np.arange(self.N), self.shift(tuple(o))], 1) for o in half])

    def hopping_pairs(self, shell: int = 1) -> np.ndarray:
        """Ordered pairs ``(i, j)`` of the given neighbour shell, each directed bond once per periodic image.

        On tiny periodic lattices several images may connect the same pair; they are listed separately so the
        hopping matrix accumulates them correctly.
        """
        o, d = self.offsets_within(2.0)
        radii = np.unique(np.round(d, 9))
        sel = np.round(d, 9) == radii[shell - 1]
        return np.concatenate([np.stack([np.arange(self.N), self.shift(tuple(off))], 1) for off in o[sel]])

    # ---------------------------------------------------------- triangles etc.
    @cached_property
    def triangles(self) -> np.ndarray:
        """Elementary triangles ``[T, 3]``, each oriented counter-clockwise.

        Triangular lattice: the up triangle ``(r, r+a1, r+a2)`` and the down triangle ``(r+a1, r+a1+a2, r+a2)``:
        two per site (``T = 2N``), together tiling the plane.
        Square lattice: each plaquette ``(r, r+x, r+x+y, r+y)`` split along both diagonals into its four
        corner triangles (``T = 4N``), so the set is invariant under the square's point group.
        """
        x, y = self.xy[:, 0], self.xy[:, 1]
        idx = self.index
        if self.kind == "triangular":
            up = np.stack([idx(x, y), idx(x + 1, y), idx(x, y + 1)], 1)
            down = np.stack([idx(x + 1, y), idx(x + 1, y + 1), idx(x, y + 1)], 1)
            return np.concatenate([up, down])
        p = [idx(x, y), idx(x + 1, y), idx(x + 1, y + 1), idx(x, y + 1)]
        return np.concatenate([np.stack([p[k], p[(k + 1) % 4], p[(k + 3) % 4]], 1) for k in range(4)])

    # ---------------------------------------------------------------- sublattices
    def sublattice(self, n: int) -> np.ndarray:
        """Sublattice labels for the common orders.

        ``n = 2``: Néel checkerboard on the square lattice, ``(x + y) mod 2``.
        ``n = 3``: the three 120° sublattices of the triangular lattice, ``(x - y) mod 3``.
        ``n = 4``: the 2x2 sublattices ``(x mod 2) + 2 (y mod 2)`` (tetrahedral order, stripes).
        A lattice whose size does not hold the pattern periodically is a clear error.
        """
        x, y = self.xy[:, 0], self.xy[:, 1]
        period = {2: 2, 3: 3, 4: 2}.get(n)
        if period is None:
            raise NearsightError(f"sublattice count must be 2, 3 or 4, got {n!r}")
        if self.L1 % period or self.L2 % period:
            raise NearsightError(
                f"a {n}-sublattice pattern needs sizes divisible by {period}; got {self.L1}x{self.L2}")
        if n == 2:
            return (x + y) % 2
        if n == 3:
            return (x - y) % 3
        return (x % 2) + 2 * (y % 2)

    def high_symmetry_points(self) -> dict[str, np.ndarray]:
        """Named momenta (Gamma, M points, K points) as Cartesian vectors."""
        b = self.reciprocal
        if self.kind == "square":
            return {"Gamma": np.zeros(2), "X": b[0] / 2, "Y": b[1] / 2, "M": (b[0] + b[1]) / 2}
        return {"Gamma": np.zeros(2), "M1": b[0] / 2, "M2": b[1] / 2, "M3": (b[0] + b[1]) / 2,
                "K": (2 * b[0] + b[1]) / 3, "K'": (b[0] + 2 * b[1]) / 3}



@dataclass(frozen=True)
class Strip:
    """An ``Lx x Ly`` square-lattice strip, open along ``x`` (transport, between two leads) and periodic along ``y``.

    Same attributes the package uses on a :class:`Lattice`: ``N``, ``xy``, ``index``, ``distances_from``,
    ``kind``, ``L1 = Lx``, ``L2 = Ly``; site ``i = x + Lx*y``.
    """

    Lx: int
    Ly: int = 1

    def __post_init__(self):
        for name in ("Lx", "Ly"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise NearsightError(f"Strip {name} must be an integer >= 1, got {v!r}")
            object.__setattr__(self, name, int(v))

    kind = "strip"

    @property
    def L1(self) -> int:
        return self.Lx

    @property
    def L2(self) -> int:
        return self.Ly

    @property
    def N(self) -> int:
        return self.Lx * self.Ly

    @cached_property
    def xy(self) -> np.ndarray:
        i = np.arange(self.N)
        return np.stack([i % self.Lx, i // self.Lx], axis=1)

    def index(self, x, y) -> np.ndarray:
        """Site index; ``y`` wraps periodically, ``x`` must lie in ``[0, Lx)`` (the strip is open along x)."""
        x = np.asarray(x)
        if np.any((x < 0) | (x >= self.Lx)):
            raise NearsightError(f"x must lie in [0, {self.Lx}) on an open strip, got {x!r}")
        return x + self.Lx * (np.asarray(y) % self.Ly)

    def distances_from(self, i: int) -> np.ndarray:
        """Distance from site ``i`` to every site, ``[N]``: straight along the open ``x``, minimal image along the
        periodic ``y`` (as :meth:`Lattice.distances_from`, so the locality analysis runs on strips)."""
        d = self.xy - self.xy[i]
        dy = (d[:, 1] + self.Ly // 2) % self.Ly - self.Ly // 2
        return np.hypot(d[:, 0], np.minimum(np.abs(dy), self.Ly - np.abs(dy)))

    @classmethod
    def from_lattice(cls, lattice: Lattice) -> "Strip":
        """The square ``L1 x L2`` lattice read as a strip: ``x`` open (its periodicity is ignored), ``y`` periodic."""
        if getattr(lattice, "kind", None) != "square":
            raise NearsightError(f"a strip (open along x, periodic along y) is read from a square lattice, got "
                                 f"{getattr(lattice, 'kind', lattice)!r}; give a square lattice or a Strip(Lx, Ly)")
        return cls(lattice.L1, lattice.L2)
