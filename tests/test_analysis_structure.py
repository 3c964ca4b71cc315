"""Domain lengths from structure factors against independent computations: closed-form Fourier coefficients of
stripes, a direct (explicit-sum, no FFT) structure factor of disks, and the Bragg peaks of the ordered states."""
import numpy as np
import pytest

from nearsight import Lattice
from nearsight.analysis import observables as obs
from nearsight.analysis import order as od
from nearsight.analysis import structure as st
from nearsight.analysis.pipeline import Ensemble, compute
from nearsight.states import make_state


def stripes(lat: Lattice, period: int) -> np.ndarray:
    """+-1 stripes along the a1 index x: +1 for x mod period < period/2."""
    return np.where(lat.xy[:, 0] % period < period // 2, 1.0, -1.0)


def stripe_length_formula(period: int, b1_norm: float) -> float:
    """L_1 = 2 pi sum_j w_j / sum_j w_j |q_j| for a +-1 square wave of even period lambda on a lattice: the DFT
    over one period is 4 / (1 - exp(-2 pi i j / lambda)) for odd j (0 for even j), so w_j = 1 / sin^2(pi j /
    lambda), at |q_j| = |b1| min(j, lambda - j) / lambda."""
    j = np.arange(1, period, 2)
    w = 1.0 / np.sin(np.pi * j / period) ** 2
    q = b1_norm * np.minimum(j, period - j) / period
    return 2 * np.pi * w.sum() / (w * q).sum()


@pytest.mark.parametrize("kind,L,period", [("square", 32, 8), ("square", 48, 12), ("triangular", 36, 6),
                                           ("triangular", 48, 16)])
def test_stripe_length_matches_closed_form(kind, L, period):
    lat = Lattice(kind, L)
    got = st.lengths(st.field_structure_factor(stripes(lat, period), lat), lat, [np.zeros(2)])["L_moment"]
    b1 = 2 * np.pi if kind == "square" else 4 * np.pi / np.sqrt(3)       # |b1| by hand
    want = stripe_length_formula(period, b1)
    assert abs(got / want - 1) < 0.01
    # a single cosine mode of wavelength lambda (perpendicular spacing) has L_1 = lambda exactly
    lam = period * (1.0 if kind == "square" else np.sqrt(3) / 2)
    cos = np.cos(2 * np.pi * lat.xy[:, 0] / period)
    got = st.lengths(st.field_structure_factor(cos, lat), lat, [np.zeros(2)])["L_moment"]
    assert abs(got / lam - 1) < 1e-9


def disks(lat: Lattice, radius: float, spacing: int, shift=(0, 0)) -> np.ndarray:
    """+1 inside disks of ``radius`` centred on a square grid of ``spacing`` (minimal-image distance), -1 outside."""
    x, y = (lat.xy[:, 0] - shift[0]) % spacing, (lat.xy[:, 1] - shift[1]) % spacing
    dx, dy = np.minimum(x, spacing - x), np.minimum(y, spacing - y)
    return np.where(dx ** 2 + dy ** 2 < radius ** 2, 1.0, -1.0)


def direct_lengths(f: np.ndarray, lat: Lattice) -> tuple[float, float]:
    """Independent computation: explicit sums S(q) = |sum_i f_i exp(-i q.r_i)|^2 / N over the allowed momenta
    (built from a = lattice vectors by hand), brute-force distance to the nearest reciprocal lattice vector, the
    first moment, and the HWHM of the shell average found by a plain scan."""
    a = lat.a
    b = 2 * np.pi * np.linalg.inv(a).T
    r = lat.xy @ a
    S, D = [], []
    for m2 in range(lat.L2):
        for m1 in range(lat.L1):
            q = m1 / lat.L1 * b[0] + m2 / lat.L2 * b[1]
            S.append(abs(np.sum(f * np.exp(-1j * (r @ q)))) ** 2 / lat.N)
            D.append(min(np.linalg.norm(q - i * b[0] - j * b[1]) for i in (-1, 0, 1, 2) for j in (-1, 0, 1, 2)))
    S, D = np.array(S), np.array(D)
    off = D > 1e-9
    L1 = 2 * np.pi * S[off].sum() / (S[off] * D[off]).sum()
    delta = min(np.linalg.norm(b[0]) / lat.L1, np.linalg.norm(b[1]) / lat.L2)
    shell = np.rint(D[off] / delta).astype(int)
    prof = np.array([S[off][shell == n].mean() if (shell == n).any() else np.nan for n in range(shell.max() + 1)])
    top = int(np.nanargmax(prof))
    n = top
    while not prof[n] < prof[top] / 2:
        n += 1
    k = (n - 1 + (prof[n - 1] - prof[top] / 2) / (prof[n - 1] - prof[n])) * delta
    return L1, np.pi / k


@pytest.mark.parametrize("kind,L,radius,spacing", [("square", 32, 4.0, 16), ("square", 32, 2.5, 8),
                                                   ("triangular", 24, 3.0, 12)])
def test_disk_lengths_match_direct_structure_factor(kind, L, radius, spacing):
    lat = Lattice(kind, L)
    f = disks(lat, radius, spacing, shift=(1, 2))
    got = st.lengths(st.field_structure_factor(f, lat), lat, [np.zeros(2)])
    L1, Lw = direct_lengths(f, lat)
    assert abs(got["L_moment"] / L1 - 1) < 0.01 and abs(got["L_width"] / Lw - 1) < 0.01


def test_lengths_through_the_analysis_of_a_stored_ensemble():
    """``compute`` on an ensemble whose spins carry chiral stripe domains (the tetrahedral state times +-1, which
    flips the chirality) gives L(t) within 1% of the direct computation from the spins: triangle chiralities
    from explicit index arithmetic, site averages, explicit-sum S(q) averaged over replicas."""
    lat = Lattice("triangular", 24)
    tet = make_state("tetrahedral", lat)
    periods = [4, 6, 8, 12]
    frames = []
    for p in periods:
        reps = [stripes(lat, p)[:, None] * tet, np.roll(stripes(lat, p), 24 * 3)[:, None] * tet]
        frames.append(np.stack(reps))
    ens = Ensemble(lat, np.arange(len(periods), dtype=float), np.stack(frames), {"model": "triangular-tetrahedral"},
                   ["synthetic"])
    res = compute(ens)
    assert res["order"] == "tetrahedral"
    x, y = lat.xy[:, 0], lat.xy[:, 1]
    idx = lat.index
    for f, p in enumerate(periods):
        S = ens.spins[f]
        chi = np.zeros((2, lat.N))
        for a, b, c in ((idx(x, y), idx(x + 1, y), idx(x, y + 1)), (idx(x + 1, y), idx(x + 1, y + 1), idx(x, y + 1))):
            t = np.einsum("rij,rij->ri", S[:, a], np.cross(S[:, b], S[:, c]))
            for r in range(2):
                chi[r] += np.bincount(a, t[r], lat.N) + np.bincount(b, t[r], lat.N) + np.bincount(c, t[r], lat.N)
        chi /= 6
        L1 = [direct_lengths(chi[r], lat)[0] for r in range(2)]
        assert abs(res["lengths"]["domain_moment"][f] / np.mean(L1) - 1) < 0.01  # identical replicas: equal L


def test_bragg_peaks_of_ordered_states():
    lat = Lattice("triangular", 12)
    for name, pts in (("120", ("K", "K'")), ("tetrahedral", ("M1", "M2", "M3"))):
        s = make_state(name, lat)
        sq = obs.structure_factor(s, lat)
        top = np.argwhere(sq > 0.99 * sq.max())
        q = st.grid_momenta(lat)
        d = st.distance_to_peaks(lat, [lat.high_symmetry_points()[p] for p in pts])
        assert len(top) == len(pts) and all(d[i, j] < 1e-9 for i, j in top)
        assert np.isclose(sq.sum(), lat.N) and q.shape == (12, 12, 2)
        assert od.detect_order(s, lat) == name
    # the 120 state's domain variable (staggered vector chirality) is uniform, |kappa| = 1, its S(q) all at Gamma
    k = od.site_staggered_vector_chirality(make_state("120", lat), lat)
    assert np.allclose(np.linalg.norm(k, axis=-1), 1.0)
    assert np.allclose(abs(obs.mean_chirality(make_state("120", lat), lat)), 0.0, atol=1e-12)
    sqk = st.field_structure_factor(k, lat)
    assert np.isclose(sqk[0, 0], lat.N) and np.isclose(sqk.sum(), lat.N)
    assert st.lengths(sqk, lat, [np.zeros(2)])["L_moment"] == pytest.approx(12.0)


def test_brillouin_zone_and_zone_points():
    tri, sq = Lattice("triangular", 12), Lattice("square", 12)
    bz = st.brillouin_zone(tri)
    assert len(bz) == 6 and np.allclose(np.linalg.norm(bz, axis=1), 4 * np.pi / 3)  # corners at the K points
    pts = st.zone_points(tri)
    assert len(pts["K"]) + len(pts["K'"]) == 6 and len(pts["M"]) == 6
    assert np.allclose(np.abs(st.brillouin_zone(sq)), np.pi)
