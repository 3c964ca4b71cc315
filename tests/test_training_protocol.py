"""The training protocol: per-frame normalized loss, kinds of frames, nested trajectory subsets, model selection on
the internal validation set only (external files never change the model), early stopping with the best weights,
resumption of everything (EMA, plateau scheduler, early stopping), the BP Jacobian cache (exact fields and
gradients), and the mpnn family dispatch."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from ml_data import quench_dataset
from nearsight import Lattice, NearsightError
from nearsight.descriptors import Descriptor
from nearsight.fields import transverse, transverse_rms_ratio
from nearsight.ml.network import SiteEnergyModel, SiteMLP, energy_and_fields
from nearsight.training import load_training_data, train
from nearsight.training.cache import JacobianCache, memory_bytes, offsets
from nearsight.training.loss import frame_loss
from nearsight.training.metrics import disordered_mask, evaluate

CUTOFF = 2.0


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("pdata")
    a = quench_dataset(str(d / "a.h5"), n_traj=8, steps=40, every=4, seed=1)   # 8 quenches x 11 frames, t 0..2
    ext = quench_dataset(str(d / "ext.h5"), n_traj=2, steps=24, every=6, seed=5, L=7)
    return [a], [ext]


def cfg(data, out, **over):
    c = {"datasets": data[0], "descriptor": {"cutoff": CUTOFF}, "hidden": [16, 16], "epochs": 4, "batch_size": 8,
         "lr": 5e-3, "seed": 0, "out": str(out), "progress": False, "split_time": 1.0}
    c.update(over)
    return c


def _metrics(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _unit(rng, shape):
    s = torch.as_tensor(rng.standard_normal(shape))
    return s / s.norm(dim=-1, keepdim=True)


# ------------------------------------------------------------------------------------------------ loss
def test_frame_loss_is_the_per_frame_ratio(rng):
    s = _unit(rng, (3, 10, 3))
    h_ref = torch.as_tensor(rng.standard_normal((3, 10, 3)))
    h = h_ref + 0.3 * torch.as_tensor(rng.standard_normal((3, 10, 3)))
    e = torch.zeros(3)
    _, f, _ = frame_loss(h, h_ref, e, e, s, lam=0.0, floor_per_site=0.0, energy_scale=1.0)
    want = np.mean([transverse_rms_ratio(h[b], h_ref[b], s[b]) ** 2 for b in range(3)])
    assert float(f) == pytest.approx(want, rel=1e-12)
    # scaling one frame's fields (prediction and label) leaves its term, hence the loss, unchanged
    k = torch.tensor([1.0, 50.0, 0.02])[:, None, None]
    _, f2, _ = frame_loss(k * h, k * h_ref, e, e, s, lam=0.0, floor_per_site=0.0, energy_scale=1.0)
    assert float(f2) == pytest.approx(float(f), rel=1e-12)
    # weights: a weighted mean of the per-frame ratios
    w = torch.tensor([1.0, 3.0, 0.0])
    per = [transverse_rms_ratio(h[b], h_ref[b], s[b]) ** 2 for b in range(3)]
    _, fw, _ = frame_loss(h, h_ref, e, e, s, lam=0.0, floor_per_site=0.0, energy_scale=1.0, weights=w)
    assert float(fw) == pytest.approx((per[0] + 3 * per[1]) / 4, rel=1e-12)
    # the floor replaces a vanishing denominator: a zero label frame costs err / (floor N)
    _, f0, _ = frame_loss(h[:1], 0 * h_ref[:1], e[:1], e[:1], s[:1], lam=0.0, floor_per_site=0.5, energy_scale=1.0)
    assert float(f0) == pytest.approx(float(transverse(h[:1], s[:1]).pow(2).sum()) / (0.5 * 10), rel=1e-12)


def test_energy_term_in_units_of_its_scale(rng):
    s = _unit(rng, (2, 4, 3))
    h = torch.zeros(2, 4, 3)
    e_ref, e = torch.tensor([1.0, 2.0]), torch.tensor([1.4, 1.2])             # per-site errors 0.1, -0.2
    tot, f, en = frame_loss(h, h, e, e_ref, s, lam=0.5, floor_per_site=1.0, energy_scale=0.1)
    assert float(f) == 0.0 and float(en) == pytest.approx((0.01 + 0.04) / 2 / 0.01)
    assert float(tot) == pytest.approx(0.5 * float(en))


# ----------------------------------------------------------------------------------------------- kinds
def test_kinds_by_time_and_ordered_start(data):
    td = load_training_data(data[0])
    fs = td.train[0]
    m = disordered_mask(fs, 1.0)
    assert np.array_equal(m, fs.time < 1.0) and 0 < m.sum() < len(m)
    fs.ordered_start[:] = True                                 # frames of runs from ordered starts are ordered
    assert not disordered_mask(fs, 1.0).any()
    fs.ordered_start[:] = False


def test_evaluate_splits_by_kind(data):
    td = load_training_data(data[0])
    lat = td.train[0].lattice
    torch.manual_seed(0)
    d = Descriptor(lat, CUTOFF).double()
    head = SiteMLP(d.n_features, [8]).double()
    models = {lat: SiteEnergyModel(d, head, lat)}
    res = evaluate(models, td.val, "cpu", torch.float64, split_time=1.0)
    fs = td.val[0]
    _, h = energy_and_fields(models[lat], fs.spins)
    m = disordered_mask(fs, 1.0)
    assert res["transverse_rms_ratio"] == pytest.approx(transverse_rms_ratio(h, fs.fields, fs.spins), rel=1e-10)
    assert res["disordered"]["transverse_rms_ratio"] == pytest.approx(
        transverse_rms_ratio(h[m], fs.fields[m], fs.spins[m]), rel=1e-10)
    assert res["ordered"]["transverse_rms_ratio"] == pytest.approx(
        transverse_rms_ratio(h[~m], fs.fields[~m], fs.spins[~m]), rel=1e-10)
    assert res["disordered"]["n_frames"] == int(m.sum()) and res["ordered"]["n_frames"] == int((~m).sum())


# ------------------------------------------------------------------------------------------------ split
def test_nested_trajectory_subsets(data):
    ids = {}
    for f in (0.25, 0.5, 1.0):
        td = load_training_data(data[0], train_fraction=f)
        ids[f] = {int(t) for fs in td.train for t in fs.trajectory}
        val = {int(t) for fs in td.val for t in fs.trajectory}
        ids.setdefault("val", val)
        assert val == ids["val"] and not val & ids[f]           # the same validation set for every fraction
    assert ids[0.25] < ids[0.5] < ids[1.0] and len(ids[1.0]) == 6 and len(ids[0.25]) == 2
    with pytest.raises(NearsightError, match="train_fraction"):
        load_training_data(data[0], train_fraction=0.0)


# ------------------------------------------------------------------------------------- selection, resume
def test_external_files_never_change_the_model(data, tmp_path):
    """The model is selected on the internal validation split only: adding val_datasets changes what is reported,
    not the weights."""
    a = train(cfg(data, tmp_path / "a", patience=2))
    b = train(cfg(data, tmp_path / "b", patience=2, val_datasets=data[1]))
    wa, wb = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    for k in wa["state_dict"]:
        assert torch.equal(wa["state_dict"][k], wb["state_dict"][k]), k
    ca, cb = wa["card"], wb["card"]
    assert ca["held_out"]["set"] == "internal" and cb["held_out"]["set"] == "external"
    assert cb["held_out"]["internal"]["transverse_rms_ratio"] == pytest.approx(ca["held_out"]["transverse_rms_ratio"])
    assert cb["training_data"]["val_lattice_sizes"] == [[7, 7]] and cb["training_data"]["lattice_sizes"] == [[6, 6]]
    rows = _metrics(tmp_path / "b" / "metrics.csv")
    assert all(float(r["ext_transverse_rms_ratio"]) > 0 for r in rows)


def test_early_stopping_keeps_the_best_weights(data, tmp_path):
    """A large constant lr with patience 2: the run stops once the validation ratio has not improved for 2 epochs,
    and the saved model is the best epoch's (its held-out ratio is that epoch's logged validation ratio)."""
    path = train(cfg(data, tmp_path / "es", epochs=30, patience=2, lr=3e-2, lr_schedule="constant", ema=None))
    rows = _metrics(tmp_path / "es" / "metrics.csv")
    val = [float(r["val_transverse_rms_ratio"]) for r in rows]
    best = int(np.argmin(val)) + 1
    card = json.loads((tmp_path / "es" / "es.card.json").read_text())
    tr = card["training"]
    assert tr["best_epoch"] == best and tr["epochs_done"] == len(rows)
    if tr["stopped_early"]:
        assert len(rows) == best + 2 < 30
    assert card["held_out"]["transverse_rms_ratio"] == pytest.approx(val[best - 1], rel=1e-9)
    assert path.endswith("es.pt")


def test_resume_reproduces_ema_plateau_and_early_stopping(data, tmp_path):
    over = {"epochs": 6, "lr": 0.05, "lr_schedule": "plateau", "plateau_patience": 0, "patience": 3, "ema": 0.9,
            "weight_disordered": 3.0, "val_datasets": data[1]}
    full = train(cfg(data, tmp_path / "full", **over))
    assert train(cfg(data, tmp_path / "part", **over), stop_after=2) is None
    resumed = train(cfg(data, tmp_path / "part", **over))
    a, b = _metrics(tmp_path / "full" / "metrics.csv"), _metrics(tmp_path / "part" / "metrics.csv")
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        for k in ("lr", "train_loss", "energy_share", "val_transverse_rms_ratio", "ext_transverse_rms_ratio",
                  "best_epoch"):
            assert float(ra[k]) == pytest.approx(float(rb[k]), rel=1e-9, abs=1e-12), k
    assert len({r["lr"] for r in a}) > 1                    # the plateau scheduler did act
    wa, wb = torch.load(full, weights_only=True), torch.load(resumed, weights_only=True)
    for k in wa["state_dict"]:
        assert torch.allclose(wa["state_dict"][k], wb["state_dict"][k], rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------------------------------------ cache
def test_jacobian_cache_gives_the_autograd_fields_and_gradients(data):
    td = load_training_data(data[0])
    fs = td.train[0]
    lat = fs.lattice
    torch.manual_seed(1)
    d = Descriptor(lat, CUTOFF).double()
    head = SiteMLP(d.n_features, [8, 8]).double()
    x = d(fs.spins[:40])
    head.set_normalization(x.reshape(-1, d.n_features).mean(0), x.reshape(-1, d.n_features).std(0), -1.0, 0.7)
    model = SiteEnergyModel(d, head, lat)
    idx = np.array([3, 7, 5])
    cache = JacobianCache(d, fs.spins[:8], torch.float64, "cpu")
    assert cache.J.shape == (8, lat.N, 2 * len(offsets(d)), d.n_features)
    assert memory_bytes(d, 8, torch.float64) >= cache.J.numel() * 8
    e_c, h_c = cache.fields(head, torch.as_tensor(idx))
    s = fs.spins[idx]
    e, h = energy_and_fields(model, s, create_graph=True)
    assert torch.allclose(e_c, e, rtol=1e-12, atol=1e-10)
    assert torch.allclose(h_c, transverse(h, s), rtol=1e-9, atol=1e-11)
    # the weight gradients of the training loss agree
    params = list(head.parameters())
    kw = {"lam": 0.1, "floor_per_site": 0.01, "energy_scale": 0.2}
    g1 = torch.autograd.grad(frame_loss(h, fs.fields[idx], e, fs.energy[idx], s, **kw)[0], params)
    g2 = torch.autograd.grad(frame_loss(h_c, fs.fields[idx], e_c, fs.energy[idx], s, **kw)[0], params)
    for a, b in zip(g1, g2):
        assert torch.allclose(a, b, rtol=1e-8, atol=1e-12)


@pytest.mark.slow
def test_cached_training_equals_uncached(data, tmp_path):
    over = {"epochs": 2, "dtype": "float64", "val_datasets": data[1], "train_fraction": 0.2}
    a = train(cfg(data, tmp_path / "plain", cache_descriptors=False, **over))
    b = train(cfg(data, tmp_path / "cached", cache_descriptors=True, **over))
    ra, rb = _metrics(tmp_path / "plain" / "metrics.csv"), _metrics(tmp_path / "cached" / "metrics.csv")
    for x, y in zip(ra, rb):
        for k in ("train_loss", "val_transverse_rms_ratio", "ext_transverse_rms_ratio"):
            assert float(x[k]) == pytest.approx(float(y[k]), rel=1e-8), k
    wa, wb = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    assert wb["card"]["training"]["cache_descriptors"] is True and wa["card"]["training"]["cache_descriptors"] is False
    for k in wa["state_dict"]:
        assert torch.allclose(wa["state_dict"][k], wb["state_dict"][k], rtol=1e-7, atol=1e-10)


# ------------------------------------------------------------------------------------------------ config
@pytest.mark.parametrize("over, match", [
    ({"family": "gnn"}, "family must be one of"), ({"optimizer": "sgd"}, "optimizer must be one of"),
    ({"cache_descriptors": "sometimes"}, "cache_descriptors must be"), ({"ema": 1.0}, "ema must be < 1"),
    ({"patience": 0}, "patience must be"), ({"train_fraction": 1.5}, "train_fraction"),
    ({"lr_schedule": "step"}, "lr_schedule must be one of"),
])
def test_bad_protocol_config(data, tmp_path, over, match):
    with pytest.raises(NearsightError, match=match):
        train(cfg(data, tmp_path / "out", **over))
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------ mpnn
def test_mpnn_family_trains_through_the_same_loop(data, tmp_path):
    pytest.importorskip("nearsight.ml.mpnn")
    from nearsight.ml import load_model
    mp = {"layers": 2, "radius": 1.0, "channels": 4, "product_channels": 2, "hidden": [8]}
    path = train(cfg(data, tmp_path / "mp", family="mpnn", mpnn=mp, epochs=2, val_datasets=data[1]))
    card = json.loads((tmp_path / "mp" / "mp.card.json").read_text())
    assert card["family"] == "mpnn" and card["held_out"]["set"] == "external"
    assert card["training"]["cache_descriptors"] is False
    m = load_model(path, Lattice("square", 7))
    assert float(m.e_ref) == pytest.approx(card["energy_reference"]) and float(m.scale) > 0
    with pytest.raises(NearsightError, match="cache_descriptors: true is for family bp"):
        train(cfg(data, tmp_path / "mp2", family="mpnn", mpnn=mp, cache_descriptors=True))
