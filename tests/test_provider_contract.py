"""The provider contract (nearsight.testing) on the classical providers and on sums of providers, and proof that
it catches what it is meant to catch: each check fails on a provider built to break exactly that property."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nearsight import Lattice, SDModel
from nearsight.electrons import EDProvider
from nearsight.fields import FieldResult, SumProvider
from nearsight.electrons.classical import AnisotropyProvider, HeisenbergProvider
from nearsight.lattice import Strip
from nearsight.testing import ProviderContract


class TestHeisenbergContract(ProviderContract):
    """Triangular 6x6 Heisenberg, J_H = 0.7, B = 0: fields are sums of six neighbours (rounding ~1e-16); the
    field of a site sees its nearest neighbours only (radius 1)."""

    locality_radius = 1.0

    def make_provider(self):
        return HeisenbergProvider(Lattice("triangular", 6), J_H=0.7)


class TestHeisenbergOnStripContract(ProviderContract):
    """The same on a 5x4 strip (open along x): y translation, both mirrors, radius 1."""

    locality_radius = 1.0

    def make_provider(self):
        return HeisenbergProvider(_StripLattice(5, 4), J_H=0.7)


class TestSumProviderContract(ProviderContract):
    """ED (4x4 square, canonical) + Heisenberg: the sum of two contract-abiding providers is one (ED's
    tolerances; locality does not apply to the ED part)."""

    not_applicable = {"locality": "the ED part is an exact solver: every field depends on every spin"}

    def make_provider(self):
        lat = Lattice("square", 4)
        return SumProvider(EDProvider(lat, SDModel(J=2.0, filling=0.375, kT=0.05)), HeisenbergProvider(lat, J_H=0.3))


class TestAnisotropyContract(ProviderContract):
    """Single-ion anisotropy K (S.z)^2 on a 4x4 square lattice: on-site (radius 0); even in S."""

    locality_radius = 0.0
    not_applicable = {"global_rotation": "the easy axis z breaks spin-rotation symmetry (only rotations about z "
                                         "and the mirrors through it remain)"}

    def make_provider(self):
        return AnisotropyProvider(Lattice("square", 4), K=0.4)


class _StripLattice(Strip):
    """A strip with nearest-neighbour bonds (open x, periodic y) for the Heisenberg provider."""

    @property
    def bonds(self) -> np.ndarray:
        i = np.arange(self.N)
        x, y = i % self.Lx, i // self.Lx
        along = np.stack([i[x < self.Lx - 1], i[x < self.Lx - 1] + 1], 1)
        across = np.stack([i, x + self.Lx * ((y + 1) % self.Ly)], 1)
        return np.concatenate([along, across])


# ------------------------------------------------------------------------------- the contract catches breakage
class _Broken(HeisenbergProvider):
    """Heisenberg plus one deliberate defect."""

    def __init__(self, lattice, defect):
        super().__init__(lattice, J_H=0.7)
        self.defect = defect

    def _compute(self, spins):
        r = super()._compute(spins)
        e, h = r.energy, r.fields
        if self.defect == "fields_scaled":            # h != -dE/dS
            h = 1.001 * h
        elif self.defect == "zeeman":                 # breaks global rotations
            h = h + torch.tensor([0.0, 0.0, 0.2], dtype=h.dtype)
            e = e - 0.2 * spins[..., 2].sum(-1)
        elif self.defect == "pinned_site":            # breaks translations
            h = h.clone()
            h[:, 0, 2] += 0.3
            e = e - 0.3 * spins[:, 0, 2]
        elif self.defect == "long_range":             # couples site 0 to the farthest site
            far = int(np.argmax(self.lattice.distances_from(0)))
            h = h.clone()
            h[:, 0] += 0.1 * spins[:, far]
            h[:, far] += 0.1 * spins[:, 0]
            e = e - 0.1 * (spins[:, 0] * spins[:, far]).sum(-1)
        elif self.defect == "batch_mixing":           # configurations leak into each other
            h = h + 1e-3 * h.mean(0, keepdim=True)
        return FieldResult(e, h)


@pytest.mark.parametrize("defect,check", [("fields_scaled", "test_contract_gradient"),
                                          ("zeeman", "test_contract_global_rotation"),
                                          ("zeeman", "test_contract_time_reversal"),
                                          ("pinned_site", "test_contract_lattice_symmetry"),
                                          ("long_range", "test_contract_locality"),
                                          ("batch_mixing", "test_contract_batched_equals_unbatched")])
def test_each_check_fails_on_a_provider_that_breaks_it(defect, check):
    class Contract(ProviderContract):
        locality_radius = 1.0

        def make_provider(self):
            return _Broken(Lattice("square", 6), defect)

    with pytest.raises(AssertionError):
        getattr(Contract(), check)()
