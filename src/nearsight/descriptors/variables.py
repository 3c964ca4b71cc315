"""The spin-rotation-invariant variables around a site, how the point group permutes them, and how they are gathered.

Around site ``i`` (offset 0), with ``D(R) = {offsets o : |o| <= R}``:

* **centre bonds** ``S_i . S_{i+o}`` for every ``o != 0`` in ``D(R_c)``: the pair correlations of the centre
  spin with its whole neighbourhood (the longest-ranged part of the exchange field, RKKY-like);
* **environment bonds** ``S_{i+p} . S_{i+q}`` for pairs ``p, q`` in ``D(R_loc)`` (neither the centre) whose
  distance is one of the chosen neighbour shells (default: nearest neighbours);
* **scalar chiralities** ``S_a . (S_b x S_c)`` of the elementary triangles (``Lattice.triangles``, vertices
  counter-clockwise) with all vertices in ``D(R_loc)``.

Bonds are O(3) scalars; chiralities are O(3) pseudoscalars (odd under ``S -> -S``) and lattice pseudoscalars:
a point-group element ``g`` maps the counter-clockwise triangle ``(a, b, c)`` to ``(ga, gb, gc)``, which is
clockwise when ``det g = -1``, so the variable of the image triangle picks up the sign ``det g``. With spins
transformed as ``S'(g r) = S(r)``, the variables transform as ``v' = D(g) v`` with the signed permutation
``D(g) e_v = sign[g, v] e_{perm[g, v]}``.

**Reference blocks.** The coarse-grained variables that fix the reference directions are block averages of
the nearest-neighbour bonds and of the chiralities. The block around a lattice point ``c`` holds the bonds and
elementary triangles with all vertices within ``r_b`` of ``c``; it is symmetric about ``c``, so the block
averages form a scalar field ``F_bond(c)`` and a pseudoscalar field ``F_chir(c)`` on the lattice (each a
weighted sum over a few taps of the lattice fields). Around site ``i`` the ``|G|`` blocks are centred at
``i + g c0``, one per group element ``g``, with ``c0`` a lattice offset that no mirror fixes (a generic
direction) and ``|c0| + r_b <= R_c``:

    Q_g = F_bond(i + g c0),        K_g = det(g) F_chir(i + g c0).

Under a point-group operation ``h`` about ``i`` both vectors are permuted by the regular representation,
``Q'_{hg} = Q_g`` and ``K'_{hg} = K_g`` (the sign ``det g`` absorbs the pseudoscalar sign of the chirality),
so each irrep of the group appears in them and gives a reference vector. ``c0`` is the generic offset with
``|c0|`` closest to ``R_c/2`` and ``r_b = R_c - |c0|`` (large overlapping blocks that together cover the
disk). Below ``R_c = 3.24`` (square) or ``3.65`` (triangular) no generic offset fits with ``r_b >= 1``;
``c0`` then lies on a mirror line, the vectors still transform by the regular representation but miss the
irreps odd under that mirror, whose references are then zero (their phase features vanish identically).

**Gather.** Every variable is a value of one of a few lattice fields at a shifted site: pair fields
``S_r . S_{r+d}`` for displacements ``d`` in a half set (``d`` and ``-d`` give the same bond) and one
chirality field per triangle type. The forward pass computes these fields once, channel-major ``[B, K, N]``
(one gather of the neighbouring spins per kind of field), and then one ``index_select`` per orbit type gathers
the variables of every site as a contiguous ``[B, V_type, N]`` block: no loop over sites. Channel-major
tensors keep every later gather a copy of whole rows of length ``N`` (a gather along a short last axis is
an order of magnitude slower on CPU).
"""
from __future__ import annotations

from functools import cached_property

import numpy as np
import torch

from ..errors import NearsightError
from ..lattice import Lattice
from .groups import PointGroup

_EPS = 1e-9
BOND, CHIR = "bond", "chir"


def _canonical_displacement(d) -> bool:
    return d[0] > 0 or (d[0] == 0 and d[1] > 0)


