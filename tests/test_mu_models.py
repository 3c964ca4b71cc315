"""mu-conditioned models (issue 22, model side): trained on ED labels over a window of mu, run grand canonically at
any mu in the window or canonically at a filling (mu* solved per configuration at every evaluation).

Tiny models (6x6 square, J = 6, kT = 0.1 labels, mu window [-4.8, -3.45]) trained for a few epochs in float64: the
checks are of exact identities, not of accuracy. Tolerances: energies |E| ~ 200, rounding of a float64 sum of 36
site energies ~1e-13; central differences with step h have truncation ~h^2 |f'''| and rounding ~1e-16 |E| / h.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nearsight import Lattice, NearsightError, SDModel
from nearsight.datasets.generate import generate_dataset
from nearsight.electrons import EDProvider
from nearsight.io import read_dataset
from nearsight.ml import MLProvider, load_model, save_model
from nearsight.ml.canonical import COUNT_TOL, MuModel, energy_fields_count, solve_count
from nearsight.providers import build_provider
from nearsight.training import train
from nearsight.testing import batched_vs_single, permute, random_orthogonal, rotation_deviation, symmetry_deviation, \
    symmetry_permutations, tangent_fd_error

L, WINDOW = 6, (-4.8, -3.45)
PHYS = dict(J=6.0, filling=0.485, kT=0.1)
N_E = round(0.485 * 2 * L * L)          # 35
FAMILIES = {
    "bp": {"family": "bp", "descriptor": {"cutoff": 2.0}, "hidden": [16, 16], "epochs": 6, "lambda_density": 0.5,
           "filling": 0.485},                                # the card's default ensemble: canonical n = 0.485
    "mpnn": {"family": "mpnn", "mpnn": {"channels": 4, "product_channels": 2, "layers": 2, "radius": 1.0,
                                        "hidden": [8]}, "epochs": 3},
}


@pytest.fixture(scope="module")
def window_data(tmp_path_factory):
    """Canonical ED-LLG quenches (n = 0.485), every kept frame labelled at its own mu from the window."""
    d = tmp_path_factory.mktemp("mu")
    ed = EDProvider(Lattice("square", L), SDModel(**PHYS))
    path = str(d / "window.h5")
    generate_dataset(ed, path, kTs=[0.0], replicas=8, steps=40, every=4, seed=3, mu_window=WINDOW, progress=False)
    return path


@pytest.fixture(scope="module")
def models(window_data, tmp_path_factory):
    out = {}
    for fam, cfg in FAMILIES.items():
        d = tmp_path_factory.mktemp(fam)
        out[fam] = train({"datasets": [window_data], **cfg, "batch_size": 8, "lr": 5e-3, "ema": 0.0,
                          "dtype": "float64", "seed": 0, "out": str(d / "m"), "name": f"mu-{fam}", "progress": False})
    return out


@pytest.fixture(scope="module")
def frames(window_data):
    a, _ = read_dataset(window_data)
    return a["spins"][::17][:4]                  # 4 frames of different times and trajectories


def lattice():
    return Lattice("square", L)


# ------------------------------------------------------------------------------------------- the card
@pytest.mark.parametrize("fam", FAMILIES)
def test_card_records_the_window_and_the_mu_input(models, fam):
    card = json.load(open(models[fam].replace(".pt", ".card.json")))
    assert card["mu_conditioned"] is True and card["mu_window"] == list(WINDOW)
    assert card["mu"] is None and card["ensemble"].startswith("mu-conditioned")
    assert card["filling"] == (0.485 if fam == "bp" else None)          # mpnn: no default ensemble
    mi = card["mu_input"]
    assert mi["mu0"] == pytest.approx(-4.125) and mi["mu_scale"] == pytest.approx(0.675)
    assert 0.8 < mi["n_ref"] < 1.0 and mi["chi_ref"] > 0            # the label counts rise with mu
    held = card["count_held_out"]["internal"]
    # the count per site varies by ~0.17 over the window (29 -> 35 electrons on 36 sites); a model that learned
    # it from mu must do much better than that spread
    assert held["n_frames"] > 0 and held["count_rmse_per_site"] < 0.05
    assert held["min_dN_dmu_per_site"] > 0 and 0 < held["n_frames_slopes"] <= held["n_frames"]
    net = load_model(models[fam], lattice())
    assert isinstance(net, MuModel) and net.base.n_globals == 1 and net.family == fam


# ------------------------------------------------------------------------------ gradients, in S and in mu
@pytest.mark.parametrize("fam", FAMILIES)
@pytest.mark.parametrize("mode", [{"mu": -4.2}, {"filling": 0.485}])
def test_fields_are_minus_gradient(models, fam, mode, frames, rng):
    """Grand canonical: h = -dOmega/dS at fixed mu. Canonical: h = -dF/dS with F(S) = Omega(S, mu*(S)) + mu* N_e,
    mu* re-solved at every displaced configuration (dF/dmu = 0 at mu*, so the solve's tolerance enters at second
    order). Rotations on the unit sphere, Richardson-extrapolated central differences (nearsight.testing; measured
    1e-9 to 1e-8 here, the truncation of the descriptor's sharp reference floor and rounding ~1e-16 |E| / 1e-4)."""
    prov = MLProvider(models[fam], lattice(), **mode)
    assert tangent_fd_error(prov, frames[0], rng) < 1e-6


@pytest.mark.parametrize("fam", FAMILIES)
def test_count_is_minus_dOmega_dmu(models, fam, frames):
    """N = -dOmega/dmu (autograd) against central differences in mu (step 1e-4: truncation ~1e-8 |N'''|, rounding
    ~1e-16 * 200 / 1e-4 = 2e-10), at three mu across the window; for bp also n_i = -d eps_i/dmu summing to N."""
    net = load_model(models[fam], lattice())
    S = torch.as_tensor(frames)
    for mu0 in (-4.7, -4.1, -3.5):
        mu = torch.full((len(S),), mu0, dtype=torch.float64)
        _, _, n, _ = energy_fields_count(net, S, mu)
        h = 1e-4
        num = -(net(S, mu + h) - net(S, mu - h)) / (2 * h)
        assert float((num - n).abs().max()) < 1e-6 * float(n.abs().max()), (num, n)
        assert 25 < float(n.min()) and float(n.max()) < 40
    if fam == "bp":
        mu = torch.full((len(S), L * L), -4.1, dtype=torch.float64)
        _, _, n_sum, ni = energy_fields_count(net, S, mu)
        _, _, n, _ = energy_fields_count(net, S, mu[:, 0])
        assert torch.allclose(n_sum, n, rtol=0, atol=1e-10) and torch.allclose(ni.sum(-1), n, rtol=0, atol=1e-10)
        i, h = 7, 1e-4
        up, dn = mu.clone(), mu.clone()
        up[:, i] += h
        dn[:, i] -= h
        num_i = -(net(S, up) - net(S, dn)) / (2 * h)
        assert float((num_i - ni[:, i]).abs().max()) < 1e-7


# ------------------------------------------------------------------------------------------- canonical
@pytest.mark.parametrize("fam", FAMILIES)
def test_canonical_mode_holds_the_count_and_equals_grand_canonical_at_mu_star(models, fam, frames):
    """N(S, mu*) = N_e to the stated tolerance; the canonical fields are the grand-canonical ones at mu* (exact by
    construction: the same evaluation), F = Omega(mu*) + mu* N_e; a repeated call starts at the previous mu*."""
    lat = lattice()
    if fam == "bp":
        can = MLProvider(models[fam], lat)                   # the card's default: canonical n = 0.485
    else:
        with pytest.raises(NearsightError, match="names no default ensemble"):
            MLProvider(models[fam], lat)
        can = MLProvider(models[fam], lat, filling=0.485)
    assert can.ensemble == "canonical" and can.n_electrons == N_E and can.describe()["filling"] == 0.485
    r = can(frames)
    mu, n = r.extras["mu"], r.extras["n_electrons"]
    assert mu.shape == n.shape == (len(frames),) and mu.dtype == n.dtype == torch.float64
    assert float((n - N_E).abs().max()) <= COUNT_TOL * N_E
    assert bool(((mu > WINDOW[0]) & (mu < WINDOW[1])).all())
    for b in range(len(frames)):
        g = MLProvider(models[fam], lat, mu=float(mu[b]))(frames[b])
        assert torch.allclose(g.fields, r.fields[b], rtol=0, atol=1e-12)
        assert abs(float(g.energy) + float(mu[b]) * N_E - float(r.energy[b])) < 1e-9
        assert abs(float(g.extras["n_electrons"]) - N_E) <= COUNT_TOL * N_E
    again = can(frames)
    assert can.last_evaluations == 1 and torch.equal(again.extras["mu"], mu)


@pytest.mark.parametrize("fam", FAMILIES)
@pytest.mark.parametrize("mode", [{"mu": -4.0}, {"filling": 0.485}])
def test_batched_equals_unbatched(models, fam, mode, frames):
    """Grand canonical: the same arithmetic (1e-12). Canonical: each single call starts from another mu (no warm
    start fits), so mu* differs within the solve's tolerance, |dmu| <= tol N_e / (dN/dmu) ~ 1e-10 * 35 / 5 ~ 1e-9;
    fields move by |dh/dmu| dmu, |dh/dmu| ~ 1: 1e-7 leaves room and still tests the per-configuration solve."""
    prov = MLProvider(models[fam], lattice(), **mode)
    assert batched_vs_single(prov, frames[:3]) < (1e-12 if "mu" in mode else 1e-7)


@pytest.mark.parametrize("fam", FAMILIES)
@pytest.mark.parametrize("mode", [{"mu": -4.0}, {"filling": 0.485}])
def test_symmetry_with_the_mu_input(models, fam, mode, frames, rng):
    """O(3) rotations (proper and improper) and lattice symmetries: energy invariant, fields co-rotate / permute, and
    the canonical mu* is invariant (canonical tolerances as in the batched test)."""
    lat = lattice()
    prov = MLProvider(models[fam], lat, **mode)
    S = frames[:2]
    tol_e, tol_h = (1e-9, 1e-10) if "mu" in mode else (1e-6, 1e-7)
    for improper in (False, True):
        de, dh = rotation_deviation(prov, S, random_orthogonal(rng, improper))
        assert de < tol_e and dh < tol_h
    for name, perm in symmetry_permutations(lat).items():
        de, dh = symmetry_deviation(prov, S, perm)
        assert de < tol_e and dh < tol_h, name
    if "filling" in mode:
        a = prov(S).extras["mu"]
        b = prov(permute(S, symmetry_permutations(lat)["rotate_C4"]) @ random_orthogonal(rng).T).extras["mu"]
        assert float((a - b).abs().max()) < 1e-8


@pytest.mark.parametrize("fam", FAMILIES)
def test_save_load_roundtrip_and_another_size(models, fam, tmp_path, rng):
    net = load_model(models[fam], lattice())
    p2 = save_model(str(tmp_path / "again.pt"), net, dict(net.card))
    back = load_model(p2, lattice())
    assert back.mu_input == net.mu_input and back.card["mu_window"] == list(WINDOW)
    S = torch.as_tensor(np.stack([frames_of(rng, 36) for _ in range(2)]))
    mu = torch.tensor([-4.5, -3.9], dtype=torch.float64)
    assert torch.equal(net(S, mu), back(S, mu))
    big = Lattice("square", 8)                                # never trained on: the same local model
    can = MLProvider(models[fam], big, filling=0.485)
    r = can(np.stack([frames_of(rng, 64) for _ in range(2)]))
    assert float((r.extras["n_electrons"] - round(0.485 * 128)).abs().max()) <= COUNT_TOL * 62


def frames_of(rng, n):
    s = rng.standard_normal((n, 3))
    return s / np.linalg.norm(s, axis=-1, keepdims=True)


# ----------------------------------------------------------------------------------------- failures
def test_solve_count_on_analytic_counts():
    """The secant solve converges on a smooth increasing count from a cold start (no slope) and from a slope guess,
    measures dN/dmu at mu*, and fails clearly outside the window and on a decreasing count (also when the start is
    already the root: the slope is then measured by one more evaluation)."""
    mu0 = torch.tensor([0.3, -0.8], dtype=torch.float64)
    root = float(np.arctanh(0.25))

    def count(m):                                             # N = 10 + 4 tanh(m), dN/dmu = 4 / cosh^2
        return 10 + 4 * torch.tanh(m)
    for guess in (None, torch.full((2,), 1.0, dtype=torch.float64)):
        mu, n, dn, its = solve_count(count, 11.0, (-2.0, 2.0), mu0, slope_start=guess)
        assert torch.allclose(mu, torch.full_like(mu, root), rtol=0, atol=1e-10)
        assert float((n - 11).abs().max()) <= COUNT_TOL * 11 and its < 12
        assert torch.allclose(dn, torch.full_like(dn, 4 / np.cosh(root) ** 2), rtol=1e-4, atol=0)
    # a count with its exact slope: Newton proper, the slope returned is the exact one
    mu, n, dn, its = solve_count(lambda m: (count(m), 4 / torch.cosh(m) ** 2), 11.0, (-2.0, 2.0), mu0)
    assert torch.allclose(mu, torch.full_like(mu, root), rtol=0, atol=1e-10) and its < 10
    assert torch.allclose(dn, 4 / torch.cosh(mu) ** 2, rtol=1e-12, atol=0)
    # warm start at the root with the previous call's slope: one evaluation, the slope carried over
    mu1, _, dn1, its1 = solve_count(count, 11.0, (-2.0, 2.0), mu, slope_start=dn, slope_verified=True)
    assert its1 == 1 and torch.equal(mu1, mu) and torch.equal(dn1, dn)
    with pytest.raises(NearsightError, match="no chemical potential in the model's trained window"):
        solve_count(count, 13.99, (-2.0, 2.0), mu0)
    with pytest.raises(NearsightError, match="not increasing in mu"):
        solve_count(lambda m: 10 - m, 10.0, (-1.0, 1.0), torch.zeros(1, dtype=torch.float64))
    with pytest.raises(NearsightError, match="not increasing in mu"):
        solve_count(lambda m: 10 - m, 10.0, (-1.0, 1.0), torch.zeros(1, dtype=torch.float64),
                    slope_start=torch.ones(1, dtype=torch.float64))


@pytest.mark.parametrize("fam", FAMILIES)
def test_canonical_slope_is_the_double_backward_one(models, fam, frames):
    """The solve's dN/dmu at mu* (a secant, or a probe) agrees with the exact second derivative of the model."""
    from nearsight.ml.canonical import count_and_slope
    can = MLProvider(models[fam], lattice(), filling=0.485)
    r = can(frames)
    f = can.model.energy_function(torch.as_tensor(frames).to(can.model.dtype))
    _, exact = count_and_slope(lambda x: f(x, detached=True), r.extras["mu"])
    assert torch.allclose(torch.as_tensor(can.warm_state()["slope"]), exact, rtol=2e-2, atol=0)


@pytest.mark.parametrize("fam", FAMILIES)
def test_canonical_ml_run_resumes_bit_for_bit(models, fam, frames, tmp_path):
    """A killed canonical ML-LLG run, resumed by a new process (a new provider: no warm mu* in memory), is the
    uninterrupted run bit for bit: the checkpoint keeps the solve's warm start."""
    from nearsight.dynamics import run_llg
    from nearsight.trajectory import read_trajectory
    kw = dict(steps=10, dt=0.05, alpha=0.3, kT=0.02, seed=4, every=3, progress=False)
    s0 = torch.as_tensor(frames[:2])
    full, part = str(tmp_path / "full.h5"), str(tmp_path / "part.h5")
    run_llg(MLProvider(models[fam], lattice(), filling=0.485), s0, out=full, **kw)
    run_llg(MLProvider(models[fam], lattice(), filling=0.485), s0, out=part, stop_after=4, **kw)
    run_llg(MLProvider(models[fam], lattice(), filling=0.485), s0, out=part, resume=True, **kw)
    a, _ = read_trajectory(full)
    b, _ = read_trajectory(part)
    for k in ("spins", "energy", "fields", "mu", "n_electrons"):
        assert np.array_equal(a[k], b[k]), k


def test_impossible_filling_and_mu_outside_the_window_are_errors(models, frames):
    lat = lattice()
    with pytest.raises(NearsightError, match="no chemical potential in the model's trained window"):
        MLProvider(models["bp"], lat, filling=0.2)(frames)
    with pytest.raises(NearsightError, match="outside the window"):
        MLProvider(models["bp"], lat, mu=-3.0)
    with pytest.raises(NearsightError, match="not both"):
        MLProvider(models["bp"], lat, mu=-4.0, filling=0.485)


def test_model_without_mu_input_refuses_another_filling(window_data, tmp_path):
    """A model trained at one ensemble runs only there; the message says why and what would."""
    from ml_data import quench_dataset
    data = quench_dataset(str(tmp_path / "plain.h5"), n_traj=2, steps=8, every=4, seed=1)
    path = train({"datasets": [data], "descriptor": {"cutoff": 2.0}, "hidden": [8], "epochs": 1, "dtype": "float64",
                  "out": str(tmp_path / "plain"), "progress": False})
    lat = lattice()
    for kw in ({"filling": 0.5}, {"mu": -4.0}):
        with pytest.raises(NearsightError, match="not mu-conditioned"):
            MLProvider(path, lat, **kw)
        with pytest.raises(NearsightError, match="not mu-conditioned"):
            build_provider({"lattice": lat, "solver": "ml", "model": path, **kw})
    assert MLProvider(path, lat, filling=0.485).ensemble == "canonical"      # its own filling is fine
    with pytest.raises(NearsightError, match="mu_window"):                     # mixing the two kinds of labels
        train({"datasets": [data, window_data], "epochs": 1, "out": str(tmp_path / "mix"), "progress": False})


def test_training_config_refusals(window_data, tmp_path):
    base = {"datasets": [window_data], "epochs": 1, "out": str(tmp_path / "x"), "progress": False}
    with pytest.raises(NearsightError, match="needs family bp"):
        train({**base, "family": "mpnn", "lambda_density": 1.0})
    with pytest.raises(NearsightError, match="at most one of filling / mu"):
        train({**base, "filling": 0.485, "mu": -4.0})
    with pytest.raises(NearsightError, match="outside the labels' mu_window"):
        train({**base, "mu": -2.0})
    with pytest.raises(NearsightError, match="cache_descriptors: true"):
        train({**base, "cache_descriptors": True})


def test_count_slopes_are_scanned_on_every_kth_frame(models, window_data):
    """The card's smallest dN/dmu over the window is scanned on every k-th frame (at most about slope_frames of
    them: each costs grid_points second derivatives); the count errors still use every frame."""
    from nearsight.training.data import load_frames
    from nearsight.training.metrics import count_errors
    fs = load_frames(window_data)[0]
    m = {fs.lattice: load_model(models["bp"], fs.lattice)}
    full = count_errors(m, [fs], "cpu", torch.float64, slopes=True, slope_frames=10 ** 6)
    few = count_errors(m, [fs], "cpu", torch.float64, slopes=True, slope_frames=3)
    assert full["n_frames_slopes"] == full["n_frames"] == len(fs) and 3 <= few["n_frames_slopes"] <= 4
    assert few["min_dN_dmu_per_site"] >= full["min_dN_dmu_per_site"] > 0
    assert few["count_rmse_per_site"] == full["count_rmse_per_site"] and few["n_frames"] == len(fs)


def test_count_loss_in_mu_units(window_data, tmp_path):
    """count_loss: mu weighs each frame's count error by (c0 / c_b)^2 (c_b = dn_dmu / N, c0 its median): the term is
    (c0 dmu)^2 with dmu = dN / (dN/dmu). A run with it logs the implied mu error of its validation frames; labels
    without dn_dmu are refused with the command that adds it; an older checkpoint without the key resumes."""
    import csv
    from nearsight.training.data import load_frames
    from nearsight.training.loss import count_loss, count_weights
    fs = load_frames(window_data)[0]
    assert fs.dn_dmu is not None and bool((fs.dn_dmu > 0).all())
    c = fs.dn_dmu / fs.lattice.N
    c0 = float(c.median())
    (w,) = count_weights([fs], 1e9)
    assert torch.allclose(w, (c0 / c) ** 2, rtol=1e-14, atol=0)
    (wc,) = count_weights([fs], 2.0)
    assert float(wc.max()) == 2.0 and torch.equal(wc, w.clamp(max=2.0))
    dn = torch.tensor([0.3, -0.2], dtype=torch.float64)
    ref = fs.n_electrons[:2]
    got = count_loss(ref + dn, ref, fs.lattice.N, 0.5, w[:2])
    dmu = dn / fs.dn_dmu[:2]
    assert torch.allclose(got, (c0 * dmu).pow(2).mean() / 0.25, rtol=1e-12, atol=0)
    cfg = {"datasets": [window_data], **FAMILIES["mpnn"], "epochs": 2, "batch_size": 8, "dtype": "float64",
           "count_loss": "mu", "out": str(tmp_path / "mu"), "progress": False}
    train(cfg)
    rows = list(csv.DictReader(open(tmp_path / "mu" / "metrics.csv")))
    assert len(rows) == 2 and all(float(r["val_implied_mu_rmse"]) > 0 for r in rows)
    # a checkpoint written before count_loss existed resumes when the run uses the default
    ck_path = tmp_path / "mu" / "checkpoint.pt"
    ck = torch.load(ck_path, weights_only=True)
    del ck["config"]["count_loss"]
    torch.save(ck, ck_path)
    with pytest.raises(NearsightError, match="count_loss is 'mu' now but 'count' in the checkpoint"):
        train(cfg)                                                           # it was made with the default, count
    train({**cfg, "count_loss": "count"})
    # labels without dn_dmu
    old = str(tmp_path / "old.h5")
    import shutil
    import h5py
    shutil.copy(window_data, old)
    with h5py.File(old, "a") as f:
        del f["dn_dmu"]
    with pytest.raises(NearsightError, match="--source-mu"):
        train({**cfg, "datasets": [old], "out": str(tmp_path / "old")})
    with pytest.raises(NearsightError, match="count_loss must be one of"):
        train({**cfg, "count_loss": "density", "out": str(tmp_path / "bad")})


# ---------------------------------------------------------------------------------------------- CLI
def test_fields_command_in_both_ensembles(models, frames, tmp_path):
    from nearsight.cli import main
    np.save(tmp_path / "s.npy", frames[:2])
    common = ["fields", "--lattice", "square", "--size", str(L), "--solver", "ml", "--model", models["bp"],
              "--spins", str(tmp_path / "s.npy")]
    assert main(common + ["--filling", "0.485", "--out", str(tmp_path / "c.npz")]) == 0
    c = np.load(tmp_path / "c.npz")
    assert np.abs(c["n_electrons"] - N_E).max() <= COUNT_TOL * N_E
    assert main(common + ["--mu", str(float(c["mu"][0])), "--out", str(tmp_path / "g.npz")]) == 0
    g = np.load(tmp_path / "g.npz")
    assert np.abs(g["fields"][0] - c["fields"][0]).max() < 1e-12 and g["mu"][0] == c["mu"][0]


def test_simulate_canonical_ml_run(models, tmp_path):
    """A short canonical ML-LLG run: every evaluation holds N_e (checked through an observer of run_llg)."""
    from nearsight.dynamics import run_llg
    from nearsight.states import random_spins
    prov = MLProvider(models["bp"], lattice(), filling=0.485)
    seen = []
    run_llg(prov, random_spins(L * L, np.random.default_rng(0), batch=2), steps=6, dt=0.05, alpha=0.5, every=2,
            observers=[lambda step, t, s, res: seen.append(res.extras["n_electrons"].clone())], progress=False)
    assert len(seen) == 4 and max(float((n - N_E).abs().max()) for n in seen) <= COUNT_TOL * N_E


def test_compare_runs_a_mu_model_in_either_ensemble(models, tmp_path, capsys):
    """``nearsight compare --mu / --filling``: both ensembles (ED and ML) run in the ensemble asked for; the ED
    cache records it. A model without a mu input at another mu is refused before any dynamics runs."""
    from nearsight.cli import main
    base = ["compare", "--model", models["bp"], "--size", str(L), "--replicas", "2", "--steps", "2", "--every", "2",
            "--plot", str(tmp_path / "p.png")]
    for flag, value, want in (("--mu", "-4.3", {"mu": -4.3}), ("--filling", "0.47", {"filling": 0.47})):
        cache = tmp_path / f"{flag[2:]}.npz"
        assert main(base + [flag, value, "--ed-cache", str(cache)]) == 0
        physics = json.loads(str(np.load(cache)["settings"]))["physics"]
        assert {k: physics.get(k) for k in want} == want and [physics["mu"], physics["filling"]].count(None) == 1
        assert f"{flag[2:]}={value}" in capsys.readouterr().out
    rc = main(["compare", "--model", "square-double-exchange", "--size", "12", "--mu", "-4.0",   # fixed mu = -4.4
               "--plot", str(tmp_path / "q.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "mu" in err[0] and not (tmp_path / "q.png").exists()
