"""Integrators for stochastic LLG. Each is a small object: ``step(state, result) -> state`` where ``result``
is the provider's output at ``state.spins`` (the run loop computes it once and also records it).

* :class:`Heun` — stochastic Heun (predictor-corrector, Stratonovich), spins renormalized after each step.
  Weak/strong order 2 in ``dt`` for deterministic runs; 2 field evaluations per step.
* :class:`SemiImplicitMidpoint` — the semi-implicit scheme "SIB" of Mentink, Tretyakov, Fasolino, Katsnelson
  & Rasing, J. Phys.: Condens. Matter 22, 176001 (2010): two Cayley (midpoint) rotations, the second with the
  field at the predicted midpoint. Norm-preserving by construction, order 2, 2 evaluations per step.
* :class:`ImplicitMidpoint` — the fully implicit midpoint rule ``S' = S + dt f((S+S')/2)`` solved by fixed-point
  iteration to ``tol``. Norm-preserving and, at ``alpha = 0, kT = 0``, free of secular energy drift; costs 2–6
  evaluations per step. A step that does not converge raises instead of returning a wrong spin.

The noise ``xi`` of a step is drawn once and held fixed through all its stages (Stratonovich).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..fields import FieldProvider, FieldResult
from ..errors import NearsightError
from .llg import cayley_step, check_llg_params, llg_rhs, noise_field, rotation_vector


@dataclass
class LLGState:
    """Explicit integrator state: spins ``[B, N, 3]``, time, step count, and the random generator."""

    spins: torch.Tensor
    time: float
    step: int
    generator: torch.Generator


def _normalize(s: torch.Tensor) -> torch.Tensor:
    return s / s.norm(dim=-1, keepdim=True)


class Integrator:
    name = "base"

    def __init__(self, provider: FieldProvider, dt: float, alpha: float, kT: float = 0.0):
        self.dt, self.alpha, self.kT = check_llg_params(dt, alpha, kT)
        self.provider = provider

    def fields(self, spins: torch.Tensor) -> torch.Tensor:
        return self.provider.compute(spins).fields

    def _noise(self, state: LLGState) -> torch.Tensor | None:
        s = state.spins
        return noise_field(s.shape, self.alpha, self.kT, self.dt, state.generator, s.dtype, s.device)

    @staticmethod
    def _add(h: torch.Tensor, xi: torch.Tensor | None) -> torch.Tensor:
        return h if xi is None else h + xi

    def step(self, state: LLGState, result: FieldResult | None = None) -> LLGState:
        if result is None:
            result = self.provider.compute(state.spins)
        new = self._advance(state.spins, result.fields, self._noise(state))
        return LLGState(new, state.time + self.dt, state.step + 1, state.generator)

    def _advance(self, s, h, xi):  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict:
        return {"scheme": self.name, "dt": self.dt, "alpha": self.alpha, "kT_llg": self.kT}


class Heun(Integrator):
    """Stochastic Heun with renormalization (see module docstring)."""

    name = "heun"

    def _advance(self, s, h, xi):
        a, dt = self.alpha, self.dt
        k1 = llg_rhs(s, self._add(h, xi), a)
        sp = _normalize(s + dt * k1)
        k2 = llg_rhs(sp, self._add(self.fields(sp), xi), a)
        return _normalize(s + 0.5 * dt * (k1 + k2))


class SemiImplicitMidpoint(Integrator):
    """Mentink et al. (2010) semi-implicit midpoint scheme SIB (see module docstring)."""

    name = "sib"

    def _advance(self, s, h, xi):
        a, dt = self.alpha, self.dt
        sp = cayley_step(s, rotation_vector(s, self._add(h, xi), a), dt)
        mid = 0.5 * (s + sp)
        return cayley_step(s, rotation_vector(mid, self._add(self.fields(_normalize(mid)), xi), a), dt)


class ImplicitMidpoint(Integrator):
    """Implicit midpoint rule by fixed-point iteration (see module docstring)."""

    name = "midpoint"

    def __init__(self, provider, dt, alpha, kT=0.0, *, tol: float = 1e-12, max_iter: int = 50):
        super().__init__(provider, dt, alpha, kT)
        self.tol, self.max_iter = tol, max_iter

    def _advance(self, s, h, xi):
        a, dt = self.alpha, self.dt
        new = cayley_step(s, rotation_vector(s, self._add(h, xi), a), dt)
        for _ in range(self.max_iter):
            mid = 0.5 * (s + new)
            # the field is a function of unit spins: evaluate it on the normalized midpoint
            A = rotation_vector(mid, self._add(self.fields(_normalize(mid)), xi), a)
            nxt = cayley_step(s, A, dt)
            err = float((nxt - new).abs().max())
            new = nxt
            if err < self.tol:
                return new
        raise NearsightError(f"implicit midpoint did not converge in {self.max_iter} iterations (last change "
                             f"{err:.2e}); reduce dt or use --scheme heun / sib")


SCHEMES = {"heun": Heun, "sib": SemiImplicitMidpoint, "midpoint": ImplicitMidpoint}


def make_integrator(scheme: str, provider: FieldProvider, dt: float, alpha: float, kT: float = 0.0
                    ) -> Integrator:
    if scheme not in SCHEMES:
        raise NearsightError(f"unknown integrator scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    return SCHEMES[scheme](provider, dt, alpha, kT)
