"""The LLG run loop: batched replicas, a seed, observers every k steps, HDF5 output, checkpoint and resume.

    result = run_llg(provider, spins0, steps=1000, dt=0.05, alpha=0.5, kT=0.005, seed=1, every=10,
                     out="traj.h5", observers=[my_callback])

Each frame (every ``every`` steps, plus the first and the last) is written with its energy and fields, then
the integrator state is checkpointed in the same file, so ``resume=True`` continues a killed run exactly
(same random numbers) from its last frame. Observers are called as ``obs(step, time, spins, result)`` on
every frame and may return a dict of scalars shown on the progress bar.
"""
from __future__ import annotations

import time as _time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from ..electrons.base import FieldProvider
from ..errors import NearsightError, as_spins
from ..io import TrajectoryWriter
from .integrators import LLGState, make_integrator


@dataclass
class RunResult:
    spins: torch.Tensor                      # final spins [B, N, 3]
    times: list = field(default_factory=list)
    energies: list = field(default_factory=list)   # per frame, [B] arrays
    observations: list = field(default_factory=list)
    path: str | None = None
    wall_time: float = 0.0
    steps_done: int = 0


def make_generator(seed: int, device) -> torch.Generator:
    dev = torch.device(device)
    g = torch.Generator(device=dev.type if dev.type != "cpu" else "cpu")
    g.manual_seed(int(seed))
    return g


def run_llg(provider: FieldProvider, spins0, *, steps: int, dt: float, alpha: float, kT: float = 0.0,
            scheme: str = "heun", seed: int = 0, every: int = 10, out: str | None = None, observers=(),
            save_fields: bool = True, resume: bool = False, progress: bool | None = None,
            attrs: dict | None = None, stop_after: int | None = None) -> RunResult:
    """Integrate stochastic LLG for ``steps`` steps from ``spins0`` (``[N,3]`` or ``[B,N,3]`` replicas).

    ``stop_after`` ends the call after that many steps of this call, leaving a resumable partial file (used by
    tests to emulate an interruption).
    """
    if not isinstance(steps, (int, np.integer)) or steps < 0:
        raise NearsightError(f"steps must be an integer >= 0, got {steps!r}")
    if not isinstance(every, (int, np.integer)) or every < 1:
        raise NearsightError(f"every (frame interval) must be an integer >= 1, got {every!r}")
    integ = make_integrator(scheme, provider, dt, alpha, kT)
    s, _ = as_spins(spins0, provider.lattice.N, name="initial spins", device=provider.device)
    gen = make_generator(seed, provider.device)
    state = LLGState(s, 0.0, 0, gen)
    writer = None
    if out is not None:
        meta = {**provider.describe(), **integ.describe(), "seed": int(seed), "steps": int(steps),
                "every": int(every), "n_replicas": int(s.shape[0]), **(attrs or {})}
        writer = TrajectoryWriter(out, n_replicas=s.shape[0], n_sites=s.shape[1], attrs=meta,
                                  save_fields=save_fields, resume=resume)
        if resume:
            ck = writer.resume_state()
            gen.set_state(torch.as_tensor(ck["rng_state"], dtype=torch.uint8))
            state = LLGState(torch.as_tensor(ck["spins"], device=provider.device), ck["time"], ck["step"], gen)
    elif resume:
        raise NearsightError("resume needs the trajectory file: give --out PATH of the interrupted run")

    res = RunResult(spins=state.spins, path=out)
    show = progress if progress is not None else (steps - state.step) >= 200
    bar = tqdm(total=steps, initial=state.step, disable=not show, desc=f"LLG {integ.name}", unit="step")
    t0 = _time.perf_counter()
    first = state.step
    try:
        while True:
            result = provider.compute(state.spins)
            is_frame = state.step % every == 0 or state.step == steps
            if is_frame and not (resume and state.step == first and writer is not None):
                _record(res, writer, state, result, observers, bar)
            if state.step >= steps or (stop_after is not None and state.step - first >= stop_after):
                break
            state = integ.step(state, result)
            bar.update(1)
        res.spins, res.steps_done = state.spins, state.step - first
    finally:
        bar.close()
        res.wall_time = _time.perf_counter() - t0
        if writer is not None:
            if state.step >= steps and res.steps_done == state.step - first:
                res.path = writer.finish()
            else:
                writer.close()
    return res


def _record(res: RunResult, writer, state: LLGState, result, observers, bar) -> None:
    e = result.energy.detach().cpu().numpy()
    res.times.append(state.time)
    res.energies.append(e)
    obs = {}
    for ob in observers:
        out = ob(state.step, state.time, state.spins, result)
        if isinstance(out, dict):
            obs.update(out)
    res.observations.append(obs)
    if obs:
        bar.set_postfix({k: f"{v:.4g}" for k, v in obs.items() if np.isscalar(v)}, refresh=False)
    if writer is not None:
        fields = result.fields.detach().cpu().numpy() if "fields" in writer.f else None
        writer.append(state.step, state.time, state.spins.detach().cpu().numpy(), e, fields)
        writer.checkpoint(state.spins.detach().cpu().numpy(), state.generator.get_state().numpy(),
                          state.step, state.time)