def triangle_templates(kind: str) -> np.ndarray:
    """Vertex offsets ``[T_types, 3, 2]`` of the elementary triangles anchored at a site (``Lattice.triangles``)."""
    lat = Lattice(kind, 6)
    T = lat.triangles
    xy = lat.xy.copy()
    xy[xy > 3] -= 6
    out = np.stack([xy[T[k * lat.N]] for k in range(len(T) // lat.N)])
    cart = out @ lat.a
    u, w = cart[:, 1] - cart[:, 0], cart[:, 2] - cart[:, 0]
    cross = u[:, 0] * w[:, 1] - u[:, 1] * w[:, 0]
    if not np.all(cross > 0):  # pragma: no cover - guards the Lattice.triangles convention
        raise NearsightError("Lattice.triangles are expected to be counter-clockwise")
    return out


class LocalVariables:
    """Variables around a site (offset space), their signed permutation by the point group, and gather tables."""

    def __init__(self, lattice: Lattice, group: PointGroup, cutoff: float, local_cutoff: float,
                 bond_shells: tuple[int, ...] = (1,)):
        self.lattice, self.group = lattice, group
        self.cutoff, self.local_cutoff, self.bond_shells = float(cutoff), float(local_cutoff), tuple(bond_shells)
        a = lattice.a
        self._a = a
        centre, _ = lattice.offsets_within(self.cutoff)
        self.centre_offsets = [tuple(int(x) for x in o) for o in centre]
        if not self.centre_offsets:
            raise NearsightError(f"cutoff {cutoff:g} holds no neighbour; use cutoff >= 1 (one lattice spacing)")
        loc, _ = lattice.offsets_within(self.local_cutoff)
        local = {(0, 0)} | {tuple(int(x) for x in o) for o in loc}
        shells_o, shells_d = lattice.offsets_within(self.cutoff + 4)
        radii = np.unique(np.round(shells_d, 9))
        if max(self.bond_shells) > len(radii):  # pragma: no cover - cutoff + 4 holds many shells
            raise NearsightError(f"bond_shells {self.bond_shells} go beyond the available neighbour shells")
        self.shell_vectors = {s: [tuple(int(x) for x in o) for o, d in zip(shells_o, shells_d)
                                  if abs(d - radii[s - 1]) < _EPS] for s in sorted(set(self.bond_shells) | {1})}
        self.templates = triangle_templates(lattice.kind)

        # ------------------------------------------------------------------ elements (keys) by kind
        centre_keys = [("p", frozenset({(0, 0), o})) for o in self.centre_offsets]
        env_keys = self._pairs(local, [v for s in self.bond_shells for v in self.shell_vectors[s]], skip_centre=True)
        tri_keys = self._triangles(local)
        self.variable_keys = centre_keys + env_keys + tri_keys
        self.origin = ["centre"] * len(centre_keys) + ["env"] * len(env_keys) + ["chir"] * len(tri_keys)
        self.var_class = [CHIR if k[0] == "t" else BOND for k in self.variable_keys]
        self.perm, self.sign = self._action(self.variable_keys)

    # ----------------------------------------------------------------------------- construction
    def _pairs(self, sites: set, vectors: list, skip_centre: bool) -> list:
        keys = set()
        for p in sites:
            if skip_centre and p == (0, 0):
                continue
            for d in vectors:
                q = (p[0] + d[0], p[1] + d[1])
                if q in sites and not (skip_centre and q == (0, 0)):
                    keys.add(("p", frozenset({p, q})))
        return sorted(keys, key=self._sort_key)

    def _triangles(self, sites: set) -> list:
        keys = set()
        span = int(np.ceil(max(self.cutoff, self.local_cutoff))) + 2
        for x in range(-2 * span, 2 * span + 1):
            for y in range(-2 * span, 2 * span + 1):
                for t in self.templates:
                    verts = [(x + int(v[0]), y + int(v[1])) for v in t]
                    if all(v in sites for v in verts):
                        keys.add(("t", frozenset(verts)))
        return sorted(keys, key=self._sort_key)

    def _sort_key(self, key) -> tuple:
        pts = np.array(sorted(key[1]), dtype=float) @ self._a
        c = pts.mean(0)
        return (round(float(np.linalg.norm(pts, axis=1).max()), 9), round(float(np.hypot(*c)), 9),
                round(float(np.arctan2(c[1], c[0]) % (2 * np.pi)), 9), sorted(key[1]))

    def act(self, g: int, key) -> tuple:
        """Image of an element key under group element ``g`` and the sign its variable picks up."""
        L = self.group.lattice_matrices[g]
        img = frozenset(tuple(int(x) for x in np.array(v) @ L) for v in key[1])
        sign = int(self.group.det[g]) if key[0] == "t" else 1
        return (key[0], img), sign

    def _action(self, keys: list) -> tuple[np.ndarray, np.ndarray]:
        pos = {k: i for i, k in enumerate(keys)}
        G = self.group.order
        perm = np.empty((G, len(keys)), dtype=np.int64)
        sign = np.empty((G, len(keys)), dtype=np.int64)
        for g in range(G):
            for i, k in enumerate(keys):
                img, s = self.act(g, k)
                if img not in pos:  # pragma: no cover - the variable sets are unions of orbits by construction
                    raise NearsightError("variable set is not closed under the point group")
                perm[g, i], sign[g, i] = pos[img], s
        return perm, sign

    # ------------------------------------------------------------------------------ reference blocks
    @cached_property
    def block_geometry(self) -> tuple[tuple[int, int], float]:
        """``(c0, r_b)``: the block centre offset of the identity element and the block radius."""
        R, G = self.cutoff, self.group
        cands, dist = self.lattice.offsets_within(R - 1.0) if R >= 2.0 else (np.zeros((0, 2), int), np.zeros(0))
        best = None
        for o, d in zip(cands, dist):
            o = tuple(int(x) for x in o)
            stab = sum(tuple(int(x) for x in np.array(o) @ G.lattice_matrices[g]) == o for g in range(G.order))
            ang = float(np.arctan2(*(np.array(o) @ self._a)[::-1]) % (2 * np.pi))
            key = (stab, round(abs(d - R / 2), 9), round(ang, 9), o)
            if best is None or key < best[0]:
                best = (key, o, float(d))
        if best is None:
            return (0, 0), R
        return best[1], R - best[2]

    @cached_property
    def block_stencil(self) -> tuple[np.ndarray, np.ndarray]:
        """Elements of the block about the origin: NN bonds ``[(anchor, channel)]`` and triangles, as weights.

        Returns ``(bond_kernel, chir_kernel)``, each ``[C, k, k]`` over (field channel, n2, n1) with
        ``k = 2 ceil(r_b) + 1``: ``F(c) = sum kernel[ch, p2 + h, p1 + h] field_ch(c + p)`` is the block average.
        """
        _, rb = self.block_geometry
        o, _ = self.lattice.offsets_within(rb)
        sites = {(0, 0)} | {tuple(int(x) for x in v) for v in o}
        h = int(np.ceil(rb)) + 1
        out = []
        for keys in (self._pairs(sites, self.shell_vectors[1], skip_centre=False), self._triangles(sites)):
            K = np.zeros((self.n_channels, 2 * h + 1, 2 * h + 1))
            for k in keys:
                (p1, p2), ch = self.element_source(k)
                K[ch, p2 + h, p1 + h] += 1.0 / len(keys)
            out.append(K)
        return out[0], out[1]

    def block_taps(self) -> tuple[list, np.ndarray]:
        """The block averages as sums over taps: ``([(offset, channel)], weights [2, T])`` with
        ``F_c(r) = sum_t weights[c, t] field_{channel_t}(r + offset_t)`` (c = bond, chirality)."""
        kernels = self.block_stencil
        h = kernels[0].shape[-1] // 2
        taps = sorted({(ch, p2, p1) for K in kernels for ch, p2, p1 in zip(*np.nonzero(K))})
        weights = np.array([[K[t] for t in taps] for K in kernels])
        return [((int(p1) - h, int(p2) - h), int(ch)) for ch, p2, p1 in taps], weights

    @cached_property
    def block_shifts(self) -> np.ndarray:
        """``[|G|, 2]``: the block centres ``g c0`` as lattice offsets."""
        c0, _ = self.block_geometry
        return np.stack([np.array(c0) @ L for L in self.group.lattice_matrices]).astype(np.int64)

    # ------------------------------------------------------------------------------ gather tables
    @cached_property
    def pair_channels(self) -> list[tuple[int, int]]:
        ds = {d for d in self.shell_vectors[1] if _canonical_displacement(d)}
        for k in self.variable_keys:
            if k[0] == "p":
                p, q = sorted(k[1])
                d = (q[0] - p[0], q[1] - p[1])
                ds.add(d if _canonical_displacement(d) else (-d[0], -d[1]))
        return sorted(ds, key=lambda d: (round(float(np.linalg.norm(np.array(d) @ self._a)), 9), d))

    @property
    def n_channels(self) -> int:
        return len(self.pair_channels) + len(self.templates)

    def element_source(self, key) -> tuple[tuple[int, int], int]:
        """(anchor offset, field channel) holding the value of an element."""
        if key[0] == "p":
            p, q = sorted(key[1])
            d = (q[0] - p[0], q[1] - p[1])
            if not _canonical_displacement(d):
                p, d = q, (-d[0], -d[1])
            return p, self.pair_channels.index(d)
        verts = set(key[1])
        for t, tmpl in enumerate(self.templates):
            for v0 in verts:  # the anchor is such that anchor + template = vertices
                anchor = (v0[0] - int(tmpl[0][0]), v0[1] - int(tmpl[0][1]))
                if {(anchor[0] + int(v[0]), anchor[1] + int(v[1])) for v in tmpl} == verts:
                    return anchor, len(self.pair_channels) + t
        raise NearsightError("triangle is not elementary")  # pragma: no cover

    def gather_index(self, keys: list) -> np.ndarray:
        """Flat indices ``[len(keys), N]`` into the channel-major ``[K * N]`` lattice fields (``ch * N + site``)."""
        lat = self.lattice
        idx = np.empty((len(keys), lat.N), dtype=np.int64)
        for j, k in enumerate(keys):
            anchor, ch = self.element_source(k)
            idx[j] = ch * lat.N + lat.shift(anchor)
        return idx

    @cached_property
    def receptive_radius(self) -> float:
        """Largest distance from the centre of any spin that a variable or reference block depends on."""
        pts = {v for k in self.variable_keys for v in k[1]}
        _, rb = self.block_geometry
        o, _ = self.lattice.offsets_within(rb)
        block = np.concatenate([np.zeros((1, 2)), o]) if len(o) else np.zeros((1, 2))
        for c in self.block_shifts:     # the sites of every block (a superset of the ones its elements use)
            pts |= {tuple(int(x) for x in c + b) for b in block}
        return float(max(np.linalg.norm(np.array(sorted(pts), float) @ self._a, axis=1)))

    def radius_of(self, key) -> float:
        return float(np.linalg.norm(np.array(sorted(key[1]), float) @ self._a, axis=1).max())


def lattice_fields(spins: torch.Tensor, pair_index: torch.Tensor, triangle_index: torch.Tensor) -> torch.Tensor:
    """Pair fields ``S_r . S_{r+d}`` and chirality fields ``S_a . (S_b x S_c)``, channel-major: ``[B, Cp + T, N]``.

    ``spins [B, 3, N]`` (channel-major); ``pair_index [Cp, N]``: the site ``r + d`` for each displacement ``d``;
    ``triangle_index [T, 3, N]``: the vertices of each triangle type anchored at ``r``, counter-clockwise.
    One gather per kind of field.
    """
    nb = take_sites(spins, pair_index)                                          # [B, 3, Cp, N]
    pairs = (spins.unsqueeze(2) * nb).sum(1)
    v = take_sites(spins, triangle_index)                                       # [B, 3, T, 3, N]
    chir = (v[:, :, :, 0] * torch.linalg.cross(v[:, :, :, 1], v[:, :, :, 2], dim=1)).sum(1)
    return torch.cat([pairs, chir], dim=1)


def block_vectors(F: torch.Tensor, block_index: torch.Tensor, det: torch.Tensor) -> torch.Tensor:
    """``[B, 2|G|, N]`` from the block fields ``F [B, 2, N]`` and the block centres ``block_index [|G|, N]``
    (site ``i + g c0``): ``Q_g = F_bond(i + g c0)`` then ``K_g = det(g) F_chir(i + g c0)``."""
    v = take_sites(F, block_index)                                              # [B, 2, |G|, N]
    return torch.cat([v[:, 0], v[:, 1] * det[:, None]], dim=1)


def take_sites(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``out[..., *index.shape] = x[..., index]`` for ``x [..., N]``: a gather along the last (site) axis.

    Done as ``index_select`` on a 2-D view, the fast path on CPU (on a 3-D tensor the same gather along its
    last axis is an order of magnitude slower).
    """
    lead = x.shape[:-1]
    return x.reshape(-1, x.shape[-1]).index_select(1, index.reshape(-1)).view(*lead, *index.shape)


def take_rows(x: torch.Tensor, index: torch.Tensor, dim: int) -> torch.Tensor:
    """``x.index_select(dim, index)`` for a contiguous ``x`` whose axes after ``dim`` are kept whole: one
    ``index_select`` of whole rows of a 2-D view (the fast path on CPU)."""
    dim = dim % x.dim()
    C, inner = x.shape[dim], x.shape[dim + 1:]
    outer = int(np.prod(x.shape[:dim], dtype=np.int64))
    rows = (torch.arange(outer, device=x.device) * C).unsqueeze(1) + index
    out = x.reshape(outer * C, -1).index_select(0, rows.reshape(-1))
    return out.view(*x.shape[:dim], len(index), *inner)


def gather_variables(fields: torch.Tensor, flat_index: torch.Tensor) -> torch.Tensor:
    """``[B, K, N]`` fields -> ``[B, V, n]`` variables with ``flat_index [V, n]`` into ``K * N``."""
    B = fields.shape[0]
    return fields.reshape(B, -1).index_select(1, flat_index.reshape(-1)).view(B, *flat_index.shape)
