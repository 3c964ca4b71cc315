"""The lattice side of the message-passing model: message offsets, their point-group orbits, lattice harmonics and
the point-group couplings that keep every feature in a definite lattice parity.

* **Offsets.** Messages run along every displacement ``d = n1 a1 + n2 a2`` with ``0 < |d| <= radius``, plus the
  site itself (``d = 0``, always first).
* **Orbits and harmonics.** The offsets split into orbits of the site point group ``G`` (C4v / C6v). On each orbit
  ``o`` the permutation representation ``P(g) e_d = e_{g d}`` is decomposed into irreps
  (:meth:`PointGroup.decompose`): copies ``U [|o|, d_Gamma]`` with ``f = U^T x`` obeying ``f(P(g) x) =
  D_Gamma(g) f(x)``. For a site feature ``X`` the aggregate ``A^Gamma_{i,a} = sum_d U[d, a] X_{i+d}`` therefore
  transforms under a lattice operation exactly like ``D_Gamma(g)`` (site ``i`` carried to ``g i``). Learnable
  weights multiply whole copies (one weight per copy and channel, shared by its partners ``a``): the weights are
  tied per orbit and per irrep, which is what makes the network exactly point-group symmetric.
* **Couplings.** Two aggregates of irreps ``Gamma1, Gamma2`` are multiplied through the invariant tensor
  ``C[a, b]`` of ``Gamma1 x Gamma2 -> chi`` with ``chi`` the trivial irrep ``A1`` or the mirror-odd ``A2``
  (:meth:`PointGroup.invariant_tensors`): ``delta_ab`` for ``E x E -> A1``, the 2D cross product ``eps_ab`` for
  ``E x E -> A2`` (the oriented area of a triangle: scalar chiralities), ``1`` for ``A1 x A2 -> A2``, ...
  Node features keep only the one-dimensional ``A1`` / ``A2`` parts; the ``B`` and ``E`` irreps live inside a
  layer, between aggregation and product.

Everything is derived from the lattice kind and the radius, in float64, deterministically (Gram–Schmidt bases of
:mod:`nearsight.descriptors.groups`), so a saved model is rebuilt identically on any lattice of its kind.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch.nn import functional as Fn

from ...descriptors.groups import PointGroup
from ...errors import NearsightError
from ...lattice import Lattice

#: label blocks of every feature: bit 0 = odd under S -> -S (spin inversion, time reversal), bit 1 = odd under
#: lattice mirrors (irrep A2 rather than A1). Block 0 of the scalars (even, A1) is what site energies are made of.
N_LABELS = 4
SPIN_ODD, MIRROR_ODD = 1, 2
LABEL_NAMES = ("even A1", "spin-odd A1", "even A2", "spin-odd A2")


@dataclass(frozen=True)
class IrrepHarmonics:
    """One irrep ``Gamma`` of the point group on the message offsets: ``Y[m, k, a]`` is partner ``a`` of copy
    ``k`` (over all orbits) evaluated at offset ``m``."""

    label: str
    dim: int
    Y: np.ndarray           # [M, k, d]
    mirror_odd: bool        # Gamma is A2 (one-dimensional, odd under mirrors)


@dataclass(frozen=True)
class Coupling:
    """``sum_ab C[a, b] U^Gamma1_a V^Gamma2_b`` is a lattice scalar (``chi = A1``) or pseudo-scalar (``A2``)."""

    first: int              # index into MessageGeometry.irreps
    second: int
    mirror_odd: bool        # chi = A2
    C: np.ndarray           # [d1, d2]


@dataclass(frozen=True)
class MessageGeometry:
    kind: str
    radius: float
    offsets: np.ndarray     # [M, 2] integer offsets, offsets[0] = (0, 0)
    distances: np.ndarray   # [M]
    orbits: tuple           # tuple of index arrays into offsets
    irreps: tuple           # IrrepHarmonics for each irrep present, in the group's order (A1 first)
    couplings: tuple        # Coupling

    @property
    def reach(self) -> float:
        """The longest message offset: the receptive radius grows by this much per layer."""
        return float(self.distances.max())

    def irrep_index(self, label: str) -> int:
        for k, ir in enumerate(self.irreps):
            if ir.label == label:
                return k
        raise KeyError(label)


@lru_cache(maxsize=16)
def message_geometry(kind: str, radius: float) -> MessageGeometry:
    """The message offsets within ``radius`` on a lattice of ``kind``, their orbits, harmonics and couplings."""
    lat = Lattice(kind, 2)          # only the primitive vectors are used
    if not radius >= 1.0:
        raise NearsightError(f"mpnn radius must be >= 1 (the nearest neighbours), got {radius!r}")
    off, dist = lat.offsets_within(float(radius))
    offsets = np.concatenate([np.zeros((1, 2), dtype=np.int64), off.astype(np.int64)])
    distances = np.concatenate([[0.0], dist])
    group = PointGroup(kind, lat.a)
    key = {tuple(o): m for m, o in enumerate(offsets.tolist())}
    # perm[g, m]: the offset g maps offset m to (offsets are row vectors: n' = n @ L_g)
    perm = np.array([[key[tuple(o)] for o in (offsets @ L).tolist()] for L in group.lattice_matrices])
    seen, orbits = set(), []
    for m in range(len(offsets)):
        if m not in seen:
            orb = np.array(sorted(set(perm[:, m].tolist())))
            seen.update(orb.tolist())
            orbits.append(orb)
    M = len(offsets)
    per_irrep: dict[str, list[np.ndarray]] = {}
    for orb in orbits:
        pos = {int(o): k for k, o in enumerate(orb)}
        rep = np.zeros((group.order, len(orb), len(orb)))
        for g in range(group.order):
            for k, o in enumerate(orb):
                rep[g, pos[int(perm[g, o])], k] = 1.0          # P(g) e_d = e_{g d}
        for ir, U in group.decompose(rep):
            col = np.zeros((M, ir.dim))
            col[orb] = U
            per_irrep.setdefault(ir.label, []).append(col)
    irreps = []
    for ir in group.irreps:
        if ir.label in per_irrep:
            Y = np.stack(per_irrep[ir.label], axis=1)          # [M, k, d]
            Y[np.abs(Y) < 1e-14] = 0.0
            irreps.append(IrrepHarmonics(ir.label, ir.dim, Y, ir.label == "A2"))
    _check_harmonics(group, perm, irreps)
    couplings = []
    for i1, h1 in enumerate(irreps):
        for i2, h2 in enumerate(irreps):
            for chi in ("A1", "A2"):
                t = group.clebsch_gordan(h1.label, h2.label, chi)
                if len(t):
                    couplings.append(Coupling(i1, i2, chi == "A2", np.round(t[0, :, :, 0], 12)))
    return MessageGeometry(kind, float(radius), offsets, distances, tuple(orbits), tuple(irreps), tuple(couplings))


def _check_harmonics(group: PointGroup, perm: np.ndarray, irreps) -> None:
    """Guard of the construction: ``A(P(g) x) = D_Gamma(g) A(x)`` for every copy and element."""
    M = perm.shape[1]
    for h in irreps:
        D = group.irrep(h.label).matrices
        for g in range(group.order):
            P = np.zeros((M, M))
            P[perm[g], np.arange(M)] = 1.0
            lhs = np.einsum("mka,mn->nka", h.Y, P)       # coefficients of P(g) x: Y^T P(g)
            rhs = np.einsum("ab,nkb->nka", D[g], h.Y)
            if np.abs(lhs - rhs).max() > 1e-9:  # pragma: no cover - guards the group algebra
                raise NearsightError(f"lattice harmonics of {h.label} are not equivariant")


def neighbour_table(lattice: Lattice, geometry: MessageGeometry) -> np.ndarray:
    """``[N, M]``: the site at each message offset from every site (column 0 is the site itself)."""
    if lattice.kind != geometry.kind:
        raise NearsightError(f"message geometry of the {geometry.kind} lattice cannot be used on {lattice.kind!r}")
    return np.stack([lattice.shift(tuple(o)) for o in geometry.offsets.tolist()], axis=1).astype(np.int64)


class PeriodicGather:
    """``x [..., N] -> [..., M, N]``: the feature at every message offset from every site of a periodic ``L1 x L2``
    lattice (site ``x + L1 y``), the same as ``index_select`` over :func:`neighbour_table`, made of one circular pad
    and ``M`` shifted slices of the ``[L2, L1]`` grid (contiguous copies, no per-element indexing). Its adjoint (the
    backward) sums the slices shifted back; each is the other's backward, so it differentiates to any order (the
    training step differentiates the fields)."""

    def __init__(self, lattice: Lattice, geometry: MessageGeometry):
        if lattice.kind != geometry.kind:
            raise NearsightError(f"message geometry of the {geometry.kind} lattice cannot be used on {lattice.kind!r}")
        self.offsets = tuple((int(a), int(b)) for a, b in geometry.offsets.tolist())
        self.L1, self.L2 = int(lattice.L1), int(lattice.L2)
        self.pad = int(np.abs(geometry.offsets).max())
        if self.pad > min(self.L1, self.L2):  # pragma: no cover - check_cutoff refuses such small lattices first
            raise NearsightError(f"a {self.L1}x{self.L2} lattice is smaller than the message offsets ({self.pad})")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return _Gather.apply(x, self)

    def shifted(self, x: torch.Tensor, sign: int) -> torch.Tensor:
        """``[R, N] -> [R, M, N]``: ``x`` at ``site + sign * offset`` for every offset."""
        L1, L2, p = self.L1, self.L2, self.pad
        xp = Fn.pad(x.reshape(-1, 1, L2, L1), (p, p, p, p), mode="circular")[:, 0]
        return torch.stack([xp[:, p + sign * n2:p + sign * n2 + L2, p + sign * n1:p + sign * n1 + L1]
                            for n1, n2 in self.offsets], 1).view(x.shape[0], len(self.offsets), L1 * L2)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``[R, M, N] -> [R, N]``: ``sum_m y_m`` at ``site - offset_m``."""
        L1, L2, p, M = self.L1, self.L2, self.pad, len(self.offsets)
        yp = Fn.pad(y.reshape(-1, 1, L2, L1), (p, p, p, p), mode="circular").view(-1, M, L2 + 2 * p, L1 + 2 * p)
        out = None
        for m, (n1, n2) in enumerate(self.offsets):
            part = yp[:, m, p - n2:p - n2 + L2, p - n1:p - n1 + L1]
            out = part.clone() if out is None else out.add_(part)
        return out.reshape(y.shape[0], L1 * L2)


class _Gather(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, op):
        ctx.op = op
        return op.shifted(x.reshape(-1, x.shape[-1]), 1).view(*x.shape[:-1], len(op.offsets), x.shape[-1])

    @staticmethod
    def backward(ctx, grad):
        return _Scatter.apply(grad, ctx.op), None


class _Scatter(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y, op):
        ctx.op = op
        return op.adjoint(y.reshape(-1, *y.shape[-2:])).view(*y.shape[:-2], y.shape[-1])

    @staticmethod
    def backward(ctx, grad):
        return _Gather.apply(grad, ctx.op), None


def pair_table(mirror_odd: bool) -> np.ndarray:
    """``[N_LABELS (out), N_LABELS (first)]``: the label block of the second factor that a product with a first
    factor of block ``b`` needs to land in block ``out`` (labels multiply as Z2 x Z2: XOR; an ``A2`` coupling
    flips the mirror bit)."""
    out = np.arange(N_LABELS)[:, None]
    first = np.arange(N_LABELS)[None, :]
    return out ^ first ^ (MIRROR_ODD if mirror_odd else 0)
