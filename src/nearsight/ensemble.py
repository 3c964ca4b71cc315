"""Electron statistics: Fermi function, chemical potential from the count, grand potential, free energy.

Grand canonical at ``mu, kT``: ``Omega = -kT sum_n ln(1 + exp(-(eps_n - mu)/kT))``; at ``kT = 0``
``Omega = sum_{eps_n < mu} (eps_n - mu)``.
Canonical at filling ``n`` (``N_e = round(n * 2N)``): ``mu`` solves ``sum_n f(eps_n) = N_e`` and the energy is
``F = Omega(mu) + mu N_e``; at ``kT = 0`` it is the sum of the lowest ``N_e`` levels.
The electron count is ``N(mu) = sum_n f(eps_n - mu) = -dOmega/dmu``; at fixed ``N_e`` the canonical free energy's
gradient in any parameter of ``H`` equals the grand potential's at the ``mu*`` where ``N(mu*) = N_e``, because
``dF/dmu = dOmega/dmu + N_e = 0`` there: canonical fields are grand-canonical fields at ``mu*``.
All functions act on the last axis and broadcast over leading (batch) axes; ``mu`` is a number or a tensor of the
leading shape (one chemical potential per configuration).
"""
from __future__ import annotations

import numpy as np
import torch


def fermi(eps, mu, kT: float):
    """Occupation ``1/(1+exp((eps-mu)/kT))``; at ``kT = 0`` a step (1/2 exactly at ``eps = mu``).

    ``eps`` a torch tensor (``mu`` a number or one per leading index), or a numpy array of real or complex energies
    (``mu`` a number; NEGF evaluates it on a contour in the upper half plane): there it is computed without
    overflow for any ``Re eps``, ``exp(-w)/(1 + exp(-w))`` where ``Re w > 0``, ``w = (eps - mu)/kT``."""
    if not isinstance(eps, torch.Tensor):
        if kT == 0:
            e = np.real(eps)
            return (e < mu).astype(np.float64) + 0.5 * (e == mu)
        w = (np.asarray(eps) - mu) / kT
        out = np.empty(np.shape(w), dtype=np.result_type(w, np.float64))
        pos = np.real(w) > 0
        e = np.exp(-w[pos])
        out[pos] = e / (1.0 + e)
        out[~pos] = 1.0 / (1.0 + np.exp(w[~pos]))
        return out
    mu = torch.as_tensor(mu, dtype=eps.dtype, device=eps.device)
    if mu.dim() > 0:
        mu = mu.unsqueeze(-1)
    if kT == 0:
        return (eps < mu).to(eps.dtype) + 0.5 * (eps == mu).to(eps.dtype)
    return torch.sigmoid(-(eps - mu) / kT)


def grand_potential(eps: torch.Tensor, mu, kT: float) -> torch.Tensor:
    mu = torch.as_tensor(mu, dtype=eps.dtype, device=eps.device)
    if mu.dim() > 0:
        mu = mu.unsqueeze(-1)
    if kT == 0:
        return torch.clamp(eps - mu, max=0.0).sum(-1)
    z = -(eps - mu) / kT
    return (-kT * torch.logaddexp(torch.zeros_like(z), z)).sum(-1)   # ln(1 + e^z), exact (softplus cuts at z > 20)


def electron_count(eps: torch.Tensor, mu, kT: float) -> torch.Tensor:
    """``N(mu) = sum_n f(eps_n; mu, kT)`` over the last axis (``= -dOmega/dmu``)."""
    return fermi(eps, mu, kT).sum(-1)


def solve_mu(eps: torch.Tensor, n_electrons: int, kT: float, tol: float = 1e-13, max_iter: int = 200
             ) -> torch.Tensor:
    """Chemical potential with ``sum_n f(eps_n; mu, kT) = N_e`` (bisection, vectorized over the batch).

    ``eps`` is ``[..., M]`` sorted or not. At ``kT = 0`` the midpoint between the ``N_e``-th and next level.
    """
    s, _ = torch.sort(eps, dim=-1)
    if kT == 0:
        return 0.5 * (s[..., n_electrons - 1] + s[..., n_electrons])
    lo = s[..., 0] - 50 * kT - 1.0
    hi = s[..., -1] + 50 * kT + 1.0
    for _ in range(max_iter):
        mid = 0.5 * (lo + hi)
        n = torch.sigmoid(-(s - mid.unsqueeze(-1)) / kT).sum(-1)
        too_many = n > n_electrons
        hi = torch.where(too_many, mid, hi)
        lo = torch.where(too_many, lo, mid)
        if float((hi - lo).max()) < tol:
            break
    return 0.5 * (lo + hi)


def occupations_and_energy(eps: torch.Tensor, *, kT: float, mu: float | None = None,
                           n_electrons: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Occupations ``f [..., M]``, electronic energy ``[...]`` and chemical potential ``[...]``.

    ``mu`` is a number or a tensor of the leading shape ``[...]`` (a chemical potential per configuration).

    Energy is ``Omega(mu)`` (grand canonical) or ``F = Omega(mu) + mu N_e`` (canonical). In both cases
    ``dE/dlambda = sum_n f_n d eps_n / dlambda`` (Hellmann-Feynman), which is what field providers use.
    At canonical ``kT = 0`` the lowest ``N_e`` levels are filled (eigenvalues must be sorted ascending).
    """
    if (mu is None) == (n_electrons is None):
        raise ValueError("give exactly one of mu or n_electrons")
    if mu is not None:
        mu_t = torch.as_tensor(mu, dtype=eps.dtype, device=eps.device).expand(eps.shape[:-1]).clone()
        return fermi(eps, mu_t, kT), grand_potential(eps, mu_t, kT), mu_t
    mu_t = solve_mu(eps, n_electrons, kT)
    if kT == 0:
        f = torch.zeros_like(eps)
        f[..., :n_electrons] = 1.0
        return f, eps[..., :n_electrons].sum(-1), mu_t
    return fermi(eps, mu_t, kT), grand_potential(eps, mu_t, kT) + mu_t * n_electrons, mu_t
