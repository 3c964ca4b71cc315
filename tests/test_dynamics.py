"""LLG: analytic precession and damping, error order, norm, energy conservation, relaxation, Boltzmann."""
import numpy as np
import pytest
import torch

from nearsight import Lattice, NearsightError, SDModel
from nearsight.dynamics import SCHEMES, run_llg
from nearsight.electrons import EDProvider
from nearsight.electrons.classical import HeisenbergProvider
from nearsight.states import make_state, random_spins

B = 1.3


def single_spin_exact(t, alpha, theta0=np.pi / 2):
    """One spin in B z: tan(theta/2) = tan(theta0/2) exp(-alpha B t/(1+a^2)), phi = B t/(1+a^2)."""
    g = B * t / (1 + alpha**2)
    th = 2 * np.arctan(np.tan(theta0 / 2) * np.exp(-alpha * g))
    return np.array([np.sin(th) * np.cos(g), np.sin(th) * np.sin(g), np.cos(th)])


@pytest.mark.parametrize("scheme", list(SCHEMES))
@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_precession_and_damping_second_order(scheme, alpha):
    lat = Lattice("square", 2, 2)
    p = HeisenbergProvider(lat, 0.0, (0, 0, B))
    T, errs = 4.0, []
    for dt in (0.04, 0.02):
        n = int(round(T / dt))
        r = run_llg(p, make_state("ferro", lat) @ np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0]]).T,
                    steps=n, dt=dt, alpha=alpha, scheme=scheme, every=n, progress=False)
        s = r.spins[0].numpy()
        assert np.abs(np.linalg.norm(s, axis=1) - 1).max() < 1e-13
        errs.append(np.abs(s[0] - single_spin_exact(T, alpha)).max())
    # all three schemes are second order: halving dt divides the error by 4 (3.5..4.5 allows O(dt^3) terms)
    assert 3.5 < errs[0] / errs[1] < 4.5, errs
    assert errs[1] < 1e-3  # leading term ~ (B dt)^2 (B T)/12 = 3e-4 for midpoint-type phase error


def test_right_handed_precession():
    lat = Lattice("square", 2, 2)
    r = run_llg(HeisenbergProvider(lat, 0.0, (0, 0, 1.0)), np.tile([1.0, 0, 0], (4, 1)), steps=10, dt=0.01,
                alpha=0.0, progress=False)
    assert r.spins[0, 0, 1] > 0  # x rotates toward +y about +z


@pytest.mark.parametrize("scheme", ["midpoint", "heun"])
def test_energy_conserved_without_damping_ed(scheme):
    """alpha = 0, kT = 0, ED-driven, 4x4 triangular J=2 n=1/4 (electronic kT=0.01), 1000 steps of dt=0.02.
    Measured: max |E(t)-E(0)| = 4e-7 (midpoint) and 9e-7 (heun) over 10^4 steps; bound 1e-6 * sqrt(N)."""
    lat = Lattice("triangular", 4, 4)
    ed = EDProvider(lat, SDModel(J=2.0, filling=0.25, kT=0.01))
    r = run_llg(ed, make_state("random", lat, seed=1), steps=1000, dt=0.02, alpha=0.0, scheme=scheme,
                every=50, progress=False)
    E = np.array(r.energies)[:, 0]
    assert np.abs(E - E[0]).max() / np.sqrt(lat.N) < 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["midpoint", "heun", "sib"])
def test_energy_drift_ten_thousand_steps(scheme):
    lat = Lattice("triangular", 4, 4)
    ed = EDProvider(lat, SDModel(J=2.0, filling=0.25, kT=0.01))
    r = run_llg(ed, make_state("random", lat, seed=1), steps=10000, dt=0.02, alpha=0.0, scheme=scheme,
                every=100, progress=False)
    E = np.array(r.energies)[:, 0]
    # measured max deviations: midpoint 4.4e-7, heun 8.7e-7, sib 3.2e-5: SIB's energy drifts secularly (a property
    # of the scheme, measured and explained in test_sib_energy_drift_is_secular_and_third_order), hence its bound
    bound = 1e-4 if scheme == "sib" else 1e-6
    assert np.abs(E - E[0]).max() / np.sqrt(lat.N) < bound


