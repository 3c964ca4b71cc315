"""The message-passing model family (nearsight.ml.mpnn) on the shared provider contract: gradients, symmetry (global
O(3) with time reversal, translations, C4v / C6v), parity bookkeeping of every feature block, locality to the stated
radius, batching, size transfer, model files, the provider and CLI, the global-input hook, bad input.

Tolerances (float64 unless stated): energies ~N*|e_ref| ~ 200 on these lattices, so float64 rounding of the
site-energy sum is ~1e-13 absolute; exact identities are asserted at 1e-9 (energy) and 1e-10 (fields, features),
locality at 1e-12. Finite differences: central step 1e-5, truncation ~1e-10, asserted at 1e-6.
"""
from __future__ import annotations

import argparse
import io
import json
from contextlib import redirect_stdout

import numpy as np
import pytest
import torch

from nearsight import Lattice, NearsightError
from nearsight.ml import MLProvider, MPNNModel, build_mpnn, energy_and_fields, load_model
from nearsight.ml import cards as cards_mod
from nearsight.ml.cards import save_model
from nearsight.ml.mpnn import N_LABELS, message_geometry
from nearsight.ml.mpnn.geometry import PeriodicGather, neighbour_table
from nearsight.ml.mpnn.layers import expand_start
from nearsight.providers import build_provider
from nearsight.states import random_spins
from nearsight.testing import (ProviderContract, batched_vs_single, fd_gradient_error, locality_change, permute,
                               random_orthogonal, rotation_deviation, symmetry_deviation, symmetry_permutations,
                               tangent_fd_error, tile)

TINY = {"channels": 2, "product_channels": 2, "layers": 2, "radius": 1.75, "hidden": [8]}
SIZES = {"square": 6, "triangular": 8}      # the smallest that hold the tiny model's cutoff (2 sqrt2 / 2 sqrt3)


def make(kind: str = "square", L: int | None = None, dtype=torch.float64, seed: int = 0, **over) -> MPNNModel:
    """A randomly initialized tiny model (no training needed for the structural properties tested here), with
    nontrivial normalization and random first-layer biases so that every pathway is active."""
    torch.manual_seed(seed)
    m = build_mpnn({**TINY, **over}, Lattice(kind, L or SIZES[kind]), dtype)
    with torch.no_grad():
        m.core.embed_s.normal_()
    m.set_normalization(e_ref=-6.0, scale=0.5)
    return m


def card_for(model, **over) -> dict:
    card = {"name": "mpnn-test", "family": "mpnn", "lattice": model.lattice.kind, "t": 1.0, "t2": 0.0, "J": 6.0,
            "B": [0, 0, 0], "kT": 0.01, "filling": None, "mu": -2.0, "ensemble": "grand canonical",
            "cutoff": model.cutoff, "network": model.shape(), "dtype": "float64" if model.dtype == torch.float64
            else "float32", "energy_reference": -6.0,
            "training_data": {"provider": "ed", "lattice_sizes": [[model.lattice.L1, model.lattice.L2]]},
            "held_out": {"transverse_rms_ratio": 0.5}}
    card.update(over)
    return card


@pytest.fixture(scope="module", params=["square", "triangular"])
def model(request):
    return make(request.param)


def spins_for(model, rng, batch=2):
    return random_spins(model.lattice.N, rng, batch=batch)


# ------------------------------------------------------------------------------------------ autograd fields
def test_fields_equal_minus_gradient_by_finite_differences(model, rng):
    prov = MLProvider(model, model.lattice)
    s = spins_for(model, rng, batch=1)[0]
    assert fd_gradient_error(prov, s, rng) < 1e-6  # 3-vector displacements
    assert tangent_fd_error(prov, s, rng) < 1e-6  # rotations on the unit sphere


