"""Exact diagonalization of the s-d model: energies and local exchange fields in float64.

For each configuration the ``2N x 2N`` Hamiltonian is diagonalized (batched ``torch.linalg.eigh``). With
occupations ``f_n`` (see :mod:`nearsight.ensemble`) the on-site density matrix is
``rho_i[s, s'] = <c+_is c_is'> = sum_n f_n conj(psi_n(i,s)) psi_n(i,s')`` and, by Hellmann-Feynman,

    h_i = -dE/dS_i = J <c+_i sigma c_i> + B,   <c+_i sigma^a c_i> = sum_ss' sigma^a_ss' rho_i[s, s'].

Every evaluation also returns, in ``FieldResult.extras`` (float64): the chemical potential ``mu [B]`` (the given one,
or in canonical mode the solved ``mu*`` with ``N(mu*) = N_e``), the electron count
``n_electrons [B] = sum_n f(eps_n - mu) = -dOmega/dmu`` and the local densities
``site_density [B, N] = n_i = sum_s <c+_is c_is>`` (``sum_i n_i = N``) and, at ``kT > 0``, the compressibility
``dn_dmu [B] = dN/dmu = sum_n f_n (1 - f_n) / kT`` at that ``mu`` (at fixed spins). :meth:`EDProvider.at_mu` evaluates
grand-canonically at a chemical potential per configuration, whatever the model's ensemble (labels over a window
of ``mu``; the canonical field is the grand-canonical one at ``mu*``).

Cost O(N^3) per configuration; everything is array operations (no loop over sites or states).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..ensemble import occupations_and_energy
from ..errors import NearsightError
from ..hamiltonian import PAULI, SDModel, dense_hamiltonian, hopping_matrix, zeeman_energy
from ..lattice import Lattice
from ..fields import FieldProvider, FieldResult

MAX_ED_SITES = 4096


class EDProvider(FieldProvider):
    """Exact-diagonalization field provider for the s-d model on a periodic lattice.

    ``FieldResult.extras`` always holds ``mu``, ``n_electrons`` and ``site_density`` (module docstring);
    ``observables=True`` adds the spin density ``m_i``, the eigenvalues and ``charge`` (the same ``n_i``).
    """

    name = "ed"

    def __init__(self, lattice: Lattice, model: SDModel, *, observables: bool = False, device: str | None = None):
        if lattice.N > MAX_ED_SITES:
            raise NearsightError(f"ED on {lattice.N} sites needs a {2 * lattice.N}^2 dense matrix; use "
                                 f"the kpm or ml solver for lattices above {MAX_ED_SITES} sites")
        self.lattice, self.model = lattice, model
        self.observables = observables
        self._device = torch.device(device or "cpu")
        self.n_electrons = model.n_electrons(lattice.N) if model.canonical else None
        self._T = hopping_matrix(lattice, model.t, model.t2).to(self._device)

    def describe(self) -> dict:
        return {**super().describe(), **{k: v for k, v in self.model.to_dict().items() if v is not None}}

    def diagonalize(self, spins: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        H = dense_hamiltonian(self.lattice, self.model, spins, self._T)
        return torch.linalg.eigh(H)

    def _compute(self, spins: torch.Tensor) -> FieldResult:
        return self._evaluate(spins, None)

    def at_mu(self, spins, mu) -> FieldResult:
        """Grand-canonical energy ``Omega(mu)`` (plus Zeeman), fields and extras at ``mu`` — a number or one value
        per configuration ``[B]`` — whatever the model's own ensemble (``kT`` and the rest are the model's)."""
        s, batched = self.spins_batch(spins)
        mu_t = torch.as_tensor(np.asarray(mu, dtype=np.float64), device=self.device)
        if mu_t.dim() > 1 or (mu_t.dim() == 1 and mu_t.shape[0] != s.shape[0]):
            raise NearsightError(f"mu must be one number or one per configuration ({s.shape[0]}), got shape "
                                 f"{tuple(mu_t.shape)}")
        if not all(math.isfinite(float(x)) for x in mu_t.reshape(-1)):
            raise NearsightError(f"mu must be finite, got {mu!r}")
        res = self._evaluate(s, mu_t.expand(s.shape[0]))
        return res if batched else res.unbatch()

    def _evaluate(self, spins: torch.Tensor, mu: torch.Tensor | None) -> FieldResult:
        m = self.model
        eps, V = self.diagonalize(spins)
        if mu is None:
            f, e_el, mu = occupations_and_energy(eps, kT=m.kT, mu=m.mu, n_electrons=self.n_electrons)
        else:
            f, e_el, mu = occupations_and_energy(eps, kT=m.kT, mu=mu)
        B, N = spins.shape[:2]
        W = V.view(B, N, 2, 2 * N)
        rho = torch.einsum("bisn,bitn->bist", W.conj(), W * f.to(W.dtype)[:, None, None, :])
        mag = torch.einsum("ast,bist->bia", PAULI.to(rho.device), rho).real
        Bv = torch.tensor(m.B, dtype=torch.float64, device=spins.device)
        fields = m.J * mag + Bv
        energy = e_el + zeeman_energy(m, spins)
        density = torch.diagonal(rho, dim1=-2, dim2=-1).sum(-1).real
        extras = {"mu": mu, "n_electrons": f.sum(-1), "site_density": density}
        if m.kT > 0:          # the compressibility dN/dmu = sum_n f_n (1 - f_n) / kT (a sum of deltas at kT = 0)
            extras["dn_dmu"] = (f * (1.0 - f)).sum(-1) / m.kT
        if self.observables:
            extras.update(charge=density, spin_density=mag, eigenvalues=eps)
        return FieldResult(energy, fields, extras)

    def dos(self, spins, energies: np.ndarray, broadening: float = 0.05) -> np.ndarray:
        """Density of states per site (Lorentzian broadening) averaged over the given configurations."""
        s, _ = self.spins_batch(spins)
        eps = torch.linalg.eigvalsh(dense_hamiltonian(self.lattice, self.model, s, self._T)).cpu().numpy()
        w = np.asarray(energies, dtype=np.float64)
        lor = broadening / np.pi / ((w[:, None] - eps.reshape(-1)[None, :]) ** 2 + broadening ** 2)
        return lor.sum(1) / (eps.shape[0] * self.lattice.N)
