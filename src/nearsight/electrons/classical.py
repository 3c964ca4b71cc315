"""A classical Heisenberg + Zeeman field provider, ``E = -J_H sum_<ij> S_i.S_j - B . sum_i S_i``.

Not an electron solver: it gives the integrators, the run loop and the analysis a cheap provider with
analytic fields (``h_i = J_H sum_j S_j + B``) for tests and examples (one spin in a field: ``J_H = 0``).
"""
from __future__ import annotations

import torch

from ..lattice import Lattice
from .base import FieldProvider, FieldResult


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