def test_gradcheck_of_fields_with_graph():
    """The training path back-propagates through the fields (create_graph=True): second derivatives checked."""
    m = make("square", 5, layers=1)
    s = torch.as_tensor(random_spins(25, np.random.default_rng(3), batch=1)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: energy_and_fields(m, x, create_graph=True)[1], (s,),
                                    eps=1e-6, atol=1e-5, fast_mode=True)


def test_training_graph_reaches_every_weight(model, rng):
    """A loss on energies and fields has a nonzero gradient for every parameter: no dead pathway (the mirror-odd
    and spin-odd blocks included), and inference outputs are detached."""
    model.requires_grad_(True)
    try:
        s = torch.as_tensor(spins_for(model, rng))
        e, h = energy_and_fields(model, s, create_graph=True)
        grads = torch.autograd.grad(h.pow(2).sum() + e.pow(2).sum(),
                                    [p for p in model.parameters() if p.numel()], allow_unused=True)
        names = [n for n, p in model.named_parameters() if p.numel()]
        dead = [n for n, g in zip(names, grads) if g is None or not float(g.abs().sum()) > 0]
        # the last bias of the readout is a constant shift of eps: the fields do not see it, the energy does
        assert dead == [], dead
    finally:
        model.requires_grad_(False)
    e, h = energy_and_fields(model, torch.as_tensor(spins_for(model, rng)))
    assert not e.requires_grad and not h.requires_grad


# ----------------------------------------------------------------------- the fast layer = the documented formulas
def _reference_layer(layer, x, index):
    """The interaction layer written out as its docstring states it, with loops over label blocks, products
    ``B(U[b1], V[b2])`` landing in block ``b1 ^ b2`` (``^ 2`` for an ``A2`` coupling), no Hadamard transform, no
    folded matrices: ``x [B, 4, 4, c, N]`` (full), ``index [N, M]`` the neighbour table."""
    c, cp, NL = layer.c, layer.cp, N_LABELS
    B, N = x.shape[0], x.shape[-1]
    xn = x[..., index]                                                     # [B, 4, 4, c, N, M]
    Y = [torch.as_tensor(y) for y in layer._Y]
    s_w = dict(zip(layer.s_irreps, layer.agg_s))
    A = []
    for k in range(layer.n_irreps):
        a_v = torch.einsum("klco,mka,bxlcnm->bxloan", layer.agg_v[k], Y[k], xn[:, 1:])
        a_s = (torch.einsum("klco,mka,blcnm->bloan", s_w[k], Y[k], xn[:, 0]) if k in s_w
               else torch.zeros(B, NL, layer.n_out[k], layer.dims[k], N, dtype=x.dtype))
        A.append(torch.cat([a_s[:, None], a_v], 1))                         # [B, 4, block, o, partner, N]
    mix = lambda w, t: torch.einsum("co,b...cn->b...on", w, t)            # noqa: E731
    Ps = [0.0] * NL
    Pv = [0.0] * NL
    for j, ((k1, k2, odd), C) in enumerate(zip(layer.couplings, layer._C)):
        U = A[k1][:, :, :, :cp]
        V = torch.einsum("ab,xlobn->xloan", torch.as_tensor(C), A[k2][:, :, :, cp:2 * cp].flatten(0, 1)
                         ).view(B, 4, NL, cp, -1, N)
        for b1 in range(NL):
            for b2 in range(NL):
                L = b1 ^ b2 ^ (2 if odd else 0)
                us, uv, vs, vv = U[:, 0, b1], U[:, 1:, b1], V[:, 0, b2], V[:, 1:, b2]
                Ps[L] = Ps[L] + mix(layer.mix_ps[L, 2 * j], (us * vs).sum(-2)) \
                    + mix(layer.mix_ps[L, 2 * j + 1], (uv * vv).sum((1, -2)))
                Pv[L] = Pv[L] + mix(layer.mix_pv[L, 3 * j], (us[:, None] * vv).sum(-2)) \
                    + mix(layer.mix_pv[L, 3 * j + 1], (uv * vs[:, None]).sum(-2)) \
                    + mix(layer.mix_pv[L, 3 * j + 2], torch.linalg.cross(uv, vv, dim=1).sum(-2))
    n_out = layer.mix_s.shape[0]
    Ts = [0.0] * NL
    Tv = [0.0] * NL
    lin = []
    for w, k in enumerate(layer.mirror_irreps):
        odd = k == layer.a2
        W = A[k][:, :, :, 2 * cp:3 * cp, 0]
        lin.append((A[k][:, :, :, 3 * cp:, 0], 2 if odd else 0))
        for b1 in range(NL):
            for b2 in range(NL):
                L = b1 ^ b2 ^ (2 if odd else 0)
                ws, wv = W[:, 0, b2], W[:, 1:, b2]
                if L < n_out:
                    Ts[L] = Ts[L] + mix(layer.mix_ts[L, 2 * w], Ps[b1] * ws) \
                        + mix(layer.mix_ts[L, 2 * w + 1], (Pv[b1] * wv).sum(1))
                if not layer.final:
                    Tv[L] = Tv[L] + mix(layer.mix_tv[L, 3 * w], Ps[b1][:, None] * wv) \
                        + mix(layer.mix_tv[L, 3 * w + 1], Pv[b1] * ws[:, None]) \
                        + mix(layer.mix_tv[L, 3 * w + 2], torch.linalg.cross(Pv[b1], wv, dim=1))
    upd = lambda m, L, comp, P: torch.einsum(                              # noqa: E731
        "oi,b...in->b...on", m[L], torch.cat([li[:, comp, L ^ f] for li, f in lin] + [P], -2))
    act = {"silu": torch.nn.functional.silu, "tanh": torch.tanh}[layer.activation]
    ds = [upd(layer.mix_s, L, 0, Ps[L]) + Ts[L] for L in range(n_out)]
    if layer.final:
        out = x.clone()
        out[:, 0, 0] = x[:, 0, 0] + act(ds[0])
        return out
    dv = torch.stack([upd(layer.mix_v, L, slice(1, 4), Pv[L]) + Tv[L] for L in range(NL)], 2)   # [B, 3, L, c, N]
    g = torch.sigmoid(torch.einsum("oc,bcn->bon", layer.gate.weight, ds[0]) + layer.gate.bias[:, None])
    g = g.view(B, 2 * NL - 1, c, N)
    new_s = torch.stack([act(ds[0])] + [ds[L] * g[:, L - 1] for L in range(1, NL)], 1)
    return x + torch.cat([new_s[:, None], dv * g[:, None, NL - 1:]], 1)


