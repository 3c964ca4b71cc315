"""Domain walls in a strip: profile, position and velocity.

For a 180° wall along ``x`` between two domains along ``axis`` (default ``z``), with ``m(x)`` the column average of
``S . axis`` (over ``y``), the wall position is ``X = sum_x (1 + s m(x))/2 - 1/2`` with ``s = +1`` when the left
domain points along ``+axis`` (``s = -1`` otherwise, taken from the sign of ``m(0) - m(Lx-1)`` of the first frame):
the number of columns in the left domain, less one half, so a sharp wall between columns ``k`` and ``k+1`` sits at
``X = k + 1/2`` and a smooth one at the centre of its profile. It moves continuously as spins turn.
"""
from __future__ import annotations

import numpy as np

from ..errors import NearsightError


def wall_profile(spins, Lx: int, Ly: int, axis=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Column-averaged ``S . axis``: ``[..., Lx]`` for spins ``[..., Lx*Ly, 3]`` (site ``i = x + Lx*y``)."""
    s = np.asarray(spins, dtype=np.float64)
    if s.shape[-2:] != (Lx * Ly, 3):
        raise NearsightError(f"spins have shape {s.shape}; expected [..., {Lx * Ly}, 3] for a {Lx}x{Ly} strip")
    n = np.asarray(axis, dtype=np.float64)
    n = n / np.linalg.norm(n)
    return (s @ n).reshape(s.shape[:-2] + (Ly, Lx)).mean(-2)


def wall_position(spins, Lx: int, Ly: int, axis=(0.0, 0.0, 1.0), sign: int | None = None) -> np.ndarray:
    """Wall position ``X`` (in lattice units, see the module docstring): ``[...]`` for spins ``[..., N, 3]``."""
    m = wall_profile(spins, Lx, Ly, axis)
    if sign is None:
        first = m.reshape(-1, Lx)[0]
        sign = 1 if first[0] >= first[-1] else -1
    return ((1.0 + sign * m) / 2.0).sum(-1) - 0.5


def wall_velocity(times, positions) -> tuple[float, float]:
    """Least-squares slope ``dX/dt`` and its standard error from ``X(t)`` (at least 3 points)."""
    t = np.asarray(times, dtype=np.float64)
    X = np.asarray(positions, dtype=np.float64)
    if t.ndim != 1 or X.shape != t.shape or len(t) < 3:
        raise NearsightError(f"wall_velocity needs matching 1-D times and positions with >= 3 points, got "
                             f"{t.shape} and {X.shape}")
    A = np.stack([t, np.ones_like(t)], 1)
    coef, *_ = np.linalg.lstsq(A, X, rcond=None)
    resid = X - A @ coef
    dof = len(t) - 2
    var = (resid @ resid) / dof / ((t - t.mean()) @ (t - t.mean())) if dof > 0 else np.nan
    return float(coef[0]), float(np.sqrt(var))
