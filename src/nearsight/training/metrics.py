"""The one definition of the kinds of frames, and held-out errors split by kind.

A frame is **disordered** when it belongs to a quench from random spins (dataset attribute ``initial`` absent or
``'random'``) and its time is below ``split_time`` (config key, default 10: the early, disordered part of a
quench); every other frame — later quench frames and every frame of a run from an ordered start — is
**ordered**. ``nearsight validate`` (:mod:`nearsight.analysis.validate`) splits the same way (``--split-time``,
default 10); so do the held-out numbers on a model's card.

The figure of merit of every set is the pooled transverse RMS ratio
``sqrt(sum |h_perp_ML - h_perp_ref|^2 / sum |h_perp_ref|^2)`` over all sites of all its frames (1 for a
zero-field predictor).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..ml.canonical import count_slopes, energy_fields_count
from ..ml.network import energy_and_fields
from .loss import Accumulator

#: default split time of the disordered / ordered kinds (config key ``split_time``)
SPLIT_TIME = 10.0
KINDS = ("disordered", "ordered")


def ordered_start(attrs: dict) -> bool:
    """Whether a dataset's frames come from runs started in an ordered state (its attribute ``initial`` is set and
    not ``'random'``)."""
    return attrs.get("initial") not in (None, "random")


def disordered_mask(fs, split_time: float = SPLIT_TIME) -> np.ndarray:
    """``[F]`` bool: the frames of ``fs`` (a :class:`~.data.FrameSet`) that are disordered (module docstring)."""
    return (~np.asarray(fs.ordered_start, bool)) & (np.asarray(fs.time) < float(split_time))


def predict(models: dict, fs, device, dtype, chunk: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Energies ``[F]`` and fields ``[F, N, 3]`` (float64, CPU) of a model on every frame of ``fs``."""
    m = models[fs.lattice]
    es, hs = [], []
    for sl in torch.split(torch.arange(len(fs)), chunk):
        mu = None if getattr(fs, "mu", None) is None else fs.mu[sl].to(device)   # mu-conditioned: the frame's mu
        e, h = energy_and_fields(m, fs.spins[sl].to(device, dtype), mu=mu)
        es.append(e.double().cpu())
        hs.append(h.double().cpu())
    return torch.cat(es), torch.cat(hs)


def evaluate(models: dict, sets: list, device, dtype, split_time: float = SPLIT_TIME, *,
             keep: bool = False):
    """Errors of the pooled set and of its disordered / ordered frames: ``{"transverse_rms_ratio", ...,
    "disordered": {...}, "ordered": {...}}`` (a kind without frames has ``n_frames`` 0 and NaN ratios).
    With ``keep`` also the per-frame tuples ``(spins, h_ref, h_pred, time)`` for plots."""
    acc = {k: Accumulator() for k in ("all",) + KINDS}
    kept = []
    for fs in sets:
        e, h = predict(models, fs, device, dtype)
        dis = torch.as_tensor(disordered_mask(fs, split_time))
        acc["all"].add(h, fs.fields, e, fs.energy, fs.spins)
        for kind, m in (("disordered", dis), ("ordered", ~dis)):
            if bool(m.any()):
                acc[kind].add(h[m], fs.fields[m], e[m], fs.energy[m], fs.spins[m])
        if keep:
            kept.append((fs.spins, fs.fields, h, fs.time))
    res = acc["all"].result()
    res["n_trajectories"] = len({int(t) for fs in sets for t in fs.trajectory})
    for kind in KINDS:
        res[kind] = acc[kind].result()
    res["split_time"] = float(split_time)
    return (res, kept) if keep else res


def count_errors(models: dict, sets: list, device, dtype, *, slopes: bool = False, grid_points: int = 9,
                 slope_frames: int = 256) -> dict:
    """Count error of a mu-conditioned model on frames at their own mu: RMS of ``(N_pred - N_ref)/N`` and the
    largest ``|N_pred - N_ref|/N``; on frames whose labels carry ``dn_dmu``, also the RMS and largest ``mu`` error the
    count error implies, ``(N_pred - N_ref) / (dN/dmu)`` (``implied_mu_*``); with ``slopes`` also the smallest
    ``dN/dmu`` per site over ``grid_points`` values of mu spanning the window (``> 0`` everywhere: the canonical
    solve is well posed), met on every k-th frame, at most about ``slope_frames`` of them (``n_frames_slopes``; each
    costs ``grid_points`` second derivatives: on all 2852 frames of a wide message-passing model, most of an hour)."""
    sq, worst, frames, slope, n_slope = 0.0, 0.0, 0, math.inf, 0
    mu_sq, mu_worst, mu_frames = 0.0, 0.0, 0
    stride = max(1, math.ceil(sum(len(fs) for fs in sets) / max(1, slope_frames)))
    for fs in sets:
        m = models[fs.lattice]
        for sl in torch.split(torch.arange(len(fs)), 16):
            _, _, n, _ = energy_fields_count(m, fs.spins[sl].to(device, dtype), fs.mu[sl].to(device))
            d = (n.double().cpu() - fs.n_electrons[sl]) / fs.lattice.N
            sq, worst, frames = sq + float(d.pow(2).sum()), max(worst, float(d.abs().max())), frames + len(sl)
            if fs.dn_dmu is not None:          # the mu error the count error implies: dN / (dN/dmu)
                dmu = d * fs.lattice.N / fs.dn_dmu[sl]
                mu_sq, mu_worst = mu_sq + float(dmu.pow(2).sum()), max(mu_worst, float(dmu.abs().max()))
                mu_frames += len(sl)
            pick = sl[sl % stride == 0] if slopes else sl[:0]
            if len(pick):
                lo, hi = m.window
                grid = np.linspace(lo, hi, grid_points)
                slope = min(slope, float(count_slopes(m, fs.spins[pick].to(device, dtype), grid).min()) / fs.lattice.N)
                n_slope += len(pick)
    out = {"count_rmse_per_site": math.sqrt(sq / frames) if frames else float("nan"),
           "count_max_error_per_site": worst if frames else float("nan"), "n_frames": frames}
    if mu_frames:
        out.update(implied_mu_rmse=math.sqrt(mu_sq / mu_frames), implied_mu_max_error=mu_worst,
                   n_frames_with_dn_dmu=mu_frames)
    if slopes:
        out.update(min_dN_dmu_per_site=slope if n_slope else float("nan"), n_frames_slopes=n_slope)
    return out