@pytest.mark.parametrize("kind, radius", [("square", 1.75), ("square", 2.5), ("triangular", 1.75),
                                          ("triangular", 2.65)])
def test_fast_layers_equal_the_documented_formulas(kind, radius, rng):
    """Each layer (Hadamard-basis products, folded matrices, compact first layer, shifted-slice gather) equals a
    direct transcription of the module docstring on the same features, to float64 rounding; radii 2.5 (square) and
    2.65 (triangular) bring in the mirror-odd A2 harmonics (an A2 linear term, triple product and couplings)."""
    L = Lattice(kind, 2).min_size(3 * message_geometry(kind, radius).reach)     # first, middle and final layers
    m = make(kind, L, radius=radius, layers=3)
    labels = [h.label for h in m.core.geometry.irreps]
    assert ("A2" in labels) == (radius > 2)
    s = torch.as_tensor(spins_for(m, rng))
    index = torch.as_tensor(neighbour_table(m.lattice, m.core.geometry))
    with torch.no_grad():
        x = m.core.embed(s, None)
        full = expand_start(x)
        for layer in m.core.layers:
            x = layer(x, m.gather)
            full = _reference_layer(layer, full, index)
            assert float((x - full).abs().max()) < 1e-11 * max(1.0, float(full.abs().max()))


