"""Exact diagonalization: fields are -dE/dS, ground-state energetics, observables, bad input."""
import numpy as np
import pytest
import torch

from nearsight import Lattice, NearsightError, SDModel
from nearsight.electrons import EDProvider
from nearsight.states import make_state, random_spins
from nearsight.testing import ProviderContract, fd_gradient_error

ENSEMBLES = [dict(mu=0.3, kT=0.0), dict(mu=-0.5, kT=0.1), dict(filling=0.3, kT=0.0), dict(filling=0.3, kT=0.05)]


@pytest.mark.parametrize("kind", ["square", "triangular"])
@pytest.mark.parametrize("ens", ENSEMBLES)
def test_fields_are_minus_energy_gradient(kind, ens, rng):
    lat = Lattice(kind, 4, 4)
    ed = EDProvider(lat, SDModel(J=2.0, t2=0.15, B=(0.1, -0.2, 0.3), **ens))
    # central differences along 3-vector displacements (step 5e-7, nearsight.testing.fd_gradient_error): ~1e-9
    # relative; kT=0 has kinks only at level crossings at the Fermi level, which random spins avoid with probability 1.
    assert fd_gradient_error(ed, random_spins(lat.N, rng), rng) < 1e-6


def test_batched_equals_unbatched(rng):
    lat = Lattice("triangular", 4, 4)
    ed = EDProvider(lat, SDModel(J=1.5, filling=0.25, kT=0.02))
    S = random_spins(lat.N, rng, batch=3)
    rb = ed(S)
    for b in range(3):
        r = ed(S[b])
        assert torch.allclose(r.energy, rb.energy[b], atol=1e-12)
        assert torch.allclose(r.fields, rb.fields[b], atol=1e-12)


def test_global_rotation_invariance(rng):
    lat = Lattice("square", 4, 4)
    ed = EDProvider(lat, SDModel(J=3.0, filling=0.4, kT=0.05))
    S = random_spins(lat.N, rng)
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    r1, r2 = ed(S), ed(S @ q.T)
    assert abs(float(r1.energy - r2.energy)) < 1e-10
    assert torch.allclose(r2.fields, r1.fields @ torch.as_tensor(q.T), atol=1e-10)


def test_ferromagnet_matches_band_sum():
    """FM at J: the levels are eps_k -+ J with eps_k = -2(cos k1 + cos k2 + cos(k2 - k1)) (triangular)."""
    lat = Lattice("triangular", 6, 6)
    m = SDModel(J=1.0, filling=0.25)
    k = 2 * np.pi * np.arange(6) / 6
    eps = np.array([-2 * (np.cos(a) + np.cos(b) + np.cos(b - a)) for a in k for b in k])
    levels = np.sort(np.concatenate([eps - 1.0, eps + 1.0]))
    want = levels[: m.n_electrons(lat.N)].sum()
    assert abs(float(EDProvider(lat, m)(make_state("ferro", lat)).energy) - want) < 1e-10


@pytest.mark.parametrize("J", [1.0, 2.0])
def test_tetrahedral_ground_state_at_quarter_filling(J):
    """Triangular n=1/4: tetrahedral < stripe < 120 deg < FM (12x12, kT=0). docs/nearsightedness.md §4 quotes at J=2:
    -2.2517, -2.2298, -2.1857, -2.1299 per site, which this code reproduces to 1e-4."""
    lat = Lattice("triangular", 12, 12)
    ed = EDProvider(lat, SDModel(J=J, filling=0.25))
    S = np.stack([make_state(n, lat) for n in ("tetrahedral", "stripe", "120", "ferro")])
    e = ed(S).energy.numpy() / lat.N
    assert np.all(np.diff(e) > 0), e
    if J == 2.0:
        assert np.allclose(e, [-2.2517, -2.2298, -2.1857, -2.1299], atol=1e-4)


