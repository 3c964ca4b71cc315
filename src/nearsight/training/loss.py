"""Loss and metrics. The target is the part of the field transverse to each spin — the part that drives LLG:

    loss = < |h_perp_pred - h_perp_ref|^2 >_sites  +  lambda(epoch) < ((E_pred - E_ref) / N)^2 >_frames

(fields in units of t, energies per site). ``lambda`` ramps linearly from ``start`` to ``end`` so the network first
learns the forces, then pins the energy. The reported figure of merit everywhere is the transverse-field RMS ratio
``RMS(h_perp_ML - h_perp_ref) / RMS(h_perp_ref)``: 1 for a zero-field predictor, 0 for a perfect one.
"""
from __future__ import annotations

import torch

from ..electrons.base import transverse


def transverse_sq_error(h_pred: torch.Tensor, h_ref: torch.Tensor, spins: torch.Tensor) -> torch.Tensor:
    """``|h_perp_pred - h_perp_ref|^2`` per site ``[B, N]`` (transverse is linear in the field)."""
    return transverse(h_pred - h_ref, spins).pow(2).sum(-1)


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