def test_periodic_gather_is_the_neighbour_table_and_differentiates_twice():
    """The shifted-slice gather equals indexing by the neighbour table (a non-square lattice, both kinds); its
    backward (the adjoint) and the backward of that pass gradcheck / gradgradcheck."""
    for kind in ("square", "triangular"):
        lat = Lattice(kind, 7, 5)
        geo = message_geometry(kind, 2.5)
        op = PeriodicGather(lat, geo)
        x = torch.randn(2, 3, lat.N, dtype=torch.float64, requires_grad=True)
        index = torch.as_tensor(neighbour_table(lat, geo))                 # [N, M]
        assert torch.equal(op(x), x[..., index.t()])
        y = x[:1, :1].detach().requires_grad_(True)
        assert torch.autograd.gradcheck(op, (y,), fast_mode=True)
        assert torch.autograd.gradgradcheck(op, (y,), fast_mode=True)


@pytest.mark.parametrize("kind, radius", [("square", 2.5), ("triangular", 2.65)])
def test_symmetry_with_mirror_odd_harmonics(kind, radius, rng):
    """Radii whose offset orbits carry the A2 irrep (mirror-odd linear terms, triple products, couplings): exact
    O(3) with time reversal, translations and the point group, as for the default radius."""
    L = Lattice(kind, 2).min_size(2 * message_geometry(kind, radius).reach)
    m = make(kind, L, radius=radius)
    prov = MLProvider(m, m.lattice)
    s = spins_for(m, rng)
    for R in (random_orthogonal(rng, True), -np.eye(3)):
        dE, dh = rotation_deviation(prov, s, R)
        assert dE < 1e-9 and dh < 1e-10
    for name, perm in symmetry_permutations(m.lattice).items():
        dE, dh = symmetry_deviation(prov, s, perm)
        assert dE < 1e-9 and dh < 1e-10, name


# ------------------------------------------------------------------------------------------------ symmetry
@pytest.mark.parametrize("improper", [False, True])
def test_energy_invariant_and_fields_covariant_under_O3(model, rng, improper):
    R = random_orthogonal(rng, improper)
    dE, dh = rotation_deviation(MLProvider(model, model.lattice), spins_for(model, rng), R)
    assert dE < 1e-9 and dh < 1e-10


def test_time_reversal(model, rng):
    dE, dh = rotation_deviation(MLProvider(model, model.lattice), spins_for(model, rng), -np.eye(3))
    assert dE < 1e-9 and dh < 1e-10


def test_lattice_translations_and_point_group(model, rng):
    prov = MLProvider(model, model.lattice)
    s = spins_for(model, rng)
    for name, perm in symmetry_permutations(model.lattice).items():
        dE, dh = symmetry_deviation(prov, s, perm)
        assert dE < 1e-9 and dh < 1e-10, name


def _mirror_sign(name: str) -> int:
    return -1 if name.startswith("mirror") else 1


def test_every_feature_block_carries_its_parity(model, rng):
    """The bookkeeping itself: the final features of each label block transform as labelled — scalars of block b
    pick up det(R)^(b & 1) under O(3), vectors are polar (R v) in the spin-odd blocks and axial (det(R) R v) in the
    even ones; under a lattice operation every block moves with its site and the mirror-odd blocks change sign
    under mirrors. Every block is nonzero, so this is not satisfied trivially (pseudoscalar chiralities included)."""
    s = torch.as_tensor(spins_for(model, rng))
    with torch.no_grad():
        fs, fv = model.features(s)
        for b in range(N_LABELS):
            assert float(fs[..., b, :].abs().max()) > 1e-4 and float(fv[..., b, :].abs().max()) > 1e-4, b
        for improper in (False, True):
            R = torch.as_tensor(random_orthogonal(rng, improper))
            det = float(torch.linalg.det(R))
            gs, gv = model.features(s @ R.T)
            for b in range(N_LABELS):
                odd = b & 1
                assert float((gs[..., b, :] - det ** odd * fs[..., b, :]).abs().max()) < 1e-10
                want = det ** (1 - odd) * torch.einsum("xy,bnyc->bnxc", R, fv[..., b, :])
                assert float((gv[..., b, :] - want).abs().max()) < 1e-10
        for name, perm in symmetry_permutations(model.lattice).items():
            gs, gv = model.features(torch.as_tensor(permute(s.numpy(), perm)))
            for b in range(N_LABELS):
                sign = _mirror_sign(name) ** (b >> 1)
                assert float((gs[:, perm, b] - sign * fs[:, :, b]).abs().max()) < 1e-10, (name, b)
                assert float((gv[:, perm, :, b] - sign * fv[:, :, :, b]).abs().max()) < 1e-10, (name, b)


