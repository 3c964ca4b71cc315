"""The one definition of the kinds of frames, and held-out errors split by kind.

A frame is **disordered** when it belongs to a quench from random spins (dataset attribute ``initial`` absent or
``'random'``) and its time is below ``split_time`` (config key, default 10: the early, disordered part of a
quench); every other frame — later quench frames and every frame of a run from an ordered start — is
**ordered**. ``examples/validate_model.py`` splits the same way (``--split-time``, default 10).

The figure of merit of every set is the pooled transverse RMS ratio
``sqrt(sum |h_perp_ML - h_perp_ref|^2 / sum |h_perp_ref|^2)`` over all sites of all its frames (1 for a
zero-field predictor).
"""
from __future__ import annotations

import numpy as np
import torch

from ..ml.network import energy_and_fields
from .loss import Accumulator

#: default split time of the disordered / ordered kinds (config key ``split_time``)
SPLIT_TIME = 10.0
KINDS = ("disordered", "ordered")


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
