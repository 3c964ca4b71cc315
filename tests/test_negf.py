"""NEGF provider: physics checks against independent calculations (ED of finite systems, Landauer integrals,
open-channel counting) and the one property that sets it apart: under bias the fields are not a gradient."""
import numpy as np
import pytest
import torch
from scipy.integrate import quad

from nearsight import Lattice, SDModel
from nearsight.analysis.locality import locality_profile
from nearsight.cli import main
from nearsight.electrons import NEGFProvider
from nearsight.errors import NearsightError
from nearsight.hamiltonian import PAULI, dense_hamiltonian
from nearsight.lattice import Strip
from nearsight.testing import ProviderContract

P = PAULI.numpy()
MODEL = SDModel(J=1.5, mu=0.3, kT=0.05, B=(0.02, -0.01, 0.03))


def unit(rng, n):
    s = rng.standard_normal((n, 3))
    return s / np.linalg.norm(s, axis=1, keepdims=True)


def strip_hamiltonian(Lx, Ly, spins, J, lead=0, t=1.0):
    """Closed ``(Lx + 2 lead) x Ly`` strip, open in x and periodic in y (images add, as in hopping_matrix), built
    independently of the NEGF code; the ``lead`` columns on each side carry no local spins. Basis ``2 i + s``,
    ``i = x + Lt*y``. Returns H and the indices of the sample sites in the order ``x + Lx*y``."""
    Lt = Lx + 2 * lead
    N = Lt * Ly
    T = np.zeros((N, N))
    for x in range(Lt):
        for y in range(Ly):
            i = x + Lt * y
            if x + 1 < Lt:
                T[i, i + 1] = T[i + 1, i] = -t
            if Ly > 1:
                j = x + Lt * ((y + 1) % Ly)
                T[i, j] += -t
                T[j, i] += -t
    H = np.kron(T, np.eye(2)).astype(complex)
    sample = np.array([lead + x + Lt * y for y in range(Ly) for x in range(Lx)])
    for k, i in enumerate(sample):
        H[2 * i:2 * i + 2, 2 * i:2 * i + 2] += -J * np.einsum("a,ast->st", spins[k], P)
    return H, sample


def ed_observables(H, sample, mu, kT):
    """Spin density ``Tr sigma D_ii`` on the sample sites and the sample band energy ``Tr_s(D H_s)``."""
    e, V = np.linalg.eigh(H)
    D = (V / (1 + np.exp((e - mu) / kT))) @ V.conj().T          # D_ab = <c+_b c_a>
    orb = (2 * sample[:, None] + np.arange(2)).ravel()
    Ds, Hs = D[np.ix_(orb, orb)], H[np.ix_(orb, orb)]
    mag = np.stack([np.einsum("st,kts->k", P[a], Ds.reshape(len(sample), 2, len(sample), 2)[
        np.arange(len(sample)), :, np.arange(len(sample)), :]) for a in range(3)], 1).real
    return mag, float(np.trace(Hs @ Ds).real)


# ------------------------------------------------------------------------------------------- equilibrium
def test_isolated_sample_contour_equals_ed_with_package_hamiltonian(rng):
    """leads=False: the contour integral (arc + line + Fermi poles) is the Fermi-Dirac density matrix of the finite
    open strip. Reference: the package's own dense Hamiltonian of the 3x3 torus with the x-wrap bonds cut."""
    lat = Lattice("square", 3, 3)
    S = unit(rng, 9)
    H = dense_hamiltonian(lat, MODEL, torch.as_tensor(S)[None])[0].numpy()
    for i in range(9):
        x, y = lat.xy[i]
        if x == 0:
            j = lat.index(2, y)
            H[2 * i:2 * i + 2, 2 * j:2 * j + 2] = H[2 * j:2 * j + 2, 2 * i:2 * i + 2] = 0
    mag, eband = ed_observables(H, np.arange(9), MODEL.mu, MODEL.kT)
    res = NEGFProvider(lat, MODEL, leads=False, tol=1e-11)(S)
    h_ref = MODEL.J * mag + np.array(MODEL.B)
    assert np.abs(res.fields.numpy() - h_ref).max() < 1e-10
    assert abs(float(res.energy) - (eband - S.sum(0) @ np.array(MODEL.B))) < 1e-10