# ------------------------------------------------------------------------------------------------ locality
@pytest.mark.parametrize("kind, radius, L", [("square", 1.75, 12), ("triangular", 1.0, 10)])
def test_locality_to_the_stated_radius(kind, radius, L, rng):
    """eps_i sees exactly the spins within cutoff = layers * reach: replacing every spin beyond it leaves eps_i
    unchanged, replacing only those at distance > cutoff - 0.01 (the last shell reached) changes it. h_i sees
    2 cutoff: beyond it unchanged to rounding, between cutoff and 2 cutoff changed."""
    m = make(kind, L, radius=radius)
    rc = m.cutoff
    assert rc == pytest.approx(2 * message_geometry(kind, radius).reach)
    prov = MLProvider(m, m.lattice)
    s = random_spins(m.lattice.N, rng)
    site = 17
    change, scale = locality_change(prov, s, site, 2 * rc, rng)
    assert scale > 1e-3
    assert change < 1e-12 * max(1.0, scale) + 1e-13
    inner, _ = locality_change(prov, s, site, rc, rng)
    assert inner > 1e-6
    d = m.lattice.distances_from(site)

    def eps_after_replacing(mask):
        new = s.copy()
        r = rng.standard_normal((int(mask.sum()), 3))
        new[mask] = r / np.linalg.norm(r, axis=1, keepdims=True)
        with torch.no_grad():
            return float(m.site_energies(torch.as_tensor(new)[None])[0, site])

    with torch.no_grad():
        e0 = float(m.site_energies(torch.as_tensor(s)[None])[0, site])
    assert abs(eps_after_replacing(d > rc + 1e-9) - e0) < 1e-13
    assert abs(eps_after_replacing(d > rc - 0.01) - e0) > 1e-8     # the stated radius is reached


# ------------------------------------------------------------------------------------ batches and lattices
def test_batched_equals_unbatched_and_chunks(model, rng):
    s = spins_for(model, rng, batch=3)
    assert batched_vs_single(MLProvider(model, model.lattice), s) < 1e-10
    a = MLProvider(model, model.lattice, chunk=1).compute(s)
    b = MLProvider(model, model.lattice, chunk=64, site_chunk=10).compute(s)   # N > site_chunk: one at a time
    assert float((a.fields - b.fields).abs().max()) < 1e-12
    assert float((a.energy - b.energy).abs().max()) < 1e-10


def test_same_network_on_a_larger_lattice(model, rng):
    """A configuration continued periodically onto a lattice twice as large (and one 3x along a1 only) has the
    tiled site energies, fields and the multiplied energy: weights shared, neighbour tables rebuilt."""
    small = model.lattice
    s = spins_for(model, rng, batch=1)
    a = MLProvider(model, small).compute(s)
    with torch.no_grad():
        eps_a = model.site_energies(torch.as_tensor(s)).numpy()
    for L1, L2 in ((2 * small.L1, 2 * small.L2), (3 * small.L1, small.L2)):
        big = Lattice(small.kind, L1, L2)
        bm = model.on_lattice(big)
        assert bm.core is model.core and bm.lattice == big and bm.on_lattice(small).lattice == small
        st = tile(s, small, big)
        b = MLProvider(bm, big).compute(st)
        k = big.N // small.N
        assert abs(float(b.energy[0]) - k * float(a.energy[0])) < 1e-9
        assert float((b.fields - torch.as_tensor(tile(a.fields.numpy(), small, big))).abs().max()) < 1e-10
        with torch.no_grad():
            eps_b = bm.site_energies(torch.as_tensor(st)).numpy()
        assert np.abs(eps_b - tile(eps_a[..., None], small, big)[..., 0]).max() < 1e-12


