"""Descriptor caching for BP training (config ``cache_descriptors: auto | true | false``).

The descriptor of a training frame is fixed (only the MLP learns), so per frame we store its features
``x [N, F]`` and their Jacobian with respect to the two tangent directions of every spin within the receptive
radius, ``J[i, k, a, f] = d x_{i f} / d t_{a}(i + o_k)`` (stored ``[N, 2K, F]``: each contraction is one batched
matrix-vector product over contiguous rows) (``o_k``: the ``K`` offsets with ``|o_k| <= cutoff``,
the centre included; ``t_a``: an orthonormal tangent basis ``e_1, e_2`` of each spin). A step is then the MLP
forward/backward on ``x`` and two contractions with ``J``:

    g = dE/dx [B, N, F]  (MLP),     h_perp(j) = - sum_a e_a(j) sum_k sum_f J[j - o_k, k, a, f] g[j - o_k, f]

and back-propagation through the contraction (``J`` times the field residual). The transverse field is exact
(the radial part, which the loss and the metric ignore, is not formed); a test checks it against the autograd
path to float tolerance. The Jacobian is built once by forward-mode differentiation (``torch.func.jvp``), ``2N``
tangents per batch of frames.

**Memory** (``memory_bytes``): ``N F K 2`` numbers per frame, e.g. 12x12 square, cutoff 5 (K = 81, F = 341),
float32: 31.8 MB per frame, 300 GB for the 9.4k training frames of ``square-double-exchange``. **Speed**
(measured with ``benchmarks/bench_training.py``, one CPU thread, batch 8 of 12x12, cutoff 5, 64-64, float32):
the two contractions read the whole ``J`` of the batch (254 MB) and take ~100 ms against 18.5 ms for the
recomputed descriptor step — caching is slower on a CPU, where the step is memory-bound. ``auto`` therefore caches
only on CUDA devices and only when the estimate fits in ``cache_memory_gb`` (default: half of the free device
memory); ``true`` forces it (tests, small sets), ``false`` never caches.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import NearsightError


def offsets(desc) -> np.ndarray:
    """``[K, 2]`` integer offsets of the receptive disk of a descriptor, the centre first."""
    o, _ = desc.lattice.offsets_within(desc.cutoff)
    return np.concatenate([np.zeros((1, 2), np.int64), np.asarray(o, np.int64)])


def memory_bytes(desc, n_frames: int, dtype: torch.dtype) -> int:
    """Bytes of the cache (features + Jacobian + tangent basis) for ``n_frames`` frames of ``desc``'s lattice."""
    N, F, K = desc.lattice.N, int(desc.n_features), len(offsets(desc))
    item = torch.empty((), dtype=dtype).element_size()
    return int(n_frames) * N * (F * K * 2 + F + 6) * item


def tangent_basis(spins: torch.Tensor) -> torch.Tensor:
    """``[..., N, 2, 3]`` orthonormal tangent vectors ``e_1, e_2`` of every spin (``e_2 = S x e_1``)."""
    s = spins / spins.norm(dim=-1, keepdim=True)
    ref = torch.zeros_like(s)
    use_x = s[..., 2].abs() > 0.9
    ref[..., 0] = use_x.to(s.dtype)
    ref[..., 2] = (~use_x).to(s.dtype)
    e1 = torch.linalg.cross(s, ref, dim=-1)
    e1 = e1 / e1.norm(dim=-1, keepdim=True)
    return torch.stack([e1, torch.linalg.cross(s, e1, dim=-1)], dim=-2)


class JacobianCache:
    """Features, Jacobian and tangent basis of the frames of one :class:`FrameSet` (on ``device``)."""

    def __init__(self, desc, spins: torch.Tensor, dtype: torch.dtype, device, chunk: int = 8):
        lat = desc.lattice
        self.desc, self.N = desc, lat.N
        o = offsets(desc)
        self.K = len(o)
        # src[j, k]: the site i = j - o_k whose features see spin j at offset o_k
        self.src = torch.as_tensor(np.stack([lat.shift((-int(a), -int(b))) for a, b in o], 1), device=device)
        xs, js, bs = [], [], []
        for part in torch.split(spins, chunk):
            s = part.to(device, dtype)
            x, J, basis = self._build(s)
            xs.append(x)
            js.append(J)
            bs.append(basis)
        self.x, self.J, self.basis = torch.cat(xs), torch.cat(js), torch.cat(bs)

    @torch.no_grad()
    def _build(self, s: torch.Tensor):
        from torch.func import jvp
        d, N, K = self.desc, self.N, self.K
        basis = tangent_basis(s)                                                    # [B, N, 2, 3]
        x = d(s)                                                                    # [B, N, F]
        J = torch.zeros(s.shape[0], N, K, 2, x.shape[-1], dtype=s.dtype, device=s.device)
        ks = torch.arange(K, device=s.device)
        for j in range(N):
            for a in range(2):
                t = torch.zeros_like(s)
                t[:, j] = basis[:, j, a]
                _, dx = jvp(d, (s,), (t,))                                          # [B, N, F]
                rows = self.src[j]                                                  # [K] sites that see j
                Ja = J.select(3, a)                                                 # [B, N, K, F] view
                Ja[:, rows, ks] = dx[:, rows]
        return x, J.reshape(s.shape[0], N, 2 * K, x.shape[-1]), basis

    def fields(self, head, idx, create_graph: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Energy ``[B]`` (float64) and transverse fields ``[B, N, 3]`` of ``head`` on cached frames ``idx``."""
        x = self.x[idx].detach().requires_grad_(True)
        J, basis = self.J[idx], self.basis[idx]
        with torch.enable_grad():
            fl = head.fluctuation(x)                                                # [B, N]
            (g,) = torch.autograd.grad(fl.sum(), x, create_graph=create_graph)      # dE/dx
            T = torch.matmul(J, g.unsqueeze(-1)).reshape(g.shape[0], self.N, self.K, 2)   # [B, N(i), K, 2]
            ks = torch.arange(self.K, device=T.device)
            h_tan = -T[:, self.src, ks].sum(2)                                      # [B, N(j), 2]
            h = (h_tan.unsqueeze(-1) * basis).sum(-2)                               # [B, N, 3]
        e = fl.to(torch.float64).sum(-1) + self.N * head.e_ref.to(torch.float64)
        return e, h


def resolve(c: dict, family, data, dtype) -> bool:
    """Whether to cache (``cache_descriptors``), with a clear error when ``true`` cannot be honoured."""
    mode = c["cache_descriptors"]
    if mode is False or mode == "false":
        return False
    if not family.cacheable:
        if mode is True or mode == "true":
            raise NearsightError(f"cache_descriptors: true is for family bp (fixed descriptors); family "
                                 f"{c['family']!r} learns its features — set cache_descriptors: auto or false")
        return False
    need = sum(memory_bytes(family.descs[fs.lattice], len(fs), dtype) for fs in data.train)
    if mode is True or mode == "true":
        return True
    device = torch.device(c["device"])
    if device.type != "cuda":
        return False            # measured slower than recomputing on a CPU (module docstring)
    if c.get("cache_memory_gb") is not None:
        budget = float(c["cache_memory_gb"]) * 1e9
    else:
        free, _ = torch.cuda.mem_get_info(device)
        budget = 0.5 * free
    return need <= budget


def estimate(c: dict, family, data, dtype) -> float:
    """Estimated cache size in GB (reported in the card and the log)."""
    if not family.cacheable:
        return 0.0
    return sum(memory_bytes(family.descs[fs.lattice], len(fs), dtype) for fs in data.train) / 1e9
