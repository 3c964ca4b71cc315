"""The s-d (Kondo-lattice / double-exchange) model and its one-electron Hamiltonian.

    H(S) = - sum_<ij>,s t_ij (c+_is c_js + h.c.) - J sum_i S_i . (c+_i sigma c_i) - sum_i B . S_i

``t`` (nearest neighbour) is the unit of energy, ``t2`` an optional second-neighbour hopping, ``J`` the s-d
coupling and ``B`` a Zeeman field on the local spins (a c-number term in the energy). The one-electron basis
index is ``2*i + s`` (site ``i``, spin ``s`` = up, down), so H is a ``2N x 2N`` Hermitian matrix.

The electrons are either grand canonical (``mu``) or canonical (``filling n = N_e / (2N)``), at temperature
``kT >= 0``; see :mod:`nearsight.ensemble`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .errors import NearsightError, check_positive
from .lattice import Lattice

#: the Pauli matrices ``sigma^x, sigma^y, sigma^z`` ``[3, 2, 2]`` (the package's one copy; ``PAULI.numpy()`` for numpy)
PAULI = torch.tensor([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=torch.complex128)


def field_vector(value, name: str = "B") -> tuple[float, float, float]:
    """A Zeeman field as three finite floats, from a sequence or the text ``"BX,BY,BZ"`` (config files and the
    command line); otherwise one line naming ``name``."""
    v = value.split(",") if isinstance(value, str) else value
    try:
        out = tuple(float(x) for x in v)
    except (TypeError, ValueError):
        raise NearsightError(f"{name} must be three numbers BX,BY,BZ, got {value!r}") from None
    if len(out) != 3 or not all(math.isfinite(b) for b in out):
        raise NearsightError(f"{name} must be three finite numbers BX,BY,BZ, got {value!r}")
    return out


@dataclass(frozen=True)
class SDModel:
    """Parameters of the s-d model. Exactly one of ``mu`` (grand canonical) or ``filling`` (canonical)."""

    J: float
    t: float = 1.0
    t2: float = 0.0
    B: tuple = (0.0, 0.0, 0.0)
    kT: float = 0.0
    mu: float | None = None
    filling: float | None = None

    def __post_init__(self):
        for name in ("J", "t", "t2"):
            v = getattr(self, name)
            if not isinstance(v, (int, float, np.floating)) or not math.isfinite(v):
                raise NearsightError(f"{name} must be a finite number, got {v!r}")
            object.__setattr__(self, name, float(v))
        object.__setattr__(self, "B", field_vector(self.B))
        object.__setattr__(self, "kT", check_positive("kT", self.kT, allow_zero=True))
        if (self.mu is None) == (self.filling is None):
            raise NearsightError("give exactly one of mu (grand canonical) or filling (canonical, n = N_e/(2N))")
        if self.mu is not None:
            if not math.isfinite(float(self.mu)):
                raise NearsightError(f"mu must be finite, got {self.mu!r}")
            object.__setattr__(self, "mu", float(self.mu))
        if self.filling is not None:
            f = float(self.filling)
            if not (0.0 < f < 1.0):
                raise NearsightError(f"filling must lie in (0, 1) (n = N_e/(2N)), got {self.filling!r}")
            object.__setattr__(self, "filling", f)

    @property
    def canonical(self) -> bool:
        return self.filling is not None

    def n_electrons(self, n_sites: int) -> int:
        """``N_e = round(n * 2N)``; a clear error if it rounds to 0 or 2N."""
        ne = int(round(self.filling * 2 * n_sites))
        if not 0 < ne < 2 * n_sites:
            raise NearsightError(f"filling {self.filling} gives N_e = {ne} of {2 * n_sites} states; choose a "
                                 f"filling with 0 < N_e < 2N on this lattice")
        return ne

    def to_dict(self) -> dict:
        d = asdict(self)
        d["B"] = list(self.B)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SDModel":
        keys = ("J", "t", "t2", "B", "kT", "mu", "filling")
        return cls(**{k: d[k] for k in keys if k in d and d[k] is not None})


def hopping_matrix(lattice: Lattice, t: float = 1.0, t2: float = 0.0) -> torch.Tensor:
    """Real ``N x N`` hopping matrix ``-t`` on nearest, ``-t2`` on second neighbours (periodic images add)."""
    T = torch.zeros(lattice.N, lattice.N, dtype=torch.float64)
    for shell, amp in ((1, t), (2, t2)):
        if amp == 0.0:
            continue
        p = torch.as_tensor(lattice.hopping_pairs(shell))
        T.index_put_((p[:, 0], p[:, 1]), torch.full((len(p),), -amp, dtype=torch.float64), accumulate=True)
    return T


def exchange_blocks(spins: torch.Tensor, J: float) -> torch.Tensor:
    """On-site blocks ``-J S_i . sigma`` of shape ``[B, N, 2, 2]``."""
    return -J * torch.einsum("bia,ast->bist", spins.to(torch.complex128), PAULI.to(spins.device))


def dense_hamiltonian(lattice: Lattice, model: SDModel, spins: torch.Tensor, hopping: torch.Tensor | None = None
                      ) -> torch.Tensor:
    """Dense Hamiltonians ``[B, 2N, 2N]`` (complex128) for spins ``[B, N, 3]``; basis index ``2*i + s``."""
    N, B = lattice.N, spins.shape[0]
    T = hopping_matrix(lattice, model.t, model.t2) if hopping is None else hopping
    T = T.to(spins.device)
    H0 = torch.kron(T, torch.eye(2, dtype=torch.float64, device=spins.device)).to(torch.complex128)
    H = H0.unsqueeze(0).repeat(B, 1, 1)
    idx = torch.arange(N, device=spins.device)
    H5 = H.view(B, N, 2, N, 2)
    H5[:, idx, :, idx, :] += exchange_blocks(spins, model.J).permute(1, 0, 2, 3)
    return H


def zeeman_energy(model: SDModel, spins: torch.Tensor) -> torch.Tensor:
    """``-sum_i B . S_i`` per configuration ``[B]``."""
    Bv = torch.tensor(model.B, dtype=spins.dtype, device=spins.device)
    return -(spins @ Bv).sum(-1)
