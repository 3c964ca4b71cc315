"""Thermal noise whose numbers do not depend on how the work is split over ranks, and the integrators that use it.

The LLG noise ``xi`` (variance ``2 alpha kT / dt`` per component, :func:`nearsight.dynamics.llg.noise_field`) is
drawn from one of three sources, each reproducible from ``seed`` alone:

* :class:`GlobalNoise` — one generator seeded ``seed`` (exactly :func:`nearsight.dynamics.run.run_llg`'s), the
  full ``[B, N, 3]`` draw made on every rank and sliced to the rank's sites. A domain-decomposed run then equals
  ``run_llg`` with the undecomposed provider, noise included. Cost: ``3 B N`` normal numbers per step on every
  rank (tens of ms at 10^6 spins on one CPU core), the one part that does not shrink with more ranks.
* :class:`RowNoise` — one generator per lattice row ``y`` seeded from ``(seed, y)``; a rank draws only the rows
  it owns. Independent of the number of ranks (strips are unions of whole rows), scales, and resumes on any
  number of ranks; a different (equally valid) stream than ``run_llg``'s.
* :class:`ReplicaNoise` — one generator per replica ``r`` seeded from ``(seed, r)``: an ensemble spread over any
  number of ranks draws the same numbers as on one process.

Stream seeds come from ``numpy.random.SeedSequence([seed, kind, index])`` (well-separated 63-bit seeds).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..dynamics.integrators import SCHEMES, ImplicitMidpoint
from ..dynamics.llg import cayley_step, noise_field, rotation_vector
from ..errors import NearsightError
from .env import DistEnv, all_max

NOISE_MODES = ("global", "rows")
_ROW, _REPLICA = 1, 2


def stream_seed(seed: int, kind: int, index: int) -> int:
    """A 63-bit seed for stream ``index`` of family ``kind``, a function of ``(seed, kind, index)`` only."""
    return int(np.random.SeedSequence([int(seed), int(kind), int(index)]).generate_state(1, np.uint64)[0] >> 1)


def _generator(seed: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def _scale(alpha: float, kT: float, dt: float) -> float:
    return math.sqrt(2.0 * alpha * kT / dt)


class NoiseSource:
    """Standard normals for this rank's block of the state, and the generator states to checkpoint.

    ``states()`` is ``[K, S]`` uint8 (this rank's streams, in global order); the global checkpoint is the
    concatenation over ranks, which :meth:`load` slices back for any partition."""

    generators: list

    def field(self, spins: torch.Tensor, alpha: float, kT: float, dt: float) -> torch.Tensor | None:
        raise NotImplementedError

    def states(self) -> torch.Tensor:
        return torch.stack([g.get_state() for g in self.generators])

    def load(self, states) -> None:
        states = torch.as_tensor(np.asarray(states), dtype=torch.uint8)
        if states.dim() != 2 or states.shape[0] != self.n_streams:
            raise NearsightError(f"the checkpoint holds {tuple(states.shape)} generator states but this run needs "
                                 f"{self.n_streams} streams of its noise mode; resume with the settings of the run")
        for g, s in zip(self.generators, states[self.first:self.first + len(self.generators)]):
            g.set_state(s.clone())

    #: total number of streams (over all ranks) and the index of this rank's first
    n_streams: int = 1
    first: int = 0


class GlobalNoise(NoiseSource):
    """One generator (``run_llg``'s), full draw on every rank, sliced to ``sites`` (a slice of site indices)."""

    def __init__(self, seed: int, n_sites: int, sites: slice, device):
        self.generators = [_generator(seed, torch.device(device))]
        self.n_sites, self.sites = int(n_sites), sites

    def field(self, spins, alpha, kT, dt):
        B = spins.shape[0]
        xi = noise_field((B, self.n_sites, 3), alpha, kT, dt, self.generators[0], spins.dtype, spins.device)
        return None if xi is None else xi[:, self.sites]

    def states(self) -> torch.Tensor:            # identical on every rank: rank 0's is the checkpoint
        return super().states()

    def load(self, states) -> None:
        states = np.asarray(states)
        self.generators[0].set_state(torch.as_tensor(states.reshape(-1, states.shape[-1])[0], dtype=torch.uint8))


class RowNoise(NoiseSource):
    """One generator per lattice row; this rank draws rows ``y0 .. y1-1`` of ``L1`` sites each."""

    def __init__(self, seed: int, L1: int, L2: int, y0: int, y1: int, device):
        self.L1, self.n_streams, self.first = int(L1), int(L2), int(y0)
        self.generators = [_generator(stream_seed(seed, _ROW, y), torch.device(device)) for y in range(y0, y1)]

    def field(self, spins, alpha, kT, dt):
        if kT == 0 or alpha == 0:
            return None
        B = spins.shape[0]
        z = torch.cat([torch.randn((B, self.L1, 3), generator=g, dtype=spins.dtype, device=g.device)
                       for g in self.generators], 1)
        return z.to(spins.device) * _scale(alpha, kT, dt)


class ReplicaNoise(NoiseSource):
    """One generator per replica; this rank integrates replicas ``r0 .. r1-1`` of ``B`` in all."""

    def __init__(self, seed: int, B: int, r0: int, r1: int, device):
        self.n_streams, self.first = int(B), int(r0)
        self.generators = [_generator(stream_seed(seed, _REPLICA, r), torch.device(device)) for r in range(r0, r1)]

    def field(self, spins, alpha, kT, dt):
        if kT == 0 or alpha == 0:
            return None
        if spins.shape[0] != len(self.generators):
            raise NearsightError(f"{spins.shape[0]} replicas but {len(self.generators)} noise streams")
        z = torch.stack([torch.randn(spins.shape[1:], generator=g, dtype=spins.dtype, device=g.device)
                         for g in self.generators])
        return z.to(spins.device) * _scale(alpha, kT, dt)


def make_integrator(scheme: str, provider, dt: float, alpha: float, kT: float, env: DistEnv):
    """The package's integrator ``scheme`` (:data:`nearsight.dynamics.SCHEMES`), drawing its noise from the
    :class:`NoiseSource` held in ``state.generator``; the implicit midpoint rule stops on the largest change
    over all ranks, so every rank takes the same number of iterations (each one a collective field call)."""
    if scheme not in SCHEMES:
        raise NearsightError(f"unknown integrator scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    base = SCHEMES[scheme]
    ns = {"_noise": lambda self, state: state.generator.field(state.spins, self.alpha, self.kT, self.dt)}
    if base is ImplicitMidpoint:
        ns["_advance"] = lambda self, s, h, xi: _midpoint_advance(self, s, h, xi, env)
    cls = type(f"Distributed{base.__name__}", (base,), ns)
    return cls(provider, dt, alpha, kT)


def _midpoint_advance(self, s, h, xi, env: DistEnv):
    """:meth:`ImplicitMidpoint._advance` with the convergence test on the global maximum change."""
    a, dt = self.alpha, self.dt
    new = cayley_step(s, rotation_vector(s, self._add(h, xi), a), dt)
    err = float("inf")
    for _ in range(self.max_iter):
        mid = 0.5 * (s + new)
        A = rotation_vector(mid, self._add(self.fields(mid / mid.norm(dim=-1, keepdim=True)), xi), a)
        nxt = cayley_step(s, A, dt)
        err = all_max(env, float((nxt - new).abs().max()) if nxt.numel() else 0.0)
        new = nxt
        if err < self.tol:
            return new
    raise NearsightError(f"implicit midpoint did not converge in {self.max_iter} iterations (last change "
                         f"{err:.2e}); reduce dt or use scheme heun / sib")
