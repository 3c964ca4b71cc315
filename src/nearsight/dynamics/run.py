"""The LLG run loop: batched replicas, a seed, observers every k steps, HDF5 output, checkpoint and resume.

    result = run_llg(provider, spins0, steps=1000, dt=0.05, alpha=0.5, kT=0.005, seed=1, every=10,
                     out="traj.h5", observers=[my_callback])

Each frame (every ``every`` steps, plus the first and the last) is written with its energy and fields, then the
integrator state is checkpointed (:class:`~nearsight.trajectory.TrajectoryWriter`: atomic, verified on resume), so
``resume=True`` continues a killed run exactly (same random numbers) from its last checkpoint; the run's
parameters must be the file's. SIGINT (Ctrl-C) stops the loop at the next step boundary, after a checkpoint of
that exact state, with :class:`~nearsight.errors.RunInterrupted` (a second Ctrl-C stops at once; the last
checkpoint stays valid). Observers are called as ``obs(step, time, spins, result)`` on every frame and may return
a dict of scalars shown on the progress bar.
"""
from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time as _time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from ..fields import FieldProvider
from ..errors import NearsightError, RunInterrupted, as_spins, warn
from ..trajectory import TrajectoryWriter, n_frames_of, read_trajectory, settings_mismatch
from .integrators import LLGState, make_integrator

MAX_ROTATION = 1.0     # radians per step of the fastest spin beyond which a stability warning is given


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


@contextmanager
def sigint_flag():
    """While active, SIGINT sets ``flag['hits']`` instead of raising, so the loop stops where the state is
    consistent; a second SIGINT raises ``KeyboardInterrupt`` at once. A no-op outside the main thread."""
    flag = {"hits": 0}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        flag["hits"] += 1
        if flag["hits"] > 1:
            raise KeyboardInterrupt
        print("\nnearsight: interrupt: stopping after this step (Ctrl-C again to stop at once)", file=sys.stderr)

    old = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, old)


