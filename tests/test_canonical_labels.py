"""Canonical filling through mu (issue 22): ED's count and local densities, N = -dOmega/dmu, the canonical field
as the grand-canonical field at the solved mu*, and datasets labelled at a per-frame mu drawn from a window."""
import shutil

import h5py
import numpy as np
import pytest
import torch

from nearsight import Lattice, NearsightError, SDModel
from nearsight.cli import main
from nearsight.datasets.generate import generate_dataset, relabel_dataset, window_mu
from nearsight.electrons import EDProvider
from nearsight.ensemble import electron_count
from nearsight.io import read_dataset
from nearsight.states import random_spins

ENSEMBLES = [dict(mu=-0.4, kT=0.0), dict(mu=-0.4, kT=0.1), dict(filling=0.375, kT=0.0), dict(filling=0.375, kT=0.05)]


@pytest.mark.parametrize("ens", ENSEMBLES)
def test_count_and_site_densities(ens, rng):
    """sum_i n_i = N = sum_n f_n, float64, shapes [B] and [B, N]; canonical mode holds N = N_e."""
    lat = Lattice("square", 4, 4)
    m = SDModel(J=3.0, t2=0.2, B=(0.1, 0.0, -0.2), **ens)
    ed = EDProvider(lat, m, observables=True)
    r = ed(random_spins(lat.N, rng, batch=3))
    n, ni, mu = r.extras["n_electrons"], r.extras["site_density"], r.extras["mu"]
    assert n.dtype == ni.dtype == mu.dtype == torch.float64
    assert n.shape == mu.shape == (3,) and ni.shape == (3, lat.N)
    assert torch.allclose(ni.sum(-1), n, rtol=0, atol=1e-10)
    assert bool((ni >= -1e-12).all() and (ni <= 2 + 1e-12).all())  # 0 <= n_i <= 2
    assert torch.allclose(electron_count(r.extras["eigenvalues"], mu, m.kT), n, rtol=0, atol=1e-10)
    if m.canonical:
        assert torch.allclose(n, torch.full_like(n, m.n_electrons(lat.N)), rtol=0, atol=1e-9)
    else:
        assert torch.equal(mu, torch.full_like(mu, m.mu))


def test_grand_potential_is_exact_far_below_mu():
    """Omega = -kT sum ln(1 + exp(-(eps - mu)/kT)) to rounding for levels 20-25 kT below mu, where a softplus that
    turns linear beyond 20 kT is off by kT e^-z per level (~1e-10 relative): ED and band sums then agree to 1e-16."""
    from nearsight.ensemble import grand_potential
    eps = -torch.linspace(20.0, 25.0, 51, dtype=torch.float64) * 0.1
    want = float(-0.1 * np.logaddexp(0.0, -eps.numpy() / 0.1).sum())
    assert abs(float(grand_potential(eps, 0.0, 0.1)) - want) < 1e-14 * abs(want)


@pytest.mark.parametrize("kind", ["square", "triangular"])
def test_count_is_minus_dOmega_dmu(kind, rng):
    """N(S, mu) = -dOmega/dmu by central differences (kT = 0.1: Omega is smooth in mu; the Zeeman term is not a
    function of mu). h = 1e-4: truncation ~ h^2 N''/6 ~ 1e-8 relative to N."""
    lat = Lattice(kind, 4, 4)
    ed = EDProvider(lat, SDModel(J=2.0, t2=0.1, B=(0.0, 0.3, 0.0), mu=0.0, kT=0.1))
    S = random_spins(lat.N, rng, batch=2)
    mu = np.array([-1.3, 0.7])
    h = 1e-4
    n = ed.at_mu(S, mu).extras["n_electrons"].numpy()
    d = -(ed.at_mu(S, mu + h).energy - ed.at_mu(S, mu - h).energy).numpy() / (2 * h)
    assert np.all(n > 1.0)
    assert np.abs(d - n).max() / n.max() < 1e-7, (d, n)