@pytest.mark.parametrize("Lx,Ly", [(4, 1), (3, 3)])
def test_zero_bias_density_matches_ed_with_long_leads(rng, Lx, Ly):
    """V = 0 with semi-infinite leads vs ED of the sample between finite leads of length L: the closed-system error
    falls monotonically (measured 6e-3, 3e-4, 5e-7, 1e-12 on the chain and 1e-3, 7e-5, 2e-7, 3e-13 on the 3x3
    strip for L = 10, 20, 40, 80) to the quadrature floor; the sample band energy converges the same way
    (kT = 0.1 sets the closed-system convergence rate)."""
    S = unit(rng, Lx * Ly)
    model = SDModel(J=1.5, mu=0.3, kT=0.1, B=MODEL.B)
    res = NEGFProvider(Strip(Lx, Ly), model, tol=1e-11)(S)
    mag = res.extras["spin_density"].numpy()
    errs, eerrs = [], []
    for L in (10, 20, 40, 80):
        H, sample = strip_hamiltonian(Lx, Ly, S, model.J, lead=L)
        m_ref, e_ref = ed_observables(H, sample, model.mu, model.kT)
        errs.append(np.abs(mag - m_ref).max())
        eerrs.append(abs(float(res.energy) + S.sum(0) @ np.array(MODEL.B) - e_ref))
    assert all(a > b for a, b in zip(errs, errs[1:])), errs
    assert errs[0] > 1e-4 and errs[-1] < 1e-9
    assert eerrs[-1] < 1e-9 and eerrs[0] > eerrs[-1]
    # the fields against the ED of the longest leads (h = J <sigma> + B from an independent density matrix)
    assert np.abs(res.fields.numpy() - (model.J * m_ref + np.array(model.B))).max() < 1e-9 * model.J
    assert np.allclose(res.extras["charge_current"].numpy(), 0)
    assert np.abs(res.extras["bond_current"].numpy()).max() < 1e-9


def test_single_site_between_leads_against_closed_form(rng):
    """Strip(1, 1), V = 0: one spin S between two semi-infinite chains (t = 1), independent of the package's
    quadrature and recursion. Along S the spins decouple into an impurity level ``v = -J`` (majority) or ``+J``
    (minority) in an infinite chain: ``G(E) = 1 / (sqrt(E-2) sqrt(E+2) - v)``, a band density
    ``a / (pi (a^2 + v^2))`` with ``a = sqrt(4 - E^2)``, plus a bound state at ``sign(v) sqrt(v^2 + 4)`` of weight
    ``|v| / sqrt(v^2 + 4)`` (the two add to one state). Occupations by QUADPACK; ``h = J (n_maj - n_min) S + B``
    and ``E = -J (n_maj - n_min) - B.S``."""
    S = unit(rng, 1)
    m = MODEL
    f = lambda E: 1 / (1 + np.exp((E - m.mu) / m.kT))                                  # noqa: E731
    n = {}
    for v in (-m.J, m.J):
        band = lambda E: np.sqrt(4 - E * E) / (np.pi * (4 - E * E + v * v))           # noqa: E731
        w_b, E_b = abs(v) / np.sqrt(v * v + 4), np.sign(v) * np.sqrt(v * v + 4)
        assert abs(quad(band, -2, 2, epsabs=1e-13)[0] + w_b - 1) < 1e-10          # one state per spin
        n[v] = quad(lambda E: f(E) * band(E), -2, 2, points=[m.mu], epsabs=1e-13, limit=200)[0] + f(E_b) * w_b
    polarization = n[-m.J] - n[m.J]
    res = NEGFProvider(Strip(1, 1), m, tol=1e-11)(S)
    assert 0.1 < polarization < 1
    assert np.abs(res.fields.numpy() - (m.J * polarization * S + np.array(m.B))).max() < 1e-9
    assert abs(float(res.energy) - (-m.J * polarization - float(S[0] @ np.array(m.B)))) < 1e-9


def test_wide_band_tail_is_converged(rng):
    """Wide-band leads: moving the contour start from -1e4 to -1e2 bounds (analytic tail O(R^-3)) changes nothing."""
    S = unit(rng, 6)
    out = []
    for reach in (1e2, 1e4):
        p = NEGFProvider(Strip(3, 2), MODEL, bias=0.4, wide_band=0.7, tol=1e-11)
        p.wide_band_reach = reach
        r = p(S)
        out.append((r.extras["charge"].numpy(), r.fields.numpy()))
    assert np.abs(out[0][0] - out[1][0]).max() < 1e-7 and np.abs(out[0][1] - out[1][1]).max() < 1e-9


