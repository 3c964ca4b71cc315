"""The LLG run loop when the state is split over ranks (replicas or strips), written to one trajectory file.

It is :func:`nearsight.dynamics.run.run_llg`'s loop (same frames, same checkpoint and resume semantics, the same
integrators) with three differences: every rank integrates its block of the state; on a frame the blocks are
gathered to rank 0, which writes them with the package's :class:`~nearsight.trajectory.TrajectoryWriter` (one file, the
layout every reader knows, so ``analyze`` sees one ensemble); the noise comes from a
:class:`~nearsight.distributed.noise.NoiseSource` whose generator states, gathered in global order, are the
checkpoint's ``rng_state`` (so a run resumes on any number of ranks for partition-independent noise).
"""
from __future__ import annotations

import time as _time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ..dynamics.integrators import LLGState
from ..fields import FieldProvider, FieldResult
from ..errors import NearsightError, as_spins
from ..trajectory import TrajectoryWriter
from .env import DistEnv, agree, broadcast_object, broadcast_tensor, gather_blocks
from .noise import NoiseSource, make_integrator


@dataclass
class Layout:
    """How the global state ``[B, N, 3]`` is split: ``local(full)`` this rank's block, ``gather(local)`` the full
    array on rank 0 (None elsewhere; collective), ``gather_energy(local [b])`` the full ``[B]`` on rank 0."""

    env: DistEnv
    B: int
    N: int
    local: Callable
    gather: Callable
    gather_energy: Callable
    noise_sizes: list | None        # streams per rank; None: every rank holds the same (replicated) streams
    describe: dict = field(default_factory=dict)


@dataclass
class DistributedRunResult:
    spins: torch.Tensor | None          # final spins [B, N, 3] on rank 0, None elsewhere
    local_spins: torch.Tensor           # this rank's block of them
    times: list = field(default_factory=list)      # rank 0: frame times
    energies: list = field(default_factory=list)   # rank 0: per frame, [B] arrays
    observations: list = field(default_factory=list)
    path: str | None = None
    wall_time: float = 0.0
    steps_done: int = 0


def run_distributed(provider: FieldProvider, layout: Layout, spins0, noise: NoiseSource, *, steps: int,
                    dt: float, alpha: float, kT: float, scheme: str, seed: int, every: int, out: str | None,
                    observers=(), save_fields: bool = True, resume: bool = False, attrs: dict | None = None,
                    stop_after: int | None = None, overwrite: bool = False) -> DistributedRunResult:
    """Integrate (see the module docstring). Collective: every rank calls it with the same arguments.
    ``overwrite`` replaces an existing ``out`` (the writer's policy, as in ``run_llg``)."""
    env = layout.env
    if not isinstance(steps, (int, np.integer)) or steps < 0:
        raise NearsightError(f"steps must be an integer >= 0, got {steps!r}")
    if not isinstance(every, (int, np.integer)) or every < 1:
        raise NearsightError(f"every (frame interval) must be an integer >= 1, got {every!r}")
    if resume and out is None:
        raise NearsightError("resume needs the trajectory file: give --out PATH of the interrupted run")
    integ = make_integrator(scheme, provider, dt, alpha, kT, env)
    s_full = None
    if env.is_main:
        s_full, _ = as_spins(spins0, layout.N, name="initial spins")
        if s_full.shape[0] != layout.B:
            raise NearsightError(f"initial spins hold {s_full.shape[0]} replicas, expected {layout.B}")
    writer, err, ck = None, None, None
    if env.is_main and out is not None:
        try:
            meta = {**provider.describe(), **integ.describe(), **layout.describe, "seed": int(seed),
                    "steps": int(steps), "every": int(every), "n_replicas": layout.B, **(attrs or {})}
            writer = TrajectoryWriter(out, n_replicas=layout.B, n_sites=layout.N, attrs=meta,
                                      save_fields=save_fields, resume=resume, overwrite=overwrite)
            if resume:
                _check_same_run(writer, meta)
                ck = writer.resume_state()
        except Exception as exc:                     # noqa: BLE001 - re-raised on every rank by agree()
            err = exc
    agree(env, err)
    first_time, first_step = 0.0, 0
    if resume:
        meta = broadcast_object(env, {"step": ck["step"], "time": ck["time"]} if env.is_main else None)
        first_step, first_time = int(meta["step"]), float(meta["time"])
        states = broadcast_tensor(env, torch.as_tensor(ck["rng_state"]) if env.is_main else None).cpu()
        noise.load(states.numpy())
        s_full = torch.as_tensor(ck["spins"]) if env.is_main else None
    s_full = broadcast_tensor(env, s_full if env.is_main else None).to(torch.float64)
    state = LLGState(layout.local(s_full).to(provider.device).contiguous(), first_time, first_step, noise)
    del s_full
    res = DistributedRunResult(spins=None, local_spins=state.spins, path=out)
    t0 = _time.perf_counter()
    try:
        while True:
            result = provider.compute(state.spins)
            is_frame = state.step % every == 0 or state.step == steps
            if is_frame and not (resume and state.step == first_step):
                _record(res, writer, layout, noise, state, result, observers, save_fields)
            if state.step >= steps or (stop_after is not None and state.step - first_step >= stop_after):
                break
            state = integ.step(state, result)
        res.local_spins, res.steps_done = state.spins, state.step - first_step
        res.spins = layout.gather(state.spins)
    finally:
        res.wall_time = _time.perf_counter() - t0
        if writer is not None:
            if state.step >= steps and res.steps_done == state.step - first_step:
                res.path = writer.finish()
            else:
                writer.close()
    return res


def _check_same_run(writer: TrajectoryWriter, meta: dict) -> None:
    """A resumed file must have been made with the same noise streams and decomposition-independent settings."""
    keys = ("noise_streams", "seed", "dt", "alpha", "kT_llg", "scheme", "n_replicas")
    old = {k: writer.f.attrs.get(k) for k in keys}
    for k, v in old.items():
        if v is None or k not in meta:
            continue
        v = v.decode() if isinstance(v, bytes) else (v.item() if hasattr(v, "item") else v)
        if v != meta[k]:
            raise NearsightError(f"cannot resume {writer.partial!r}: it was run with {k}={v!r}, this run has "
                                 f"{k}={meta[k]!r}; resume with the same settings")


def _record(res, writer, layout: Layout, noise: NoiseSource, state: LLGState, result: FieldResult, observers,
            save_fields: bool) -> None:
    env = layout.env
    spins = layout.gather(state.spins)
    fields = layout.gather(result.fields) if (save_fields or observers) else None
    energy = layout.gather_energy(result.energy)
    st = noise.states()
    states = st if layout.noise_sizes is None else gather_blocks(env, st, layout.noise_sizes, dim=0)
    if not env.is_main:
        return
    e = energy.detach().cpu().numpy()
    res.times.append(state.time)
    res.energies.append(e)
    obs = {}
    for ob in observers:
        o = ob(state.step, state.time, spins, FieldResult(energy, fields))
        if isinstance(o, dict):
            obs.update(o)
    res.observations.append(obs)
    if writer is not None:
        sp = spins.detach().cpu().numpy()
        writer.append(state.step, state.time, sp, e, fields.detach().cpu().numpy() if save_fields else None)
        writer.checkpoint(sp, states.cpu().numpy(), state.step, state.time)