@pytest.mark.parametrize("kT", [0.0, 0.05])
def test_canonical_field_is_fixed_mu_field_at_mu_star(kT, rng):
    """ED canonical at filling n gives mu*; a separate fixed-mu ED at that mu* gives the same fields and site
    densities, count N_e, and F = Omega(mu*) + mu* N_e (conventions.md). At kT = 0 mu* is mid-gap between the N_e-th
    and next level, so the same levels are filled (random spins have no degenerate Fermi level)."""
    lat = Lattice("square", 6, 6)
    can = SDModel(J=6.0, filling=0.444, kT=kT, B=(0.0, 0.0, 0.05))
    ed = EDProvider(lat, can)
    ne = can.n_electrons(lat.N)
    S = random_spins(lat.N, rng, batch=2)
    rc = ed(S)
    for b in range(2):
        mu_star = float(rc.extras["mu"][b])
        fixed = EDProvider(lat, SDModel(J=6.0, mu=mu_star, kT=kT, B=(0.0, 0.0, 0.05)))(S[b])
        assert abs(float(fixed.extras["n_electrons"]) - ne) < 1e-9
        assert torch.allclose(fixed.fields, rc.fields[b], rtol=0, atol=1e-10)
        assert torch.allclose(fixed.extras["site_density"], rc.extras["site_density"][b], rtol=0, atol=1e-10)
        assert abs(float(fixed.energy + mu_star * ne - rc.energy[b])) < 1e-9
    # at_mu on the canonical provider is the same grand-canonical evaluation, one mu per configuration
    r = ed.at_mu(S, rc.extras["mu"])
    assert torch.allclose(r.fields, rc.fields, rtol=0, atol=1e-10)
    assert torch.equal(r.extras["mu"], rc.extras["mu"])


def test_at_mu_per_configuration_and_bad_input(rng):
    lat = Lattice("triangular", 4, 4)
    ed = EDProvider(lat, SDModel(J=2.0, filling=0.25, kT=0.02))
    S = random_spins(lat.N, rng, batch=2)
    both = ed.at_mu(S, [-1.0, 0.5])
    for b, mu in enumerate((-1.0, 0.5)):
        one = EDProvider(lat, SDModel(J=2.0, mu=mu, kT=0.02))(S[b])
        assert torch.allclose(both.fields[b], one.fields, rtol=0, atol=1e-12)
        assert abs(float(both.energy[b] - one.energy)) < 1e-12
    assert ed.at_mu(S[0], 0.5).fields.shape == (lat.N, 3)
    with pytest.raises(NearsightError, match="one per configuration"):
        ed.at_mu(S, [0.0, 1.0, 2.0])
    with pytest.raises(NearsightError, match="finite"):
        ed.at_mu(S, float("nan"))


GEN = dict(kTs=[0.02], replicas=2, steps=10, every=5, seed=7, progress=False)