# ---------------------------------------------------------------------------------------------- transport
@pytest.mark.parametrize("Lx,Ly,wb", [(4, 1, None), (3, 3, None), (3, 2, 0.8)])
def test_current_conservation_under_bias(rng, Lx, Ly, wb):
    """Noncollinear spins, V = 0.6: Meir-Wingreen at each contact gives I_L = -I_R, the bond current from the
    density matrix is the same through every cross-section, and all equal the Landauer integral of the Caroli
    transmission (an independent quadrature: QUADPACK on T(E) (f_L - f_R))."""
    S = unit(rng, Lx * Ly)
    p = NEGFProvider(Strip(Lx, Ly), MODEL, bias=0.6, wide_band=wb, tol=1e-11)
    r = p(S)
    IL, IR = r.extras["charge_current"].numpy()
    assert IL > 1e-3 and abs(IL + IR) < 1e-9
    assert np.abs(r.extras["bond_current"].numpy() - IL).max() < 1e-9
    kT = MODEL.kT
    f = lambda E, mu: 1 / (1 + np.exp((E - mu) / kT))
    lo, hi = p.mu_R - 38 * kT, p.mu_L + 38 * kT
    eps = -2 * np.cos(2 * np.pi * np.arange(Ly) / Ly) if Ly > 1 else np.zeros(1)
    edges = sorted({round(e, 9) for e in np.concatenate([eps - 2, eps + 2]) if lo < e < hi}) if wb is None else []
    landauer = quad(lambda E: p.transmission(S, [E])[0] * (f(E, p.mu_L) - f(E, p.mu_R)), lo, hi,
                    points=[p.mu_L, p.mu_R, *edges], epsabs=1e-12, limit=200)[0] / (2 * np.pi)
    assert abs(IL - landauer) < 1e-9
    assert r.extras["spin_current"].shape == (2, 3) and np.abs(r.extras["spin_current"].numpy()).max() > 1e-4


def test_zero_field_spin_currents_vanish_for_collinear_spins():
    """All spins along z: the sigma-current is along z only (spin is conserved about z) and I^s_L = -I^s_R."""
    S = np.tile([0.0, 0.0, 1.0], (4, 1))
    r = NEGFProvider(Strip(4, 1), SDModel(J=1.0, mu=0.3, kT=0.05), bias=0.5, tol=1e-11)(S)
    js = r.extras["spin_current"].numpy()
    assert np.abs(js[:, :2]).max() < 1e-12 and abs(js[0, 2] + js[1, 2]) < 1e-9 and abs(js[0, 2]) > 1e-3


@pytest.mark.parametrize("Ly", [1, 3, 4])
def test_clean_strip_transmission_counts_open_channels(Ly):
    """J = 0 (or any J with all spins parallel, via J = 0 reference): T(E) = 2 x number of transverse modes m with
    |E - eps_m| < 2t (eps_m = -2t cos(2 pi m/Ly); 0 for the chain): integer steps."""
    p = NEGFProvider(Strip(5, Ly), SDModel(J=0.0, mu=0.0, kT=0.05))
    E = np.array([-3.9, -3.0, -2.5, -1.5, -0.7, 0.1, 0.4, 1.3, 2.5, 3.1, 3.9, 4.5])  # none on a band edge
    eps = np.zeros(1) if Ly == 1 else -2 * np.cos(2 * np.pi * np.arange(Ly) / Ly)
    open_ch = 2 * (np.abs(E[:, None] - eps[None, :]) < 2).sum(1)
    T = p.transmission(np.tile([0.0, 0.0, 1.0], (5 * Ly, 1)), E)
    assert np.abs(T - open_ch).max() < 1e-10
    if Ly == 1:
        assert open_ch.max() == 2 and open_ch.min() == 0


def test_parallel_spins_transmission_is_rotation_invariant_and_bounded(rng):
    """J on, all spins parallel: each spin channel scatters off a uniform well of depth J, so 0 <= T <= open
    channels; a global rotation of the spins leaves T unchanged (the leads are spin degenerate)."""
    p = NEGFProvider(Strip(4, 3), SDModel(J=1.0, mu=0.0, kT=0.05))
    E = np.linspace(-3.45, 3.45, 15)  # none on a band edge (eps_m +- 2)
    Tz = p.transmission(np.tile([0.0, 0.0, 1.0], (12, 1)), E)
    n = unit(rng, 1)[0]
    Tn = p.transmission(np.tile(n, (12, 1)), E)
    eps = -2 * np.cos(2 * np.pi * np.arange(3) / 3)
    open_ch = 2 * (np.abs(E[:, None] - eps[None, :]) < 2).sum(1)
    assert np.abs(Tz - Tn).max() < 1e-8
    assert (Tz >= -1e-12).all() and (Tz <= open_ch + 1e-10).all() and (Tz < open_ch - 1e-3).any()


