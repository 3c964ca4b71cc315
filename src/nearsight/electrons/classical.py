"""Classical field providers: Heisenberg + Zeeman ``E = -J_H sum_<ij> S_i.S_j - B . sum_i S_i``, and a uniaxial
single-ion anisotropy ``E = -K sum_i (S_i . n)^2``.

Not electron solvers: the Heisenberg provider gives the integrators, the run loop and the analysis a cheap provider with
analytic fields (``h_i = J_H sum_j S_j + B``) for tests and examples (one spin in a field: ``J_H = 0``).
"""
from __future__ import annotations

import math

import torch

from ..errors import NearsightError
from ..lattice import Lattice
from ..fields import FieldProvider, FieldResult


class HeisenbergProvider(FieldProvider):
    name = "heisenberg"

    def __init__(self, lattice: Lattice, J_H: float = 0.0, B=(0.0, 0.0, 0.0)):
        self.lattice, self.J_H = lattice, float(J_H)
        self.B = torch.tensor([float(b) for b in B], dtype=torch.float64)
        self._bonds = torch.as_tensor(lattice.bonds)

    def _compute(self, spins: torch.Tensor) -> FieldResult:
        i, j = self._bonds[:, 0], self._bonds[:, 1]
        e_bond = -self.J_H * (spins[:, i] * spins[:, j]).sum((-1, -2))
        h = torch.zeros_like(spins)
        h.index_add_(1, i, self.J_H * spins[:, j])
        h.index_add_(1, j, self.J_H * spins[:, i])
        h = h + self.B
        return FieldResult(e_bond - (spins @ self.B).sum(-1), h)

    def describe(self) -> dict:
        return {**super().describe(), "J_H": self.J_H, "B": self.B.tolist()}


class AnisotropyProvider(FieldProvider):
    """Single-ion uniaxial anisotropy ``E = -K sum_i (S_i . n)^2`` (``K > 0``: easy axis ``n``; ``K < 0``: easy
    plane), fields ``h_i = 2 K (S_i . n) n``. Not from the electrons: a classical term added to an electron
    provider with :class:`~nearsight.fields.SumProvider` — it is what makes a 180° domain wall in a
    ferromagnet stable, with width ``~ sqrt(A / K)`` for an exchange stiffness ``A``. Works on any geometry with
    ``N`` sites (a :class:`Lattice` or a :class:`~nearsight.lattice.Strip`).
    """

    name = "anisotropy"

    def __init__(self, lattice, K: float, axis=(0.0, 0.0, 1.0)):
        try:
            self.K = float(K)
            n = torch.tensor([float(a) for a in axis], dtype=torch.float64)
        except (TypeError, ValueError):
            raise NearsightError(f"anisotropy needs a number K and a 3-vector axis, got K={K!r}, axis={axis!r}"
                                 ) from None
        if not math.isfinite(self.K) or n.shape != (3,) or not bool(torch.isfinite(n).all()) or float(n.norm()) == 0:
            raise NearsightError(f"anisotropy needs a finite K and a finite nonzero 3-vector axis, got K={K!r}, "
                                 f"axis={axis!r}")
        self.lattice, self.axis = lattice, n / n.norm()

    def _compute(self, spins: torch.Tensor) -> FieldResult:
        n = self.axis.to(spins)
        proj = spins @ n                                                    # [B, N]
        return FieldResult(-self.K * proj.pow(2).sum(-1), 2 * self.K * proj[..., None] * n)

    def describe(self) -> dict:
        return {**super().describe(), "K": self.K, "axis": self.axis.tolist()}
