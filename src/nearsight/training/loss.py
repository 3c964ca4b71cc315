"""Loss and metrics. The target is the part of the field transverse to each spin — the part that drives LLG.

The training loss (:func:`frame_loss`) is normalized per frame the way the figure of merit is:

    L_field  = sum_b w_b r_b / sum_b w_b,   r_b = sum_i |h_perp_pred - h_perp_ref|^2 / max(sum_i |h_perp_ref|^2, floor_b)
    L_energy = < ((E_pred - E_ref) / N)^2 >_frames / energy_scale^2
    loss     = L_field + lambda(epoch) L_energy

``r_b`` is the squared transverse ratio of frame ``b`` (the metric's per-frame form), so every frame counts by its
relative error however large its fields; ``floor_b = loss_floor * N * <|h_perp_ref|^2>`` (the training set's mean
per site) guards frames whose reference field nearly vanishes. ``w_b`` weights kinds of frames (config
``weight_disordered``). ``energy_scale`` (per site, in t) makes the energy term dimensionless like the field term:
by default the spread (std) of the training energies per site, so ``L_energy = 1`` is a model that knows only the
mean. Both terms and the energy's share of the loss are logged per epoch. :func:`loss_terms` is the older,
unnormalized per-site MSE (kept for reference and tests). ``lambda`` ramps linearly from ``start`` to ``end`` so the
network first learns the forces, then pins the energy.

A mu-conditioned model (labels over a window of mu) adds the electron count ``N = -dOmega/dmu`` and, optionally,
the local counts ``n_i = -d eps_i/dmu`` against the labels' ``n_electrons`` and ``site_density``:

    L_count   = < ((N_pred - N_ref) / N)^2 >_frames / count_scale^2            (weight lambda_count)
    L_density = < (n_i,pred - n_i,ref)^2 >_sites / density_scale^2            (weight lambda_density)

With ``count_loss: mu`` each frame's count term is weighted by ``(c0 / c_b)^2`` (at most ``count_weight_max``),
``c_b`` the label's compressibility ``dN/dmu`` per site and ``c0`` its median (:func:`count_weights`): the term becomes the error of
``mu`` the count error implies, ``dmu = dN / (dN/dmu)`` — what the canonical solve turns a count error into —
so frames of small compressibility (an ordered Néel background) weigh more.

``count_scale`` / ``density_scale`` default to the spread (std) of the training counts per site / site densities,
so 1 is a model that knows only the mean. The reported figure of merit everywhere is the transverse-field RMS ratio
``RMS(h_perp_ML - h_perp_ref) / RMS(h_perp_ref)``: 1 for a zero-field predictor, 0 for a perfect one.
"""
from __future__ import annotations

import torch

from ..fields import transverse, transverse_sq_error


def transverse_norm_sq(h: torch.Tensor, spins: torch.Tensor) -> torch.Tensor:
    return transverse(h, spins).pow(2).sum(-1)


def energy_sq_error(e_pred: torch.Tensor, e_ref: torch.Tensor, n_sites: int) -> torch.Tensor:
    """``((E_pred - E_ref)/N)^2`` per frame ``[B]``."""
    return ((e_pred - e_ref) / n_sites).pow(2)