# ------------------------------------------------------------------------------------- not a gradient
def _tangent_jacobian(p, S, eps=1e-4):
    """K[i a, j b] = d(h_i . t_ia)/d theta_jb for rotations of S_j by theta about the axes ``ax[j, b]`` (i != j):
    for a gradient field (h = -dOmega/dS) it is the Hessian of -Omega in these coordinates, hence symmetric."""
    N = len(S)
    a = np.cross(S, [0.3, 0.5, 0.8])
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    ax = np.stack([a, np.cross(S, a)], 1)

    def rot(v, u, th):
        return v * np.cos(th) + np.cross(u, v) * np.sin(th) + u * (u @ v) * (1 - np.cos(th))

    confs = []
    for j in range(N):
        for b in range(2):
            for sg in (1, -1):
                s = S.copy()
                s[j] = rot(S[j], ax[j, b], sg * eps)
                confs.append(s)
    h = p(np.stack(confs)).fields.numpy().reshape(N, 2, 2, N, 3)
    dh = (h[:, :, 0] - h[:, :, 1]) / (2 * eps)
    K = np.einsum("jbix,iax->iajb", dh, np.cross(ax, S[:, None, :])) * (1 - np.eye(N))[:, None, :, None]
    return np.abs(K - K.transpose(2, 3, 0, 1)).max() / 2, np.abs(K + K.transpose(2, 3, 0, 1)).max() / 2


def test_fields_are_a_gradient_at_zero_bias_and_not_under_bias(rng):
    """Antisymmetric part of the tangent-space Jacobian: quadrature-level (1e-10) at V = 0, where h = -dOmega/dS;
    nonzero and growing with V under bias (measured on this 2x2 strip: 0.0056, 0.012, 0.024 at V = 0.25, 0.5, 1
    against a symmetric part of 0.15)."""
    S = unit(rng, 4)
    asym = []
    for V in (0.0, 0.25, 0.5, 1.0):
        a, s = _tangent_jacobian(NEGFProvider(Strip(2, 2), MODEL, bias=V, tol=1e-11), S)
        asym.append(a / s)
    assert asym[0] < 1e-8
    assert 1e-3 < asym[1] < asym[2] < asym[3]
    assert NEGFProvider(Strip(2, 2), MODEL).conservative is False


def test_batched_equals_single_and_rotation_covariance(rng):
    """Batch == one by one; at B = 0 a global spin rotation rotates the fields (spin-degenerate leads)."""
    S = np.stack([unit(rng, 6) for _ in range(2)])
    m = SDModel(J=1.5, mu=0.3, kT=0.05)
    p = NEGFProvider(Strip(3, 2), m, bias=0.5)
    both = p(S)
    for b in range(2):
        one = p(S[b])
        assert torch.allclose(both.fields[b], one.fields, atol=1e-12)
        assert torch.allclose(both.extras["charge_current"][b], one.extras["charge_current"], atol=1e-12)
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    q *= np.sign(np.linalg.det(q))
    rot = p(S[0] @ q.T)
    assert np.abs(rot.fields.numpy() - both.fields[0].numpy() @ q.T).max() < 1e-8
    assert abs(float(rot.extras["charge_current"][0]) - float(both.extras["charge_current"][0, 0])) < 1e-8


# ------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs,needle", [
    (dict(model=SDModel(J=1.0, filling=0.3, kT=0.05)), "filling"),
    (dict(model=SDModel(J=1.0, mu=0.0, kT=0.0)), "kT > 0"),
    (dict(model=SDModel(J=1.0, mu=0.0, kT=0.05, t2=0.2)), "t2"),
    (dict(leads=False, bias=0.5), "needs leads"),
    (dict(lead_width=2), "lead_width"),
    (dict(wide_band=-1.0), "wide_band"),
    (dict(bias=float("nan")), "bias"),
    (dict(geometry=Lattice("triangular", 3, 3)), "square"),
    (dict(geometry=(3, 3)), "Strip"),
])
def test_bad_input_is_a_clear_error(kwargs, needle):
    kw = dict(geometry=Strip(3, 3), model=SDModel(J=1.0, mu=0.0, kT=0.05))
    kw.update(kwargs)
    geometry, model = kw.pop("geometry"), kw.pop("model")
    with pytest.raises(NearsightError, match=needle):
        NEGFProvider(geometry, model, **kw)


