"""The generalized-potential model ``h_perp = P(-dV/dS) + S x (-dW/dS)`` for driven (nonconservative) fields.

What is checked, and the tolerances:

* recovery of each part on a synthetic driven field with known ``V`` and ``W`` (float32 model; thresholds from
  measured errors, see ``test_recovers_each_part_separately``);
* exact identities of the construction (float64 model, random weights): both parts transverse (``|S.h| ~ 1e-15``,
  asserted at 1e-12); the work 1-form of the conservative part is closed (antisymmetric tangent Jacobian
  ~1e-15 of its scale, asserted 1e-10), that of the nonconservative part is not (asserted > 1e-2 of its scale); along the precession about each part, ``dV/dt = 0`` and
  ``dW/dt = -sum |h_nc|^2`` by central differences (step 1e-5, truncation ~1e-10, asserted at 1e-6 relative);
* symmetries: global O(3) spin rotations (``V``, ``W`` invariant to ~1e-13, asserted 1e-10; ``h_c`` rotates as a
  vector, ``h_nc`` as a pseudovector), translation along ``y`` and the mirror ``x -> Lx-1-x`` with ``V -> -V``
  (exact: asserted at 1e-10), full translation invariance on a periodic lattice; locality and the open seam;
* files, cards, the provider and bad input (clear :class:`NearsightError`).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nearsight import Lattice, NearsightError
from nearsight.lattice import Strip
from nearsight.ml import save_model
from nearsight.ml.driven import (TRANSFER_STENCILS, GeneralizedMLProvider, GeneralizedPotentialModel, generalized_card,
                                 load_generalized, save_generalized)
from nearsight.training.driven import fit_generalized
from nearsight.testing import ProviderContract, random_orthogonal

LX, LY = 6, 5
GEO = Strip(LX, LY)
N = LX * LY
# cutoff 2 with environment bonds and chiralities only at distance 1 (50 descriptor features): enough for the
# synthetic potentials below, which are built from nearest-neighbour bonds; small so the fit takes ~10 s.
DESC = {"cutoff": 2.0, "local_cutoff": 1.0}
XS, YS = np.arange(N) % LX, np.arange(N) // LX
# model settings the exact-identity tests run with: no spin-transfer part; the dx stencil; every stencil at once
# with the column inputs
TRANSFERS = [pytest.param({"spin_transfer": False}, id="potentials"), pytest.param({"spin_transfer": True}, id="dx"),
             pytest.param({"spin_transfer": tuple(TRANSFER_STENCILS), "column_range": 3}, id="all-columns")]


# ----------------------------------------------------------------------------------------- synthetic truth
def _strip_tables():
    bonds = [(i, i + 1) for i in range(N) if XS[i] < LX - 1] + [(i, XS[i] + LX * ((YS[i] + 1) % LY)) for i in range(N)]
    bi, bj = (torch.tensor([b[k] for b in bonds]) for k in (0, 1))
    right = torch.tensor([i + 1 if XS[i] < LX - 1 else N for i in range(N)])      # N = "no spin" (a lead)
    left = torch.tensor([i - 1 if XS[i] > 0 else N for i in range(N)])
    prof = torch.tensor(np.exp(-XS / 2.0) - np.exp(-(LX - 1 - XS) / 2.0))        # odd under x -> Lx-1-x
    return bi, bj, right, left, prof


BI, BJ, RIGHT, LEFT, PROF = _strip_tables()


def true_potentials(S: torch.Tensor, bias: torch.Tensor):
    """A driven field on the open strip with the symmetries of a two-terminal device (y translation and mirror,
    x -> Lx-1-x with V -> -V, global O(3)); both potentials are sums of local invariants:

        V = -(1 + V_b^2/2) sum_<ij> S_i.S_j
        W = V_b [ 1.5 sum_i c(x_i) sum_{j nn i} (S_i.S_j)^2  +  sum_i (S_i.(S_{i+x} - S_{i-x}))^3 ],
        c(x) = exp(-x/2) - exp(-(Lx-1-x)/2)

    (bonds inside the strip only; the y direction is periodic; ``V_b`` is the bias)."""
    d = (S[:, BI] * S[:, BJ]).sum(-1)
    V = -(1.0 + 0.5 * bias ** 2) * d.sum(-1)
    m = torch.zeros(S.shape[0], N, dtype=S.dtype).index_add(1, BI, d ** 2).index_add(1, BJ, d ** 2)
    Sz = torch.cat([S, torch.zeros_like(S[:, :1])], 1)
    p = (S * (Sz[:, RIGHT] - Sz[:, LEFT])).sum(-1)
    W = bias * (1.5 * (PROF * m).sum(-1) + (p ** 3).sum(-1))
    return V, W


def true_parts(S: torch.Tensor, bias: torch.Tensor):
    S = S.detach().requires_grad_(True)
    V, W = true_potentials(S, bias)
    gV, = torch.autograd.grad(V.sum(), S, retain_graph=True)
    gW, = torch.autograd.grad(W.sum(), S)
    S = S.detach()
    return -gV - (-gV * S).sum(-1, keepdim=True) * S, torch.cross(S, -gW, dim=-1)


def configurations(M: int, rng) -> torch.Tensor:
    """Random, ferromagnetic + noise and Neel + noise (noise amplitude 0.3-1), in turn."""
    out = []
    for k in range(M):
        n = rng.standard_normal(3)
        n /= np.linalg.norm(n)
        noise = rng.uniform(0.3, 1.0) * rng.standard_normal((N, 3))
        s = [rng.standard_normal((N, 3)), n + noise,
             np.where((XS + YS) % 2 == 0, 1.0, -1.0)[:, None] * n + noise][k % 3]
        out.append(s / np.linalg.norm(s, axis=1, keepdims=True))
    return torch.tensor(np.array(out))


def rel(a, b) -> float:
    return float(((a - b).pow(2).sum() / b.pow(2).sum()).sqrt())


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    S, b = configurations(400, rng), torch.tensor(rng.uniform(-1, 1, 400))
    Ste, bte = configurations(60, rng), torch.tensor(rng.uniform(-1, 1, 60))
    hc, hn = true_parts(S, b)
    torch.manual_seed(0)
    model = GeneralizedPotentialModel(GEO, DESC, hidden=[32, 32]).to(torch.float32)
    hist = fit_generalized(model, S, hc + hn, b, epochs=20, lr=1e-2, batch_size=16, seed=0)
    return model, hist, (Ste, bte, *true_parts(Ste, bte))


def random_model(geometry=GEO, seed: int = 0, **kw) -> GeneralizedPotentialModel:
    """Random weights, inputs standardized on random configurations: both parts O(1)."""
    torch.manual_seed(seed)
    model = GeneralizedPotentialModel(geometry, DESC, hidden=[16, 16], **kw).to(torch.float64)
    n = geometry.N
    s = torch.randn(8, n, 3, dtype=torch.float64)
    model.set_normalization(s / s.norm(dim=-1, keepdim=True), torch.linspace(-1, 1, 8), scale=1.0)
    return model.requires_grad_(False)


def unit(rng, B=3, n=N) -> torch.Tensor:
    s = torch.as_tensor(rng.standard_normal((B, n, 3)))
    return s / s.norm(dim=-1, keepdim=True)


# ---------------------------------------------------------------------------------------- 1. recovery
def test_recovers_each_part_separately(fitted):
    """Fit on 400 configurations (biases uniform in [-1, 1]) to the total transverse field only; on 60 held-out
    configurations each part must be recovered on its own. The decomposition is unique up to constants (module
    docstring of nearsight.ml.driven.model), so this checks that the fit finds the two generators, not just their sum.

    Measured (float32, 20 epochs of batch 16, ~13 s on one busy core; untrained model ~100%):
    data seed 0 (this test): conservative 4.5%, nonconservative 13.3%, total 9.5%;
    other draws of the data (a scratch run of the same setup, seeds 0 / 1 / 2): conservative 4.5% / 4.1% / 4.6%,
    nonconservative 11.9% / 10.8% / 12.7%.
    The nonconservative part is the harder one (a product of the bias with a lead-profile and a current-direction
    term; each term alone fits to 8-11%); the fit is limited by the training steps a unit test can afford (the
    training error is still ~7%), not by representability. Thresholds: 8% (1.8x the measured value) and 15%
    (1.13x: the margin is thin; the same fit on other draws of the data gave the values above)."""
    model, hist, (S, b, hc, hn) = fitted
    pc, pn = model.parts(S.float(), b.float())
    e_c, e_n, e_t = rel(pc.double(), hc), rel(pn.double(), hn), rel((pc + pn).double(), hc + hn)
    print(f"held-out relative RMS error: conservative {e_c:.4f}, nonconservative {e_n:.4f}, total {e_t:.4f}; "
          f"train {hist['transverse_rms_ratio']:.4f}")
    assert e_c < 0.08 and e_n < 0.15
    assert hist["loss"][-1] < 0.05 * hist["loss"][0]
    # at zero bias the steady state is equilibrium: the nonconservative part vanishes identically (built in)
    _, pn0 = model.parts(S[:4].float(), 0.0)
    assert float(pn0.abs().max()) == 0.0


# ------------------------------------------------------------------------------------ 2. exact identities
@pytest.mark.parametrize("transfer", TRANSFERS)
def test_both_parts_are_transverse(rng, transfer):
    model, s = random_model(**transfer), unit(rng)
    hc, hn = model.parts(s, torch.tensor([0.7, -0.3, 1.2], dtype=torch.float64))
    assert float(hc.abs().max()) > 0.01 and float(hn.abs().max()) > 0.01
    assert float((hc * s).sum(-1).abs().max()) < 1e-12
    assert float((hn * s).sum(-1).abs().max()) < 1e-12


def _curl(model, rng, bias, sites=(7, 8, 14)):
    """Exterior derivative of the work 1-form ``omega_k = sum_i h_i . dS_i/dalpha_k`` in tangent coordinates
    ``S_i(alpha) = (S_i + sum_k alpha_k e_k) / |...|`` of a few sites (the antisymmetric part of the tangent
    Jacobian of the field): ``C = d omega - (d omega)^T`` at ``alpha = 0`` for each part, and its scale."""
    s0 = unit(rng, 1)[0]
    basis = []
    for i in sites:
        a = torch.cross(s0[i], torch.as_tensor(rng.standard_normal(3)), dim=-1)
        a = a / a.norm()
        basis += [(i, a), (i, torch.cross(s0[i], a, dim=-1))]

    def omega(alpha):
        w = s0.clone()
        for (i, e), al in zip(basis, alpha):
            w[i] = w[i] + al * e
        S = w / w.norm(dim=-1, keepdim=True)
        hc, hn = model.parts(S, bias, create_graph=True)
        out = []
        for h in (hc, hn):
            out.append(torch.stack([h[i] @ ((e - S[i] * (S[i] @ e)) / w[i].norm()) for i, e in basis]))
        return torch.stack(out)

    J = torch.autograd.functional.jacobian(omega, torch.zeros(len(basis), dtype=torch.float64))   # [2, K, K]
    C = J - J.transpose(-1, -2)
    return C.abs().amax((-1, -2)), J.abs().amax((-1, -2))


def test_conservative_part_is_a_gradient_and_nonconservative_part_is_not(rng):
    """The work 1-form of P(-dV/dS) is exact (d omega = 0: closed-loop work vanishes, the tangent Jacobian is
    symmetric); that of S x (-dW/dS) is not. Measured: curl/scale 8e-16 vs 1.8."""
    model = random_model()
    curl, scale = _curl(model, rng, 0.8)
    assert float(curl[0]) < 1e-10 * float(scale[0])
    assert float(curl[1]) > 1e-2 * float(scale[1])
    curl0, scale0 = _curl(model, rng, 0.0)                   # zero bias: W = 0, the whole field is conservative
    assert float(curl0[1]) == 0.0 and float(curl0[0]) < 1e-10 * float(scale0[0])


def test_precession_conserves_V_and_W_part_is_a_gradient_flow(rng):
    """dS/dt = -S x h_c conserves V; dS/dt = -S x h_nc = -(dW/dS)_perp lowers W at the rate sum |h_nc|^2."""
    model, s, bias = random_model(), unit(rng, 2), torch.tensor([0.9, -0.6], dtype=torch.float64)
    hc, hn = model.parts(s, bias)
    eps = 1e-5
    vc, vn = -torch.cross(s, hc, dim=-1), -torch.cross(s, hn, dim=-1)
    dV = (model.potentials(s + eps * vc, bias)[0] - model.potentials(s - eps * vc, bias)[0]) / (2 * eps)
    dW = (model.potentials(s + eps * vn, bias)[1] - model.potentials(s - eps * vn, bias)[1]) / (2 * eps)
    rate = hn.pow(2).sum((-1, -2))
    assert float(dV.abs().max()) < 1e-6 * float(hc.pow(2).sum((-1, -2)).max())
    assert float(((dW + rate) / rate).abs().max()) < 1e-6


# ------------------------------------------------------------------------------------------- 3. symmetry
@pytest.mark.parametrize("improper", [False, True])
@pytest.mark.parametrize("transfer", TRANSFERS)
def test_global_spin_rotation(rng, improper, transfer):
    model, s = random_model(**transfer), unit(rng, 2)
    bias = torch.tensor([0.5, -1.0], dtype=torch.float64)
    R = torch.as_tensor(random_orthogonal(rng, improper))
    V0, W0 = model.potentials(s, bias)
    V1, W1 = model.potentials(s @ R.T, bias)
    assert float((V1 - V0).abs().max()) < 1e-10 and float((W1 - W0).abs().max()) < 1e-10
    r0, r1 = model.evaluate(s, bias), model.evaluate(s @ R.T, bias)
    hc0, hn0, hc1, hn1 = r0["h_conservative"], r0["h_nonconservative"], r1["h_conservative"], r1["h_nonconservative"]
    det = float(torch.linalg.det(R))
    assert float((hc1 - hc0 @ R.T).abs().max()) < 1e-10            # a vector
    if transfer["spin_transfer"]:   # a P D + b S x D: a vector plus a pseudovector, rotates as a vector
        ht0, ht1 = r0["h_transfer"], r1["h_transfer"]
        assert float(ht0.abs().max()) > 1e-2
        hn0, hn1 = hn0 - ht0, hn1 - ht1
        if not improper:
            assert float((ht1 - ht0 @ R.T).abs().max()) < 1e-10
    assert float((hn1 - det * hn0 @ R.T).abs().max()) < 1e-10      # S x (-dW/dS): a pseudovector, even under S -> -S


def _permute(s, perm):
    out = torch.empty_like(s)
    out[..., perm, :] = s
    return out


@pytest.mark.parametrize("transfer", TRANSFERS)
def test_translation_along_y_and_mirror_with_bias_reversal(rng, transfer):
    model, s = random_model(**transfer), unit(rng, 2)
    bias = torch.tensor([0.5, -1.0], dtype=torch.float64)
    V0, W0 = model.potentials(s, bias)
    h0 = model.fields(s, bias)
    for perm, flip in ((torch.as_tensor(XS + LX * ((YS + 1) % LY)), 1.0),            # y -> y+1
                       (torch.as_tensor(XS + LX * ((LY - YS) % LY)), 1.0),            # y -> -y
                       (torch.as_tensor((LX - 1 - XS) + LX * YS), -1.0)):             # x -> Lx-1-x, V -> -V
        V1, W1 = model.potentials(_permute(s, perm), flip * bias)
        h1 = model.fields(_permute(s, perm), flip * bias)
        assert float((V1 - V0).abs().max()) < 1e-10 and float((W1 - W0).abs().max()) < 1e-10
        assert float((h1 - _permute(h0, perm)).abs().max()) < 1e-10
    # the mirror alone (same bias) is not a symmetry: the current has a direction
    h2 = model.fields(_permute(s, torch.as_tensor((LX - 1 - XS) + LX * YS)), bias)
    assert float((h2 - _permute(h0, torch.as_tensor((LX - 1 - XS) + LX * YS))).abs().max()) > 1e-3


@pytest.mark.parametrize("kw", [{}, {"spin_transfer": tuple(TRANSFER_STENCILS), "column_range": 2}])
def test_periodic_lattice_is_fully_translation_invariant(rng, kw):
    lat = Lattice("square", 6, 5)
    model, s, bias = random_model(lat, **kw), unit(rng, 1), torch.tensor([0.7], dtype=torch.float64)
    x, y = lat.xy[:, 0], lat.xy[:, 1]
    h0 = model.fields(s, bias)
    perm = torch.as_tensor(lat.index(x + 2, y + 1))
    assert float((model.fields(_permute(s, perm), bias) - _permute(h0, perm)).abs().max()) < 1e-10


def test_locality_and_open_seam(rng):
    """The field on a site depends only on spins within twice the cutoff; in particular the sites at x = 0 never
    see those at x = Lx-1 across the periodic seam of the padded lattice."""
    model, s, bias = random_model(Strip(7, 5)), unit(rng, 1, 35), torch.tensor([0.8], dtype=torch.float64)
    h0 = model.fields(s, bias)
    far = torch.as_tensor(np.arange(35)[np.arange(35) % 7 >= 5])            # x = 5, 6: distance >= 5 > 4 from x=0
    s2 = s.clone()
    s2[:, far] = unit(rng, 1, len(far))[0]
    h1 = model.fields(s2, bias)
    near = torch.as_tensor(np.arange(35)[np.arange(35) % 7 == 0])
    assert float((h1[:, near] - h0[:, near]).abs().max()) < 1e-12
    assert float((h1 - h0).abs().max()) > 1e-3


def test_column_inputs_reach_column_range_and_no_further(rng):
    """With ``column_range = K`` (> the descriptor cutoff 2) a site term sees K columns along x, so the field on
    x = 0 depends on columns up to 2K = 6 and not beyond; the column inputs make it reach that far."""
    model = random_model(Strip(9, 5), spin_transfer=tuple(TRANSFER_STENCILS), column_range=3)
    assert model.cutoff == 3.0
    s, bias = unit(rng, 1, 45), torch.tensor([0.8], dtype=torch.float64)
    h0 = model.fields(s, bias)
    x, near = np.arange(45) % 9, torch.as_tensor(np.arange(45)[np.arange(45) % 9 == 0])
    for cols, changes in (((7, 8), False), ((6,), True)):
        s2 = s.clone()
        far = torch.as_tensor(np.arange(45)[np.isin(x, cols)])
        s2[:, far] = unit(rng, 1, len(far))[0]
        d = float((model.fields(s2, bias)[:, near] - h0[:, near]).abs().max())
        assert (d > 1e-6) if changes else (d < 1e-12), (cols, d)


@pytest.mark.parametrize("transfer", TRANSFERS)
def test_batched_equals_single(rng, transfer):
    model, s = random_model(**transfer), unit(rng, 3)
    bias = torch.tensor([0.2, 0.0, -0.9], dtype=torch.float64)
    hb = model.fields(s, bias)
    for k in range(3):
        assert float((model.fields(s[k], float(bias[k])) - hb[k]).abs().max()) < 1e-12


# -------------------------------------------------------------------------------- 4. files, provider, errors
def _card(model, **over):
    card = generalized_card(model, name="gen-test", t=1.0, J=2.0, kT=0.02, mu=0.0, filling=None, B=[0, 0, 0],
                            biases=[-1.0, 1.0], training_data={"provider": "synthetic", "n_frames": 0})
    card.update(over)
    return card


@pytest.mark.parametrize("transfer", TRANSFERS)
def test_save_load_round_trip_and_provider(tmp_path, rng, transfer):
    model = random_model(**transfer)
    path = save_generalized(str(tmp_path / "gen.pt"), model, _card(model))
    loaded = load_generalized(path)
    assert loaded.card["kind"] == "generalized" and loaded.card["geometry"] == {"type": "strip", "Lx": LX, "Ly": LY}
    s, bias = unit(rng, 2), torch.tensor([0.4, -0.4], dtype=torch.float64)
    for a, b in zip(model.parts(s, bias), loaded.parts(s, bias)):      # same weights; rebuilt descriptor: roundoff
        assert float((a - b).abs().max()) < 1e-12
    prov = GeneralizedMLProvider(path, bias=0.4)
    assert prov.conservative is False and prov.lattice == GEO
    res = prov.compute(s[0].numpy())
    hc, hn = model.parts(s[0], 0.4)
    assert torch.allclose(res.fields, hc + hn, atol=1e-12, rtol=0)
    assert torch.allclose(res.energy, model.potentials(s[0], 0.4)[0], atol=1e-10, rtol=0)
    assert torch.allclose(res.extras["nonconservative_fields"], hn, atol=1e-12, rtol=0)
    # the same weights on a longer strip (the descriptor and lead inputs are rebuilt)
    longer = GeneralizedMLProvider(loaded, Strip(9, 5), bias=0.4)
    assert longer.compute(unit(rng, 1, 45)[0]).fields.shape == (45, 3)


def test_bad_input(tmp_path, rng):
    model = random_model()
    s = unit(rng, 2)
    with pytest.raises(NearsightError, match="bias is required"):
        model.fields(s, None)
    with pytest.raises(NearsightError, match="one value per configuration"):
        model.fields(s, torch.zeros(3))
    with pytest.raises(NearsightError, match=r"expected \[B, 30, 3\]"):
        model.fields(unit(rng, 2, 25), 0.5)
    with pytest.raises(NearsightError, match="needs bias"):
        GeneralizedMLProvider(model)
    with pytest.raises(NearsightError, match="square lattice only"):
        GeneralizedPotentialModel(Lattice("triangular", 6), DESC)
    with pytest.raises(NearsightError, match="width Ly must hold"):
        GeneralizedPotentialModel(Strip(6, 3), DESC)
    with pytest.raises(NearsightError, match="stencil names"):
        GeneralizedPotentialModel(GEO, DESC, spin_transfer=("dx", "upwind"))
    with pytest.raises(NearsightError, match="stencil names"):
        GeneralizedPotentialModel(GEO, DESC, spin_transfer=("dx", "dx"))
    with pytest.raises(NearsightError, match="column_range must be an integer from 0"):
        GeneralizedPotentialModel(GEO, DESC, column_range=-1)
    with pytest.raises(NearsightError, match="kind"):
        save_generalized(str(tmp_path / "x.pt"), model, _card(model, kind="bp"))
    with pytest.raises(NearsightError, match="filling or mu"):
        save_generalized(str(tmp_path / "x.pt"), model, _card(model, mu=None))
    # a conservative Behler–Parrinello model file is refused with advice
    from test_ml import card_for, make_model
    bp = make_model(6)
    save_model(str(tmp_path / "bp.pt"), bp, card_for(bp))
    with pytest.raises(NearsightError, match="load_model"):
        load_generalized(str(tmp_path / "bp.pt"))
    with pytest.raises(NearsightError, match="does not exist"):
        load_generalized(str(tmp_path / "missing.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(NearsightError, match="corrupt|cannot be loaded safely"):
        load_generalized(str(tmp_path / "junk.pt"))


# ---------------------------------------------------------------------------------- 5. the spin-transfer part
def zhang_li(S: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """A Zhang–Li-like lattice torque field, ``V [0.6 S x D - 0.3 P D]``, ``D_i = S_{i+x} - S_{i-x}`` (missing
    neighbours beyond the leads are zero), with the two-terminal symmetries of the strip."""
    Sz = torch.cat([S, torch.zeros_like(S[:, :1])], 1)
    D = Sz[:, RIGHT] - Sz[:, LEFT]
    PD = D - (D * S).sum(-1, keepdim=True) * S
    return bias[:, None, None] * (0.6 * torch.cross(S, D, dim=-1) - 0.3 * PD)


def test_spin_transfer_part_learns_a_zhang_li_torque_that_potentials_cannot():
    """Fit the same data (a synthetic Zhang–Li field, the kind of torque a current exerts on a texture) with and
    without the spin-transfer part. Its linearization is antisymmetric, which no P(-dV/dS) + S x (-dW/dS) has
    (module docstring, limitation 1), so without it the held-out error stays large.

    Measured (float32, 12 epochs, 240 configurations): with the part 2.5%, without 102% (no better than zero).
    Thresholds 5% and 40%."""
    rng = np.random.default_rng(3)
    S, b = configurations(240, rng), torch.tensor(rng.uniform(-1, 1, 240))
    Ste, bte = configurations(40, rng), torch.tensor(rng.uniform(-1, 1, 40))
    errs = {}
    for transfer in (True, False):
        torch.manual_seed(0)
        model = GeneralizedPotentialModel(GEO, DESC, hidden=[32, 32], spin_transfer=transfer).to(torch.float32)
        fit_generalized(model, S, zhang_li(S, b), b, epochs=12, lr=1e-2, batch_size=16, seed=0)
        errs[transfer] = rel(model.fields(Ste.float(), bte.float()).double(), zhang_li(Ste, bte))
    print(f"held-out relative RMS error: with spin transfer {errs[True]:.4f}, without {errs[False]:.4f}")
    assert errs[True] < 0.05
    assert errs[False] > 0.40


# ------------------------------------------------------------------------------------- the provider contract
class TestDrivenContractZeroBias(ProviderContract):
    """The random float64 model (with the dx spin-transfer part) on the 6x5 strip at V = 0, where the
    nonconservative part vanishes identically and the fields are P(-dV/dS): the energy V is their potential on the
    sphere ("tangent": the model's fields are transverse only). Tolerances 1e-9 / 1e-10 as the exact-identity tests
    above; locality to the field radius 2 x cutoff = 4. Without column inputs: with them a site sees whole
    columns, so its receptive field is a slab |dx| <= 2 x column_range, not a disk
    (test_column_inputs_reach_column_range_and_no_further)."""

    gradient = "tangent"
    bias = 0.0
    transfer = {"spin_transfer": True}

    def make_provider(self):
        return GeneralizedMLProvider(random_model(**self.transfer), bias=self.bias)

    def make_bias_reversed_provider(self):
        return GeneralizedMLProvider(random_model(**self.transfer), bias=-self.bias)


class TestDrivenContractUnderBias(TestDrivenContractZeroBias):
    """V = 0.7: the energy V is the potential of the conservative part only (``extras["conservative_fields"]``);
    the mirror x -> Lx-1-x maps the provider to the one at -V."""

    bias = 0.7
    gradient_fields = "conservative_fields"
    not_applicable = {"time_reversal": "under bias the nonconservative part S x (-dW/dS) is even under S -> -S "
                                       "while the conservative part is odd (test_global_spin_rotation checks each "
                                       "part): a driven steady state is not time-reversal invariant"}
