"""One interaction layer of the spin-equivariant message-passing network.

Features are one site-last tensor ``x [B, 4, 4, c, N]``: axis 1 is the spin component (0 = scalar, 1-3 = the
vector's x, y, z), axis 2 the label block (:data:`~.geometry.N_LABELS`): bit 0 = odd under ``S -> -S``, bit 1 = odd
under lattice mirrors. So the scalar blocks are the even scalars (``S.S'``), pseudoscalars (``S.(S' x S'')``) and
their mirror-odd partners; the vector blocks are axial vectors (``S x S'``, block 0) and polar vectors (``S``, block
1) and their mirror-odd partners. Every operation below maps labels to labels exactly:

1. **Aggregate.** Neighbour features are gathered (shifted slices of the periodic grid), projected on the
   lattice harmonics of each irrep ``Gamma`` and mixed by weights per (copy, label block): ``U^Gamma, V^Gamma``
   (all irreps), ``W^Gamma`` and a linear term ``L^Gamma`` (``Gamma = A1, A2``). Weights never mix label blocks.
2. **Pair products** (body order 2): for each coupling ``Gamma1 x Gamma2 -> A1/A2`` (invariant tensor ``C``),
   channel by channel: ``s s``, ``s v``, ``v s``, ``v . v`` and ``v x v`` (dot, cross), summed over every pair of
   label blocks ``b1, b2`` that lands in block ``L = b1 ^ b2`` (``^ 2`` for an ``A2`` coupling), then mixed per
   block into ``P``.
3. **Triple products** (body order 3): ``P`` times ``W^{A1}`` / ``W^{A2}`` the same way — e.g. ``S_i . (S_j x
   S_k)`` from an ``E x E -> A2`` cross product dotted with the site's own spin (``d = 0`` is in every ``A1``
   aggregate).
4. **Update.** ``[L^{A1}, L^{A2}, P, T]`` mixed per block, then gated: the even ``A1`` scalars pass a smooth
   activation and give sigmoid gates for every other block (odd scalars times an even gate stay odd; vectors stay
   vectors); added to the input (residual). The last layer (``final``) updates only the even ``A1`` scalars, the
   only features the site energy reads.

**How it runs (few, large kernels).** The block sums of steps 2-3 are XOR convolutions over the label group
``Z2 x Z2``, diagonal in its Walsh-Hadamard basis: with ``^X[k] = sum_b H[k, b] X[b]`` (``H[k, b] = (-1)^{|k & b|}``)
``sum_b1 B(U[b1], V[b1 ^ L]) = 1/4 sum_k H[L, k] B(^U[k], ^V[k])`` for any bilinear ``B``. So a product costs
4 multiplications per channel instead of 16, and the flip of an ``A2`` coupling is the sign ``H[2, k]``. The four
bilinear kinds are one multiplication: the outer product ``^U[i] ^V[j]`` over spin components (0 = scalar, 1-3 =
vector) holds every product that a scalar (``a = i ^ j = 0``: ``s s`` and the three terms of ``v . v``) or vector
component ``a = i ^ j`` (``s v_a``, ``v_a s`` and the two terms of ``(v x v)_a``) is made of, exactly once. The lattice
harmonics, the couplings ``C``, the kind and sign tables, ``H`` and the update weights are folded into a few matrices
per call (weight-sized work), so a layer is: one gather (:class:`~.geometry.PeriodicGather`), one aggregation matrix
product (the 16 block-diagonal ``(component, block)`` pieces; the first layer only the 4 nonzero ones, see
:meth:`InteractionLayer.forward`), one ``4 x 4`` Hadamard matrix product, the pair multiplication and its mixing
product per ``(i, j)`` (to ``^P``, regrouped by ``a``), the triple multiplication and its mixing product, the gates. Dot, cross, scaling by scalars and
linear mixing within a block commute with every proper rotation; the labels track the sign under ``-1`` (time
reversal) and under mirrors. The energy is built from block 0 of the scalars only, so it is exactly invariant under
O(3) (time reversal included), translations and the point group.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .geometry import MessageGeometry, N_LABELS, MIRROR_ODD

ACT = {"silu": nn.functional.silu, "tanh": torch.tanh}
#: product kinds, in the order of the mixing weights: scalar kinds (``s s``, ``v . v``), vector kinds (``s v``,
#: ``v s``, ``v x v``)
N_SCALAR_KINDS, N_VECTOR_KINDS = 2, 3


def _weight(*shape, fan_in: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) / math.sqrt(max(1, fan_in)))


def _hadamard() -> torch.Tensor:
    """``H[k, b] = (-1)^{popcount(k & b)}``: the characters of the label group ``Z2 x Z2`` (``H H = 4``)."""
    b = torch.arange(N_LABELS)
    bits = b[:, None] & b[None, :]
    return (1 - 2 * ((bits & 1) ^ (bits >> 1))).to(torch.float64)


def _kinds() -> torch.Tensor:
    """``K[a, i, kind]``: the weight (with sign) of product ``^U[i] ^V[i ^ a]`` in output component ``a`` for each
    kind (``a = 0``: scalar kinds ``s s`` (``i = 0``), ``v . v`` (``i = 1..3``); ``a = 1..3``: vector kinds ``s v``
    (``i = 0``), ``v s`` (``i = a``), ``v x v`` (``(v x v)_a = eps_{a i j} u_i v_j``, ``j = i ^ a``))."""
    K = torch.zeros(4, 4, N_SCALAR_KINDS + N_VECTOR_KINDS, dtype=torch.float64)
    K[0, 0, 0] = 1.0
    K[0, 1:, 1] = 1.0
    for a in (1, 2, 3):
        K[a, 0, 2] = 1.0
        K[a, a, 3] = 1.0
        for i in (1, 2, 3):
            if i != a:
                j = i ^ a
                K[a, i, 4] = float((a - i) * (i - j) * (j - a) / 2)     # Levi-Civita eps_{a i j}
    return K


#: ``PERM[a, i] = i ^ a``, flattened: the spin components of the second factor for output component ``a``
PERM = torch.tensor([i ^ a for a in range(4) for i in range(4)])


class InteractionLayer(nn.Module):
    """Aggregation over the message offsets, pair and triple products, gated residual update (module docstring).

    ``first``: the input scalars are the same on every site (only the starting even scalars), so their non-``A1``
    harmonics vanish and have no weights. ``final``: only the even ``A1`` scalars are updated.
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
        # outputs of the aggregation per irrep: U, V for every irrep; W and L as well for A1 / A2
        self.n_out = [2 * cp + ((cp + c) if k in (self.a1, self.a2) else 0) for k in range(self.n_irreps)]
        self.s_irreps = [self.a1] if self.first else list(range(self.n_irreps))
        self.agg_s = nn.ParameterList([_weight(h.Y.shape[1], N_LABELS, c, self.n_out[k], fan_in=h.Y.shape[1] * c)
                                       for k, h in enumerate(geometry.irreps) if k in self.s_irreps])
        self.agg_v = nn.ParameterList([_weight(h.Y.shape[1], N_LABELS, c, self.n_out[k], fan_in=h.Y.shape[1] * c)
                                       for k, h in enumerate(geometry.irreps)])
        self.couplings = [(cp_.first, cp_.second, cp_.mirror_odd) for cp_ in geometry.couplings]
        self.mirror_irreps = [k for k in (self.a1, self.a2) if k is not None]
        nk, n_w = len(self.couplings), len(self.mirror_irreps)
        self.Q = cp * sum(self.dims[k1] for k1, _, _ in self.couplings)   # product rows (coupling, channel, partner)
        n_out = 1 if self.final else N_LABELS     # the last layer only updates the even A1 scalars
        # pair products per (output block, coupling x kind, channel, output); a product of channels summed over the
        # four block pairs that land in the output block, so the fan-in counts them
        self.mix_ps = _weight(N_LABELS, N_SCALAR_KINDS * nk, cp, cp, fan_in=N_SCALAR_KINDS * nk * N_LABELS * cp)
        self.mix_pv = _weight(N_LABELS, N_VECTOR_KINDS * nk, cp, cp, fan_in=N_VECTOR_KINDS * nk * N_LABELS * cp)
        # update: linear terms and P per block ([block, out, in]); triple products like the pairs
        self.mix_s = _weight(n_out, c, n_w * c + cp, fan_in=n_w * c + cp)
        self.mix_ts = _weight(n_out, N_SCALAR_KINDS * n_w, cp, c, fan_in=N_SCALAR_KINDS * n_w * N_LABELS * cp)
        if not self.final:
            self.mix_v = _weight(N_LABELS, c, n_w * c + cp, fan_in=n_w * c + cp)
            self.mix_tv = _weight(N_LABELS, N_VECTOR_KINDS * n_w, cp, c, fan_in=N_VECTOR_KINDS * n_w * N_LABELS * cp)
            self.gate = nn.Linear(c, (2 * N_LABELS - 1) * c)

    # --------------------------------------------------------------------------------------------- constants
    def constants(self, dtype: torch.dtype, device: torch.device) -> dict:
        key = (dtype, device)
        if key not in self._cache:
            f64 = dict(dtype=torch.float64)
            H = _hadamard()
            mirror = H[MIRROR_ODD]                                    # the sign of a block flip b -> b ^ 2
            Yv = [torch.einsum("ab,mkb->mka", torch.as_tensor(C, **f64), torch.as_tensor(self._Y[k2], **f64))
                  for C, (_, k2, _) in zip(self._C, self.couplings)]  # V harmonics with the coupling folded in
            # q = (coupling j, channel, partner a) -> (j, channel): the row of a product in the mixing weights
            qsrc = torch.cat([(j * self.cp + torch.arange(self.cp)).repeat_interleave(self.dims[k1])
                              for j, (k1, _, _) in enumerate(self.couplings)])
            to = dict(dtype=dtype, device=device)
            first_sign = H[:, list(START_BLOCKS)].T                   # [component, k]: H[k, block of the component]
            self._cache[key] = {
                "Y": [torch.as_tensor(y, **to) for y in self._Y], "Yv": [y.to(**to) for y in Yv],
                "H": H.to(**to), "Hq": (H / N_LABELS).to(**to), "K": _kinds().to(**to),
                "sign_pair": torch.stack([mirror if odd else torch.ones(N_LABELS, **f64)
                                          for _, _, odd in self.couplings]).to(**to),
                "sign_triple": torch.stack([mirror if k == self.a2 else torch.ones(N_LABELS, **f64)
                                            for k in self.mirror_irreps]).to(**to),
                "qsrc": qsrc.to(device), "perm": PERM.to(device),
                # (i, j) -> the row block of component a = i ^ j; (a, i) -> the product (i, i ^ a)
                "ij": torch.tensor([4 * i + (i ^ j) for i in range(4) for j in range(4)], device=device),
                "ai": torch.tensor([4 * i + (i ^ a) for a in range(4) for i in range(4)], device=device),
                # first layer: ^X[k] of a single block b is H[k, b] X; the signs of ^U[i] ^V[i ^ a] and of ^W[i ^ a]
                "sign_first": (first_sign[None] * first_sign[PERM].view(4, 4, N_LABELS)).to(**to),
                "sign_first_w": first_sign[PERM].view(4, 4, N_LABELS).to(**to)}
        return self._cache[key]

    # ------------------------------------------------------------------------------------------ folded weights
    def _aggregation_matrix(self, weights, irreps, mix, Y, Yv) -> torch.Tensor:
        """``[4 (block), R, c M]``: rows ``[D1 | D2 | U | V | W]`` of one spin component (scalar or vector).

        ``D1`` = the update's linear ``A1`` term (``mix[:, :, :c] L^{A1}``), ``D2`` = the ``A2`` one computed in
        block ``b`` for output block ``b ^ 2`` (present with ``A2`` only), ``U`` / ``V`` = the first / second factor
        of every coupling (``C`` folded into ``V``), ``W`` = the third factors (``A1``, ``A2``)."""
        c, cp, M = self.c, self.cp, self.M
        ref = self.agg_v[0]
        wk = dict(zip(irreps, weights))                               # [copies, 4, c, n_out] per irrep
        F = {k: torch.einsum("klco,mka->loacm", w, Y[k]) for k, w in wk.items()}       # [4, n_out, d, c, M]
        for k in range(self.n_irreps):
            if k not in F:                                            # a vanishing (first-layer scalar) aggregate
                F[k] = ref.new_zeros(N_LABELS, self.n_out[k], self.dims[k], c, M)
        U = [F[k1][:, :cp].flatten(1, 2) for k1, _, _ in self.couplings]
        V = [torch.einsum("klco,mka->loacm", wk[k2][:, :, :, cp:2 * cp], Yv[j]).flatten(1, 2) if k2 in wk
             else ref.new_zeros(N_LABELS, cp * self.dims[k2], c, M) for j, (_, k2, _) in enumerate(self.couplings)]
        W = [F[k][:, 2 * cp:3 * cp, 0] for k in self.mirror_irreps]
        rows = []
        if mix is not None:
            full = torch.cat([mix, mix.new_zeros(N_LABELS - mix.shape[0], *mix.shape[1:])]) \
                if mix.shape[0] < N_LABELS else mix                   # [4 (out block), c, n_w c + cp]
            rows.append(torch.einsum("lpo,locm->lpcm", full[:, :, :c], F[self.a1][:, 3 * cp:, 0]))
            if self.a2 is not None:
                flip = torch.arange(N_LABELS, device=mix.device) ^ MIRROR_ODD
                rows.append(torch.einsum("lpo,locm->lpcm", full[flip, :, c:2 * c], F[self.a2][:, 3 * cp:, 0]))
        else:
            rows.append(ref.new_zeros(N_LABELS, c * (2 if self.a2 is not None else 1), c, M))
        rows += U + V + W
        return torch.cat([r.flatten(2) for r in rows], 1)

    def _pair_matrix(self, const) -> torch.Tensor:
        """``[4 (component a), 4 cp, 16 Q]``: products ``O[a, i, k, q]`` -> ``^P[a, k, o]``, the Hadamard transform
        of the mixed pair products ``P[a, L, o]``."""
        cp, nk = self.cp, len(self.couplings)
        w5 = torch.cat([self.mix_ps.view(N_LABELS, nk, N_SCALAR_KINDS, cp, cp),
                        self.mix_pv.view(N_LABELS, nk, N_VECTOR_KINDS, cp, cp)], 2)       # [L, j, kind, ch, o]
        # ^P[k'] = sum_L H[k', L] P[L],  P[L] = 1/4 sum_k H[L, k] (sign of the coupling) O[k]
        mix = torch.einsum("ain,ljnco,pl,lk,jk->apoikjc", const["K"], w5, const["H"], const["Hq"],
                           const["sign_pair"])
        return mix.flatten(-2).index_select(-1, const["qsrc"]).flatten(1, 2).flatten(2)

    def _pair_update_matrix(self, const) -> torch.Tensor:
        """``[a, n c, 4 cp]``: ``^P[a, k, o]`` -> ``P``'s share of the update, ``mix[L, :, P] P[L]``."""
        cp = self.cp
        if self.final:
            w = self.mix_s[:1, :, -cp:][None]                                           # [a = 0, L = 0, c, o]
            return torch.einsum("alco,lk->alcko", w, const["Hq"][:1]).flatten(1, 2).flatten(2)
        w = torch.stack([self.mix_s[:, :, -cp:]] + [self.mix_v[:, :, -cp:]] * 3)        # [a, L, c, o]
        return torch.einsum("alco,lk->alcko", w, const["Hq"]).flatten(1, 2).flatten(2)

    def _triple_matrix(self, const) -> torch.Tensor:
        """``[a, n c, 16 n_w cp]``: triple products ``T[a, i, k, (irrep, ch)]`` -> update rows ``(L, c)``."""
        cp, c, n_w = self.cp, self.c, len(self.mirror_irreps)
        if self.final:
            w = self.mix_ts.view(1, n_w, N_SCALAR_KINDS, cp, c)
            K, Hq = const["K"][:1, :, :N_SCALAR_KINDS], const["Hq"][:1]
        else:
            w = torch.cat([self.mix_ts.view(N_LABELS, n_w, N_SCALAR_KINDS, cp, c),
                           self.mix_tv.view(N_LABELS, n_w, N_VECTOR_KINDS, cp, c)], 2)
            K, Hq = const["K"], const["Hq"]
        mix = torch.einsum("ain,lwnco,lk,wk->aloikwc", K, w, Hq, const["sign_triple"])   # [a, L, c_out, i, k, w, ch]
        return mix.flatten(1, 2).flatten(2)

    # ---------------------------------------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor, gather) -> torch.Tensor:
        """``x [B, 4 (component), 4 (block), c, N]``, ``gather``: ``[B, F, N] -> [B, F, M, N]``, the features at every
        message offset (:class:`~.geometry.PeriodicGather`) -> the updated ``x``.

        The ``first`` layer takes the compact ``x [B, 4, c, N]`` of :func:`expand_start` instead (its only nonzero
        pieces: the even scalars, block 0, and the polar vectors, block 1): it gathers and aggregates those 4
        pieces, not 16, and since the Hadamard transform of a single block is a sign per ``k``, its pair products do
        not depend on ``k`` (signs folded into the mixing matrices): 4 times fewer products."""
        c, cp, Q, M = self.c, self.cp, self.Q, self.M
        B, N = x.shape[0], x.shape[-1]
        const = self.constants(x.dtype, x.device)
        n_w = len(self.mirror_irreps)
        n_d = c * (2 if self.a2 is not None else 1)
        # 1. aggregation: one gather, one block-diagonal matrix product for the (component, block) pieces
        w_s = self._aggregation_matrix(self.agg_s, self.s_irreps, self.mix_s[:, :, :-cp], const["Y"], const["Yv"])
        w_v = self._aggregation_matrix(self.agg_v, range(self.n_irreps), None if self.final else self.mix_v[:, :, :-cp],
                                       const["Y"], const["Yv"])
        R = w_s.shape[1]
        pair, triple = self._pair_matrix(const), self._triple_matrix(const)
        if self.first:
            weight = torch.stack([w_s[0], w_v[1], w_v[1], w_v[1]])                    # [4 (component), R, c M]
            g = gather(x.reshape(B, -1, N)).view(B, 4, c * M, N)
            a = torch.matmul(weight, g)                                                # [B, 4, R, N]
            lin, u, v, w3 = a.split([n_d, Q, Q, n_w * cp], 2)
            n_k = 1                                                                    # ^X[k] = H[k, b] X[b]
            pair = pair.view(4, N_LABELS * cp, 4, N_LABELS, Q) * const["sign_first"][:, None, :, :, None]
            pair = pair.sum(3).flatten(2)
            n_a = 1 if self.final else 4
            triple = (triple.view(n_a, -1, 4, N_LABELS, n_w * cp)
                      * const["sign_first_w"][:n_a, None, :, :, None]).flatten(2)
        else:
            weight = torch.cat([w_s[None], w_v[None].expand(3, -1, -1, -1)]).view(4 * N_LABELS, R, c * M)
            g = gather(x.reshape(B, -1, N)).view(B, 4 * N_LABELS, c * M, N)
            a = torch.matmul(weight, g)                                                # [B, 16, R, N]
            lin, rest = a.split([n_d, R - n_d], 2)
            # 2. the Walsh-Hadamard transform over the blocks
            ah = torch.matmul(const["H"], rest.view(B, 4, N_LABELS, -1)).view(B, 4, N_LABELS, R - n_d, N)
            u, v, w3 = ah.split([Q, Q, n_w * cp], 3)
            n_k = N_LABELS
        # pair products of every kind in one multiplication: all ^U[i] ^V[j], mixed per (i, j) into component
        # a = i ^ j (no permuted copy of the large factors; the small outputs are regrouped by a)
        o = u.unsqueeze(2) * v.unsqueeze(1)                                            # [B, i, j, (k,) Q, N]
        pair = pair.view(4, N_LABELS * cp, 4, -1).permute(2, 0, 1, 3).reshape(16, N_LABELS * cp, -1)  # [(i, a)]
        out = torch.matmul(pair.index_select(0, const["ij"]), o.view(B, 16, -1, N))    # [B, (i, j), 4 cp, N]
        p_hat = out.index_select(1, const["ai"]).view(B, 4, 4, N_LABELS * cp, N).sum(2)  # [B, a, 4 cp, N]
        d_pair = torch.matmul(self._pair_update_matrix(const), p_hat[:, :1] if self.final else p_hat)
        p_hat = p_hat.view(B, 4, N_LABELS, 1, cp, N)
        # 3. triple products T[a, i] = ^P[i] ^W[i ^ a]
        w3 = w3.reshape(B, 4, n_k, n_w, cp, N)
        if self.final:
            t = (p_hat * w3).view(B, 1, -1, N)                                         # output component 0 only
        else:
            t = (p_hat.unsqueeze(1) * w3.index_select(1, const["perm"]).view(B, 4, 4, n_k, n_w, cp, N))
            t = t.view(B, 4, -1, N)
        d_triple = torch.matmul(triple, t)                                             # [B, a, n c, N]
        # 4. update
        if self.first:
            x = expand_start(x)
        if self.final:
            d = lin[:, 0, :c] + d_pair[:, 0] + d_triple[:, 0]                          # even A1 block: [B, c, N]
            if self.a2 is not None and not self.first:
                d = d + lin[:, MIRROR_ODD, c:2 * c]
            s0 = x[:, 0, 0] + ACT[self.activation](d)
            return torch.cat([torch.cat([s0[:, None, None], x[:, :1, 1:]], 2), x[:, 1:]], 1)
        d = (d_pair + d_triple).view(B, 4, N_LABELS, c, N)
        if self.first:      # block 0 (scalars) / 1 (vectors) -> the same block (A1) and block ^ 2 (A2)
            zero = lin.new_zeros(()).expand(B, c, N)
            l1, l2 = lin[:, :, :c], (lin[:, :, c:] if self.a2 is not None else None)
            pieces = [l1[:, 0], zero, zero if l2 is None else l2[:, 0], zero]
            for k in (1, 2, 3):
                pieces += [zero, l1[:, k], zero, zero if l2 is None else l2[:, k]]
            d = d + torch.stack(pieces, 1).view(B, 4, N_LABELS, c, N)
        else:
            d = d + lin[:, :, :c].view(B, 4, N_LABELS, c, N)
            if self.a2 is not None:
                flip = torch.arange(N_LABELS, device=x.device) ^ MIRROR_ODD
                d = d + lin[:, :, c:].view(B, 4, N_LABELS, c, N).index_select(2, flip)
        gates = torch.sigmoid(torch.matmul(self.gate.weight, d[:, 0, 0]) + self.gate.bias[:, None])
        gates = gates.view(B, 2 * N_LABELS - 1, c, N)
        ds = torch.cat([ACT[self.activation](d[:, 0, :1]), d[:, 0, 1:] * gates[:, :N_LABELS - 1]], 1)
        dv = d[:, 1:] * gates[:, None, N_LABELS - 1:]
        return x + torch.cat([ds[:, None], dv], 1)


#: the label block of each piece of the compact starting features: even scalars (0), polar vectors (1)
START_BLOCKS = (0, 1, 1, 1)


def expand_start(x: torch.Tensor) -> torch.Tensor:
    """Compact starting features ``[B, 4 (component), c, N]`` -> ``[B, 4, 4 (block), c, N]`` (zero blocks)."""
    zero = x.new_zeros(()).expand(x.shape[0], *x.shape[2:])
    pieces = [x[:, k] if b == START_BLOCKS[k] else zero for k in range(4) for b in range(N_LABELS)]
    return torch.stack(pieces, 1).view(x.shape[0], 4, N_LABELS, *x.shape[2:])