def test_sib_energy_drift_is_secular_and_third_order():
    """Why SIB gets a looser energy bound than midpoint and Heun: a property of the scheme, not a bug.

    SIB (Mentink et al. 2010) is the implicit midpoint rule with the midpoint field taken at an explicit (Cayley)
    predictor. It keeps |S_i| = 1 exactly and is second order (test above), which with its stability at large dt is
    what the paper claims for it; it is neither symmetric (time-reversible) nor symplectic, and nothing makes it
    conserve energy. At alpha = 0 its energy error is therefore a secular drift, where the implicit midpoint rule
    (symmetric) only oscillates. Measured on this 4x4 triangular Heisenberg magnet (J_H = 1, random start, T = 200,
    seeds 1 and 2): drift rates 9.5e-4 / 8.9e-4, 1.15e-4 / 1.10e-4, 1.61e-5 / 1.53e-5 at dt = 0.04, 0.02, 0.01 —
    a factor 7-8.5 per halving of dt, i.e. rate ~ dt^3, and always upward; the implicit midpoint rule at dt = 0.02:
    slope 2e-7 with a bounded oscillation of 1e-3 that falls as dt^2. Checked here at T = 50: the energy rises
    monotonically in the mean (E(T) - E(0) is 90% or more of the largest deviation), and halving dt divides the
    rate by 5.5-10 (order 2.5-3.3; a dt^2 drift would give 4)."""
    lat = Lattice("triangular", 4, 4)
    p = HeisenbergProvider(lat, 1.0)
    s0, T, rates = make_state("random", lat, seed=1), 50.0, []
    for dt in (0.02, 0.01):
        n = int(round(T / dt))
        r = run_llg(p, s0, steps=n, dt=dt, alpha=0.0, scheme="sib", every=n // 100, progress=False)
        dE = np.array(r.energies)[:, 0] - r.energies[0][0]
        assert dE[-1] > 0.9 * np.abs(dE).max()
        rates.append(np.polyfit(np.linspace(0, T, len(dE)), dE, 1)[0])
    assert rates[1] > 0 and 5.5 < rates[0] / rates[1] < 10, rates


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_monotone_relaxation_with_damping(scheme):
    lat = Lattice("triangular", 4, 4)
    ed = EDProvider(lat, SDModel(J=2.0, filling=0.25, kT=0.01))
    r = run_llg(ed, make_state("random", lat, seed=2), steps=200, dt=0.05, alpha=0.5, scheme=scheme, every=1,
                progress=False)
    E = np.array(r.energies)[:, 0]
    assert np.all(np.diff(E) < 1e-10)
    assert E[-1] < E[0] - 1.0


@pytest.mark.parametrize("scheme", ["heun", "sib"])
def test_boltzmann_statistics_single_spin(scheme):
    """<S.b> = coth(|B|/kT) - kT/|B| for independent spins in a field, at two temperatures.

    4000 spins, 1500 steps of dt=0.01, frames after t=5. Frame-to-frame correlation time ~ (1+a^2)/(a B)=2.5
    makes the statistical error ~0.005; with the O(dt) bias the tolerance is 0.015. A noise variance off by a
    factor 2 would shift the kT=0.5 value by 0.2."""
    lat = Lattice("square", 2, 2)
    p = HeisenbergProvider(lat, 0.0, (0, 0, 1.0))
    for kT in (0.5, 2.0):
        vals = []
        run_llg(p, np.tile([0, 0, 1.0], (1000, 4, 1)), steps=1500, dt=0.01, alpha=0.5, kT=kT, scheme=scheme,
                every=20, seed=7, progress=False,
                observers=[lambda step, t, s, res: vals.append(float(s[..., 2].mean())) if t > 5 else None])
        exact = 1 / np.tanh(1 / kT) - kT
        assert abs(np.mean(vals) - exact) < 0.015, (kT, np.mean(vals), exact)


def test_seed_reproducible_and_noise_differs():
    lat = Lattice("square", 4, 4)
    p = HeisenbergProvider(lat, 1.0)
    s0 = make_state("random", lat, seed=0)
    a = run_llg(p, s0, steps=50, dt=0.05, alpha=0.2, kT=0.3, seed=5, progress=False).spins
    b = run_llg(p, s0, steps=50, dt=0.05, alpha=0.2, kT=0.3, seed=5, progress=False).spins
    c = run_llg(p, s0, steps=50, dt=0.05, alpha=0.2, kT=0.3, seed=6, progress=False).spins
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_bad_llg_input():
    lat = Lattice("square", 2, 2)
    p = HeisenbergProvider(lat, 0.0, (0, 0, 1.0))
    s = make_state("ferro", lat)
    with pytest.raises(NearsightError, match="dt"):
        run_llg(p, s, steps=1, dt=0.0, alpha=0.1)
    with pytest.raises(NearsightError, match="not a valid Langevin"):
        run_llg(p, s, steps=1, dt=0.1, alpha=0.0, kT=0.1)
    with pytest.raises(NearsightError, match="scheme"):
        run_llg(p, s, steps=1, dt=0.1, alpha=0.1, scheme="euler")
    with pytest.raises(NearsightError, match="unit vectors"):
        run_llg(p, 2 * s, steps=1, dt=0.1, alpha=0.1)
