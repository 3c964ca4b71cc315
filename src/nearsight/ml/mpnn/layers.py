"""One interaction layer of the spin-equivariant message-passing network.

Features of a site come as scalars ``s [B, N, 4, c]`` and vectors ``v [B, N, 3, 4, c]`` (3 = spin components).
The axis of size 4 is the label block (:data:`~.geometry.N_LABELS`): bit 0 = odd under ``S -> -S``, bit 1 = odd
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

Dot, cross, scaling by scalars and linear mixing within a block commute with every proper rotation; the labels
track the sign under ``-1`` (time reversal) and under mirrors. The energy is built from block 0 of the scalars
only, so it is exactly invariant under O(3) (time reversal included), translations and the point group.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .geometry import MIRROR_ODD, N_LABELS, MessageGeometry, pair_table

ACT = {"silu": nn.functional.silu, "tanh": torch.tanh}


def _weight(*shape, fan_in: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) / math.sqrt(max(1, fan_in)))


def _mix(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Per-block linear map: ``x [..., 4, f]`` times ``w [4, f, o]`` -> ``[..., 4, o]``."""
    return torch.einsum("...lf,lfo->...lo", x, w)


def _pair(u: torch.Tensor, v: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """All label-block pairs channel by channel: ``u, v [..., 4, c]`` -> ``[..., 4 (out block), 4 c]``; out block
    ``L`` holds ``u[b] * v[table[L, b]]`` for the four first blocks ``b``."""
    out = u.unsqueeze(-3) * v[..., table, :]
    return out.flatten(-2)


def _pair_cross(u: torch.Tensor, v: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """As :func:`_pair` for vectors ``[..., 3, 4, c]`` with the cross product over the component axis."""
    a = u.unsqueeze(-3).expand(*u.shape[:-2], N_LABELS, *u.shape[-2:])
    out = torch.linalg.cross(a, v[..., table, :], dim=-4)
    return out.flatten(-2)


class InteractionLayer(nn.Module):
    """Aggregation over the message offsets, pair and triple products, gated residual update (module docstring)."""

    def __init__(self, geometry: MessageGeometry, channels: int, product_channels: int, activation: str = "silu",
                 *, final: bool = False):
        super().__init__()
        c, cp = int(channels), int(product_channels)
        self.c, self.cp, self.activation, self.final = c, cp, activation, bool(final)
        self.n_irreps = len(geometry.irreps)
        self.a1 = geometry.irrep_index("A1")
        self.a2 = geometry.irrep_index("A2") if any(h.label == "A2" for h in geometry.irreps) else None
        self.dims = [h.dim for h in geometry.irreps]
        self.copies = [h.Y.shape[1] for h in geometry.irreps]
        # geometric constants (harmonics, couplings, label tables) are kept in float64 numpy and made into tensors
        # of the working dtype on first use, so a float64 model carries no float32-rounded harmonic
        self._Y = [h.Y for h in geometry.irreps]
        self._C = [cp_.C for cp_ in geometry.couplings]
        self._cache: dict = {}
        # outputs of the aggregation: U, V for every irrep; W and L as well for A1 / A2
        self.n_out = [2 * cp + ((cp + c) if k in (self.a1, self.a2) else 0) for k in range(self.n_irreps)]
        self.agg_s = nn.ParameterList([_weight(k, N_LABELS, c, o, fan_in=k * c)
                                       for k, o in zip(self.copies, self.n_out)])
        self.agg_v = nn.ParameterList([_weight(k, N_LABELS, c, o, fan_in=k * c)
                                       for k, o in zip(self.copies, self.n_out)])
        self.couplings = [(cp_.first, cp_.second, cp_.mirror_odd) for cp_ in geometry.couplings]
        nk = len(self.couplings)
        self.mix_ps = _weight(N_LABELS, 2 * nk * N_LABELS * cp, cp, fan_in=2 * nk * N_LABELS * cp)
        self.mix_pv = _weight(N_LABELS, 3 * nk * N_LABELS * cp, cp, fan_in=3 * nk * N_LABELS * cp)
        n_w = 2 if self.a2 is not None else 1
        n_in_s = n_w * c + cp + 2 * n_w * N_LABELS * cp
        n_in_v = n_w * c + cp + 3 * n_w * N_LABELS * cp
        if self.final:   # the last layer only updates what the site energy reads: the even A1 scalars
            self.mix_s = _weight(1, n_in_s, c, fan_in=n_in_s)
        else:
            self.mix_s = _weight(N_LABELS, n_in_s, c, fan_in=n_in_s)
            self.mix_v = _weight(N_LABELS, n_in_v, c, fan_in=n_in_v)
            self.gate = nn.Linear(c, (2 * N_LABELS - 1) * c)

    def constants(self, dtype: torch.dtype, device: torch.device) -> dict:
        key = (dtype, device)
        if key not in self._cache:
            self._cache[key] = {
                "Y": [torch.as_tensor(y, dtype=dtype, device=device) for y in self._Y],
                "C": [torch.as_tensor(c, dtype=dtype, device=device) for c in self._C],
                "pairs": [torch.as_tensor(pair_table(odd), device=device) for odd in (False, True)],
                "flip": torch.as_tensor([b ^ MIRROR_ODD for b in range(N_LABELS)], device=device)}
        return self._cache[key]

    # ------------------------------------------------------------------------------------------------ steps
    def aggregate(self, s: torch.Tensor, v: torch.Tensor, index: torch.Tensor, Ys: list) -> list:
        """Per irrep: ``(a_s [B, N, d, 4, o], a_v [B, N, d, 3, 4, o])`` with ``o = n_out`` outputs."""
        B, N = s.shape[:2]
        M = index.shape[1]
        x = torch.cat([s.flatten(2), v.flatten(2)], -1)                  # [B, N, F]
        g = x.index_select(1, index.reshape(-1)).reshape(B, N, M, -1)   # [B, N, M, F]
        ns = s[0, 0].numel()
        out = []
        for k in range(self.n_irreps):
            h = torch.einsum("bnmf,mkd->bnkdf", g, Ys[k])               # Y [M, k, d]
            hs = h[..., :ns].unflatten(-1, (N_LABELS, self.c))            # [B, N, k, d, 4, c]
            hv = h[..., ns:].unflatten(-1, (3, N_LABELS, self.c))         # [B, N, k, d, 3, 4, c]
            a_s = torch.einsum("bnkdlc,klco->bndlo", hs, self.agg_s[k])
            a_v = torch.einsum("bnkdxlc,klco->bndxlo", hv, self.agg_v[k])
            out.append((a_s, a_v))
        return out

    def forward(self, s: torch.Tensor, v: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c, cp = self.c, self.cp
        const = self.constants(s.dtype, s.device)
        agg = self.aggregate(s, v, index, const["Y"])
        ps, pv = [], []
        for j, (k1, k2, odd) in enumerate(self.couplings):
            table, C = const["pairs"][odd], const["C"][j]
            us, uv = agg[k1][0][..., :cp], agg[k1][1][..., :cp]            # [B,N,d1,4,cp], [B,N,d1,3,4,cp]
            vs = torch.einsum("ab,b...->a...", C, agg[k2][0][..., cp:2 * cp].movedim(2, 0)).movedim(0, 2)
            vv = torch.einsum("ab,b...->a...", C, agg[k2][1][..., cp:2 * cp].movedim(2, 0)).movedim(0, 2)
            ps.append(_pair(us, vs, table).sum(2))                                          # s s
            ps.append(_pair(uv, vv, table).sum((2, 3)))                                     # v . v
            pv.append(_pair(us.unsqueeze(3), vv, table).sum(2))                             # s v
            pv.append(_pair(uv, vs.unsqueeze(3), table).sum(2))                            # v s
            pv.append(_pair_cross(uv, vv, table).sum(2))                                    # v x v
        p_s = _mix(torch.cat(ps, -1), self.mix_ps)                        # [B, N, 4, cp]
        p_v = _mix(torch.cat(pv, -1), self.mix_pv)                        # [B, N, 3, 4, cp]
        lin_s, lin_v, ts, tv = [], [], [], []
        for k, odd in ((self.a1, False), (self.a2, True)):
            if k is None:
                continue
            a_s, a_v = agg[k][0][:, :, 0], agg[k][1][:, :, 0]              # d = 1
            w_s, w_v = a_s[..., 2 * cp:3 * cp], a_v[..., 2 * cp:3 * cp]
            l_s, l_v = a_s[..., 3 * cp:], a_v[..., 3 * cp:]
            if odd:   # an A2 aggregate of a block-b feature is a feature of block b ^ MIRROR_ODD
                l_s, l_v = l_s[..., const["flip"], :], l_v[..., const["flip"], :]
            lin_s.append(l_s)
            lin_v.append(l_v)
            table = const["pairs"][odd]
            ts.append(_pair(p_s, w_s, table))
            ts.append(_pair(p_v, w_v, table).sum(2))
            if self.final:
                continue
            tv.append(_pair(p_s.unsqueeze(2), w_v, table))
            tv.append(_pair(p_v, w_s.unsqueeze(2), table))
            tv.append(_pair_cross(p_v, w_v, table))
        if self.final:
            ds = _mix(torch.cat(lin_s + [p_s] + ts, -1)[..., :1, :], self.mix_s)    # [B, N, 1, c]
            ds = torch.cat([ACT[self.activation](ds), torch.zeros_like(s[..., 1:, :])], -2)
            return s + ds, v
        ds = _mix(torch.cat(lin_s + [p_s] + ts, -1), self.mix_s)         # [B, N, 4, c]
        dv = _mix(torch.cat(lin_v + [p_v] + tv, -1), self.mix_v)         # [B, N, 3, 4, c]
        gates = torch.sigmoid(self.gate(ds[..., 0, :])).unflatten(-1, (2 * N_LABELS - 1, c))
        ds = torch.cat([ACT[self.activation](ds[..., :1, :]), ds[..., 1:, :] * gates[..., :N_LABELS - 1, :]], -2)
        dv = dv * gates[..., N_LABELS - 1:, :].unsqueeze(2)
        return s + ds, v + dv
