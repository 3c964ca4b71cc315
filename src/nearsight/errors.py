"""One error type for bad input, and the checks every entry point shares.

Every message names the offending parameter and says how to fix it; the CLI prints it as one line.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch


class NearsightError(ValueError):
    """Bad input or an unusable file: the message names the parameter and the fix."""

    exit_code = 2


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise NearsightError(f"{name} must be a number, got {value!r}") from None
    ok = (v >= 0) if allow_zero else (v > 0)
    if not math.isfinite(v) or not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise NearsightError(f"{name} must be finite and {bound}, got {value!r}")
    return v


def as_spins(spins, n_sites: int, *, name: str = "spins", tol: float = 1e-6,
             dtype=torch.float64, device=None) -> tuple[torch.Tensor, bool]:
    """Validate a spin array of shape [N,3] or [B,N,3] and return ([B,N,3] tensor, was_batched).

    Spins must be finite unit vectors; this is where non-unit or NaN spins are rejected before any
    solver sees them.
    """
    if isinstance(spins, np.ndarray):
        s = torch.from_numpy(np.ascontiguousarray(spins))
    elif isinstance(spins, torch.Tensor):
        s = spins
    else:
        try:
            s = torch.as_tensor(np.asarray(spins, dtype=np.float64))
        except (TypeError, ValueError):
            raise NearsightError(f"{name} must be a numeric array of shape [N,3] or [B,N,3]") from None
    if s.is_complex() or not (s.is_floating_point() or s.dtype in (torch.int32, torch.int64)):
        raise NearsightError(f"{name} must be a real array of shape [N,3] or [B,N,3], got dtype {s.dtype}")
    batched = s.dim() == 3
    if s.dim() not in (2, 3) or s.shape[-1] != 3 or s.shape[-2] != n_sites:
        raise NearsightError(
            f"{name} has shape {tuple(s.shape)}; expected [{n_sites}, 3] (or [B, {n_sites}, 3]) "
            f"for this lattice of {n_sites} sites")
    s = s.to(dtype=dtype, device=device)
    if not bool(torch.isfinite(s).all()):
        raise NearsightError(f"{name} contains NaN or inf; pass finite unit vectors")
    norms = s.norm(dim=-1)
    err = float((norms - 1).abs().max()) if s.numel() else 0.0
    if err > tol:
        raise NearsightError(
            f"{name} are not unit vectors (max | |S|-1 | = {err:.3g}); normalize them, e.g. S / |S|")
    if not batched:
        s = s.unsqueeze(0)
    return s, batched


class WriteFailed(NearsightError):
    """Writing an output failed (full disk, quota, I/O error): the run stopped and its partial file stays
    resumable; the message says which file, at which step, and why."""

    exit_code = 1


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by SIGINT at a safe point, after writing a consistent checkpoint (the message says the step
    and how to resume). A ``KeyboardInterrupt``, so code that does not expect it is not fooled into going on."""

    exit_code = 130


class NearsightWarning(UserWarning):
    """A setting that runs but is likely wrong (unstable time step, truncation error, deprecated spelling)."""


def warn(message: str) -> None:
    warnings.warn(message, NearsightWarning, stacklevel=2)


def check_device(device) -> "torch.device | None":
    """``device`` as a ``torch.device`` usable by this torch build, or one line naming the fix (None: CPU)."""
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise NearsightError(f"--device {device!r} is not a torch device; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.backends.cuda.is_built():
            raise NearsightError(f"--device {device} needs a CUDA build of torch, but this is torch "
                                 f"{torch.__version__} (CPU only); install the CUDA build (README, Install) or use "
                                 f"--device cpu")
        if not torch.cuda.is_available():
            raise NearsightError(f"--device {device}: torch sees no CUDA GPU (driver missing or "
                                 f"CUDA_VISIBLE_DEVICES empty); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise NearsightError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) visible")
    elif dev.type not in ("cpu", "cuda"):
        raise NearsightError(f"--device {device!r}: nearsight runs on cpu or cuda")
    return dev
