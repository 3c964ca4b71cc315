"""Growth laws ``L(t) = A t^a``: least-squares exponent over a window, bootstrap confidence intervals across
replicas, and the local slope ``d ln L / d ln t``.

The ensemble's ``L(t)`` is a function of the replicas (e.g. the length of the replica-averaged structure factor);
:func:`bootstrap_growth` takes that function, ``estimator(indices) -> L [F]``, resamples the replicas with
replacement ``n_boot`` times and refits, so the interval holds the replica-to-replica scatter including its
correlation across times (frames of one run are not independent, and a per-point regression error would ignore
that).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import NearsightError


def fit_power_law(t, L, window=None) -> tuple[float, float]:
    """Least-squares ``ln L = a ln t + ln A`` over ``window = (t_lo, t_hi)`` (inclusive): ``(a, A)``."""
    t, L = np.asarray(t, dtype=np.float64), np.asarray(L, dtype=np.float64)
    sel = window_mask(t, window) & (L > 0) & np.isfinite(L)
    if sel.sum() < 3:
        raise NearsightError(f"the fit window {window} holds {int(sel.sum())} usable frames; at least 3 are needed "
                             f"(widen the window or record frames more often)")
    a, lnA = np.polyfit(np.log(t[sel]), np.log(L[sel]), 1)
    return float(a), float(np.exp(lnA))


def window_mask(t, window) -> np.ndarray:
    t = np.asarray(t, dtype=np.float64)
    lo, hi = (-np.inf, np.inf) if window is None else (float(window[0]), float(window[1]))
    if not lo < hi:
        raise NearsightError(f"fit window must be (t_lo, t_hi) with t_lo < t_hi, got {window}")
    return (t > 0) & (t >= lo) & (t <= hi)


def local_slope(t, L) -> np.ndarray:
    """``d ln L / d ln t`` at each frame with ``t > 0`` (second-order differences on the log grid), NaN at ``t = 0``."""
    t, L = np.asarray(t, dtype=np.float64), np.asarray(L, dtype=np.float64)
    out = np.full(L.shape, np.nan)
    ok = (t > 0) & (L > 0)
    if ok.sum() >= 3:
        out[..., ok] = np.gradient(np.log(L[..., ok]), np.log(t[ok]), axis=-1)
    return out


def auto_window(t, L, system_length: float, *, max_fraction: float = 0.25, span: float = 8.0,
                t_min: float = 0.0) -> tuple[float, float]:
    """A default fit window: up to the last time with ``L < max_fraction * system_length`` (beyond it the finite
    lattice bends the curve), down to ``t_hi / span`` (and not before ``t_min``, the end of the transient)."""
    t, L = np.asarray(t, dtype=np.float64), np.asarray(L, dtype=np.float64)
    ok = (t > 0) & (L < max_fraction * system_length)
    if not ok.any():
        raise NearsightError(f"L(t) is above {max_fraction} of the system size ({system_length:g}) at every frame: "
                             f"no fit window free of finite-size effects; use a larger lattice")
    hi = float(t[ok].max())
    lo = max(hi / float(span), float(t_min), float(t[t > 0].min()))
    if lo >= hi:
        lo = float(t[t > 0].min())
    return lo, hi


@dataclass
class GrowthFit:
    exponent: float
    ci_low: float
    ci_high: float
    amplitude: float
    window: tuple
    n_frames: int
    n_replicas: int
    n_boot: int
    boot_std: float
    method: str

    def as_dict(self) -> dict:
        d = asdict(self)
        d["window"] = list(self.window)
        return d

    def text(self) -> str:
        return (f"a = {self.exponent:.3f}  (95% CI {self.ci_low:.3f} .. {self.ci_high:.3f}, {self.method}), "
                f"window t = {self.window[0]:.4g} .. {self.window[1]:.4g} ({self.n_frames} frames)")


def bootstrap_growth(t, estimator, n_replicas: int, window=None, *, n_boot: int = 1000, seed: int = 0,
                     level: float = 0.95) -> tuple[GrowthFit, np.ndarray]:
    """Fit ``L(t) = estimator(all replicas)`` over ``window`` and bootstrap the exponent across replicas.

    Returns the fit and the bootstrap local slopes ``[n_boot, F]`` (for a band on the local-slope plot). With a
    single replica there is nothing to resample: the interval is the regression's ±1.96 standard errors (frames
    treated as independent, which understates it) and ``method`` says so.
    """
    t = np.asarray(t, dtype=np.float64)
    idx = np.arange(int(n_replicas))
    L = np.asarray(estimator(idx), dtype=np.float64)
    a, A = fit_power_law(t, L, window)
    sel = window_mask(t, window) & (L > 0)
    alpha = (1 - level) / 2
    if n_replicas < 2 or n_boot < 2:
        x, y = np.log(t[sel]), np.log(L[sel])
        res = y - (a * x + np.log(A))
        se = float(np.sqrt(res @ res / max(len(x) - 2, 1) / ((x - x.mean()) @ (x - x.mean()))))
        z = 1.959963984540054
        fit = GrowthFit(a, a - z * se, a + z * se, A, tuple(window or (t[sel][0], t[sel][-1])), int(sel.sum()),
                        int(n_replicas), 0, se, "regression standard error (one replica: no bootstrap)")
        return fit, np.empty((0, len(t)))
    rng = np.random.default_rng(seed)
    boots, slopes = np.empty(n_boot), np.empty((n_boot, len(t)))
    for k in range(n_boot):
        Lb = np.asarray(estimator(rng.integers(0, n_replicas, n_replicas)), dtype=np.float64)
        boots[k] = fit_power_law(t, Lb, window)[0]
        slopes[k] = local_slope(t, Lb)
    lo, hi = np.quantile(boots, [alpha, 1 - alpha])
    fit = GrowthFit(a, float(lo), float(hi), A, tuple(window or (t[sel][0], t[sel][-1])), int(sel.sum()),
                    int(n_replicas), int(n_boot), float(boots.std(ddof=1)),
                    f"percentile bootstrap over {n_replicas} replicas")
    return fit, slopes
