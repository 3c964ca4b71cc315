"""Irrep coefficients of the local variables, and the invariants built from them.

**Coefficients.** The variables split into orbits of the point group. An orbit listed in canonical order
(:func:`~nearsight.descriptors.groups.signed_orbits`) carries the induced representation of its stabilizer's
sign character, the same matrices for every orbit of one *type*; so each type needs one orthonormal
``n x n`` change of basis (from :meth:`PointGroup.decompose`), split into one ``[n, m_Gamma]`` map per irrep
and partner and applied to all orbits of the type at once as a matrix product. The copies of the irreps in
an orbit are ``f_r = U_r^T v`` (orthonormal ``U_r``, so ``sum_r |f_r|^2 = |v|^2``) with
``f_r -> D_Gamma(g) f_r`` under the point group. Bond copies are O(3) invariants; chirality copies are odd
under ``S -> -S``.

**Reference coefficients.** The bond and chirality block averages ``Q_g`` (see :mod:`.variables`) transform
by the regular representation; each irrep ``Gamma`` of it gives one reference vector ``f_ref^{c,Gamma}``
(class ``c`` = bond or chirality; the first copy in the canonical basis). A unit direction with a smooth floor
``f_hat = f_ref / sqrt(|f_ref|^2 + eps^2)`` keeps everything differentiable where a reference vanishes (in a
uniform state all of them but the trivial ones do).

**Features** (all invariant under the point group, translations and O(3) spin rotations including
``S -> -S``; for each copy ``r`` of irrep ``Gamma`` of class ``c``, orbit size ``n_r``, dimension ``d``):

* bond ``A1`` copies: ``f_r / sqrt(n_r)``, the orbit average of the bond variable (in ``[-1, 1]``);
* power spectrum ``p_r = |f_r|^2 / d`` (the mean square of the variables in this channel: about 1/3 for a
  bond and 2/9 for a chirality on random spins);
* phase ``eta_r = C(f_r, f_hat^{c,Gamma}) / sqrt(d)`` with ``C`` the ``Gamma x Gamma -> A1`` Clebsch–Gordan
  coefficients, i.e. ``|f_r| cos theta_r / sqrt(d)`` for the angle ``theta_r`` between the copy and its
  reference (even in chirality for both classes: bond x bond or chirality x chirality);
* for 2D irreps, the sine of that angle, which the cosine leaves undetermined: the bispectrum coefficient
  ``zeta_r = C(f_r, f_hat^{c,Gamma} -> A2) a2_hat / sqrt(d)`` coupling the pair to ``A2`` (the 2D cross
  product) and then with the bond ``A2`` reference ``a2_hat`` to a scalar (identically zero for cutoffs
  too small for a generic block direction, where that reference vanishes);
* the reference block: the block average of the nearest-neighbour bond, ``|f_hat|^2`` of every other
  reference (how well its direction is defined), and the bispectrum of the references,
  ``sum C[a,b,c] f_hat1_a f_hat2_b f_hat3_c`` for every triple of reference irreps whose product holds
  ``A1`` and that contains an even number of chirality references. With the phases of every copy relative
  to its reference, this fixes the relative orientation of different irreps as well.

All contractions use Clebsch–Gordan tensors computed by :meth:`PointGroup.invariant_tensors`.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from itertools import combinations_with_replacement, permutations

import numpy as np
import torch

from .groups import PointGroup, orbit_representation, signed_orbits
from .variables import BOND, CHIR, LocalVariables, take_rows


@dataclass(frozen=True)
class OrbitType:
    cls: str
    n: int                  # orbit size
    n_orbits: int
    maps: dict              # irrep label -> [n, m d] columns: the coefficients of its m copies (signs folded in)


@dataclass(frozen=True)
class Node:
    """All copies of one irrep in one class (bond or chirality), contiguous in the forward pass."""
    cls: str
    label: str
    dim: int
    parts: list             # [(type index, number of copies)] in concatenation order
    names: list             # copy names: origin and radius of the orbit
    orbit_size: np.ndarray  # [R]


class IrrepLayout:
    """Orbit types, the gather order of the variables, the irrep maps and the reference maps.

    In the forward pass the variables of each orbit type are gathered as a contiguous ``[B N n_orbits, n]``
    matrix and multiplied by one ``[n, m d]`` map per irrep; the results for one (class, irrep) node are
    concatenated, so each invariant is a few batched tensor operations per node.
    """

    def __init__(self, variables: LocalVariables):
        self.variables = v = variables
        G: PointGroup = v.group
        self.group = G
        groups: dict = {}
        for objs, sgn in signed_orbits(G, v.perm, v.sign):
            rep = orbit_representation(v.perm, v.sign, objs, sgn)
            key = (v.var_class[objs[0]], len(objs), np.round(rep, 9).tobytes(), sgn.tobytes())
            groups.setdefault(key, (rep, sgn, []))[2].append(objs)
        # deterministic type order: bonds before chiralities, then by the radius of the innermost orbit
        ordered = sorted(groups.items(), key=lambda kv: (kv[0][0] != BOND,
                                                         min(self._orbit_radius(o) for o in kv[1][2])))
        self.types: list[OrbitType] = []
        self.type_keys: list[list] = []           # gathered variable keys of each type
        parts: dict = {}
        for (cls, n, _, _), (rep, sgn, members) in ordered:
            members = sorted(members, key=self._orbit_radius)
            cols: dict = {}
            for ir, U in G.decompose(rep):
                cols.setdefault(ir.label, []).append(U * sgn[:, None])
            maps = {lbl: np.concatenate(us, axis=1) for lbl, us in cols.items()}
            k = len(self.types)
            self.types.append(OrbitType(cls, n, len(members), maps))
            self.type_keys.append([v.variable_keys[int(x)] for objs in members for x in objs])
            names = [f"{v.origin[objs[0]]}@{self._orbit_radius(objs):.3g}" for objs in members]
            for lbl, us in cols.items():
                entry = parts.setdefault((cls, lbl), {"parts": [], "names": [], "size": []})
                entry["parts"].append((k, len(members) * len(us)))
                entry["names"] += [nm for nm in names for _ in us]
                entry["size"] += [n] * (len(members) * len(us))
        self.nodes = [Node(cls, ir.label, ir.dim, parts[(cls, ir.label)]["parts"], parts[(cls, ir.label)]["names"],
                           np.array(parts[(cls, ir.label)]["size"]))
                      for cls in (BOND, CHIR) for ir in G.irreps if (cls, ir.label) in parts]
        self.n_variables = sum(t.n * t.n_orbits for t in self.types)
        assert (self.nodes[0].cls, self.nodes[0].label) == (BOND, "A1")   # centre bonds always give A1 copies
        # reference nodes: every (class, irrep) but the bond A1 scalar, which enters as itself
        self.ref_nodes = [(c, lbl) for c in (BOND, CHIR) for lbl in G.labels if (c, lbl) != (BOND, "A1")]
        self.ref_matrix = self._reference_matrix()
        self._build_invariant_tensors()

    def _orbit_radius(self, objs) -> float:
        return self.variables.radius_of(self.variables.variable_keys[int(objs[0])])

    def _reference_matrix(self) -> np.ndarray:
        """``[2|G|, 1 + 2 n_nodes]``: block vectors ``(Q, K)`` -> first copy of each irrep of the regular rep.

        Column 0 is the bond ``A1`` coefficient, then component 0 of every node, then component 1 (zero for
        1D irreps).
        """
        G = self.group
        first = {}
        for ir, U in G.decompose(G.regular):
            first.setdefault(ir.label, U)
        Z = np.zeros((G.order, 1))
        lift = {BOND: lambda U: np.concatenate([U, np.zeros_like(U)]),
                CHIR: lambda U: np.concatenate([np.zeros_like(U), U])}
        cols = [lift[BOND](first["A1"])]
        for comp in (0, 1):
            for cls, lbl in self.ref_nodes:
                U = first[lbl]
                cols.append(lift[cls](U[:, comp:comp + 1] if U.shape[1] > comp else Z))
        return np.concatenate(cols, axis=1)

    # --------------------------------------------------------------------------- invariant tensors
    def _build_invariant_tensors(self) -> None:
        G = self.group
        pad = lambda T: np.pad(T, [(0, 2 - s) for s in T.shape])  # noqa: E731
        nodes = self.ref_nodes
        # C(copy, reference -> A1) and C(copy, reference -> A2) for each node, padded to 2 x 2
        self.dot = np.stack([pad(G.clebsch_gordan(l, l, "A1")[0, :, :, 0]) for _, l in nodes])
        self.wedge = np.stack([pad(G.clebsch_gordan(l, l, "A2")[0, :, :, 0]) if G.irrep(l).dim == 2
                               else np.zeros((2, 2)) for _, l in nodes])
        self.a2_node = nodes.index((BOND, "A2"))
        self.triples, tensors = [], []
        for t in combinations_with_replacement(range(len(nodes)), 3):
            if sum(nodes[i][0] == CHIR for i in t) % 2:
                continue                                   # odd under S -> -S
            T = G.invariant_tensors(tuple(G.irrep(nodes[i][1]) for i in t))
            for k in range(T.shape[0]):
                Tk = _symmetrize_repeats(T[k], t)
                if np.abs(Tk).max() > 1e-9:
                    self.triples.append(t)
                    tensors.append(pad(Tk / np.abs(Tk).max()))
        self.triple_tensors = np.stack(tensors) if tensors else np.zeros((0, 2, 2, 2))

    # ------------------------------------------------------------------------------- feature names
    @property
    def feature_names(self) -> list[str]:
        node = lambda i: f"{self.ref_nodes[i][0]}:{self.ref_nodes[i][1]}"  # noqa: E731
        names = []
        for nd in self.nodes:
            base = [f"{nd.cls}:{nd.label}[{nm}]" for nm in nd.names]
            if (nd.cls, nd.label) == (BOND, "A1"):
                names += [b + ".mean" for b in base]
            elif nd.dim == 1:
                names += [b + ".power" for b in base] + [b + ".phase" for b in base]
            else:
                names += [b + ".power" for b in base] + [b + s for b in base for s in (".phase", ".sine")]
        names.append("ref:bond:A1.mean")
        names += [f"ref:{node(i)}.weight" for i in range(len(self.ref_nodes))]
        names += ["ref:bispectrum(" + ",".join(node(i) for i in t) + ")" for t in self.triples]
        return names

    # ------------------------------------------------------------------------ vectorized forward plan
    @cached_property
    def plan(self) -> dict:
        """Index tables of the vectorized forward pass and the order of its features.

        Each orbit type's variables are multiplied by its full ``[n, n]`` change of basis (all irreps and
        partners at once), the results concatenated type by type into ``[B, V, N]`` coefficients. The features
        are then computed by category, all copies at once: bond ``A1`` means, 1D powers, 1D phases, 2D powers,
        2D phases, 2D sines, then the reference block (*internal order*). ``order`` lists, for every feature in
        the documented order (:attr:`feature_names`), its internal position; ``positions`` is the inverse: for
        every internal position, the documented index.
        """
        offsets, start, full = [], 0, []
        for ty in self.types:
            cols, col0 = [], {}
            for lbl, M in ty.maps.items():
                col0[lbl] = sum(c.shape[1] for c in cols)
                cols.append(M)
            full.append(np.concatenate(cols, axis=1))
            offsets.append((start, col0))
            start += ty.n * ty.n_orbits
        node_index = {nd: i for i, nd in enumerate(self.ref_nodes)}
        coef = {"a1": [], "1d": [], "2d0": [], "2d1": []}
        node = {"1d": [], "2d": []}
        canonical = []                                  # (segment, position) of each feature, documented order
        for nd in self.nodes:
            d = nd.dim
            cols = [[] for _ in range(d)]
            for k, _ in nd.parts:
                ty, (off, col0) = self.types[k], offsets[k]
                m = ty.maps[nd.label].shape[1] // d
                for o in range(ty.n_orbits):
                    for r in range(m):
                        for a in range(d):
                            cols[a].append(off + o * ty.n + col0[nd.label] + r * d + a)
            R = len(cols[0])
            if (nd.cls, nd.label) == (BOND, "A1"):
                canonical += [("a1", len(coef["a1"]) + j) for j in range(R)]
                coef["a1"] += cols[0]
            elif d == 1:
                base = len(coef["1d"])
                canonical += [("p1", base + j) for j in range(R)] + [("h1", base + j) for j in range(R)]
                coef["1d"] += cols[0]
                node["1d"] += [node_index[(nd.cls, nd.label)]] * R
            else:
                base = len(coef["2d0"])
                canonical += [("p2", base + j) for j in range(R)]
                canonical += [(seg, base + j) for j in range(R) for seg in ("h2", "s2")]
                coef["2d0"] += cols[0]
                coef["2d1"] += cols[1]
                node["2d"] += [node_index[(nd.cls, nd.label)]] * R
        n_nodes = len(self.ref_nodes)
        canonical += [("ref", j) for j in range(1 + n_nodes + len(self.triples))]
        sizes = {"a1": len(coef["a1"]), "p1": len(coef["1d"]), "h1": len(coef["1d"]), "p2": len(coef["2d0"]),
                 "h2": len(coef["2d0"]), "s2": len(coef["2d0"]), "ref": 1 + n_nodes + len(self.triples)}
        seg_start = dict(zip(sizes, np.cumsum([0] + list(sizes.values()))[:-1]))
        order = np.array([seg_start[seg] + j for seg, j in canonical], dtype=np.int64)
        assert sorted(order.tolist()) == list(range(len(order)))
        n1, n2 = np.array(node["1d"], dtype=np.int64), np.array(node["2d"], dtype=np.int64)
        return {"full_maps": full,
                "coef_index": np.array(coef["a1"] + coef["1d"] + coef["2d0"] + coef["2d1"], dtype=np.int64),
                "coef_split": [len(coef["a1"]), len(coef["1d"]), len(coef["2d0"]), len(coef["2d1"])],
                # per-copy references: ud0 of 1D copies, then ud0, ud1, uw0, uw1 of 2D copies ([4 n_nodes] stack)
                "ref_index": np.concatenate([n1] + [q * n_nodes + n2 for q in range(4)]),
                "ref_split": [len(n1)] + [len(n2)] * 4,
                "a1_scale": 1.0 / np.sqrt(self.nodes[0].orbit_size), "order": order, "positions": np.argsort(order)}

    def constants(self, dtype, device) -> dict:
        """Torch tensors for the forward pass (cast to the spins' dtype and device)."""
        f = lambda x: torch.as_tensor(np.ascontiguousarray(x), dtype=dtype, device=device)  # noqa: E731
        i = lambda x: torch.as_tensor(np.ascontiguousarray(x), dtype=torch.int64, device=device)  # noqa: E731
        plan = self.plan
        t = np.array(self.triples, dtype=np.int64).reshape(-1, 3)
        return {
            "full_maps": [f(M.T) for M in plan["full_maps"]],
            "coef_index": i(plan["coef_index"]), "coef_split": plan["coef_split"],
            "ref_index": i(plan["ref_index"]), "ref_split": plan["ref_split"],
            "a1_scale": f(plan["a1_scale"][:, None]), "order": i(plan["order"]),
            "ref_matrix": f(self.ref_matrix.T),
            "dot": f(self.dot.transpose(1, 2, 0)[..., None]),                # [2, 2, nodes, 1]
            "wedge": f(self.wedge.transpose(1, 2, 0)[..., None] / np.sqrt(2.0)),
            # rows of cat(p0, p1): component 0 of the three factors, then component 1
            "tri_index": i(np.concatenate([t.T.reshape(-1), t.T.reshape(-1) + len(self.ref_nodes)])),
            "tri_tensor": f(self.triple_tensors.transpose(1, 2, 3, 0)[..., None]),   # [2, 2, 2, n_triples, 1]
        }


def _symmetrize_repeats(T: np.ndarray, idx: tuple) -> np.ndarray:
    """Average an invariant tensor over permutations of equal factors (only that part survives contraction)."""
    acc, count = np.zeros_like(T), 0
    for p in permutations(range(3)):
        if all(idx[p[i]] == idx[i] for i in range(3)):
            acc = acc + np.transpose(T, p)
            count += 1
    return acc / count


def compute_features(X: list, blocks: torch.Tensor, layout: IrrepLayout, c: dict, eps: float) -> torch.Tensor:
    """Variables of each orbit type ``X[k] [B, n_orbits n, N]`` and block vectors ``[B, 2|G|, N]``
    -> invariant features ``[B, F, N]``, channel-major in the internal order (``c["order"]`` gives the
    documented one)."""
    B, N = blocks.shape[0], blocks.shape[-1]
    coefs = torch.cat([torch.matmul(M, x.view(-1, t.n, N)).view(B, -1, N)              # U^T v per orbit
                       for x, t, M in zip(X, layout.types, c["full_maps"])], dim=1)      # [B, V, N]
    fa1, f1, fa, fb = take_rows(coefs, c["coef_index"], 1).split(c["coef_split"], dim=1)

    # reference directions: unit vectors with a smooth floor, component-major [B, nodes, N] tensors
    ref = torch.matmul(c["ref_matrix"], blocks)
    n_nodes = len(layout.ref_nodes)
    ref_a1, p0, p1 = ref.split([1, n_nodes, n_nodes], dim=1)
    inv = torch.rsqrt(p0 * p0 + p1 * p1 + eps * eps)
    p0, p1 = p0 * inv, p1 * inv
    a2 = p0[:, layout.a2_node:layout.a2_node + 1]                         # bond A2 reference, [B, 1, N]
    dot, wedge = c["dot"], c["wedge"]                                     # [2, 2, nodes, 1]
    u = torch.cat([p0 * dot[0, 0] + p1 * dot[0, 1], p0 * dot[1, 0] + p1 * dot[1, 1],      # C(., ref -> A1)
                   (p0 * wedge[0, 0] + p1 * wedge[0, 1]) * a2,                             # C(., ref -> A2) a2
                   (p0 * wedge[1, 0] + p1 * wedge[1, 1]) * a2], dim=1)
    r1, d0, d1, w0, w1 = take_rows(u, c["ref_index"], 1).split(c["ref_split"], dim=1)

    out = [fa1 * c["a1_scale"], f1 * f1, f1 * r1, (fa * fa + fb * fb) * 0.5,
           (fa * d0 + fb * d1) * (1.0 / np.sqrt(2.0)), fa * w0 + fb * w1,
           ref_a1 * (1.0 / np.sqrt(layout.group.order)), p0 * p0 + p1 * p1]
    if layout.triples:                                                    # sum T[x, y, z] a_x b_y c_z
        a0, b0, c0, a1, b1, c1 = take_rows(torch.cat([p0, p1], dim=1), c["tri_index"], 1).chunk(6, dim=1)
        T = c["tri_tensor"]                                               # [2, 2, 2, n_triples, 1]
        acc = 0
        for x, a in ((0, a0), (1, a1)):
            for y, b in ((0, b0), (1, b1)):
                acc = acc + a * b * (c0 * T[x, y, 0] + c1 * T[x, y, 1])
        out.append(acc)
    return torch.cat(out, dim=1)
