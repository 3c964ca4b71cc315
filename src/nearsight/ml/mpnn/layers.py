"""One interaction layer of the spin-equivariant message-passing network.

Features come site-last (channel-major, like the BP descriptor's fast path): scalars ``s [B, 4, c, N]`` and
vectors ``v [B, 3, 4, c, N]`` (3 = spin components), so every elementwise product runs over the contiguous site
axis and every mixing is a matrix product ``[out, in] @ [B, in, N]``. The axis of size 4 is the label block (:data:`~.geometry.N_LABELS`): bit 0 = odd under ``S -> -S``, bit 1 = odd
under lattice mirrors. So the scalar blocks are the even scalars (``S.S'``), pseudoscalars (``S.(S' x S'')``) and
their mirror-odd partners; the vector blocks are axial vectors (``S x S'``, block 0) and polar vectors (``S``, block
1) and their mirror-odd partners. Every operation below maps labels to labels exactly:

1. **Aggregate.** Neighbour features are gathered (one ``index_select`` over the neighbour table), projected on the
   lattice harmonics of each irrep ``Gamma`` and mixed by weights per (copy, label block): ``U^Gamma, V^Gamma``
   (all irreps), ``W^Gamma`` and a linear term ``L^Gamma`` (``Gamma = A1, A2``). Weights never mix label blocks.
2. **Pair products** (body order 2): for each coupling ``Gamma1 x Gamma2 -> A1/A2``, channel by channel, for every
   pair of label blocks: ``s s``, ``s v``, ``v s``, ``v . v`` and ``v x v`` (dot, cross). The product of blocks
   ``b1, b2`` lands in block ``b1 ^ b2`` (``^ 2`` for an ``A2`` coupling). Mixed per block into ``P``.
3. **Triple products** (body order 3): ``P`` times ``W^{A1}`` / ``W^{A2}`` the same way — e.g. ``S_i . (S_j x
   S_k)`` from an ``E x E -> A2`` cross product dotted with the site's own spin (``d = 0`` is in every ``A1``
   aggregate).
4. **Update.** ``[L^{A1}, L^{A2}, P, T]`` mixed per block, then gated: the even ``A1`` scalars pass a smooth
   activation and give sigmoid gates for every other block (odd scalars times an even gate stay odd; vectors stay
   vectors); added to the input (residual). The last layer (``final``) updates only the even ``A1`` scalars, the
   only features the site energy reads.

Products are formed for all 16 pairs of blocks at once (outer products over the block axis, no gathers); the mixing
weights are stored per output block and expanded into a block-sparse matrix each call (a weight-sized operation),
so routing ``(b1, b2) -> b1 ^ b2`` costs one matrix product. The lattice harmonics are folded into the aggregation
weights the same way: the whole aggregation is one gather and one matrix product per label block. Dot, cross, scaling by scalars and linear mixing within a block commute with every proper rotation; the labels
track the sign under ``-1`` (time reversal) and under mirrors. The energy is built from block 0 of the scalars
only, so it is exactly invariant under O(3) (time reversal included), translations and the point group.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .geometry import MessageGeometry, N_LABELS

ACT = {"silu": nn.functional.silu, "tanh": torch.tanh}


def _weight(*shape, fan_in: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) / math.sqrt(max(1, fan_in)))


def _flip_mirror(x: torch.Tensor, ax: int) -> torch.Tensor:
    """Relabel blocks ``b -> b ^ MIRROR_ODD`` (block axis ``ax < 0``): an ``A2`` aggregate of a block-``b``
    feature is a feature of block ``b ^ 2``."""
    return x.unflatten(ax, (2, 2)).flip(ax - 1).flatten(ax - 1, ax)


def _outer(u: torch.Tensor, v: torch.Tensor, ax: int) -> torch.Tensor:
    """Channel-wise products of every pair of blocks (block axis ``ax < 0`` in both): a new axis after it,
    ``[..., 4, ...] x [..., 4, ...] -> [..., 4 (b1), 4 (b2), ...]``."""
    return u.unsqueeze(ax) * v.unsqueeze(ax - 1)


def _outer_cross(u: torch.Tensor, v: torch.Tensor, ax: int) -> torch.Tensor:
    """As :func:`_outer` for vectors (component axis 1), with the cross product."""
    a0, a1, a2 = u.unsqueeze(ax).unbind(1)
    b0, b1, b2 = v.unsqueeze(ax - 1).unbind(1)
    return torch.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], 1)


def _routing() -> torch.Tensor:
    """``R[L, b1, b2] = 1`` where the product of blocks ``b1, b2`` lands in block ``L = b1 ^ b2``."""
    b = torch.arange(N_LABELS)
    return (b[None, :, None] ^ b[None, None, :] == b[:, None, None]).to(torch.float64)


def _route(w: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """Weights per output block ``w [L, S, b1, c, o]`` -> the block-sparse matrix ``[(L o), (S b1 b2 c)]``."""
    L, S, _, c, o = w.shape
    return torch.einsum("lsbco,lbq->losbqc", w, R[:L]).reshape(L * o, S * N_LABELS * N_LABELS * c)


class InteractionLayer(nn.Module):
    """Aggregation over the message offsets, pair and triple products, gated residual update (module docstring).

    ``first``: the input scalars are the same on every site (only the starting even scalars), so their non-``A1``
    harmonics vanish and are not computed. ``final``: only the even ``A1`` scalars are updated.
    """

    def __init__(self, geometry: MessageGeometry, channels: int, product_channels: int, activation: str = "silu",
                 *, first: bool = False, final: bool = False):
        super().__init__()
        c, cp = int(channels), int(product_channels)
        self.c, self.cp, self.activation, self.first, self.final = c, cp, activation, bool(first), bool(final)
        self.n_irreps = len(geometry.irreps)
        self.a1 = geometry.irrep_index("A1")
        self.a2 = geometry.irrep_index("A2") if any(h.label == "A2" for h in geometry.irreps) else None
        self.dims = [h.dim for h in geometry.irreps]
        self.M = len(geometry.offsets)
        # geometric constants (harmonics, couplings) are kept in float64 numpy and made into tensors of the working
        # dtype on first use, so a float64 model carries no float32-rounded harmonic
        self._Y = [h.Y for h in geometry.irreps]
        self._C = [cp_.C for cp_ in geometry.couplings]
        self._cache: dict = {}
        # outputs of the aggregation: U, V for every irrep; W and L as well for A1 / A2
        self.n_out = [2 * cp + ((cp + c) if k in (self.a1, self.a2) else 0) for k in range(self.n_irreps)]
        self.s_irreps = [self.a1] if self.first else list(range(self.n_irreps))
        self.agg_s = nn.ParameterList([_weight(h.Y.shape[1], N_LABELS, c, self.n_out[k], fan_in=h.Y.shape[1] * c)
                                       for k, h in enumerate(geometry.irreps) if k in self.s_irreps])
        self.agg_v = nn.ParameterList([_weight(h.Y.shape[1], N_LABELS, c, self.n_out[k], fan_in=h.Y.shape[1] * c)
                                       for k, h in enumerate(geometry.irreps)])
        self.couplings = [(cp_.first, cp_.second, cp_.mirror_odd) for cp_ in geometry.couplings]
        nk, n_w = len(self.couplings), (2 if self.a2 is not None else 1)
        n_out = 1 if self.final else N_LABELS     # the last layer only updates the even A1 scalars
        # pair products: 2 scalar kinds (s s, v.v) and 3 vector kinds (s v, v s, v x v) per coupling
        self.mix_ps = _weight(N_LABELS, 2 * nk, N_LABELS, cp, cp, fan_in=2 * nk * N_LABELS * cp)
        self.mix_pv = _weight(N_LABELS, 3 * nk, N_LABELS, cp, cp, fan_in=3 * nk * N_LABELS * cp)
        # update: linear terms and P per block ([block, out, in]); triple products routed like the pairs
        self.mix_s = _weight(n_out, c, n_w * c + cp, fan_in=n_w * c + cp)
        self.mix_ts = _weight(n_out, 2 * n_w, N_LABELS, cp, c, fan_in=2 * n_w * N_LABELS * cp)
        if not self.final:
            self.mix_v = _weight(N_LABELS, c, n_w * c + cp, fan_in=n_w * c + cp)
            self.mix_tv = _weight(N_LABELS, 3 * n_w, N_LABELS, cp, c, fan_in=3 * n_w * N_LABELS * cp)
            self.gate = nn.Linear(c, (2 * N_LABELS - 1) * c)

    def constants(self, dtype: torch.dtype, device: torch.device) -> dict:
        key = (dtype, device)
        if key not in self._cache:
            self._cache[key] = {
                "Y": [torch.as_tensor(y, dtype=dtype, device=device) for y in self._Y],
                "C": [torch.as_tensor(c, dtype=dtype, device=device) for c in self._C],
                "R": _routing().to(dtype=dtype, device=device)}
        return self._cache[key]

    # ------------------------------------------------------------------------------------------------ steps
    def _fold(self, weights, irreps, Ys) -> torch.Tensor:
        """Harmonics folded into the aggregation weights: ``[4, sum_Gamma (o d), c M]`` (rows Gamma, o, d)."""
        parts = [torch.einsum("klco,mkd->lodcm", w, Ys[k]).flatten(1, 2).flatten(2) for w, k in zip(weights, irreps)]
        return torch.cat(parts, 1)

    def aggregate(self, s: torch.Tensor, v: torch.Tensor, gather: torch.Tensor, Ys: list) -> list:
        """Per irrep: ``(a_s [B, 4, o, d, N], a_v [B, 3, 4, o, d, N])`` (``None`` for a skipped ``a_s``)."""
        B, N, c, M = s.shape[0], s.shape[-1], self.c, self.M
        x = torch.cat([s.reshape(B, -1, N), v.reshape(B, -1, N)], 1)             # [B, F, N]
        g = x.index_select(2, gather).view(B, -1, M, N)                           # [B, F, M, N]
        g_s = g[:, :N_LABELS * c].reshape(B, N_LABELS, c * M, N)
        g_v = g[:, N_LABELS * c:].reshape(B, 3, N_LABELS, c * M, N)
        a_s = torch.matmul(self._fold(self.agg_s, self.s_irreps, Ys), g_s)        # [B, 4, rows_s, N]
        a_v = torch.matmul(self._fold(self.agg_v, range(self.n_irreps), Ys), g_v)  # [B, 3, 4, rows_v, N]
        out, i_s, i_v = [], 0, 0
        for k in range(self.n_irreps):
            rows = self.n_out[k] * self.dims[k]
            part_v = a_v[..., i_v:i_v + rows, :].unflatten(-2, (self.n_out[k], self.dims[k]))
            i_v += rows
            part_s = None
            if k in self.s_irreps:
                part_s = a_s[..., i_s:i_s + rows, :].unflatten(-2, (self.n_out[k], self.dims[k]))
                i_s += rows
            out.append((part_s, part_v))
        return out

    def forward(self, s: torch.Tensor, v: torch.Tensor, gather: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``s [B, 4, c, N]``, ``v [B, 3, 4, c, N]``, ``gather [M N]`` (the neighbour table, offset-major) ->
        updated ``(s, v)``."""
        c, cp = self.c, self.cp
        B, N = s.shape[0], s.shape[-1]
        const = self.constants(s.dtype, s.device)
        R = const["R"]
        agg = self.aggregate(s, v, gather, const["Y"])
        ps, pv = [], []
        for j, (k1, k2, odd) in enumerate(self.couplings):
            C = const["C"][j]
            us, uv = agg[k1][0], agg[k1][1][:, :, :, :cp]                  # [B,4,cp,d,N], [B,3,4,cp,d,N]
            us = us[:, :, :cp] if us is not None else None
            vs, vv = agg[k2][0], torch.matmul(C, agg[k2][1][:, :, :, cp:2 * cp])
            vs = torch.matmul(C, vs[:, :, cp:2 * cp]) if vs is not None else None
            if odd:
                vs = _flip_mirror(vs, -4) if vs is not None else None
                vv = _flip_mirror(vv, -4)
            zero = torch.zeros((), dtype=s.dtype, device=s.device)
            ps.append(_outer(us, vs, -4).sum(-2).reshape(B, -1, N) if us is not None and vs is not None
                      else zero.expand(B, 16 * cp, N))                                   # s s
            ps.append(_outer(uv, vv, -4).sum((1, -2)).reshape(B, -1, N))                     # v . v
            pv.append(_outer(us.unsqueeze(1), vv, -4).sum(-2).reshape(B, 3, -1, N) if us is not None
                      else zero.expand(B, 3, 16 * cp, N))                                # s v
            pv.append(_outer(uv, vs.unsqueeze(1), -4).sum(-2).reshape(B, 3, -1, N) if vs is not None
                      else zero.expand(B, 3, 16 * cp, N))                                # v s
            pv.append(_outer_cross(uv, vv, -4).sum(-2).reshape(B, 3, -1, N))                # v x v
        p_s = torch.matmul(_route(self.mix_ps, R), torch.cat(ps, 1)).view(B, N_LABELS, cp, N)
        p_v = torch.matmul(_route(self.mix_pv, R), torch.cat(pv, 2)).view(B, 3, N_LABELS, cp, N)
        lin_s, lin_v, ts, tv = [], [], [], []
        for k, odd in ((self.a1, False), (self.a2, True)):
            if k is None:
                continue
            a_s, a_v = agg[k][0][..., 0, :], agg[k][1][..., 0, :]           # d = 1: [B,4,o,N], [B,3,4,o,N]
            w_s, w_v = a_s[:, :, 2 * cp:3 * cp], a_v[:, :, :, 2 * cp:3 * cp]
            l_s, l_v = a_s[:, :, 3 * cp:], a_v[:, :, :, 3 * cp:]
            if odd:
                w_s, w_v, l_s, l_v = (_flip_mirror(x, -3) for x in (w_s, w_v, l_s, l_v))
            lin_s.append(l_s)
            lin_v.append(l_v)
            ts.append(_outer(p_s, w_s, -3).reshape(B, -1, N))
            ts.append(_outer(p_v, w_v, -3).sum(1).reshape(B, -1, N))
            if not self.final:
                tv.append(_outer(p_s.unsqueeze(1), w_v, -3).reshape(B, 3, -1, N))
                tv.append(_outer(p_v, w_s.unsqueeze(1), -3).reshape(B, 3, -1, N))
                tv.append(_outer_cross(p_v, w_v, -3).reshape(B, 3, -1, N))
        n_out = self.mix_s.shape[0]
        ds = (torch.matmul(self.mix_s, torch.cat(lin_s + [p_s], 2)[:, :n_out])
              + torch.matmul(_route(self.mix_ts, R), torch.cat(ts, 1)).view(B, n_out, c, N))
        if self.final:
            ds = torch.cat([ACT[self.activation](ds), torch.zeros_like(s[:, 1:])], 1)
            return s + ds, v
        dv = (torch.matmul(self.mix_v, torch.cat(lin_v + [p_v], 3))
              + torch.matmul(_route(self.mix_tv, R), torch.cat(tv, 2)).view(B, 3, N_LABELS, c, N))
        gates = torch.sigmoid(torch.matmul(self.gate.weight, ds[:, 0]) + self.gate.bias[:, None])
        gates = gates.view(B, 2 * N_LABELS - 1, c, N)
        ds = torch.cat([ACT[self.activation](ds[:, :1]), ds[:, 1:] * gates[:, :N_LABELS - 1]], 1)
        dv = dv * gates[:, N_LABELS - 1:].unsqueeze(1)
        return s + ds, v + dv