def test_lightly_doped_double_exchange_phase_separates():
    """Square J=6 at n=0.485 (canonical, kT=0.01, 16x16): the two-phase state (Néel with one FM puddle holding 12.5%
    of the sites, states.puddle) has a lower free energy than either uniform phase, and its mu* lies between theirs
    (measured: F/N = -6.1677, -6.1285, -5.9316; mu* = -4.43, -5.99, -2.32)."""
    lat = Lattice("square", 16, 16)
    S = np.stack([make_state(n, lat) for n in ("puddle", "neel", "ferro")])
    assert abs((S[0, :, 2] > 0).mean() - 0.5 - 0.0625) < 1e-12         # 32 FM sites: 16 flipped Néel sites
    r = EDProvider(lat, SDModel(J=6.0, filling=0.485, kT=0.01))(S)
    f = r.energy.numpy() / lat.N
    assert f[0] < f[1] - 0.03 and f[1] < f[2] - 0.1, f
    mu = r.extras["mu"].numpy()
    assert mu[1] < mu[0] < mu[2], mu


def test_120_ground_state_at_half_filling():
    lat = Lattice("triangular", 12, 12)
    ed = EDProvider(lat, SDModel(J=3.0, filling=0.5))
    names = ("120", "tetrahedral", "stripe", "ferro")
    e = ed(np.stack([make_state(n, lat) for n in names])).energy.numpy()
    assert np.argmin(e) == 0, dict(zip(names, e / lat.N))


def test_neel_below_ferro_on_square_at_half_filling():
    lat = Lattice("square", 8, 8)
    ed = EDProvider(lat, SDModel(J=6.0, filling=0.5))
    e = ed(np.stack([make_state("neel", lat), make_state("ferro", lat)])).energy.numpy()
    assert e[0] < e[1]


def test_observables_count_and_spin_density(rng):
    lat = Lattice("square", 4, 4)
    m = SDModel(J=2.0, filling=0.375, kT=0.05)
    ed = EDProvider(lat, m, observables=True)
    r = ed(random_spins(lat.N, rng))
    assert abs(float(r.extras["charge"].sum()) - m.n_electrons(lat.N)) < 1e-9
    assert torch.allclose(r.fields, m.J * r.extras["spin_density"], atol=1e-12)
    w = np.linspace(-12, 12, 4001)
    dos = ed.dos(random_spins(lat.N, rng), w, broadening=0.05)
    assert abs(np.trapezoid(dos, w) - 2.0) < 0.02  # 2 states per site (Lorentzian tails cut at +-12)


def test_bad_input_is_clear():
    lat = Lattice("square", 4, 4)
    ed = EDProvider(lat, SDModel(J=1.0, filling=0.5))
    s = make_state("ferro", lat)
    with pytest.raises(NearsightError, match="unit vectors"):
        ed(2 * s)
    bad = s.copy()
    bad[0, 0] = np.nan
    with pytest.raises(NearsightError, match="NaN"):
        ed(bad)
    with pytest.raises(NearsightError, match="shape"):
        ed(s[:5])
    with pytest.raises(NearsightError, match="filling"):
        SDModel(J=1.0, filling=1.2)
    with pytest.raises(NearsightError, match="kT"):
        SDModel(J=1.0, filling=0.5, kT=-0.1)
    with pytest.raises(NearsightError, match="exactly one"):
        SDModel(J=1.0, mu=0.0, filling=0.5)


# ------------------------------------------------------------------------------------- the provider contract
class TestEDContractSquareCanonical(ProviderContract):
    """4x4 square, canonical n = 0.375 at kT = 0.05 with t2, B = 0. Tolerances: energies ~N*|e| ~ 40 and
    eigenvalues of a reordered matrix agree to ~1e-14 relative, so exact identities hold to ~1e-12; the chemical
    potential of the canonical ensemble is solved to its own tolerance, which moves the fields by less than that
    (default 1e-9 energy, 1e-10 fields kept; measured ~1e-13)."""

    not_applicable = {"locality": "an exact solver: every field depends on every spin (nearsightedness is a decay, "
                                  "measured by nearsight.analysis.locality, not a cutoff)"}

    def make_provider(self):
        return EDProvider(Lattice("square", 4, 4), SDModel(J=2.0, t2=0.15, filling=0.375, kT=0.05))


class TestEDContractTriangularGrand(TestEDContractSquareCanonical):
    """4x4 triangular, fixed mu = -1 at kT = 0.1, B = 0 (same tolerances)."""

    def make_provider(self):
        return EDProvider(Lattice("triangular", 4, 4), SDModel(J=2.0, mu=-1.0, kT=0.1))
