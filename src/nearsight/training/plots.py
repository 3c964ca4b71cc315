"""Plots of a training run: the learning curve (metrics.csv) and the held-out parity plot."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..io import atomic_path


def plot_learning_curve(history: list, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    if history:
        ep = [r["epoch"] for r in history]
        ax[0].semilogy(ep, [r["train_transverse_rms_ratio"] for r in history], label="train")
        ax[0].semilogy(ep, [r["val_transverse_rms_ratio"] for r in history], label="internal validation")
        ext = [r.get("ext_transverse_rms_ratio") for r in history]
        if any(v is not None for v in ext):
            ax[0].semilogy(ep, [np.nan if v is None else v for v in ext], label="external held out")
        ax[1].semilogy(ep, [r["train_energy_rmse_per_site"] for r in history], label="train")
        ax[1].semilogy(ep, [r["val_energy_rmse_per_site"] for r in history], label="internal validation")
    ax[0].axhline(1.0, color="gray", lw=0.8, ls="--", label="zero-field predictor")
    ax[0].set(xlabel="epoch", ylabel="RMS(h⊥ error) / RMS(h⊥)", title="transverse fields")
    ax[1].set(xlabel="epoch", ylabel="energy RMSE per site (t)", title="energy")
    for a in ax:
        a.legend(fontsize=8)
    fig.tight_layout()
    _savefig(fig, path)


def plot_parity(kept: list, path: Path, held: dict, max_points: int = 20000) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..fields import transverse
    ref = torch.cat([transverse(h_ref, s).reshape(-1) for s, h_ref, _, _ in kept]).numpy()
    pred = torch.cat([transverse(h, s).reshape(-1) for s, _, h, _ in kept]).numpy()
    if len(ref) > max_points:
        sel = np.random.default_rng(0).choice(len(ref), max_points, replace=False)
        ref, pred = ref[sel], pred[sel]
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.scatter(ref, pred, s=2, alpha=0.3)
    lim = float(np.abs(np.concatenate([ref, pred])).max()) * 1.05 if len(ref) else 1.0
    ax.plot([-lim, lim], [-lim, lim], "k-", lw=0.8)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="exact h⊥ component (t)", ylabel="ML h⊥ component (t)",
           title=f"held out: RMS ratio {held['transverse_rms_ratio']:.3f}")
    fig.tight_layout()
    _savefig(fig, path)


def _savefig(fig, path: Path) -> None:
    import matplotlib.pyplot as plt
    with atomic_path(str(path)) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
