"""Fitting a driven (generalized-potential) model, :mod:`nearsight.ml.driven`, to NEGF field labels.

Fields only (the potentials ``V``, ``W`` are fixed up to constants by their fields): the loss is the transverse-field
MSE of :mod:`.loss`, the optimizer and the cosine schedule are those of :mod:`.schedule`.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import NearsightError
from ..fields import transverse, transverse_rms_ratio
from ..ml.driven.model import GeneralizedPotentialModel
from .loss import transverse_sq_error
from .schedule import lr_at, make_optimizer


def fit_generalized(model: GeneralizedPotentialModel, spins, fields, bias, *, epochs: int = 100, lr: float = 3e-3,
                    batch_size: int = 16, seed: int = 0, lr_min_factor: float = 0.05, weight_decay: float = 0.0,
                    normalize: bool = True, progress: bool | None = None) -> dict:
    """Fit ``model`` to field labels with Adam on the transverse-field MSE (:mod:`.loss`), cosine lr decay
    (:mod:`.schedule`: from ``lr`` towards ``lr * lr_min_factor``, which it would reach one epoch after the last).

    ``spins``, ``fields``: ``[M, N, 3]`` (only the part of ``fields`` transverse to the spins is used); ``bias``: a
    number or ``[M]``. ``normalize`` first standardizes the inputs on these configurations and sets the output
    scale to the RMS transverse label. Returns ``{"loss": [per epoch], "transverse_rms_ratio": final}`` (on the
    training set; the caller holds data out).
    """
    S = torch.as_tensor(np.asarray(spins) if not isinstance(spins, torch.Tensor) else spins)
    H = torch.as_tensor(np.asarray(fields) if not isinstance(fields, torch.Tensor) else fields)
    S, H = S.to(model.dtype), H.to(model.dtype)
    if S.dim() != 3 or H.shape != S.shape:
        raise NearsightError(f"spins and fields must both be [M, N, 3] arrays of the same shape, got "
                             f"{tuple(S.shape)} and {tuple(H.shape)}")
    _, b, _ = model._check(S, bias)
    if not (isinstance(epochs, int) and epochs >= 0 and isinstance(batch_size, int) and batch_size >= 1):
        raise NearsightError(f"epochs must be an integer >= 0 and batch_size >= 1, got {epochs!r}, {batch_size!r}")
    if not (lr > 0 and math.isfinite(lr)):
        raise NearsightError(f"lr must be a positive number, got {lr!r}")
    ref = float(transverse(H, S).pow(2).sum(-1).mean()) ** 0.5
    if normalize:
        model.set_normalization(S, b, scale=ref if ref > 0 else 1.0)
    gen = torch.Generator().manual_seed(int(seed))
    # the schedule of train.py's cosine, stretched by one epoch: the lr of the last epoch stays above the floor
    sched = {"optimizer": "adam", "lr": lr, "weight_decay": weight_decay, "lr_schedule": "cosine",
             "lr_min_factor": lr_min_factor, "warmup_epochs": 0, "epochs": epochs + 1}
    opt = make_optimizer(sched, model.parameters())
    history = []
    M = S.shape[0]
    model.train()
    bar = tqdm(range(epochs), desc="fit generalized", unit="epoch",
               disable=not (progress if progress is not None else epochs * M >= 20000))
    for epoch in bar:
        for grp in opt.param_groups:
            grp["lr"] = lr_at(sched, epoch)
        order, total = torch.randperm(M, generator=gen), 0.0
        for k in range(0, M, batch_size):
            idx = order[k:k + batch_size]
            h = model.fields(S[idx], b[idx], create_graph=True)
            loss = transverse_sq_error(h, H[idx], S[idx]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        history.append(total / M)
        bar.set_postfix(loss=f"{history[-1]:.3g}", refresh=False)
    bar.close()
    model.eval()
    pred = torch.cat([model.fields(S[k:k + 64], b[k:k + 64]) for k in range(0, M, 64)])
    ratio = transverse_rms_ratio(pred, H, S) if ref > 0 else float("nan")
    return {"loss": history, "transverse_rms_ratio": ratio}