def loss_terms(h_pred, h_ref, e_pred, e_ref, spins, lam: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(total, field_mse, energy_mse)`` for one batch."""
    f = transverse_sq_error(h_pred, h_ref, spins).mean()
    e = energy_sq_error(e_pred, e_ref, spins.shape[-2]).mean()
    return f + lam * e, f, e


def frame_loss(h_pred, h_ref, e_pred, e_ref, spins, *, lam: float, floor_per_site: float, energy_scale: float,
               weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(total, L_field, L_energy)`` of the per-frame normalized loss (module docstring) for one batch ``[B, N, 3]``.

    ``floor_per_site`` is ``loss_floor * <|h_perp_ref|^2>_sites``; ``weights`` ``[B]`` (None: all 1)."""
    n = spins.shape[-2]
    err = transverse_sq_error(h_pred, h_ref, spins).sum(-1)                       # [B]
    ref = transverse_norm_sq(h_ref, spins).sum(-1).clamp_min(float(floor_per_site) * n)
    r = err / ref
    if weights is None:
        f = r.mean()
    else:
        w = weights.to(r.dtype)
        f = (w * r).sum() / w.sum()
    e = energy_sq_error(e_pred, e_ref, n).mean() / float(energy_scale) ** 2
    return f + lam * e, f, e


def count_loss(n_pred: torch.Tensor, n_ref: torch.Tensor, n_sites: int, count_scale: float,
               weights: torch.Tensor | None = None) -> torch.Tensor:
    """``L_count`` of one batch (module docstring): counts ``[B]``; ``weights [B]`` (``count_loss: mu``, from
    :func:`count_weights`) multiply each frame's term."""
    sq = ((n_pred - n_ref.to(n_pred.dtype)) / n_sites).pow(2)
    if weights is not None:
        sq = sq * weights.to(sq.dtype)
    return sq.mean() / float(count_scale) ** 2


def count_weights(sets, cap: float) -> list[torch.Tensor]:
    """Per-frame weights of the count term in the ``mu`` form, one tensor per frame set: ``min((c0 / c_b)^2, cap)``
    with ``c_b`` the label's compressibility per site ``dn_dmu / N`` and ``c0`` its median over all ``sets`` — so
    ``w_b (dN_b / N)^2 = (c0 dmu_b)^2``, the count error as the error of ``mu`` it implies (``dmu = dN / (dN/dmu)``),
    and a frame of median compressibility weighs 1 as in the ``count`` form. The cap keeps the few frames whose
    label ``mu`` sits in a gap of the spectrum (``N(mu)`` flat: ``c_b`` down to 1/30 of the median on the canonical
    data, a weight of 1000) from carrying the term."""
    c = [fs.dn_dmu / fs.lattice.N for fs in sets]
    flat = torch.cat(c)
    if not bool((flat > 0).all()) or not bool(torch.isfinite(flat).all()):
        raise ValueError("count weights need a positive finite dn_dmu on every frame")
    c0 = float(flat.median())
    return [(c0 / x).pow(2).clamp(max=float(cap)) for x in c]


def density_loss(ni_pred: torch.Tensor, ni_ref: torch.Tensor, density_scale: float) -> torch.Tensor:
    """``L_density`` of one batch (module docstring): site counts ``[B, N]``."""
    return (ni_pred - ni_ref.to(ni_pred.dtype)).pow(2).mean() / float(density_scale) ** 2


def ramp(epoch: int, start: float, end: float, ramp_epochs: int) -> float:
    """Linear ramp from ``start`` (epoch 0) to ``end`` (epoch ``ramp_epochs`` and later)."""
    if ramp_epochs <= 0:
        return float(end)
    x = min(1.0, epoch / ramp_epochs)
    return float(start + (end - start) * x)


class Accumulator:
    """Running sums for the RMS ratio and energy RMSE over many batches."""

    def __init__(self):
        self.err = self.ref = self.esq = 0.0
        self.sites = self.frames = 0

    def add(self, h_pred, h_ref, e_pred, e_ref, spins) -> None:
        with torch.no_grad():
            self.err += float(transverse_sq_error(h_pred, h_ref, spins).sum())
            self.ref += float(transverse_norm_sq(h_ref, spins).sum())
            self.esq += float(energy_sq_error(e_pred, e_ref, spins.shape[-2]).sum())
            self.sites += spins.shape[0] * spins.shape[1]
            self.frames += spins.shape[0]

    def result(self) -> dict:
        if not self.frames:
            return {"transverse_rms_ratio": float("nan"), "transverse_rmse": float("nan"),
                    "reference_transverse_rms": float("nan"), "energy_rmse_per_site": float("nan"), "n_frames": 0}
        return {"transverse_rms_ratio": (self.err / self.ref) ** 0.5 if self.ref > 0 else float("nan"),
                "transverse_rmse": (self.err / self.sites) ** 0.5,
                "reference_transverse_rms": (self.ref / self.sites) ** 0.5,
                "energy_rmse_per_site": (self.esq / self.frames) ** 0.5, "n_frames": self.frames}
