"""Site point groups (C4v, C6v), their characters and irreps, projectors and Clebsch–Gordan coefficients.

Everything here is derived in code from two generators, so no character table is typed by hand:

* **Elements.** A rotation by ``2 pi / n`` (``n = 4`` square, ``6`` triangular) and the mirror ``y -> -y``
  (the axis along ``a1``) generate the group by closure. Each element is kept as a Cartesian matrix ``R``
  (``r' = R r``) and as an integer matrix ``L`` acting on lattice offsets written as row vectors,
  ``n' = n @ L`` with ``L = a R^T a^-1`` (``a``: rows are the primitive vectors). Elements are put in a
  canonical order: rotations by increasing angle, then mirrors by increasing axis angle.
* **Characters** (Burnside's algorithm). With class sums ``C_r C_s = sum_t c_rst C_t``, the numbers
  ``w_t = |C_t| chi(C_t) / d`` of each irrep are a common eigenvector of the matrices ``(M_r)_st = c_rst``
  (``M_r w = w_r w``). A generic combination ``sum_r lambda_r M_r`` has simple spectrum; normalizing
  ``w_identity = 1`` and ``sum_g |chi(g)|^2 = |G|`` gives ``d`` and ``chi``.
* **Irrep matrices.** 1D irreps are their characters. A 2D irrep ``Gamma`` of a dihedral group is cut out of
  the regular representation: on the isotypic image of ``P^Gamma`` take a vector ``u`` even under the mirror
  ``sigma`` (``y -> -y``); since ``Gamma`` restricted to ``{e, sigma}`` holds the trivial irrep once, the
  orbit span of ``u`` is one copy of ``Gamma``. Basis: ``e1 = u/|u|`` (even under ``sigma``) and ``e2``
  from ``R(C_n) u`` orthogonalized, so the principal rotation is ``[[c, -s], [s, c]]`` with ``s > 0``.
* **Labels** from the characters: ``A``/``B`` for ``chi(C_n) = +1/-1``, subscript ``1``/``2`` for
  ``chi(sigma) = +1/-1`` with ``sigma`` the mirror across ``a1``; 2D irreps ``E_k`` have
  ``chi(C_n) = 2 cos(2 pi k / n)`` (just ``E`` when there is one).
* **Projectors** onto irreps in any representation ``D``: ``P^Gamma = (d/|G|) sum_g chi(g) D(g)`` and the
  basis-resolved ``P^Gamma_ab = (d/|G|) sum_g D_Gamma(g)_ab D(g)`` with ``P_ab P_cd = delta_bc P_ad``;
  ``P_a1`` carries partner 1 of a copy to partner ``a``, so the coefficients of one copy transform together,
  ``f -> D_Gamma(g) f``.
* **Clebsch–Gordan coefficients**: the invariant tensors of ``Gamma1 x Gamma2 x Gamma3``, the image of the
  group average ``(1/|G|) sum_g D1(g) x D2(g) x D3(g)`` (all irreps here are real orthogonal, so coupling to
  ``Gamma3`` is contraction with such a tensor).

Bases of degenerate spaces are always chosen by Gram–Schmidt over the columns of the relevant projector in
order, never by an eigen-solver, so they are reproducible across machines and library versions: a trained
model's features are rebuilt identically anywhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..errors import NearsightError

_TOL = 1e-8


def canonical_basis(P: np.ndarray, tol: float = _TOL) -> np.ndarray:
    """Orthonormal basis ``[n, k]`` of the column space of ``P``, by Gram–Schmidt over its columns in order."""
    P = np.asarray(P, dtype=float)
    basis: list[np.ndarray] = []
    scale = max(1.0, float(np.abs(P).max(initial=0.0)))
    for j in range(P.shape[1]):
        v = P[:, j].copy()
        for _ in range(2):  # twice is enough for full orthogonality in floating point
            for b in basis:
                v -= (b @ v) * b
        nv = np.linalg.norm(v)
        if nv > tol * scale:
            basis.append(v / nv)
    return np.stack(basis, axis=1) if basis else np.zeros((P.shape[0], 0))


@dataclass(frozen=True)
class Irrep:
    """An irreducible representation: ``matrices[g]`` is the real orthogonal ``d x d`` matrix of element ``g``."""

    label: str
    dim: int
    characters: np.ndarray  # [|G|]
    matrices: np.ndarray    # [|G|, d, d]


class PointGroup:
    """The site point group of a lattice (``C4v`` for ``'square'``, ``C6v`` for ``'triangular'``)."""

    def __init__(self, kind: str, a: np.ndarray):
        orders = {"square": 4, "triangular": 6}
        if kind not in orders:
            raise NearsightError(f"lattice kind must be one of {', '.join(orders)} for a point group, got {kind!r}")
        self.kind, self.n = kind, orders[kind]
        self.name = f"C{self.n}v"
        self.a = np.asarray(a, dtype=float)
        th = 2 * np.pi / self.n
        rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
        mirror = np.diag([1.0, -1.0])
        elems = self._closure([rot, mirror])
        elems.sort(key=self._sort_key)
        self.cartesian = np.stack(elems)                         # [|G|, 2, 2], r' = R r
        ainv = np.linalg.inv(self.a)
        lat = np.einsum("ij,gkj,kl->gil", self.a, self.cartesian, ainv)   # a R^T a^-1
        self.lattice_matrices = np.rint(lat).astype(np.int64)   # [|G|, 2, 2], n' = n @ L
        if np.abs(lat - self.lattice_matrices).max() > 1e-9:
            raise NearsightError(f"the {self.name} operations do not map the {kind} lattice onto itself")
        self.det = np.rint(np.linalg.det(self.cartesian)).astype(np.int64)  # +1 rotation, -1 mirror
        self.order = len(elems)

    # ----------------------------------------------------------------------------------- elements
    @staticmethod
    def _closure(gens: list[np.ndarray]) -> list[np.ndarray]:
        elems = [np.eye(2)]
        frontier = [np.eye(2)]
        while frontier:
            new = []
            for x in frontier:
                for g in gens:
                    y = g @ x
                    if not any(np.allclose(y, e, atol=1e-9) for e in elems):
                        elems.append(y)
                        new.append(y)
            frontier = new
        return elems

    @staticmethod
    def _sort_key(R: np.ndarray) -> tuple:
        det = np.linalg.det(R)
        ang = np.arctan2(R[1, 0], R[0, 0]) % (2 * np.pi)
        if det > 0:
            return (0, round(ang, 9))
        return (1, round((ang / 2) % np.pi, 9))       # mirror axis angle

    @cached_property
    def mult(self) -> np.ndarray:
        """Multiplication table: ``mult[g, h]`` is the index of ``g h`` (apply ``h`` first)."""
        G = self.order
        out = np.empty((G, G), dtype=np.int64)
        for g in range(G):
            for h in range(G):
                out[g, h] = self.index_of(self.cartesian[g] @ self.cartesian[h])
        return out

    def index_of(self, R: np.ndarray) -> int:
        d = np.abs(self.cartesian - R[None]).reshape(self.order, -1).max(1)
        k = int(np.argmin(d))
        if d[k] > 1e-9:
            raise NearsightError("matrix is not an element of the group")
        return k

    @cached_property
    def inverse(self) -> np.ndarray:
        return np.array([int(np.flatnonzero(self.mult[g] == 0)[0]) for g in range(self.order)])

    @cached_property
    def principal_rotation(self) -> int:
        """Index of the rotation by ``+2 pi / n``."""
        th = 2 * np.pi / self.n
        return self.index_of(np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]]))

    @cached_property
    def mirror_a1(self) -> int:
        """Index of the mirror across the ``a1`` axis (``y -> -y``)."""
        return self.index_of(np.diag([1.0, -1.0]))

    @cached_property
    def classes(self) -> list[list[int]]:
        """Conjugacy classes (lists of element indices), in order of their first element."""
        seen, out = set(), []
        for g in range(self.order):
            if g in seen:
                continue
            cls = sorted({int(self.mult[self.mult[h, g], self.inverse[h]]) for h in range(self.order)})
            seen.update(cls)
            out.append(cls)
        return out

    # --------------------------------------------------------------------------------- characters
    @cached_property
    def _character_rows(self) -> list[tuple[int, np.ndarray]]:
        cls = self.classes
        k = len(cls)
        cls_of = np.empty(self.order, dtype=np.int64)
        for i, c in enumerate(cls):
            cls_of[c] = i
        # c[r, s, t] = #{(x in C_r, y in C_s): x y = z_t} for a fixed representative z_t of C_t
        c = np.zeros((k, k, k))
        for r in range(k):
            for s in range(k):
                for x in cls[r]:
                    for y in cls[s]:
                        z = self.mult[x, y]
                        t = cls_of[z]
                        if z == cls[t][0]:
                            c[r, s, t] += 1
        sizes = np.array([len(x) for x in cls], dtype=float)
        for attempt in range(1, 20):
            lam = np.sqrt(np.array([2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37][:k], float)) * attempt
            M = np.einsum("r,rst->st", lam, c)
            vals, vecs = np.linalg.eig(M)
            if np.min(np.abs(vals[:, None] - vals[None, :]) + np.eye(k) * 1e9) > 1e-6:
                break
        else:  # pragma: no cover - a generic combination always separates the irreps
            raise NearsightError("could not separate the irreps of the point group")
        rows = []
        for j in range(k):
            w = vecs[:, j] / vecs[0, j]                       # class 0 is the identity
            if np.abs(w.imag).max() > 1e-8:
                raise NearsightError(f"{self.name} has complex characters; only real irreps are supported")
            w = w.real
            d = int(round(np.sqrt(self.order / np.sum(w ** 2 / sizes))))
            chi_cls = d * w / sizes
            rows.append((d, chi_cls[cls_of]))
        return rows

    @cached_property
    def irreps(self) -> list[Irrep]:
        """The irreps in the order A1, A2, B1, B2, E (or E1, E2)."""
        out = []
        twod = [(d, chi) for d, chi in self._character_rows if d == 2]
        for d, chi in self._character_rows:
            if d == 1:
                letter = "A" if chi[self.principal_rotation] > 0 else "B"
                label = f"{letter}{1 if chi[self.mirror_a1] > 0 else 2}"
                mats = chi[:, None, None].copy()
            elif d == 2:
                k = int(round(np.arccos(np.clip(chi[self.principal_rotation] / 2, -1, 1)) * self.n / (2 * np.pi)))
                label = "E" if len(twod) == 1 else f"E{k}"
                mats = self._two_dim_matrices(chi)
            else:  # pragma: no cover - C4v and C6v have irreps of dimension <= 2
                raise NearsightError(f"irreps of dimension {d} are not supported")
            out.append(Irrep(label, d, np.rint(chi * 1e9) / 1e9, mats))
        order = {"A1": 0, "A2": 1, "B1": 2, "B2": 3, "E": 4, "E1": 4, "E2": 5}
        out.sort(key=lambda ir: order[ir.label])
        return out

    def irrep(self, label: str) -> Irrep:
        for ir in self.irreps:
            if ir.label == label:
                return ir
        raise NearsightError(f"{self.name} has no irrep {label!r}; it has {', '.join(self.labels)}")

    @property
    def labels(self) -> list[str]:
        return [ir.label for ir in self.irreps]

    @cached_property
    def regular(self) -> np.ndarray:
        """Regular representation ``[|G|, |G|, |G|]``: ``R(g) e_h = e_{gh}``."""
        G = self.order
        R = np.zeros((G, G, G))
        for g in range(G):
            R[g, self.mult[g], np.arange(G)] = 1.0
        return R

    def _two_dim_matrices(self, chi: np.ndarray) -> np.ndarray:
        R = self.regular
        P = (2.0 / self.order) * np.einsum("g,gij->ij", chi, R)
        even = 0.5 * (np.eye(self.order) + R[self.mirror_a1])
        u = canonical_basis(P @ even)[:, 0]
        v = R[self.principal_rotation] @ u
        e2 = v - (u @ v) * u
        e2 /= np.linalg.norm(e2)
        E = np.stack([u, e2], axis=1)
        mats = np.einsum("ia,gij,jb->gab", E, R, E)
        if np.abs(np.einsum("gaa->g", mats) - chi).max() > 1e-9:  # pragma: no cover - guards the construction
            raise NearsightError("2D irrep construction failed")
        return mats

    # -------------------------------------------------------------------------- representations
    def projector(self, irrep: Irrep, rep: np.ndarray) -> np.ndarray:
        """``P^Gamma = (d/|G|) sum_g chi(g) D(g)`` for a representation ``rep [|G|, V, V]``."""
        return (irrep.dim / self.order) * np.einsum("g,gij->ij", irrep.characters, rep)

    def partner_projector(self, irrep: Irrep, rep: np.ndarray, a: int, b: int) -> np.ndarray:
        """``P^Gamma_ab = (d/|G|) sum_g D_Gamma(g)_ab D(g)``: maps partner ``b`` of each copy to partner ``a``."""
        return (irrep.dim / self.order) * np.einsum("g,gij->ij", irrep.matrices[:, a, b], rep)

    def multiplicity(self, irrep: Irrep, rep: np.ndarray) -> int:
        m = np.einsum("g,gii->", irrep.characters, rep) / self.order
        return int(round(m))

    def decompose(self, rep: np.ndarray) -> list[tuple[Irrep, np.ndarray]]:
        """Split ``rep [|G|, n, n]`` (real orthogonal) into copies of irreps.

        Returns ``[(irrep, U)]`` with ``U [n, d]`` orthonormal columns, one entry per copy, so that for
        coefficients ``f = U^T v`` one has ``f(D(g) v) = D_Gamma(g) f(v)``. Together the ``U`` form an
        orthonormal basis of ``R^n`` (complete: ``sum_Gamma m_Gamma d_Gamma = n``).
        """
        copies = []
        for ir in self.irreps:
            U1 = canonical_basis(self.partner_projector(ir, rep, 0, 0))
            if U1.shape[1] != self.multiplicity(ir, rep):  # pragma: no cover - guards the projector algebra
                raise NearsightError(f"projector rank mismatch for {ir.label}")
            cols = [U1] + [self.partner_projector(ir, rep, a, 0) @ U1 for a in range(1, ir.dim)]
            for r in range(U1.shape[1]):
                copies.append((ir, np.stack([c[:, r] for c in cols], axis=1)))
        n = rep.shape[1]
        total = sum(U.shape[1] for _, U in copies)
        if total != n:  # pragma: no cover
            raise NearsightError(f"irrep decomposition is incomplete ({total} of {n})")
        return copies

    # -------------------------------------------------------------------------- Clebsch–Gordan
    def invariant_tensors(self, irreps: tuple[Irrep, ...]) -> np.ndarray:
        """Invariant tensors of ``irreps[0] x irreps[1] x ...``: array ``[k, d1, d2, ...]`` (``k`` may be 0).

        Each is scaled so its largest entry is ``+1`` (first such entry positive), e.g. ``delta_ab`` for
        ``Gamma x Gamma -> A1`` and the 2D cross product for ``E x E -> A2``.
        """
        dims = [ir.dim for ir in irreps]
        P = np.zeros((int(np.prod(dims)),) * 2)
        for g in range(self.order):
            K = np.ones((1, 1))
            for ir in irreps:
                K = np.kron(K, ir.matrices[g])
            P += K
        P /= self.order
        B = canonical_basis(P)
        out = []
        for j in range(B.shape[1]):
            t = B[:, j]
            big = np.flatnonzero(np.abs(t) > np.abs(t).max() - 1e-9)[0]
            t = t / t[big]
            t[np.abs(t) < 1e-12] = 0.0
            out.append(t.reshape(dims))
        return np.stack(out) if out else np.zeros((0, *dims))

    def clebsch_gordan(self, g1: str, g2: str, g3: str) -> np.ndarray:
        """Coefficients ``C[k, a, b, c]`` coupling ``Gamma1 x Gamma2 -> Gamma3``.

        ``(f1 x f2)^Gamma3_c = sum_ab C[k, a, b, c] f1_a f2_b`` transforms as ``Gamma3``; ``k`` runs over the
        multiplicity of ``Gamma3`` in ``Gamma1 x Gamma2`` (0 or 1 for C4v and C6v).
        """
        return self.invariant_tensors((self.irrep(g1), self.irrep(g2), self.irrep(g3)))

    def __repr__(self) -> str:
        return f"PointGroup({self.name}, irreps={self.labels})"


# ------------------------------------------------------------------------------------- G-sets
def signed_orbits(group: PointGroup, perm: np.ndarray, sign: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Orbits of a signed permutation action, each in a canonical order.

    ``perm[g, v]`` is the object that element ``g`` maps object ``v`` to and ``sign[g, v]`` the factor the
    variable picks up (``-1`` for a chirality under a mirror). For each orbit a representative ``v0`` with
    the smallest stabilizer signature is chosen and the objects are listed as ``g . v0`` over the first
    ``g`` of each coset, with signs ``s_k = sign[g, v0]``. In the basis ``s_k e_{g.v0}`` the action is the
    induced representation of the stabilizer's sign character, identical for all orbits of one type.
    Returns ``[(objects, signs)]`` ordered by the first object of each orbit.
    """
    G, V = perm.shape
    seen = np.zeros(V, dtype=bool)
    out = []
    for v in range(V):
        if seen[v]:
            continue
        orbit = sorted(set(perm[:, v].tolist()))
        seen[orbit] = True

        def signature(w):
            stab = tuple(int(g) for g in range(G) if perm[g, w] == w)
            return (len(stab), stab, tuple(int(sign[g, w]) for g in stab))

        v0 = min(orbit, key=lambda w: (signature(w), w))
        objs, sgn = [], []
        for g in range(G):
            w = int(perm[g, v0])
            if w not in objs:
                objs.append(w)
                sgn.append(int(sign[g, v0]))
        out.append((np.array(objs), np.array(sgn)))
    return out


def orbit_representation(perm: np.ndarray, sign: np.ndarray, objs: np.ndarray, signs: np.ndarray) -> np.ndarray:
    """Matrices ``[|G|, n, n]`` of the action on one orbit in the basis ``signs[k] e_{objs[k]}``."""
    G = perm.shape[0]
    n = len(objs)
    pos = {int(o): k for k, o in enumerate(objs)}
    D = np.zeros((G, n, n))
    for g in range(G):
        for k, o in enumerate(objs):
            j = pos[int(perm[g, o])]
            D[g, j, k] = sign[g, o] * signs[k] * signs[j]
    return D


def signed_permutation_matrices(perm: np.ndarray, sign: np.ndarray) -> np.ndarray:
    """Dense ``[|G|, V, V]`` matrices ``D(g) e_v = sign[g, v] e_{perm[g, v]}``."""
    G, V = perm.shape
    D = np.zeros((G, V, V))
    for g in range(G):
        D[g, perm[g], np.arange(V)] = sign[g]
    return D
