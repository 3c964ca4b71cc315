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
from itertools import combinations_with_replacement, permutations

import numpy as np
import torch

from .groups import PointGroup, orbit_representation, signed_orbits
from .variables import BOND, CHIR, LocalVariables


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

    def constants(self, dtype, device) -> dict:
        """Torch tensors for the forward pass (cast to the spins' dtype and device)."""
        f = lambda x: torch.as_tensor(np.ascontiguousarray(x), dtype=dtype, device=device)  # noqa: E731
        G = self.group
        t = np.array(self.triples, dtype=np.int64).reshape(-1, 3)
        T = self.triple_tensors
        return {
            # one [n, m] map per (type, irrep, partner): partner-major outputs keep the copies innermost
            "maps": [{lbl: [f(M[:, a::G.irrep(lbl).dim]) for a in range(G.irrep(lbl).dim)]
                      for lbl, M in ty.maps.items()} for ty in self.types],
            "mean_scale": f(1.0 / np.sqrt(self.nodes[0].orbit_size)),
            "ref_matrix": f(self.ref_matrix),
            "dot": f(self.dot.transpose(1, 2, 0)), "wedge": f(self.wedge.transpose(1, 2, 0) / np.sqrt(2.0)),
            "tri_index": [torch.as_tensor(t[:, k], device=device) for k in range(3)],
            "tri_tensor": f(T.transpose(1, 2, 3, 0)),                      # [2, 2, 2, n_triples]
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
    """Variables of each orbit type ``X[k] [B, N, n_orbits n]`` and block vectors ``[B, N, 2|G|]``
    -> invariant features ``[B, N, F]``."""
    B, N = blocks.shape[:2]
    rows = [x.view(-1, t.n) for x, t in zip(X, layout.types)]

    # reference directions: unit vectors with a smooth floor, component-major [B, N, nodes] tensors
    ref = blocks @ c["ref_matrix"]
    n_nodes = len(layout.ref_nodes)
    ref_a1, p0, p1 = ref.split([1, n_nodes, n_nodes], dim=-1)
    inv = torch.rsqrt(p0 * p0 + p1 * p1 + eps * eps)
    p0, p1 = p0 * inv, p1 * inv
    a2 = p0[..., layout.a2_node:layout.a2_node + 1]                       # bond A2 reference, [B, N, 1]
    dot, wedge = c["dot"], c["wedge"]                                     # [2, 2, nodes]
    ud = [p0 * dot[a, 0] + p1 * dot[a, 1] for a in (0, 1)]                # C(., ref -> A1), component a
    uw = [(p0 * wedge[a, 0] + p1 * wedge[a, 1]) * a2 for a in (0, 1)]     # C(., ref -> A2) a2 / sqrt 2
    node_index = {nd: i for i, nd in enumerate(layout.ref_nodes)}

    out = []
    for nd in layout.nodes:
        f = [torch.cat([(rows[k] @ c["maps"][k][nd.label][a]).view(B, N, -1) for k, _ in nd.parts], dim=-1)
             for a in range(nd.dim)]                                      # partner a of every copy, [B, N, R]
        if (nd.cls, nd.label) == (BOND, "A1"):
            out.append(f[0] * c["mean_scale"])
            continue
        i = node_index[(nd.cls, nd.label)]
        s = slice(i, i + 1)
        if nd.dim == 1:
            out += [f[0] * f[0], f[0] * ud[0][..., s]]
            continue
        h = 1.0 / np.sqrt(2.0)
        phase = (f[0] * ud[0][..., s] + f[1] * ud[1][..., s]) * h
        sine = f[0] * uw[0][..., s] + f[1] * uw[1][..., s]
        out += [(f[0] * f[0] + f[1] * f[1]) * 0.5, torch.stack([phase, sine], dim=-1).flatten(-2)]
    out += [ref_a1 * (1.0 / np.sqrt(layout.group.order)), p0 * p0 + p1 * p1]
    if layout.triples:
        sel = [(p0.index_select(-1, idx), p1.index_select(-1, idx)) for idx in c["tri_index"]]
        T = c["tri_tensor"]
        acc = 0
        for x in (0, 1):
            for y in (0, 1):
                cz = sel[2][0] * T[x, y, 0] + sel[2][1] * T[x, y, 1]       # sum_z T[x, y, z] k_z
                acc = acc + sel[0][x] * sel[1][y] * cz
        out.append(acc)
    return torch.cat(out, dim=-1)