def run_llg(provider: FieldProvider, spins0, *, steps: int, dt: float, alpha: float, kT: float = 0.0,
            scheme: str = "heun", seed: int = 0, every: int = 10, out: str | None = None, observers=(),
            save_fields: bool = True, resume: bool = False, progress: bool | None = None,
            attrs: dict | None = None, stop_after: int | None = None, overwrite: bool = False,
            reuse: bool = False) -> RunResult:
    """Integrate stochastic LLG for ``steps`` steps from ``spins0`` (``[N,3]`` or ``[B,N,3]`` replicas).

    ``stop_after`` ends the call after that many steps of this call with a checkpoint, leaving a resumable
    partial file (used by tests to emulate an interruption). ``overwrite`` replaces an existing ``out``.
    ``reuse``: a finished ``out`` made with exactly these settings (provider, integrator, seed, steps, initial
    spins' count, ``attrs``) is returned as it is (``steps_done`` 0, ``spins`` its last frame); one made with
    other settings is refused, naming the first difference.
    """
    for name, v, lo in (("steps", steps, 0), ("every (frame interval)", every, 1), ("seed", seed, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise NearsightError(f"{name} must be an integer >= {lo}, got {v!r}")
    integ = make_integrator(scheme, provider, dt, alpha, kT)
    s, _ = as_spins(spins0, provider.lattice.N, name="initial spins", device=provider.device)
    if s.shape[0] < 1:
        raise NearsightError("initial spins hold no replica; give at least one (--replicas >= 1)")
    if resume and out is None:
        raise NearsightError("resume needs the trajectory file: give --out PATH of the interrupted run")
    gen = make_generator(seed, provider.device)
    state = LLGState(s, 0.0, 0, gen)
    with sigint_flag() as flag:
        writer = None
        if out is not None:
            meta = {**provider.describe(), **integ.describe(), "seed": int(seed), "steps": int(steps),
                    "every": int(every), "n_replicas": int(s.shape[0]), "save_fields": bool(save_fields),
                    **(attrs or {})}
            if reuse and not overwrite and os.path.exists(out):
                return _reused(out, meta, provider.device)
            writer = TrajectoryWriter(out, n_replicas=s.shape[0], n_sites=s.shape[1], attrs=meta,
                                      save_fields=save_fields, resume=resume, overwrite=overwrite,
                                      n_frames=n_frames_of(steps, every))
            if resume and writer.complete:             # killed between marking it complete and the rename
                res = RunResult(spins=torch.as_tensor(writer.f["spins"][-1], device=provider.device), path=out)
                res.path = writer.finish()
                return res
            if resume and writer.fresh:          # nothing had been committed: this is a start from step 0
                resume = False
            if resume:
                ck = writer.resume_state()
                gen.set_state(torch.as_tensor(ck["rng_state"], dtype=torch.uint8))
                state = LLGState(torch.as_tensor(ck["spins"], device=provider.device), ck["time"], ck["step"], gen)
                provider.set_warm_state(ck["provider_state"])     # the solve starts where it did: bit for bit
        return _loop(provider, integ, state, writer, steps, every, observers, progress, stop_after, flag, out)


def _reused(out: str, meta: dict, device) -> RunResult:
    """The finished run ``out`` if it was made with the settings ``meta``; else a one-line refusal."""
    arrays, old = read_trajectory(out)
    diff = settings_mismatch(old, meta)
    if diff:
        raise NearsightError(f"{out!r} is a finished run with other settings ({diff}); delete it or choose another "
                             f"output to run these settings")
    return RunResult(spins=torch.as_tensor(arrays["spins"][-1], device=device), path=out)


def _loop(provider, integ, state, writer, steps, every, observers, progress, stop_after, flag, out) -> RunResult:
    res = RunResult(spins=state.spins, path=out)
    first = state.step
    written = writer.n_frames if writer is not None else state.step // every + (state.step % every != 0)
    show = progress if progress is not None else (steps - state.step) >= 200
    bar = tqdm(total=steps, initial=state.step, disable=not show, desc=f"LLG {integ.name}", unit="step")
    t0 = _time.perf_counter()
    finished = False
    try:
        while True:
            warm = provider.warm_state() if writer is not None else None   # what this evaluation starts from
            result = provider.compute(state.spins)
            if state.step == first:
                _check_stability(result, state.spins, integ)
            is_frame = state.step % every == 0 or state.step == steps
            if is_frame and written == _frame_index(state.step, steps, every):
                _record(res, writer, state, result, observers, bar, warm)
                written += 1
            if state.step >= steps:
                finished = True
                break
            if flag["hits"] or (stop_after is not None and state.step - first >= stop_after):
                if writer is not None:
                    writer.checkpoint(state.spins.detach().cpu().numpy(), state.generator.get_state().numpy(),
                                      state.step, state.time, warm)
                if flag["hits"]:
                    raise RunInterrupted(f"interrupted at step {state.step} of {steps}" + (
                        f"; resume with --resume ({writer.partial!r} holds the run)" if writer is not None else ""))
                break
            state = integ.step(state, result)
            bar.update(1)
        res.spins, res.steps_done = state.spins, state.step - first
    finally:
        bar.close()
        res.wall_time = _time.perf_counter() - t0
        if writer is not None:
            if finished:
                res.path = writer.finish()
            else:
                writer.close()
    return res


def _frame_index(step: int, steps: int, every: int) -> int:
    return step // every if step % every == 0 else step // every + 1


def _check_stability(result, spins: torch.Tensor, integ) -> None:
    """Warn once when the fastest spin would turn by more than :data:`MAX_ROTATION` radians in one step."""
    h = result.fields.detach()
    ht = h - (h * spins).sum(-1, keepdim=True) * spins
    rate = float(ht.norm(dim=-1).max()) / math.sqrt(1.0 + integ.alpha ** 2) if h.numel() else 0.0
    if integ.dt * rate > MAX_ROTATION:
        warn(f"dt = {integ.dt:g} turns the fastest spin by {integ.dt * rate:.3g} rad per step (transverse field "
             f"{rate * math.sqrt(1 + integ.alpha ** 2):.3g}); above {MAX_ROTATION:g} rad the {integ.name} scheme is "
             f"inaccurate or unstable: use dt <= {MAX_ROTATION / rate:.3g}")


def _record(res: RunResult, writer, state: LLGState, result, observers, bar, warm=None) -> None:
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
        spins = state.spins.detach().cpu().numpy()
        writer.append(state.step, state.time, spins, e, fields, extras=per_replica_numbers(result, e.shape))
        writer.checkpoint(spins, state.generator.get_state().numpy(), state.step, state.time, warm)


def per_replica_numbers(result, shape) -> dict:
    """The provider's extras that are one number per replica (e.g. ``mu`` and ``n_electrons``), as float64 arrays."""
    out = {}
    for k, v in result.extras.items():
        if isinstance(v, (torch.Tensor, np.ndarray)) and tuple(v.shape) == tuple(shape):
            a = v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v
            if np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer):
                out[k] = a.astype(np.float64)
    return out
