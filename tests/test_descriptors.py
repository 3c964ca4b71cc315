"""Descriptor tests: group theory built in code, the irrep projectors, and the symmetry, locality, batching and
gradient properties of the features.

Tolerances. Features are O(1) and computed in float64 by a few hundred additions each, so roundoff is
~1e-14; symmetry and batching checks use 1e-10 (four orders of headroom, far below any real violation, which
is O(0.1) for a wrong sign or permutation). Group-theory identities on exact integer/rational data use 1e-9.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nearsight.descriptors import Descriptor, build_descriptor
from nearsight.descriptors.groups import PointGroup, signed_permutation_matrices
from nearsight.errors import NearsightError
from nearsight.lattice import Lattice

KINDS = ("square", "triangular")
TOL = 1e-10


def spins(rng, shape) -> torch.Tensor:
    s = rng.standard_normal((*shape, 3))
    return torch.as_tensor(s / np.linalg.norm(s, axis=-1, keepdims=True))


def close(a, b, tol: float = 1e-9) -> bool:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max()) < tol


def permute(s: torch.Tensor, dst: np.ndarray) -> torch.Tensor:
    """Spins moved by a site map: ``out[..., dst[i], :] = s[..., i, :]``."""
    out = torch.empty_like(s)
    out[..., torch.as_tensor(dst), :] = s
    return out


@pytest.fixture(scope="module", params=KINDS)
def desc(request):
    """A descriptor with a generic reference direction (cutoff 4 >= 3.65) and local variables up to 3."""
    return Descriptor(Lattice(request.param, 10), 4.0, local_cutoff=3.0)


# --------------------------------------------------------------------------------------------- groups
@pytest.mark.parametrize("kind", KINDS)
def test_point_group_is_built_from_generators_with_valid_characters(kind):
    lat = Lattice(kind, 4)
    G = PointGroup(kind, lat.a)
    n = 4 if kind == "square" else 6
    assert G.order == 2 * n and G.name == f"C{n}v"
    # closure: every row of the multiplication table is a permutation (Latin square)
    assert all(sorted(row) == list(range(G.order)) for row in G.mult)
    # integer lattice matrices that map nearest-neighbour offsets onto nearest-neighbour offsets
    nn = {tuple(o) for o in lat.nn_offsets}
    for L in G.lattice_matrices:
        assert {tuple(int(x) for x in np.array(o) @ L) for o in nn} == nn
    chars = np.array([ir.characters for ir in G.irreps])
    dims = np.array([ir.dim for ir in G.irreps])
    assert len(G.irreps) == len(G.classes)
    assert (dims ** 2).sum() == G.order
    np.testing.assert_allclose(chars @ chars.T / G.order, np.eye(len(dims)), atol=1e-9)   # row orthogonality
    expected = ["A1", "A2", "B1", "B2", "E"] if kind == "square" else ["A1", "A2", "B1", "B2", "E1", "E2"]
    assert G.labels == expected
    assert np.all(G.irrep("A2").characters == G.det)               # A2 is the pseudoscalar (det) irrep
    for ir in G.irreps:
        M = ir.matrices
        for g in range(G.order):                                   # homomorphism, orthogonal, traces = chars
            np.testing.assert_allclose(M[G.mult[g]], np.einsum("ab,hbc->hac", M[g], M), atol=1e-9)
            np.testing.assert_allclose(M[g] @ M[g].T, np.eye(ir.dim), atol=1e-9)
        np.testing.assert_allclose(np.einsum("gaa->g", M), ir.characters, atol=1e-9)


@pytest.mark.parametrize("kind", KINDS)
def test_clebsch_gordan_coefficients_intertwine(kind):
    """The number of CG tensors is the multiplicity <chi1 chi2, chi3>, and coupling commutes with the group."""
    G = PointGroup(kind, Lattice(kind, 4).a)
    rng = np.random.default_rng(0)
    for i1 in G.irreps:
        for i2 in G.irreps:
            for i3 in G.irreps:
                C = G.clebsch_gordan(i1.label, i2.label, i3.label)
                mult = int(round((i1.characters * i2.characters * i3.characters).sum() / G.order))
                assert C.shape[0] == mult
                f1, f2 = rng.standard_normal(i1.dim), rng.standard_normal(i2.dim)
                for k in range(mult):
                    for g in range(G.order):
                        lhs = np.einsum("abc,a,b->c", C[k], i1.matrices[g] @ f1, i2.matrices[g] @ f2)
                        rhs = i3.matrices[g] @ np.einsum("abc,a,b->c", C[k], f1, f2)
                        np.testing.assert_allclose(lhs, rhs, atol=1e-9)


def test_projectors_on_the_variables_are_complete_and_orthogonal(desc):
    """On the full signed-permutation representation of the variables around a site: the isotypic projectors
    are symmetric, idempotent, mutually orthogonal, commute with the group and sum to 1; the basis-resolved
    projectors of 2D irreps obey P_ab P_cd = delta_bc P_ad."""
    G, v = desc.group, desc.variables
    D = signed_permutation_matrices(v.perm, v.sign)
    V = D.shape[1]
    total = np.zeros((V, V))
    Ps = {ir.label: G.projector(ir, D) for ir in G.irreps}
    for ir in G.irreps:
        P = Ps[ir.label]
        assert close(P, P.T)
        assert close(P @ P, P)
        assert close(D @ P, P @ D)                       # for every g at once
        assert abs(np.trace(P) - ir.dim * G.multiplicity(ir, D)) < 1e-9
        for other in G.irreps:
            if other.label != ir.label:
                assert close(P @ Ps[other.label], 0)
        if ir.dim == 2:
            Pab = [[G.partner_projector(ir, D, a, b) for b in range(2)] for a in range(2)]
            for a in range(2):
                for b in range(2):
                    for c in range(2):
                        for d in range(2):
                            assert close(Pab[a][b] @ Pab[c][d], (b == c) * Pab[a][d])
            assert close(Pab[0][0] + Pab[1][1], P)
        total += P
    assert close(total, np.eye(V))
    # chirality is a pseudoscalar: the variables of the triangles change sign under every mirror
    chir = np.array([c == "chir" for c in v.var_class])
    assert np.all(v.sign[:, chir] == G.det[:, None]) and np.all(v.sign[:, ~chir] == 1)


def test_orbit_maps_are_orthonormal_and_equivariant(desc):
    """Each orbit type's maps form an orthonormal basis, and the coefficients of every copy transform
    together: f(D(g) v) = D_Gamma(g) f(v)."""
    G, v, layout = desc.group, desc.variables, desc.layout
    D = signed_permutation_matrices(v.perm, v.sign)
    pos = {k: i for i, k in enumerate(v.variable_keys)}
    rng = np.random.default_rng(1)
    x = rng.standard_normal(D.shape[1])
    for t, keys in zip(layout.types, layout.type_keys):
        W = np.concatenate(list(t.maps.values()), axis=1)
        np.testing.assert_allclose(W.T @ W, np.eye(t.n), atol=1e-9)
        idx = np.array([pos[k] for k in keys])
        for g in range(G.order):
            y = D[g] @ x
            for lbl, M in t.maps.items():
                d = G.irrep(lbl).dim
                f = (x[idx].reshape(t.n_orbits, t.n) @ M).reshape(t.n_orbits, -1, d)
                fg = (y[idx].reshape(t.n_orbits, t.n) @ M).reshape(t.n_orbits, -1, d)
                np.testing.assert_allclose(fg, f @ G.irrep(lbl).matrices[g].T, atol=1e-9)


# ----------------------------------------------------------------------------------------- invariance
def test_invariant_under_o3_spin_rotations_and_time_reversal(desc):
    rng = np.random.default_rng(2)
    s = spins(rng, (2, desc.lattice.N))
    f = desc(s)
    for improper in (False, True):
        q, r = np.linalg.qr(rng.standard_normal((3, 3)))
        q = q * np.sign(np.diag(r))
        q = q * np.sign(np.linalg.det(q)) * (-1 if improper else 1)
        assert (desc(s @ torch.as_tensor(q).T) - f).abs().max() < TOL
    assert (desc(-s) - f).abs().max() < TOL
    assert f.abs().max() > 0.1                                        # not trivially zero


def test_invariant_under_every_point_group_operation_and_translations(desc):
    """Spins moved by a lattice symmetry g (S'(g r) = S(r)) give features moved the same way, D'(g r) = D(r),
    for every element of the point group about a site and for translations."""
    lat, G = desc.lattice, desc.group
    rng = np.random.default_rng(3)
    s = spins(rng, (1, lat.N))
    f = desc(s)
    centre = np.array([3, 6])
    for L in G.lattice_matrices:
        new = (lat.xy - centre) @ L + centre
        dst = lat.index(new[:, 0], new[:, 1])
        assert (desc(permute(s, dst))[:, dst] - f).abs().max() < TOL
    for t in ((1, 0), (3, 7)):
        dst = lat.index(lat.xy[:, 0] + t[0], lat.xy[:, 1] + t[1])
        assert (desc(permute(s, dst))[:, dst] - f).abs().max() < TOL
    # a mirror of the whole configuration about a site is not a translation of it: features do move
    assert (desc(permute(s, lat.index(lat.xy[:, 1], lat.xy[:, 0]))) - f).abs().max() > 1e-3


@pytest.mark.parametrize("kind", KINDS)
def test_features_are_locally_complete_when_all_variables_are_kept(kind):
    """With local_cutoff = cutoff, the Jacobian of one site's features with respect to the 2 tangent angles
    of every spin within the cutoff has rank 2 n - 3 (n spins, minus the 3 global rotations): the invariants
    (powers, phases against the references, bispectrum) lose nothing but the symmetry itself."""
    lat = Lattice(kind, 7)
    d = Descriptor(lat, 3.0, local_cutoff=3.0)
    rng = np.random.default_rng(4)
    s = spins(rng, (1, lat.N))
    disk = torch.as_tensor(np.flatnonzero(lat.distances_from(0) <= 3.0 + 1e-9))
    e1 = torch.linalg.cross(s, spins(rng, (1, lat.N)), dim=-1)
    e1 = e1 / e1.norm(dim=-1, keepdim=True)
    e2 = torch.linalg.cross(s, e1, dim=-1)

    def site0(th):                      # tangent angles of the spins in the disk -> features of site 0
        t = s.clone()
        t[0, disk] = s[0, disk] + th[:, :1] * e1[0, disk] + th[:, 1:] * e2[0, disk]
        return d(t / t.norm(dim=-1, keepdim=True))[0, 0]

    th = torch.zeros(len(disk), 2, dtype=torch.float64)
    J = torch.autograd.functional.jacobian(site0, th, vectorize=True, strategy="forward-mode")
    sv = torch.linalg.svdvals(J.reshape(d.n_features, -1))
    rank = int((sv > 1e-8 * sv[0]).sum())
    assert rank == 2 * len(disk) - 3


def test_ferromagnet_gives_exact_values(desc):
    """All bonds 1, all chiralities 0: bond orbit means are 1 and every other power and phase vanishes."""
    s = torch.zeros(1, desc.lattice.N, 3, dtype=torch.float64)
    s[..., 2] = 1.0
    f = desc(s)[0]
    names = np.array(desc.feature_names)
    mean = np.array([n.startswith("bond:A1") and n.endswith(".mean") for n in names])
    assert torch.allclose(f[:, mean], torch.ones_like(f[:, mean]), atol=1e-12)
    assert float(f[0, names == "ref:bond:A1.mean"]) == pytest.approx(1.0, abs=1e-12)
    other = ~mean & (names != "ref:bond:A1.mean")
    assert f[:, other].abs().max() < 1e-12


# ------------------------------------------------------------------------------------------- locality
def test_spins_beyond_the_cutoff_do_not_change_a_site_and_the_cutoff_is_tight(desc):
    lat = desc.lattice
    rng = np.random.default_rng(5)
    s = spins(rng, (1, lat.N))
    site = 17
    dist = lat.distances_from(site)
    far = torch.as_tensor(dist > desc.cutoff + 1e-9)
    s2 = s.clone()
    s2[0, far] = spins(rng, (int(far.sum()),))
    f, f2 = desc(s)[0], desc(s2)[0]
    assert (f2[site] - f[site]).abs().max() < 1e-12
    assert (f2 - f).abs().max() > 1e-3                               # the change was seen elsewhere
    rim = torch.as_tensor(np.abs(dist - desc.cutoff) < 1e-9)          # spins exactly at the cutoff matter
    s3 = s.clone()
    s3[0, rim] = spins(rng, (int(rim.sum()),))
    assert (desc(s3)[0, site] - f[site]).abs().max() > 1e-6
    assert desc.cutoff == pytest.approx(4.0)


# ------------------------------------------------------------------------------ batching, dtype, gradients
def test_batched_equals_unbatched_and_dtype_follows_spins(desc):
    rng = np.random.default_rng(6)
    s = spins(rng, (3, desc.lattice.N))
    f = desc(s)
    assert f.shape == (3, desc.lattice.N, desc.n_features) and f.dtype == torch.float64
    for b in range(3):
        assert (desc(s[b:b + 1])[0] - f[b]).abs().max() < TOL
        assert (desc(s[b]) - f[b]).abs().max() < TOL                 # [N, 3] -> [N, F]
    f32 = desc(s.float())
    assert f32.dtype == torch.float32
    assert (f32.double() - f).abs().max() < 1e-4                      # float32 roundoff on O(1) features


def test_internal_order_is_a_permutation_of_the_documented_features(desc):
    """The fast path (channel-major, internal order) holds exactly the documented features, permuted."""
    s = spins(np.random.default_rng(8), (2, desc.lattice.N))
    f, raw = desc(s), desc(s, ordered=False)
    order = desc.feature_order
    assert raw.shape == (2, desc.n_features, desc.lattice.N)
    assert sorted(order.tolist()) == list(range(desc.n_features))
    assert (raw[:, order].transpose(1, 2) - f).abs().max() == 0
    assert torch.equal(desc.feature_positions("cpu")[order], torch.arange(desc.n_features))   # its inverse


def test_gather_helpers_equal_index_select():
    from nearsight.descriptors.variables import take_rows, take_sites
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 7, 11, generator=g, dtype=torch.float64)
    rows = torch.tensor([4, 0, 0, 2])
    assert torch.equal(take_rows(x, rows, 1), x.index_select(1, rows))
    assert torch.equal(take_rows(x, rows[:2], 2), x.index_select(2, rows[:2]))
    sites = torch.tensor([[3, 10], [0, 0], [7, 1]])
    assert torch.equal(take_sites(x, sites), x[..., sites])


@pytest.mark.parametrize("kind, cutoff, L", [("square", 2.0, 5), ("triangular", 3.7, 8)])
def test_gradcheck_float64(kind, cutoff, L):
    """First and second derivatives (the fields, and training on them) against finite differences; one small
    cutoff whose reference blocks lie on a mirror line and one with a generic reference direction."""
    lat = Lattice(kind, L)
    d = Descriptor(lat, cutoff, local_cutoff=2.0)
    s = spins(np.random.default_rng(7), (1, lat.N)).requires_grad_(True)
    assert torch.autograd.gradcheck(d, (s,), eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True)
    w = torch.randn(d.n_features, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.autograd.gradgradcheck(lambda x: d(x) @ w, (s,), eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=True)


# ---------------------------------------------------------------------------------------- config, errors
def test_config_rebuilds_identical_features_on_another_lattice_size(desc):
    cfg = json.loads(json.dumps(desc.config()))
    big = Lattice(desc.kind, 13, 12)
    d2 = build_descriptor(cfg, big)
    assert d2.n_features == desc.n_features and d2.cutoff == desc.cutoff
    # the same local patch around one site on both lattices gives the same features there
    rng = np.random.default_rng(8)
    s_small = spins(rng, (1, desc.lattice.N))
    s_big = spins(rng, (1, big.N))
    site_small, site_big = desc.lattice.index(5, 5), big.index(6, 6)
    for off in [(0, 0)] + [tuple(o) for o in desc.lattice.offsets_within(desc.cutoff)[0]]:
        s_big[0, big.index(6 + off[0], 6 + off[1])] = s_small[0, desc.lattice.index(5 + off[0], 5 + off[1])]
    assert (desc(s_small)[0, site_small] - d2(s_big)[0, site_big]).abs().max() < TOL


def test_rebuild_errors_name_the_problem(desc):
    cfg = desc.config()
    other = "triangular" if desc.kind == "square" else "square"
    with pytest.raises(NearsightError, match=f"built for the {desc.kind} lattice"):
        build_descriptor(cfg, Lattice(other, 10))
    with pytest.raises(NearsightError, match="too small for cutoff 4.*size >= 9"):
        build_descriptor(cfg, Lattice(desc.kind, 6))
    with pytest.raises(NearsightError, match="unknown descriptor option.*bogus"):
        build_descriptor({**cfg, "bogus": 1}, desc.lattice)
    with pytest.raises(NearsightError, match="differ from those recorded"):
        build_descriptor({**cfg, "check": [1.0, 2.0, 3.0]}, desc.lattice)
    with pytest.raises(NearsightError, match="version 1 is not supported"):
        build_descriptor({**cfg, "version": 1}, desc.lattice)
    with pytest.raises(NearsightError, match="local_cutoff"):
        Descriptor(desc.lattice, 4.0, local_cutoff=5.0)
    with pytest.raises(NearsightError, match="cutoff"):
        Descriptor(desc.lattice, 1.0)
    with pytest.raises(NearsightError, match=r"expected \[B, 100, 3\]"):
        desc(torch.zeros(1, 99, 3, dtype=torch.float64))


def test_construction_is_deterministic(desc):
    again = Descriptor(desc.lattice, 4.0, local_cutoff=3.0)
    s = spins(np.random.default_rng(9), (1, desc.lattice.N))
    assert torch.equal(again(s), desc(s))
    assert again.feature_names == desc.feature_names and len(desc.feature_names) == desc.n_features