def test_float32_fields_agree_with_float64(rng):
    m64, m32 = make("square"), make("square", dtype=torch.float32)
    s = random_spins(36, rng, batch=4)
    h64 = MLProvider(m64, m64.lattice).compute(s)
    h32 = MLProvider(m32, m32.lattice).compute(s)
    assert h32.fields.dtype == torch.float64 and h32.energy.dtype == torch.float64
    rel = float((h32.fields - h64.fields).pow(2).mean().sqrt() / h64.fields.pow(2).mean().sqrt())
    assert rel < 1e-4
    assert float((h32.energy - h64.energy).abs().max()) < 1e-4 * 36


def test_set_normalization_and_energy_sum(model, rng):
    """E = sum_i eps_i (accumulated in float64), eps_i = e_ref + scale * MLP: e_ref shifts E by N e_ref."""
    s = torch.as_tensor(spins_for(model, rng))
    with torch.no_grad():
        E = model(s)
        assert E.dtype == torch.float64
        assert float((E - model.site_energies(s).sum(-1)).abs().max()) < 1e-10
        model.set_normalization(e_ref=-5.0, scale=0.5)
        assert float((model(s) - E - model.lattice.N).abs().max()) < 1e-9
        model.set_normalization(e_ref=-6.0, scale=0.5)
    assert float(model.e_ref) == -6.0 and float(model.scale) == 0.5


# ---------------------------------------------------------------------------------------------- global inputs
def test_global_inputs_hook(rng):
    """n_globals = 1 (a chemical potential, issue 22): the energy depends on it smoothly (dE/dg by finite
    differences), every symmetry still holds at fixed g, and a model that needs it refuses to run without it."""
    m = make("square", n_globals=1)
    s = spins_for(m, rng)
    st = torch.as_tensor(s)
    g = torch.tensor([[0.3], [-0.2]], dtype=torch.float64, requires_grad=True)
    E = m(st, globals=g)
    (dg,) = torch.autograd.grad(E.sum(), g)
    h = 1e-5
    with torch.no_grad():
        fd = (m(st, globals=g + h) - m(st, globals=g - h)) / (2 * h)
    assert float((fd - dg[:, 0]).abs().max()) < 1e-6 * max(1.0, float(fd.abs().max()))
    with torch.no_grad():
        assert float((m(st, globals=g[[1, 0]].detach()) - E.detach()).abs().min()) > 1e-6    # g matters
    prov = MLProvider(m, m.lattice, globals=[0.3])
    assert fd_gradient_error(prov, s[0], rng) < 1e-6
    dE, dh = rotation_deviation(prov, s, random_orthogonal(rng, True))
    assert dE < 1e-9 and dh < 1e-10
    for name, perm in symmetry_permutations(m.lattice).items():
        dE, dh = symmetry_deviation(prov, s, perm)
        assert dE < 1e-9 and dh < 1e-10, name
    with pytest.raises(NearsightError, match="needs globals"):
        m(st)
    with pytest.raises(NearsightError, match="needs 1 global"):
        MLProvider(m, m.lattice)
    with pytest.raises(NearsightError, match="globals must have shape"):
        m(st, globals=torch.zeros(2, 2, dtype=torch.float64))
    with pytest.raises(NearsightError, match="takes no global inputs"):
        make("square")(st, globals=g)