def test_unconverged_quadrature_raises(rng):
    p = NEGFProvider(Strip(3, 1), SDModel(J=1.0, mu=0.0, kT=0.05), bias=0.5, tol=1e-30)
    with pytest.raises(NearsightError, match="did not converge"):
        p(unit(rng, 3))
    with pytest.raises(NearsightError, match="unit vectors"):
        NEGFProvider(Strip(3, 1), SDModel(J=1.0, mu=0.0, kT=0.05))(2 * unit(rng, 3))
    with pytest.raises(NearsightError, match="leads"):
        NEGFProvider(Strip(3, 1), SDModel(J=1.0, mu=0.0, kT=0.05), leads=False).transmission(unit(rng, 3), [0.0])
    with pytest.raises(NearsightError, match="Lx"):
        Strip(0, 2)


# ------------------------------------------------------------------------------------------------- CLI
def test_cli_fields_negf(tmp_path, capsys, rng):
    """``nearsight fields --solver negf --bias V`` on a square 4x2 lattice = NEGFProvider on Strip(4, 2)."""
    S = unit(rng, 8)
    np.save(tmp_path / "s.npy", S)
    args = ["fields", "--lattice", "square", "--size", "4", "--size2", "2", "--J", "1.5", "--mu", "0.3",
            "--kT", "0.05", "--solver", "negf", "--bias", "0.5", "--spins", str(tmp_path / "s.npy")]
    assert main([*args, "--out", str(tmp_path / "f.npz")]) == 0
    out = np.load(tmp_path / "f.npz")
    ref = NEGFProvider(Strip(4, 2), SDModel(J=1.5, mu=0.3, kT=0.05), bias=0.5)(S)
    assert np.allclose(out["fields"], ref.fields.numpy(), atol=1e-12)
    assert np.isclose(out["energy"], float(ref.energy), atol=1e-12)
    capsys.readouterr()
    bad = [(["--solver", "negf", "--filling", "0.3"], "mu"),
           (["--solver", "ed", "--bias", "0.5"], "--bias applies to --solver negf or a driven ML model only"),
           (["--solver", "negf", "--kT", "0"], "kT")]
    for extra, needle in bad:
        base = ["fields", "--lattice", "square", "--size", "4", "--size2", "2", "--J", "1.5", "--kT", "0.05",
                "--spins", str(tmp_path / "s.npy"), "--out", str(tmp_path / "g.npz")]
        if "--filling" not in extra:
            base += ["--mu", "0.3"]
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1
    assert not (tmp_path / "g.npz").exists()


def test_locality_profile_runs_on_a_strip(rng):
    """The library's locality analysis on NEGF: replacing spins beyond R changes a site's field for small R, and not
    at all once R covers the whole strip (distances open along x)."""
    st = Strip(5, 2)
    configs = np.stack([unit(rng, st.N), unit(rng, st.N)])
    res = locality_profile(NEGFProvider(st, SDModel(J=1.0, mu=0.0, kT=0.1), bias=0.3), configs, [1.0, 5.0],
                           sites_per_draw=2, seed=1, progress=False)
    assert res.ratio[0] > 1e-3 and res.ratio[1] == 0.0

# ------------------------------------------------------------------------------------- the provider contract
class TestNEGFContractZeroBias(ProviderContract):
    """3x3 strip between leads at V = 0, B = 0. Symmetry and batching identities hold to quadrature rounding
    (measured <= 1.5e-14 in energy and 5e-16 in the fields; defaults 1e-9 / 1e-10 kept)."""

    not_applicable = {
        "gradient": "the energy is the sample band energy, not a potential of the fields (electrons.negf module "
                    "docstring); at V = 0 the fields are -dOmega/dS of the open-system grand potential, checked by "
                    "the symmetric tangent Jacobian in test_fields_are_a_gradient_at_zero_bias_and_not_under_bias",
        "locality": "an exact solver (no cutoff): every field depends on every spin"}
    bias = 0.0

    def make_provider(self):
        return NEGFProvider(Strip(3, 3), SDModel(J=1.5, mu=0.3, kT=0.1), bias=self.bias)

    def make_bias_reversed_provider(self):
        return NEGFProvider(Strip(3, 3), SDModel(J=1.5, mu=0.3, kT=0.1), bias=-self.bias)


class TestNEGFContractUnderBias(TestNEGFContractZeroBias):
    """The same at V = 0.5: the mirror x -> Lx-1-x maps it to the provider at V = -0.5."""

    bias = 0.5
    not_applicable = {**TestNEGFContractZeroBias.not_applicable,
                      "time_reversal": "a current-carrying steady state is not time-reversal invariant (measured "
                                       "|h(-S) + h(S)| ~ 4e-2 at V = 0.5)"}