def test_generate_over_a_mu_window(tmp_path):
    """Canonical quenches, each kept frame labelled at its own mu: the mu follow the documented seeded draw, the
    labels equal a separate fixed-mu ED at that frame's mu, the configurations are those of the same run without a
    window, and the attributes say the labels have no single ensemble."""
    lat = Lattice("square", 4, 4)
    ed = EDProvider(lat, SDModel(J=6.0, filling=0.375, kT=0.1))
    out, plain = str(tmp_path / "w.h5"), str(tmp_path / "p.h5")
    generate_dataset(ed, out, mu_window=(-4.5, -3.5), **GEN)
    generate_dataset(ed, plain, **GEN)
    a, at = read_dataset(out)
    p, pt = read_dataset(plain)
    F = len(a["spins"])
    assert F == 6 and np.array_equal(a["spins"], p["spins"])
    want_mu = -4.5 + 1.0 * np.random.default_rng([7, 0]).random(F)   # the documented rule, written out
    assert np.array_equal(a["mu"], want_mu) and np.array_equal(window_mu((-4.5, -3.5), 7, 0, F), want_mu)
    assert a["mu"].dtype == a["n_electrons"].dtype == a["site_density"].dtype == np.float64
    for k in range(F):
        r = EDProvider(lat, SDModel(J=6.0, mu=float(a["mu"][k]), kT=0.1))(a["spins"][k])
        assert np.allclose(r.fields.numpy(), a["fields"][k], rtol=0, atol=1e-12)
        assert abs(float(r.energy) - a["energy"][k]) < 1e-10
        assert abs(float(r.extras["n_electrons"]) - a["n_electrons"][k]) < 1e-10
        assert np.allclose(r.extras["site_density"].numpy(), a["site_density"][k], rtol=0, atol=1e-12)
    assert np.allclose(a["site_density"].sum(-1), a["n_electrons"], rtol=0, atol=1e-10)
    assert np.ptp(a["n_electrons"]) > 0.1   # the window does move the count
    assert at["mu_window"] == [-4.5, -3.5] and at["mu_window_seed"] == 7
    assert at["mu"] is None and at["filling"] is None and at["dynamics_filling"] == 0.375
    # the plain canonical dataset stores its own extras: mu* per frame and the fixed count
    assert pt["filling"] == 0.375 and np.allclose(p["n_electrons"], 12, rtol=0, atol=1e-9)
    r = ed(p["spins"])
    assert np.allclose(p["mu"], r.extras["mu"].numpy(), rtol=0, atol=1e-12)
    # the same seed draws the same mu, another seed others
    again, other = str(tmp_path / "w2.h5"), str(tmp_path / "w3.h5")
    generate_dataset(ed, again, mu_window=(-4.5, -3.5), **GEN)
    generate_dataset(ed, other, mu_window=(-4.5, -3.5), **{**GEN, "seed": 8})
    assert np.array_equal(read_dataset(again)[0]["mu"], a["mu"])
    assert not np.allclose(read_dataset(other)[0]["mu"], a["mu"])


def test_relabel_over_a_mu_window_and_refusals(tmp_path):
    from nearsight.electrons.classical import HeisenbergProvider
    lat = Lattice("square", 4, 4)
    ed = EDProvider(lat, SDModel(J=6.0, filling=0.375, kT=0.01))
    src, out = str(tmp_path / "s.h5"), str(tmp_path / "r.h5")
    generate_dataset(ed, src, **GEN)
    hot = EDProvider(lat, SDModel(J=6.0, filling=0.375, kT=0.1))
    relabel_dataset(hot, src, out, mu_window="-4.2,-3.8", seed=3, progress=False)
    a, at = read_dataset(out)
    s = read_dataset(src)[0]
    assert np.array_equal(a["spins"], s["spins"]) and np.array_equal(a["trajectory"], s["trajectory"])
    assert np.array_equal(a["mu"], window_mu((-4.2, -3.8), 3, 0, len(a["spins"])))
    r = hot.at_mu(a["spins"], a["mu"])
    assert np.allclose(r.fields.numpy(), a["fields"], rtol=0, atol=1e-12)
    assert np.allclose(r.extras["site_density"].numpy(), a["site_density"], rtol=0, atol=1e-12)
    assert at["kT"] == 0.1 and at["mu"] is None and at["filling"] is None and at["source_filling"] == 0.375
    assert at["mu_window"] == [-4.2, -3.8] and at["source_kT"] == 0.01
    for bad, needle in (((1.0, 0.0), "LO < HI"), ("x", "two numbers"), ((0.0, float("inf")), "finite")):
        with pytest.raises(NearsightError, match=needle):
            relabel_dataset(hot, src, str(tmp_path / "x.h5"), mu_window=bad, progress=False)
    with pytest.raises(NearsightError, match="label with solver ed"):
        generate_dataset(HeisenbergProvider(lat, J_H=0.5), str(tmp_path / "x.h5"), mu_window=(0, 1), **GEN)
    assert not (tmp_path / "x.h5").exists()


