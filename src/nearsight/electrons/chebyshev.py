"""The Chebyshev machinery of the kernel polynomial method (:mod:`nearsight.electrons.kpm`): spectral bounds of the
s-d Hamiltonian, kernel damping factors, the expansion coefficients of the grand potential and of the occupation,
and the matrix-free operator ``x = (H - b)/a`` applied to blocks of probe vectors.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.fft
import scipy.special
import torch

from ..hamiltonian import SDModel
from ..lattice import Lattice


# ------------------------------------------------------------------------------------------- spectral helpers
def hop_offsets(lattice: Lattice, t: float, t2: float) -> list[tuple[int, int, float]]:
    """Integer offsets ``(n1, n2)`` and amplitudes ``-t`` (shell 1), ``-t2`` (shell 2), as ``hopping_matrix``."""
    o, d = lattice.offsets_within(2.0)
    radii = np.unique(np.round(d, 9))
    out = []
    for shell, amp in ((1, t), (2, t2)):
        if amp != 0.0:
            sel = np.round(d, 9) == radii[shell - 1]
            out += [(int(n1), int(n2), -amp) for n1, n2 in o[sel]]
    return out


def hopping_spectrum(lattice: Lattice, t: float = 1.0, t2: float = 0.0) -> np.ndarray:
    """All eigenvalues of the (translation-invariant) hopping matrix, by a 2-D Fourier transform."""
    kern = np.zeros((lattice.L2, lattice.L1))
    for n1, n2, amp in hop_offsets(lattice, t, t2):
        kern[n2 % lattice.L2, n1 % lattice.L1] += amp
    return np.fft.fft2(kern).real.ravel()


def weyl_bounds(lattice: Lattice, model: SDModel) -> tuple[float, float]:
    """Rigorous spectral bounds for any unit spins: ``[min eps_T - |J|, max eps_T + |J|]`` (Weyl)."""
    e = hopping_spectrum(lattice, model.t, model.t2)
    return float(e.min()) - abs(model.J), float(e.max()) + abs(model.J)


def kernel_factors(kind: str, M: int, lorentz_lambda: float = 4.0) -> np.ndarray:
    """Damping factors ``g_n``, ``n = 0..M-1`` (Weisse et al., RMP 78, 275 (2006))."""
    n = np.arange(M)
    if kind == "jackson":
        q = np.pi / (M + 1)
        return ((M - n + 1) * np.cos(q * n) + np.sin(q * n) / np.tan(q)) / (M + 1)
    if kind == "lorentz":
        return np.sinh(lorentz_lambda * (1 - n / M)) / np.sinh(lorentz_lambda)
    return np.ones(M)


def chebyshev_coefficients(which: str, mu: np.ndarray, kT: float, a: float, b: float, M: int) -> np.ndarray:
    """Chebyshev coefficients ``[B, M]`` in ``x = (e - b)/a`` of the grand potential per level
    (``which='omega'``) or of the occupation (``which='count'``), at chemical potentials ``mu [B]``.

    ``kT = 0``: exact closed forms of the ramp ``a (x - m) theta(m - x)`` and step ``theta(m - x)``,
    ``m = (mu - b)/a``. ``kT > 0``: discrete cosine transform on Chebyshev nodes, with enough nodes that
    aliasing (``~exp(-pi K kT/a)``) is below round-off.
    """
    mu = np.atleast_1d(np.asarray(mu, dtype=np.float64))
    m = (mu - b) / a
    n = np.arange(M)
    if kT == 0:
        phi = np.arccos(np.clip(m, -1.0, 1.0))[:, None]

        def I(k):  # int_phi^pi cos(k theta) d theta, k >= 0
            k = np.asarray(k)
            safe = np.where(k == 0, 1, k)
            return np.where(k == 0, np.pi - phi, -np.sin(safe * phi) / safe)
        if which == "count":
            c = 2 * I(n) / np.pi
        else:
            c = a * (2 / np.pi) * (0.5 * (I(n + 1) + I(np.abs(n - 1))) - m[:, None] * I(n))
            c[:, 0] = a * (I(1)[:, 0] - m * I(0)[:, 0]) * (2 / np.pi)
        c[:, 0] *= 0.5
        return c
    K = int(2 ** math.ceil(math.log2(max(2 * M, 6 * a / kT + M, 1024))))
    K = min(K, 2 ** 18)
    th = np.pi * (np.arange(K) + 0.5) / K
    z = -(a * np.cos(th)[None, :] + b - mu[:, None]) / kT
    vals = scipy.special.expit(z) if which == "count" else -kT * np.logaddexp(0.0, z)
    c = scipy.fft.dct(vals, type=2, axis=-1)[:, :M] / K
    c[:, 0] *= 0.5
    return c


# ------------------------------------------------------------------------------------------- the operator
class Operator:
    """Matrix-free ``out += 2 x v``, ``x = (H - b)/a``, on probe blocks ``[B, X, 2, N, C]``.

    Internally the spin axis precedes the site axis (``[.., 2, N, C]``, the transpose of the public
    ``[B, N, 2, R]``), so every spin block is one contiguous ``[N, C]`` slab: all updates below are streaming,
    contiguous adds (measured 3-5x faster on CPU than with the spin axis inside). ``X`` stacks independent
    families of vectors (1 in the forward pass, ``alpha`` and ``lambda`` in the backward pass).
    Hopping: one slice-add per periodic piece of each neighbour offset (sites form an ``[L2, L1]`` grid,
    ``i = x + L1 y``), no index tables, no temporaries. On-site: the ``2x2`` blocks ``(-J S.sigma - b)/a``,
    diagonal ``A`` and spin-flip ``C``.
    """

    def __init__(self, lattice: Lattice, hops: list, onsite: torch.Tensor, a: float, b: float):
        L1, L2 = lattice.L1, lattice.L2
        self.L1, self.L2 = L1, L2
        self.pieces = []
        for n1, n2, amp in hops:
            c = 2.0 * amp / a
            for yd, ys in _wrap(n2 % L2, L2):
                for xd, xs in _wrap(n1 % L1, L1):
                    self.pieces.append((yd, xd, ys, xs, c))
        X = 2.0 * onsite / a                                                   # [B, N, 2, 2]
        B, N = X.shape[:2]
        self.A = (torch.diagonal(X, dim1=-2, dim2=-1) - 2.0 * b / a).transpose(1, 2).reshape(B, 1, 2, N, 1)
        self.C0 = X[..., 0, 1].reshape(B, 1, N, 1).contiguous()                # spin-down -> up
        self.C1 = X[..., 1, 0].reshape(B, 1, N, 1).contiguous()

    def add_2x(self, out: torch.Tensor, v: torch.Tensor) -> None:
        """``out += 2 x v`` in place (``out``, ``v`` contiguous ``[B, X, 2, N, C]``)."""
        B, X, _, N, C = v.shape
        o6 = out.view(B, X, 2, self.L2, self.L1, C)
        v6 = v.view(B, X, 2, self.L2, self.L1, C)
        for yd, xd, ys, xs, c in self.pieces:
            o6[:, :, :, yd, xd].add_(v6[:, :, :, ys, xs], alpha=c)
        out.addcmul_(self.A, v)
        out[:, :, 0].addcmul_(self.C0, v[:, :, 1])
        out[:, :, 1].addcmul_(self.C1, v[:, :, 0])


def _wrap(n: int, L: int):
    """Destination/source slices for ``dest[y] += src[(y + n) mod L]`` (one or two contiguous pieces)."""
    if n == 0:
        return [(slice(0, L), slice(0, L))]
    return [(slice(0, L - n), slice(n, L)), (slice(L - n, L), slice(0, n))]


def rdot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``Re sum conj(u) v`` per configuration ``[B]`` (one BLAS dot on the real views, no temporaries)."""
    B = u.shape[0]
    return torch.bmm(torch.view_as_real(u).reshape(B, 1, -1), torch.view_as_real(v).reshape(B, -1, 1)).view(B)
