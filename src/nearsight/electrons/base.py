"""The one seam of the architecture: a field provider maps spins to an energy and local fields.

Every provider (exact diagonalization, KPM, NEGF, the trained network) implements :meth:`FieldProvider._compute`
on a validated float64 batch ``[B, N, 3]`` and returns a :class:`FieldResult`. The integrator, the data
generator, the locality analysis and the benchmarks only ever call :meth:`FieldProvider.compute`.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field

import torch

from ..errors import as_spins
from ..lattice import Lattice


@dataclass
class FieldResult:
    """Energy ``[B]`` (or scalar) and fields ``h_i = -dE/dS_i`` ``[B, N, 3]`` (or ``[N, 3]``), plus extras."""

    energy: torch.Tensor
    fields: torch.Tensor
    extras: dict = field(default_factory=dict)

    def unbatch(self) -> "FieldResult":
        ex = {k: (v[0] if isinstance(v, torch.Tensor) and v.dim() > 0 else v) for k, v in self.extras.items()}
        return FieldResult(self.energy[0], self.fields[0], ex)


class FieldProvider(abc.ABC):
    """Spins in; energy and fields out. Subclasses implement ``_compute`` on a ``[B, N, 3]`` float64 batch."""

    lattice: Lattice
    #: short name used in files and on the command line ("ed", "kpm", "ml", ...)
    name: str = "provider"
    #: True when fields are exactly -dE/dS (conservative); False for driven (NEGF) providers
    conservative: bool = True

    def compute(self, spins) -> FieldResult:
        """Energy and fields for spins of shape ``[N, 3]`` or ``[B, N, 3]`` (validated: finite unit vectors)."""
        s, batched = as_spins(spins, self.lattice.N, device=self.device)
        res = self._compute(s)
        return res if batched else res.unbatch()

    __call__ = compute

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @abc.abstractmethod
    def _compute(self, spins: torch.Tensor) -> FieldResult:
        ...

    def describe(self) -> dict:
        """Parameters written to trajectories and datasets as attributes."""
        return {"provider": self.name, "lattice": self.lattice.kind, "L1": self.lattice.L1, "L2": self.lattice.L2}


def transverse(fields: torch.Tensor, spins: torch.Tensor) -> torch.Tensor:
    """Part of ``h_i`` perpendicular to ``S_i`` (the part that moves the spin)."""
    return fields - (fields * spins).sum(-1, keepdim=True) * spins