# ------------------------------------------------------------------------------------------------ files
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_model_file_round_trip_is_bit_identical(tmp_path, rng, dtype):
    m = make("triangular", dtype=dtype)
    path = str(tmp_path / "m.pt")
    save_model(path, m, card_for(m))
    payload = torch.load(path, weights_only=True)
    assert payload["family"] == "mpnn" and payload["card"]["family"] == "mpnn" and "descriptor" not in payload
    json.dumps(payload["network"])                                   # the config is JSON-able
    back = load_model(path)
    assert isinstance(back, MPNNModel) and back.dtype == dtype and back.lattice == m.lattice
    assert back.config() == m.config() and back.card["name"] == "mpnn-test"
    for k, v in m.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    s = spins_for(m, rng)
    a, b = MLProvider(m, m.lattice).compute(s), MLProvider(path, m.lattice).compute(s)
    assert torch.equal(a.fields, b.fields) and torch.equal(a.energy, b.energy)
    big = load_model(path, Lattice("triangular", 12))
    assert big.lattice.N == 144 and MLProvider(big, big.lattice).compute(random_spins(144, rng)).fields.shape == (144, 3)


def test_bp_files_without_family_still_load(tmp_path, rng):
    """Files written before the message-passing family (no 'family' key: the shipped ones) are BP models."""
    from test_ml import card_for as bp_card, make_model
    bp = make_model(6)
    path = tmp_path / "bp.pt"
    save_model(str(path), bp, bp_card(bp))
    payload = torch.load(path, weights_only=True)
    assert payload["family"] == "bp"
    del payload["family"], payload["card"]["family"]
    torch.save(payload, tmp_path / "old.pt")
    old = load_model(str(tmp_path / "old.pt"))
    s = random_spins(36, rng)
    assert torch.equal(MLProvider(old, old.lattice).compute(s).fields, MLProvider(bp, bp.lattice).compute(s).fields)


def _models_cli(argv):
    from nearsight.cli import models as models_cmd
    p = argparse.ArgumentParser()
    models_cmd.add_parser(p.add_subparsers(dest="command"))
    args = p.parse_args(argv)
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = args.func(args)
    return rc, buf.getvalue()


def test_models_cli_and_model_option(tmp_path, monkeypatch, rng):
    """'nearsight models' lists a message-passing model beside BP ones; '--model NAME' loads it (build_provider,
    the fields command), with the physics read from the card."""
    m = make("square")
    monkeypatch.setattr(cards_mod, "MODELS_DIR", tmp_path)
    save_model(str(tmp_path / "demo-mpnn.pt"), m, card_for(m, name="demo-mpnn"))
    rc, out = _models_cli(["models"])
    assert rc == 0 and out.startswith("demo-mpnn") and " mpnn " in out and "mu=-2" in out
    rc, out = _models_cli(["models", "show", "demo-mpnn", "--json"])
    assert rc == 0 and json.loads(out)["family"] == "mpnn"
    lat = m.lattice
    prov = build_provider({"lattice": lat, "solver": "ml", "model": "demo-mpnn", "J": 6.0, "mu": -2.0})
    assert prov.describe()["model_family"] == "mpnn" and prov.cutoff == m.cutoff
    s = random_spins(lat.N, rng)
    assert torch.equal(prov.compute(s).fields, MLProvider(m, lat).compute(s).fields)
    with pytest.raises(NearsightError, match="J=5 but the model has J=6"):
        build_provider({"lattice": lat, "solver": "ml", "model": "demo-mpnn", "J": 5.0})
    from nearsight.cli import main
    np.save(tmp_path / "s.npy", s)
    rc = main(["fields", "--solver", "ml", "--model", "demo-mpnn", "--lattice", "square", "--size", "6",
               "--spins", str(tmp_path / "s.npy"), "--out", str(tmp_path / "f.npz")])
    assert rc == 0
    assert np.abs(np.load(tmp_path / "f.npz")["fields"] - MLProvider(m, lat).compute(s).fields.numpy()).max() == 0