def test_cli_generate_mu_window(tmp_path):
    src, out = str(tmp_path / "a.h5"), str(tmp_path / "b.h5")
    common = ["--lattice", "square", "--size", "4", "--J", "6", "--filling", "0.375", "--kT", "0.1"]
    assert main(["generate", *common, "--kTs", "0.02", "--replicas", "1", "--steps", "4", "--every", "2",
                 "--mu-window", "-4.4", "-4.0", "--seed", "5", "--out", src]) == 0
    assert main(["generate", *common, "--source", src, "--mu-window", "-4.4", "-4.0", "--seed", "6", "--out", out]) == 0
    a, at = read_dataset(src)
    b, bt = read_dataset(out)
    assert np.array_equal(a["mu"], window_mu((-4.4, -4.0), 5, 0, 3)) and at["mu_window"] == [-4.4, -4.0]
    assert np.array_equal(b["mu"], window_mu((-4.4, -4.0), 6, 0, 3)) and bt["mu_window_seed"] == 6


@pytest.mark.parametrize("kind", ["square", "triangular"])
def test_compressibility_is_dN_dmu(kind, rng):
    """dn_dmu = sum_n f (1 - f) / kT is dN/dmu at fixed spins: central differences of the count (h = 1e-4:
    truncation ~ h^2 N'''/6, ~1e-8 relative); none at kT = 0, where N(mu) is a staircase."""
    lat = Lattice(kind, 4, 4)
    ed = EDProvider(lat, SDModel(J=2.0, t2=0.1, mu=0.0, kT=0.1))
    S = random_spins(lat.N, rng, batch=2)
    mu = np.array([-1.3, 0.7])
    h = 1e-4
    r = ed.at_mu(S, mu)
    d = (ed.at_mu(S, mu + h).extras["n_electrons"] - ed.at_mu(S, mu - h).extras["n_electrons"]).numpy() / (2 * h)
    c = r.extras["dn_dmu"].numpy()
    assert c.shape == (2,) and np.all(c > 0.1)
    assert np.abs(d - c).max() / c.max() < 1e-6, (d, c)
    assert "dn_dmu" not in EDProvider(lat, SDModel(J=2.0, mu=0.0, kT=0.0)).at_mu(S, mu).extras


def test_relabel_at_the_source_mu_adds_dn_dmu_and_keeps_the_labels(tmp_path, capsys):
    """--source-mu: the same labels at the same per-frame mu (bit for bit), now with dn_dmu; refused for a source
    not labelled over a window, and together with a new window."""
    lat = Lattice("square", 4, 4)
    ed = EDProvider(lat, SDModel(J=6.0, filling=0.375, kT=0.1))
    src, out = str(tmp_path / "s.h5"), str(tmp_path / "r.h5")
    generate_dataset(ed, src, mu_window=(-4.4, -3.9), **GEN)
    a, at = read_dataset(src)
    old = str(tmp_path / "old.h5")                     # a dataset made before dn_dmu existed
    shutil.copy(src, old)
    with h5py.File(old, "a") as f:
        del f["dn_dmu"]
    relabel_dataset(ed, old, out, source_mu=True, progress=False)
    b, bt = read_dataset(out)
    for k in ("spins", "fields", "energy", "mu", "n_electrons", "site_density", "dn_dmu", "trajectory", "time"):
        assert np.array_equal(a[k], b[k]), k
    assert bt["mu_window"] == at["mu_window"] and bt["mu_window_seed"] == at["mu_window_seed"]
    canon = str(tmp_path / "c.h5")
    generate_dataset(ed, canon, **GEN)
    with pytest.raises(NearsightError, match="source_mu needs a source labelled over a mu window"):
        relabel_dataset(ed, canon, str(tmp_path / "x.h5"), source_mu=True, progress=False)
    with pytest.raises(NearsightError, match="not both"):
        relabel_dataset(ed, src, str(tmp_path / "x.h5"), source_mu=True, mu_window=(-4.4, -3.9), progress=False)
    assert main(["generate", "--lattice", "square", "--size", "4", "--source-mu", "--out", str(tmp_path / "x.h5")]) != 0
    assert "give --source DATASET" in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists()
