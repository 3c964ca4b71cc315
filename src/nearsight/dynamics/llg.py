"""The stochastic Landau-Lifshitz-Gilbert equation (docs/conventions.md), Landau-Lifshitz form, gyromagnetic ratio 1:

    dS_i/dt = -1/(1+alpha^2) [ S_i x H_i + alpha S_i x (S_i x H_i) ],   H_i = h_i + xi_i,

with Gaussian white noise ``<xi_ia(t) xi_jb(t')> = 2 alpha kT delta_ij delta_ab delta(t-t')`` in the
Stratonovich sense, so that the stationary distribution is ``exp(-E/kT)`` (Brown 1963; checked by a test).
Precession is right-handed about ``h``; damping turns ``S`` toward ``h``.

Written as ``dS/dt = S x A`` with ``A = -(H + alpha S x H)/(1+alpha^2)``, which makes norm-preserving
(Cayley / midpoint) updates simple: see :func:`cayley_step`.
"""
from __future__ import annotations

import math

import torch

from ..errors import NearsightError, check_positive


def rotation_vector(spins: torch.Tensor, H: torch.Tensor, alpha: float) -> torch.Tensor:
    """``A`` such that ``dS/dt = S x A`` is the LLG right-hand side."""
    return -(H + alpha * torch.cross(spins, H, dim=-1)) / (1.0 + alpha * alpha)


def llg_rhs(spins: torch.Tensor, H: torch.Tensor, alpha: float) -> torch.Tensor:
    """``dS/dt = -1/(1+alpha^2) [S x H + alpha S x (S x H)]``."""
    sxh = torch.cross(spins, H, dim=-1)
    return -(sxh + alpha * torch.cross(spins, sxh, dim=-1)) / (1.0 + alpha * alpha)


def cayley_step(spins: torch.Tensor, A: torch.Tensor, dt: float) -> torch.Tensor:
    """Solve ``x - S = dt ((x + S)/2) x A`` for ``x`` exactly (a rotation of ``S`` about ``A``; ``|x| = |S|``).

    With ``a = dt A / 2``: ``x = [(1 - a^2) S + 2 S x a + 2 (a.S) a] / (1 + a^2)``.
    """
    a = 0.5 * dt * A
    a2 = (a * a).sum(-1, keepdim=True)
    aS = (a * spins).sum(-1, keepdim=True)
    return ((1 - a2) * spins + 2 * torch.cross(spins, a, dim=-1) + 2 * aS * a) / (1 + a2)


def check_llg_params(dt: float, alpha: float, kT: float) -> tuple[float, float, float]:
    dt = check_positive("dt", dt)
    alpha = check_positive("alpha", alpha, allow_zero=True)
    kT = check_positive("kT (LLG bath temperature)", kT, allow_zero=True)
    if kT > 0 and alpha == 0:
        raise NearsightError("alpha = 0 with kT > 0 is not a valid Langevin run (the noise strength is "
                             "2 alpha kT); give alpha > 0 or set kT = 0")
    return dt, alpha, kT


def noise_field(shape, alpha: float, kT: float, dt: float, generator: torch.Generator, dtype, device
                ) -> torch.Tensor | None:
    """One step's thermal field ``xi`` with variance ``2 alpha kT / dt`` per component (None at kT = 0)."""
    if kT == 0 or alpha == 0:
        return None
    z = torch.randn(shape, generator=generator, dtype=dtype, device=generator.device)
    return z.to(device) * math.sqrt(2.0 * alpha * kT / dt)