@pytest.mark.parametrize("how, match", [
    ("family", "family 'gnn'"), ("card_family", "card says family 'bp'"),
    ("option", "unknown mpnn option.*'bogus'"), ("weights", "incompatible with this network"),
    ("card", "lacks kT"),
])
def test_corrupt_or_incompatible_mpnn_files(tmp_path, how, match):
    m = make("square")
    path = tmp_path / "m.pt"
    save_model(str(path), m, card_for(m))
    payload = torch.load(path, weights_only=True)
    if how == "family":
        payload["family"] = "gnn"
    elif how == "card_family":
        payload["card"]["family"] = "bp"
    elif how == "option":
        payload["network"]["bogus"] = 1
    elif how == "weights":
        payload["network"]["channels"] = 3
    else:
        del payload["card"]["kT"]
    torch.save(payload, path)
    with pytest.raises(NearsightError, match=match):
        load_model(str(path))


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("config, match", [
    ({"layers": 0}, "layers must be an integer >= 1"), ({"channels": 2.5}, "channels must be an integer"),
    ({"radius": 0.5}, "radius must be >= 1"), ({"radius": "far"}, "radius must be a number"),
    ({"hidden": []}, "hidden must be a non-empty list"), ({"activation": "relu"}, "activation must be one of"),
    ({"widht": 3}, "unknown mpnn option.*'widht'"), ({"family": "bp"}, "builds family 'mpnn'"),
])
def test_bad_config(config, match):
    with pytest.raises(NearsightError, match=match):
        build_mpnn(config, Lattice("square", 12))


def test_bad_lattice_and_spins():
    m = make("square")
    with pytest.raises(NearsightError, match="too small for cutoff"):
        m.on_lattice(Lattice("square", 4))
    with pytest.raises(NearsightError, match="trained on the square lattice.*'triangular'"):
        m.on_lattice(Lattice("triangular", 8))
    with pytest.raises(NearsightError, match=r"spins must have shape \[B, 36, 3\]"):
        m(torch.zeros(1, 25, 3, dtype=torch.float64))
    with pytest.raises(NearsightError, match="trained on the square lattice"):
        MLProvider(m, Lattice("triangular", 8))


def test_defaults_and_interface():
    """The documented defaults: shells 1 and sqrt2 (square) / 1 and sqrt3 (triangular), 3 layers, so a site
    energy sees 4.24 / 5.20 and a field twice that; the model holds on 12x12, the training size."""
    for kind, cut in (("square", 3 * 2 ** 0.5), ("triangular", 3 * 3 ** 0.5)):
        m = build_mpnn({}, Lattice(kind, 12))
        assert m.dtype == torch.float32 and m.cutoff == pytest.approx(cut)
        cfg = m.config()
        assert cfg["family"] == "mpnn" and cfg["layers"] == 3 and cfg["dtype"] == "float32"
        assert build_mpnn(cfg, m.lattice).config() == cfg
        assert m.shape()["n_parameters"] == sum(p.numel() for p in m.parameters())
        assert m.state_dict().keys() == build_mpnn(cfg, Lattice(kind, 16)).state_dict().keys()


# ------------------------------------------------------------------------------------- the provider contract
class TestMPNNContractSquare(ProviderContract):
    """The tiny random float64 model; 12x12 square (10x10 triangular at radius 1.0): lattices with sites beyond the
    field radius 2 x cutoff of a site (as in test_locality_to_the_stated_radius). Tolerances of the module
    docstring (1e-9 energy, 1e-10 fields); finite differences 1e-6."""

    kind, L, radius = "square", 12, 1.75

    def make_provider(self):
        m = make(self.kind, self.L, radius=self.radius)
        return MLProvider(m, m.lattice)


class TestMPNNContractTriangular(TestMPNNContractSquare):
    kind, L, radius = "triangular", 10, 1.0
